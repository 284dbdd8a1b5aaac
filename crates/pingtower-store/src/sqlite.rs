//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so writers queue in the pool instead of
//! failing with SQLITE_BUSY; reads use a separate pool and run beside the writer (WAL).
//! `synchronous = FULL`: a committed transaction survives a crash of the process or the machine.

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;

use crate::StoreOptions;

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies pending migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> crate::Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| crate::StoreError::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.clone())
            .await?;
        crate::migrations::sqlite().run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(Self { reader, writer })
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn close_pools(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// One transaction; rows go in multi-row INSERTs of up to [`ROWS_PER_INSERT`], so a batch
    /// costs a few statements rather than one round trip to SQLite's thread per row.
    async fn write_results(&self, results: &[pingtower_core::CheckResult]) -> crate::Result<u64> {
        const ROWS_PER_INSERT: usize = 500;
        let mut tx = self.writer.begin().await?;
        // Results of minutes already folded into rollups take the late path.
        let folded = Self::folded_shared(&mut tx).await?;
        let (fresh, late): (Vec<_>, Vec<_>) = results
            .iter()
            .partition(|r| r.checked_at.as_millis() >= folded);
        let mut written = Self::insert_late(&mut tx, &late).await?;
        for chunk in fresh.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO check_results (monitor_seq, checked_at, region, status, latency_us, \
                 reason, details) ",
            );
            q.push_values(chunk, |mut row, r| {
                row.push_bind(r.monitor_seq)
                    .push_bind(r.checked_at.as_millis())
                    .push_bind(r.region.as_str())
                    .push_bind(r.status.code())
                    .push_bind(r.latency_us)
                    .push_bind(r.reason.as_deref())
                    .push_bind(r.details.as_ref().map(|d| d.to_string()));
            });
            q.push(" ON CONFLICT DO NOTHING");
            written += q.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn prepare_partitions(&self, _now: pingtower_core::Timestamp) -> crate::Result<()> {
        Ok(())
    }

    async fn prune(&self, cutoff: pingtower_core::Timestamp) -> crate::Result<u64> {
        self.prune_rows(cutoff).await
    }

    /// Pages that pruning freed go on SQLite's free list already, which new writes reuse.
    async fn reclaim(&self, _table: &'static str) -> crate::Result<()> {
        Ok(())
    }

    /// Pages that compaction freed go on SQLite's free list, which new writes reuse.
    async fn release_compacted(&self, _before: pingtower_core::Timestamp) -> crate::Result<u64> {
        Ok(0)
    }
}

crate::backend::store_impl!(SqliteStore, sqlx::Sqlite, Backend::Sqlite);

mod stats {
    // SQLite has one writer connection: a write transaction is exclusive already.
    // A read transaction holds one WAL snapshot already.
    crate::stats::stats_impl!(
        super::SqliteStore,
        sqlx::Sqlite,
        share = "",
        update = "",
        read_committed = "",
        snapshot = ""
    );
}
