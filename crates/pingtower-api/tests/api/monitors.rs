//! Monitors through the API: shapes, validation, concurrency, pagination, announcements.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use pingtower_bus::{SubscribeOptions, topics};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn create_read_update_and_delete_a_monitor() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    let mut changes = api
        .bus
        .subscribe(topics::CONFIG_CHANGED, "test", SubscribeOptions::default())
        .await
        .unwrap();

    let r = api
        .post("/api/v1/monitors", Some(&token), http_monitor("Public API"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.id();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/monitors/{id}").as_str())
    );
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["kind"], "http");
    assert_eq!(r.body["url"], "http://127.0.0.1:9/health");
    assert_eq!(r.body["interval_seconds"], 30);
    assert_eq!(r.body["assertions"], json!(["status == 200"]));
    assert_eq!(r.body["down_after"], 1);
    // The scheduler hears of it.
    let msg = tokio::time::timeout(Duration::from_secs(2), changes.next())
        .await
        .unwrap()
        .unwrap();
    let announced: serde_json::Value = serde_json::from_slice(&msg.message.payload).unwrap();
    assert_eq!(announced["monitor_id"], id.as_str());
    msg.ack();

    // Same name again: 409.
    let r = api
        .post("/api/v1/monitors", Some(&token), http_monitor("Public API"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // PATCH changes only the named fields; `null` removes a setting.
    let path = format!("/api/v1/monitors/{id}");
    let r = api
        .request(
            Method::PATCH,
            &path,
            Some(&token),
            &[("if-match", "\"1\"")],
            Some(json!({"url": "http://127.0.0.1:9/v2", "assertions": null, "tags": ["a", "b"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("etag"), Some("\"2\""));
    assert_eq!(r.body["url"], "http://127.0.0.1:9/v2");
    assert!(r.body.get("assertions").is_none());
    assert_eq!(r.body["tags"], json!(["a", "b"]));
    assert_eq!(r.body["name"], "Public API");

    // A stale ETag: 412, and nothing changes.
    let r = api
        .request(
            Method::PATCH,
            &path,
            Some(&token),
            &[("if-match", "\"1\"")],
            Some(json!({"name": "overwritten"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.body);
    assert_eq!(
        api.get(&path, Some(&token)).await.body["name"],
        "Public API"
    );

    // The kind is fixed.
    let r = api.patch(&path, Some(&token), json!({"kind": "tcp"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["kind"]);

    // Pause and resume.
    let r = api
        .post(&format!("{path}/pause"), Some(&token), json!({}))
        .await;
    assert_eq!(r.body["status"], "paused");
    assert_eq!(r.body["enabled"], false);
    let r = api
        .post(&format!("{path}/resume"), Some(&token), json!({}))
        .await;
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["enabled"], true);

    let r = api.delete(&path, Some(&token)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&path, Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&path, Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );

    // The audit log has each change, by whom.
    let audit = api.get("/api/v1/audit", Some(&token)).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "monitor.create",
        "monitor.update",
        "monitor.pause",
        "monitor.resume",
        "monitor.delete",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert_eq!(audit.body["items"][0]["actor"], "o@x.test");
}

#[tokio::test]
async fn invalid_monitors_name_every_bad_field_and_store_nothing() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    let r = api
        .post(
            "/api/v1/monitors",
            Some(&token),
            json!({"name": "", "kind": "http", "url": "ftp://x", "interval_seconds": 0,
                   "assertions": ["status = 200"], "colour": "red", "id": "mine"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "assertions[0]",
            "colour",
            "id",
            "interval_seconds",
            "name",
            "url"
        ],
        "{}",
        r.body
    );
    // The assertion's error says where and what was expected.
    let msg = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "assertions[0]")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("position") || msg.contains("column") || msg.contains("expected"),
        "{msg}"
    );

    for (body, field) in [
        (
            json!({"name": "t", "kind": "tcp", "host": "127.0.0.1"}),
            "port",
        ),
        (
            json!({"name": "t", "kind": "dns", "query": "x.test", "record_type": "ZZZ"}),
            "record_type",
        ),
        (json!({"name": "t", "kind": "nope"}), "kind"),
        (json!({"name": "t"}), "kind"),
        (
            json!({"name": "t", "kind": "http", "url": "http://127.0.0.1/", "timeout_seconds": 100, "interval_seconds": 10}),
            "timeout_seconds",
        ),
        (
            json!({"name": "t", "kind": "http", "url": "http://127.0.0.1/", "tags": "prod"}),
            "tags",
        ),
    ] {
        let r = api
            .post("/api/v1/monitors", Some(&token), body.clone())
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert!(
            r.error_fields().contains(&field.to_owned()),
            "{body}: {}",
            r.body
        );
    }
    // Not JSON, or not an object.
    let r = api
        .request(
            Method::POST,
            "/api/v1/monitors",
            Some(&token),
            &[],
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let list = api.get("/api/v1/monitors", Some(&token)).await;
    assert_eq!(list.body["items"], json!([]));
}

#[tokio::test]
async fn every_kind_is_accepted_and_heartbeats_get_a_push_url() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    for body in [
        json!({"name": "tcp", "kind": "tcp", "host": "127.0.0.1", "port": 5432}),
        json!({"name": "icmp", "kind": "icmp", "host": "::1"}),
        json!({"name": "dns", "kind": "dns", "query": "example.test", "record_type": "AAAA", "resolver": "127.0.0.1:5353"}),
        json!({"name": "tls", "kind": "tls", "host": "127.0.0.1", "port": 8443, "assertions": ["cert.expires_in > 14d"]}),
        json!({"name": "slow", "kind": "http", "url": "https://127.0.0.1:8443/", "degraded_when": ["response_time > 1s"], "timeout_seconds": 2.5}),
    ] {
        let r = api
            .post("/api/v1/monitors", Some(&token), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{body}: {}", r.body);
    }
    let r = api
        .post(
            "/api/v1/monitors",
            Some(&token),
            json!({"name": "nightly", "kind": "heartbeat", "interval_seconds": 3600, "grace_seconds": 300}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let push = r.body["push_token"].as_str().unwrap().to_owned();
    assert!(push.len() >= 32);
    assert_eq!(r.body["push_url"], format!("/api/v1/push/{push}"));
    // The push endpoint takes it without login.
    let p = api.get(&format!("/api/v1/push/{push}"), None).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    // A patch keeps the token.
    let r2 = api
        .patch(
            &format!("/api/v1/monitors/{}", r.id()),
            Some(&token),
            json!({"grace_seconds": 60}),
        )
        .await;
    assert_eq!(r2.body["push_token"], push.as_str());
    // The slow one kept its fractional timeout.
    let list = api.get("/api/v1/monitors?search=slow", Some(&token)).await;
    assert_eq!(list.body["items"][0]["timeout_seconds"], 2.5);
}

#[tokio::test]
async fn lists_filter_and_page_with_a_cursor() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    for i in 0..5 {
        let mut m = http_monitor(&format!("m{i}"));
        if i % 2 == 0 {
            m["tags"] = json!(["even"]);
        }
        assert_eq!(
            api.post("/api/v1/monitors", Some(&token), m).await.status,
            StatusCode::CREATED
        );
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/monitors?limit=2".to_owned();
    loop {
        let r = api.get(&path, Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK);
        for item in r.body["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/monitors?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["m4", "m3", "m2", "m1", "m0"],
        "newest first, each once"
    );
    let r = api.get("/api/v1/monitors?tag=even", Some(&token)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    let r = api
        .get("/api/v1/monitors?status=pending&search=M1", Some(&token))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    for bad in ["limit=0", "limit=5000", "limit=x", "status=sideways"] {
        let r = api
            .get(&format!("/api/v1/monitors?{bad}"), Some(&token))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.body
        );
        let field = bad.split('=').next().unwrap();
        assert_eq!(r.error_fields(), [field], "{bad}");
    }
}

#[tokio::test]
async fn results_are_listed_newest_first() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    let r = api
        .post(
            "/api/v1/monitors",
            Some(&token),
            json!({"name": "hb", "kind": "heartbeat", "interval_seconds": 60}),
        )
        .await;
    let id = r.id();
    let push = r.body["push_token"].as_str().unwrap().to_owned();
    api.get(&format!("/api/v1/push/{push}?ping=12"), None).await;
    api.get(
        &format!("/api/v1/push/{push}?status=down&msg=disk%20full"),
        None,
    )
    .await;
    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/results?limit=1"),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first = &r.body["items"][0];
    assert_eq!(first["status"], "down");
    assert_eq!(first["reason"], "disk full");
    assert_eq!(first["region"], "test");
    assert!(first["checked_at"].as_str().unwrap().ends_with('Z'));
    let cursor = r.body["next_cursor"].as_str().unwrap();
    let r = api
        .get(
            &format!("/api/v1/monitors/{id}/results?limit=1&cursor={cursor}"),
            Some(&token),
        )
        .await;
    assert_eq!(r.body["items"][0]["status"], "up");
    assert_eq!(r.body["items"][0]["latency_ms"], 12.0);
}

#[tokio::test]
async fn a_monitor_may_depend_on_another_of_its_tenant_without_cycles() {
    let api = Api::new().await;
    let token = api.setup("o@x.test").await;
    let parent = api
        .post("/api/v1/monitors", Some(&token), http_monitor("router"))
        .await
        .id();
    let mut child = http_monitor("server");
    child["depends_on"] = json!(parent);
    let r = api.post("/api/v1/monitors", Some(&token), child).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["depends_on"], parent.as_str());
    let child = r.id();
    // The parent depending on its child would be a cycle; so would depending on itself.
    let r = api
        .patch(
            &format!("/api/v1/monitors/{parent}"),
            Some(&token),
            json!({"depends_on": child}),
        )
        .await;
    assert_eq!(r.error_fields(), ["depends_on"], "{}", r.body);
    let r = api
        .patch(
            &format!("/api/v1/monitors/{parent}"),
            Some(&token),
            json!({"depends_on": parent}),
        )
        .await;
    assert_eq!(r.error_fields(), ["depends_on"]);
    // Unknown or malformed ids.
    let mut m = http_monitor("x");
    m["depends_on"] = json!(pingtower_core::MonitorId::new().to_string());
    assert_eq!(
        api.post("/api/v1/monitors", Some(&token), m)
            .await
            .error_fields(),
        ["depends_on"]
    );
    let mut m = http_monitor("y");
    m["depends_on"] = json!("router");
    assert_eq!(
        api.post("/api/v1/monitors", Some(&token), m)
            .await
            .error_fields(),
        ["depends_on"]
    );
    // Removed with null.
    let r = api
        .patch(
            &format!("/api/v1/monitors/{child}"),
            Some(&token),
            json!({"depends_on": null}),
        )
        .await;
    assert!(r.body.get("depends_on").is_none());
}
