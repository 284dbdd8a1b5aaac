//! Paging and phone notifications: PagerDuty Events v2, Opsgenie, ntfy, Gotify, Pushover and
//! SMS through Twilio. Each provider's base URL can be overridden (`base_url`, or `url` for the
//! self-hosted ones) for self-hosted servers and for tests.

use super::{Answer, Channel, Outbound, SendError, http_send};
use crate::{Event, Notification, render};
use serde_json::json;
use std::time::Duration;

fn base<'a>(c: &'a Channel<'_>, default: &'a str) -> &'a str {
    c.text("base_url").unwrap_or(default).trim_end_matches('/')
}

/// The key that ties a problem's trigger to its resolve: one per incident.
fn alert_key(n: &Notification) -> String {
    match n.incident_id {
        Some(i) => format!("pingtower-{i}"),
        None => format!("pingtower-{}", n.monitor_id),
    }
}

/// PagerDuty Events API v2: trigger on DOWN, resolve on UP, with one dedup key per incident.
pub(super) async fn pagerduty(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let key = c.required("routing_key")?;
    let url = format!("{}/v2/enqueue", base(c, "https://events.pagerduty.com"));
    let body = match n.event {
        Event::Up => {
            json!({"routing_key": key, "event_action": "resolve", "dedup_key": alert_key(n)})
        }
        event => {
            let severity = match event {
                Event::Degraded => "warning",
                Event::Test => "info",
                Event::CertExpiring => "warning",
                _ => c.text("severity").unwrap_or("critical"),
            };
            json!({
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": alert_key(n),
                "payload": {
                    "summary": render::text(n),
                    "source": n.monitor_name,
                    "severity": severity,
                    "timestamp": n.at,
                    "component": n.monitor_name,
                    "custom_details": {"reason": n.reason, "monitor_id": n.monitor_id},
                },
            })
        }
    };
    http_send(http, http.post(url).timeout(timeout).json(&body)).await
}

/// Opsgenie Alert API: create on DOWN (alias per incident), close on UP.
pub(super) async fn opsgenie(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let key = c.required("api_key")?;
    let root = base(c, "https://api.opsgenie.com");
    let alias = alert_key(n);
    let req = match n.event {
        Event::Up => http
            .post(format!("{root}/v2/alerts/{alias}/close"))
            .query(&[("identifierType", "alias")])
            .json(&json!({"source": "PingTower", "note": render::text(n)})),
        event => http.post(format!("{root}/v2/alerts")).json(&json!({
            "message": render::title(n),
            "alias": alias,
            "description": render::text(n),
            "priority": match event {
                Event::Degraded => "P3",
                Event::Test => "P5",
                Event::CertExpiring => "P3",
                _ => c.text("priority").unwrap_or("P1"),
            },
            "source": "PingTower",
            "tags": ["pingtower"],
        })),
    };
    http_send(
        http,
        req.timeout(timeout)
            .header("authorization", format!("GenieKey {key}")),
    )
    .await
}

/// ntfy: the text as the body of a POST to the topic URL, the title and priority as headers.
pub(super) async fn ntfy(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = c.required("url")?;
    let priority = match n.event {
        Event::Down => c.text("priority").unwrap_or("high"),
        _ => "default",
    };
    let tags = match n.event {
        Event::Down => "rotating_light",
        Event::Up => "white_check_mark",
        Event::Degraded => "warning",
        Event::Test => "information_source",
        Event::CertExpiring => "lock",
    };
    let mut req = http
        .post(url)
        .timeout(timeout)
        .header("title", render::title(n))
        .header("priority", priority)
        .header("tags", tags)
        .body(render::text(n));
    if let Some(token) = c.text("token") {
        req = req.bearer_auth(token);
    }
    http_send(http, req).await
}

/// Gotify: `POST {url}/message` with the application token.
pub(super) async fn gotify(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = format!("{}/message", c.required("url")?.trim_end_matches('/'));
    let token = c.required("token")?;
    let priority: u8 = match n.event {
        Event::Down => 8,
        Event::Degraded => 5,
        _ => 3,
    };
    let body = json!({"title": render::title(n), "message": render::text(n), "priority": priority});
    http_send(
        http,
        http.post(url)
            .timeout(timeout)
            .header("x-gotify-key", token)
            .json(&body),
    )
    .await
}

/// Pushover: `POST /1/messages.json`, a form with the application token and user key.
pub(super) async fn pushover(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = format!("{}/1/messages.json", base(c, "https://api.pushover.net"));
    let priority = match n.event {
        Event::Down => "1",
        _ => "0",
    };
    let form = [
        ("token", c.required("token")?.to_owned()),
        ("user", c.required("user_key")?.to_owned()),
        ("title", render::title(n)),
        ("message", render::text(n)),
        ("priority", priority.to_owned()),
    ];
    http_send(http, http.post(url).timeout(timeout).form(&form)).await
}

/// Twilio SMS: `POST /2010-04-01/Accounts/{sid}/Messages.json`, a form, basic auth.
pub(super) async fn twilio(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let sid = c.required("account_sid")?;
    let token = c.required("auth_token")?;
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/Messages.json",
        base(c, "https://api.twilio.com")
    );
    // An SMS is short: the title and the first line.
    let text: String = format!("{}: {}", render::title(n), render::text(n))
        .chars()
        .take(320)
        .collect();
    let form = [
        ("To", c.required("to")?.to_owned()),
        ("From", c.required("from")?.to_owned()),
        ("Body", text),
    ];
    http_send(
        http,
        http.post(url)
            .timeout(timeout)
            .basic_auth(sid, Some(token))
            .form(&form),
    )
    .await
}
