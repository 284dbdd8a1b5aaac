//! Monitors: what to check, how often, and what state it is in.

use crate::{MonitorId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

crate::wire_enum! {
    /// The kind of check a monitor runs.
    pub enum MonitorKind ("monitor kind") {
        Http => "http",
        Tcp => "tcp",
        Icmp => "icmp",
        Dns => "dns",
        Tls => "tls",
        Heartbeat => "heartbeat",
        /// Counts the tenant's analytics events against a condition.
        Event => "event",
    }
}

crate::wire_enum! {
    /// A monitor's evaluated state (after its confirmation counts), as users see it.
    pub enum MonitorStatus ("monitor status") {
        Pending => "pending",
        Up => "up",
        Down => "down",
        Degraded => "degraded",
        Paused => "paused",
        Maintenance => "maintenance",
    }
}

/// Shortest and longest interval a monitor may have.
pub const MIN_INTERVAL_MS: i64 = 1_000;
pub const MAX_INTERVAL_MS: i64 = 24 * 3_600_000;

/// A monitor as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    pub id: MonitorId,
    /// A small integer, unique across the installation and never reused, that keys the
    /// monitor's check results and rollups (cheaper than a UUID in rows that number billions).
    pub seq: i64,
    pub tenant_id: TenantId,
    pub name: String,
    pub kind: MonitorKind,
    /// Kind-specific settings (URL, host, port, query, …) as a JSON object.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub interval_ms: i64,
    pub timeout_ms: i64,
    pub down_after: i32,
    pub up_after: i32,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub status: MonitorStatus,
    /// The secret of a heartbeat monitor's push URL.
    pub push_token: Option<String>,
    /// Increases on every update: the ETag of optimistic concurrency.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The writable fields of a monitor (create, and the full replacement an update produces).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMonitor {
    pub name: String,
    pub kind: MonitorKind,
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub interval_ms: i64,
    pub timeout_ms: i64,
    pub down_after: i32,
    pub up_after: i32,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub push_token: Option<String>,
}

/// Most tags on one monitor.
pub const MAX_TAGS: usize = 50;
/// Longest URL a monitor may check.
pub const MAX_URL_BYTES: usize = 2048;
/// Most bytes of a monitor's kind settings as JSON (headers, body, assertions and all).
pub const MAX_SETTINGS_BYTES: usize = 64 * 1024;

impl NewMonitor {
    /// Checks the fields that need no outside knowledge; returns every problem as
    /// `(field, message)`.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(("name", "must not be empty".to_owned()));
        } else if self.name.chars().count() > 200 {
            errors.push(("name", "must be at most 200 characters".to_owned()));
        }
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            errors.push(("interval_seconds", "must be between 1 and 86400".to_owned()));
        }
        if self.timeout_ms < 1 || self.timeout_ms > self.interval_ms.max(MIN_INTERVAL_MS) {
            errors.push((
                "timeout_seconds",
                "must be positive and no longer than the interval".to_owned(),
            ));
        }
        if !(1..=100).contains(&self.down_after) {
            errors.push(("down_after", "must be between 1 and 100".to_owned()));
        }
        if !(1..=100).contains(&self.up_after) {
            errors.push(("up_after", "must be between 1 and 100".to_owned()));
        }
        if self.tags.len() > MAX_TAGS {
            errors.push(("tags", format!("at most {MAX_TAGS} tags")));
        }
        if self
            .settings
            .get("url")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|u| u.len() > MAX_URL_BYTES)
        {
            errors.push(("url", format!("must be at most {MAX_URL_BYTES} bytes")));
        }
        let size = serde_json::to_string(&self.settings).map_or(0, |s| s.len());
        if size > MAX_SETTINGS_BYTES {
            errors.push((
                "settings",
                format!("the monitor's settings take {size} bytes; at most {MAX_SETTINGS_BYTES}"),
            ));
        }
        for tag in &self.tags {
            if tag.is_empty() || tag.len() > 64 || tag.chars().any(char::is_whitespace) {
                errors.push((
                    "tags",
                    format!("`{tag}`: a tag is 1 to 64 characters without spaces"),
                ));
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NewMonitor {
        NewMonitor {
            name: "api".into(),
            kind: MonitorKind::Http,
            settings: Default::default(),
            interval_ms: 30_000,
            timeout_ms: 10_000,
            down_after: 1,
            up_after: 1,
            tags: vec!["prod".into()],
            enabled: true,
            push_token: None,
        }
    }

    #[test]
    fn limits_on_tags_url_and_settings() {
        let mut m = sample();
        m.tags = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        m.settings
            .insert("url".into(), "x".repeat(MAX_URL_BYTES + 1).into());
        m.settings
            .insert("body".into(), "y".repeat(MAX_SETTINGS_BYTES).into());
        let fields: Vec<_> = m.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["tags", "url", "settings"]);
    }

    #[test]
    fn valid_monitor_has_no_errors() {
        assert!(sample().validate().is_empty());
    }

    #[test]
    fn reports_every_invalid_field() {
        let mut m = sample();
        m.name = " ".into();
        m.interval_ms = 500;
        m.timeout_ms = 500;
        m.down_after = 0;
        m.tags = vec!["has space".into()];
        let fields: Vec<_> = m.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["name", "interval_seconds", "down_after", "tags"]);
    }

    #[test]
    fn timeout_longer_than_interval_is_refused() {
        let mut m = sample();
        m.timeout_ms = 60_000;
        assert_eq!(m.validate()[0].0, "timeout_seconds");
    }
}
