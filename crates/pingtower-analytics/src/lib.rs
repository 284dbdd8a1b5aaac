//! PingTower's event analytics: a tenant's own application events.
//!
//! Not to be confused with the dashboard's live view (`pingtower-api`'s `events.rs` and
//! `/api/v1/events/stream`), which carries the server's own messages: the events here are what
//! a tenant's applications send to `POST /api/v1/events`.
//!
//! - [`event`]: one event as sent, and the rules it must follow to be kept (each broken rule is
//!   a reason naming the event by its index in the batch).
//! - [`store`]: [`store::EventStore`], where events are kept (SQLite, PostgreSQL with monthly
//!   partitions), with per-minute counts written in the same transaction, so counts over any
//!   window are sums rather than scans, and idempotency keys.
//! - [`query`], [`funnel`]: queries and funnels over a tenant's events.
//! - [`cache`]: the query cache, in memory or in Redis (several API processes).

pub mod cache;
pub mod event;
pub mod funnel;
pub mod maintenance;
pub mod packed;
pub mod query;
pub mod sketch;
pub mod store;

pub use event::{Clock, NewEvent, Rejection};
pub use store::{EventStore, EventStoreError};
