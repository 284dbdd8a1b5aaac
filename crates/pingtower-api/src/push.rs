//! `GET|POST /api/v1/push/{token}`: a heartbeat monitor's ping. The token is the secret; no
//! login. Answers 200 only once the result is committed.

use crate::{AppState, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use pingtower_core::{CheckResult, CheckStatus, MonitorKind};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub(crate) struct PushQuery {
    /// `up` (default) or `down`.
    status: Option<String>,
    /// A message, kept as the result's reason.
    msg: Option<String>,
    /// The pinging job's own duration in milliseconds, kept as the result's latency.
    ping: Option<String>,
}

const MAX_MESSAGE: usize = 1_000;

pub(crate) async fn push(
    State(state): State<AppState>,
    source: crate::auth::Source,
    Path(token): Path<String>,
    Query(q): Query<PushQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    state
        .auth
        .pushes_by_source
        .hit(&source.key())
        .map_err(crate::auth::too_many)?;
    let mut errors = Vec::new();
    let status = match q.status.as_deref().unwrap_or("up") {
        "up" => CheckStatus::Up,
        "down" => CheckStatus::Down,
        other => {
            errors.push(FieldError {
                field: "status".into(),
                message: format!("`{other}` is not `up` or `down`"),
            });
            CheckStatus::Up
        }
    };
    let latency_us = match q.ping.as_deref().map(str::parse::<u32>) {
        None => 0,
        Some(Ok(ms)) => i64::from(ms) * 1000,
        Some(Err(_)) => {
            errors.push(FieldError {
                field: "ping".into(),
                message: "must be a whole number of milliseconds".into(),
            });
            0
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let monitor = state
        .store
        .find_monitor_by_push_token(&token)
        .await?
        .filter(|m| m.kind == MonitorKind::Heartbeat)
        .ok_or_else(|| Problem::not_found("push token"))?;
    let reason = q
        .msg
        .map(|m| m.chars().take(MAX_MESSAGE).collect::<String>())
        .or_else(|| (status == CheckStatus::Down).then(|| "reported down by push".to_owned()));
    let result = CheckResult {
        monitor_id: monitor.id,
        monitor_seq: monitor.seq,
        tenant_id: monitor.tenant_id,
        region: state.region.to_string(),
        checked_at: state.push_clock.stamp(monitor.id, pingtower_engine::now()),
        status,
        latency_us,
        reason,
        details: None,
    };
    let checked_at = result.checked_at;
    state.writer.write(vec![result]).await.map_err(|e| {
        tracing::warn!(error = %e, "push not recorded");
        Problem::unavailable("the ping could not be recorded; retry")
    })?;
    let ping = pingtower_engine::heartbeat::HeartbeatPing {
        tenant_id: monitor.tenant_id,
        monitor_id: monitor.id,
        at: checked_at,
    };
    if let Err(e) = pingtower_engine::heartbeat::publish_ping(state.bus.as_ref(), &ping).await {
        // The ping is stored; the watcher also reads the last ping from the store when it starts.
        tracing::warn!(error = %e, "publishing a heartbeat ping failed");
    }
    Ok(Json(json!({
        "ok": true,
        "monitor_id": monitor.id,
        "status": status,
        "checked_at": checked_at,
    })))
}

/// Gives each push of a monitor its own millisecond: results are keyed by (monitor, time,
/// region), so two pushes in one millisecond would otherwise be one row, and the second would
/// be answered 200 but not stored.
#[derive(Default)]
pub struct PushClock(std::sync::Mutex<std::collections::HashMap<pingtower_core::MonitorId, i64>>);

impl PushClock {
    pub(crate) fn stamp(
        &self,
        monitor: pingtower_core::MonitorId,
        now: pingtower_core::Timestamp,
    ) -> pingtower_core::Timestamp {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = last.entry(monitor).or_insert(i64::MIN);
        let ms = now.as_millis().max(entry.saturating_add(1));
        *entry = ms;
        pingtower_core::Timestamp::from_millis(ms)
    }
}
