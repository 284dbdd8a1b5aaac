//! `/api/v1/monitors`: the monitors of a tenant, and their results.
//!
//! A monitor's JSON is flat: the fields every monitor has (name, kind, interval, …) beside its
//! kind's settings (url, host, port, query, …), durations in seconds. Kind settings are checked
//! by [`pingtower_core::check::CheckSpec::parse`], the same code the worker runs, so whatever
//! the API accepts a worker can run. Every change is announced on the bus (`config.changed`),
//! so the scheduler picks it up within a second.
//!
//! A monitor's credentials (`bearer_token`, `basic_auth_password`, `headers`, `proxy`) are
//! sealed at rest inside its settings and never returned (`secrets_set` names those stored);
//! an update merges them back in, and a change of the URL's origin needs them given again.
//! Push tokens are shown to editors and above only.

use crate::auth::Principal;
use crate::http::{Created, Tagged, audit, if_match, parse_id};
use crate::input::{Body, Fields, PageParams, Params};
use crate::{AppState, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pingtower_core::check::CheckSpec;
use pingtower_core::monitor::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
use pingtower_core::{
    CheckResult, CheckStatus, Monitor, MonitorId, MonitorKind, MonitorStatus, NewMonitor, Role,
    TenantId, Timestamp,
};
use pingtower_store::{MonitorFilter, MonitorOrder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Fields every monitor has; anything else in a monitor's JSON is a setting of its kind.
const COMMON: &[&str] = &[
    "name",
    "kind",
    "interval_seconds",
    "timeout_seconds",
    "down_after",
    "up_after",
    "tags",
    "enabled",
];
/// Fields the server sets.
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "push_token",
    "push_url",
    "secrets_set",
    pingtower_engine::secrets::SEALED_FIELD,
    "version",
    "created_at",
    "updated_at",
];
const DEFAULT_INTERVAL_MS: i64 = 60_000;
const DEFAULT_TIMEOUT_MS: i64 = 10_000;

/// A monitor as the API shows it: the common fields and, beside them, its kind's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitorOut {
    pub id: MonitorId,
    pub name: String,
    pub kind: MonitorKind,
    /// Evaluated state: `pending` until the first result.
    pub status: MonitorStatus,
    #[schema(value_type = f64)]
    pub interval_seconds: Value,
    #[schema(value_type = f64)]
    pub timeout_seconds: Value,
    pub down_after: i32,
    pub up_after: i32,
    pub tags: Vec<String>,
    pub enabled: bool,
    /// Heartbeat monitors: the secret of the push URL (editors and above only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_token: Option<String>,
    /// The credentials stored for the monitor (never shown): `bearer_token`,
    /// `basic_auth_password`, `headers`, `proxy`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets_set: Vec<String>,
    /// Heartbeat monitors: where to push (`GET` or `POST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
    /// Increases with every change; the `ETag`.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The kind's settings (url, method, host, port, query, assertions, …).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
}

/// Seconds as a JSON number: whole seconds as an integer.
pub(crate) fn seconds(ms: i64) -> Value {
    if ms % 1000 == 0 {
        Value::from(ms / 1000)
    } else {
        Value::from(ms as f64 / 1000.0)
    }
}

impl MonitorOut {
    /// The monitor as a caller with `role` sees it: without credentials, and without its push
    /// token below editor.
    pub fn of(mut m: Monitor, role: Role) -> Self {
        let secrets_set = stored_secrets(&m.settings);
        m.settings.remove(pingtower_engine::secrets::SEALED_FIELD);
        for field in pingtower_engine::secrets::MONITOR_SECRET_FIELDS {
            m.settings.remove(*field);
        }
        if !role.at_least(Role::Editor) {
            m.push_token = None;
        }
        Self {
            id: m.id,
            name: m.name,
            kind: m.kind,
            status: m.status,
            interval_seconds: seconds(m.interval_ms),
            timeout_seconds: seconds(m.timeout_ms),
            down_after: m.down_after,
            up_after: m.up_after,
            tags: m.tags,
            enabled: m.enabled,
            push_url: m.push_token.as_ref().map(|t| format!("/api/v1/push/{t}")),
            push_token: m.push_token,
            secrets_set,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
            settings: m.settings,
        }
    }
}

/// The writable fields of a monitor, as documentation: kind settings sit beside these.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct MonitorIn {
    /// 1 to 200 characters, unique in the tenant.
    name: String,
    kind: MonitorKind,
    /// 1 to 86400; 60 by default.
    interval_seconds: Option<f64>,
    /// At most the interval; 10 by default.
    timeout_seconds: Option<f64>,
    /// Consecutive failures before DOWN (1 to 100, default 1).
    down_after: Option<i32>,
    /// Consecutive successes before UP again (1 to 100, default 1).
    up_after: Option<i32>,
    tags: Option<Vec<String>>,
    /// The group it is shown in on the overview (1 to 100 characters).
    group: Option<String>,
    enabled: Option<bool>,
    /// http: the URL to request.
    url: Option<String>,
    /// http: GET (default), HEAD, POST, PUT, PATCH, DELETE, OPTIONS.
    method: Option<String>,
    /// tcp, tls, icmp: host name or IP address.
    host: Option<String>,
    /// tcp, tls: port.
    port: Option<u16>,
    /// dns: the name to query.
    query: Option<String>,
    /// dns: A (default), AAAA, CNAME, MX, TXT, NS, SOA, SRV, CAA.
    record_type: Option<String>,
    /// dns: `IP` or `IP:PORT`; the system resolver when absent.
    resolver: Option<String>,
    /// heartbeat: seconds added to the interval before DOWN.
    grace_seconds: Option<u64>,
    /// Assertions that must all hold, e.g. `status == 200`.
    assertions: Option<Vec<String>>,
    /// Assertions that mark the check DEGRADED when they fail.
    degraded_when: Option<Vec<String>>,
}

fn field_errors(errors: Vec<(String, String)>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|(field, message)| FieldError { field, message })
        .collect()
}

/// Reads a whole monitor (create, or a patched monitor) and validates every field.
pub(crate) fn read_monitor(
    map: Map<String, Value>,
    push_token: Option<String>,
) -> Result<NewMonitor, Problem> {
    let mut f = Fields::new(map);
    for field in READ_ONLY {
        if f.has(field) {
            f.take(field);
            f.err(field, "is set by the server");
        }
    }
    let name = f.required_str("name").unwrap_or_default();
    let kind: Option<MonitorKind> = if f.has("kind") {
        f.parsed("kind")
    } else {
        f.err("kind", "is required");
        None
    };
    let interval_ms = f
        .seconds("interval_seconds", MIN_INTERVAL_MS, MAX_INTERVAL_MS)
        .unwrap_or(DEFAULT_INTERVAL_MS);
    let timeout_ms = f
        .seconds("timeout_seconds", 1, MAX_INTERVAL_MS)
        .unwrap_or(DEFAULT_TIMEOUT_MS.min(interval_ms));
    let down_after = f.int("down_after", 1, 100).unwrap_or(1) as i32;
    let up_after = f.int("up_after", 1, 100).unwrap_or(1) as i32;
    let tags = f.strings("tags").unwrap_or_default();
    let enabled = f.bool("enabled").unwrap_or(true);
    let settings: Map<String, Value> = f.rest().into_iter().filter(|(_, v)| !v.is_null()).collect();
    let Some(kind) = kind else {
        return Err(Problem::invalid(f.errors().to_vec()));
    };
    let monitor = NewMonitor {
        name: name.trim().to_owned(),
        kind,
        settings,
        interval_ms,
        timeout_ms,
        down_after,
        up_after,
        tags,
        enabled,
        push_token: if kind == MonitorKind::Heartbeat {
            push_token.or_else(|| Some(new_push_token()))
        } else {
            None
        },
    };
    let mut errors: Vec<FieldError> = f.errors().to_vec();
    for (field, message) in monitor.validate() {
        if !errors.iter().any(|e| e.field == field) {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            });
        }
    }
    if let Err(e) = CheckSpec::parse(kind, &monitor.settings, monitor.timeout_ms) {
        errors.extend(field_errors(e));
    }
    if errors.is_empty() {
        Ok(monitor)
    } else {
        Err(Problem::invalid(errors))
    }
}

/// `depends_on` must name another monitor of the tenant, without making a cycle.
pub(crate) async fn check_dependency(
    state: &AppState,
    tenant: pingtower_core::TenantId,
    this: Option<MonitorId>,
    new: &NewMonitor,
) -> Result<(), Problem> {
    let Some(mut parent) = pingtower_core::check::depends_on(&new.settings) else {
        return Ok(());
    };
    let invalid = |message: &str| {
        Problem::invalid(vec![FieldError {
            field: pingtower_core::check::DEPENDS_ON.into(),
            message: message.into(),
        }])
    };
    for _ in 0..32 {
        if Some(parent) == this {
            return Err(invalid("would make a cycle of dependencies"));
        }
        let m = match state.store.get_monitor(tenant, parent).await {
            Ok(m) => m,
            Err(pingtower_store::StoreError::NotFound) => {
                return Err(invalid("is not a monitor of this tenant"));
            }
            Err(e) => return Err(e.into()),
        };
        match pingtower_core::check::depends_on(&m.settings) {
            Some(next) => parent = next,
            None => return Ok(()),
        }
    }
    Err(invalid("the chain of dependencies is too long"))
}

/// The caller's monitor `id`; 404 when it is another tenant's or missing.
pub(crate) async fn fetch(
    state: &AppState,
    p: &Principal,
    id: MonitorId,
) -> Result<Monitor, Problem> {
    state
        .store
        .get_monitor(p.tenant, id)
        .await
        .map_err(|e| crate::http::not_found_as(e, "monitor"))
}

fn new_push_token() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The operator's shortest interval, checked for a monitor created (`old` is `None`) or whose
/// interval changes (existing monitors keep theirs when the setting is raised).
pub(crate) fn interval_allowed(
    state: &AppState,
    old: Option<&Monitor>,
    new: &NewMonitor,
) -> Result<(), Problem> {
    let min = state.quotas.min_interval_ms;
    let changed = old.is_none_or(|m| m.interval_ms != new.interval_ms);
    if changed && new.interval_ms < min {
        return Err(Problem::invalid(vec![FieldError {
            field: "interval_seconds".into(),
            message: format!("must be at least {} on this server", seconds(min)),
        }]));
    }
    Ok(())
}

/// Per tenant, the lock that counting monitors and making new ones take together (in this
/// process), so that two requests racing cannot both take the last place in the quota.
static QUOTA_LOCKS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

/// Room taken in a tenant's quota: hold it until the monitors are made.
pub(crate) struct Room(
    #[allow(dead_code, reason = "held, not read")] Option<tokio::sync::OwnedMutexGuard<()>>,
);

/// Room in the tenant's quota of monitors for `adding` more.
pub(crate) async fn room_for(
    state: &AppState,
    tenant: TenantId,
    adding: usize,
) -> Result<Room, Problem> {
    let Some(max) = state.quotas.max_monitors else {
        return Ok(Room(None));
    };
    let lock = {
        let mut locks = QUOTA_LOCKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(tenant).or_default().clone()
    };
    let guard = lock.lock_owned().await;
    let have: i64 = state
        .store
        .count_monitors(tenant)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let adding = i64::try_from(adding).unwrap_or(i64::MAX);
    if have.saturating_add(adding) > i64::from(max) {
        return Err(
            Problem::new(StatusCode::FORBIDDEN, "quota-exceeded", "Quota exceeded").with_detail(
                format!(
                    "this tenant may have at most {max} monitors on this server; it has {have}"
                ),
            ),
        );
    }
    Ok(Room(Some(guard)))
}

/// Seals a monitor's credentials into its settings before it is stored.
pub(crate) fn seal(
    state: &AppState,
    tenant: TenantId,
    new: &mut NewMonitor,
) -> Result<(), Problem> {
    state
        .auth
        .keys
        .seal_settings(tenant, &mut new.settings)
        .map_err(|e| Problem::internal(format_args!("sealing a monitor's credentials failed: {e}")))
}

/// A monitor's writable fields with its credentials opened: what an update starts from.
pub(crate) fn plain_json(state: &AppState, m: &Monitor) -> Result<Map<String, Value>, Problem> {
    let mut map = writable_json(m);
    let opened = state
        .auth
        .keys
        .open_settings(m.tenant_id, &m.settings)
        .map_err(|e| {
            Problem::internal(format_args!("opening a monitor's credentials failed: {e}"))
        })?;
    for field in pingtower_engine::secrets::MONITOR_SECRET_FIELDS {
        if let Some(v) = opened.get(*field) {
            map.insert((*field).to_owned(), v.clone());
        }
    }
    Ok(map)
}

/// The scheme, host and port of a URL setting.
fn origin(v: Option<&Value>) -> Option<String> {
    let url = url::Url::parse(v?.as_str()?).ok()?;
    Some(url.origin().ascii_serialization())
}

/// The credentials a monitor has stored: sealed, or (stored before sealing) still in its
/// settings.
pub(crate) fn stored_secrets(settings: &Map<String, Value>) -> Vec<String> {
    let mut names = pingtower_engine::secrets::sealed_names(settings);
    for field in pingtower_engine::secrets::MONITOR_SECRET_FIELDS {
        if settings.contains_key(*field) && !names.iter().any(|n| n == field) {
            names.push((*field).to_owned());
        }
    }
    names.sort();
    names
}

/// A change of where a monitor sends its stored credentials needs them given again: another
/// origin for its URL, a proxy (which sees what goes through it), a CA of one's own or TLS
/// verification turned off (which let someone in the middle read them). `given` holds the
/// fields of the change.
pub(crate) fn credentials_follow_url(m: &Monitor, given: &Map<String, Value>) -> Vec<FieldError> {
    let stored = stored_secrets(&m.settings);
    let changed =
        |field: &str| given.contains_key(field) && given.get(field) != m.settings.get(field);
    let moved = (given.contains_key("url")
        && origin(given.get("url")) != origin(m.settings.get("url")))
        || given.get("proxy").is_some_and(|v| !v.is_null())
        || changed("tls_ca_pem")
        || given.get("tls_verify") == Some(&Value::Bool(false))
            && m.settings.get("tls_verify") != Some(&Value::Bool(false));
    if stored.is_empty() || !moved {
        return Vec::new();
    }
    crate::resources::to_give_again(
        &stored,
        given,
        "the monitor's credentials would go to another server (its url, proxy or TLS trust changes)",
    )
}

/// A monitor's writable fields as the JSON object a create would take, without its
/// credentials (an export, a form).
pub(crate) fn writable_json(m: &Monitor) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("name".into(), Value::from(m.name.clone()));
    map.insert("kind".into(), Value::from(m.kind.as_str()));
    map.insert("interval_seconds".into(), seconds(m.interval_ms));
    map.insert("timeout_seconds".into(), seconds(m.timeout_ms));
    map.insert("down_after".into(), Value::from(m.down_after));
    map.insert("up_after".into(), Value::from(m.up_after));
    map.insert("tags".into(), Value::from(m.tags.clone()));
    map.insert("enabled".into(), Value::from(m.enabled));
    for (k, v) in &m.settings {
        let secret = k == pingtower_engine::secrets::SEALED_FIELD
            || pingtower_engine::secrets::MONITOR_SECRET_FIELDS.contains(&k.as_str());
        if !secret {
            map.insert(k.clone(), v.clone());
        }
    }
    map
}

async fn announce(state: &AppState, m: &Monitor) {
    if let Err(e) =
        pingtower_engine::notify_monitor_changed(state.bus.as_ref(), m.tenant_id, m.id).await
    {
        // The scheduler also reloads every minute; the change is late, not lost.
        tracing::warn!(error = %e, monitor = %m.id, "announcing a monitor change failed");
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonitorListParams {
    /// Only monitors in this state.
    status: Option<MonitorStatus>,
    /// Only monitors with this tag.
    tag: Option<String>,
    /// Case-insensitive part of the name.
    search: Option<String>,
    /// `newest` (the default) or `attention`: down, degraded, pending, maintenance, up, then
    /// paused monitors, by name within each.
    order: Option<ListOrder>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The order of the monitor list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListOrder {
    Newest,
    Attention,
}

impl From<ListOrder> for MonitorOrder {
    fn from(o: ListOrder) -> Self {
        match o {
            ListOrder::Newest => MonitorOrder::Newest,
            ListOrder::Attention => MonitorOrder::Attention,
        }
    }
}

crate::http::list_type!(MonitorList, MonitorOut);
crate::http::list_type!(ResultList, ResultOut);

/// List monitors, newest first (or what needs attention first).
#[utoipa::path(get, path = "/api/v1/monitors", tag = "monitors",
    params(MonitorListParams),
    responses((status = 200, body = MonitorList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<MonitorListParams>,
) -> Result<Json<MonitorList>, Problem> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .request()?;
    let filter = MonitorFilter {
        status: q.status,
        tag: q.tag,
        search: q.search,
        order: q.order.map(MonitorOrder::from).unwrap_or_default(),
    };
    let found = state.store.list_monitors(p.tenant, &filter, &page).await?;
    Ok(Json(MonitorList::new(found, |m| MonitorOut::of(m, p.role))))
}

/// Create a monitor.
#[utoipa::path(post, path = "/api/v1/monitors", tag = "monitors",
    request_body = MonitorIn,
    responses((status = 201, body = MonitorOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    Body(body): Body,
) -> Result<Created<MonitorOut>, Problem> {
    p.require(Role::Editor)?;
    let mut new = read_monitor(body, None)?;
    interval_allowed(&state, None, &new)?;
    let _room = room_for(&state, p.tenant, 1).await?;
    check_dependency(&state, p.tenant, None, &new).await?;
    seal(&state, p.tenant, &mut new)?;
    let m = state
        .store
        .create_monitor(p.tenant, &new, pingtower_engine::now())
        .await
        .map_err(name_taken)?;
    announce(&state, &m).await;
    audit(
        &state,
        &p,
        "monitor.create",
        &format!("monitor:{}", m.id),
        Some(&m.name),
    )
    .await;
    Ok(Created::new(
        format!("/api/v1/monitors/{}", m.id),
        m.version,
        MonitorOut::of(m, p.role),
    ))
}

fn name_taken(e: pingtower_store::StoreError) -> Problem {
    match e {
        pingtower_store::StoreError::Conflict(_) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
                .with_detail("the tenant already has a monitor with this name")
        }
        other => other.into(),
    }
}

/// Read a monitor.
#[utoipa::path(get, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses((status = 200, body = MonitorOut), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Tagged<MonitorOut>, Problem> {
    let id: MonitorId = parse_id(&id, "monitor")?;
    let m = fetch(&state, &p, id).await?;
    Ok(Tagged(m.version, MonitorOut::of(m, p.role)))
}

/// Change some of a monitor's fields (`null` removes a setting). With `If-Match`, only if
/// nobody changed it meanwhile (412 otherwise).
#[utoipa::path(patch, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "monitor id"),
        ("If-Match" = Option<String>, Header, description = "the ETag read before")),
    request_body = MonitorIn,
    responses((status = 200, body = MonitorOut), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Body(patch): Body,
) -> Result<Tagged<MonitorOut>, Problem> {
    p.require(Role::Editor)?;
    let id: MonitorId = parse_id(&id, "monitor")?;
    let expected = if_match(&headers)?;
    let current = fetch(&state, &p, id).await?;
    if let Some(kind) = patch.get("kind").and_then(Value::as_str)
        && kind != current.kind.as_str()
    {
        return Err(Problem::invalid(vec![FieldError {
            field: "kind".into(),
            message: "a monitor's kind cannot change; create a new monitor".into(),
        }]));
    }
    let moved = credentials_follow_url(&current, &patch);
    if !moved.is_empty() {
        return Err(Problem::invalid(moved));
    }
    let mut merged = plain_json(&state, &current)?;
    for (k, v) in patch {
        if v.is_null() && !COMMON.contains(&k.as_str()) {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let mut new = read_monitor(merged, current.push_token.clone())?;
    interval_allowed(&state, Some(&current), &new)?;
    check_dependency(&state, p.tenant, Some(id), &new).await?;
    seal(&state, p.tenant, &mut new)?;
    let m = state
        .store
        .update_monitor(
            p.tenant,
            id,
            Some(expected.unwrap_or(current.version)),
            &new,
            pingtower_engine::now(),
        )
        .await
        .map_err(name_taken)?;
    announce(&state, &m).await;
    audit(
        &state,
        &p,
        "monitor.update",
        &format!("monitor:{}", m.id),
        Some(&m.name),
    )
    .await;
    Ok(Tagged(m.version, MonitorOut::of(m, p.role)))
}

/// Delete a monitor and its results.
#[utoipa::path(delete, path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    p.require(Role::Editor)?;
    let id: MonitorId = parse_id(&id, "monitor")?;
    let m = fetch(&state, &p, id).await?;
    state
        .store
        .delete_monitor(p.tenant, id)
        .await
        .map_err(|e| crate::http::not_found_as(e, "monitor"))?;
    announce(&state, &m).await;
    crate::resources::forget_monitor(&state, p.tenant, id, &m.name).await;
    audit(
        &state,
        &p,
        "monitor.delete",
        &format!("monitor:{id}"),
        Some(&m.name),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    p: &Principal,
    id: &str,
    enabled: bool,
) -> Result<Tagged<MonitorOut>, Problem> {
    p.require(Role::Editor)?;
    let id: MonitorId = parse_id(id, "monitor")?;
    let current = fetch(state, p, id).await?;
    if current.enabled == enabled {
        return Ok(Tagged(current.version, MonitorOut::of(current, p.role)));
    }
    let mut new = read_monitor(plain_json(state, &current)?, current.push_token.clone())?;
    new.enabled = enabled;
    seal(state, p.tenant, &mut new)?;
    let m = state
        .store
        .update_monitor(
            p.tenant,
            id,
            Some(current.version),
            &new,
            pingtower_engine::now(),
        )
        .await?;
    announce(state, &m).await;
    let action = if enabled {
        "monitor.resume"
    } else {
        "monitor.pause"
    };
    audit(state, p, action, &format!("monitor:{id}"), Some(&m.name)).await;
    Ok(Tagged(m.version, MonitorOut::of(m, p.role)))
}

/// Pause a monitor: no checks until it is resumed.
#[utoipa::path(post, path = "/api/v1/monitors/{id}/pause", tag = "monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses((status = 200, body = MonitorOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn pause(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Tagged<MonitorOut>, Problem> {
    set_enabled(&state, &p, &id, false).await
}

/// Resume a paused monitor.
#[utoipa::path(post, path = "/api/v1/monitors/{id}/resume", tag = "monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses((status = 200, body = MonitorOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn resume(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Tagged<MonitorOut>, Problem> {
    set_enabled(&state, &p, &id, true).await
}

/// One check's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultOut {
    pub status: CheckStatus,
    pub latency_ms: f64,
    /// When the check started.
    pub checked_at: Timestamp,
    pub region: String,
    pub reason: Option<String>,
    /// Timings, assertion outcomes and kind-specific figures.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl From<CheckResult> for ResultOut {
    fn from(r: CheckResult) -> Self {
        Self {
            status: r.status,
            latency_ms: r.latency_us as f64 / 1000.0,
            checked_at: r.checked_at,
            region: r.region,
            reason: r.reason,
            details: r.details,
        }
    }
}

/// A monitor's recent results, newest first.
#[utoipa::path(get, path = "/api/v1/monitors/{id}/results", tag = "monitors",
    params(("id" = String, Path, description = "monitor id"), PageParams),
    responses((status = 200, body = ResultList), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn results(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Params(q): Params<PageParams>,
) -> Result<Json<ResultList>, Problem> {
    let id: MonitorId = parse_id(&id, "monitor")?;
    let page = q.request()?;
    // 404 for a monitor of another tenant, not an empty list.
    fetch(&state, &p, id).await?;
    let found = state.store.list_results(p.tenant, id, &page).await?;
    Ok(Json(ResultList::new(found, ResultOut::from)))
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(results))
}
