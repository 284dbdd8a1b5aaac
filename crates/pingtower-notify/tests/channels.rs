//! Each channel kind against a local server that records the request, checked the way the
//! provider documents it: method, path, authentication and body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use pingtower_core::*;
use pingtower_notify::channels::{self, Channel, SendError};
use pingtower_notify::{Event, Notification};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn form(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// A server on loopback answering `status` and recording every request.
async fn recorder(status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let s = s.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            s.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                "{\"ok\":true}",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn notification(event: Event) -> Notification {
    Notification {
        delivery_id: DeliveryId::new(),
        tenant_id: TenantId::new(),
        channel_id: ResourceId::new(),
        event,
        monitor_id: MonitorId::new(),
        monitor_name: "Checkout API".into(),
        status: if event == Event::Up {
            MonitorStatus::Up
        } else {
            MonitorStatus::Down
        },
        reason: Some("HTTP 503".into()),
        at: Timestamp::from_millis(1_795_000_000_000),
        incident_id: Some(IncidentId::new()),
        down_for_ms: (event == Event::Up).then_some(125_000),
        idempotency_key: "m:1:down:c".into(),
        link: Some("https://pingtower.test/monitors/1".into()),
    }
}

async fn send(
    kind: &str,
    spec: Value,
    secrets: Value,
    n: &Notification,
) -> Result<channels::Answer, SendError> {
    send_within(kind, spec, secrets, n, "", Duration::from_secs(5)).await
}

/// Sends with the operator's blocklist `blocked` and a timeout.
async fn send_within(
    kind: &str,
    spec: Value,
    secrets: Value,
    n: &Notification,
    blocked: &str,
    timeout: Duration,
) -> Result<channels::Answer, SendError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec: Map<String, Value> = spec.as_object().unwrap().clone();
    let secrets: Map<String, Value> = secrets.as_object().unwrap().clone();
    let ch = Channel {
        kind,
        spec: &spec,
        secrets: &secrets,
    };
    let out =
        channels::Outbound::new(pingtower_core::net::Blocklist::parse(blocked).unwrap()).unwrap();
    channels::send(&out, &ch, n, timeout).await
}

fn last(seen: &Arc<Mutex<Vec<Seen>>>) -> Seen {
    seen.lock().unwrap().last().cloned().expect("a request")
}

#[tokio::test]
async fn chat_webhooks_get_their_documented_payloads() {
    let (base, seen) = recorder(200).await;
    let down = notification(Event::Down);

    send(
        "slack",
        json!({}),
        json!({"url": format!("{base}/services/T0/B0/x")}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/services/T0/B0/x")
    );
    assert!(
        r.json()["text"]
            .as_str()
            .unwrap()
            .contains("DOWN: Checkout API")
    );
    assert!(
        r.json()["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("HTTP 503")
    );
    // The link to the monitor is in the text.
    assert!(
        r.json()["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("https://pingtower.test/monitors/1")
    );

    send(
        "discord",
        json!({}),
        json!({"url": format!("{base}/api/webhooks/1/t")}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/api/webhooks/1/t");
    assert_eq!(r.json()["embeds"][0]["title"], "DOWN: Checkout API");
    assert_eq!(r.json()["allowed_mentions"]["parse"], json!([]));

    send(
        "teams",
        json!({}),
        json!({"url": format!("{base}/webhookb2/x")}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen).json();
    assert_eq!(r["@type"], "MessageCard");
    assert_eq!(r["title"], "DOWN: Checkout API");

    send(
        "mattermost",
        json!({"channel": "ops"}),
        json!({"url": format!("{base}/hooks/x")}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen).json();
    assert_eq!(r["channel"], "ops");
    assert!(r["text"].as_str().unwrap().contains("HTTP 503"));

    send(
        "google_chat",
        json!({}),
        json!({"url": format!("{base}/v1/spaces/S/messages?key=k")}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(
        (r.path.as_str(), r.query.as_str()),
        ("/v1/spaces/S/messages", "key=k")
    );
    assert!(
        r.json()["text"]
            .as_str()
            .unwrap()
            .starts_with("*DOWN: Checkout API*")
    );

    send(
        "telegram",
        json!({"chat_id": -100_123, "base_url": base}),
        json!({"bot_token": "123:ABC"}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/bot123:ABC/sendMessage");
    assert_eq!(r.json()["chat_id"], -100_123);

    send(
        "matrix",
        json!({"homeserver": base, "room_id": "!room:example.org"}),
        json!({"access_token": "syt_x"}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(r.method, "PUT");
    assert_eq!(
        r.path,
        "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/m%3A1%3Adown%3Ac"
    );
    assert_eq!(r.header("authorization"), "Bearer syt_x");
    assert_eq!(r.json()["msgtype"], "m.text");
}

#[tokio::test]
async fn paging_services_trigger_and_resolve_with_one_key_per_incident() {
    let (base, seen) = recorder(202).await;
    let down = notification(Event::Down);
    let mut up = notification(Event::Up);
    up.incident_id = down.incident_id;
    let key = format!("pingtower-{}", down.incident_id.unwrap());

    let pd = json!({"base_url": base, "severity": "error"});
    send("pagerduty", pd.clone(), json!({"routing_key": "R1"}), &down)
        .await
        .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/v2/enqueue");
    let b = r.json();
    assert_eq!(
        (b["routing_key"].as_str(), b["event_action"].as_str()),
        (Some("R1"), Some("trigger"))
    );
    assert_eq!(b["dedup_key"], key);
    assert_eq!(b["payload"]["severity"], "error");
    assert_eq!(b["payload"]["source"], "Checkout API");
    send("pagerduty", pd, json!({"routing_key": "R1"}), &up)
        .await
        .unwrap();
    let b = last(&seen).json();
    assert_eq!(
        (b["event_action"].as_str(), b["dedup_key"].as_str()),
        (Some("resolve"), Some(key.as_str()))
    );

    let og = json!({"base_url": base});
    send("opsgenie", og.clone(), json!({"api_key": "G1"}), &down)
        .await
        .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/v2/alerts");
    assert_eq!(r.header("authorization"), "GenieKey G1");
    assert_eq!(r.json()["alias"], key);
    assert_eq!(r.json()["priority"], "P1");
    send("opsgenie", og, json!({"api_key": "G1"}), &up)
        .await
        .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, format!("/v2/alerts/{key}/close"));
    assert_eq!(r.query, "identifierType=alias");
}

#[tokio::test]
async fn push_and_sms_services_get_their_documented_requests() {
    let (base, seen) = recorder(200).await;
    let down = notification(Event::Down);

    send(
        "ntfy",
        json!({"url": format!("{base}/alerts")}),
        json!({"token": "tk"}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/alerts"));
    assert_eq!(r.header("title"), "DOWN: Checkout API");
    assert_eq!(r.header("priority"), "high");
    assert_eq!(r.header("authorization"), "Bearer tk");
    assert!(r.body.contains("HTTP 503"));

    send(
        "gotify",
        json!({"url": base}),
        json!({"token": "AppTok"}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/message");
    assert_eq!(r.header("x-gotify-key"), "AppTok");
    assert_eq!(r.json()["priority"], 8);

    send(
        "pushover",
        json!({"base_url": base}),
        json!({"token": "app", "user_key": "usr"}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/1/messages.json");
    let f = r.form();
    assert_eq!(
        (
            f["token"].as_str(),
            f["user"].as_str(),
            f["priority"].as_str()
        ),
        ("app", "usr", "1")
    );

    send(
        "twilio",
        json!({"base_url": base, "account_sid": "AC1", "from": "+15005550006", "to": "+15005550001"}),
        json!({"auth_token": "tok"}),
        &down,
    )
    .await
    .unwrap();
    let r = last(&seen);
    assert_eq!(r.path, "/2010-04-01/Accounts/AC1/Messages.json");
    // Basic auth: account sid and auth token.
    assert_eq!(r.header("authorization"), "Basic QUMxOnRvaw==");
    let f = r.form();
    assert_eq!(
        (f["To"].as_str(), f["From"].as_str()),
        ("+15005550001", "+15005550006")
    );
    assert!(f["Body"].starts_with("DOWN: Checkout API"));
}

#[tokio::test]
async fn provider_errors_are_judged_transient_or_permanent() {
    let (base, _) = recorder(503).await;
    let n = notification(Event::Down);
    let e = send("slack", json!({}), json!({"url": format!("{base}/x")}), &n)
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Transient(_)), "{e:?}");
    let (base, _) = recorder(403).await;
    let e = send("slack", json!({}), json!({"url": format!("{base}/x")}), &n)
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Permanent(_)), "{e:?}");
    // The error names no URL: a chat webhook URL holds its token.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = send(
        "slack",
        json!({}),
        json!({"url": format!("http://127.0.0.1:{port}/services/SECRET")}),
        &n,
    )
    .await
    .unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

/// A server on `ip` answering every request with `answer` (status, extra header, body), and
/// counting requests.
async fn server_on(
    ip: &str,
    status: u16,
    header: Option<(&'static str, String)>,
    body: String,
) -> (std::net::SocketAddr, Arc<Mutex<u32>>) {
    let hits: Arc<Mutex<u32>> = Arc::default();
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let (h, header, body) = (h.clone(), header.clone(), body.clone());
        async move {
            *h.lock().unwrap() += 1;
            let mut r = axum::response::Response::new(axum::body::Body::from(body));
            *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
            if let Some((k, v)) = header {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, hits)
}

#[tokio::test]
async fn channels_do_not_reach_blocked_networks_directly_by_name_or_by_redirect() {
    // 127.0.0.1 and ::1 stand in for a cloud metadata service the operator blocked; 127.0.0.2
    // is an ordinary, allowed server.
    let blocked = "127.0.0.1/32, ::1/128";
    let (secret, secret_hits) =
        server_on("127.0.0.1", 200, None, "instance-secret-token".into()).await;
    let (redirector, _) = server_on(
        "127.0.0.2",
        302,
        Some(("location", format!("http://{secret}/latest/meta-data"))),
        String::new(),
    )
    .await;
    let n = notification(Event::Test);
    let port = secret.port();
    let cases = [
        (
            "webhook",
            json!({"url": format!("http://{secret}/hook")}),
            json!({}),
        ),
        (
            "webhook",
            json!({"url": format!("http://localhost:{port}/hook")}),
            json!({}),
        ),
        (
            "webhook",
            json!({"url": format!("http://[::ffff:127.0.0.1]:{port}/hook")}),
            json!({}),
        ),
        (
            "slack",
            json!({}),
            json!({"url": format!("http://{secret}/services/x")}),
        ),
        (
            "pagerduty",
            json!({"base_url": format!("http://{secret}")}),
            json!({"routing_key": "k"}),
        ),
        (
            "gotify",
            json!({"url": format!("http://{secret}")}),
            json!({"token": "t"}),
        ),
        (
            "telegram",
            json!({"base_url": format!("http://localhost:{port}"), "chat_id": "1"}),
            json!({"bot_token": "b"}),
        ),
        (
            "ntfy",
            json!({"url": format!("http://localhost:{port}/topic")}),
            json!({}),
        ),
        (
            "email",
            json!({"smtp_host": "localhost", "smtp_port": port, "smtp_tls": "none", "to": ["a@example.test"]}),
            json!({}),
        ),
    ];
    for (kind, spec, secrets) in cases {
        let e = send_within(
            kind,
            spec.clone(),
            secrets,
            &n,
            blocked,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, SendError::Permanent(m) if m.contains("blocked: ")),
            "{kind} {spec}: {e:?}"
        );
    }
    // A redirect from an allowed server is not followed, and says where it pointed.
    let e = send_within(
        "webhook",
        json!({"url": format!("http://{redirector}/hook")}),
        json!({}),
        &n,
        blocked,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(m) if m.contains("HTTP 302") && m.contains("do not follow redirects")),
        "{e:?}"
    );
    assert_eq!(
        *secret_hits.lock().unwrap(),
        0,
        "the blocked server was reached"
    );
    // Without a blocklist the same server is reachable (the refusals above are the blocklist's).
    send_within(
        "webhook",
        json!({"url": format!("http://{secret}/hook")}),
        json!({}),
        &n,
        "",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(*secret_hits.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_provider_answer_is_kept_short_and_on_one_line() {
    let long = format!("line one\nline two {}", "x".repeat(100_000));
    let (ok, _) = server_on("127.0.0.1", 200, None, long.clone()).await;
    let (bad, _) = server_on("127.0.0.1", 400, None, long).await;
    let n = notification(Event::Test);
    let a = send(
        "webhook",
        json!({"url": format!("http://{ok}/")}),
        json!({}),
        &n,
    )
    .await
    .unwrap();
    assert!(a.body.starts_with("line one line two xxx"), "{}", a.body);
    assert!(
        a.body.chars().count() <= channels::ANSWER_MAX + 1,
        "{}",
        a.body.len()
    );
    let e = send(
        "webhook",
        json!({"url": format!("http://{bad}/")}),
        json!({}),
        &n,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().chars().count() < 300, "{e}");
}

#[tokio::test]
async fn every_send_ends_within_its_timeout_email_included() {
    // Servers that accept a connection and never say a word: an SMTP server that never greets
    // and an HTTP server that never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let n = notification(Event::Down);
    for (kind, spec) in [
        (
            "email",
            json!({"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "none", "to": ["a@example.test"]}),
        ),
        (
            "email",
            json!({"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "starttls", "to": ["a@example.test"]}),
        ),
        (
            "webhook",
            json!({"url": format!("http://127.0.0.1:{port}/")}),
        ),
    ] {
        let started = std::time::Instant::now();
        let e = send_within(kind, spec, json!({}), &n, "", Duration::from_millis(700))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{kind} took {took:?}");
        assert!(matches!(e, SendError::Transient(_)), "{kind}: {e:?}");
    }
}
