//! Where events are kept: one trait, [`EventStore`], and its backends (SQLite for one machine,
//! PostgreSQL with monthly time partitions when several processes share a database).
//!
//! Invariants, which the conformance suite (`tests/conformance`) checks on every backend:
//! - the tenant comes first in every key, and no read ever returns another tenant's rows;
//! - a batch is stored in one transaction, with its per-minute counts and its idempotency key:
//!   when [`EventStore::append`] returns, every event of the batch is durable, and a batch whose
//!   key the tenant used within [`IDEMPOTENCY_WINDOW_MS`] is not stored again;
//! - counts over a window are sums of per-minute counts (kept beside the events), never scans;
//!   per-hour counts are kept the same way, and both carry a sketch of their events' distinct
//!   users ([`crate::sketch`]), so unique users over a window are merges, from
//!   [`EventStore::sketches_since`] on (rows written before sketches were kept have none);
//! - events are listed newest first, with a cursor that neither skips nor repeats.

mod blocks;
mod postgres;
mod sqlite;

pub use postgres::PgEventStore;
pub use sqlite::SqliteEventStore;

use crate::NewEvent;
use pingtower_core::{TenantId, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// How long an idempotency key counts a batch as sent.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3_600_000;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the events database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the events database URL: {0}")]
    Config(String),
    #[error("a stored event is damaged: {0}")]
    Corrupt(String),
    /// A rollup row the batch was adding to went meanwhile (a tenant deleted, retention):
    /// nothing of the batch was stored; sending it again stores it.
    #[error("a concurrent deletion changed the rows this batch counts into; nothing was stored")]
    Raced,
}

impl EventStoreError {
    /// The database is there but cannot take this now (no connection free, or a concurrent
    /// deletion raced the batch): a retry soon may work.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            EventStoreError::Database(sqlx::Error::PoolTimedOut) | EventStoreError::Raced
        )
    }
}

pub type Result<T> = std::result::Result<T, EventStoreError>;

/// A batch's idempotency key and the answer to give again if it comes back.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    /// What the first request was answered (JSON), returned as it was to a retry.
    pub answer: &'a str,
}

/// What [`EventStore::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The events are stored.
    Stored(u64),
    /// The key was used within the window: nothing was stored; the first answer.
    Replayed(String),
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Unique in the tenant; orders events received in the same millisecond.
    pub id: i64,
    pub name: String,
    pub timestamp: Timestamp,
    pub distinct_id: Option<String>,
    pub session_id: Option<String>,
    pub properties: Map<String, Value>,
}

/// Where a listing goes on from: the last event of the page before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub timestamp: Timestamp,
    pub id: i64,
}

impl Cursor {
    pub fn of(e: &StoredEvent) -> Self {
        Self {
            timestamp: e.timestamp,
            id: e.id,
        }
    }

    /// `<millis>.<id>`.
    pub fn encode(self) -> String {
        format!("{}.{}", self.timestamp.as_millis(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (t, id) = s.split_once('.')?;
        Some(Self {
            timestamp: Timestamp::from_millis(t.parse().ok()?),
            id: id.parse().ok()?,
        })
    }
}

/// The events of one name in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    pub name: String,
    /// The minute's start (epoch milliseconds, UTC).
    pub minute: Timestamp,
    pub count: i64,
}

/// What [`EventStore::minute_totals`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub events: i64,
    pub rows: i64,
}

/// An event name the tenant used, with how many events of it are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameCount {
    pub name: String,
    pub count: i64,
}

/// How long a rollup row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Minute,
    Hour,
}

impl Grain {
    pub fn millis(self) -> i64 {
        match self {
            Grain::Minute => 60_000,
            Grain::Hour => 3_600_000,
        }
    }

    /// The start of the row that holds `t`.
    pub fn start_of(self, t: Timestamp) -> i64 {
        t.as_millis().div_euclid(self.millis()) * self.millis()
    }
}

/// The events of one name in one minute or hour: how many, and (when asked, and kept) a
/// sketch of their distinct users.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    pub name: String,
    pub start: Timestamp,
    pub count: i64,
    pub users: Option<crate::sketch::Sketch>,
}

/// What a batch adds to one rollup row.
pub(crate) struct RollupAdd<'a> {
    pub name: &'a str,
    pub start: i64,
    pub count: i64,
    pub users: crate::sketch::Sketch,
}

/// The batch's additions to the rows of `grain`, ordered by (start, name): the order rows are
/// locked in, so that concurrent batches never wait on each other in a cycle.
pub(crate) fn rollups_of(events: &[NewEvent], grain: Grain) -> Vec<RollupAdd<'_>> {
    let mut rows: std::collections::BTreeMap<(i64, &str), RollupAdd<'_>> = Default::default();
    for e in events {
        let start = grain.start_of(e.timestamp);
        let row = rows
            .entry((start, e.name.as_str()))
            .or_insert_with(|| RollupAdd {
                name: &e.name,
                start,
                count: 0,
                users: crate::sketch::Sketch::new(),
            });
        row.count += 1;
        if let Some(user) = &e.distinct_id {
            row.users.insert(user);
        }
    }
    rows.into_values().collect()
}

/// `users` as stored: merged into the row's sketch (none for a row written before sketches).
pub(crate) fn merged_users(
    stored: Option<&[u8]>,
    added: &crate::sketch::Sketch,
) -> Result<Vec<u8>> {
    let mut users = match stored {
        Some(bytes) => crate::sketch::Sketch::from_bytes(bytes)
            .map_err(|e| EventStoreError::Corrupt(e.to_string()))?,
        None => crate::sketch::Sketch::new(),
    };
    users.merge(added);
    Ok(users.to_bytes())
}

pub(crate) fn users_of(bytes: Option<Vec<u8>>) -> Result<Option<crate::sketch::Sketch>> {
    bytes
        .map(|b| {
            crate::sketch::Sketch::from_bytes(&b)
                .map_err(|e| EventStoreError::Corrupt(e.to_string()))
        })
        .transpose()
}

/// One of a backend's migrations, applied once, in order of `version`.
pub(crate) fn migration(
    version: i64,
    name: &'static str,
    sql: &'static str,
) -> sqlx::migrate::Migration {
    sqlx::migrate::Migration::new(
        version,
        std::borrow::Cow::Borrowed(name),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(sql),
        false,
    )
}

/// The rollup tables, and their time column, by grain.
pub(crate) fn table_of(grain: Grain) -> (&'static str, &'static str) {
    match grain {
        Grain::Minute => ("analytics_minutes", "minute"),
        Grain::Hour => ("analytics_hours", "hour"),
    }
}

/// The minute that holds `t`.
pub fn minute_of(t: Timestamp) -> i64 {
    t.as_millis().div_euclid(60_000) * 60_000
}

#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Stores `events` for `tenant` in one transaction with their per-minute counts. With an
    /// idempotency key used by the tenant within [`IDEMPOTENCY_WINDOW_MS`] of `now`, stores
    /// nothing and returns the first answer.
    async fn append(
        &self,
        tenant: TenantId,
        events: &[NewEvent],
        idempotency: Option<Idempotency<'_>>,
        now: Timestamp,
    ) -> Result<Appended>;

    /// The tenant's events, newest first (by timestamp, then id), of one name or all, after
    /// `cursor`; at most `limit`.
    async fn list(
        &self,
        tenant: TenantId,
        name: Option<&str>,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;

    /// The tenant's events in `[from, to)` of the names given (all when `None`), oldest first
    /// (by timestamp, then id), after `after`; at most `limit`; with at least the columns in
    /// `want` (packed events come with those only). Queries on properties read events
    /// through this, page by page.
    async fn scan(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        (from, to): (Timestamp, Timestamp),
        after: Option<Cursor>,
        limit: u32,
        want: &crate::packed::Columns,
    ) -> Result<Vec<StoredEvent>>;

    /// Every event of the tenant in `[from, to)` of the names given (all when `None`), each
    /// exactly once, in no set order, sent to `out` piece by piece as read (in one snapshot),
    /// with at least the columns in `want`. Blocks may hold events outside the range or of
    /// other names, which the reader skips. Stops early, without error, when `out` is closed
    /// (the reader has its answer). Queries aggregate over this (`query::aggregate`). The
    /// default reads [`EventStore::scan`] page by page.
    async fn pieces(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        range: (Timestamp, Timestamp),
        want: &crate::packed::Columns,
        out: &tokio::sync::mpsc::Sender<Piece>,
    ) -> Result<()> {
        let mut after = None;
        loop {
            let page = self
                .scan(tenant, names, range, after, PIECE_EVENTS, want)
                .await?;
            let full = page.len() == PIECE_EVENTS as usize;
            after = page.last().map(Cursor::of);
            if out.send(Piece::Events(page)).await.is_err() || !full {
                return Ok(());
            }
        }
    }

    /// The tenant's event names with their counts, most frequent first.
    async fn names(&self, tenant: TenantId) -> Result<Vec<NameCount>>;

    /// Per-minute counts in `[from, to)`, of the names given (all when `None`), oldest first:
    /// the minutes' rollups without their sketches.
    async fn minute_counts(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MinuteCount>> {
        Ok(self
            .rollups(tenant, names, Grain::Minute, (from, to), false)
            .await?
            .into_iter()
            .map(|r| MinuteCount {
                name: r.name,
                minute: r.start,
                count: r.count,
            })
            .collect())
    }

    /// Rollup rows of `grain` starting in `[from, to)`, of the names given (all when `None`),
    /// oldest first; with their users' sketches when `users`.
    async fn rollups(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        grain: Grain,
        range: (Timestamp, Timestamp),
        users: bool,
    ) -> Result<Vec<Rollup>>;

    /// From when every rollup row has its users' sketch (the hour after the newest event
    /// counted before sketches were kept; the epoch for a store that always kept them).
    fn sketches_since(&self) -> Timestamp;

    /// In `[from, to)` (by minute), of the names given (all when `None`): the events, and the
    /// per-minute rows that count them. Summed by the database, whatever the range.
    async fn minute_totals(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Totals> {
        self.totals(tenant, names, Grain::Minute, (from, to)).await
    }

    /// In the rows of `grain` that start in `[from, to)` or hold `from`, of the names given
    /// (all when `None`): the events, and the rows that count them. Per-hour totals read a
    /// sixtieth of the rows (for bounding what a long query reads).
    async fn totals(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        grain: Grain,
        range: (Timestamp, Timestamp),
    ) -> Result<Totals>;

    /// Removes everything of the tenant's (the tenant was deleted). Returns the events removed.
    async fn delete_tenant(&self, tenant: TenantId) -> Result<u64>;

    /// Removes events (and their counts) older than `before`, and idempotency keys past their
    /// window; in short transactions, so ingestion is never held up for long. Returns the
    /// events removed.
    async fn prune(&self, before: Timestamp, now: Timestamp) -> Result<u64>;

    /// Work that keeps the store ready (PostgreSQL: the partitions ahead of `now`).
    async fn maintain(&self, now: Timestamp) -> Result<()>;

    /// Makes the space of the rows that batches, packing and merging replaced reusable, so
    /// that the next ones fill it rather than growing the store (PostgreSQL: `VACUUM`, which
    /// blocks neither readers nor writers, on the tables that change; SQLite rewrites pages
    /// in place and has nothing to do).
    async fn reclaim(&self) -> Result<()> {
        Ok(())
    }

    /// Packs up to `limit` of the events appended as rows into compressed blocks by column
    /// (`crate::packed`), oldest appended first, in one transaction; readers see every event
    /// exactly once throughout. Returns how many were packed (0: none waits). A columnar
    /// engine that stores events packed from the start has nothing to do here.
    async fn pack(&self, limit: u32) -> Result<u64>;
}

pub use blocks::PACK_CHUNK;

/// Events in one [`Piece::Events`].
pub const PIECE_EVENTS: u32 = 10_000;

/// A part of a tenant's events, as [`EventStore::pieces`] reads them.
#[derive(Debug)]
pub enum Piece {
    /// Events one by one (those not packed yet), in the range and of the names asked for.
    Events(Vec<StoredEvent>),
    /// A block of packed events ([`crate::packed`]).
    Block(Vec<u8>),
}

/// Opens the events store at `url` (`sqlite://…` or `postgres://…`) and migrates it.
pub async fn open(url: &str) -> Result<Arc<dyn EventStore>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteEventStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgEventStore::open(url).await?))
    } else {
        Err(EventStoreError::Config(
            "is neither sqlite://… nor postgres://…".into(),
        ))
    }
}

/// The properties stored as JSON text.
fn properties_json(p: &Map<String, Value>) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
}

fn properties_of(text: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(text).map_err(|e| EventStoreError::Corrupt(e.to_string()))
}
