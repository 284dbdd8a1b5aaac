//! `pingtower serve` as a user runs it: start, health, shutdown, durability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use pingtower_core::{MonitorKind, NewMonitor};
use pingtower_store::{PageRequest, Store, StoreOptions};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const START: Duration = Duration::from_secs(2);

#[tokio::test]
async fn serve_in_an_empty_folder_answers_health_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    let took = server.wait_healthy(START).await;
    eprintln!("/healthz answered {took:?} after start");
    // A fresh installation says where to set it up.
    let setup = format!("open {}/setup in a browser", server.base);
    assert!(server.log().contains(&setup), "{}", server.log());
    let data = dir.path().join("pingtower-data");
    assert!(data.join("pingtower.db").is_file());
    assert!(data.join("secret.key").is_file());
    // The database holds every tenant's data: its owner's only, like the key, whatever the umask.
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [
            "pingtower.db",
            "pingtower.db-wal",
            "pingtower.db-shm",
            "secret.key",
        ] {
            let mode = std::fs::metadata(data.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
        }
    }

    let client = common::http();
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pingtower_build_info"), "{metrics}");
    assert!(
        metrics.contains(
            "pingtower_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ),
        "{metrics}"
    );

    // WAL mode, as the embedded default promises.
    let db = format!("sqlite://{}", data.join("pingtower.db").display());
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }

    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(server.log().contains("stopped"));
    // It opens again, keeping its key.
    let key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    let mut again = Server::start(dir.path(), &[], &[]);
    again.wait_healthy(START).await;
    assert_eq!(
        std::fs::read_to_string(data.join("secret.key")).unwrap(),
        key
    );
    again.signal("TERM");
    assert_eq!(
        again.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
}

/// Sends one raw HTTP/1.1 request for `target` and reads the whole answer (the server closes).
async fn raw_get(base: &str, target: &str) -> (u16, String, String) {
    let addr = base.trim_start_matches("http://");
    let request = format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    raw(base, request.as_bytes()).await
}

/// Sends `bytes` and reads the whole answer (the server closes).
async fn raw(base: &str, bytes: &[u8]) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn a_request_uri_too_long_is_answered_with_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    server.wait_healthy(START).await;
    let target = |len: usize| format!("/nowhere?{}", "a".repeat(len - "/nowhere?".len()));

    // At the limit, the router answers.
    let (status, head, _) = raw_get(&server.base, &target(65_534)).await;
    assert_eq!(status, 404, "{head}");
    // Over it, hyper refuses it before any handler: still a problem, naming the limit.
    for len in [65_535, 100_000] {
        let (status, head, body) = raw_get(&server.base, &target(len)).await;
        assert_eq!(status, 414, "{head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], 414, "{problem}");
        assert_eq!(problem["title"], "URI too long", "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("65534 bytes"),
            "{problem}"
        );
    }
    // A head over hyper's buffer (417,792 bytes; exactly that much, so that the server reads
    // all of it and its close cannot reset the connection): 431, a problem too.
    let mut head_too_large = b"GET /nowhere?".to_vec();
    head_too_large.resize(8192 + 4096 * 100, b'a');
    let (status, head, body) = raw(&server.base, &head_too_large).await;
    assert_eq!(status, 431, "{head}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 431, "{problem}");
    // The server still answers.
    let (status, _, _) = raw_get(&server.base, "/healthz").await;
    assert_eq!(status, 200);
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
}

#[tokio::test]
async fn serve_runs_the_same_on_postgres() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--database", &db.url], &[]);
    let took = server.wait_healthy(START).await;
    eprintln!("/healthz answered {took:?} after start on PostgreSQL");
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        !dir.path()
            .join("pingtower-data")
            .join("pingtower.db")
            .exists(),
        "no SQLite file on PostgreSQL"
    );
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0),
        "{}",
        server.log()
    );
    drop(server);
    db.drop_now().await;
}

/// Heartbeat monitors to push to, created before the server starts.
async fn heartbeat_monitors(
    url: &str,
    n: usize,
) -> (Arc<dyn Store>, Vec<(String, pingtower_core::Monitor)>) {
    heartbeat_monitors_every(url, n, 60_000, None).await
}

/// `n` heartbeat monitors expecting a ping every `interval_ms`, with an optional grace period.
async fn heartbeat_monitors_every(
    url: &str,
    n: usize,
    interval_ms: i64,
    grace_seconds: Option<u64>,
) -> (Arc<dyn Store>, Vec<(String, pingtower_core::Monitor)>) {
    let store = pingtower_store::open(url, &StoreOptions::default())
        .await
        .unwrap();
    let t = store
        .create_tenant("acme", pingtower_engine::now())
        .await
        .unwrap();
    let mut monitors = Vec::new();
    for i in 0..n {
        let token = format!("tok_{i}_{}", uuid::Uuid::new_v4().simple());
        let m = NewMonitor {
            name: format!("job {i}"),
            kind: MonitorKind::Heartbeat,
            settings: grace_seconds
                .map(|g| serde_json::json!({ "grace_seconds": g }))
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default(),
            interval_ms,
            timeout_ms: 1_000,
            down_after: 1,
            up_after: 1,
            tags: vec![],
            enabled: true,
            push_token: Some(token.clone()),
        };
        monitors.push((
            token,
            store
                .create_monitor(t.id, &m, pingtower_engine::now())
                .await
                .unwrap(),
        ));
    }
    (store, monitors)
}

/// Pushes as fast as acknowledgements come until the server goes away; returns how many pushes
/// each token had acknowledged with 200.
async fn push_until_gone(
    base: String,
    tokens: Vec<String>,
    stop: Arc<AtomicBool>,
) -> HashMap<String, usize> {
    let mut tasks = Vec::new();
    for token in tokens {
        let (base, stop) = (base.to_owned(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut acked = 0;
            let mut failures = 0;
            while failures < 20 && !stop.load(Ordering::Relaxed) {
                match client
                    .post(format!("{base}/api/v1/push/{token}?msg=tick"))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => acked += 1,
                    _ => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (token, acked)
        }));
    }
    let mut acked = HashMap::new();
    for t in tasks {
        let (token, n) = t.await.unwrap();
        acked.insert(token, n);
    }
    acked
}

async fn assert_nothing_acknowledged_was_lost(
    url: &str,
    monitors: &[(String, pingtower_core::Monitor)],
    acked: &HashMap<String, usize>,
) {
    let store = pingtower_store::open(url, &StoreOptions::default())
        .await
        .unwrap();
    let mut total = 0;
    for (token, m) in monitors {
        let stored = store
            .list_results(m.tenant_id, m.id, &PageRequest::first(1000))
            .await
            .unwrap()
            .items
            .len();
        let n = acked[token];
        assert!(n > 0, "no push was acknowledged for {}", m.name);
        // Every acknowledged push is its own row; a push whose answer was lost in the shutdown
        // may be stored too, so at least as many.
        assert!(
            stored >= n,
            "{}: {n} pushes acknowledged but {stored} results stored",
            m.name
        );
        total += n;
    }
    eprintln!("{total} acknowledged pushes, all stored");
    store.close().await;
}

/// Starts a server on `url` (SQLite in `dir`, or PostgreSQL), pushes to four heartbeat monitors
/// as fast as acknowledgements come, sends `signal` mid-stream, and checks that every push that
/// was acknowledged is in the database afterwards.
async fn kill_during_writes(dir: &std::path::Path, url: &str, args: &[&str], signal: &str) {
    let (store, monitors) = heartbeat_monitors(url, 4).await;
    store.close().await;
    let mut server = Server::start(dir, args, &[]);
    server.wait_healthy(START).await;
    let stop = Arc::new(AtomicBool::new(false));
    let pushing = tokio::spawn(push_until_gone(
        server.base.clone(),
        monitors.iter().map(|(t, _)| t.clone()).collect(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal(signal);
    let status = server.wait_exit(Duration::from_secs(15)).await;
    if signal == "TERM" {
        assert_eq!(status.code(), Some(0), "{}", server.log());
    }
    stop.store(true, Ordering::Relaxed);
    let acked = pushing.await.unwrap();
    assert_nothing_acknowledged_was_lost(url, &monitors, &acked).await;
}

fn sqlite_in(dir: &std::path::Path) -> String {
    let data = dir.join("pingtower-data");
    std::fs::create_dir_all(&data).unwrap();
    format!("sqlite://{}", data.join("pingtower.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_in(dir.path());
    kill_during_writes(dir.path(), &url, &[], "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_in(dir.path());
    kill_during_writes(dir.path(), &url, &[], "KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_on_postgres_loses_nothing_acknowledged() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    kill_during_writes(dir.path(), &db.url, &["--database", &db.url], "TERM").await;
    db.drop_now().await;
}

#[tokio::test]
async fn push_answers_for_known_tokens_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pingtower-data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}", data.join("pingtower.db").display());
    let (store, monitors) = heartbeat_monitors(&url, 1).await;
    store.close().await;
    let mut server = Server::start(dir.path(), &[], &[]);
    server.wait_healthy(START).await;
    let client = common::http();
    let (token, m) = &monitors[0];

    let ok = client
        .get(format!(
            "{}/api/v1/push/{token}?status=down&msg=disk%20full&ping=250",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["status"], "down");
    assert_eq!(body["monitor_id"], m.id.to_string());

    let missing = client
        .post(format!("{}/api/v1/push/tok_unknown", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let bad = client
        .get(format!(
            "{}/api/v1/push/{token}?status=sideways&ping=soon",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let problem: serde_json::Value = bad.json().await.unwrap();
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["status", "ping"]);

    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
    let store = pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let results = store
        .list_results(m.tenant_id, m.id, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(results.len(), 1, "invalid and unknown pushes store nothing");
    assert_eq!(results[0].status, pingtower_core::CheckStatus::Down);
    assert_eq!(results[0].reason.as_deref(), Some("disk full"));
    assert_eq!(results[0].latency_us, 250_000);
    // The secret token never reaches the log.
    assert!(!server.log().contains(token.as_str()), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_heartbeat_goes_down_under_serve() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_in(dir.path());
    let (store, monitors) = heartbeat_monitors_every(&url, 1, 1_000, Some(0)).await;
    store.close().await;
    let (token, m) = &monitors[0];
    let mut server = Server::start(dir.path(), &[], &[]);
    server.wait_healthy(START).await;
    let ping = reqwest::get(format!("{}/api/v1/push/{token}", server.base))
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
    let store = pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let results = store
        .list_results(m.tenant_id, m.id, &PageRequest::default())
        .await
        .unwrap()
        .items;
    let down: Vec<_> = results
        .iter()
        .filter(|r| r.status == pingtower_core::CheckStatus::Down)
        .collect();
    assert!(
        !down.is_empty(),
        "no DOWN after 2.6 s of silence at a 1 s interval: {results:?}"
    );
    assert!(
        down[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("no ping since"),
        "{down:?}"
    );
}

/// Sends batches of analytics events as fast as `202`s come until the server goes away;
/// returns how many events were acknowledged.
async fn send_events_until_gone(base: String, key: String) -> usize {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let batch: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({"name": "order_placed", "distinct_id": format!("u{i}"), "properties": {"amount": i}}))
        .collect();
    let body = serde_json::json!({ "events": batch });
    let (mut acked, mut failures) = (0, 0);
    while failures < 20 {
        match client
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == 202 => {
                let answer: serde_json::Value = r.json().await.unwrap_or_default();
                acked += answer["accepted"].as_u64().unwrap_or(0) as usize;
            }
            _ => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_accepting_events_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_admin(dir.path()).await;
    let token = server.admin_token().await;
    let r = http()
        .post(format!("{}/api/v1/api-keys", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "app", "role": "ingest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let key = r.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let senders: Vec<_> = (0..2)
        .map(|_| tokio::spawn(send_events_until_gone(server.base.clone(), key.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut server = server;
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(15)).await;
    let mut acked = 0;
    for s in senders {
        acked += s.await.unwrap();
    }
    assert!(acked > 0, "no batch was acknowledged: {}", server.log());
    drop(server);
    // Started again on the same folder: every acknowledged event is there, counted and listed.
    let server = Server::with_admin(dir.path()).await;
    let token = server.admin_token().await;
    let names: serde_json::Value = http()
        .get(format!("{}/api/v1/events/names", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counted = names["items"][0]["count"].as_u64().unwrap() as usize;
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/api/v1/events?limit=1000", server.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: serde_json::Value = http()
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // A batch whose answer was lost in the kill may be stored too: at least as many.
    assert!(
        counted >= acked,
        "{acked} events acknowledged, {counted} counted"
    );
    assert_eq!(listed, counted, "the counts and the events agree");
    eprintln!("{acked} acknowledged events, all stored");
}
