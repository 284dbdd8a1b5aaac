//! The embedded backend: events in a SQLite file of their own (beside the main database), so
//! that ingesting them never waits for, or holds up, the writer of check results.

use super::blocks::{
    BLOCKS_PAGE, Gather, NewBlock, Order, Pages, blocks_of, group, hour_of, merge_plan, packed_new,
    packed_of, send_pieces, split_direct, unpack_or_keep,
};
use super::{
    Appended, Cursor, EventStore, EventStoreError, Grain, IDEMPOTENCY_WINDOW_MS, Idempotency,
    NameCount, PIECE_EVENTS, Piece, Result, Rollup, StoredEvent, Totals, merged_users, migration,
    minute_of, properties_json, properties_of, rollups_of, table_of, users_of,
};
use crate::NewEvent;
use crate::packed::{Columns, PackedEvent};
use pingtower_core::{TenantId, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::borrow::Cow;
use std::str::FromStr;

/// A staged event row, of the tenant bound next.
const STAGED_SELECT: &str = "SELECT id, name, ts, distinct_id, session_id, properties FROM analytics_events \
         WHERE tenant_id = ";
/// Rows per multi-row INSERT (7 parameters each, under SQLite's 32,766).
const ROWS_PER_INSERT: usize = 1_000;
/// Rows one pruning transaction removes.
const PRUNE_CHUNK: i64 = 10_000;

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(vec![
            migration(
                1,
                "0001_events",
                include_str!("../../migrations/sqlite/0001_events.sql"),
            ),
            migration(
                2,
                "0002_sketches",
                include_str!("../../migrations/sqlite/0002_sketches.sql"),
            ),
            migration(
                3,
                "0003_blocks",
                include_str!("../../migrations/sqlite/0003_blocks.sql"),
            ),
            migration(
                4,
                "0004_hour_counts",
                include_str!("../../migrations/sqlite/0004_hour_counts.sql"),
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
            .pragma("temp_store", "memory")
            // The write-ahead log is truncated back to 16 MiB after checkpoints, rather than
            // staying as large as the largest transaction (a packing round) made it.
            .pragma("journal_size_limit", "16777216");
        let file = connect.get_filename().to_path_buf();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect.clone())
            .await?;
        migrator().run(&writer).await?;
        // The staging table's sequence row, which batches take ids from (`reserve_ids`):
        // SQLite makes it only at the first insert.
        sqlx::query(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'analytics_events', 0 \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'analytics_events')",
        )
        .execute(&writer)
        .await?;
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

/// Where counts of `grain` are read without sketches: per-hour rows through their index of
/// counts (`0004_hour_counts.sql`), which skips the sketches a row carries.
fn counts_of(grain: Grain) -> String {
    match grain {
        Grain::Hour => "analytics_hours INDEXED BY analytics_hours_counts".into(),
        Grain::Minute => table_of(grain).0.into(),
    }
}

/// `select` over the tenant's rollup rows of `grain` starting in `[from, to)` (from the row
/// holding `from`) of `names` (all when `None`); `None` when `names` is empty, as nothing can
/// match.
fn rollups_query(
    select: &'static str,
    tenant: TenantId,
    names: Option<&[String]>,
    grain: Grain,
    (from, to): (Timestamp, Timestamp),
) -> Option<QueryBuilder<Sqlite>> {
    let column = table_of(grain).1;
    let mut q = QueryBuilder::<Sqlite>::new(select);
    q.push(format!(" FROM {} WHERE tenant_id = ", counts_of(grain)))
        .push_bind(tenant.0)
        .push(format!(" AND {column} >= "))
        .push_bind(grain.start_of(from))
        .push(format!(" AND {column} < "))
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
        // An hour's many events go into a block at once; the rest wait as rows to be packed.
        let (direct, staged) = split_direct(events);
        if !direct.is_empty() {
            let n: usize = direct.iter().map(|(_, g)| g.len()).sum();
            let mut next = reserve_ids(&mut tx, n as i64).await?;
            for (hour, group) in direct {
                let packed = group
                    .into_iter()
                    .map(|e| {
                        next += 1;
                        packed_new(e, next)
                    })
                    .collect();
                write_group(&mut tx, tenant.0, hour, packed).await?;
            }
        }
        for chunk in staged.chunks(ROWS_PER_INSERT) {
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
        // The rollups: one writer, so reading rows and writing them back is not raced. A
        // statement reads (and one writes) up to ROWS_PER_INSERT rows: a batch spread over a
        // month touches a row per event, and a statement costs a round trip to SQLite's thread.
        for grain in [Grain::Minute, Grain::Hour] {
            let (table, column) = table_of(grain);
            let adds = rollups_of(events, grain);
            for chunk in adds.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::<Sqlite>::new(format!(
                    "SELECT {column}, name, users FROM {table} WHERE tenant_id = "
                ));
                q.push_bind(tenant.0)
                    .push(format!(" AND ({column}, name) IN (VALUES "));
                let mut rows = q.separated(", ");
                for a in chunk {
                    rows.push("(")
                        .push_bind_unseparated(a.start)
                        .push_unseparated(", ")
                        .push_bind_unseparated(a.name)
                        .push_unseparated(")");
                }
                q.push(")");
                let stored: Vec<(i64, String, Option<Vec<u8>>)> =
                    q.build_query_as().fetch_all(&mut *tx).await?;
                let stored: std::collections::HashMap<(i64, &str), Option<&[u8]>> = stored
                    .iter()
                    .map(|(s, n, u)| ((*s, n.as_str()), u.as_deref()))
                    .collect();
                let users = chunk
                    .iter()
                    .map(|a| {
                        merged_users(stored.get(&(a.start, a.name)).copied().flatten(), &a.users)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut q = QueryBuilder::<Sqlite>::new(format!(
                    "INSERT INTO {table} (tenant_id, {column}, name, count, users) "
                ));
                q.push_values(chunk.iter().zip(users), |mut b, (a, users)| {
                    b.push_bind(tenant.0)
                        .push_bind(a.start)
                        .push_bind(a.name)
                        .push_bind(a.count)
                        .push_bind(users);
                });
                q.push(format!(
                    " ON CONFLICT (tenant_id, {column}, name) \
                     DO UPDATE SET count = count + excluded.count, users = excluded.users"
                ));
                q.build().execute(&mut *tx).await?;
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
        let mut q = QueryBuilder::<Sqlite>::new(STAGED_SELECT);
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
        // One snapshot: an event being packed is in exactly one of the two.
        let mut tx = self.reader.begin().await?;
        let rows = q.build().fetch_all(&mut *tx).await?;
        let staged = rows.iter().map(stored).collect::<Result<Vec<_>>>()?;
        let names = name.map(|n| vec![n.to_owned()]);
        let mut gather = Gather::new(Order::NewestFirst, limit, (i64::MIN, i64::MAX), cursor)
            .named(names.as_deref());
        let hours = (
            i64::MIN,
            cursor.map_or(i64::MAX, |c| hour_of(c.timestamp.as_millis())),
        );
        read_blocks(&mut tx, tenant, names.as_deref(), hours, &mut gather).await?;
        tx.commit().await?;
        Ok(gather.finish(staged))
    }

    async fn scan(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        (from, to): (Timestamp, Timestamp),
        after: Option<Cursor>,
        limit: u32,
        want: &Columns,
    ) -> Result<Vec<StoredEvent>> {
        let Some(mut q) = staged_query(tenant, names, (from, to), after, i64::from(limit)) else {
            return Ok(Vec::new());
        };
        let mut tx = self.reader.begin().await?;
        let rows = q.build().fetch_all(&mut *tx).await?;
        let staged = rows.iter().map(stored).collect::<Result<Vec<_>>>()?;
        let range = (from.as_millis(), to.as_millis());
        let mut gather = Gather::new(Order::OldestFirst, limit, range, after)
            .reading(want)
            .named(names);
        let first = after.map_or(range.0, |c| c.timestamp.as_millis().max(range.0));
        let hours = (hour_of(first), hour_of(range.1.saturating_sub(1)));
        read_blocks(&mut tx, tenant, names, hours, &mut gather).await?;
        tx.commit().await?;
        Ok(gather.finish(staged))
    }

    async fn pieces(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        (from, to): (Timestamp, Timestamp),
        _want: &Columns,
        out: &tokio::sync::mpsc::Sender<Piece>,
    ) -> Result<()> {
        if names.is_some_and(<[String]>::is_empty) {
            return Ok(());
        }
        // One snapshot: an event being packed is in exactly one of the two.
        let mut tx = self.reader.begin().await?;
        let mut pages = Snapshot {
            conn: &mut tx,
            tenant,
            names,
            range: (from, to),
        };
        send_pieces(&mut pages, (from.as_millis(), to.as_millis()), out).await?;
        tx.commit().await?;
        Ok(())
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
        let (users_column, source) = if users {
            ("users", Cow::Borrowed(table))
        } else {
            ("NULL", Cow::Owned(counts_of(grain)))
        };
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT name, {column} AS start, count, {users_column} AS users FROM {source} \
             WHERE tenant_id = "
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

    async fn totals(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        grain: Grain,
        range: (Timestamp, Timestamp),
    ) -> Result<Totals> {
        let Some(mut q) = rollups_query(
            "SELECT COALESCE(SUM(count), 0), COUNT(*)",
            tenant,
            names,
            grain,
            range,
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
        let packed: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(count), 0) FROM analytics_blocks WHERE tenant_id = ?",
        )
        .bind(tenant.0)
        .fetch_one(&mut *tx)
        .await?;
        for table in [
            "analytics_blocks",
            "analytics_minutes",
            "analytics_hours",
            "analytics_batches",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = ?"
            )))
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n + packed as u64)
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
            removed += self.prune_blocks(tenant, before).await?;
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

    async fn pack(&self, limit: u32) -> Result<u64> {
        // One writer: nothing is appended while the chunk moves, so the rows taken are exactly
        // those up to the last id taken.
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "SELECT id, tenant_id, ts, name, distinct_id, session_id, properties \
             FROM analytics_events ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().map(|r| r.try_get::<i64, _>("id")).transpose()? else {
            return Ok(0);
        };
        let staged = rows
            .iter()
            .map(|r| {
                let e = stored(r)?;
                let tenant: uuid::Uuid = r.try_get("tenant_id")?;
                Ok((tenant, packed_of(e)))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = staged.len() as u64;
        for ((tenant, hour), events) in group(staged) {
            write_group(&mut tx, tenant, hour, events).await?;
        }
        sqlx::query("DELETE FROM analytics_events WHERE id <= ?")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

impl SqliteEventStore {
    /// Removes the tenant's packed events before `before`: whole blocks, in chunks, and the
    /// hour that straddles the cutoff rewritten without them. Returns the events removed.
    async fn prune_blocks(&self, tenant: uuid::Uuid, before: i64) -> Result<u64> {
        let mut removed = 0u64;
        loop {
            let gone: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM analytics_blocks WHERE id IN (SELECT id FROM analytics_blocks \
                 WHERE tenant_id = ? AND max_ts < ? LIMIT 1000) RETURNING count",
            )
            .bind(tenant)
            .bind(before)
            .fetch_all(&self.writer)
            .await?;
            removed += gone.iter().sum::<i64>() as u64;
            if gone.len() < 1000 {
                break;
            }
        }
        let mut tx = self.writer.begin().await?;
        let straddling: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, hour, data FROM analytics_blocks \
             WHERE tenant_id = ? AND min_ts < ? AND max_ts >= ?",
        )
        .bind(tenant)
        .bind(before)
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for (id, hour, data) in straddling {
            // A block that does not decode stays as it is.
            let Some(mut events) = unpack_or_keep(&data, id) else {
                continue;
            };
            let n = events.len();
            events.retain(|e| e.ts >= before);
            removed += (n - events.len()) as u64;
            sqlx::query("DELETE FROM analytics_blocks WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_blocks(&mut tx, tenant, hour, blocks_of(events)?).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Writes `events` of the tenant's `hour` as blocks, merged with the hour's small blocks
/// when [`merge_plan`] says so.
async fn write_group(
    tx: &mut sqlx::SqliteConnection,
    tenant: uuid::Uuid,
    hour: i64,
    mut events: Vec<PackedEvent>,
) -> Result<()> {
    let existing: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, count FROM analytics_blocks WHERE tenant_id = ? AND hour = ?")
            .bind(tenant)
            .bind(hour)
            .fetch_all(&mut *tx)
            .await?;
    for id in merge_plan(&existing, events.len() as i64) {
        let data: Vec<u8> = sqlx::query_scalar("SELECT data FROM analytics_blocks WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        // A block that does not decode stays as it is (reads report it), rather than
        // failing every batch and packing round of its hour.
        let Some(merged) = unpack_or_keep(&data, id) else {
            continue;
        };
        sqlx::query("DELETE FROM analytics_blocks WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        events.extend(merged);
    }
    insert_blocks(tx, tenant, hour, blocks_of(events)?).await
}

/// Takes `n` event ids from the staging table's sequence (so that no row staged later, and
/// no other batch, gets them): returns the last id before them.
async fn reserve_ids(tx: &mut sqlx::SqliteConnection, n: i64) -> Result<i64> {
    // The sequence holds the largest id ever given (AUTOINCREMENT keeps it so on every
    // insert); its row is made at open.
    let last: i64 = sqlx::query_scalar(
        "UPDATE sqlite_sequence SET seq = seq + ? WHERE name = 'analytics_events' RETURNING seq",
    )
    .bind(n)
    .fetch_one(&mut *tx)
    .await?;
    Ok(last - n)
}

async fn insert_blocks(
    tx: &mut sqlx::SqliteConnection,
    tenant: uuid::Uuid,
    hour: i64,
    blocks: Vec<NewBlock>,
) -> Result<()> {
    for b in blocks {
        sqlx::query(
            "INSERT INTO analytics_blocks (tenant_id, hour, count, min_ts, max_ts, data) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(hour)
        .bind(b.count)
        .bind(b.min_ts)
        .bind(b.max_ts)
        .bind(b.data)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// A query's pages of the tenant's events in `range`, read in one transaction.
struct Snapshot<'a> {
    conn: &'a mut sqlx::SqliteConnection,
    tenant: TenantId,
    names: Option<&'a [String]>,
    range: (Timestamp, Timestamp),
}

#[async_trait::async_trait]
impl Pages for Snapshot<'_> {
    async fn staged(&mut self, after: Option<Cursor>) -> Result<Vec<StoredEvent>> {
        let limit = i64::from(PIECE_EVENTS);
        let Some(mut q) = staged_query(self.tenant, self.names, self.range, after, limit) else {
            return Ok(Vec::new());
        };
        let rows = q.build().fetch_all(&mut *self.conn).await?;
        rows.iter().map(stored).collect()
    }

    async fn blocks(
        &mut self,
        hours: (i64, i64),
        bounds: (i64, i64),
        after: Option<(i64, i64)>,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>> {
        block_page(self.conn, self.tenant, hours, bounds, false, after).await
    }
}

/// The staged events of the tenant in `[from, to)` of `names` (all when `None`), oldest
/// first, after `after`, at most `limit`; `None` when `names` is empty.
fn staged_query(
    tenant: TenantId,
    names: Option<&[String]>,
    (from, to): (Timestamp, Timestamp),
    after: Option<Cursor>,
    limit: i64,
) -> Option<QueryBuilder<Sqlite>> {
    let mut q = QueryBuilder::<Sqlite>::new(STAGED_SELECT);
    q.push_bind(tenant.0)
        .push(" AND ts >= ")
        .push_bind(from.as_millis())
        .push(" AND ts < ")
        .push_bind(to.as_millis());
    if let Some(names) = names {
        if names.is_empty() {
            return None;
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
    q.push(" ORDER BY ts, id LIMIT ").push_bind(limit);
    Some(q)
}

/// Reads the tenant's blocks of `names` (all when `None`) in the hours `[first, last]`, in
/// the gather's order, until it has its page.
async fn read_blocks(
    conn: &mut sqlx::SqliteConnection,
    tenant: TenantId,
    names: Option<&[String]>,
    hours: (i64, i64),
    gather: &mut Gather,
) -> Result<()> {
    if names.is_some_and(<[String]>::is_empty) {
        return Ok(());
    }
    loop {
        let rows = block_page(
            conn,
            tenant,
            hours,
            gather.ts_bounds(),
            gather.newest_first(),
            gather.after(),
        )
        .await?;
        if !gather.take_page(&rows)? {
            return Ok(());
        }
    }
}

/// One keyset page, over (hour, id), of the tenant's blocks `(id, hour, data)` in the hours
/// `[first, last]` that overlap the timestamps `[lo, hi]`, past `after`: at most
/// [`BLOCKS_PAGE`].
async fn block_page(
    conn: &mut sqlx::SqliteConnection,
    tenant: TenantId,
    (first, last): (i64, i64),
    (lo, hi): (i64, i64),
    newest_first: bool,
    after: Option<(i64, i64)>,
) -> Result<Vec<(i64, i64, Vec<u8>)>> {
    if first > last {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT id, hour, data FROM analytics_blocks WHERE tenant_id = ",
    );
    q.push_bind(tenant.0)
        .push(" AND hour >= ")
        .push_bind(first)
        .push(" AND hour <= ")
        .push_bind(last)
        .push(" AND max_ts >= ")
        .push_bind(lo)
        .push(" AND min_ts <= ")
        .push_bind(hi);
    let (cmp, dir) = if newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((hour, id)) = after {
        q.push(format!(" AND (hour {cmp} "))
            .push_bind(hour)
            .push(" OR (hour = ")
            .push_bind(hour)
            .push(format!(" AND id {cmp} "))
            .push_bind(id)
            .push("))");
    }
    q.push(format!(
        " ORDER BY hour {dir}, id {dir} LIMIT {BLOCKS_PAGE}"
    ));
    Ok(q.build_query_as().fetch_all(&mut *conn).await?)
}
