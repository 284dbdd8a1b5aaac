//! `/metrics`: the scrape token, and per-monitor series only where the operator wants them.

use crate::harness::Api;
use axum::http::{Method, StatusCode};
use pingtower_api::MetricsAccess;
use pingtower_core::{CheckResult, CheckStatus, MonitorId, TenantId, Timestamp};
use pingtower_engine::monitor_metrics::MonitorMetrics;

const TOKEN: &str = "scrape-0123456789abcdef";

/// A server with `access` whose process has seen one result of a monitor; returns the monitor's
/// and its tenant's ids.
async fn api_with_a_monitor(access: MetricsAccess) -> (Api, String, String) {
    let api = Api::with_metrics(access).await;
    let series = MonitorMetrics::register(&api.metrics);
    let (monitor, tenant) = (MonitorId::new(), TenantId::new());
    series.observe(&CheckResult {
        monitor_id: monitor,
        monitor_seq: 1,
        tenant_id: tenant,
        region: "test".into(),
        checked_at: Timestamp::from_millis(0),
        status: CheckStatus::Up,
        latency_us: 1_000,
        reason: None,
        details: Some(serde_json::json!({"cert": {"expires_at": "2030-01-01T00:00:00Z"}})),
    });
    (api, monitor.to_string(), tenant.to_string())
}

async fn scrape(api: &Api, authorization: Option<&str>) -> crate::harness::Resp {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    api.request(Method::GET, "/metrics", None, &headers, None)
        .await
}

fn text(r: &crate::harness::Resp) -> &str {
    r.body.as_str().unwrap_or_default()
}

#[tokio::test]
async fn with_a_token_metrics_needs_it_and_shows_monitors_only_when_enabled() {
    let (api, monitor, tenant) = api_with_a_monitor(MetricsAccess::new(Some(TOKEN), true)).await;
    let bearer = format!("Bearer {TOKEN}");

    // Without the token, or with another one: 401 problem with a Bearer challenge.
    for authorization in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(&bearer[..bearer.len() - 1]),
        Some("Basic c2NyYXBlOnNjcmFwZQ=="),
        Some(TOKEN),
    ] {
        let r = scrape(&api, authorization).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {r:?}"
        );
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{r:?}"
        );
        assert_eq!(r.body["status"], 401, "{r:?}");
        let leaked = r.body.to_string();
        assert!(!leaked.contains(&monitor) && !leaked.contains(&tenant));
    }

    // With it: the process's figures and every monitor's series.
    for authorization in [bearer.clone(), format!("bearer {TOKEN}")] {
        let r = scrape(&api, Some(&authorization)).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(
            r.header("content-type")
                .is_some_and(|v| v.starts_with("application/openmetrics-text")),
            "{r:?}"
        );
        let t = text(&r);
        assert!(t.contains("pingtower_build_info"), "{t}");
        assert!(
            t.contains(&format!(
                "pingtower_monitor_up{{monitor=\"{monitor}\",tenant=\"{tenant}\""
            )),
            "{t}"
        );
        assert!(
            t.contains("pingtower_monitor_cert_expiry_timestamp_seconds"),
            "{t}"
        );
    }

    // The token, but per-monitor series not enabled: the process's figures only.
    let (api, monitor, tenant) = api_with_a_monitor(MetricsAccess::new(Some(TOKEN), false)).await;
    let r = scrape(&api, Some(&bearer)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let t = text(&r);
    assert!(t.contains("pingtower_build_info"), "{t}");
    assert!(!t.contains("pingtower_monitor_"), "{t}");
    assert!(!t.contains(&monitor) && !t.contains(&tenant), "{t}");
    assert_eq!(
        scrape(&api, None).await.status,
        StatusCode::UNAUTHORIZED,
        "the token is still needed"
    );
}

#[tokio::test]
async fn without_a_token_anyone_gets_the_process_figures_and_no_monitor() {
    // As a fresh `pingtower serve` starts (and even if per-monitor series were asked for).
    for monitors in [false, true] {
        let (api, monitor, tenant) = api_with_a_monitor(MetricsAccess::new(None, monitors)).await;
        for authorization in [None, Some("Bearer anything-at-all-123456")] {
            let r = scrape(&api, authorization).await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            let t = text(&r);
            assert!(t.contains("pingtower_build_info"), "{t}");
            assert!(t.ends_with("# EOF\n"), "{t}");
            assert!(!t.contains("pingtower_monitor_"), "{t}");
            assert!(!t.contains(&monitor) && !t.contains(&tenant), "{t}");
        }
    }
}
