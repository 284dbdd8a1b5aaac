//! `pingtower-bench storage`: what statistics cost on disk, and how fast a 90-day figure is.
//!
//! Simulates `--days` of `--monitors` HTTP monitors checked every `--interval` seconds into a
//! real store (SQLite in a temporary folder, or a fresh PostgreSQL database), hour by hour in
//! time order, through the same calls a server makes: results written in batches, folded into
//! rollups, compacted into hourly chunks and pruned by the default retention (raw 14 days,
//! minute rollups 30 days, hour rollups a year, day rollups for ever). Results look like the
//! HTTP checker's, details included. Then prints JSON: bytes on disk per stored raw result,
//! the size of each table and of the database, and the time of 90-day stats queries.

use anyhow::Context;
use pingtower_core::stats::RollupLevel;
use pingtower_core::{CheckResult, CheckStatus, Monitor, MonitorKind, NewMonitor, Timestamp};
use pingtower_engine::maintenance::{RetentionConfig, run_once};
use pingtower_engine::stats::{StatsConfig, compact_once, fold_once};
use pingtower_store::{Store, StoreOptions};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Instant;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Options {
    pub backend: Backend,
    pub monitors: usize,
    pub days: i64,
    pub interval: i64,
    pub postgres_url: String,
}

fn details(i: usize, latency_us: i64, status: u16) -> serde_json::Value {
    serde_json::json!({
        "http": {"status": status, "version": "HTTP/1.1", "url": format!("http://127.0.0.1:18080/t/{i}"),
                 "address": "127.0.0.1:18080", "redirects": 0, "body_bytes": 2, "body_truncated": false},
        "cert": null,
        "timings": {"dns_us": 0, "connect_us": latency_us / 5, "tls_us": null,
                    "ttfb_us": latency_us * 9 / 10, "total_us": latency_us},
        "assertions": [{"assertion": "status == 200", "passed": status == 200, "actual": status.to_string()}],
    })
}

async fn create_monitors(
    store: &dyn Store,
    n: usize,
    interval_ms: i64,
) -> anyhow::Result<Vec<Monitor>> {
    let tenant = store
        .create_tenant("bench", Timestamp::from_millis(0))
        .await?;
    let news: Vec<NewMonitor> = (0..n)
        .map(|i| {
            let mut settings = serde_json::Map::new();
            settings.insert(
                "url".into(),
                serde_json::json!(format!("http://127.0.0.1:18080/t/{i}")),
            );
            NewMonitor {
                name: format!("m{i}"),
                kind: MonitorKind::Http,
                settings,
                interval_ms,
                timeout_ms: 10_000,
                down_after: 1,
                up_after: 1,
                tags: vec![],
                enabled: true,
                push_token: None,
            }
        })
        .collect();
    Ok(store
        .create_monitors(tenant.id, &news, Timestamp::from_millis(0))
        .await?)
}

/// One hour of results of every monitor.
fn hour_of(
    monitors: &[Monitor],
    hour: i64,
    interval_ms: i64,
    rng: &mut impl Rng,
) -> Vec<CheckResult> {
    let mut out =
        Vec::with_capacity(monitors.len() * (HOUR / interval_ms) as usize + monitors.len());
    for (i, m) in monitors.iter().enumerate() {
        // A fixed phase per monitor, as the scheduler spreads them, and a little jitter.
        let phase = (i as i64 * 7_919) % interval_ms;
        let mut t = hour + phase;
        while t < hour + HOUR {
            let roll: f64 = rng.random();
            let (status, code) = if roll < 0.003 {
                (CheckStatus::Down, 503)
            } else if roll < 0.005 {
                (CheckStatus::Degraded, 200)
            } else {
                (CheckStatus::Up, 200)
            };
            let latency_us =
                (rng.random_range(10.0f64..10.8) + rng.random::<f64>() * 0.3).exp() as i64;
            out.push(CheckResult {
                monitor_id: m.id,
                monitor_seq: m.seq,
                tenant_id: m.tenant_id,
                region: "default".into(),
                checked_at: Timestamp::from_millis(t + rng.random_range(0..40)),
                status,
                latency_us,
                reason: match status {
                    CheckStatus::Up => None,
                    CheckStatus::Down => Some("HTTP 503".into()),
                    CheckStatus::Degraded => {
                        Some("degraded: `response_time < 100` (got 131.2)".into())
                    }
                },
                details: Some(details(i, latency_us, code)),
            });
            t += interval_ms;
        }
    }
    out
}

struct Sizes {
    raw_plain: i64,
    raw_chunks: i64,
    rollups: i64,
    database: i64,
}

async fn sizes(
    opts: &Options,
    url: &str,
    sqlite_file: Option<&std::path::Path>,
) -> anyhow::Result<Sizes> {
    match opts.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await?;
            let table = |name: &'static str| {
                let pool = pool.clone();
                async move {
                    sqlx::query_scalar::<_, Option<i64>>(
                        "SELECT SUM(pgsize) FROM dbstat WHERE name = $1",
                    )
                    .bind(name)
                    .fetch_one(&pool)
                    .await
                    .map(|v| v.unwrap_or(0))
                }
            };
            let s = Sizes {
                raw_plain: table("check_results").await?,
                raw_chunks: table("result_chunks").await?,
                rollups: table("rollups").await? + table("minute_rollups").await?,
                database: i64::try_from(std::fs::metadata(sqlite_file.context("no file")?)?.len())?,
            };
            pool.close().await;
            Ok(s)
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await?;
            sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
            let partitions: Option<i64> = sqlx::query_scalar(
                "SELECT (SUM(pg_total_relation_size(inhrelid)))::bigint FROM pg_inherits WHERE \
                 inhparent = 'check_results'::regclass",
            )
            .fetch_one(&pool)
            .await?;
            let one = |sql: &'static str| {
                let pool = pool.clone();
                async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
            };
            let s = Sizes {
                raw_plain: partitions.unwrap_or(0),
                raw_chunks: one("SELECT pg_total_relation_size('result_chunks')").await?,
                rollups: one("SELECT pg_total_relation_size('rollups') + \
                     pg_total_relation_size('minute_rollups')")
                .await?,
                database: one("SELECT pg_database_size(current_database())").await?,
            };
            pool.close().await;
            Ok(s)
        }
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite_file = dir.path().join("bench.db");
    let mut drop_db = None;
    let url = match opts.backend {
        Backend::Sqlite => format!("sqlite://{}", sqlite_file.display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let name = format!("pingtower_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&opts.postgres_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            // Commits do not wait for the WAL flush: the simulation measures storage and
            // query time, not write latency, and two months of results otherwise take hours
            // of fsync waits on a busy disk. What is stored is the same.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} SET synchronous_commit = off"
            )))
            .execute(&mut admin)
            .await?;
            let mut url = url::Url::parse(&opts.postgres_url)?;
            url.set_path(&name);
            drop_db = Some((admin, name));
            url.to_string()
        }
    };
    let outcome = simulate(&opts, &url, &sqlite_file).await;
    if let Some((mut admin, name)) = drop_db {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    let report = outcome?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn simulate(
    opts: &Options,
    url: &str,
    sqlite_file: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    let store: Arc<dyn Store> = pingtower_store::open(url, &StoreOptions::default()).await?;
    let interval_ms = opts.interval * 1000;
    let monitors = create_monitors(store.as_ref(), opts.monitors, interval_ms).await?;
    let end = RollupLevel::Day.floor(chrono::Utc::now().timestamp_millis());
    let start = end - opts.days * DAY;
    let stats = StatsConfig::default();
    let retention = RetentionConfig::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let started = Instant::now();
    let (mut simulated, mut write_s, mut fold_s, mut upkeep_s) = (0u64, 0f64, 0f64, 0f64);
    let mut hour = start;
    while hour < end {
        if (hour - start) % DAY == 0 {
            let t = Instant::now();
            run_once(store.as_ref(), &retention, Timestamp::from_millis(hour)).await?;
            upkeep_s += t.elapsed().as_secs_f64();
            eprintln!(
                "day {}/{}: {} results so far, {:.0} s",
                (hour - start) / DAY + 1,
                opts.days,
                simulated,
                started.elapsed().as_secs_f64()
            );
        }
        let results = hour_of(&monitors, hour, interval_ms, &mut rng);
        simulated += results.len() as u64;
        let t = Instant::now();
        // The writer's batch size.
        for batch in results.chunks(2_000) {
            store.insert_results(batch).await?;
        }
        write_s += t.elapsed().as_secs_f64();
        hour += HOUR;
        // What the stats role does over the hour: folds, then compaction.
        let now = Timestamp::from_millis(hour + 3 * 60_000);
        let t = Instant::now();
        fold_once(store.as_ref(), &stats, now).await?;
        fold_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        compact_once(store.as_ref(), &stats, now).await?;
        upkeep_s += t.elapsed().as_secs_f64();
    }
    run_once(store.as_ref(), &retention, Timestamp::from_millis(end)).await?;
    let simulate_s = started.elapsed().as_secs_f64();

    // What is stored now.
    let seqs: Vec<i64> = monitors.iter().map(|m| m.seq).collect();
    let raw_stored = store.result_points(&seqs, 0, i64::MAX).await?.len() as u64;
    let mut rollup_rows = serde_json::Map::new();
    for level in RollupLevel::ALL {
        let n = store.rollups(&seqs, level, 0, i64::MAX).await?.len();
        rollup_rows.insert(format!("{level:?}").to_lowercase(), n.into());
    }
    store.close().await;
    let sizes = sizes(opts, url, Some(sqlite_file)).await?;
    let store: Arc<dyn Store> = pingtower_store::open(url, &StoreOptions::default()).await?;

    // 90-day figures of one monitor (what a monitor page asks), and of every monitor at once.
    let window_from = RollupLevel::Hour.floor(end - 90 * DAY);
    let mut one = Vec::new();
    for k in 0..25 {
        let seq = seqs[k * 37 % seqs.len()];
        let t = Instant::now();
        let r =
            pingtower_engine::figures::total(store.as_ref(), &[seq], window_from, end - 1).await?;
        one.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.checks() > 0, "no figures for monitor {seq}");
    }
    one.sort_by(f64::total_cmp);
    let t = Instant::now();
    let all =
        pingtower_engine::figures::per_monitor(store.as_ref(), &seqs, window_from, end - 1).await?;
    let all_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(all.len() == seqs.len(), "figures for every monitor");
    let t = Instant::now();
    let bars = pingtower_engine::figures::daily(store.as_ref(), &seqs[..1], 90, end - 1).await?;
    let daily_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(bars.len() == 90);
    store.close().await;

    let raw_bytes = sizes.raw_plain + sizes.raw_chunks;
    let per_raw = raw_bytes as f64 / raw_stored.max(1) as f64;
    Ok(serde_json::json!({
        "backend": format!("{:?}", opts.backend).to_lowercase(),
        "monitors": opts.monitors,
        "days": opts.days,
        "interval_s": opts.interval,
        "results_simulated": simulated,
        "raw_results_stored": raw_stored,
        "raw_bytes": {"recent_rows": sizes.raw_plain, "chunks": sizes.raw_chunks},
        "bytes_per_raw_result": (per_raw * 10.0).round() / 10.0,
        "goal_bytes_per_raw_result": 40,
        "rollup_rows": rollup_rows,
        "rollup_bytes": sizes.rollups,
        "database_bytes": sizes.database,
        "database_mib": (sizes.database as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "query_90d_one_monitor_ms": {"p50": one[one.len() / 2], "max": one[one.len() - 1]},
        "goal_query_90d_ms": 50,
        "query_90d_all_monitors_ms": all_ms,
        "daily_bars_90d_ms": daily_ms,
        "simulate_s": {"total": simulate_s, "writes": write_s, "folds": fold_s, "upkeep": upkeep_s},
    }))
}
