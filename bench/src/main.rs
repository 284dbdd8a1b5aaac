//! PingTower's scheduling and checking benchmark.
//!
//! `run` builds the real pipeline in this process (SQLite store, in-process bus, scheduler,
//! worker with the real HTTP checker, result writer), gives it N monitors at interval I, lets
//! it warm up for one interval, then measures a window and prints JSON: scheduled and achieved
//! checks per second, schedule lag p50/p99/max, CPU-ms per 1,000 checks, peak RSS, and the
//! start-up figures (scheduler load time, time to create one more monitor at that size).
//! `--mode schedule` replaces the worker by a consumer that does no I/O: what scheduling costs.
//! `target` is a minimal HTTP server, run as a child process so its CPU is not counted.
//! All traffic stays on loopback.

mod app;
mod dashboard;
mod events;
mod storage;

/// The same allocator as the `pingtower` binary, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use pingtower_bus::{Bus, MemoryBus, SubscribeOptions, topics};
use pingtower_core::{MonitorKind, NewMonitor};
use pingtower_engine::scheduler::DueChecks;
use pingtower_engine::{
    Metrics, ResultWriter, Scheduler, SchedulerConfig, Worker, WorkerConfig, WriterConfig,
};
use pingtower_store::{Store, StoreOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Real HTTP checks against the target.
    Http,
    /// Scheduling only: due checks are taken and acknowledged, nothing is checked.
    Schedule,
}

#[derive(Subcommand)]
enum Command {
    Run {
        #[arg(long, default_value_t = 1000)]
        monitors: usize,
        #[arg(long, default_value_t = 15)]
        interval: u64,
        /// Measured window in seconds (after one interval of warm-up).
        #[arg(long, default_value_t = 60)]
        window: u64,
        #[arg(long, value_enum, default_value_t = Mode::Http)]
        mode: Mode,
        /// Base URL of an existing loopback target; the monitor's index is appended
        /// (e.g. http://127.0.0.1:18080/t/ for the peers' nginx). Default: a child `target`.
        #[arg(long)]
        target_url: Option<String>,
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
    },
    /// Create the monitors of a run (done in a child process).
    Seed {
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long)]
        monitors: usize,
        #[arg(long)]
        interval: u64,
        #[arg(long)]
        base: String,
    },
    /// Simulate days of results into a store and print what they cost on disk and how fast a
    /// 90-day stats query is.
    Storage {
        #[arg(long, value_enum, default_value_t = storage::Backend::Sqlite)]
        backend: storage::Backend,
        #[arg(long, default_value_t = 1000)]
        monitors: usize,
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// Seconds between checks of a monitor.
        #[arg(long, default_value_t = 60)]
        interval: i64,
        #[arg(
            long,
            env = "PINGTOWER_TEST_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        postgres_url: String,
    },
    /// Time the web overview and monitor page with many monitors.
    Dashboard {
        #[arg(long, default_value_t = 10_000)]
        monitors: usize,
        /// Hours of results (one a minute per monitor) behind the pages.
        #[arg(long, default_value_t = 2)]
        hours: i64,
        #[arg(long, default_value_t = 30)]
        requests: usize,
    },
    /// Ingest events through the real HTTP endpoint and time the queries over them.
    Events {
        #[arg(long, value_enum, default_value_t = events::Backend::Sqlite)]
        backend: events::Backend,
        /// `ordered`: timestamps in the order events happen; `random`: anywhere in the span.
        #[arg(long, value_enum, default_value_t = events::Arrival::Ordered)]
        arrival: events::Arrival,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Days the events' timestamps spread over (back from now).
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        senders: usize,
        /// Times each query is asked.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        #[arg(
            long,
            env = "PINGTOWER_TEST_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        postgres_url: String,
    },
    /// The server side of `events` (started by it).
    EventsServer {
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long)]
        events_url: String,
    },
    /// Serve HTTP 200 "ok" on the given loopback address until killed.
    Target {
        #[arg(long)]
        listen: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Target { listen } => rt.block_on(target(listen)),
        Command::Events {
            backend,
            arrival,
            events,
            days,
            batch,
            senders,
            repeat,
            postgres_url,
        } => {
            anyhow::ensure!(
                events > 0
                    && (1..=365).contains(&days)
                    && (1..=10_000).contains(&batch)
                    && senders > 0,
                "--events and --senders must be positive, --days 1 to 365, --batch 1 to 10000"
            );
            rt.block_on(events::run(events::Options {
                backend,
                arrival,
                events,
                days,
                batch,
                senders,
                repeat,
                postgres_url,
            }))
        }
        Command::EventsServer { dir, events_url } => rt.block_on(events::serve(dir, events_url)),
        Command::Dashboard {
            monitors,
            hours,
            requests,
        } => {
            anyhow::ensure!(
                monitors > 0 && (1..=48).contains(&hours) && requests > 0,
                "--monitors and --requests must be positive, --hours 1 to 48"
            );
            rt.block_on(dashboard::run(dashboard::Options {
                monitors,
                hours,
                requests,
            }))
        }
        Command::Storage {
            backend,
            monitors,
            days,
            interval,
            postgres_url,
        } => {
            anyhow::ensure!(
                monitors > 0 && days > 0 && (1..=3600).contains(&interval),
                "--monitors and --days must be positive, --interval 1 to 3600"
            );
            rt.block_on(storage::run(storage::Options {
                backend,
                monitors,
                days,
                interval,
                postgres_url,
            }))
        }
        Command::Seed {
            db,
            monitors,
            interval,
            base,
        } => rt.block_on(seed(db, monitors, interval, base)),
        Command::Run {
            monitors,
            interval,
            window,
            mode,
            target_url,
            concurrency,
        } => rt.block_on(run(
            monitors,
            interval,
            window,
            mode,
            target_url,
            concurrency,
        )),
    }
}

fn bench_monitor(base: &str, i: usize, interval: u64) -> NewMonitor {
    let interval_ms = i64::try_from(interval * 1000).unwrap_or(i64::MAX);
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), serde_json::json!(format!("{base}{i}")));
    NewMonitor {
        name: format!("m{i}"),
        kind: MonitorKind::Http,
        settings,
        interval_ms,
        timeout_ms: 10_000.min(interval_ms),
        down_after: 1,
        up_after: 1,
        tags: vec![],
        enabled: true,
        push_token: None,
    }
}

/// Creates a tenant and `n` monitors in the database at `db`, 10,000 per transaction.
async fn seed(db: std::path::PathBuf, n: usize, interval: u64, base: String) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", db.display());
    let store = pingtower_store::open(&url, &StoreOptions::default()).await?;
    let now = pingtower_engine::now();
    let tenant = store.create_tenant("bench", now).await?.id;
    let mut i = 0;
    while i < n {
        let chunk: Vec<_> = (i..(i + 10_000).min(n))
            .map(|i| bench_monitor(&base, i, interval))
            .collect();
        store.create_monitors(tenant, &chunk, now).await?;
        i += chunk.len();
    }
    store.close().await;
    Ok(())
}

async fn target(listen: String) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = listen.parse()?;
    if !addr.ip().is_loopback() {
        bail!("the target serves on loopback only");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
                .await;
        });
    }
}

/// CPU time (user + system) of this process, from /proc/self/stat, in milliseconds.
fn cpu_ms() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, a)| a)
        .context("malformed /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).context("utime")?.parse::<f64>()?
        + fields.get(12).context("stime")?.parse::<f64>()?;
    // USER_HZ is 100 on Linux.
    Ok(ticks * 10.0)
}

/// A memory figure of this process from /proc/self/status (`VmHWM` peak, `VmRSS` now), in MiB.
fn memory_mib(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .context("memory field")?;
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .context("memory value")?
        .parse()?;
    Ok(kb / 1024.0)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(
    n: usize,
    interval: u64,
    window: u64,
    mode: Mode,
    target_url: Option<String>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut _child = None;
    let base = match (&target_url, mode) {
        (Some(url), _) => url.clone(),
        (None, Mode::Schedule) => "http://127.0.0.1:9/t/".to_owned(),
        (None, Mode::Http) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let listen = format!("127.0.0.1:{port}");
            let child = std::process::Command::new(std::env::current_exe()?)
                .args(["target", "--listen", &listen])
                .spawn()?;
            _child = Some(ChildGuard(child));
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(&listen).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            format!("http://{listen}/t/")
        }
    };
    if !base.starts_with("http://127.")
        && !base.starts_with("http://[::1]")
        && !base.starts_with("http://localhost")
    {
        bail!("the target must be on loopback");
    }

    // The monitors are created by a child process, so that this one's memory is what a server
    // restarted on such a database holds, not what creating them cost.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.db");
    let url = format!("sqlite://{}", db.display());
    let started = Instant::now();
    let seeded = std::process::Command::new(std::env::current_exe()?)
        .args(["seed", "--db"])
        .arg(&db)
        .args([
            "--monitors",
            &n.to_string(),
            "--interval",
            &interval.to_string(),
            "--base",
            &base,
        ])
        .status()?;
    if !seeded.success() {
        bail!("creating the monitors failed");
    }
    let insert_s = started.elapsed().as_secs_f64();
    let store: Arc<dyn Store> = pingtower_store::open(&url, &StoreOptions::default()).await?;
    let tenant = store.list_tenants().await?.first().context("no tenant")?.id;
    let started = Instant::now();
    let extra = store
        .create_monitor(
            tenant,
            &bench_monitor(&base, n, interval),
            pingtower_engine::now(),
        )
        .await?;
    let create_one_ms = started.elapsed().as_secs_f64() * 1000.0;
    // That extra monitor would skew the counts; remove it again.
    store.delete_monitor(tenant, extra.id).await?;

    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let stop_writer = CancellationToken::new();
    let (writer, writer_task) = ResultWriter::spawn(
        store.clone(),
        bus.clone(),
        WriterConfig::default(),
        metrics.clone(),
        stop_writer.clone(),
    );

    let measuring = Arc::new(AtomicBool::new(false));
    let lags: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::new()));
    let checks = Arc::new(AtomicU64::new(0));
    let observe = {
        let (measuring, lags, checks) = (measuring.clone(), lags.clone(), checks.clone());
        Arc::new(move |lag: i64| {
            if measuring.load(Ordering::Relaxed) {
                checks.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut l) = lags.lock() {
                    l.push(lag);
                }
            }
        })
    };

    let load_started = Instant::now();
    let scheduler = Scheduler::new(
        store.clone(),
        bus.clone(),
        SchedulerConfig::default(),
        metrics.clone(),
    );
    let scheduler_task = tokio::spawn(scheduler.run(stop.clone()));
    // Wait until the scheduler holds every monitor (restart time).
    loop {
        let text = metrics.encode().unwrap_or_default();
        if text.contains(&format!("pingtower_scheduled_monitors {n}\n")) {
            break;
        }
        if load_started.elapsed() > Duration::from_secs(600) {
            bail!("the scheduler did not load the monitors");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let load_ms = load_started.elapsed().as_secs_f64() * 1000.0;

    let consumer = match mode {
        Mode::Http => {
            let checker = pingtower_checks::Checker::new().map_err(anyhow::Error::msg)?;
            let worker = Worker::new(
                store.clone(),
                bus.clone(),
                writer.clone(),
                checker,
                WorkerConfig {
                    concurrency,
                    region: "bench".into(),
                },
                metrics.clone(),
            )
            .with_lag_observer(observe);
            let stop = stop.clone();
            tokio::spawn(async move { worker.run(stop).await.map_err(anyhow::Error::from) })
        }
        Mode::Schedule => {
            let mut sub = bus
                .subscribe(
                    topics::CHECKS_DUE,
                    pingtower_engine::worker::WORKERS_GROUP,
                    SubscribeOptions {
                        prefetch: 1024,
                        max_deliveries: 5,
                        ephemeral: false,
                    },
                )
                .await?;
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let d = tokio::select! {
                        d = sub.next() => d,
                        () = stop.cancelled() => None,
                    };
                    let Some(d) = d else { break };
                    let now = pingtower_engine::now().as_millis();
                    if let Ok(batch) = d.message.json::<DueChecks>() {
                        for c in &batch.checks {
                            observe(now - c.due_at.as_millis());
                        }
                    }
                    d.ack();
                }
                Ok(())
            })
        }
    };
    drop(writer);

    tokio::time::sleep(Duration::from_secs(interval)).await;
    let cpu0 = cpu_ms()?;
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(window)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu = cpu_ms()? - cpu0;
    let elapsed = t0.elapsed().as_secs_f64();
    let rss_end = memory_mib("VmRSS:")?;

    stop.cancel();
    scheduler_task.await??;
    consumer.await??;
    stop_writer.cancel();
    writer_task.await?;

    let done = checks.load(Ordering::Relaxed) as f64;
    let mut lags = lags.lock().map(|l| l.clone()).unwrap_or_default();
    lags.sort_unstable();
    let report = serde_json::json!({
        "label": format!("pingtower {} N={n} I={interval}s", match mode { Mode::Http => "http", Mode::Schedule => "schedule-only" }),
        "monitors": n,
        "interval_s": interval,
        "window_s": elapsed,
        "scheduled_per_s": n as f64 / interval as f64,
        "achieved_per_s": done / elapsed,
        "lag_ms": {"p50": percentile(&lags, 0.5), "p99": percentile(&lags, 0.99), "max": lags.last().copied().unwrap_or(0)},
        "cpu_cores": cpu / 1000.0 / elapsed,
        "cpu_ms_per_1000_checks": if done > 0.0 { cpu / done * 1000.0 } else { 0.0 },
        "peak_rss_mib": memory_mib("VmHWM:")?,
        "rss_at_end_mib": rss_end,
        "bulk_insert_s": insert_s,
        "create_one_monitor_ms": create_one_ms,
        "scheduler_load_ms": load_ms,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
