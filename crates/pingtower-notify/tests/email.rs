//! Email against a real SMTP server on loopback (aiosmtpd, which `scripts/test.sh` installs into
//! its Python environment; `PINGTOWER_TEST_PYTHON` names that Python), plain and with STARTTLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_core::*;
use pingtower_notify::channels::{self, Channel};
use pingtower_notify::{Event, Notification};
use serde_json::{Map, Value, json};
use std::time::Duration;

#[path = "support/smtp.rs"]
mod smtp_server;
use smtp_server::smtp;

fn notification() -> Notification {
    Notification {
        delivery_id: DeliveryId::new(),
        tenant_id: TenantId::new(),
        channel_id: ResourceId::new(),
        event: Event::Down,
        monitor_id: MonitorId::new(),
        monitor_name: "Checkout API".into(),
        status: MonitorStatus::Down,
        reason: Some("HTTP 503".into()),
        at: Timestamp::from_millis(1_795_000_000_000),
        incident_id: None,
        down_for_ms: None,
        idempotency_key: "k".into(),
        link: None,
    }
}

async fn send(spec: Value, secrets: Value) -> Result<channels::Answer, channels::SendError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec: Map<String, Value> = spec.as_object().unwrap().clone();
    let secrets: Map<String, Value> = secrets.as_object().unwrap().clone();
    let ch = Channel {
        kind: "email",
        spec: &spec,
        secrets: &secrets,
    };
    channels::send(
        &channels::Outbound::new(Default::default()).unwrap(),
        &ch,
        &notification(),
        Duration::from_secs(10),
    )
    .await
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server() {
    let server = smtp(&[]);
    let answer = send(
        json!({"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_tls": "none",
               "from": "PingTower <alerts@example.test>", "to": ["ops@example.test", "oncall@example.test"]}),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 250);
    let msg = server.message();
    assert!(msg.contains("Subject: DOWN: Checkout API"), "{msg}");
    assert!(
        msg.contains("ops@example.test") && msg.contains("oncall@example.test"),
        "{msg}"
    );
    assert!(
        msg.contains("From: PingTower <alerts@example.test>"),
        "{msg}"
    );
    assert!(
        msg.contains("Checkout API is down since") && msg.contains("HTTP 503"),
        "{msg}"
    );
}

#[tokio::test]
async fn starttls_is_required_and_a_private_ca_can_be_trusted() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = smtp(&[
        "--tlscert",
        cert_path.to_str().unwrap(),
        "--tlskey",
        key_path.to_str().unwrap(),
    ]);
    let spec = |ca: Option<String>| {
        let mut s = json!({"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_tls": "starttls",
                           "to": ["ops@example.test"]});
        if let Some(ca) = ca {
            s["tls_ca_pem"] = json!(ca);
        }
        s
    };
    // An untrusted certificate: refused, nothing sent in the clear.
    let e = send(spec(None), json!({})).await.unwrap_err();
    assert!(e.to_string().contains("SMTP"), "{e}");
    // Trusted through the channel's CA: sent over TLS.
    send(spec(Some(cert.pem())), json!({})).await.unwrap();
    let msg = server.message();
    assert!(msg.contains("Subject: DOWN: Checkout API"), "{msg}");
}
