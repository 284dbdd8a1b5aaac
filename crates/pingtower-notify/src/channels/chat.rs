//! Chat services with incoming webhooks (the channel's `url` is the webhook, a secret) and
//! those with a bot or access token: Slack, Discord, Microsoft Teams, Mattermost, Google Chat,
//! Telegram and Matrix.

use super::{Answer, Channel, Outbound, SendError, http_send};
use crate::{Event, Notification, render};
use serde_json::json;
use std::time::Duration;

fn colour(event: Event) -> (&'static str, u32) {
    match event {
        Event::Down => ("#d92d20", 0x00d9_2d20),
        Event::Up => ("#12b76a", 0x0012_b76a),
        Event::Degraded => ("#f79009", 0x00f7_9009),
        Event::CertExpiring => ("#f79009", 0x00f7_9009),
        Event::Test => ("#2e90fa", 0x002e_90fa),
    }
}

fn post_json(
    http: &Outbound,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> reqwest::RequestBuilder {
    http.post(url).timeout(timeout).json(body)
}

/// Slack incoming webhook: `{"text", "attachments"}`.
pub(super) async fn slack(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = c.required("url")?;
    let body = json!({
        "text": format!("*{}*", render::title(n)),
        "attachments": [{"color": colour(n.event).0, "text": render::text(n)}],
    });
    http_send(http, post_json(http, url, &body, timeout)).await
}

/// Discord webhook: `{"content", "embeds"}`.
pub(super) async fn discord(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = c.required("url")?;
    let body = json!({
        "content": format!("**{}**", render::title(n)),
        "embeds": [{"title": render::title(n), "description": render::text(n), "color": colour(n.event).1}],
        "allowed_mentions": {"parse": []},
    });
    http_send(http, post_json(http, url, &body, timeout)).await
}

/// Microsoft Teams incoming webhook: a MessageCard.
pub(super) async fn teams(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = c.required("url")?;
    let body = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": render::title(n),
        "themeColor": colour(n.event).0.trim_start_matches('#'),
        "title": render::title(n),
        "text": render::text(n),
    });
    http_send(http, post_json(http, url, &body, timeout)).await
}

/// Mattermost incoming webhook: `{"text"}`, optionally to another channel.
pub(super) async fn mattermost(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = c.required("url")?;
    let mut body = json!({
        "username": "PingTower",
        "text": format!("#### {}\n{}", render::title(n), render::text(n)),
    });
    if let Some(ch) = c.text("channel") {
        body["channel"] = json!(ch);
    }
    http_send(http, post_json(http, url, &body, timeout)).await
}

/// Google Chat space webhook: `{"text"}`.
pub(super) async fn google_chat(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = c.required("url")?;
    let body = json!({"text": format!("*{}*\n{}", render::title(n), render::text(n))});
    http_send(http, post_json(http, url, &body, timeout)).await
}

/// Telegram Bot API: `POST /bot<token>/sendMessage`.
pub(super) async fn telegram(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let token = c.required("bot_token")?;
    let base = c
        .text("base_url")
        .unwrap_or("https://api.telegram.org")
        .trim_end_matches('/');
    let chat_id = c
        .spec
        .get("chat_id")
        .cloned()
        .ok_or_else(|| SendError::Permanent("the channel has no chat_id".into()))?;
    let body = json!({
        "chat_id": chat_id,
        "text": format!("{}\n{}", render::title(n), render::text(n)),
        "disable_web_page_preview": true,
    });
    http_send(
        http,
        post_json(
            http,
            &format!("{base}/bot{token}/sendMessage"),
            &body,
            timeout,
        ),
    )
    .await
}

/// Matrix client-server API: `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`;
/// the transaction id is the notification's idempotency key, so a retry is not a second message.
pub(super) async fn matrix(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let homeserver = c.required("homeserver")?.trim_end_matches('/');
    let room = c.required("room_id")?;
    let token = c.required("access_token")?;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let url = format!(
        "{homeserver}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        enc(room),
        enc(&n.idempotency_key)
    );
    let body = json!({
        "msgtype": "m.text",
        "body": format!("{}\n{}", render::title(n), render::text(n)),
    });
    let req = http
        .put(url)
        .timeout(timeout)
        .bearer_auth(token)
        .json(&body);
    http_send(http, req).await
}
