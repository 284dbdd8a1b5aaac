//! A generic webhook: a JSON body (or the channel's template), its custom headers, and with a
//! secret an HMAC-SHA256 signature of the body in `X-PingTower-Signature: sha256=<hex>`.

use super::{Answer, Channel, Outbound, SendError, http_send};
use crate::{Notification, render};
use std::time::Duration;

pub(super) async fn send(
    http: &Outbound,
    channel: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = channel
        .text("url")
        .ok_or_else(|| SendError::Permanent("the webhook has no url".into()))?;
    let method = channel
        .text("method")
        .unwrap_or("POST")
        .to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| SendError::Permanent(format!("`{method}` is not an HTTP method")))?;
    let (body, content_type) = match channel.text("body_template") {
        Some(t) => {
            let looks_json = t.trim_start().starts_with(['{', '[']);
            let body = render::template(t, n, looks_json);
            let ct = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (body, ct)
        }
        None => (render::json(n).to_string(), "application/json"),
    };
    let mut req = http
        .request(method, url)
        .timeout(timeout)
        .header("content-type", content_type)
        .header(
            "user-agent",
            concat!("PingTower/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-pingtower-event", n.event.as_str())
        .header("idempotency-key", &n.idempotency_key);
    // Sealed with the credentials (channels stored before that keep them in their settings).
    let headers = channel
        .secrets
        .get("headers")
        .or_else(|| channel.spec.get("headers"));
    if let Some(headers) = headers.and_then(|h| h.as_object()) {
        for (k, v) in headers {
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
    }
    if let Some(secret) = channel.text("hmac_secret") {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let sig = ring::hmac::sign(&key, body.as_bytes());
        req = req.header(
            "x-pingtower-signature",
            format!("sha256={}", hex::encode(sig.as_ref())),
        );
    }
    http_send(http, req.body(body)).await
}
