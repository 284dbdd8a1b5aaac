//! `/api/v1/incidents`: incidents, their timelines, acknowledgement and comments; and the
//! delivery log.

use crate::auth::Principal;
use crate::http::{audit, not_found_as, parse_id};
use crate::input::{Body, Fields, PageParams, Params};
use crate::{AppState, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pingtower_core::{
    Delivery, Incident, IncidentEvent, IncidentEventKind, IncidentId, IncidentStatus, MonitorId,
    Role,
};
use pingtower_store::IncidentFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An incident, with its timeline on the single-incident read.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentOut {
    #[serde(flatten)]
    pub incident: Incident,
    /// The timeline, oldest first (only when one incident is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<IncidentEvent>>,
}

crate::http::list_type!(IncidentList, IncidentOut);
crate::http::list_type!(DeliveryList, Delivery);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentListParams {
    /// Only the incidents of this monitor.
    monitor_id: Option<MonitorId>,
    /// Only incidents in this state.
    status: Option<IncidentStatus>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// List incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    params(IncidentListParams),
    responses((status = 200, body = IncidentList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<IncidentListParams>,
) -> Result<Json<IncidentList>, Problem> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .request()?;
    let filter = IncidentFilter {
        monitor_id: q.monitor_id,
        status: q.status,
    };
    let found = state.store.list_incidents(p.tenant, &filter, &page).await?;
    Ok(Json(IncidentList::new(found, |incident| IncidentOut {
        incident,
        events: None,
    })))
}

async fn read(state: &AppState, p: &Principal, id: IncidentId) -> Result<IncidentOut, Problem> {
    let incident = state
        .store
        .get_incident(p.tenant, id)
        .await
        .map_err(|e| not_found_as(e, "incident"))?;
    let events = state.store.incident_events(p.tenant, id).await?;
    Ok(IncidentOut {
        incident,
        events: Some(events),
    })
}

/// Read an incident with its timeline.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = String, Path, description = "incident id")),
    responses((status = 200, body = IncidentOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<IncidentOut>, Problem> {
    let id: IncidentId = parse_id(&id, "incident")?;
    Ok(Json(read(&state, &p, id).await?))
}

/// Acknowledge an incident: someone is on it.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/ack", tag = "incidents",
    params(("id" = String, Path, description = "incident id")),
    responses((status = 200, body = IncidentOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn ack(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<IncidentOut>, Problem> {
    p.require(Role::Editor)?;
    let id: IncidentId = parse_id(&id, "incident")?;
    let current = state
        .store
        .get_incident(p.tenant, id)
        .await
        .map_err(|e| not_found_as(e, "incident"))?;
    match current.status {
        IncidentStatus::Resolved => {
            return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
                .with_detail("the incident is resolved"));
        }
        IncidentStatus::Acknowledged => {}
        IncidentStatus::Open => {
            state
                .store
                .acknowledge_incident(p.tenant, id, &p.actor(), pingtower_engine::now())
                .await
                .map_err(|e| not_found_as(e, "incident"))?;
            audit(&state, &p, "incident.ack", &format!("incident:{id}"), None).await;
            crate::events::announce_incident(&state, p.tenant, id).await;
        }
    }
    Ok(Json(read(&state, &p, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct CommentIn {
    /// 1 to 4000 characters.
    message: String,
}

/// Add a comment to an incident's timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/comments", tag = "incidents",
    params(("id" = String, Path, description = "incident id")),
    request_body = CommentIn,
    responses((status = 201, body = IncidentEvent), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn comment(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<IncidentEvent>), Problem> {
    p.require(Role::Editor)?;
    let id: IncidentId = parse_id(&id, "incident")?;
    let mut f = Fields::new(body);
    let message = f.required_str("message");
    if message.as_ref().is_some_and(|m| m.chars().count() > 4000) {
        f.err("message", "must be at most 4000 characters");
    }
    f.reject_rest("a comment");
    f.finish()?;
    let message = message.unwrap_or_default();
    let event = state
        .store
        .add_incident_event(
            p.tenant,
            id,
            IncidentEventKind::Comment,
            Some(&p.actor()),
            Some(message.trim()),
            pingtower_engine::now(),
        )
        .await
        .map_err(|e| not_found_as(e, "incident"))?;
    crate::events::announce_incident(&state, p.tenant, id).await;
    Ok((StatusCode::CREATED, Json(event)))
}

/// The delivery log: every notification to every channel, newest first.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "notifications",
    params(PageParams),
    responses((status = 200, body = DeliveryList), (status = 422, body = Problem)))]
pub async fn deliveries(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<PageParams>,
) -> Result<Json<DeliveryList>, Problem> {
    let page = state.store.list_deliveries(p.tenant, &q.request()?).await?;
    Ok(Json(DeliveryList::new(page, |d| d)))
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(ack))
        .routes(routes!(comment))
        .routes(routes!(deliveries))
}
