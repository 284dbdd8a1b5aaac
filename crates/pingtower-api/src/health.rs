//! Liveness, readiness and the metrics exposition.

use crate::{AppState, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Alive: the process answers. Never touches the database.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Ready: the database and the bus answer.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let database = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: no answer within 2 s".to_owned(),
    };
    let bus = match tokio::time::timeout(READY_TIMEOUT, state.bus.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: no answer within 2 s".to_owned(),
    };
    let ready = database == "ok" && bus == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {"database": database, "bus": bus},
    });
    (status, Json(body)).into_response()
}

/// Who may read `/metrics`, and what they see (`PINGTOWER_METRICS_TOKEN`,
/// `PINGTOWER_METRICS_MONITORS`).
///
/// - A scrape token set: only `Authorization: Bearer <token>` is answered (401 otherwise); the
///   per-monitor series (labelled by monitor and tenant) come too when `monitors` is set.
/// - No token: anyone who reaches the port gets the process's own figures, never a per-monitor
///   series, so that a fresh local `pingtower serve` can be scraped as it is.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// SHA-256 of the scrape token (compared in constant time, whatever its length).
    token: Option<[u8; 32]>,
    monitors: bool,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token.map(|_| "****"))
            .field("monitors", &self.monitors)
            .finish()
    }
}

/// What a request to `/metrics` may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exposure {
    Process,
    WithMonitors,
}

impl MetricsAccess {
    /// `token`: the scrape token (`None` or empty: none); `monitors`: whether the per-monitor
    /// series are shown (to callers with the token only).
    pub fn new(token: Option<&str>, monitors: bool) -> Self {
        Self {
            token: token.filter(|t| !t.is_empty()).map(digest),
            monitors,
        }
    }

    /// The caller's exposure, or `None` to refuse it.
    fn exposure(&self, headers: &HeaderMap) -> Option<Exposure> {
        use subtle::ConstantTimeEq;
        let Some(want) = &self.token else {
            return Some(Exposure::Process);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| digest(token.trim()))?;
        if bool::from(given.ct_eq(want)) {
            Some(if self.monitors {
                Exposure::WithMonitors
            } else {
                Exposure::Process
            })
        } else {
            None
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(exposure) = state.metrics_access.exposure(&headers) else {
        return crate::auth::unauthorized(
            "/metrics needs `Authorization: Bearer` with the scrape token (PINGTOWER_METRICS_TOKEN)",
        )
        .into_response();
    };
    let text = match exposure {
        Exposure::Process => state.metrics.encode(),
        Exposure::WithMonitors => state.metrics.encode_with_monitors(),
    };
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => Problem::internal(format_args!("rendering metrics failed: {e}")).into_response(),
    }
}
