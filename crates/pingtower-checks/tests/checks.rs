//! Every check kind against real servers that the test starts on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingtower_checks::{Checker, Outcome, TlsContext};
use pingtower_core::check::CheckSpec;
use pingtower_core::{CheckStatus, MonitorKind};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    Full::new(s.into()).boxed()
}

/// The test server's answers, by path.
async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    use http_body_util::BodyExt;
    let r = Response::builder();
    let resp = match req.uri().path() {
        "/health" => r
            .header("content-type", "application/json")
            .body(full(r#"{"status":"UP","items":[{"count":3}]}"#)),
        "/fail" => r.status(500).body(full("boom")),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            r.body(full("slow ok"))
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            r.body(full(""))
        }
        "/redirect" => r.status(302).header("location", "/health").body(full("")),
        "/loop" => r.status(301).header("location", "/loop").body(full("")),
        "/jump" => {
            let to = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("to="))
                .unwrap_or("/health")
                .to_owned();
            r.status(302).header("location", to).body(full(""))
        }
        "/huge" => {
            // 64 MiB in 64 KiB chunks, produced lazily: a check must stop reading at its cap.
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures::stream::iter(
                (0..1024).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
            );
            r.body(StreamBody::new(stream).boxed())
        }
        "/auth" => {
            let ok = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                == Some("Bearer s3cret");
            r.status(if ok { 200 } else { 401 }).body(full(""))
        }
        "/echo-method" => r.body(full(req.method().to_string())),
        _ => r.status(404).body(full("")),
    };
    Ok(resp.unwrap())
}

fn test_ca() -> (CertificateParams, KeyPair, CertificateDer<'static>, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "PingTower test CA");
    let cert = params.self_signed(&key).unwrap();
    let pem = cert.pem();
    (params, key, cert.der().clone(), pem)
}

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn leaf(
    ca: &(CertificateParams, KeyPair, CertificateDer<'static>, String),
    names: &[&str],
    expired: bool,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    for n in names {
        params
            .subject_alt_names
            .push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            });
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    } else {
        use chrono::Datelike;
        let ymd = |t: chrono::DateTime<chrono::Utc>| {
            rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
        };
        params.not_before = ymd(chrono::Utc::now() - chrono::Duration::days(1));
        params.not_after = ymd(chrono::Utc::now() + chrono::Duration::days(90));
    }
    let issuer = Issuer::from_params(&ca.0, &ca.1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Leaf {
        chain: vec![cert.der().clone(), ca.2.clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn server_tls(leaf: Leaf) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Serves `handle` on loopback (HTTP/1.1 and HTTP/2, over TLS when given a config).
async fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    serve_at("127.0.0.1:0", tls).await
}

async fn serve_at(bind: &str, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(config) => {
                        let Ok(stream) =
                            tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                        else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service_fn(handle))
                            .await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service_fn(handle))
                            .await;
                    }
                }
            });
        }
    });
    addr
}

fn spec(kind: MonitorKind, settings: Value, timeout_ms: i64) -> CheckSpec {
    CheckSpec::parse(kind, settings.as_object().unwrap(), timeout_ms).unwrap()
}

fn checker() -> Checker {
    Checker::with_tls(TlsContext::with_roots(rustls::RootCertStore::empty()).unwrap())
}

async fn http(settings: Value) -> Outcome {
    checker()
        .run(&spec(MonitorKind::Http, settings, 5_000))
        .await
}

#[tokio::test]
async fn http_up_with_timings_and_assertions() {
    let addr = serve(None).await;
    let o = http(json!({
        "url": format!("http://{addr}/health"),
        "assertions": ["status == 200", "json.status == \"UP\"", "json.items[0].count >= 3", "header[\"content-type\"] contains \"json\"", "response_time < 5s"],
    }))
    .await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(o.reason, None);
    let t = &o.details["timings"];
    assert!(t["connect_us"].as_i64().unwrap() >= 0);
    assert!(t["ttfb_us"].as_i64().unwrap() > 0);
    assert_eq!(t["dns_us"], Value::Null, "an IP literal needs no lookup");
    assert_eq!(o.details["http"]["status"], 200);
    assert_eq!(o.details["http"]["version"], "HTTP/1.1");
    assert_eq!(o.details["assertions"].as_array().unwrap().len(), 5);
    assert!(o.latency_us > 0);
}

#[tokio::test]
async fn http_errors_and_failed_assertions_are_down_with_a_reason() {
    let addr = serve(None).await;
    let o = http(json!({"url": format!("http://{addr}/fail")})).await;
    assert_eq!(
        (o.status, o.reason.as_deref()),
        (CheckStatus::Down, Some("HTTP 500"))
    );
    let o = http(
        json!({"url": format!("http://{addr}/health"), "assertions": ["json.status == \"DOWN\""]}),
    )
    .await;
    assert_eq!(o.status, CheckStatus::Down);
    assert_eq!(
        o.reason.as_deref(),
        Some("assertion `json.status == \"DOWN\"` failed (got \"UP\")")
    );
    // A name that resolves on the machine itself (/etc/hosts), to a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = http(json!({"url": format!("http://localhost:{closed}/"), "ip_family": "ipv4"})).await;
    assert_eq!(o.status, CheckStatus::Down);
    assert!(
        o.reason.as_deref().unwrap().contains("connection refused"),
        "{o:?}"
    );
    assert!(
        o.details["timings"]["dns_us"].as_i64().is_some(),
        "a host name is resolved and timed"
    );
}

#[tokio::test]
async fn slow_answers_can_be_degraded() {
    let addr = serve(None).await;
    let o = http(
        json!({"url": format!("http://{addr}/slow"), "degraded_when": ["response_time > 200ms"]}),
    )
    .await;
    assert_eq!(o.status, CheckStatus::Degraded, "{o:?}");
    assert!(
        o.reason
            .unwrap()
            .starts_with("degraded: `response_time > 200ms`")
    );
}

#[tokio::test]
async fn a_hanging_server_times_out_naming_the_phase() {
    let addr = serve(None).await;
    let started = Instant::now();
    let o = checker()
        .run(&spec(
            MonitorKind::Http,
            json!({"url": format!("http://{addr}/hang")}),
            500,
        ))
        .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(o.status, CheckStatus::Down);
    assert_eq!(
        o.reason.as_deref(),
        Some("timed out after 500ms (waiting for the response)")
    );
    // A listener that accepts and never speaks TLS: stuck in the handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let o = checker()
        .run(&spec(
            MonitorKind::Http,
            json!({"url": format!("https://{silent_addr}/")}),
            300,
        ))
        .await;
    assert_eq!(
        o.reason.as_deref(),
        Some("timed out after 300ms (TLS handshake)")
    );
}

#[tokio::test]
async fn a_huge_body_is_read_only_up_to_the_cap() {
    let addr = serve(None).await;
    let started = Instant::now();
    let o = http(json!({"url": format!("http://{addr}/huge"), "max_body_bytes": 100_000, "assertions": ["body contains \"xxx\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(o.details["http"]["body_bytes"], 100_000);
    assert_eq!(o.details["http"]["body_truncated"], true);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let addr = serve(None).await;
    let o =
        http(json!({"url": format!("http://{addr}/redirect"), "assertions": ["status == 200"]}))
            .await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(o.details["http"]["redirects"], 1);
    assert!(
        o.details["http"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/health")
    );
    let o = http(json!({"url": format!("http://{addr}/redirect"), "max_redirects": 0, "assertions": ["status == 302"]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = http(json!({"url": format!("http://{addr}/loop"), "max_redirects": 3})).await;
    assert_eq!(
        o.reason.as_deref(),
        Some("too many redirects (more than 3)")
    );
}

#[tokio::test]
async fn methods_bodies_and_auth_are_sent() {
    let addr = serve(None).await;
    let o = http(json!({"url": format!("http://{addr}/auth"), "bearer_token": "s3cret", "assertions": ["status == 200"]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = http(json!({"url": format!("http://{addr}/auth"), "bearer_token": "wrong"})).await;
    assert_eq!(o.reason.as_deref(), Some("HTTP 401"));
    let o = http(json!({"url": format!("http://{addr}/echo-method"), "method": "post", "body": "{}", "assertions": ["body == \"POST\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
}

/// A server on `bind` that records the headers of every request it gets and answers `/jump?to=`
/// with a redirect there, anything else with 200.
async fn recording_server(
    bind: &str,
) -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<(String, hyper::HeaderMap)>>>,
) {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        log.lock()
                            .unwrap()
                            .push((req.uri().path().to_owned(), req.headers().clone()));
                        let to = req
                            .uri()
                            .query()
                            .and_then(|q| q.strip_prefix("to="))
                            .map(str::to_owned);
                        let r = Response::builder();
                        let resp = match to {
                            Some(to) => r.status(302).header("location", to).body(full("")),
                            None => r.body(full("ok")),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn custom_headers_and_credentials_do_not_follow_a_redirect_to_another_origin() {
    let (first, first_seen) = recording_server("127.0.0.1:0").await;
    let (other, other_seen) = recording_server("127.0.0.1:0").await;
    let secrets = ["x-api-key", "cookie", "authorization"];
    for auth in [
        json!({"basic_auth_user": "u", "basic_auth_password": "p"}),
        json!({"bearer_token": "s3cret"}),
    ] {
        first_seen.lock().unwrap().clear();
        other_seen.lock().unwrap().clear();
        let mut settings = json!({
            "url": format!("http://{first}/jump?to=/same"),
            "headers": {"X-Api-Key": "k3y", "Cookie": "session=abc"},
            "assertions": ["status == 200"],
        });
        settings
            .as_object_mut()
            .unwrap()
            .extend(auth.as_object().unwrap().clone());
        // Within the origin, every hop carries them.
        let o = http(settings.clone()).await;
        assert_eq!(o.status, CheckStatus::Up, "{o:?}");
        {
            let seen = first_seen.lock().unwrap();
            assert_eq!(seen.len(), 2, "{seen:?}");
            for (path, headers) in seen.iter() {
                for name in secrets {
                    assert!(
                        headers.contains_key(name),
                        "{path} lacks {name}: {headers:?}"
                    );
                }
            }
        }
        // To another port (another origin): none of them, but the request itself is made.
        settings["url"] = json!(format!("http://{first}/jump?to=http://{other}/elsewhere"));
        let o = http(settings.clone()).await;
        assert_eq!(o.status, CheckStatus::Up, "{o:?}");
        assert_eq!(o.details["http"]["redirects"], 1);
        let seen = other_seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (path, headers) = &seen[0];
        assert_eq!(path, "/elsewhere");
        assert!(headers.contains_key("user-agent"), "{headers:?}");
        for name in secrets {
            assert!(!headers.contains_key(name), "{name} was sent: {headers:?}");
        }
    }
    // To another host on the same port is another origin too (127.0.0.2 is loopback on Linux).
    if let Ok(l) = TcpListener::bind(format!("127.0.0.2:{}", first.port())).await {
        drop(l);
        let (host2, host2_seen) = recording_server(&format!("127.0.0.2:{}", first.port())).await;
        let o = http(json!({
            "url": format!("http://{first}/jump?to=http://{host2}/elsewhere"),
            "headers": {"X-Api-Key": "k3y"},
            "assertions": ["status == 200"],
        }))
        .await;
        assert_eq!(o.status, CheckStatus::Up, "{o:?}");
        let seen = host2_seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(!seen[0].1.contains_key("x-api-key"), "{seen:?}");
    }
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge() {
    let addr = serve(None).await;
    let o = http(json!({"url": format!("http://{addr}/health"), "http_version": "2"})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(o.details["http"]["version"], "HTTP/2");
}

#[tokio::test]
async fn https_with_a_private_ca_negotiates_http2_and_reads_the_certificate() {
    let ca = test_ca();
    let addr = serve(Some(server_tls(leaf(
        &ca,
        &["localhost", "127.0.0.1"],
        false,
    ))))
    .await;
    let url = format!("https://localhost:{}/health", addr.port());
    let o = http(json!({"url": url, "tls_ca_pem": ca.3, "ip_family": "ipv4", "assertions": ["cert.expires_in > 14d", "status == 200"]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(o.details["http"]["version"], "HTTP/2");
    let days = o.details["cert"]["expires_in_days"].as_f64().unwrap();
    assert!((89.0..=90.1).contains(&days), "{days}");
    assert!(o.details["timings"]["tls_us"].as_i64().unwrap() > 0);

    let o =
        http(json!({"url": url, "tls_ca_pem": ca.3, "ip_family": "ipv4", "http_version": "1.1"}))
            .await;
    assert_eq!(o.details["http"]["version"], "HTTP/1.1", "{o:?}");

    // Without the CA the chain is not trusted, unless verification is turned off.
    let o = http(json!({"url": url, "ip_family": "ipv4"})).await;
    assert_eq!(
        o.reason.as_deref(),
        Some("TLS: the certificate is not signed by a trusted authority")
    );
    let o = http(json!({"url": url, "ip_family": "ipv4", "tls_verify": false})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
}

async fn tls(settings: Value) -> Outcome {
    checker()
        .run(&spec(MonitorKind::Tls, settings, 5_000))
        .await
}

#[tokio::test]
async fn tls_checks_see_expired_and_wrong_host_certificates() {
    let ca = test_ca();
    let good = serve(Some(server_tls(leaf(&ca, &["localhost"], false)))).await;
    let expired = serve(Some(server_tls(leaf(&ca, &["localhost"], true)))).await;
    let o = tls(json!({"host": "127.0.0.1", "port": good.port(), "server_name": "localhost", "tls_ca_pem": ca.3, "assertions": ["cert.expires_in > 30d"]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert!(o.details["cert"]["expires_at"].is_string());
    let o = tls(json!({"host": "127.0.0.1", "port": expired.port(), "server_name": "localhost", "tls_ca_pem": ca.3})).await;
    assert_eq!(
        o.reason.as_deref(),
        Some("TLS: the certificate has expired")
    );
    let o = tls(json!({"host": "127.0.0.1", "port": good.port(), "server_name": "other.test", "tls_ca_pem": ca.3})).await;
    assert_eq!(
        o.reason.as_deref(),
        Some("TLS: the certificate does not match the host name")
    );
    let o = tls(json!({"host": "127.0.0.1", "port": good.port(), "server_name": "localhost", "tls_ca_pem": ca.3, "assertions": ["cert.expires_in > 100d"]})).await;
    assert_eq!(
        o.status,
        CheckStatus::Down,
        "90 days left is not more than 100"
    );
}

/// Two intermediates that sign each other, and a leaf under one of them: a chain with no end.
fn looping_chain(names: &[&str]) -> Leaf {
    let ca = |cn: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        (params, KeyPair::generate().unwrap())
    };
    let (a, a_key) = ca("Loop A");
    let (b, b_key) = ca("Loop B");
    // A as issued by B, and B as issued by A.
    let a_by_b = a
        .clone()
        .signed_by(&a_key, &Issuer::from_params(&b, &b_key))
        .unwrap();
    let b_by_a = b
        .clone()
        .signed_by(&b_key, &Issuer::from_params(&a, &a_key))
        .unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    for n in names {
        params
            .subject_alt_names
            .push(SanType::DnsName((*n).try_into().unwrap()));
    }
    let cert = params
        .signed_by(&key, &Issuer::from_params(&a, &a_key))
        .unwrap();
    Leaf {
        chain: vec![
            cert.der().clone(),
            a_by_b.der().clone(),
            b_by_a.der().clone(),
        ],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

#[tokio::test]
async fn a_certificate_chain_that_loops_is_down_with_a_reason_not_a_hang() {
    let ca = test_ca();
    let addr = serve(Some(server_tls(looping_chain(&["localhost"])))).await;
    let started = std::time::Instant::now();
    let o = tls(json!({"host": "127.0.0.1", "port": addr.port(), "server_name": "localhost", "tls_ca_pem": ca.3})).await;
    assert_eq!(o.status, CheckStatus::Down, "{o:?}");
    let reason = o.reason.unwrap_or_default();
    assert!(reason.starts_with("TLS: "), "{reason}");
    assert!(!reason.contains("timed out"), "{reason}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let o = http(json!({"url": format!("https://localhost:{}/", addr.port()), "ip_family": "ipv4", "tls_ca_pem": ca.3})).await;
    assert_eq!(o.status, CheckStatus::Down, "{o:?}");
    assert!(o.reason.unwrap_or_default().contains("TLS"));
}

async fn tcp(settings: Value) -> Outcome {
    checker()
        .run(&spec(MonitorKind::Tcp, settings, 2_000))
        .await
}

#[tokio::test]
async fn tcp_connects_sends_and_expects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await
                    && &buf[..n] == b"PING\r\n"
                {
                    let _ = s.write_all(b"+PONG\r\n").await;
                }
            });
        }
    });
    let o = tcp(json!({"host": "127.0.0.1", "port": port})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert!(o.details["timings"]["connect_us"].as_i64().is_some());
    let o =
        tcp(json!({"host": "127.0.0.1", "port": port, "send": "PING\r\n", "expect": "PONG"})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = tcp(json!({"host": "127.0.0.1", "port": port, "send": "PING\r\n", "expect": "HELLO"}))
        .await;
    assert_eq!(
        o.reason.as_deref(),
        Some("reply does not contain `HELLO` (got `+PONG\r\n`)")
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = tcp(json!({"host": "127.0.0.1", "port": closed})).await;
    assert!(o.reason.unwrap().ends_with("connection refused"));
    let o = tcp(json!({"host": "::1", "port": closed})).await;
    assert_eq!(o.status, CheckStatus::Down);
}

#[tokio::test]
async fn a_server_that_does_not_speak_http_is_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        }
    });
    let o = http(json!({"url": format!("http://{addr}/")})).await;
    assert_eq!(o.status, CheckStatus::Down);
    assert!(o.reason.as_deref().unwrap().contains("HTTP"), "{o:?}");
}

/// A DNS server on loopback serving test records (built from hickory-proto's message types).
async fn dns_server(bind: &str) -> SocketAddr {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, CNAME, MX, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    let sock = tokio::net::UdpSocket::bind(bind).await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let name = query.name().to_ascii();
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.message_type = MessageType::Response;
            r.add_query(query.clone());
            let n = |s: &str| Name::from_ascii(s).unwrap();
            let records: Vec<RData> = match (name.as_str(), query.query_type()) {
                ("app.test.", RecordType::A) => vec![
                    RData::A(A([127, 0, 0, 1].into())),
                    RData::A(A([127, 0, 0, 2].into())),
                ],
                ("alias.test.", RecordType::CNAME) => vec![RData::CNAME(CNAME(n("app.test.")))],
                ("mail.test.", RecordType::MX) => vec![RData::MX(MX::new(10, n("mx.test.")))],
                ("txt.test.", RecordType::TXT) => {
                    vec![RData::TXT(TXT::new(vec!["v=spf1 -all".into()]))]
                }
                ("slow.test.", _) => continue,
                ("app.test.", _) => vec![],
                _ => {
                    r.metadata.response_code = ResponseCode::NXDomain;
                    vec![]
                }
            };
            for data in records {
                r.add_answer(Record::from_rdata(query.name().clone(), 60, data));
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

async fn dns(settings: Value) -> Outcome {
    checker()
        .run(&spec(MonitorKind::Dns, settings, 1_000))
        .await
}

#[tokio::test]
async fn dns_queries_report_answers_and_response_codes() {
    let server = dns_server("127.0.0.1:0").await.to_string();
    let o = dns(json!({"query": "app.test", "record_type": "A", "resolver": server, "assertions": ["dns.answers contains \"127.0.0.2\"", "dns.rcode == \"NOERROR\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(
        o.details["dns"]["answers"],
        json!(["127.0.0.1", "127.0.0.2"])
    );
    let o = dns(json!({"query": "alias.test", "record_type": "CNAME", "resolver": server, "assertions": ["dns.answers contains \"app.test\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = dns(json!({"query": "mail.test", "record_type": "MX", "resolver": server, "assertions": ["dns.answers contains \"10 mx.test\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = dns(json!({"query": "txt.test", "record_type": "TXT", "resolver": server, "assertions": ["dns.answers matches \"spf1\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = dns(json!({"query": "missing.test", "resolver": server})).await;
    assert_eq!(o.reason.as_deref(), Some("DNS NXDOMAIN for missing.test A"));
    let o = dns(json!({"query": "missing.test", "resolver": server, "assertions": ["dns.rcode == \"NXDOMAIN\""]})).await;
    assert_eq!(
        o.status,
        CheckStatus::Up,
        "expecting NXDOMAIN is allowed: {o:?}"
    );
    let o = dns(json!({"query": "app.test", "record_type": "AAAA", "resolver": server})).await;
    assert_eq!(o.reason.as_deref(), Some("no AAAA record for app.test"));
    let o = dns(json!({"query": "slow.test", "resolver": server})).await;
    assert_eq!(
        o.reason.as_deref(),
        Some("timed out after 1s (waiting for the DNS answer)")
    );
    let v6 = dns_server("[::1]:0").await.to_string();
    let o = dns(json!({"query": "app.test", "resolver": v6})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
}

#[tokio::test]
async fn icmp_pings_loopback_on_both_families() {
    for host in ["127.0.0.1", "::1"] {
        let o = checker()
            .run(&spec(
                MonitorKind::Icmp,
                json!({"host": host, "packets": 3, "assertions": ["response_time < 500ms"]}),
                3_000,
            ))
            .await;
        assert_eq!(o.status, CheckStatus::Up, "{host}: {o:?}");
        assert_eq!(o.details["icmp"]["received"], 3, "{o:?}");
        assert_eq!(o.details["icmp"]["loss_percent"], 0.0);
        assert!(o.details["icmp"]["rtt_avg_ms"].as_f64().unwrap() >= 0.0);
    }
}

/// A forward proxy on loopback: CONNECT tunnels and absolute-form requests. It counts the
/// connections it served and refuses clients without the expected credentials.
async fn proxy(auth: Option<&'static str>) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                if let Some(want) = auth
                    && !text.contains(&format!("Proxy-Authorization: {want}"))
                    && !text.contains(&format!("proxy-authorization: {want}"))
                {
                    let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n").await;
                    return;
                }
                let mut words = text.split_whitespace();
                let (method, target) = (
                    words.next().unwrap_or_default(),
                    words.next().unwrap_or_default(),
                );
                let dest = if method == "CONNECT" {
                    target.to_owned()
                } else {
                    target
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&dest).await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if method == "CONNECT" {
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                } else {
                    let _ = upstream.write_all(&head).await;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, served)
}

#[tokio::test]
async fn http_and_https_go_through_a_proxy() {
    let (proxy_addr, served) = proxy(None).await;
    let plain = serve(None).await;
    let o = http(json!({"url": format!("http://{plain}/health"), "proxy": format!("http://{proxy_addr}"), "assertions": ["json.status == \"UP\""]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(
        o.details["http"]["address"],
        proxy_addr.to_string(),
        "connected to the proxy"
    );
    let ca = test_ca();
    let secure = serve(Some(server_tls(leaf(&ca, &["localhost"], false)))).await;
    let o = http(json!({"url": format!("https://localhost:{}/health", secure.port()), "tls_ca_pem": ca.3, "proxy": format!("http://{proxy_addr}"), "assertions": ["cert.expires_in > 14d"]})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "both checks went through the proxy"
    );

    let (locked, _) = proxy(Some("Basic dXNlcjpwQHNz")).await;
    let o = http(json!({"url": format!("https://localhost:{}/health", secure.port()), "tls_ca_pem": ca.3, "proxy": format!("http://{locked}")})).await;
    assert_eq!(
        o.reason.as_deref(),
        Some("proxy refused the tunnel: HTTP/1.1 407 Proxy Authentication Required")
    );
    let o = http(json!({"url": format!("https://localhost:{}/health", secure.port()), "tls_ca_pem": ca.3, "proxy": format!("http://user:p%40ss@{locked}")})).await;
    assert_eq!(
        o.status,
        CheckStatus::Up,
        "credentials from the proxy URL are sent: {o:?}"
    );
    let o = http(json!({"url": format!("http://{plain}/health"), "proxy": format!("http://user:p%40ss@{locked}")})).await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
}

#[tokio::test]
async fn blocked_networks_are_refused_on_the_resolved_address() {
    use pingtower_checks::Blocklist;
    let blocked =
        checker().with_blocklist(Blocklist::parse("127.0.0.0/8, 169.254.169.254").unwrap());
    let run = |kind: MonitorKind, settings: Value| {
        let blocked = blocked.clone();
        async move { blocked.run(&spec(kind, settings, 5_000)).await }
    };
    let is_blocked = |o: &Outcome| {
        o.status == CheckStatus::Down
            && o.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("blocked:"))
    };
    let v4 = serve(None).await;
    let v6 = serve_at("[::1]:0", None).await;

    // An address in the range, literally, IPv4-mapped, or behind a name.
    let o = run(
        MonitorKind::Http,
        json!({"url": format!("http://{v4}/health")}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");
    assert!(
        o.reason.as_deref().unwrap().contains("127.0.0.0/8"),
        "{o:?}"
    );
    let o = run(
        MonitorKind::Http,
        json!({"url": format!("http://[::ffff:127.0.0.1]:{}/health", v4.port())}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");
    let o = run(
        MonitorKind::Http,
        json!({"url": format!("http://localhost:{}/health", v4.port()), "ip_family": "ipv4"}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");

    // Outside the range: checked as usual; but a redirect into the range is refused.
    let o = run(
        MonitorKind::Http,
        json!({"url": format!("http://{v6}/health")}),
    )
    .await;
    assert_eq!(o.status, CheckStatus::Up, "{o:?}");
    let o = run(
        MonitorKind::Http,
        json!({"url": format!("http://{v6}/jump?to=http://{v4}/health")}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");
    let o = checker()
        .run(&spec(
            MonitorKind::Http,
            json!({"url": format!("http://{v6}/jump?to=http://{v4}/health")}),
            5_000,
        ))
        .await;
    assert_eq!(
        o.status,
        CheckStatus::Up,
        "without a blocklist the redirect is followed: {o:?}"
    );

    // Every other kind.
    let o = run(
        MonitorKind::Tcp,
        json!({"host": "127.0.0.1", "port": v4.port()}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");
    let o = run(
        MonitorKind::Tls,
        json!({"host": "127.0.0.1", "port": v4.port()}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");
    let o = run(MonitorKind::Icmp, json!({"host": "127.0.0.1"})).await;
    assert!(is_blocked(&o), "{o:?}");
    let o = run(
        MonitorKind::Dns,
        json!({"query": "x.test", "resolver": "127.0.0.1:53"}),
    )
    .await;
    assert!(is_blocked(&o), "{o:?}");
    // A single address is a range of one (checked without sending anything there).
    let metadata = Blocklist::parse("169.254.169.254").unwrap();
    assert!(
        metadata
            .blocks("169.254.169.254".parse().unwrap())
            .is_some()
    );
    assert!(
        metadata
            .blocks("169.254.169.253".parse().unwrap())
            .is_none()
    );
    assert!(Blocklist::parse("10.0.0.0/33").is_err());
    assert!(Blocklist::parse("").unwrap().is_empty());
}
