//! `pingtower-bench events`: what event analytics costs, through the real HTTP endpoint.
//!
//! Starts the real API router in a child process (`events-server`), over an events store on
//! SQLite (a file in a temporary folder) or PostgreSQL (a fresh database, dropped after), and
//! sends `--events` events in batches of `--batch` from `--senders` connections, with the shape
//! of issue 16: 20 event names, `distinct_id` from 100,000 users, properties `plan` (3 values),
//! `country` (50) and `amount` (a number), timestamps spread over the last `--days` days. Then
//! prints JSON: events per second per core of the server process (its CPU time from
//! /proc/<pid>/stat, until every event is packed into blocks), bytes on disk per stored event,
//! and the time of the queries (count by hour for one name, unique users by day, count
//! by day for one country broken down by plan, a 3-step funnel over 7 days), each asked
//! `--repeat` times over windows a minute apart, so that no answer comes from the query cache:
//! p50 and max, or why it was refused.

use anyhow::Context;
use rand::{Rng, SeedableRng};
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// In what order the events' timestamps come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrival {
    /// As events happen: each batch carries the next slice of the span, oldest first (a live
    /// stream, or a replay of history, sent faster than real time).
    Ordered,
    /// Each event anywhere in the span, at random: the worst case for the per-minute and
    /// per-hour counts (a batch touches a different minute with nearly every event).
    Random,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Options {
    pub backend: Backend,
    pub arrival: Arrival,
    pub events: u64,
    pub days: i64,
    pub batch: usize,
    pub senders: usize,
    pub repeat: usize,
    pub postgres_url: String,
}

/// The child: the router on a loopback port, printed as `LISTEN <addr>`, until killed.
pub async fn serve(dir: std::path::PathBuf, events_url: String) -> anyhow::Result<()> {
    let app = crate::app::build(&dir, &events_url).await?;
    // Packing, as the `analytics` role does it.
    tokio::spawn(pingtower_analytics::maintenance::run(
        app.events.clone(),
        None,
        std::future::pending(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("LISTEN {}", listener.local_addr()?);
    axum::serve(listener, app.router).await?;
    Ok(())
}

/// CPU time (user + system) of process `pid`, in milliseconds.
fn cpu_ms_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, a)| a)
        .context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
        + fields.get(12).context("stime")?.parse::<f64>()?;
    Ok(ticks * 10.0)
}

/// CPU time of each PostgreSQL server process on the machine (backends, autovacuum, WAL
/// writer, checkpointer), in milliseconds by pid: the database's share of ingesting, which the
/// PingTower process's figure leaves out. Only a server on this machine is seen (none: empty).
fn postgres_cpu_ms() -> std::collections::HashMap<u32, f64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| Some((pid, cpu_ms_of(pid).ok()?)))
        .collect()
}

/// The database's CPU between two readings of [`postgres_cpu_ms`]: what each process still
/// there spent since the first (all of it, for one started since). A process that exited in
/// between is missed, so this is a lower bound (the server's pool keeps its connections).
fn postgres_cpu_between(
    before: &std::collections::HashMap<u32, f64>,
    after: &std::collections::HashMap<u32, f64>,
) -> f64 {
    after
        .iter()
        .map(|(pid, ms)| ms - before.get(pid).copied().unwrap_or(0.0))
        .filter(|ms| *ms > 0.0)
        .sum()
}

/// One batch of events as JSON text, with timestamps in `[from, from + span)`.
fn batch_json(rng: &mut rand::rngs::StdRng, n: usize, from_ms: i64, span_ms: i64) -> String {
    const PLANS: [&str; 3] = ["free", "pro", "team"];
    let mut out = String::with_capacity(n * 160);
    out.push_str("{\"events\":[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let name = rng.random_range(0..20);
        let user = rng.random_range(0..100_000);
        let plan = PLANS[rng.random_range(0..3)];
        let country = rng.random_range(0..50);
        let amount = f64::from(rng.random_range(0..100_000)) / 100.0;
        let ts = from_ms + rng.random_range(0..span_ms.max(1));
        out.push_str(&format!(
            "{{\"name\":\"event_{name}\",\"timestamp\":{ts},\"distinct_id\":\"user-{user}\",\
             \"properties\":{{\"plan\":\"{plan}\",\"country\":\"C{country:02}\",\"amount\":{amount}}}}}"
        ));
    }
    out.push_str("]}");
    out
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn json(r: reqwest::Response) -> anyhow::Result<(u16, serde_json::Value)> {
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or_default()))
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    // reqwest is built with rustls and no provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let mut pg_db = None;
    let events_url = match opts.backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("events.db").display()),
        Backend::Postgres => {
            use sqlx::Connection;
            // Named like the tests' databases, so that scripts/test.sh drops one a killed run left.
            let name = format!("pingtower_test_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&opts.postgres_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut admin)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            let mut url = url::Url::parse(&opts.postgres_url)?;
            url.set_path(&name);
            pg_db = Some((admin, name));
            url.to_string()
        }
    };
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["events-server", "--dir"])
        .arg(dir.path())
        .args(["--events-url", &events_url])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().context("child stdout")?;
    let child = Child(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .strip_prefix("LISTEN ")
        .context("the server did not start")?
        .trim()
        .to_owned();
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder().build()?;
    let (status, setup) = json(
        http.post(format!("{base}/api/v1/setup"))
            .json(&serde_json::json!({"email": "bench@example.test", "password": "bench-password"}))
            .send()
            .await?,
    )
    .await?;
    anyhow::ensure!(status == 201, "setup: {status} {setup}");
    let token = setup["token"].as_str().context("token")?.to_owned();
    let (status, key) = json(
        http.post(format!("{base}/api/v1/api-keys"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "bench", "role": "ingest"}))
            .send()
            .await?,
    )
    .await?;
    anyhow::ensure!(status == 201, "api key: {status} {key}");
    let key = key["key"].as_str().context("key")?.to_owned();

    // Ingestion.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let span_ms = opts.days * 86_400_000;
    let batches = opts.events.div_ceil(opts.batch as u64);
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_ms_of(pid)?;
    let db_cpu0 = postgres_cpu_ms();
    let started = Instant::now();
    let mut senders = Vec::new();
    for s in 0..opts.senders {
        let (http, base, key, next, accepted) = (
            http.clone(),
            base.clone(),
            key.clone(),
            next.clone(),
            accepted.clone(),
        );
        let (batch, arrival) = (opts.batch, opts.arrival);
        senders.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(s as u64);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                let (from, span) = match arrival {
                    Arrival::Random => (now_ms - span_ms, span_ms - 1),
                    Arrival::Ordered => {
                        let slice = span_ms / batches as i64;
                        (now_ms - span_ms + k as i64 * slice, slice)
                    }
                };
                let body = batch_json(&mut rng, batch, from, span);
                let (status, answer) = json(
                    http.post(format!("{base}/api/v1/events"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?,
                )
                .await?;
                anyhow::ensure!(status == 202, "ingest: {status} {answer}");
                accepted.fetch_add(answer["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }));
    }
    for s in senders {
        s.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The server's CPU counts until every event is packed into blocks.
    let staged_query = "SELECT count(*) FROM analytics_events";
    loop {
        let staged: i64 = match &pg_db {
            None => {
                use sqlx::Connection;
                let mut c = sqlx::SqliteConnection::connect(&events_url).await?;
                sqlx::query_scalar(staged_query).fetch_one(&mut c).await?
            }
            Some(_) => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&events_url).await?;
                sqlx::query_scalar(staged_query).fetch_one(&mut c).await?
            }
        };
        if staged == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let packed_after = started.elapsed().as_secs_f64();
    let cpu_s = (cpu_ms_of(pid)? - cpu0) / 1000.0;
    let db_cpu_s = pg_db
        .as_ref()
        .map(|_| postgres_cpu_between(&db_cpu0, &postgres_cpu_ms()) / 1000.0);
    let stored = accepted.load(Ordering::Relaxed);

    // Bytes on disk.
    let bytes: u64 = match &mut pg_db {
        None => ["events.db", "events.db-wal", "events.db-shm"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum(),
        Some(_) => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&events_url).await?;
            let n: i64 = sqlx::query_scalar(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c \
                 WHERE c.relname LIKE 'analytics\\_%' AND c.relkind = 'r'",
            )
            .fetch_one(&mut c)
            .await?;
            u64::try_from(n).unwrap_or(0)
        }
    };

    // Where the bytes are: tables (with their indexes) and SQLite's free pages.
    let by_table: Vec<(String, i64)> = {
        use sqlx::Connection;
        match &pg_db {
            None => {
                let mut c = sqlx::SqliteConnection::connect(&events_url).await?;
                sqlx::query_as(
                    "SELECT CASE WHEN name LIKE 'sqlite_autoindex_%' THEN substr(name, 19) ELSE name END, \
                     SUM(pgsize) FROM dbstat GROUP BY 1 ORDER BY 2 DESC",
                )
                .fetch_all(&mut c)
                .await?
            }
            Some(_) => {
                let mut c = sqlx::PgConnection::connect(&events_url).await?;
                sqlx::query_as(
                    "SELECT c.relname::TEXT, pg_total_relation_size(c.oid)::BIGINT FROM pg_class c \
                     WHERE c.relname LIKE 'analytics\\_%' AND c.relkind = 'r' ORDER BY 2 DESC",
                )
                .fetch_all(&mut c)
                .await?
            }
        }
    };
    let by_table: serde_json::Map<String, serde_json::Value> = by_table
        .into_iter()
        .map(|(table, bytes)| (table, bytes.into()))
        .collect();

    // Queries.
    let queries = [
        (
            "count_by_hour_one_name_30d",
            "query",
            serde_json::json!({"metric": "count", "bucket": "hour", "range": format!("{}d", opts.days),
                "filters": [{"property": "name", "op": "eq", "value": "event_3"}]}),
        ),
        (
            "unique_users_by_day_30d",
            "query",
            serde_json::json!({"metric": "unique", "bucket": "day", "range": format!("{}d", opts.days)}),
        ),
        (
            "count_by_day_one_country_by_plan_30d",
            "query",
            serde_json::json!({"metric": "count", "bucket": "day", "range": format!("{}d", opts.days), "breakdown": "plan",
                "filters": [{"property": "country", "op": "eq", "value": "C07"}]}),
        ),
        (
            "funnel_3_steps_7d",
            "funnel",
            serde_json::json!({"steps": [{"name": "event_0"}, {"name": "event_1"}, {"name": "event_2"}],
                "window": "1d", "range": "7d"}),
        ),
    ];
    let mut timings = serde_json::Map::new();
    for (label, path, body) in queries {
        let mut ms = Vec::new();
        let mut refused = None;
        for k in 0..opts.repeat.max(1) {
            // Each repeat asks for a window a minute earlier: the same work, a different
            // question, so the query cache answers none of them.
            let mut body = body.clone();
            if path == "query" {
                let to = chrono::Utc::now().timestamp_millis() - k as i64 * 60_000;
                body["from"] = (to - span_ms).into();
                body["to"] = to.into();
                if let Some(b) = body.as_object_mut() {
                    b.remove("range");
                }
            }
            let t = Instant::now();
            let (status, answer) = json(
                http.post(format!("{base}/api/v1/events/{path}"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?,
            )
            .await?;
            if status != 200 {
                refused = Some(format!("{status}: {}", answer["detail"]));
                break;
            }
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        timings.insert(
            label.into(),
            match refused {
                Some(why) => serde_json::json!({"refused": why}),
                None => serde_json::json!({
                    "p50_ms": ms[ms.len() / 2],
                    "max_ms": ms[ms.len() - 1],
                }),
            },
        );
    }
    drop(child);
    if let Some((mut admin, name)) = pg_db {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    let per_core = if cpu_s > 0.0 {
        stored as f64 / cpu_s
    } else {
        0.0
    };
    let bytes_per_event = if stored > 0 {
        bytes as f64 / stored as f64
    } else {
        0.0
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "backend": format!("{:?}", opts.backend).to_lowercase(),
            "arrival": format!("{:?}", opts.arrival).to_lowercase(),
            "events": stored,
            "batch": opts.batch,
            "senders": opts.senders,
            "ingest_seconds": elapsed,
            "ingest_events_per_second": stored as f64 / elapsed,
            "packed_after_seconds": packed_after,
            "server_cpu_seconds_until_packed": cpu_s,
            "ingest_events_per_cpu_second": per_core,
            "goal_events_per_cpu_second": 100_000,
            "ratio_to_goal": per_core / 100_000.0,
            "database_cpu_seconds_until_packed": db_cpu_s,
            "ingest_events_per_cpu_second_with_database":
                db_cpu_s.map(|d| stored as f64 / (cpu_s + d)),
            "bytes_on_disk": bytes,
            "bytes_per_event": bytes_per_event,
            "bytes_by_table": by_table,
            "goal_bytes_per_event": 32,
            "queries": timings,
        }))?
    );
    Ok(())
}
