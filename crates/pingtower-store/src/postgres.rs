//! The scale-out backend: PostgreSQL, with check results partitioned by day.

use chrono::{NaiveDate, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

use crate::StoreOptions;

pub struct PostgresStore {
    pool: PgPool,
}

const MS_PER_DAY: i64 = 86_400_000;
/// Days of partitions kept ready ahead of now.
const DAYS_AHEAD: i64 = 3;
/// Serialises partition changes between processes sharing the database.
const PARTITION_LOCK: i64 = 0x7069_6e67_746f_7772; // "pingtowr"

impl PostgresStore {
    /// Connects to `url`, applies pending migrations and prepares today's partitions.
    pub async fn open(url: &str, options: &StoreOptions) -> crate::Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| crate::StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("pingtower");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await?;
        crate::migrations::postgres().run(&pool).await?;
        let store = Self { pool };
        store
            .prepare_partitions(pingtower_core::Timestamp::from_datetime(Utc::now()))
            .await?;
        Ok(store)
    }

    /// The pool, for tests and tools that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    async fn write_results(&self, results: &[pingtower_core::CheckResult]) -> crate::Result<u64> {
        let n = results.len();
        let (mut seqs, mut ats, mut regions, mut statuses, mut latencies, mut reasons, mut details) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut tx = self.begin_write().await?;
        // Results of minutes already folded into rollups take the late path.
        let folded = Self::folded_shared(&mut tx).await?;
        let (fresh, late): (Vec<_>, Vec<_>) = results
            .iter()
            .partition(|r| r.checked_at.as_millis() >= folded);
        let late_written = Self::insert_late(&mut tx, &late).await?;
        for r in fresh {
            seqs.push(r.monitor_seq);
            ats.push(r.checked_at.as_millis());
            regions.push(r.region.as_str());
            statuses.push(r.status.code());
            latencies.push(r.latency_us);
            reasons.push(r.reason.as_deref());
            details.push(r.details.as_ref().map(|d| d.to_string()));
        }
        let done = sqlx::query(
            "INSERT INTO check_results (monitor_seq, checked_at, region, status, latency_us, \
             reason, details) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], \
             $4::smallint[], $5::bigint[], $6::text[], $7::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(seqs)
        .bind(ats)
        .bind(regions)
        .bind(statuses)
        .bind(latencies)
        .bind(reasons)
        .bind(details)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() + late_written)
    }

    /// Creates the daily partitions from yesterday to [`DAYS_AHEAD`] days ahead. A partition's
    /// rows that already sit in the default partition are moved into it in the same
    /// transaction, so creating one never fails for an overlap.
    async fn prepare_partitions(&self, now: pingtower_core::Timestamp) -> crate::Result<()> {
        let today = now.as_millis().div_euclid(MS_PER_DAY);
        for day in today - 1..=today + DAYS_AHEAD {
            let name = partition_name(day);
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND \
                 pg_table_is_visible(oid))",
            )
            .bind(&name)
            .fetch_one(&self.pool)
            .await?;
            if exists {
                continue;
            }
            let (from, to) = (day * MS_PER_DAY, (day + 1) * MS_PER_DAY);
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PARTITION_LOCK)
                .execute(&mut *tx)
                .await?;
            // No insert may land in the default partition between moving its rows for this day
            // out and attaching the new partition (the attach would then fail).
            sqlx::query("LOCK TABLE check_results_default IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            // Names are generated from integers above; no user input reaches this text.
            let statements = [
                format!(
                    "CREATE TABLE IF NOT EXISTS {name} (LIKE check_results INCLUDING DEFAULTS)"
                ),
                format!(
                    "WITH moved AS (DELETE FROM check_results_default WHERE checked_at >= {from} \
                     AND checked_at < {to} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                ),
            ];
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s))
                    .execute(&mut *tx)
                    .await?;
            }
            let attached: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = \
                 i.inhrelid WHERE c.relname = $1 AND pg_table_is_visible(c.oid))",
            )
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
            if !attached {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE check_results ATTACH PARTITION {name} FOR VALUES FROM ({from}) \
                     TO ({to})"
                )))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Drops the daily partitions that lie wholly before `cutoff`, then deletes the older rows
    /// of the partition that straddles it (and of the default partition).
    async fn prune(&self, cutoff: pingtower_core::Timestamp) -> crate::Result<u64> {
        let partitions: Vec<(String, f32)> = sqlx::query_as(
            "SELECT c.relname::text, c.reltuples FROM pg_inherits i JOIN pg_class c ON c.oid = \
             i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'check_results' \
             AND pg_table_is_visible(p.oid) AND c.relname LIKE 'check\\_results\\_p%'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut removed = 0u64;
        for (name, tuples) in partitions {
            let Some(day) = partition_day(&name) else {
                continue;
            };
            if (day + 1) * MS_PER_DAY <= cutoff.as_millis() {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
                    .execute(&self.pool)
                    .await?;
                // reltuples is -1 for a table never analysed.
                removed += tuples.max(0.0) as u64;
            }
        }
        Ok(removed + self.prune_rows(cutoff).await?)
    }

    /// Makes the space of rows pruning deleted from `table` reusable at once (VACUUM, which
    /// blocks neither readers nor writers), rather than when autovacuum's thresholds are
    /// reached: the next day's rows then fill it instead of growing the table.
    async fn reclaim(&self, table: &'static str) -> crate::Result<()> {
        // A constant of the store's own, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM {table}")))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives back the space of the rows compaction deleted, and answers how many partitions
    /// it truncated.
    ///
    /// A daily partition wholly before `before` that compaction has emptied is truncated:
    /// rows deleted from a partition that no longer takes inserts would keep their space (and
    /// their index pages) until the partition is dropped at the end of raw retention. It is
    /// truncated only when seen empty under an exclusive lock, so a late result written
    /// meanwhile is never lost; when a lock is not granted within a second (a long reader),
    /// the partition waits for the next round rather than queue writers behind it. (TRUNCATE
    /// is not MVCC-safe: a reader whose snapshot predates the compaction's commit and that
    /// touches the partition only after the TRUNCATE would miss the moved rows in both places.
    /// A reader that touched it first holds a lock that makes the TRUNCATE wait or skip; the
    /// readers here take their snapshot with the statement that reads the partition, so the
    /// window is that statement's start.)
    ///
    /// The partitions compaction deleted from and could not truncate (today's, mostly) are
    /// vacuumed, so that new results reuse the space at once instead of growing the table
    /// until autovacuum's thresholds are reached. VACUUM does not block readers or writers.
    async fn release_compacted(&self, before: pingtower_core::Timestamp) -> crate::Result<u64> {
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'check_results' AND \
             pg_table_is_visible(p.oid) AND c.relname LIKE 'check\\_results\\_p%' AND \
             pg_relation_size(c.oid) > 0",
        )
        .fetch_all(&self.pool)
        .await?;
        let (mut released, mut vacuum) = (0, Vec::new());
        for name in partitions {
            let Some(day) = partition_day(&name) else {
                continue;
            };
            if day * MS_PER_DAY >= before.as_millis() {
                continue;
            }
            if (day + 1) * MS_PER_DAY > before.as_millis() {
                vacuum.push(name);
                continue;
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '1s'")
                .execute(&mut *tx)
                .await?;
            // The name comes from the catalogue and was parsed as a partition name above.
            // Inserts are held off (readers are not) while the partition is seen empty; the
            // exclusive lock is taken only for the TRUNCATE itself.
            let emptied = async {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"
                )))
                .execute(&mut *tx)
                .await?;
                let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT EXISTS (SELECT 1 FROM {name})"
                )))
                .fetch_one(&mut *tx)
                .await?;
                if !any {
                    sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {name}")))
                        .execute(&mut *tx)
                        .await?;
                }
                Ok::<bool, sqlx::Error>(!any)
            }
            .await;
            match emptied {
                Ok(true) => released += 1,
                Ok(false) => vacuum.push(name),
                // A lock not granted in time: next round (the transaction rolls back).
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                    vacuum.push(name);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
        }
        for name in vacuum {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM {name}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(released)
    }
}

/// `check_results_pYYYYMMDD` for the UTC day number `day` (days since the epoch).
fn partition_name(day: i64) -> String {
    let date = Utc
        .timestamp_millis_opt(day * MS_PER_DAY)
        .single()
        .map(|d| d.date_naive())
        .unwrap_or_default();
    format!("check_results_p{}", date.format("%Y%m%d"))
}

/// The inverse of [`partition_name`].
fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("check_results_p")?;
    let date = NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

crate::backend::store_impl!(PostgresStore, sqlx::Postgres, Backend::Postgres);

mod stats {
    crate::stats::stats_impl!(
        super::PostgresStore,
        sqlx::Postgres,
        share = " FOR SHARE",
        update = " FOR UPDATE",
        read_committed = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        snapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        for day in [0, 20_414, 20_779] {
            assert_eq!(partition_day(&partition_name(day)), Some(day));
        }
        assert_eq!(partition_name(20_414), "check_results_p20251122");
        assert_eq!(partition_day("check_results_default"), None);
    }
}
