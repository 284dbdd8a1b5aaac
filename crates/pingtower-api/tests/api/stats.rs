//! Statistics over HTTP: figures from folded rollups and the unfolded tail, SLOs, daily bars,
//! tenant and tag reports, CSV, bad windows, and another tenant's monitor.

use crate::harness::{Api, http_monitor};
use axum::http::{Method, StatusCode};
use pingtower_core::*;
use serde_json::{Value, json};

const MIN: i64 = 60_000;

/// 120 results, one a minute up to now: every 10th DOWN, latencies 1..120 ms. Half are folded.
async fn results_for(api: &Api, id: &str) -> i64 {
    let monitor = api.monitor(id).await;
    let (monitor_id, tenant_id) = (monitor.id, monitor.tenant_id);
    let now = chrono::Utc::now().timestamp_millis();
    let results: Vec<CheckResult> = (1..=120)
        .map(|i| {
            let status = if i % 10 == 0 {
                CheckStatus::Down
            } else {
                CheckStatus::Up
            };
            CheckResult {
                monitor_id,
                monitor_seq: monitor.seq,
                tenant_id,
                region: "default".into(),
                checked_at: Timestamp::from_millis(now - i * MIN + 500),
                status,
                latency_us: i * 1_000,
                reason: None,
                details: None,
            }
        })
        .collect();
    api.store.insert_results(&results).await.unwrap();
    let config = pingtower_engine::stats::StatsConfig::default();
    let half = Timestamp::from_millis(now - 60 * MIN);
    pingtower_engine::stats::fold_once(api.store.as_ref(), &config, half)
        .await
        .unwrap();
    let inc = api
        .store
        .open_incident(
            tenant_id,
            monitor_id,
            1,
            Some("down"),
            Timestamp::from_millis(now - 30 * MIN),
        )
        .await
        .unwrap()
        .unwrap();
    api.store
        .resolve_incident(
            tenant_id,
            inc.id,
            None,
            Timestamp::from_millis(now - 20 * MIN),
        )
        .await
        .unwrap();
    now
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn a_monitors_figures_over_windows() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    let id = api
        .post("/api/v1/monitors", Some(&token), http_monitor("api"))
        .await
        .id();
    results_for(&api, &id).await;

    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/stats?window=24h&slo=99"),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["checks"]["total"], 120);
    assert_eq!(b["checks"]["down"], 12);
    assert_eq!(f(&b["uptime_percent"]), 90.0);
    // Latencies of the 108 UP results: 1..120 ms without the multiples of 10.
    let mut lat: Vec<f64> = (1..=120).filter(|i| i % 10 != 0).map(f64::from).collect();
    lat.sort_by(f64::total_cmp);
    for (k, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        let exact = lat[(q * (lat.len() - 1) as f64).floor() as usize];
        let got = f(&b["latency_ms"][k]);
        assert!(
            (got - exact).abs() <= exact * 0.01 + 0.001,
            "{k}: {got} vs {exact}"
        );
    }
    assert_eq!(f(&b["latency_ms"]["min"]), 1.0);
    assert_eq!(f(&b["latency_ms"]["max"]), 119.0);
    assert_eq!(b["incidents"], 1);
    assert_eq!(f(&b["downtime_seconds"]), 600.0);
    assert_eq!(f(&b["mttr_seconds"]), 600.0);
    assert_eq!(b["slo"]["target_percent"], 99.0);
    assert_eq!(b["slo"]["met"], false);
    assert!(f(&b["slo"]["remaining_percent"]) < 0.0);
    assert_eq!(b["name"], "api");

    // The last hour only: half the results.
    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/stats?window=1h"),
            Some(&token),
        )
        .await;
    let checks = r.body["checks"]["total"].as_u64().unwrap();
    assert!((59..=61).contains(&checks), "{checks}");
    assert!(r.body["slo"].is_null());

    // Any range by its ends.
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::minutes(200);
    let path = format!(
        "/api/v1/monitors/{id}/stats?from={}&to={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let r = api.get(&path.replace('+', "%2B"), Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["checks"]["total"], 120);

    // CSV, by parameter or by Accept.
    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/stats?window=24h&format=csv"),
            Some(&token),
        )
        .await;
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = r.body.as_str().unwrap().to_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("monitor_id,name,from,to,uptime_percent,checks"));
    assert!(
        lines[1].contains(",api,") && lines[1].contains(",90,120,108,0,12,0,"),
        "{}",
        lines[1]
    );
    let r = api
        .request(
            Method::GET,
            &format!("/api/v1/monitors/{id}/stats"),
            Some(&token),
            &[("accept", "text/csv")],
            None,
        )
        .await;
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));

    // Daily bars: today holds the results.
    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/stats/daily?days=3"),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let days = r.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    let total: u64 = days
        .iter()
        .map(|d| d["checks"]["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 120);
    assert_eq!(
        days[2]["date"],
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    );
    assert!(days.iter().any(|d| d["status"] == "down"));
    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/stats/daily?days=2&format=csv"),
            Some(&token),
        )
        .await;
    assert_eq!(r.body.as_str().unwrap().lines().count(), 3);
}

#[tokio::test]
async fn bad_windows_and_options_are_named() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    let id = api
        .post("/api/v1/monitors", Some(&token), http_monitor("api"))
        .await
        .id();
    for (query, fields) in [
        ("window=abc", vec!["window"]),
        ("window=0h", vec!["window"]),
        ("slo=200", vec!["slo"]),
        ("slo=abc", vec!["slo"]),
        ("format=xml&window=2x", vec!["format", "window"]),
        ("from=2026-01-01T00:00:00Z", vec!["to"]),
        ("from=yesterday&to=2026-01-01T00:00:00Z", vec!["from"]),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            vec!["from"],
        ),
        ("window=1h&from=2026-01-01T00:00:00Z", vec!["window"]),
        (
            "to=2999-01-01T00:00:00Z&from=2026-01-01T00:00:00Z",
            vec!["to"],
        ),
        ("tag=prod", vec!["tag"]),
    ] {
        let r = api
            .get(
                &format!("/api/v1/monitors/{id}/stats?{query}"),
                Some(&token),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            r.body
        );
        assert_eq!(r.error_fields(), fields, "{query}");
    }
    for query in ["days=0", "days=400", "format=pdf"] {
        let r = api
            .get(
                &format!("/api/v1/monitors/{id}/stats/daily?{query}"),
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
    let r = api
        .get("/api/v1/monitors/not-an-id/stats", Some(&token))
        .await;
    assert!(r.status.is_client_error());
    let r = api.get(&format!("/api/v1/monitors/{id}/stats"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tenant_and_tag_reports_stay_in_their_tenant() {
    let api = Api::new().await;
    let root = api.setup("root@x.test").await;
    let a = api
        .post("/api/v1/monitors", Some(&root), http_monitor("api"))
        .await
        .id();
    let mut staging = http_monitor("web");
    staging["tags"] = json!(["staging"]);
    let w = api
        .post("/api/v1/monitors", Some(&root), staging)
        .await
        .id();
    results_for(&api, &a).await;
    results_for(&api, &w).await;

    let r = api
        .get("/api/v1/stats?window=24h&slo=95", Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["checks"]["total"], 240);
    assert_eq!(r.body["monitors"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["incidents"], 2);
    assert_eq!(r.body["slo"]["met"], false);
    let r = api
        .get("/api/v1/stats?window=24h&tag=staging", Some(&root))
        .await;
    let monitors = r.body["monitors"].as_array().unwrap();
    assert_eq!(monitors.len(), 1);
    assert_eq!(monitors[0]["name"], "web");
    assert_eq!(r.body["tag"], "staging");
    assert_eq!(r.body["checks"]["total"], 120);
    let r = api.get("/api/v1/stats?format=csv", Some(&root)).await;
    let text = r.body.as_str().unwrap().to_owned();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().last().unwrap().starts_with(",(all),"));
    let r = api
        .get("/api/v1/stats/daily?days=7&tag=prod", Some(&root))
        .await;
    let total: u64 = r.body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["checks"]["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 120);

    // Another tenant sees none of it.
    let b = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await
        .id();
    let r = api
        .get_in(&format!("/api/v1/monitors/{a}/stats"), &root, &b)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get_in(&format!("/api/v1/monitors/{a}/stats/daily"), &root, &b)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get_in("/api/v1/stats?window=24h", &root, &b).await;
    assert_eq!(r.body["checks"]["total"], 0);
    assert_eq!(r.body["incidents"], 0);
    assert!(r.body["uptime_percent"].is_null());
    assert!(r.body["monitors"].as_array().unwrap().is_empty());
    let r = api.get_in("/api/v1/stats/daily", &root, &b).await;
    assert!(
        r.body["days"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "no_data")
    );
}
