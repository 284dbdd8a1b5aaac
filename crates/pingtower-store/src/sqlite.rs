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

    async fn write_results(&self, results: &[pingtower_core::CheckResult]) -> crate::Result<u64> {
        let mut tx = self.writer.begin().await?;
        let mut written = 0;
        for r in results {
            let details = r.details.as_ref().map(|d| d.to_string());
            written += sqlx::query(crate::sql::INSERT_RESULT)
                .bind(r.monitor_seq)
                .bind(r.checked_at.as_millis())
                .bind(&r.region)
                .bind(r.status.code())
                .bind(r.latency_us)
                .bind(&r.reason)
                .bind(details)
                .execute(&mut *tx)
                .await?
                .rows_affected();
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
}

crate::backend::store_impl!(SqliteStore, sqlx::Sqlite, Backend::Sqlite);
