//! `GET /api/v1/events/stream`: live updates for the dashboard, as server-sent events.
//!
//! One subscription per process (to `monitor.state` and `check.results`) feeds an in-memory
//! broadcast; each open stream takes from it what belongs to its tenant. So a connection costs a
//! broadcast receiver, not a bus group (groups outlive their consumers), and a slow client that
//! falls behind is told to reload (`resync`) instead of holding messages back for the others.

use crate::auth::Principal;
use crate::{AppState, Problem};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::{CheckResult, TenantId};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How often an open stream asks whether its caller may still see the tenant.
const RECHECK: Duration = Duration::from_secs(5);

/// One live update.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub tenant: TenantId,
    /// `state` (a monitor's evaluated state changed), `result` (a check result) or `events`
    /// (analytics events accepted in the last second, per name).
    pub kind: &'static str,
    pub data: Value,
}

/// The process's live updates.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventHub {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    pub fn send(&self, e: LiveEvent) {
        // No stream open: nobody to tell.
        let _ = self.tx.send(Arc::new(e));
    }

    /// Feeds the hub from the bus until `shutdown`.
    pub async fn run(
        self,
        bus: Arc<dyn Bus>,
        shutdown: CancellationToken,
    ) -> Result<(), pingtower_bus::BusError> {
        let group = format!("live-{}", uuid::Uuid::new_v4().simple());
        let mut states = bus
            .subscribe(topics::MONITOR_STATE, &group, SubscribeOptions::ephemeral())
            .await?;
        let mut results = bus
            .subscribe(topics::CHECK_RESULTS, &group, SubscribeOptions::ephemeral())
            .await?;
        let mut totals = bus
            .subscribe(
                topics::ANALYTICS_TOTALS,
                &group,
                SubscribeOptions::ephemeral(),
            )
            .await?;
        let mut configs = bus
            .subscribe(
                topics::CONFIG_CHANGED,
                &group,
                SubscribeOptions::ephemeral(),
            )
            .await?;
        let mut changes = bus
            .subscribe(topics::LIVE_CHANGES, &group, SubscribeOptions::ephemeral())
            .await?;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                d = states.next() => {
                    let Some(d) = d else { break };
                    if let Ok(v) = d.message.json::<Value>()
                        && let Some(tenant) = v["tenant_id"].as_str().and_then(|t| t.parse().ok())
                    {
                        self.send(LiveEvent { tenant, kind: "state", data: v });
                    }
                    d.ack();
                }
                d = configs.next() => {
                    let Some(d) = d else { break };
                    // A monitor made, changed or deleted: overviews show it (ids only).
                    if let Ok(Some(c)) = pingtower_engine::scheduler::monitor_change(&d.message) {
                        self.send(LiveEvent {
                            tenant: c.tenant_id,
                            kind: "monitor",
                            data: json!({ "monitor_id": c.monitor_id }),
                        });
                    }
                    d.ack();
                }
                d = changes.next() => {
                    let Some(d) = d else { break };
                    if let Ok(c) = d.message.json::<IncidentChanged>() {
                        self.send(LiveEvent {
                            tenant: c.tenant_id,
                            kind: "incident",
                            data: json!({ "incident_id": c.incident_id }),
                        });
                    }
                    d.ack();
                }
                d = totals.next() => {
                    let Some(d) = d else { break };
                    if let Ok(v) = d.message.json::<Value>()
                        && let Some(tenant) = v["tenant_id"].as_str().and_then(|t| t.parse().ok())
                    {
                        self.send(LiveEvent { tenant, kind: "events", data: v });
                    }
                    d.ack();
                }
                d = results.next() => {
                    let Some(d) = d else { break };
                    if let Ok(batch) = d.message.json::<Vec<CheckResult>>() {
                        for r in batch {
                            self.send(LiveEvent {
                                tenant: r.tenant_id,
                                kind: "result",
                                data: json!({
                                    "monitor_id": r.monitor_id,
                                    "status": r.status,
                                    "latency_ms": r.latency_us as f64 / 1000.0,
                                    "checked_at": r.checked_at,
                                    "region": r.region,
                                    "reason": r.reason,
                                }),
                            });
                        }
                    }
                    d.ack();
                }
            }
        }
        Ok(())
    }
}

/// Live updates of the caller's tenant: `state` and `result` events with JSON data, and
/// `resync` when the stream fell behind (reload, then listen again).
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "live",
    responses((status = 200, content_type = "text/event-stream", description = "server-sent events"),
        (status = 401, body = Problem)))]
pub async fn stream(
    State(state): State<AppState>,
    p: Principal,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = state.events.tx.subscribe();
    let tenant = p.tenant;
    // The caller is asked again every few seconds: a stream ends when its member is removed,
    // its session ends or its key is revoked.
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let events = futures::stream::unfold(
        (rx, recheck, state, p),
        move |(mut rx, mut recheck, state, p)| async move {
            loop {
                tokio::select! {
                    _ = recheck.tick() => {
                        if !crate::auth::still_allowed(&state, &p).await {
                            return None;
                        }
                    }
                    got = rx.recv() => match got {
                        Ok(e) if e.tenant == tenant => {
                            let event = Event::default().event(e.kind).data(e.data.to_string());
                            return Some((Ok(event), (rx, recheck, state, p)));
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let resync = Event::default().event("resync").data("{}");
                            return Some((Ok(resync), (rx, recheck, state, p)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new().routes(routes!(stream))
}

/// The message on `live.changes` when someone acknowledged an incident or added a note.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IncidentChanged {
    pub tenant_id: TenantId,
    pub incident_id: pingtower_core::IncidentId,
}

/// Tells open pages (of every API process) that a person changed the incident.
pub(crate) async fn announce_incident(
    state: &AppState,
    tenant: TenantId,
    incident: pingtower_core::IncidentId,
) {
    let msg = IncidentChanged {
        tenant_id: tenant,
        incident_id: incident,
    };
    if let Err(e) =
        pingtower_bus::publish_json(state.bus.as_ref(), topics::LIVE_CHANGES, &msg).await
    {
        tracing::warn!(error = %e, "announcing an incident change failed");
    }
}
