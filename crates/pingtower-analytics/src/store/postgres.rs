//! The scale-out backend: PostgreSQL, events partitioned by the month of their timestamp, so
//! that retention drops whole partitions instead of deleting rows under a lock.

use super::blocks::{
    BLOCKS_PAGE, Gather, NewBlock, Order, Pages, blocks_of, group, hour_of, merge_plan, packed_new,
    packed_of, send_pieces, split_direct, unpack_or_keep,
};
use super::{
    Appended, Cursor, EventStore, EventStoreError, IDEMPOTENCY_WINDOW_MS, Idempotency, NameCount,
    Result, StoredEvent, Totals, minute_of, properties_json, properties_of,
};
use super::{
    Grain, PIECE_EVENTS, Piece, Rollup, RollupAdd, merged_users, migration, rollups_of, table_of,
    users_of,
};
use crate::NewEvent;
use crate::packed::{Columns, PackedEvent};
use chrono::{Datelike, TimeZone, Utc};
use pingtower_core::{TenantId, Timestamp};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};
use std::borrow::Cow;

/// A staged event row, of the tenant bound next.
const STAGED_SELECT: &str = "SELECT id, name, ts, distinct_id, session_id, properties::TEXT AS properties \
         FROM analytics_events WHERE tenant_id = ";
/// Rows per multi-row INSERT (6 parameters each, under PostgreSQL's 65,535).
const ROWS_PER_INSERT: usize = 1_000;
/// Serialises partition changes between processes sharing the database.
const PARTITION_LOCK: i64 = 0x7074_6576_656e_7473; // "ptevents"
/// Rows one pruning statement removes.
const PRUNE_CHUNK: i64 = 10_000;
/// One process at a time reclaims space (`EventStore::reclaim`).
const RECLAIM_LOCK: i64 = 0x7074_7661_6375_756d; // "ptvacuum"
/// Serialises packing (and rewriting blocks) between processes sharing the database.
const PACK_LOCK: i64 = 0x7074_7061_636b_6572; // "ptpacker"
/// With a hash of the tenant: batches that merge the tenant's blocks (shared) against
/// deleting the tenant (exclusive). Two-key advisory locks, apart from [`PACK_LOCK`]'s.
const TENANT_LOCK: i32 = 0x7074_6576; // "ptev"

/// Most names a minute row holds; a minute's further names are counted a row each. A row is
/// rewritten whole by every batch that adds to it, so it must not grow with what a tenant
/// sends.
const MINUTE_ROW_NAMES: usize = 64;

/// A block as deleted (`RETURNING tenant_id, hour, id, count, min_ts, max_ts, data`).
type BlockRow = (uuid::Uuid, i64, i64, i64, i64, i64, Vec<u8>);

/// A transaction that reads staged rows and blocks in one snapshot.
async fn snapshot(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(vec![
            migration(
                1,
                "0001_events",
                include_str!("../../migrations/postgres/0001_events.sql"),
            ),
            migration(
                2,
                "0002_sketches",
                include_str!("../../migrations/postgres/0002_sketches.sql"),
            ),
            migration(
                3,
                "0003_blocks",
                include_str!("../../migrations/postgres/0003_blocks.sql"),
            ),
            migration(
                4,
                "0004_minute_rows",
                include_str!("../../migrations/postgres/0004_minute_rows.sql"),
            ),
        ]),
        table_name: Cow::Borrowed("_analytics_migrations"),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

pub struct PgEventStore {
    pool: PgPool,
    sketches_since: Timestamp,
}

/// The first millisecond of the month holding `t`, and of the month after.
fn month_of(t: Timestamp) -> (i64, i64, String) {
    let dt = t.to_datetime();
    let start = Utc
        .with_ymd_and_hms(dt.year(), dt.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(dt);
    let (y, m) = if dt.month() == 12 {
        (dt.year() + 1, 1)
    } else {
        (dt.year(), dt.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(dt);
    (
        start.timestamp_millis(),
        end.timestamp_millis(),
        format!("analytics_events_{:04}{:02}", dt.year(), dt.month()),
    )
}

impl PgEventStore {
    /// Connects to `url`, applies pending migrations and makes this month's and the next
    /// month's partitions.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        migrator().run(&pool).await?;
        let since: i64 = sqlx::query_scalar("SELECT since FROM analytics_sketches")
            .fetch_one(&pool)
            .await?;
        let store = Self {
            pool,
            sketches_since: Timestamp::from_millis(since),
        };
        store.maintain(Timestamp::from_datetime(Utc::now())).await?;
        Ok(store)
    }

    /// Makes the partition of the month holding `t` unless it exists, moving the rows of that
    /// month that wait in the default partition into it.
    async fn ensure_partition(&self, t: Timestamp) -> Result<()> {
        let (from, to, name) = month_of(t);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&self.pool)
            .await?;
        if exists {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PARTITION_LOCK)
            .execute(&mut *tx)
            .await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            return Ok(());
        }
        // No insert may land in the default partition between moving this month's rows out
        // and attaching the new partition (the attach would then fail).
        sqlx::query("LOCK TABLE analytics_events_default IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        for statement in [
            format!(
                "CREATE TABLE {name} (LIKE analytics_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ),
            format!(
                "WITH moved AS (DELETE FROM analytics_events_default WHERE ts >= {from} AND ts < {to} \
                 RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            ),
            format!(
                "ALTER TABLE analytics_events ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// ` AND name = ANY(…)`.
/// Where rollups of `grain` are read, and their time column: minute rows through a view that
/// gives a row per name (`analytics_minute_counts` leaves the sketches out, so counting never
/// unpacks them).
fn read_table(grain: Grain, users: bool) -> (&'static str, &'static str) {
    match (grain, users) {
        (Grain::Minute, false) => ("analytics_minute_counts", "minute"),
        _ => table_of(grain),
    }
}

fn push_names(q: &mut QueryBuilder<Postgres>, names: &[String]) {
    q.push(" AND name = ANY(").push_bind(names).push(")");
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
) -> Option<QueryBuilder<Postgres>> {
    let (table, column) = read_table(grain, false);
    let mut q = QueryBuilder::<Postgres>::new(select);
    q.push(format!(" FROM {table} WHERE tenant_id = "))
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

fn stored(row: &sqlx::postgres::PgRow) -> Result<StoredEvent> {
    let properties = properties_of(row.try_get::<&str, _>("properties")?)?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        timestamp: Timestamp::from_millis(row.try_get("ts")?),
        distinct_id: row.try_get("distinct_id")?,
        session_id: row.try_get("session_id")?,
        properties,
    })
}

#[async_trait::async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        tenant: TenantId,
        events: &[NewEvent],
        idempotency: Option<Idempotency<'_>>,
        now: Timestamp,
    ) -> Result<Appended> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idempotency {
            sqlx::query(
                "DELETE FROM analytics_batches WHERE tenant_id = $1 AND key = $2 AND created_at <= $3",
            )
            .bind(tenant.0)
            .bind(idem.key)
            .bind(now.as_millis() - IDEMPOTENCY_WINDOW_MS)
            .execute(&mut *tx)
            .await?;
            // A concurrent batch with the same key waits here until the first commits.
            let claimed = sqlx::query(
                "INSERT INTO analytics_batches (tenant_id, key, answer, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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
                    "SELECT answer FROM analytics_batches WHERE tenant_id = $1 AND key = $2",
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
            // Merging moves the tenant's older events into new blocks: not while the tenant is
            // being deleted (which would miss the new blocks), nor meanwhile.
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1, hashtext($2::TEXT))")
                .bind(TENANT_LOCK)
                .bind(tenant.0)
                .execute(&mut *tx)
                .await?;
            let n: usize = direct.iter().map(|(_, g)| g.len()).sum();
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT nextval('analytics_event_ids') \
                 FROM generate_series(1, $1)",
            )
            .bind(n as i64)
            .fetch_all(&mut *tx)
            .await?;
            let mut ids = ids.into_iter();
            for (hour, group) in direct {
                let mut packed = Vec::with_capacity(group.len());
                for e in group {
                    let id = ids.next().ok_or_else(|| {
                        EventStoreError::Corrupt("the id sequence gave too few ids".into())
                    })?;
                    packed.push(packed_new(e, id));
                }
                write_group(&mut tx, tenant.0, hour, packed).await?;
            }
        }
        for chunk in staged.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO analytics_events (tenant_id, ts, name, distinct_id, session_id, properties) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(tenant.0)
                    .push_bind(e.timestamp.as_millis())
                    .push_bind(&e.name)
                    .push_bind(&e.distinct_id)
                    .push_bind(&e.session_id)
                    .push_bind(properties_json(&e.properties))
                    .push_unseparated("::jsonb");
            });
            q.build().execute(&mut *tx).await?;
        }
        write_minutes(&mut tx, tenant.0, &rollups_of(events, Grain::Minute)).await?;
        let hours = rollups_of(events, Grain::Hour);
        let hours: Vec<&RollupAdd<'_>> = hours.iter().collect();
        write_per_name(&mut tx, "analytics_hours", "hour", tenant.0, &hours).await?;
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
        let mut q = QueryBuilder::<Postgres>::new(STAGED_SELECT);
        q.push_bind(tenant.0);
        if let Some(name) = name {
            q.push(" AND name = ").push_bind(name);
        }
        if let Some(c) = cursor {
            q.push(" AND (ts, id) < (")
                .push_bind(c.timestamp.as_millis())
                .push(", ")
                .push_bind(c.id)
                .push(")");
        }
        q.push(" ORDER BY ts DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        // One snapshot: an event being packed is in exactly one of the two.
        let mut tx = snapshot(&self.pool).await?;
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
        let mut tx = snapshot(&self.pool).await?;
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
        let mut tx = snapshot(&self.pool).await?;
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
            "SELECT name, SUM(count)::BIGINT AS n FROM analytics_minute_counts WHERE tenant_id = $1 \
             GROUP BY name ORDER BY n DESC, name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
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
        let (table, column) = read_table(grain, users);
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT name, {column} AS start, count, {} AS users FROM {table} WHERE tenant_id = ",
            if users { "users" } else { "NULL::BYTEA" }
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
        let rows = q.build().fetch_all(&self.pool).await?;
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
            "SELECT COALESCE(SUM(count), 0)::BIGINT, COUNT(*)::BIGINT",
            tenant,
            names,
            grain,
            range,
        ) else {
            return Ok(Totals::default());
        };
        let (events, rows): (i64, i64) = q.build_query_as().fetch_one(&self.pool).await?;
        Ok(Totals { events, rows })
    }

    async fn delete_tenant(&self, tenant: TenantId) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // Not while a packer moves rows into blocks: it locks blocks, then rows, and this
        // would lock rows, then blocks.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PACK_LOCK)
            .execute(&mut *tx)
            .await?;
        // Nor while a batch merges the tenant's blocks.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::TEXT))")
            .bind(TENANT_LOCK)
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM analytics_events WHERE tenant_id = $1")
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let packed: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(count), 0)::BIGINT FROM analytics_blocks WHERE tenant_id = $1",
        )
        .bind(tenant.0)
        .fetch_one(&mut *tx)
        .await?;
        for table in [
            "analytics_blocks",
            "analytics_minute_rows",
            "analytics_minute_names",
            "analytics_hours",
            "analytics_batches",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant_id = $1"
            )))
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n + packed as u64)
    }

    async fn prune(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        let before = minute_of(before);
        let mut removed = 0u64;
        // Whole months before the cutoff go at once.
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'analytics_events'::regclass \
             AND c.relname ~ '^analytics_events_[0-9]{6}$'",
        )
        .fetch_all(&self.pool)
        .await?;
        for name in partitions {
            let (Ok(y), Ok(m)) = (name[17..21].parse::<i32>(), name[21..23].parse::<u32>()) else {
                continue;
            };
            let Some(start) = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single() else {
                continue;
            };
            let (_, end, _) = month_of(Timestamp::from_datetime(start));
            if end <= before {
                let n: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {name}")))
                        .fetch_one(&self.pool)
                        .await?;
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PARTITION_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                removed += u64::try_from(n).unwrap_or(0);
            }
        }
        // The month that straddles the cutoff, and the default partition, row by row.
        loop {
            let n = sqlx::query(
                "DELETE FROM analytics_events WHERE (tenant_id, ts, id) IN \
                 (SELECT tenant_id, ts, id FROM analytics_events WHERE ts < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(PRUNE_CHUNK)
            .execute(&self.pool)
            .await?
            .rows_affected();
            removed += n;
            if n < PRUNE_CHUNK as u64 {
                break;
            }
        }
        removed += self.prune_blocks(before).await?;
        for table in ["analytics_minute_rows", "analytics_minute_names"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE minute < $1"
            )))
            .bind(before)
            .execute(&self.pool)
            .await?;
        }
        // Hours wholly before the cutoff (one that straddles it goes with its last minute).
        sqlx::query("DELETE FROM analytics_hours WHERE hour <= $1")
            .bind(before - Grain::Hour.millis())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM analytics_batches WHERE created_at <= $1")
            .bind(now.as_millis() - IDEMPOTENCY_WINDOW_MS)
            .execute(&self.pool)
            .await?;
        Ok(removed)
    }

    async fn maintain(&self, now: Timestamp) -> Result<()> {
        let (start, end, _) = month_of(now);
        self.ensure_partition(Timestamp::from_millis(start)).await?;
        self.ensure_partition(Timestamp::from_millis(end)).await
    }

    async fn reclaim(&self) -> Result<()> {
        // MVCC leaves a dead row behind every rollup update and every merged block, and
        // autovacuum comes only once a fifth of a table is dead. One process at a time (a
        // session lock on this connection, gone with it); tables autovacuum holds are skipped,
        // not waited for, quietly; no truncation, whose exclusive lock would stop ingestion.
        let mut conn = self.pool.acquire().await?;
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RECLAIM_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !mine {
            return Ok(());
        }
        // Each its own statement: VACUUM runs in no transaction, and several statements in
        // one query string would make one.
        let vacuumed = async {
            sqlx::raw_sql("SET client_min_messages = error")
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "VACUUM (SKIP_LOCKED, TRUNCATE false) analytics_minute_rows, \
                 analytics_minute_names, analytics_hours, analytics_blocks",
            )
            .execute(&mut *conn)
            .await?;
            sqlx::raw_sql("RESET client_min_messages")
                .execute(&mut *conn)
                .await?;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(RECLAIM_LOCK)
                .execute(&mut *conn)
                .await
        }
        .await;
        if let Err(e) = vacuumed {
            // Closed rather than pooled: the lock and the setting go with the session.
            let _ = sqlx::Connection::close(conn.detach()).await;
            return Err(e.into());
        }
        Ok(())
    }

    async fn pack(&self, limit: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // One packer at a time; another process packing now does this round's work.
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(PACK_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !mine {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT id, tenant_id, ts, name, distinct_id, session_id, properties::TEXT AS properties \
             FROM analytics_events ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // The rows taken, by key: ids are not given in commit order, so rows appended
        // meanwhile with lower ids than some taken are left for the next round.
        let mut keys: (Vec<uuid::Uuid>, Vec<i64>, Vec<i64>) = Default::default();
        let staged = rows
            .iter()
            .map(|r| {
                let e = stored(r)?;
                let tenant: uuid::Uuid = r.try_get("tenant_id")?;
                keys.0.push(tenant);
                keys.1.push(e.timestamp.as_millis());
                keys.2.push(e.id);
                Ok((tenant, packed_of(e)))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = staged.len() as u64;
        for ((tenant, hour), events) in group(staged) {
            write_group(&mut tx, tenant, hour, events).await?;
        }
        let deleted = sqlx::query(
            "DELETE FROM analytics_events WHERE (tenant_id, ts, id) IN \
             (SELECT * FROM unnest($1::UUID[], $2::BIGINT[], $3::BIGINT[]))",
        )
        .bind(&keys.0)
        .bind(&keys.1)
        .bind(&keys.2)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted != n {
            // Some rows taken went meanwhile (a tenant deleted, retention): their blocks must
            // not bring them back. The next round reads again.
            tx.rollback().await?;
            return Ok(0);
        }
        tx.commit().await?;
        Ok(n)
    }
}

impl PgEventStore {
    /// Removes packed events before `before`: whole blocks, in chunks, and the blocks that
    /// straddle the cutoff rewritten without them. Returns the events removed.
    async fn prune_blocks(&self, before: i64) -> Result<u64> {
        let mut removed = 0u64;
        loop {
            let gone: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM analytics_blocks WHERE id IN (SELECT id FROM analytics_blocks \
                 WHERE max_ts < $1 LIMIT 1000) RETURNING count",
            )
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
            removed += gone.iter().sum::<i64>() as u64;
            if gone.len() < 1000 {
                break;
            }
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PACK_LOCK)
            .execute(&mut *tx)
            .await?;
        let straddling: Vec<BlockRow> = sqlx::query_as(
            "DELETE FROM analytics_blocks WHERE min_ts < $1 AND max_ts >= $1 \
             RETURNING tenant_id, hour, id, count, min_ts, max_ts, data",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for (tenant, hour, id, count, min_ts, max_ts, data) in straddling {
            let Some(mut events) = unpack_or_keep(&data, id) else {
                let block = NewBlock {
                    count,
                    min_ts,
                    max_ts,
                    data,
                };
                insert_blocks(&mut tx, tenant, hour, vec![block]).await?;
                continue;
            };
            let n = events.len();
            events.retain(|e| e.ts >= before);
            removed += (n - events.len()) as u64;
            insert_blocks(&mut tx, tenant, hour, blocks_of(events)?).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Rollup additions as the arrays `unnest` takes: starts, names, counts and sketches.
type AddColumns<'a> = (Vec<i64>, Vec<&'a str>, Vec<i64>, Vec<Vec<u8>>);

fn as_columns<'a>(adds: &[&RollupAdd<'a>]) -> AddColumns<'a> {
    (
        adds.iter().map(|a| a.start).collect(),
        adds.iter().map(|a| a.name).collect(),
        adds.iter().map(|a| a.count).collect(),
        adds.iter().map(|a| a.users.to_bytes()).collect(),
    )
}

/// Adds a batch's per-minute counts and sketches to the tenant's minute rows (one per minute,
/// up to [`MINUTE_ROW_NAMES`] names in sorted arrays; a minute's further names a row each in
/// `analytics_minute_names`). A minute the batch is first to count is inserted as it will
/// stay; the others (counted before, or by a concurrent batch meanwhile: the insert waits for
/// it) are locked in minute order, merged and written back. Rows are never made empty and then
/// updated: on PostgreSQL that leaves a dead row behind each. A row's names never leave it
/// (only retention removes whole minutes), so a name is counted in one place.
async fn write_minutes(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    adds: &[RollupAdd<'_>],
) -> Result<()> {
    // The batch's minutes, each with its first names (in the order rows keep them) for a new
    // row; `adds` is sorted by (minute, name).
    let mut fresh: Vec<&RollupAdd<'_>> = Vec::with_capacity(adds.len());
    let mut spill: Vec<&RollupAdd<'_>> = Vec::new();
    for minute in adds.chunk_by(|a, b| a.start == b.start) {
        let mut sorted: Vec<&RollupAdd<'_>> = minute.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(b.name));
        let keep = sorted.len().min(MINUTE_ROW_NAMES);
        fresh.extend(&sorted[..keep]);
        spill.extend(&sorted[keep..]);
    }
    let (starts, names, counts, users) = as_columns(&fresh);
    let inserted: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO analytics_minute_rows (tenant_id, minute, names, counts, users) \
         SELECT $1, s, array_agg(n ORDER BY n), array_agg(c ORDER BY n), array_agg(u ORDER BY n) \
         FROM unnest($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BYTEA[]) AS x(s, n, c, u) \
         GROUP BY s ORDER BY s ON CONFLICT DO NOTHING RETURNING minute",
    )
    .bind(tenant)
    .bind(&starts)
    .bind(&names)
    .bind(&counts)
    .bind(&users)
    .fetch_all(&mut *tx)
    .await?;
    let inserted: std::collections::HashSet<i64> = inserted.into_iter().collect();
    // New rows' further names go a row each; every name of the other minutes is merged.
    let mut overflow: Vec<&RollupAdd<'_>> = spill
        .into_iter()
        .filter(|a| inserted.contains(&a.start))
        .collect();
    let rest: Vec<&RollupAdd<'_>> = adds
        .iter()
        .filter(|a| !inserted.contains(&a.start))
        .collect();
    if !rest.is_empty() {
        let mut minutes: Vec<i64> = rest.iter().map(|a| a.start).collect();
        minutes.dedup();
        type MinuteRow = (i64, Vec<String>, Vec<i64>, Vec<Option<Vec<u8>>>);
        let stored: Vec<MinuteRow> = sqlx::query_as(
            "SELECT minute, names, counts, users FROM analytics_minute_rows \
             WHERE tenant_id = $1 AND minute = ANY($2) ORDER BY minute FOR UPDATE",
        )
        .bind(tenant)
        .bind(&minutes)
        .fetch_all(&mut *tx)
        .await?;
        if stored.len() != minutes.len() {
            return Err(EventStoreError::Raced);
        }
        // Every (minute, name) of the rows as it will be: the stored ones, with the batch's.
        type Count = (i64, Option<Vec<u8>>);
        let mut merged: std::collections::BTreeMap<(i64, String), Count> = Default::default();
        let mut room: std::collections::HashMap<i64, usize> = Default::default();
        for (minute, names, counts, users) in stored {
            if names.len() != counts.len() || names.len() != users.len() {
                return Err(EventStoreError::Corrupt(format!(
                    "the minute row at {minute} has arrays of different lengths"
                )));
            }
            room.insert(minute, MINUTE_ROW_NAMES.saturating_sub(names.len()));
            for ((name, count), users) in names.into_iter().zip(counts).zip(users) {
                merged.insert((minute, name), (count, users));
            }
        }
        for a in rest {
            let key = (a.start, a.name.to_owned());
            let slot = match merged.get_mut(&key) {
                Some(slot) => slot,
                None => match room.get_mut(&a.start) {
                    Some(free) if *free > 0 => {
                        *free -= 1;
                        merged.entry(key).or_insert((0, None))
                    }
                    _ => {
                        overflow.push(a);
                        continue;
                    }
                },
            };
            slot.0 += a.count;
            slot.1 = Some(merged_users(slot.1.as_deref(), &a.users)?);
        }
        let (mut starts, mut names, mut counts, mut users) = (vec![], vec![], vec![], vec![]);
        for ((minute, name), (count, sketch)) in merged {
            starts.push(minute);
            names.push(name);
            counts.push(count);
            users.push(sketch);
        }
        let updated = sqlx::query(
            "UPDATE analytics_minute_rows AS t SET names = x.n, counts = x.c, users = x.u \
             FROM (SELECT s, array_agg(n ORDER BY n) AS n, array_agg(c ORDER BY n) AS c, \
                   array_agg(u ORDER BY n) AS u \
                   FROM unnest($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BYTEA[]) \
                   AS y(s, n, c, u) GROUP BY s) AS x \
             WHERE t.tenant_id = $1 AND t.minute = x.s",
        )
        .bind(tenant)
        .bind(&starts)
        .bind(&names)
        .bind(&counts)
        .bind(&users)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != minutes.len() as u64 {
            return Err(EventStoreError::Raced);
        }
    }
    overflow.sort_by(|a, b| (a.start, a.name).cmp(&(b.start, b.name)));
    write_per_name(tx, "analytics_minute_names", "minute", tenant, &overflow).await
}

/// Adds counts and sketches to a rollup table with a row per (tenant, start, name)
/// (`analytics_hours`, whose sketches take up to 4 KiB, and the minutes' further names),
/// as [`write_minutes`] does: rows the batch is first to count are inserted as they stay,
/// the others locked in (start, name) order (`adds` is sorted so), merged and written back.
async fn write_per_name(
    tx: &mut sqlx::PgConnection,
    table: &'static str,
    column: &'static str,
    tenant: uuid::Uuid,
    adds: &[&RollupAdd<'_>],
) -> Result<()> {
    if adds.is_empty() {
        return Ok(());
    }
    let (starts, names, counts, users) = as_columns(adds);
    // `table` and `column` are the store's own constants, never input.
    let inserted: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (tenant_id, {column}, name, count, users) \
         SELECT $1, s, n, c, u FROM unnest($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BYTEA[]) \
         AS x(s, n, c, u) ORDER BY s, n \
         ON CONFLICT DO NOTHING RETURNING {column}, name"
    )))
    .bind(tenant)
    .bind(&starts)
    .bind(&names)
    .bind(&counts)
    .bind(&users)
    .fetch_all(&mut *tx)
    .await?;
    if inserted.len() == adds.len() {
        return Ok(());
    }
    let inserted: std::collections::HashSet<(i64, &str)> =
        inserted.iter().map(|(s, n)| (*s, n.as_str())).collect();
    let rest: Vec<&RollupAdd<'_>> = adds
        .iter()
        .copied()
        .filter(|a| !inserted.contains(&(a.start, a.name)))
        .collect();
    let starts: Vec<i64> = rest.iter().map(|a| a.start).collect();
    let names: Vec<&str> = rest.iter().map(|a| a.name).collect();
    let stored: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {column}, name, users FROM {table} WHERE tenant_id = $1 \
             AND ({column}, name) IN (SELECT * FROM unnest($2::BIGINT[], $3::TEXT[])) \
             ORDER BY {column}, name FOR UPDATE"
    )))
    .bind(tenant)
    .bind(&starts)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    if stored.len() != rest.len() {
        return Err(EventStoreError::Raced);
    }
    let stored: std::collections::HashMap<(i64, &str), Option<&[u8]>> = stored
        .iter()
        .map(|(s, n, u)| ((*s, n.as_str()), u.as_deref()))
        .collect();
    let mut counts = Vec::with_capacity(rest.len());
    let mut users = Vec::with_capacity(rest.len());
    for a in &rest {
        let before = stored.get(&(a.start, a.name)).copied().flatten();
        counts.push(a.count);
        users.push(merged_users(before, &a.users)?);
    }
    let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} AS t SET count = t.count + x.c, users = x.u \
         FROM unnest($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BYTEA[]) AS x(s, n, c, u) \
         WHERE t.tenant_id = $1 AND t.{column} = x.s AND t.name = x.n"
    )))
    .bind(tenant)
    .bind(&starts)
    .bind(&names)
    .bind(&counts)
    .bind(&users)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated != rest.len() as u64 {
        return Err(EventStoreError::Raced);
    }
    Ok(())
}

/// Writes `events` of the tenant's `hour` as blocks, merged with those of the hour's small
/// blocks that no other transaction holds (`SKIP LOCKED`: batches of one hour never queue
/// behind each other) when [`merge_plan`] says so. A block is merged by whoever deletes it
/// (`DELETE … RETURNING`), so a block that another batch or the packer merges meanwhile is
/// never written twice.
async fn write_group(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    hour: i64,
    mut events: Vec<PackedEvent>,
) -> Result<()> {
    let existing: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, count FROM analytics_blocks WHERE tenant_id = $1 AND hour = $2 \
         ORDER BY id FOR UPDATE SKIP LOCKED",
    )
    .bind(tenant)
    .bind(hour)
    .fetch_all(&mut *tx)
    .await?;
    let merge = merge_plan(&existing, events.len() as i64);
    merge_into(tx, tenant, hour, &merge, &mut events).await?;
    insert_blocks(tx, tenant, hour, blocks_of(events)?).await
}

/// Takes the blocks `ids` of the tenant's `hour` (those still there: a block belongs to
/// whoever deletes it) into `events`. A block that does not decode is written back as it was
/// (reads report it), rather than failing every batch and packing round of its hour.
async fn merge_into(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    hour: i64,
    ids: &[i64],
    events: &mut Vec<PackedEvent>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let merged: Vec<(i64, i64, i64, i64, Vec<u8>)> = sqlx::query_as(
        "DELETE FROM analytics_blocks WHERE id = ANY($1) RETURNING id, count, min_ts, max_ts, data",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    for (id, count, min_ts, max_ts, data) in merged {
        match unpack_or_keep(&data, id) {
            Some(decoded) => events.extend(decoded),
            None => {
                let block = NewBlock {
                    count,
                    min_ts,
                    max_ts,
                    data,
                };
                insert_blocks(tx, tenant, hour, vec![block]).await?;
            }
        }
    }
    Ok(())
}

async fn insert_blocks(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    hour: i64,
    blocks: Vec<NewBlock>,
) -> Result<()> {
    for b in blocks {
        sqlx::query(
            "INSERT INTO analytics_blocks (tenant_id, hour, count, min_ts, max_ts, data) \
             VALUES ($1, $2, $3, $4, $5, $6)",
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
    conn: &'a mut sqlx::PgConnection,
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
) -> Option<QueryBuilder<Postgres>> {
    let mut q = QueryBuilder::<Postgres>::new(STAGED_SELECT);
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
        q.push(" AND (ts, id) > (")
            .push_bind(c.timestamp.as_millis())
            .push(", ")
            .push_bind(c.id)
            .push(")");
    }
    q.push(" ORDER BY ts, id LIMIT ").push_bind(limit);
    Some(q)
}

/// Reads the tenant's blocks of `names` (all when `None`) in the hours `[first, last]`, in
/// the gather's order, until it has its page.
async fn read_blocks(
    conn: &mut sqlx::PgConnection,
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
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    (first, last): (i64, i64),
    (lo, hi): (i64, i64),
    newest_first: bool,
    after: Option<(i64, i64)>,
) -> Result<Vec<(i64, i64, Vec<u8>)>> {
    if first > last {
        return Ok(Vec::new());
    }
    let (cmp, dir) = if newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut q = QueryBuilder::<Postgres>::new(
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
    if let Some((hour, id)) = after {
        q.push(format!(" AND (hour, id) {cmp} ("))
            .push_bind(hour)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(format!(
        " ORDER BY hour {dir}, id {dir} LIMIT {BLOCKS_PAGE}"
    ));
    Ok(q.build_query_as().fetch_all(&mut *conn).await?)
}
