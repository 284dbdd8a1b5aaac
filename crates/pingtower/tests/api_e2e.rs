//! The binary end to end through its API: the first account from the environment, login,
//! a monitor created over HTTP that the running scheduler and worker pick up at once, and
//! changes (pause, new URL, delete) that take effect without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{METRICS_TOKEN, Server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One test of this file at a time: each starts servers on ports picked a moment before, and
/// listeners of its own on loopback; run side by side, one test's listener could take the port
/// another's server was about to bind (seen in the split-roles test under load).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An HTTP server on loopback answering `status` to every request, until dropped.
async fn target(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/health"), task)
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn results(&self, id: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/monitors/{id}/results?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }

    /// A webhook channel on loopback and a rule sending it `events` of every monitor; returns
    /// what the webhook receives.
    async fn notify_all_by_webhook(&self, events: Value) -> Received {
        let (hook_url, got) = webhook().await;
        let (_, ch) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/channels",
                Some(json!({"name": "ops", "kind": "webhook", "url": hook_url})),
            )
            .await;
        let (status, rule) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/rules",
                Some(json!({"name": "all", "monitors": "all", "events": events, "channels": [ch["id"]]})),
            )
            .await;
        assert_eq!(status, 201, "{rule}");
        got
    }

    /// Waits until the newest result satisfies `pred`; returns how long that took.
    async fn wait_for(
        &self,
        id: &str,
        within: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let results = self.results(id).await;
            if pred(&results) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "not within {within:?}: {results:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn monitors_made_through_the_api_are_checked_at_once_and_follow_changes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_admin(dir.path()).await;
    let c = Client {
        http: common::http(),
        base: server.base.clone(),
        token: server.admin_token().await,
    };

    let (up_url, _up) = target(200).await;
    let (down_url, _down) = target(503).await;
    let (status, m) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/monitors",
            Some(
                json!({"name": "api", "kind": "http", "url": up_url, "interval_seconds": 1,
                        "timeout_seconds": 1, "assertions": ["status == 200"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    // Checked within its first interval plus scheduling slack, without a restart.
    let first = c
        .wait_for(&id, Duration::from_secs(4), |r| !r.is_empty())
        .await;
    eprintln!("first result {first:?} after create");
    let results = c.results(&id).await;
    assert_eq!(results[0]["status"], "up", "{results:?}");
    assert!(results[0]["latency_ms"].as_f64().unwrap() > 0.0);

    // A new URL is used from the next check on.
    let (status, _) = c
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/monitors/{id}"),
            Some(json!({"url": down_url})),
        )
        .await;
    assert_eq!(status, 200);
    c.wait_for(&id, Duration::from_secs(4), |r| {
        r.first().is_some_and(|x| x["status"] == "down")
    })
    .await;
    let results = c.results(&id).await;
    assert!(
        results[0]["reason"].as_str().unwrap().contains("503"),
        "{results:?}"
    );
    // The evaluator marks it down and opens one incident with the failing result's reason.
    let start = Instant::now();
    loop {
        let (_, m) = c
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/monitors/{id}"),
                None,
            )
            .await;
        if m["status"] == "down" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never down: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, incidents) = c
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/incidents?monitor_id={id}"),
            None,
        )
        .await;
    let items = incidents["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{incidents}");
    assert_eq!(items[0]["status"], "open");
    assert!(
        items[0]["reason"].as_str().unwrap().contains("503"),
        "{incidents}"
    );

    // Prometheus sees the monitor, labelled by monitor, tenant and region (with the scrape
    // token; without it, nothing).
    let anonymous = c
        .http
        .get(format!("{}/metrics", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let metrics = c
        .http
        .get(format!("{}/metrics", c.base))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("pingtower_monitor_up{{monitor=\"{id}\"")),
        "{metrics}"
    );

    // Paused: no more results.
    let (status, body) = c
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/monitors/{id}/pause"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = c.results(&id).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        c.results(&id).await.len(),
        before,
        "a paused monitor was checked"
    );

    // Resumed: checked again.
    c.call(
        reqwest::Method::POST,
        &format!("/api/v1/monitors/{id}/resume"),
        None,
    )
    .await;
    c.wait_for(&id, Duration::from_secs(4), |r| r.len() > before)
        .await;

    // Deleted: gone, and the log has one line per request with its id.
    let (status, _) = c
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/monitors/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = c
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/monitors/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Its series leave /metrics with it.
    let start = Instant::now();
    loop {
        let metrics = c
            .http
            .get(format!("{}/metrics", c.base))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if !metrics.contains(&id) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "series outlived their monitor"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("request") && l.contains("/api/v1/auth/login"))
        .expect("a request log line");
    for part in ["method=POST", "status=200", "latency_ms=", "request_id="] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(
        !log.contains("a-long-password"),
        "a password reached the log"
    );
    assert!(!log.contains(c.token.as_str()), "a token reached the log");
}

/// A webhook receiver on loopback: the time each notification arrived, and its body.
/// What a webhook received: when each notification arrived, and its body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(Instant, Value)>>>;

async fn webhook() -> (String, Received) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<(Instant, Value)>>> = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                // Read the whole request (headers, then content-length bytes).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            if let Ok(v) = serde_json::from_str::<Value>(&body[..len]) {
                                g.lock().unwrap().push((Instant::now(), v));
                            }
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn a_stopped_target_is_notified_within_interval_times_confirmations_plus_two_seconds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_admin(dir.path()).await;
    let c = Client {
        http: common::http(),
        base: server.base.clone(),
        token: server.admin_token().await,
    };
    let got = c.notify_all_by_webhook(json!(["down", "up"])).await;
    let (target_url, target) = target(200).await;
    let (interval, confirmations) = (1u64, 2u64);
    let (status, m) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/monitors",
            Some(json!({"name": "shop", "kind": "http", "url": target_url, "interval_seconds": interval,
                        "timeout_seconds": 1, "down_after": confirmations})),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    c.wait_for(&id, Duration::from_secs(5), |r| {
        r.first().is_some_and(|x| x["status"] == "up")
    })
    .await;

    // Stop the target: connections are refused from now on.
    target.abort();
    let _ = target.await;
    let stopped = Instant::now();
    let budget = Duration::from_secs(interval * confirmations + 2);
    loop {
        if let Some((at, body)) = got.lock().unwrap().first().cloned() {
            let took = at.duration_since(stopped);
            eprintln!("notified {took:?} after the stop (budget {budget:?})");
            assert!(took <= budget, "notified after {took:?}, budget {budget:?}");
            assert_eq!(body["event"], "down");
            assert_eq!(body["monitor"]["name"], "shop");
            break;
        }
        assert!(
            stopped.elapsed() <= budget,
            "no notification within {budget:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The delivery log and the incident's timeline say so (the log is written when the
    // provider's answer is back, a moment after the webhook got the message).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, deliveries) = c
            .call(reqwest::Method::GET, "/api/v1/deliveries", None)
            .await;
        if deliveries["items"][0]["status"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "{deliveries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, incidents) = c
        .call(reqwest::Method::GET, "/api/v1/incidents", None)
        .await;
    let inc_id = incidents["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, inc) = c
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/incidents/{inc_id}"),
            None,
        )
        .await;
    let kinds: Vec<_> = inc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert!(
        kinds.contains(&json!("opened")) && kinds.contains(&json!("notified")),
        "{inc}"
    );
    // The timeline says it was sent, not only queued (the delivery may still be finishing).
    let start = Instant::now();
    loop {
        let (_, inc) = c
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/incidents/{inc_id}"),
                None,
            )
            .await;
        if inc.to_string().contains("sent through webhook channel ops") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{inc}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Split roles: one process runs the API, the scheduler, the notifier and the statistics, a
/// second one only checks, over a shared PostgreSQL database and RabbitMQ. A monitor made
/// through the first is checked by the second (`checks.due` over the broker), its results
/// come back to the first's evaluator (`check.results`), and a stopped target is notified.
#[tokio::test]
async fn split_roles_over_postgres_and_rabbitmq_check_and_notify() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = common::PgDb::create().await;
    let broker = format!(
        "{}?namespace=test-{}&expires=120",
        std::env::var("PINGTOWER_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
        uuid::Uuid::new_v4().simple()
    );
    let key = "5c".repeat(32);
    let shared = [
        ("PINGTOWER_DATABASE_URL", db.url.as_str()),
        ("PINGTOWER_BROKER_URL", broker.as_str()),
        ("PINGTOWER_SECRET_KEY", key.as_str()),
        ("PINGTOWER_ADMIN_EMAIL", common::ADMIN.0),
        ("PINGTOWER_ADMIN_PASSWORD", common::ADMIN.1),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut front = Server::start(
        dir_a.path(),
        &["--roles", "api,scheduler,notifier,stats"],
        &shared,
    );
    front.wait_healthy(Duration::from_secs(20)).await;
    let mut checker = Server::start(dir_b.path(), &["--roles", "worker"], &shared);
    let c = Client {
        http: common::http(),
        base: front.base.clone(),
        token: front.admin_token().await,
    };
    assert!(
        front.child.try_wait().unwrap().is_none(),
        "the front process stopped:\n{}",
        front.log()
    );
    let ready: Value = match c.http.get(format!("{}/readyz", c.base)).send().await {
        Ok(r) => r.json().await.unwrap(),
        Err(e) => panic!("/readyz: {e}; front:\n{}", front.log()),
    };
    assert_eq!(ready["checks"]["bus"], "ok", "{ready}");

    let got = c.notify_all_by_webhook(json!(["down"])).await;
    let (target_url, target) = target(200).await;
    let (status, m) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/monitors",
            Some(
                json!({"name": "shop", "kind": "http", "url": target_url, "interval_seconds": 1,
                        "timeout_seconds": 1, "down_after": 1}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    c.wait_for(&id, Duration::from_secs(10), |r| {
        r.first().is_some_and(|x| x["status"] == "up")
    })
    .await;
    assert!(
        checker.child.try_wait().unwrap().is_none(),
        "the checking process stopped:\n{}",
        checker.log()
    );

    target.abort();
    let _ = target.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((_, body)) = got.lock().unwrap().first().cloned() {
            assert_eq!(body["event"], "down");
            assert_eq!(body["monitor"]["name"], "shop");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no notification; front:\n{}\nchecker:\n{}",
            front.log(),
            checker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both stop cleanly on SIGTERM.
    for server in [&mut checker, &mut front] {
        server.signal("TERM");
        let status = server.wait_exit(Duration::from_secs(15)).await;
        assert!(status.success(), "{status}:\n{}", server.log());
    }
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_above_a_threshold_page_through_the_rules_and_resolve_when_the_rate_drops() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_admin(dir.path()).await;
    let c = Client {
        http: common::http(),
        base: server.base.clone(),
        token: server.admin_token().await,
    };
    let got = c.notify_all_by_webhook(json!(["down", "up"])).await;
    let (status, m) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/monitors",
            Some(json!({"name": "payments", "kind": "event", "interval_seconds": 1, "timeout_seconds": 1,
                        "query": {"filters": [{"property": "name", "op": "eq", "value": "payment_failed"}]},
                        "condition": {"op": "above", "threshold": 20, "minutes": 1}})),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    c.wait_for(&id, Duration::from_secs(5), |r| {
        r.first().is_some_and(|x| x["status"] == "up")
    })
    .await;
    // Late in a minute, wait for the next: the events go into the minute just completed.
    let now_ms = || pingtower_engine::now().as_millis();
    if now_ms() % 60_000 > 45_000 {
        tokio::time::sleep(Duration::from_millis(
            (60_000 - now_ms() % 60_000 + 500) as u64,
        ))
        .await;
    }
    let last_minute = now_ms() - now_ms() % 60_000 - 60_000;
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"name": "payment_failed", "timestamp": last_minute + i * 100}))
        .collect();
    let (status, r) = c
        .call(
            reqwest::Method::POST,
            "/api/v1/events",
            Some(json!({ "events": events })),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    let sent = Instant::now();
    let budget = Duration::from_secs(5);
    let down = loop {
        if let Some((at, body)) = got.lock().unwrap().first().cloned() {
            break (at.duration_since(sent), body);
        }
        assert!(sent.elapsed() < budget, "no notification within {budget:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("paged {:?} after the events were accepted", down.0);
    assert_eq!(down.1["event"], "down", "{}", down.1);
    assert!(
        down.1
            .to_string()
            .contains("30 payment_failed in the last 1 min, above 20"),
        "{}",
        down.1
    );
    // No more events: once the minute leaves the window, the incident resolves and says so.
    let deadline = Duration::from_secs(75);
    loop {
        let up = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, b)| b["event"] == "up")
            .cloned();
        if let Some((at, _)) = up {
            eprintln!("resolved {:?} after the events", at.duration_since(sent));
            break;
        }
        assert!(
            sent.elapsed() < deadline,
            "not resolved within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, incidents) = c
        .call(reqwest::Method::GET, "/api/v1/incidents", None)
        .await;
    assert_eq!(incidents["items"][0]["status"], "resolved", "{incidents}");
}
