//! One module per channel kind. Each takes the channel's settings, its opened credentials and
//! the notification, sends one request, and answers what the provider said.

mod chat;
mod email;
mod paging;
mod webhook;

use crate::Notification;
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

/// Longest provider answer kept in the delivery log.
pub const ANSWER_MAX: usize = 500;

pub(crate) fn cut(text: &str) -> String {
    text.chars().take(ANSWER_MAX).collect()
}

/// Sends one HTTP request and judges the answer.
pub(crate) async fn http_send(req: reqwest::RequestBuilder) -> Result<Answer, SendError> {
    let r = req.send().await.map_err(|e| {
        // Without the URL: it may hold a token (chat webhooks).
        SendError::Transient(format!("cannot reach the provider: {}", e.without_url()))
    })?;
    let status = r.status().as_u16();
    let body = cut(&r.text().await.unwrap_or_default());
    match status {
        200..=299 => Ok(Answer { status, body }),
        429 | 500..=599 | 408 => Err(SendError::Transient(format!("HTTP {status}: {body}"))),
        _ => Err(SendError::Permanent(format!("HTTP {status}: {body}"))),
    }
}

/// Sends `n` through `channel`.
pub async fn send(
    http: &reqwest::Client,
    channel: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    match channel.kind {
        "webhook" => webhook::send(http, channel, n, timeout).await,
        "email" => email::send(channel, n, timeout).await,
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
