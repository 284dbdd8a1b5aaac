//! PingTower's roles and what they share.
//!
//! A role is an `async fn` that runs until the shutdown token fires, talking to the rest of the
//! system only through the [`Store`](pingtower_store::Store) and the [`Bus`](pingtower_bus::Bus):
//! the same code runs whether every role shares one process or each has its own.
//!
//! Invariants:
//! - Roles never call each other's code paths; they exchange messages on the bus.
//! - A result is acknowledged to whoever produced it only after it is committed to the store
//!   ([`writer`]); a full writer queue slows producers down, it never drops results.
//! - On shutdown, work in flight is finished or handed back to the bus, and the writer is
//!   flushed before the store closes.

pub mod evaluator;
pub mod event_check;
pub mod figures;
pub mod heartbeat;
pub mod maintenance;
pub mod metrics;
pub mod monitor_metrics;
pub mod role;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod stats;
pub mod worker;
pub mod writer;

pub use metrics::Metrics;
pub use role::{Role, RoleSet};
pub use scheduler::{Scheduler, SchedulerConfig, notify_monitor_changed};
pub use worker::{Worker, WorkerConfig};
pub use writer::{ResultWriter, WriterConfig, WriterHandle};

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("store: {0}")]
    Store(#[from] pingtower_store::StoreError),
    #[error("bus: {0}")]
    Bus(#[from] pingtower_bus::BusError),
    /// The writer gave up committing a batch (the store stayed unavailable).
    #[error("results not committed: {0}")]
    NotCommitted(String),
    /// The result writer stopped before it could take or commit a result.
    #[error("the result writer has stopped")]
    WriterStopped,
}

/// Reads the wall clock (the one place the engine does).
pub fn now() -> pingtower_core::Timestamp {
    pingtower_core::Timestamp::from_datetime(chrono::Utc::now())
}
