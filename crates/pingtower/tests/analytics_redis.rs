//! Two API processes over one PostgreSQL database and the real Redis: an event accepted by one
//! is counted in the other's answers, and no cached answer is older than the newest complete
//! bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN, PgDb, Server, http};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "5f0c3a7d9e2b4c6a8f1e3d5b7a9c0e2f4a6b8d0c2e4f6a8b0d2f4e6a8c0e2b4d";

async fn total(base: &str, token: &str) -> (i64, String) {
    let r = http()
        .post(format!("{base}/api/v1/events/query"))
        .bearer_auth(token)
        .json(
            &json!({"metric": "count", "bucket": "minute", "range": "10m",
                      "filters": [{"property": "name", "op": "eq", "value": "shared"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cache = r
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = r.json().await.unwrap();
    let n = body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .sum();
    (n, cache)
}

async fn send(base: &str, token: &str, events: Value) {
    let r = http()
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

fn now_ms() -> i64 {
    pingtower_engine::now().as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_share_counts_and_no_answer_is_staler_than_the_last_complete_minute() {
    let db = PgDb::create().await;
    let redis = std::env::var("PINGTOWER_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let env = [
        ("PINGTOWER_DATABASE_URL", db.url.as_str()),
        ("PINGTOWER_SECRET_KEY", KEY),
        ("PINGTOWER_REDIS_URL", redis.as_str()),
        ("PINGTOWER_ADMIN_EMAIL", ADMIN.0),
        ("PINGTOWER_ADMIN_PASSWORD", ADMIN.1),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Server::start(dir_a.path(), &[], &env);
    a.wait_healthy(Duration::from_secs(15)).await;
    let mut b = Server::start(dir_b.path(), &[], &env);
    b.wait_healthy(Duration::from_secs(15)).await;
    let token = a.admin_token().await;
    // Late in a minute, wait for the next, so that "the minute before" stays put meanwhile.
    if now_ms() % 60_000 > 40_000 {
        tokio::time::sleep(Duration::from_millis(
            (60_000 - now_ms() % 60_000 + 500) as u64,
        ))
        .await;
    }
    assert_eq!(total(&b.base, &token).await.0, 0);
    assert_eq!(total(&b.base, &token).await.1, "hit", "B caches its answer");
    // Events of the minute just completed, through A: B's next answer has them at once.
    let last_minute = now_ms() - now_ms() % 60_000 - 60_000;
    let late: Vec<Value> = (0..7)
        .map(|i| json!({"name": "shared", "timestamp": last_minute + i}))
        .collect();
    send(&a.base, &token, json!(late)).await;
    assert_eq!(total(&b.base, &token).await, (7, "miss".to_owned()));
    // Events of the current minute, through A: counted by B once their minute is complete.
    let now: Vec<Value> = (0..5).map(|_| json!({"name": "shared"})).collect();
    send(&a.base, &token, json!(now)).await;
    let next_minute = now_ms() - now_ms() % 60_000 + 60_000;
    tokio::time::sleep(Duration::from_millis((next_minute - now_ms() + 500) as u64)).await;
    assert_eq!(total(&b.base, &token).await.0, 12);
    drop((a, b));
    db.drop_now().await;
}
