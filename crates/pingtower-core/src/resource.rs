//! Configuration resources (channels, rules, maintenance windows, status pages), deliveries and
//! the audit log.

use crate::{AuditId, DeliveryId, IncidentId, ResourceId, TenantId, Timestamp};
use serde::Serialize;

crate::wire_enum! {
    /// The configuration objects that share one storage shape: a name, a JSON spec, a version.
    pub enum ResourceKind ("resource kind") {
        Channel => "channel",
        Rule => "rule",
        Maintenance => "maintenance",
        StatusPage => "status_page",
        Chart => "chart",
        Dashboard => "dashboard",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub id: ResourceId,
    pub tenant_id: TenantId,
    pub kind: ResourceKind,
    pub name: String,
    /// Globally unique public name; status pages use it for `/status/{slug}`.
    pub slug: Option<String>,
    pub spec: serde_json::Value,
    /// Encrypted credentials (channels). Ciphertext only: the store never sees the key.
    #[serde(skip)]
    pub secret: Option<Vec<u8>>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewResource {
    pub kind: ResourceKind,
    pub name: String,
    pub slug: Option<String>,
    pub spec: serde_json::Value,
    pub secret: Option<Vec<u8>>,
}

crate::wire_enum! {
    pub enum DeliveryStatus ("delivery status") {
        Pending => "pending",
        Sent => "sent",
        Failed => "failed",
        Dead => "dead",
    }
}

/// One notification to one channel, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub channel_id: ResourceId,
    pub incident_id: Option<IncidentId>,
    /// (transition key, channel): the store refuses a second delivery with the same key, so a
    /// redelivered message does not notify twice.
    pub idempotency_key: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub response: Option<String>,
    pub latency_ms: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: AuditId,
    pub tenant_id: TenantId,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
    pub at: Timestamp,
}

/// Whether a monitor selection (`"all"`, a list of monitor ids, or `{"tags": [...]}`, as rules
/// and maintenance windows hold it) takes the monitor with `id` and `tags`.
pub fn selects(selection: &serde_json::Value, id: crate::MonitorId, tags: &[String]) -> bool {
    use serde_json::Value;
    match selection {
        Value::String(s) => s == "all",
        Value::Array(ids) => {
            let id = id.to_string();
            ids.iter().any(|x| x.as_str() == Some(id.as_str()))
        }
        Value::Object(o) => o.get("tags").and_then(Value::as_array).is_some_and(|want| {
            want.iter()
                .filter_map(Value::as_str)
                .any(|t| tags.iter().any(|mt| mt == t))
        }),
        _ => false,
    }
}

/// A maintenance window, read from its stored spec: one-off (`starts_at`..`ends_at`) or
/// recurring (`cron` in `timezone`, lasting `duration_minutes`).
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    pub monitors: serde_json::Value,
    pub when: WindowTime,
}

#[derive(Debug, Clone)]
pub enum WindowTime {
    Once {
        starts: Timestamp,
        ends: Timestamp,
    },
    Every {
        cron: Box<crate::check::CronSchedule>,
        duration_ms: i64,
    },
}

impl MaintenanceWindow {
    /// The window of a stored maintenance spec; `None` if the spec is not one.
    pub fn from_spec(spec: &serde_json::Value) -> Option<Self> {
        let when = if let Some(expr) = spec["cron"].as_str() {
            let tz = spec["timezone"].as_str().unwrap_or("UTC");
            let cron = crate::check::CronSchedule::parse(expr, tz).ok()?;
            let duration_ms = spec["duration_minutes"].as_i64()?.checked_mul(60_000)?;
            WindowTime::Every {
                cron: Box::new(cron),
                duration_ms,
            }
        } else {
            let parse = |k: &str| serde_json::from_value::<Timestamp>(spec[k].clone()).ok();
            WindowTime::Once {
                starts: parse("starts_at")?,
                ends: parse("ends_at")?,
            }
        };
        Some(Self {
            monitors: spec["monitors"].clone(),
            when,
        })
    }

    /// Whether the window is open at `at`.
    pub fn is_active(&self, at: Timestamp) -> bool {
        match &self.when {
            WindowTime::Once { starts, ends } => *starts <= at && at < *ends,
            // Open when an occurrence started within the last `duration`.
            WindowTime::Every { cron, duration_ms } => cron
                .next_after(at.as_millis() - duration_ms)
                .is_some_and(|start| start <= at.as_millis()),
        }
    }

    /// Whether the window covers the monitor with `id` and `tags` at `at`.
    pub fn covers(&self, id: crate::MonitorId, tags: &[String], at: Timestamp) -> bool {
        selects(&self.monitors, id, tags) && self.is_active(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_off_and_recurring_windows_open_and_close() {
        let once = MaintenanceWindow::from_spec(&json!({"monitors": "all",
            "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T02:00:00Z"}))
        .unwrap();
        let t = |s: &str| serde_json::from_value::<Timestamp>(json!(s)).unwrap();
        assert!(!once.is_active(t("2029-12-31T23:59:59Z")));
        assert!(once.is_active(t("2030-01-01T00:00:00Z")));
        assert!(!once.is_active(t("2030-01-01T02:00:00Z")));
        // Sundays 03:00 Berlin time (02:00 UTC in winter), for an hour.
        let weekly = MaintenanceWindow::from_spec(&json!({"monitors": {"tags": ["db"]},
            "cron": "0 3 * * SUN", "timezone": "Europe/Berlin", "duration_minutes": 60}))
        .unwrap();
        assert!(weekly.is_active(t("2030-01-06T02:30:00Z")));
        assert!(!weekly.is_active(t("2030-01-06T03:00:00Z")));
        assert!(!weekly.is_active(t("2030-01-07T02:30:00Z")));
        let id = crate::MonitorId::new();
        assert!(weekly.covers(id, &["db".into()], t("2030-01-06T02:30:00Z")));
        assert!(!weekly.covers(id, &["web".into()], t("2030-01-06T02:30:00Z")));
        assert!(selects(&json!([id.to_string()]), id, &[]));
        assert!(!selects(&json!("some"), id, &[]));
    }
}
