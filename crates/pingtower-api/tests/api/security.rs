//! The findings of the attack in issue 15, each kept closed by a test that failed before its fix.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::json;

/// A server on `ip` answering every request with a body that must not leak.
async fn secret_server(ip: &str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "instance-secret-token" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_channel_test_does_not_reach_a_blocked_network_or_show_what_it_read() {
    // 127.0.0.1 stands in for a cloud metadata service; 127.0.0.2 is an allowed server that
    // redirects there.
    let api = Api::with_blocklist("127.0.0.1/32, ::1/128").await;
    let owner = api.setup("owner@x.test").await;
    let secret = secret_server("127.0.0.1").await;
    let redirector = {
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to = format!("http://{secret}/latest");
        let app = axum::Router::new().fallback(move || {
            let to = to.clone();
            async move { (StatusCode::FOUND, [("location", to)], "") }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    };
    for (name, channel) in [
        (
            "direct",
            json!({"kind": "webhook", "url": format!("http://{secret}/")}),
        ),
        (
            "by name",
            json!({"kind": "webhook", "url": format!("http://localhost:{}/", secret.port())}),
        ),
        (
            "redirect",
            json!({"kind": "webhook", "url": format!("http://{redirector}/")}),
        ),
        (
            "slack",
            json!({"kind": "slack", "url": format!("http://{secret}/services/x")}),
        ),
        (
            "pagerduty",
            json!({"kind": "pagerduty", "routing_key": "k", "base_url": format!("http://{secret}")}),
        ),
    ] {
        let mut body = channel.clone();
        body["name"] = json!(name);
        let ch = api.post("/api/v1/channels", Some(&owner), body).await;
        assert_eq!(ch.status, StatusCode::CREATED, "{}", ch.body);
        let r = api
            .post(
                &format!("/api/v1/channels/{}/test", ch.id()),
                Some(&owner),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
        assert_eq!(r.body["ok"], false, "{name}: {}", r.body);
        let answer = r.body["answer"].as_str().unwrap();
        assert!(
            !answer.contains("instance-secret-token"),
            "{name}: {answer}"
        );
        assert!(
            answer.contains("blocked: ") || answer.contains("do not follow redirects"),
            "{name}: {answer}"
        );
    }
}
