//! Statistics storage shared by both backends: folding results into rollups, the late-result
//! path, compaction of older raw results into hourly chunks, and the tiers' pruning.
//!
//! Invariants (see also the migration `0002_stats.sql`):
//! - Every stored result is counted in the rollups exactly once. The fold reads the results of
//!   `[folded, until)` and advances `folded` in one transaction that holds the `folded` row
//!   exclusively; result writers hold it shared, so a writer either commits before the fold
//!   reads or sees the new watermark, and then lists what it inserted below the watermark in
//!   `late_results`, which the next fold counts. A result that was refused as a duplicate is
//!   never listed; one whose twin already sits in a chunk is found there and dropped.
//! - A raw result is in exactly one of `check_results` (recent) and `result_chunks` (older),
//!   moved by compaction in the same transaction that deletes the rows it read.

/// What one fold did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldReport {
    /// Results of the window counted.
    pub folded: u64,
    /// Late results counted (and late duplicates dropped).
    pub late: u64,
    /// Everything checked before this is in the rollups.
    pub watermark: pingtower_core::Timestamp,
    /// Whether the watermark reached the `until` asked for.
    pub caught_up: bool,
}

/// Most rows bound in one statement (well under SQLite's and PostgreSQL's limits).
pub(crate) const ROWS_PER_STATEMENT: usize = 500;
/// Late results counted per fold.
pub(crate) const LATE_PER_FOLD: i64 = 10_000;
/// Monitors compacted per transaction.
pub(crate) const MONITORS_PER_COMPACTION: usize = 100;
/// Most of the timeline one compaction transaction covers (an hour: what one pass finds in
/// steady state, and a bound on a backlog's transactions).
pub(crate) const COMPACTION_SPAN_MS: i64 = 3_600_000;

macro_rules! stats_impl {
    (
        $store:ty,
        $db:ty,
        share = $share:literal,
        update = $update:literal,
        read_committed = $rc:literal,
        snapshot = $snap:literal
    ) => {
        use pingtower_core::chunk::{self, ChunkEntry};
        use pingtower_core::stats::{
            Attribution, ResultPoint, Rollup, RollupLevel, RollupRow, decode_minutes,
            encode_minutes, fold,
        };
        use pingtower_core::{CheckResult, CheckStatus, Timestamp};
        use sqlx::Row;
        use std::collections::BTreeMap;
        use $crate::stats::{
            COMPACTION_SPAN_MS, FoldReport, LATE_PER_FOLD, MONITORS_PER_COMPACTION,
            ROWS_PER_STATEMENT,
        };
        use $crate::{Result, StoreError};

        type Tx<'c> = sqlx::Transaction<'c, $db>;

        const WATERMARK_SHARED: &str =
            concat!("SELECT value FROM stats_state WHERE name = 'folded'", $share);
        const WATERMARK_EXCLUSIVE: &str =
            concat!("SELECT value FROM stats_state WHERE name = 'folded'", $update);

        /// Up to `$2` monitors with rows in `check_results`, after `$1`, in order.
        const NEXT_MONITORS: &str = "WITH RECURSIVE s(seq, n) AS (SELECT (SELECT \
             MIN(monitor_seq) FROM check_results WHERE monitor_seq > $1), 1 UNION ALL SELECT \
             (SELECT MIN(monitor_seq) FROM check_results WHERE monitor_seq > s.seq), s.n + 1 \
             FROM s WHERE s.seq IS NOT NULL AND s.n < $2) SELECT seq FROM s WHERE seq IS NOT NULL";

        fn status_of(code: i16) -> Result<CheckStatus> {
            CheckStatus::from_code(code)
                .ok_or_else(|| StoreError::corrupt(format!("result status code {code}")))
        }

        fn corrupt(e: pingtower_core::codec::DecodeError) -> StoreError {
            StoreError::corrupt(e)
        }

        /// Appends `IN (…)` over `seqs` to a query.
        fn push_in(q: &mut sqlx::QueryBuilder<$db>, seqs: &[i64]) {
            q.push(" IN (");
            let mut list = q.separated(", ");
            for s in seqs {
                list.push_bind(*s);
            }
            list.push_unseparated(")");
        }

        impl $store {
            /// A write transaction at READ COMMITTED whatever the server's default: the fold's
            /// read must see every writer that held the watermark before it.
            pub(crate) async fn begin_write(&self) -> Result<Tx<'_>> {
                let mut tx = self.writer().begin().await?;
                if !$rc.is_empty() {
                    sqlx::query($rc).execute(&mut *tx).await?;
                }
                Ok(tx)
            }

            /// A read transaction that sees one snapshot across statements (recent rows and
            /// chunks read together, whatever compaction commits meanwhile).
            async fn begin_snapshot(&self) -> Result<Tx<'_>> {
                let mut tx = self.reader().begin().await?;
                if !$snap.is_empty() {
                    sqlx::query($snap).execute(&mut *tx).await?;
                }
                Ok(tx)
            }

            /// The fold watermark as a result writer sees it, inside its transaction (shared:
            /// a fold in progress finishes first).
            pub(crate) async fn folded_shared(tx: &mut Tx<'_>) -> Result<i64> {
                Ok(sqlx::query_scalar(WATERMARK_SHARED)
                    .fetch_one(&mut **tx)
                    .await?)
            }

            /// Inserts results that are older than the watermark, and lists those actually
            /// inserted (not duplicates) for the next fold.
            pub(crate) async fn insert_late(
                tx: &mut Tx<'_>,
                results: &[&CheckResult],
            ) -> Result<u64> {
                let mut written = 0;
                for part in results.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO check_results (monitor_seq, checked_at, region, status, \
                         latency_us, reason, details) ",
                    );
                    q.push_values(part, |mut row, r| {
                        row.push_bind(r.monitor_seq)
                            .push_bind(r.checked_at.as_millis())
                            .push_bind(r.region.clone())
                            .push_bind(r.status.code())
                            .push_bind(r.latency_us)
                            .push_bind(r.reason.clone())
                            .push_bind(r.details.as_ref().map(|d| d.to_string()));
                    });
                    q.push(" ON CONFLICT DO NOTHING RETURNING monitor_seq, checked_at, region");
                    let keys = q.build().fetch_all(&mut **tx).await?;
                    if keys.is_empty() {
                        continue;
                    }
                    written += keys.len() as u64;
                    let mut l = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO late_results (monitor_seq, checked_at, region) ",
                    );
                    let mut rows = Vec::with_capacity(keys.len());
                    for k in &keys {
                        rows.push((
                            k.try_get::<i64, _>(0)?,
                            k.try_get::<i64, _>(1)?,
                            k.try_get::<String, _>(2)?,
                        ));
                    }
                    l.push_values(rows, |mut row, (s, t, region)| {
                        row.push_bind(s).push_bind(t).push_bind(region);
                    });
                    l.push(" ON CONFLICT DO NOTHING");
                    l.build().execute(&mut **tx).await?;
                }
                Ok(written)
            }

            pub(crate) async fn chunk_of(
                tx: &mut Tx<'_>,
                seq: i64,
                hour: i64,
                region: &str,
            ) -> Result<Option<Vec<ChunkEntry>>> {
                let data: Option<Vec<u8>> = sqlx::query_scalar(
                    "SELECT data FROM result_chunks WHERE monitor_seq = $1 AND hour = $2 AND \
                     region = $3",
                )
                .bind(seq)
                .bind(hour)
                .bind(region)
                .fetch_optional(&mut **tx)
                .await?;
                data.map(|d| chunk::decode(&d).map_err(corrupt)).transpose()
            }

            pub(crate) async fn stats_fold(
                &self,
                until: Timestamp,
                max_ms: i64,
                attribution: &dyn Attribution,
            ) -> Result<FoldReport> {
                let until = RollupLevel::Minute.floor(until.as_millis());
                let mut tx = self.begin_write().await?;
                let wm: i64 = sqlx::query_scalar(WATERMARK_EXCLUSIVE)
                    .fetch_one(&mut *tx)
                    .await?;
                let start = if wm < 0 {
                    let oldest: Option<i64> =
                        sqlx::query_scalar("SELECT MIN(checked_at) FROM check_results")
                            .fetch_one(&mut *tx)
                            .await?;
                    oldest.map_or(until, |t| RollupLevel::Minute.floor(t).min(until))
                } else {
                    wm
                };
                let end = until.min(start.saturating_add(max_ms.max(60_000))).max(start);

                let rows = sqlx::query(
                    "SELECT r.monitor_seq, r.checked_at, r.status, r.latency_us FROM \
                     check_results r WHERE r.monitor_seq IN (SELECT seq FROM monitors) AND \
                     r.checked_at >= $1 AND r.checked_at < $2",
                )
                .bind(start)
                .bind(end)
                .fetch_all(&mut *tx)
                .await?;
                let mut points = Vec::with_capacity(rows.len());
                for r in &rows {
                    points.push(ResultPoint {
                        monitor_seq: r.try_get(0)?,
                        checked_at: r.try_get(1)?,
                        status: status_of(r.try_get(2)?)?,
                        latency_us: r.try_get(3)?,
                    });
                }
                let folded = points.len() as u64;

                // Results that arrived after their minute was folded.
                let late_rows = sqlx::query(
                    "SELECT l.monitor_seq, l.checked_at, l.region, r.status, r.latency_us FROM \
                     late_results l LEFT JOIN check_results r ON r.monitor_seq = \
                     l.monitor_seq AND r.checked_at = l.checked_at AND r.region = l.region \
                     ORDER BY l.monitor_seq, l.checked_at LIMIT $1",
                )
                .bind(LATE_PER_FOLD)
                .fetch_all(&mut *tx)
                .await?;
                let mut late = 0u64;
                for r in &late_rows {
                    let seq: i64 = r.try_get(0)?;
                    let at: i64 = r.try_get(1)?;
                    let region: String = r.try_get(2)?;
                    let status: Option<i16> = r.try_get(3)?;
                    sqlx::query(
                        "DELETE FROM late_results WHERE monitor_seq = $1 AND checked_at = $2 \
                         AND region = $3",
                    )
                    .bind(seq)
                    .bind(at)
                    .bind(&region)
                    .execute(&mut *tx)
                    .await?;
                    // Pruned or deleted since: nothing to count.
                    let Some(status) = status else { continue };
                    let hour = RollupLevel::Hour.floor(at);
                    let twin = Self::chunk_of(&mut tx, seq, hour, &region)
                        .await?
                        .is_some_and(|c| c.iter().any(|e| e.checked_at == at));
                    late += 1;
                    if twin {
                        // Delivered again after its first copy was compacted: counted already.
                        sqlx::query(
                            "DELETE FROM check_results WHERE monitor_seq = $1 AND checked_at = \
                             $2 AND region = $3",
                        )
                        .bind(seq)
                        .bind(at)
                        .bind(&region)
                        .execute(&mut *tx)
                        .await?;
                        continue;
                    }
                    points.push(ResultPoint {
                        monitor_seq: seq,
                        checked_at: at,
                        status: status_of(status)?,
                        latency_us: r.try_get(4)?,
                    });
                }

                let (minutes, coarse): (BTreeMap<_, _>, BTreeMap<_, _>) =
                    fold(&points, attribution)
                        .into_iter()
                        .partition(|(k, _)| k.1 == RollupLevel::Minute);
                let merged = Self::merge_rollups(&mut tx, coarse).await?;
                Self::put_rollups(&mut tx, &merged).await?;
                Self::merge_minutes(&mut tx, minutes).await?;
                sqlx::query("UPDATE stats_state SET value = $1 WHERE name = 'folded'")
                    .bind(end)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(FoldReport {
                    folded,
                    late,
                    watermark: Timestamp::from_millis(end),
                    caught_up: end >= until,
                })
            }

            /// Adds minute deltas to the stored hours that hold them (`minute_rollups`, one
            /// row per monitor and hour), and writes those hours back.
            pub(crate) async fn merge_minutes(
                tx: &mut Tx<'_>,
                deltas: BTreeMap<(i64, RollupLevel, i64), Rollup>,
            ) -> Result<()> {
                let mut hours: BTreeMap<(i64, i64), BTreeMap<i64, Rollup>> = BTreeMap::new();
                for ((seq, _, bucket), r) in deltas {
                    hours
                        .entry((seq, RollupLevel::Hour.floor(bucket)))
                        .or_default()
                        .insert(bucket, r);
                }
                let (Some(lo), Some(hi)) = (
                    hours.keys().map(|k| k.1).min(),
                    hours.keys().map(|k| k.1).max(),
                ) else {
                    return Ok(());
                };
                let mut seqs: Vec<i64> = hours.keys().map(|k| k.0).collect();
                seqs.dedup();
                for part in seqs.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT monitor_seq, hour, data FROM minute_rollups WHERE hour >= ",
                    );
                    q.push_bind(lo)
                        .push(" AND hour <= ")
                        .push_bind(hi)
                        .push(" AND monitor_seq");
                    push_in(&mut q, part);
                    for r in q.build().fetch_all(&mut **tx).await? {
                        let (seq, hour): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                        if let Some(minutes) = hours.get_mut(&(seq, hour)) {
                            let stored: Vec<u8> = r.try_get(2)?;
                            for (bucket, rollup) in
                                decode_minutes(hour, &stored).map_err(corrupt)?
                            {
                                minutes.entry(bucket).or_default().merge(&rollup);
                            }
                        }
                    }
                }
                let rows: Vec<_> = hours.iter().collect();
                for part in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO minute_rollups (monitor_seq, hour, data) ",
                    );
                    q.push_values(part, |mut row, ((seq, hour), minutes)| {
                        row.push_bind(*seq)
                            .push_bind(*hour)
                            .push_bind(encode_minutes(minutes.iter().map(|(b, r)| (*b, r))));
                    });
                    q.push(" ON CONFLICT (monitor_seq, hour) DO UPDATE SET data = excluded.data");
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// Adds stored rollups to the deltas of the same buckets (hours and days).
            pub(crate) async fn merge_rollups(
                tx: &mut Tx<'_>,
                mut deltas: BTreeMap<(i64, RollupLevel, i64), Rollup>,
            ) -> Result<BTreeMap<(i64, RollupLevel, i64), Rollup>> {
                for level in RollupLevel::ALL {
                    let keys: Vec<(i64, i64)> = deltas
                        .keys()
                        .filter(|k| k.1 == level)
                        .map(|k| (k.0, k.2))
                        .collect();
                    let (Some(lo), Some(hi)) = (
                        keys.iter().map(|k| k.1).min(),
                        keys.iter().map(|k| k.1).max(),
                    ) else {
                        continue;
                    };
                    let mut seqs: Vec<i64> = keys.iter().map(|k| k.0).collect();
                    seqs.sort_unstable();
                    seqs.dedup();
                    for part in seqs.chunks(ROWS_PER_STATEMENT) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "SELECT monitor_seq, bucket, data FROM rollups WHERE level = ",
                        );
                        q.push_bind(level.code())
                            .push(" AND bucket >= ")
                            .push_bind(lo)
                            .push(" AND bucket <= ")
                            .push_bind(hi)
                            .push(" AND monitor_seq");
                        push_in(&mut q, part);
                        for r in q.build().fetch_all(&mut **tx).await? {
                            let key = (r.try_get::<i64, _>(0)?, level, r.try_get::<i64, _>(1)?);
                            if let Some(d) = deltas.get_mut(&key) {
                                let stored: Vec<u8> = r.try_get(2)?;
                                d.merge(&Rollup::decode(&stored).map_err(corrupt)?);
                            }
                        }
                    }
                }
                Ok(deltas)
            }

            pub(crate) async fn put_rollups(
                tx: &mut Tx<'_>,
                rows: &BTreeMap<(i64, RollupLevel, i64), Rollup>,
            ) -> Result<()> {
                let rows: Vec<_> = rows.iter().collect();
                for part in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO rollups (monitor_seq, level, bucket, data) ",
                    );
                    q.push_values(part, |mut row, ((seq, level, bucket), r)| {
                        row.push_bind(*seq)
                            .push_bind(level.code())
                            .push_bind(*bucket)
                            .push_bind(r.encode());
                    });
                    q.push(
                        " ON CONFLICT (monitor_seq, level, bucket) DO UPDATE SET data = \
                         excluded.data",
                    );
                    q.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            pub(crate) async fn stats_watermark(&self) -> Result<Option<Timestamp>> {
                let wm: i64 = sqlx::query_scalar(
                    "SELECT value FROM stats_state WHERE name = 'folded'",
                )
                .fetch_one(self.reader())
                .await?;
                Ok((wm >= 0).then(|| Timestamp::from_millis(wm)))
            }

            pub(crate) async fn stats_rollups(
                &self,
                seqs: &[i64],
                level: RollupLevel,
                from: i64,
                to: i64,
            ) -> Result<Vec<RollupRow>> {
                let mut out = Vec::new();
                if level == RollupLevel::Minute {
                    return self.stats_minutes(seqs, from, to).await;
                }
                for part in seqs.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT monitor_seq, bucket, data FROM rollups WHERE level = ",
                    );
                    q.push_bind(level.code())
                        .push(" AND bucket >= ")
                        .push_bind(from)
                        .push(" AND bucket < ")
                        .push_bind(to)
                        .push(" AND monitor_seq");
                    push_in(&mut q, part);
                    for r in q.build().fetch_all(self.reader()).await? {
                        let data: Vec<u8> = r.try_get(2)?;
                        out.push(RollupRow {
                            monitor_seq: r.try_get(0)?,
                            level,
                            bucket: r.try_get(1)?,
                            rollup: Rollup::decode(&data).map_err(corrupt)?,
                        });
                    }
                }
                Ok(out)
            }

            /// Minute rollups starting in `[from, to)`, out of the hours that hold them.
            async fn stats_minutes(
                &self,
                seqs: &[i64],
                from: i64,
                to: i64,
            ) -> Result<Vec<RollupRow>> {
                let mut out = Vec::new();
                for part in seqs.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT monitor_seq, hour, data FROM minute_rollups WHERE hour >= ",
                    );
                    q.push_bind(RollupLevel::Hour.floor(from))
                        .push(" AND hour < ")
                        .push_bind(to)
                        .push(" AND monitor_seq");
                    push_in(&mut q, part);
                    for r in q.build().fetch_all(self.reader()).await? {
                        let (seq, hour): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                        let data: Vec<u8> = r.try_get(2)?;
                        for (bucket, rollup) in decode_minutes(hour, &data).map_err(corrupt)? {
                            if bucket >= from && bucket < to {
                                out.push(RollupRow {
                                    monitor_seq: seq,
                                    level: RollupLevel::Minute,
                                    bucket,
                                    rollup,
                                });
                            }
                        }
                    }
                }
                Ok(out)
            }

            pub(crate) async fn stats_points(
                &self,
                seqs: &[i64],
                from: i64,
                to: i64,
            ) -> Result<Vec<ResultPoint>> {
                let mut out = Vec::new();
                let mut tx = self.begin_snapshot().await?;
                for part in seqs.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT monitor_seq, checked_at, status, latency_us FROM check_results \
                         WHERE checked_at >= ",
                    );
                    q.push_bind(from)
                        .push(" AND checked_at < ")
                        .push_bind(to)
                        .push(" AND monitor_seq");
                    push_in(&mut q, part);
                    for r in q.build().fetch_all(&mut *tx).await? {
                        out.push(ResultPoint {
                            monitor_seq: r.try_get(0)?,
                            checked_at: r.try_get(1)?,
                            status: status_of(r.try_get(2)?)?,
                            latency_us: r.try_get(3)?,
                        });
                    }
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT monitor_seq, data FROM result_chunks WHERE hour >= ",
                    );
                    q.push_bind(RollupLevel::Hour.floor(from))
                        .push(" AND hour < ")
                        .push_bind(to)
                        .push(" AND monitor_seq");
                    push_in(&mut q, part);
                    for r in q.build().fetch_all(&mut *tx).await? {
                        let seq: i64 = r.try_get(0)?;
                        let data: Vec<u8> = r.try_get(1)?;
                        for e in chunk::decode(&data).map_err(corrupt)? {
                            if e.checked_at >= from && e.checked_at < to {
                                out.push(ResultPoint {
                                    monitor_seq: seq,
                                    checked_at: e.checked_at,
                                    status: e.status,
                                    latency_us: e.latency_us,
                                });
                            }
                        }
                    }
                }
                tx.commit().await?;
                Ok(out)
            }

            /// The newest compacted results of one monitor before `before` (time, region),
            /// newest first, at least `want` of them when there are so many.
            pub(crate) async fn chunked_results(
                &self,
                seq: i64,
                before: Option<(i64, String)>,
                want: usize,
            ) -> Result<Vec<(String, ChunkEntry)>> {
                let mut out = Vec::new();
                let mut hour_below = before.as_ref().map_or(i64::MAX, |(t, _)| {
                    RollupLevel::Hour.floor(*t).saturating_add(1)
                });
                while out.len() < want {
                    // The chunks of the next 8 hours that have any, every region of each.
                    let rows = sqlx::query(
                        "SELECT hour, region, data FROM result_chunks WHERE monitor_seq = $1 \
                         AND hour < $2 AND hour >= (SELECT MIN(h.hour) FROM (SELECT DISTINCT \
                         hour FROM result_chunks WHERE monitor_seq = $1 AND hour < $2 ORDER BY \
                         hour DESC LIMIT 8) AS h) ORDER BY hour DESC",
                    )
                    .bind(seq)
                    .bind(hour_below)
                    .fetch_all(self.reader())
                    .await?;
                    if rows.is_empty() {
                        break;
                    }
                    for r in &rows {
                        hour_below = hour_below.min(r.try_get(0)?);
                        let region: String = r.try_get(1)?;
                        let data: Vec<u8> = r.try_get(2)?;
                        for e in chunk::decode(&data).map_err(corrupt)? {
                            let keep = match &before {
                                None => true,
                                Some((t, reg)) => {
                                    e.checked_at < *t || (e.checked_at == *t && region < *reg)
                                }
                            };
                            if keep {
                                out.push((region.clone(), e));
                            }
                        }
                    }
                }
                Ok(out)
            }

            /// Moves raw results checked before `before` (whole hours, and only folded ones)
            /// into hourly chunks, a group of monitors per transaction.
            pub(crate) async fn stats_compact(&self, before: Timestamp) -> Result<u64> {
                let mut moved = 0u64;
                let mut after = i64::MIN;
                loop {
                    // The next monitors with recent rows, a group at a time: one index
                    // lookup per monitor (a loose index scan, which neither engine does for
                    // DISTINCT by itself), whatever the number of rows each has.
                    let seqs: Vec<i64> = sqlx::query_scalar(NEXT_MONITORS)
                        .bind(after)
                        .bind(MONITORS_PER_COMPACTION as i64)
                        .fetch_all(self.reader())
                        .await?;
                    let Some(last) = seqs.last().copied() else {
                        break;
                    };
                    after = last;
                    // The group's backlog an hour at a time, oldest first: a first
                    // compaction after weeks without one (an upgrade, a long outage of the
                    // stats role) holds the lock and memory for an hour of 100 monitors,
                    // never for all of it. `from` only grows, so rows left behind (late
                    // results not folded yet) cannot hold the loop.
                    let mut from = i64::MIN;
                    loop {
                        let mut tx = self.begin_write().await?;
                        let wm: i64 = sqlx::query_scalar(WATERMARK_EXCLUSIVE)
                            .fetch_one(&mut *tx)
                            .await?;
                        let cutoff = RollupLevel::Hour
                            .floor(before.as_millis())
                            .min(RollupLevel::Hour.floor(wm));
                        if cutoff <= 0 {
                            return Ok(moved);
                        }
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "SELECT MIN(checked_at) FROM check_results WHERE monitor_seq",
                        );
                        push_in(&mut q, &seqs);
                        q.push(" AND checked_at >= ");
                        q.push_bind(from);
                        q.push(" AND checked_at < ");
                        q.push_bind(cutoff);
                        let oldest: Option<i64> =
                            q.build_query_scalar().fetch_one(&mut *tx).await?;
                        let Some(oldest) = oldest else {
                            tx.commit().await?;
                            break;
                        };
                        let to = cutoff.min(RollupLevel::Hour.floor(oldest) + COMPACTION_SPAN_MS);
                        moved += Self::compact_group(&mut tx, &seqs, from, to).await?;
                        tx.commit().await?;
                        if to >= cutoff {
                            break;
                        }
                        from = to;
                    }
                    if seqs.len() < MONITORS_PER_COMPACTION {
                        break;
                    }
                }
                Ok(moved)
            }

            /// Moves the folded raw results of `seqs` checked in `[from, to)` into their
            /// hours' chunks (merged with a chunk already there) and deletes exactly the rows
            /// it read, in a few statements for the whole group.
            pub(crate) async fn compact_group(
                tx: &mut Tx<'_>,
                seqs: &[i64],
                from: i64,
                to: i64,
            ) -> Result<u64> {
                const NOT_LATE: &str = " AND NOT EXISTS (SELECT 1 FROM late_results l WHERE \
                     l.monitor_seq = r.monitor_seq AND l.checked_at = r.checked_at AND \
                     l.region = r.region)";
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT r.monitor_seq, r.checked_at, r.region, r.status, r.latency_us, \
                     r.reason, r.details FROM check_results r WHERE r.monitor_seq",
                );
                push_in(&mut q, seqs);
                q.push(" AND r.checked_at >= ");
                q.push_bind(from);
                q.push(" AND r.checked_at < ");
                q.push_bind(to);
                q.push(NOT_LATE);
                let rows = q.build().fetch_all(&mut **tx).await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                // (monitor, hour, region) -> entries, in key order.
                let mut groups: BTreeMap<(i64, i64, String), Vec<ChunkEntry>> = BTreeMap::new();
                for r in &rows {
                    let at: i64 = r.try_get(1)?;
                    groups
                        .entry((r.try_get(0)?, RollupLevel::Hour.floor(at), r.try_get(2)?))
                        .or_default()
                        .push(ChunkEntry {
                            checked_at: at,
                            status: status_of(r.try_get(3)?)?,
                            latency_us: r.try_get(4)?,
                            reason: r.try_get(5)?,
                            details: r.try_get(6)?,
                        });
                }
                // Chunks already stored for those hours (late results compacted after
                // their hour was): merged, stored entries first, so on equal times the
                // stored one is kept. Only the monitors and hours being written are read:
                // one late result of last week must not read every chunk since then.
                let mut with_rows: Vec<i64> = groups.keys().map(|k| k.0).collect();
                with_rows.dedup();
                let mut hours: Vec<i64> = groups.keys().map(|k| k.1).collect();
                hours.sort_unstable();
                hours.dedup();
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT monitor_seq, hour, region, data FROM result_chunks WHERE monitor_seq",
                );
                push_in(&mut q, &with_rows);
                q.push(" AND hour");
                push_in(&mut q, &hours);
                for r in q.build().fetch_all(&mut **tx).await? {
                    let key: (i64, i64, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    if let Some(entries) = groups.get_mut(&key) {
                        let data: Vec<u8> = r.try_get(3)?;
                        let mut existing = chunk::decode(&data).map_err(corrupt)?;
                        existing.append(entries);
                        *entries = existing;
                    }
                }
                let encoded: Vec<((i64, i64, String), Vec<u8>)> = groups
                    .into_iter()
                    .map(|(key, mut entries)| {
                        let data = chunk::encode(&mut entries);
                        (key, data)
                    })
                    .collect();
                for part in encoded.chunks(ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO result_chunks (monitor_seq, hour, region, data) ",
                    );
                    q.push_values(part, |mut row, ((seq, hour, region), data)| {
                        row.push_bind(*seq)
                            .push_bind(*hour)
                            .push_bind(region.as_str())
                            .push_bind(data.as_slice());
                    });
                    q.push(
                        " ON CONFLICT (monitor_seq, hour, region) DO UPDATE SET data = \
                         excluded.data",
                    );
                    q.build().execute(&mut **tx).await?;
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "DELETE FROM check_results AS r WHERE r.monitor_seq",
                );
                push_in(&mut q, seqs);
                q.push(" AND r.checked_at >= ");
                q.push_bind(from);
                q.push(" AND r.checked_at < ");
                q.push_bind(to);
                q.push(NOT_LATE);
                q.build().execute(&mut **tx).await?;
                Ok(rows.len() as u64)
            }

            /// Deletes the rollups of `level` before `cutoff` (`None`: the chunks of raw
            /// results), a monitor at a time; everything of monitors that no longer exist
            /// goes too. What is stored by the hour (chunks, minutes) goes by whole hours
            /// before `cutoff`'s hour.
            pub(crate) async fn stats_prune(
                &self,
                level: Option<RollupLevel>,
                cutoff: Timestamp,
            ) -> Result<u64> {
                let hour = RollupLevel::Hour.floor(cutoff.as_millis());
                let (table, time_col, level_cond, cutoff) = match level {
                    None => ("result_chunks", "hour", String::new(), hour),
                    Some(RollupLevel::Minute) => ("minute_rollups", "hour", String::new(), hour),
                    Some(l) => (
                        "rollups",
                        "bucket",
                        format!(" AND level = {}", l.code()),
                        cutoff.as_millis(),
                    ),
                };
                let mut removed = 0;
                let mut after = i64::MIN;
                loop {
                    // Table and column names are constants of this function; no input.
                    let next: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT MIN(monitor_seq) FROM {table} WHERE monitor_seq > $1"
                    )))
                    .bind(after)
                    .fetch_one(self.reader())
                    .await?;
                    let Some(seq) = next else { break };
                    after = seq;
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT seq FROM monitors WHERE seq = $1")
                            .bind(seq)
                            .fetch_optional(self.reader())
                            .await?;
                    let statements = match (exists, level) {
                        (Some(_), _) => vec![format!(
                            "DELETE FROM {table} WHERE monitor_seq = $1 AND {time_col} < \
                             $2{level_cond}"
                        )],
                        // A deleted monitor's rollups go at every level at once.
                        (None, Some(_)) => ["rollups", "minute_rollups"]
                            .map(|t| format!("DELETE FROM {t} WHERE monitor_seq = $1 AND $2 = $2"))
                            .into(),
                        (None, None) => vec![format!(
                            "DELETE FROM {table} WHERE monitor_seq = $1 AND $2 = $2"
                        )],
                    };
                    for sql in statements {
                        removed += sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(seq)
                            .bind(cutoff)
                            .execute(self.writer())
                            .await?
                            .rows_affected();
                    }
                }
                if removed > 0 {
                    self.reclaim(table).await?;
                }
                Ok(removed)
            }
        }
    };
}

pub(crate) use stats_impl;
