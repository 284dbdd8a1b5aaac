//! `pingtower-bench dashboard`: how fast the web overview answers with many monitors.
//!
//! Builds the real router over a SQLite store in a temporary folder, with `--monitors` HTTP
//! monitors in one tenant (a few DOWN and DEGRADED), the last `--hours` of their results at 60 s
//! folded into rollups as the stats role does, then asks for the overview (first page,
//! filtered by status, searched by name) and a monitor page, `--requests` times each, and
//! prints the server time per page (p50, p95, max) and the size of the HTML.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use pingtower_core::{CheckResult, CheckStatus, MonitorStatus, Timestamp};
use pingtower_engine::stats::{StatsConfig, fold_once};
use rand::{Rng, SeedableRng};
use std::time::Instant;
use tower::ServiceExt;

pub struct Options {
    pub monitors: usize,
    pub hours: i64,
    pub requests: usize,
}

async fn call(router: &axum::Router, path: &str, token: &str) -> anyhow::Result<(f64, usize)> {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())?;
    let t = Instant::now();
    let res = router.clone().oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
    Ok((ms, body.len()))
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let events = format!("sqlite://{}", dir.path().join("events.db").display());
    let app = crate::app::build(dir.path(), &events).await?;
    let (router, store) = (app.router.clone(), app.store.clone());

    // The owner, through the API; the monitors, in bulk.
    let setup = Request::post("/api/v1/setup")
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({"email": "bench@example.test", "password": "bench-password"})
                .to_string(),
        ))?;
    let res = router.clone().oneshot(setup).await?;
    anyhow::ensure!(res.status() == StatusCode::CREATED, "setup failed");
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
    let token = body["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token"))?
        .to_owned();
    let tenant = store
        .list_tenants()
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no tenant"))?
        .id;
    let now = pingtower_engine::now();
    let started = Instant::now();
    let mut monitors = Vec::with_capacity(opts.monitors);
    let mut i = 0;
    while i < opts.monitors {
        let chunk: Vec<_> = (i..(i + 5_000).min(opts.monitors))
            .map(|i| crate::bench_monitor("http://127.0.0.1:18080/t/", i, 60))
            .collect();
        monitors.extend(store.create_monitors(tenant, &chunk, now).await?);
        i += chunk.len();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (i, m) in monitors.iter().enumerate() {
        let status = match i % 100 {
            0 => MonitorStatus::Down,
            1 => MonitorStatus::Degraded,
            _ => MonitorStatus::Up,
        };
        if status != MonitorStatus::Up || i % 10 == 0 {
            store.set_monitor_status(tenant, m.id, status, now).await?;
        }
    }
    let from = now.as_millis() - opts.hours * 3_600_000;
    let mut results = Vec::with_capacity(2_000);
    let mut written = 0u64;
    for minute in 0..opts.hours * 60 {
        for m in &monitors {
            results.push(CheckResult {
                monitor_id: m.id,
                monitor_seq: m.seq,
                tenant_id: tenant,
                region: "default".into(),
                checked_at: Timestamp::from_millis(from + minute * 60_000 + (m.seq % 60) * 1000),
                status: CheckStatus::Up,
                latency_us: rng.random_range(20_000..90_000),
                reason: None,
                details: None,
            });
            if results.len() == 2_000 {
                written += store.insert_results(&results).await?;
                results.clear();
            }
        }
    }
    written += store.insert_results(&results).await?;
    let stats = StatsConfig {
        fold_span: std::time::Duration::from_secs(24 * 3600),
        ..StatsConfig::default()
    };
    fold_once(store.as_ref(), &stats, now).await?;
    let seeded_s = started.elapsed().as_secs_f64();

    let one = monitors
        .get(monitors.len() / 2)
        .map(|m| m.id.to_string())
        .unwrap_or_default();
    let pages = [
        ("overview", "/".to_owned()),
        ("overview_down", "/?status=down".to_owned()),
        ("overview_search", "/?q=m77".to_owned()),
        ("monitor", format!("/monitors/{one}")),
        ("incidents", "/incidents".to_owned()),
    ];
    let mut report = serde_json::Map::new();
    for (name, path) in pages {
        // One request to warm the caches, then the measured ones.
        call(&router, &path, &token).await?;
        let mut times = Vec::with_capacity(opts.requests);
        let mut bytes = 0;
        for _ in 0..opts.requests {
            let (ms, len) = call(&router, &path, &token).await?;
            times.push(ms);
            bytes = len;
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        report.insert(
            name.into(),
            serde_json::json!({
                "path": path,
                "ms": {"p50": at(0.5), "p95": at(0.95), "max": at(1.0)},
                "html_bytes": bytes,
            }),
        );
    }
    drop(app);
    store.close().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "monitors": opts.monitors,
            "results_written": written,
            "seed_s": seeded_s,
            "requests_per_page": opts.requests,
            "pages": report,
            "goal_overview_ms": 200,
        }))?
    );
    Ok(())
}
