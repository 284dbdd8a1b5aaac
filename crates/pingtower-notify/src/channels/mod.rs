//! One module per channel kind. Each takes the channel's settings, its opened credentials and
//! the notification, sends one request, and answers what the provider said.

mod chat;
mod email;
mod paging;
mod webhook;

use crate::Notification;
pub use crate::outbound::Outbound;
use serde_json::{Map, Value};
use std::time::Duration;

/// A channel ready to send: its kind, settings and (opened) credentials.
pub struct Channel<'a> {
    pub kind: &'a str,
    pub spec: &'a Map<String, Value>,
    pub secrets: &'a Map<String, Value>,
}

/// A stored channel's kind and settings.
pub fn spec_of(channel: &pingtower_core::Resource) -> (String, Map<String, Value>) {
    let spec = channel.spec.as_object().cloned().unwrap_or_default();
    let kind = spec
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (kind, spec)
}

impl Channel<'_> {
    /// A setting or credential the channel must have.
    pub(crate) fn required(&self, key: &str) -> Result<&str, SendError> {
        self.text(key)
            .ok_or_else(|| SendError::Permanent(format!("the channel has no {key}")))
    }

    /// A setting or credential as text.
    pub(crate) fn text(&self, key: &str) -> Option<&str> {
        self.secrets
            .get(key)
            .or_else(|| self.spec.get(key))
            .and_then(Value::as_str)
    }
}

/// What the provider answered to a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The start of the body, for the delivery log.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again: the network, a timeout, 5xx, 429.
    #[error("{0}")]
    Transient(String),
    /// Trying again will not help: 4xx, a bad setting.
    #[error("{0}")]
    Permanent(String),
}

/// Longest provider answer kept in the delivery log and shown to a person: enough to see
/// what the provider said ("invalid_token", "channel_not_found"), too short to read pages
/// through a channel.
pub const ANSWER_MAX: usize = 200;

/// Most bytes of a provider's answer read at all.
const READ_MAX: usize = 4096;

/// The start of a provider's answer, on one line, without control characters.
pub(crate) fn cut(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ANSWER_MAX)
        .collect();
    if text.chars().nth(ANSWER_MAX).is_some() {
        out.push('…');
    }
    out
}

/// An error and its causes in one line (reqwest keeps the useful part, such as a refusal by
/// the blocklist, in the source chain).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Sends one HTTP request and judges the answer. The URL is checked against the blocklist
/// first (names are checked when the client resolves them); redirects are not followed.
pub(crate) async fn http_send(
    http: &Outbound,
    req: reqwest::RequestBuilder,
) -> Result<Answer, SendError> {
    let (client, req) = req.build_split();
    let req = req.map_err(|e| SendError::Permanent(format!("bad request: {}", e.without_url())))?;
    http.check_url(req.url()).map_err(SendError::Permanent)?;
    let mut r = client.execute(req).await.map_err(|e| {
        // Without the URL: it may hold a token (chat webhooks).
        let e = e.without_url();
        let text = format!("cannot reach the provider: {}", describe(&e));
        if crate::outbound::Refused::is_blocked(&e) {
            SendError::Permanent(text)
        } else {
            SendError::Transient(text)
        }
    })?;
    let status = r.status().as_u16();
    if r.status().is_redirection() {
        let to = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(cut)
            .unwrap_or_default();
        return Err(SendError::Permanent(format!(
            "HTTP {status}: the provider redirects to {to}; channels do not follow redirects, so set the channel's URL to where it should go"
        )));
    }
    let mut bytes = Vec::new();
    while bytes.len() < READ_MAX {
        match r.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(READ_MAX);
    let body = cut(&String::from_utf8_lossy(&bytes));
    match status {
        200..=299 => Ok(Answer { status, body }),
        429 | 500..=599 | 408 => Err(SendError::Transient(format!("HTTP {status}: {body}"))),
        _ => Err(SendError::Permanent(format!("HTTP {status}: {body}"))),
    }
}

/// Sends `n` through `channel`.
///
/// Ends within `timeout` whatever the provider does (a server that accepts and never answers,
/// an SMTP server that never greets).
pub async fn send(
    http: &Outbound,
    channel: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    match tokio::time::timeout(timeout, send_unbounded(http, channel, n, timeout)).await {
        Ok(sent) => sent,
        Err(_) => Err(SendError::Transient(format!(
            "the provider did not answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

async fn send_unbounded(
    http: &Outbound,
    channel: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    match channel.kind {
        "webhook" => webhook::send(http, channel, n, timeout).await,
        "email" => email::send(http, channel, n, timeout).await,
        "slack" => chat::slack(http, channel, n, timeout).await,
        "discord" => chat::discord(http, channel, n, timeout).await,
        "teams" => chat::teams(http, channel, n, timeout).await,
        "mattermost" => chat::mattermost(http, channel, n, timeout).await,
        "google_chat" => chat::google_chat(http, channel, n, timeout).await,
        "telegram" => chat::telegram(http, channel, n, timeout).await,
        "matrix" => chat::matrix(http, channel, n, timeout).await,
        "pagerduty" => paging::pagerduty(http, channel, n, timeout).await,
        "opsgenie" => paging::opsgenie(http, channel, n, timeout).await,
        "ntfy" => paging::ntfy(http, channel, n, timeout).await,
        "gotify" => paging::gotify(http, channel, n, timeout).await,
        "pushover" => paging::pushover(http, channel, n, timeout).await,
        "twilio" => paging::twilio(http, channel, n, timeout).await,
        other => Err(SendError::Permanent(format!(
            "sending to {other} channels is not built yet"
        ))),
    }
}
