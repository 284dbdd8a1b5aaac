//! Statistics against the truth: figures answered from rollups (after folds, late and
//! duplicated deliveries, and compaction) match a brute-force computation over the raw results
//! of the same data: counts exactly, percentiles within the sketch's 1 % relative accuracy.
//! Runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_core::stats::{RELATIVE_ACCURACY, RollupLevel};
use pingtower_core::*;
use pingtower_engine::figures;
use pingtower_engine::stats::{StatsConfig, compact_once, fold_once};
use pingtower_store::{Store, StoreOptions};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

async fn monitors(store: &Arc<dyn Store>, n: usize) -> Vec<Monitor> {
    let t = store
        .create_tenant("acme", Timestamp::from_millis(0))
        .await
        .unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let new = NewMonitor {
            name: format!("m{i}"),
            kind: MonitorKind::Tcp,
            settings: Default::default(),
            interval_ms: 60_000,
            timeout_ms: 10_000,
            down_after: 1,
            up_after: 1,
            tags: vec![],
            enabled: true,
            push_token: None,
        };
        out.push(
            store
                .create_monitor(t.id, &new, Timestamp::from_millis(0))
                .await
                .unwrap(),
        );
    }
    out
}

/// The exact figures over `[from, to)`: (up, degraded, down, sorted latencies of non-DOWN).
fn brute(raw: &[CheckResult], seqs: &[i64], from: i64, to: i64) -> (u64, u64, u64, Vec<u64>) {
    let (mut up, mut deg, mut down, mut lat) = (0, 0, 0, Vec::new());
    for r in raw {
        let t = r.checked_at.as_millis();
        if !seqs.contains(&r.monitor_seq) || t < from || t >= to {
            continue;
        }
        match r.status {
            CheckStatus::Up => up += 1,
            CheckStatus::Degraded => deg += 1,
            CheckStatus::Down => {
                down += 1;
                continue;
            }
        }
        lat.push(r.latency_us as u64);
    }
    lat.sort_unstable();
    (up, deg, down, lat)
}

async fn accuracy(store: Arc<dyn Store>) {
    let ms = monitors(&store, 3).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Three days and a bit, ending "now" (a fixed instant; the figures take times as input).
    let now = RollupLevel::Day.floor(1_795_000_000_000) + 3 * DAY + 5 * HOUR + 17 * MIN + 4_321;
    let start = now - 3 * DAY - 5 * HOUR;
    let mut raw = Vec::new();
    for (k, m) in ms.iter().enumerate() {
        let interval = [60_000, 37_000, 90_000][k];
        let mut t = start + rng.random_range(0..interval);
        while t < now {
            let roll: f64 = rng.random();
            let status = if roll < 0.03 {
                CheckStatus::Down
            } else if roll < 0.08 {
                CheckStatus::Degraded
            } else {
                CheckStatus::Up
            };
            // Long-tailed latencies: mostly tens of ms, sometimes seconds.
            let base: f64 = rng.random_range(8.0f64..11.0);
            let tail = if rng.random::<f64>() < 0.02 { 4.0 } else { 0.0 };
            let latency_us = (base + tail + rng.random::<f64>()).exp() as i64;
            raw.push(CheckResult {
                monitor_id: m.id,
                monitor_seq: m.seq,
                tenant_id: m.tenant_id,
                region: "default".into(),
                checked_at: Timestamp::from_millis(t),
                status,
                latency_us,
                reason: (status != CheckStatus::Up).then(|| "slow".into()),
                details: Some(serde_json::json!({"timings": {"total_us": latency_us}})),
            });
            t += interval + rng.random_range(-500..500);
        }
    }
    let config = StatsConfig {
        lateness: Duration::from_secs(120),
        compact_after: Duration::from_secs(2 * 3_600),
        ..StatsConfig::default()
    };
    // Deliveries in time order, a day at a time, folding and compacting as a server would;
    // every 50th result is held back and delivered a day late, every 20th delivered twice.
    let mut held = Vec::new();
    for day in 0..4 {
        let late = std::mem::take(&mut held);
        let until = (start + (day + 1) * DAY).min(now);
        let mut batch: Vec<CheckResult> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let t = r.checked_at.as_millis();
            if t < start + day * DAY || t >= until {
                continue;
            }
            if i % 50 == 0 {
                held.push(r.clone());
                continue;
            }
            batch.push(r.clone());
            if i % 20 == 0 {
                batch.push(r.clone());
            }
        }
        for part in batch.chunks(700) {
            store.insert_results(part).await.unwrap();
        }
        store.insert_results(&late).await.unwrap();
        let at = Timestamp::from_millis(until);
        fold_once(store.as_ref(), &config, at).await.unwrap();
        compact_once(store.as_ref(), &config, at).await.unwrap();
    }
    // The last day's held-back results, and a compacted result delivered once more.
    held.push(raw[1].clone());
    store.insert_results(&held).await.unwrap();
    fold_once(store.as_ref(), &config, Timestamp::from_millis(now))
        .await
        .unwrap();
    assert!(
        store.fold_watermark().await.unwrap().unwrap().as_millis() >= now - 3 * MIN,
        "folded up to a few minutes before now"
    );

    let all: Vec<i64> = ms.iter().map(|m| m.seq).collect();
    let windows = [
        (now - HOUR, now),
        (now - DAY, now),
        (start, now),
        (start + 7 * HOUR + 13 * MIN + 999, now - 2 * DAY + 11_111),
        (start + DAY, start + 2 * DAY),
    ];
    for seqs in [vec![all[0]], vec![all[1]], all.clone()] {
        for (from, to) in windows {
            let got = figures::total(store.as_ref(), &seqs, from, to)
                .await
                .unwrap();
            let (up, deg, down, lat) = brute(&raw, &seqs, from, to);
            let what = format!("monitors {seqs:?}, window {from}..{to}");
            assert_eq!((got.up, got.degraded, got.down), (up, deg, down), "{what}");
            assert_eq!(got.latency.count(), lat.len() as u64, "{what}");
            assert_eq!(got.latency.min(), lat.first().copied(), "{what}");
            assert_eq!(got.latency.max(), lat.last().copied(), "{what}");
            for q in [0.5, 0.9, 0.95, 0.99] {
                let exact = lat[(q * (lat.len() - 1) as f64).floor() as usize] as f64;
                let est = got.latency.quantile(q).unwrap();
                assert!(
                    (est - exact).abs() <= exact * RELATIVE_ACCURACY,
                    "{what}: p{q}: {est} vs exact {exact}"
                );
            }
            let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64;
            assert!((got.latency.mean().unwrap() - mean).abs() < 1e-6, "{what}");
            let exact_uptime = (up + deg) as f64 * 100.0 / (up + deg + down) as f64;
            assert!((got.uptime_percent().unwrap() - exact_uptime).abs() < 1e-9);
        }
    }
    // Daily bars add up to the same.
    let bars = figures::daily(store.as_ref(), &all, 4, now).await.unwrap();
    assert_eq!(bars.len(), 4);
    for (day, r) in &bars {
        let (up, deg, down, _) = brute(&raw, &all, *day, (*day + DAY).min(now));
        assert_eq!((r.up, r.degraded, r.down), (up, deg, down), "day {day}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_match_brute_force_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    accuracy(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_match_brute_force_on_postgres() {
    use sqlx::Connection;
    let base = std::env::var("PINGTOWER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("pingtower_test_stats_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    let outcome = tokio::spawn(async move {
        let store = pingtower_store::open(url.as_str(), &StoreOptions::default())
            .await
            .unwrap();
        accuracy(store.clone()).await;
        store.close().await;
    })
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
