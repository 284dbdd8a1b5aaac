//! The words of a notification, the same in every medium: a short title and one or two lines.

use crate::{Event, Notification};

/// "1h 5m", "3m 20s", "45s".
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub fn title(n: &Notification) -> String {
    match n.event {
        Event::Down => format!("DOWN: {}", n.monitor_name),
        Event::Up => format!("UP: {}", n.monitor_name),
        Event::Degraded => format!("DEGRADED: {}", n.monitor_name),
        Event::CertExpiring => format!("CERTIFICATE EXPIRING: {}", n.monitor_name),
        Event::Test => "PingTower test message".to_owned(),
    }
}

pub fn text(n: &Notification) -> String {
    match &n.link {
        Some(link) => format!("{} {link}", sentence(n)),
        None => sentence(n),
    }
}

fn sentence(n: &Notification) -> String {
    let at = n.at.to_string();
    match n.event {
        Event::Down => format!(
            "{} is down since {at}: {}",
            n.monitor_name,
            n.reason.as_deref().unwrap_or("no reason given")
        ),
        Event::Up => match n.down_for_ms {
            Some(ms) => format!(
                "{} is up again at {at}, after {} down.",
                n.monitor_name,
                duration(ms)
            ),
            None => format!("{} is up again at {at}.", n.monitor_name),
        },
        Event::Degraded => format!(
            "{} is slow but working since {at}: {}",
            n.monitor_name,
            n.reason.as_deref().unwrap_or("degraded")
        ),
        Event::CertExpiring => format!(
            "The TLS certificate of {} {}.",
            n.monitor_name,
            n.reason.as_deref().unwrap_or("expires soon")
        ),
        Event::Test => "This channel works: PingTower can reach it.".to_owned(),
    }
}

/// The JSON every webhook-like channel gets (unless it has a template).
pub fn json(n: &Notification) -> serde_json::Value {
    serde_json::json!({
        "event": n.event.as_str(),
        "title": title(n),
        "text": text(n),
        "monitor": {"id": n.monitor_id, "name": n.monitor_name},
        "status": n.status,
        "reason": n.reason,
        "at": n.at,
        "incident_id": n.incident_id,
        "down_for_seconds": n.down_for_ms.map(|ms| ms / 1000),
        "link": n.link,
    })
}

/// Fills `{{field}}` placeholders (`event`, `title`, `text`, `monitor`, `monitor_id`, `status`,
/// `reason`, `at`, `duration`); unknown ones are left as they are. Values are inserted as JSON
/// string contents (escaped) when `json_escape`, so a template can be a JSON document.
pub fn template(t: &str, n: &Notification, json_escape: bool) -> String {
    let values = [
        ("event", n.event.as_str().to_owned()),
        ("title", title(n)),
        ("text", text(n)),
        ("monitor", n.monitor_name.clone()),
        ("monitor_id", n.monitor_id.to_string()),
        ("status", n.status.as_str().to_owned()),
        ("reason", n.reason.clone().unwrap_or_default()),
        ("at", n.at.to_string()),
        ("duration", n.down_for_ms.map(duration).unwrap_or_default()),
        ("link", n.link.clone().unwrap_or_default()),
    ];
    let mut out = t.to_owned();
    for (k, v) in values {
        let v = if json_escape {
            let quoted = serde_json::Value::String(v).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        } else {
            v
        };
        out = out.replace(&format!("{{{{{k}}}}}"), &v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration(45_000), "45s");
        assert_eq!(duration(200_000), "3m 20s");
        assert_eq!(duration(3_900_000), "1h 5m");
        assert_eq!(duration(90_000_000), "1d 1h");
    }
}
