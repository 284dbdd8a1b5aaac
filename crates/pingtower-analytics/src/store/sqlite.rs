//! The embedded backend: events in a SQLite file of their own (beside the main database), so
//! that ingesting them never waits for, or holds up, the writer of check results.

use super::{
    Appended, Cursor, EventStore, EventStoreError, Grain, IDEMPOTENCY_WINDOW_MS, Idempotency,
    NameCount, Result, Rollup, StoredEvent, Totals, merged_users, minute_of, properties_json,
    properties_of, rollups_of, table_of, users_of,
};
use crate::NewEvent;
use pingtower_core::{TenantId, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::borrow::Cow;
use std::str::FromStr;

/// Rows per multi-row INSERT (7 parameters each, under SQLite's 32,766).
const ROWS_PER_INSERT: usize = 1_000;
/// Rows one pruning transaction removes.
const PRUNE_CHUNK: i64 = 10_000;

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(vec![
            sqlx::migrate::Migration::new(
                1,
                Cow::Borrowed("0001_events"),
                sqlx::migrate::MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(include_str!(
                    "../../migrations/sqlite/0001_events.sql"
                )),
                false,
            ),
            sqlx::migrate::Migration::new(
                2,
                Cow::Borrowed("0002_sketches"),
                sqlx::migrate::MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(include_str!(
                    "../../migrations/sqlite/0002_sketches.sql"
                )),
                false,
            ),
        ]),
        table_name: Cow::Borrowed("_analytics_migrations"),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

pub struct SqliteEventStore {
    writer: SqlitePool,
    reader: SqlitePool,
    sketches_since: Timestamp,
}

impl SqliteEventStore {
    /// Opens (creating if missing, readable by its owner only) the events database at `url`.
    pub async fn open(url: &str) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| EventStoreError::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Full: a batch answered is on disk (kill -9 loses none of it).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let file = connect.get_filename().to_path_buf();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await?;
        migrator().run(&writer).await?;
        private(&file);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect.read_only(true))
            .await?;
        let since: i64 = sqlx::query_scalar("SELECT since FROM analytics_sketches")
            .fetch_one(&writer)
            .await?;
        Ok(Self {
            writer,
            reader,
            sketches_since: Timestamp::from_millis(since),
        })
    }
}

/// The database holds every tenant's events: its owner's only (as the main database is).
fn private(file: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.as_os_str().to_owned();
            path.push(suffix);
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, "narrowing the events database's permissions failed");
            }
        }
    }
}

/// ` AND name IN (…)`.
fn push_names(q: &mut QueryBuilder<Sqlite>, names: &[String]) {
    q.push(" AND name IN (");
    let mut list = q.separated(", ");
    for n in names {
        list.push_bind(n);
    }
    list.push_unseparated(")");
}

/// `select` over the tenant's per-minute counts in `[from, to)` of `names` (all when `None`);
/// `None` when `names` is empty, as nothing can match.
fn minutes_query(
    select: &'static str,
    tenant: TenantId,
    names: Option<&[String]>,
    from: Timestamp,
    to: Timestamp,
) -> Option<QueryBuilder<Sqlite>> {
    let mut q = QueryBuilder::<Sqlite>::new(select);
    q.push(" FROM analytics_minutes WHERE tenant_id = ")
        .push_bind(tenant.0)
        .push(" AND minute >= ")
        .push_bind(minute_of(from))
        .push(" AND minute < ")
        .push_bind(to.as_millis());
    if let Some(names) = names {
        if names.is_empty() {
            return None;
        }
        push_names(&mut q, names);
    }
    Some(q)
}

fn stored(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        timestamp: Timestamp::from_millis(row.try_get("ts")?),
        distinct_id: row.try_get("distinct_id")?,
        session_id: row.try_get("session_id")?,
        properties: properties_of(row.try_get::<&str, _>("properties")?)?,
    })
}

#[async_trait::async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        tenant: TenantId,
        events: &[NewEvent],
        idempotency: Option<Idempotency<'_>>,
        now: Timestamp,
    ) -> Result<Appended> {
        let mut tx = self.writer.begin().await?;
        if let Some(idem) = idempotency {
            sqlx::query(
                "DELETE FROM analytics_batches WHERE tenant_id = ? AND key = ? AND created_at <= ?",
            )
            .bind(tenant.0)
            .bind(idem.key)
            .bind(now.as_millis() - IDEMPOTENCY_WINDOW_MS)
            .execute(&mut *tx)
            .await?;
            let claimed = sqlx::query(
                "INSERT INTO analytics_batches (tenant_id, key, answer, created_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(tenant.0)
            .bind(idem.key)
            .bind(idem.answer)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                let answer: String = sqlx::query_scalar(
                    "SELECT answer FROM analytics_batches WHERE tenant_id = ? AND key = ?",
                )
                .bind(tenant.0)
                .bind(idem.key)
                .fetch_one(&mut *tx)
                .await?;
                tx.rollback().await?;
                return Ok(Appended::Replayed(answer));
            }
        }
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO analytics_events (tenant_id, ts, name, distinct_id, session_id, properties) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(tenant.0)
                    .push_bind(e.timestamp.as_millis())
                    .push_bind(&e.name)
                    .push_bind(&e.distinct_id)
                    .push_bind(&e.session_id)
                    .push_bind(properties_json(&e.properties));
            });
            q.build().execute(&mut *tx).await?;
        }
        // The rollups: one writer, so reading a row and writing it back is not raced.
        for grain in [Grain::Minute, Grain::Hour] {
            let (table, column) = table_of(grain);
            for add in rollups_of(events, grain) {
                let stored: Option<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                    format!(
                        "SELECT users FROM {table} WHERE tenant_id = ? AND {column} = ? AND name = ?"
                    ),
                ))
                .bind(tenant.0)
                .bind(add.start)
                .bind(add.name)
                .fetch_optional(&mut *tx)
                .await?;
                let users = merged_users(stored.flatten().as_deref(), &add.users)?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (tenant_id, {column}, name, count, users) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, {column}, name) \
                     DO UPDATE SET count = count + excluded.count, users = excluded.users"
                )))
                .bind(tenant.0)
                .bind(add.start)
                .bind(add.name)
                .bind(add.count)
                .bind(users)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Appended::Stored(events.len() as u64))
    }

    async fn list(
        &self,
        tenant: TenantId,
        name: Option<&str>,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, name, ts, distinct_id, session_id, properties FROM analytics_events \
             WHERE tenant_id = ",
        );
        q.push_bind(tenant.0);
        if let Some(name) = name {
            q.push(" AND name = ").push_bind(name);
        }
        if let Some(c) = cursor {
            q.push(" AND (ts < ")
                .push_bind(c.timestamp.as_millis())
                .push(" OR (ts = ")
                .push_bind(c.timestamp.as_millis())
                .push(" AND id < ")
                .push_bind(c.id)
                .push("))");
        }
        q.push(" ORDER BY ts DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(stored).collect()
    }

    async fn scan(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        from: Timestamp,
        to: Timestamp,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, name, ts, distinct_id, session_id, properties FROM analytics_events \
             WHERE tenant_id = ",
        );
        q.push_bind(tenant.0)
            .push(" AND ts >= ")
            .push_bind(from.as_millis())
            .push(" AND ts < ")
            .push_bind(to.as_millis());
        if let Some(names) = names {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            push_names(&mut q, names);
        }
        if let Some(c) = after {
            q.push(" AND (ts > ")
                .push_bind(c.timestamp.as_millis())
                .push(" OR (ts = ")
                .push_bind(c.timestamp.as_millis())
                .push(" AND id > ")
                .push_bind(c.id)
                .push("))");
        }
        q.push(" ORDER BY ts, id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter().map(stored).collect()
    }

    async fn names(&self, tenant: TenantId) -> Result<Vec<NameCount>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, SUM(count) AS n FROM analytics_minutes WHERE tenant_id = ? \
             GROUP BY name ORDER BY n DESC, name",
        )
        .bind(tenant.0)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, count)| NameCount { name, count })
            .collect())
    }

    async fn rollups(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        grain: Grain,
        (from, to): (Timestamp, Timestamp),
        users: bool,
    ) -> Result<Vec<Rollup>> {
        let (table, column) = table_of(grain);
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT name, {column} AS start, count, {} AS users FROM {table} WHERE tenant_id = ",
            if users { "users" } else { "NULL" }
        ));
        q.push_bind(tenant.0)
            .push(format!(" AND {column} >= "))
            .push_bind(grain.start_of(from))
            .push(format!(" AND {column} < "))
            .push_bind(to.as_millis());
        if let Some(names) = names {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            push_names(&mut q, names);
        }
        q.push(format!(" ORDER BY {column}, name"));
        let rows = q.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok(Rollup {
                    name: r.try_get("name")?,
                    start: Timestamp::from_millis(r.try_get("start")?),
                    count: r.try_get("count")?,
                    users: users_of(r.try_get("users")?)?,
                })
            })
            .collect()
    }

    fn sketches_since(&self) -> Timestamp {
        self.sketches_since
    }

    async fn minute_totals(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Totals> {
        let Some(mut q) = minutes_query(
            "SELECT COALESCE(SUM(count), 0), COUNT(*)",
            tenant,
            names,
            from,
            to,
        ) else {
            return Ok(Totals::default());
        };
        let (events, rows): (i64, i64) = q.build_query_as().fetch_one(&self.reader).await?;
        Ok(Totals { events, rows })
    }

    async fn delete_tenant(&self, tenant: TenantId) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM analytics_events WHERE tenant_id = ?")
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for table in ["analytics_minutes", "analytics_hours", "analytics_batches"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = ?"
            )))
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn prune(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        // Whole minutes, so that a minute's count and its events go together.
        let before = minute_of(before);
        let tenants: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT DISTINCT tenant_id FROM analytics_minutes WHERE minute < ?")
                .bind(before)
                .fetch_all(&self.reader)
                .await?;
        let mut removed = 0;
        for tenant in tenants {
            loop {
                let n = sqlx::query(
                    "DELETE FROM analytics_events WHERE id IN (SELECT id FROM analytics_events \
                     WHERE tenant_id = ? AND ts < ? LIMIT ?)",
                )
                .bind(tenant)
                .bind(before)
                .bind(PRUNE_CHUNK)
                .execute(&self.writer)
                .await?
                .rows_affected();
                removed += n;
                if n < PRUNE_CHUNK as u64 {
                    break;
                }
            }
            sqlx::query("DELETE FROM analytics_minutes WHERE tenant_id = ? AND minute < ?")
                .bind(tenant)
                .bind(before)
                .execute(&self.writer)
                .await?;
            // Hours wholly before the cutoff (one that straddles it goes with its last minute).
            sqlx::query("DELETE FROM analytics_hours WHERE tenant_id = ? AND hour <= ?")
                .bind(tenant)
                .bind(before - Grain::Hour.millis())
                .execute(&self.writer)
                .await?;
        }
        sqlx::query("DELETE FROM analytics_batches WHERE created_at <= ?")
            .bind(now.as_millis() - IDEMPOTENCY_WINDOW_MS)
            .execute(&self.writer)
            .await?;
        Ok(removed)
    }

    async fn maintain(&self, _now: Timestamp) -> Result<()> {
        Ok(())
    }
}
