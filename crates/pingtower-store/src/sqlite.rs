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
            .map_err(|e| crate::StoreError::Config(format!("invalid SQLite URL: {e}")))?;
        // The file holds every tenant's data: the owner's only, as the secret key is.
        let file = (!is_in_memory(url)).then(|| connect.get_filename().to_path_buf());
        if let Some(file) = &file {
            create_private(file);
        }
        let connect = connect
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
        // The WAL and shared-memory files exist now (SQLite gives them the database's mode);
        // files left by an older version, or made under another umask, are narrowed too.
        if let Some(file) = &file {
            restrict_private(file);
        }
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

/// Whether a `sqlite:` URL names an in-memory database (no file).
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Owner read and write only: the database and its `-wal` and `-shm` files.
#[cfg(unix)]
const PRIVATE_MODE: u32 = 0o600;

/// Creates a missing database file readable by its owner only, whatever the umask, before
/// SQLite opens it (an empty file is an empty database). A failure is left to SQLite's own open
/// to report.
#[cfg(unix)]
fn create_private(file: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(file);
    if let Err(e) = created
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        tracing::debug!(file = %file.display(), error = %e, "cannot create the database file");
    }
}

#[cfg(not(unix))]
fn create_private(_file: &std::path::Path) {}

/// Takes group and other permissions off the database and its `-wal` and `-shm` files.
#[cfg(unix)]
fn restrict_private(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut names = vec![file.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        names.push(name.into());
    }
    for name in names {
        let Ok(meta) = std::fs::metadata(&name) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 == 0 {
            continue;
        }
        let narrowed = std::fs::Permissions::from_mode(PRIVATE_MODE);
        match std::fs::set_permissions(&name, narrowed) {
            Ok(()) => {
                tracing::info!(file = %name.display(), "made the database file readable by its owner only");
            }
            Err(e) => {
                tracing::warn!(file = %name.display(), error = %e, "the database file is readable by others and its permissions cannot be changed");
            }
        }
    }
}

#[cfg(not(unix))]
fn restrict_private(_file: &std::path::Path) {}

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

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_database_and_its_wal_are_the_owners_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let url = format!("sqlite://{}", db.display());
        let files = ["p.db", "p.db-wal", "p.db-shm"].map(|f| dir.path().join(f));

        let store = super::SqliteStore::open(&url, &crate::StoreOptions::default())
            .await
            .unwrap();
        for f in &files {
            assert!(f.exists(), "{} missing", f.display());
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        store.close_pools().await;

        // A database an older version left readable by everyone is narrowed when opened.
        for f in &files {
            if f.exists() {
                std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let store = super::SqliteStore::open(&url, &crate::StoreOptions::default())
            .await
            .unwrap();
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        store.close_pools().await;

        // In memory: no file to make.
        assert!(super::is_in_memory("sqlite::memory:"));
        assert!(super::is_in_memory("sqlite://?mode=memory"));
        assert!(!super::is_in_memory(&url));
    }
}
