//! Channels, rules, maintenance windows, status pages, and the saved charts and dashboards of
//! event analytics: named, versioned configuration objects of a tenant, stored alike (a name and a JSON spec) and validated each by its kind.
//!
//! Invariants: a channel's credentials (passwords, tokens, routing keys, and the webhook URLs
//! of chat services, which embed a token) are sealed with the installation's key before they
//! reach the store, and never appear in an answer: answers name which are set. References to
//! other objects (a rule's channels, a status page's monitors, a dashboard's charts) must exist
//! in the same tenant; deleting an object takes it out of what referred to it.

use crate::auth::Principal;
use crate::http::{Created, Tagged, audit, if_match, not_found_as, parse_id};
use crate::input::{Body, Fields};
use crate::{AppState, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pingtower_core::{
    MonitorId, NewResource, Resource, ResourceId, ResourceKind, Role, TenantId, Timestamp,
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Channel kinds: their settings, which of them are credentials, and which are required.
pub(crate) struct ChannelKind {
    pub(crate) kind: &'static str,
    pub(crate) required: &'static [&'static str],
    pub(crate) optional: &'static [&'static str],
    pub(crate) secret: &'static [&'static str],
}

pub(crate) const CHANNEL_KINDS: &[ChannelKind] = &[
    ChannelKind {
        kind: "webhook",
        required: &["url"],
        optional: &["method", "body_template"],
        // Custom headers often carry an `Authorization` or an API key.
        secret: &["hmac_secret", "headers"],
    },
    ChannelKind {
        kind: "email",
        required: &["to", "smtp_host"],
        optional: &["smtp_port", "smtp_tls", "username", "from", "tls_ca_pem"],
        secret: &["password"],
    },
    ChannelKind {
        kind: "slack",
        required: &["url"],
        optional: &[],
        secret: &["url"],
    },
    ChannelKind {
        kind: "discord",
        required: &["url"],
        optional: &[],
        secret: &["url"],
    },
    ChannelKind {
        kind: "teams",
        required: &["url"],
        optional: &[],
        secret: &["url"],
    },
    ChannelKind {
        kind: "mattermost",
        required: &["url"],
        optional: &["channel"],
        secret: &["url"],
    },
    ChannelKind {
        kind: "google_chat",
        required: &["url"],
        optional: &[],
        secret: &["url"],
    },
    ChannelKind {
        kind: "telegram",
        required: &["chat_id", "bot_token"],
        optional: &["base_url"],
        secret: &["bot_token"],
    },
    ChannelKind {
        kind: "matrix",
        required: &["homeserver", "room_id", "access_token"],
        optional: &[],
        secret: &["access_token"],
    },
    ChannelKind {
        kind: "pagerduty",
        required: &["routing_key"],
        optional: &["base_url", "severity"],
        secret: &["routing_key"],
    },
    ChannelKind {
        kind: "opsgenie",
        required: &["api_key"],
        optional: &["base_url", "priority"],
        secret: &["api_key"],
    },
    ChannelKind {
        kind: "ntfy",
        required: &["url"],
        optional: &["priority"],
        secret: &["token"],
    },
    ChannelKind {
        kind: "gotify",
        required: &["url", "token"],
        optional: &["priority"],
        secret: &["token"],
    },
    ChannelKind {
        kind: "pushover",
        required: &["user_key", "token"],
        optional: &["base_url", "priority"],
        secret: &["user_key", "token"],
    },
    ChannelKind {
        kind: "twilio",
        required: &["account_sid", "auth_token", "from", "to"],
        optional: &["base_url"],
        secret: &["auth_token"],
    },
];

/// Settings that hold URLs (checked to be http or https).
const URL_FIELDS: &[&str] = &["url", "base_url", "homeserver"];
pub(crate) const RULE_EVENTS: &[&str] = &["down", "up", "degraded", "cert_expiring"];

/// Settings that say where a channel sends, and so where its credentials go (`smtp_tls: none`
/// and a CA of one's own would let them be read on the way).
const DESTINATION_FIELDS: &[&str] = &[
    "url",
    "base_url",
    "homeserver",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "tls_ca_pem",
];

/// A change of where a channel sends needs its stored credentials given again: otherwise an
/// editor could point the channel at a server of their own and send a test message to read
/// credentials nobody is ever shown. `current` is the stored spec, `body` the fields given.
pub(crate) fn credentials_follow_destination(
    current: &Value,
    stored: &Map<String, Value>,
    body: &Map<String, Value>,
) -> Vec<FieldError> {
    let moved: Vec<&str> = DESTINATION_FIELDS
        .iter()
        .copied()
        .filter(|f| {
            body.contains_key(*f) && body.get(*f) != current.get(*f) && !stored.contains_key(*f)
        })
        .collect();
    if moved.is_empty() {
        return Vec::new();
    }
    to_give_again(
        stored
            .keys()
            // A webhook's HMAC secret never leaves: only signatures do.
            .filter(|k| k.as_str() != "hmac_secret"),
        body,
        &format!("the channel's {} changes", moved.join(", ")),
    )
}

/// The stored credentials a change that moves where they go does not give again, each a
/// field error saying `why` (channels and monitors alike).
pub(crate) fn to_give_again<'a>(
    stored: impl IntoIterator<Item = &'a String>,
    given: &Map<String, Value>,
    why: &str,
) -> Vec<FieldError> {
    stored
        .into_iter()
        .filter(|k| given.get(k.as_str()).is_none_or(Value::is_null))
        .map(|k| FieldError {
            field: k.clone(),
            message: format!(
                "must be given again: {why}, and stored credentials only go where they were given for"
            ),
        })
        .collect()
}

fn channel_kind(kind: &str) -> Option<&'static ChannelKind> {
    CHANNEL_KINDS.iter().find(|k| k.kind == kind)
}

/// A configuration object as the API shows it: id, name and version beside its fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceOut {
    pub id: ResourceId,
    pub name: String,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Channels: which credentials are set (their values are never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets_set: Option<Vec<String>>,
    /// The object's fields (kind, url, monitors, channels, events, slug, …).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub spec: Map<String, Value>,
}

crate::http::list_type!(ResourceList, ResourceOut);

/// A stored object's fields as shown: a channel's credentials kept in its settings (stored
/// before they were sealed, such as a webhook's headers) left out. Answers them and the names
/// of those left out.
pub(crate) fn public_spec(kind: ResourceKind, spec: &Value) -> (Map<String, Value>, Vec<String>) {
    let mut map = spec.as_object().cloned().unwrap_or_default();
    let mut hidden = Vec::new();
    if kind == ResourceKind::Channel
        && let Some(ck) = map
            .get("kind")
            .and_then(Value::as_str)
            .and_then(channel_kind)
    {
        for field in ck.secret {
            if map.remove(*field).is_some() {
                hidden.push((*field).to_owned());
            }
        }
    }
    (map, hidden)
}

fn out(state: &AppState, r: Resource) -> ResourceOut {
    let (spec, legacy) = public_spec(r.kind, &r.spec);
    let secrets_set = (r.kind == ResourceKind::Channel).then(|| {
        let mut names: Vec<String> = open_secrets(state, r.tenant_id, r.secret.as_deref())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.extend(legacy);
        names.sort();
        names.dedup();
        names
    });
    ResourceOut {
        id: r.id,
        name: r.name,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        secrets_set,
        spec,
    }
}

pub(crate) fn open_secrets(
    state: &AppState,
    tenant: TenantId,
    sealed: Option<&[u8]>,
) -> Result<Map<String, Value>, Problem> {
    let Some(sealed) = sealed else {
        return Ok(Map::new());
    };
    let plain = state.auth.keys.open(tenant, sealed).map_err(|e| {
        Problem::internal(format_args!("opening a channel's credentials failed: {e}"))
    })?;
    serde_json::from_slice(&plain)
        .map_err(|e| Problem::internal(format_args!("stored credentials are not JSON: {e}")))
}

/// How references to monitors and channels are checked: against the store, or (planning a
/// configuration file) against the ids that exist or will exist once the plan is applied.
pub(crate) enum Refs {
    Store,
    Known {
        monitors: std::collections::HashSet<String>,
        channels: std::collections::HashSet<String>,
    },
}

impl Refs {
    /// Of `ids`, the monitors of the tenant (one query, whatever the number).
    async fn monitors(
        &self,
        state: &AppState,
        tenant: TenantId,
        ids: &[MonitorId],
    ) -> Result<std::collections::HashSet<MonitorId>, Problem> {
        Ok(match self {
            Refs::Known { monitors, .. } => ids
                .iter()
                .filter(|id| monitors.contains(&id.to_string()))
                .copied()
                .collect(),
            Refs::Store => state
                .store
                .monitors_by_ids(ids)
                .await?
                .into_iter()
                .filter(|m| m.tenant_id == tenant)
                .map(|m| m.id)
                .collect(),
        })
    }

    /// The ids of the tenant's channels.
    async fn channels(
        &self,
        state: &AppState,
        tenant: TenantId,
    ) -> Result<std::collections::HashSet<String>, Problem> {
        Ok(match self {
            Refs::Known { channels, .. } => channels.clone(),
            Refs::Store => state
                .store
                .list_resources(tenant, ResourceKind::Channel)
                .await?
                .into_iter()
                .map(|c| c.id.to_string())
                .collect(),
        })
    }
}

/// Reads a monitor selection: `"all"`, a list of monitor ids, or `{"tags": [...]}`.
async fn monitor_selection(
    state: &AppState,
    refs: &Refs,
    tenant: TenantId,
    field: &str,
    value: Option<Value>,
    errors: &mut Vec<FieldError>,
    required: bool,
) -> Result<Option<Value>, Problem> {
    let err = |errors: &mut Vec<FieldError>, message: &str| {
        errors.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        });
    };
    Ok(match value {
        None | Some(Value::Null) => {
            if required {
                err(
                    errors,
                    "is required: \"all\", a list of monitor ids, or {\"tags\": [...]}",
                );
            }
            None
        }
        Some(Value::String(s)) if s == "all" => Some(Value::from("all")),
        Some(Value::Array(items)) => {
            let ids = monitor_ids(state, refs, tenant, field, &items, errors).await?;
            Some(id_list(&ids))
        }
        Some(Value::Object(o)) if o.len() == 1 && o.get("tags").is_some_and(Value::is_array) => {
            let tags = o
                .get("tags")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if tags.is_empty()
                || !tags
                    .iter()
                    .all(|t| t.as_str().is_some_and(|s| !s.is_empty()))
            {
                err(errors, "`tags` must be a non-empty list of tags");
            }
            Some(Value::Object(o))
        }
        Some(_) => {
            err(
                errors,
                "must be \"all\", a list of monitor ids, or {\"tags\": [...]}",
            );
            None
        }
    })
}

async fn monitor_ids(
    state: &AppState,
    refs: &Refs,
    tenant: TenantId,
    field: &str,
    items: &[Value],
    errors: &mut Vec<FieldError>,
) -> Result<Vec<MonitorId>, Problem> {
    let parsed: Vec<Option<MonitorId>> = items
        .iter()
        .map(|item| item.as_str().and_then(|s| s.parse::<MonitorId>().ok()))
        .collect();
    let wanted: Vec<MonitorId> = parsed.iter().flatten().copied().collect();
    let known = refs.monitors(state, tenant, &wanted).await?;
    let mut ids = Vec::new();
    for (i, id) in parsed.into_iter().enumerate() {
        match id.filter(|id| known.contains(id)) {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => errors.push(FieldError {
                field: format!("{field}[{i}]"),
                message: "is not a monitor of this tenant".into(),
            }),
        }
    }
    Ok(ids)
}

/// A status page's sections, `[{"name": "API", "monitors": [ids]}]`, shown in this order. A
/// monitor is in one section at most; the page's monitors in no section are shown first. With
/// `monitors` given, a section may only name monitors of that list; without, the page shows
/// the sections' monitors (and `shown` becomes them).
async fn status_page_groups(
    state: &AppState,
    refs: &Refs,
    tenant: TenantId,
    value: Option<Value>,
    shown: &mut Option<Vec<MonitorId>>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Value>, Problem> {
    let mut err = |field: String, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_owned(),
        });
    };
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            err(
                "groups".into(),
                "must be a list of {\"name\": …, \"monitors\": [monitor ids]}",
            );
            return Ok(None);
        }
    };
    // (group, position, id) of every member, and the groups with their names.
    let mut members: Vec<(usize, usize, Option<MonitorId>)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            err(
                format!("groups[{i}]"),
                "must be {\"name\": …, \"monitors\": [monitor ids]}",
            );
            names.push(String::new());
            continue;
        };
        if o.keys().any(|k| k != "name" && k != "monitors") {
            err(format!("groups[{i}]"), "takes only `name` and `monitors`");
        }
        let name = o.get("name").and_then(Value::as_str).map(str::trim);
        match name {
            Some(n) if !n.is_empty() && n.chars().count() <= 100 => {
                if names.iter().any(|m| m == n) {
                    err(format!("groups[{i}].name"), "another group has this name");
                }
                names.push(n.to_owned());
            }
            _ => {
                err(
                    format!("groups[{i}].name"),
                    "is required: 1 to 100 characters",
                );
                names.push(String::new());
            }
        }
        match o.get("monitors") {
            Some(Value::Array(ids)) => {
                for (j, id) in ids.iter().enumerate() {
                    members.push((i, j, id.as_str().and_then(|s| s.parse().ok())));
                }
            }
            _ => err(
                format!("groups[{i}].monitors"),
                "must be a list of monitor ids",
            ),
        }
    }
    let known: std::collections::HashSet<MonitorId> = match shown {
        Some(list) => list.iter().copied().collect(),
        None => {
            let wanted: Vec<MonitorId> = members.iter().filter_map(|m| m.2).collect();
            refs.monitors(state, tenant, &wanted).await?
        }
    };
    let outside = if shown.is_some() {
        "is not one of the page's `monitors`"
    } else {
        "is not a monitor of this tenant"
    };
    let mut grouped: Vec<Vec<MonitorId>> = vec![Vec::new(); names.len()];
    let mut seen: Vec<MonitorId> = Vec::new();
    for (i, j, id) in members {
        match id.filter(|id| known.contains(id)) {
            Some(id) if grouped[i].contains(&id) => err(
                format!("groups[{i}].monitors[{j}]"),
                "is listed twice in this group",
            ),
            Some(id) if seen.contains(&id) => err(
                format!("groups[{i}].monitors[{j}]"),
                "is in another group already",
            ),
            Some(id) => {
                seen.push(id);
                grouped[i].push(id);
            }
            None => err(format!("groups[{i}].monitors[{j}]"), outside),
        }
    }
    if shown.is_none() {
        *shown = Some(seen);
    }
    Ok(Some(Value::Array(
        names
            .into_iter()
            .zip(grouped)
            .map(|(name, monitors)| serde_json::json!({"name": name, "monitors": id_list(&monitors)}))
            .collect(),
    )))
}

/// Monitor ids as the stored JSON list.
fn id_list(ids: &[MonitorId]) -> Value {
    Value::from(ids.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// A stored status page's groups: each name with its monitor ids, in order.
pub(crate) fn page_groups(spec: &Value) -> Vec<(&str, Vec<&str>)> {
    spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let ids = g["monitors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            (g["name"].as_str().unwrap_or_default(), ids)
        })
        .collect()
}

/// The name a stored status page gives a monitor instead of its own, if any.
pub(crate) fn public_name<'s>(spec: &'s Value, monitor_id: &str) -> Option<&'s str> {
    spec["public_names"][monitor_id].as_str()
}

/// What a status page calls its monitors instead of their own names: `{"<monitor id>": "Public
/// API"}`, for monitors on the page.
fn public_names(
    value: Option<Value>,
    shown: &[MonitorId],
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let o = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(o)) => o,
        Some(_) => {
            errors.push(FieldError {
                field: "public_names".into(),
                message: "must be an object of monitor ids to the names the page shows".into(),
            });
            return None;
        }
    };
    let mut out = Map::new();
    for (key, name) in o {
        let id = key.parse::<MonitorId>().ok();
        let field = format!("public_names.{key}");
        match id.filter(|id| shown.contains(id)) {
            None => errors.push(FieldError {
                field,
                message: "is not one of the page's monitors".into(),
            }),
            Some(id) => match name.as_str().map(str::trim) {
                Some(n) if !n.is_empty() && n.chars().count() <= 200 => {
                    // Keyed by the id in its canonical form.
                    out.insert(id.to_string(), Value::from(n));
                }
                _ => errors.push(FieldError {
                    field,
                    message: "must be a name of 1 to 200 characters".into(),
                }),
            },
        }
    }
    Some(Value::Object(out))
}

async fn channel_ids(
    state: &AppState,
    refs: &Refs,
    tenant: TenantId,
    field: &str,
    value: Option<Value>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Value>, Problem> {
    let Some(Value::Array(items)) = value else {
        errors.push(FieldError {
            field: field.to_owned(),
            message: "must be a list of channel ids".into(),
        });
        return Ok(None);
    };
    let known = refs.channels(state, tenant).await?;
    if items.is_empty() {
        errors.push(FieldError {
            field: field.to_owned(),
            message: "must name at least one channel".into(),
        });
    }
    let mut ids = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let id = item.as_str().and_then(|s| s.parse::<ResourceId>().ok());
        let ok = id.is_some_and(|id| known.contains(&id.to_string()));
        match id {
            Some(id) if ok => {
                if !ids.contains(&id.to_string()) {
                    ids.push(id.to_string());
                }
            }
            _ => errors.push(FieldError {
                field: format!("{field}[{i}]"),
                message: "is not a channel of this tenant".into(),
            }),
        }
    }
    Ok(Some(Value::from(ids)))
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// How a saved chart is drawn.
pub(crate) const CHART_STYLES: [&str; 2] = ["line", "bar"];
/// Charts one dashboard shows.
pub(crate) const MAX_DASHBOARD_CHARTS: usize = 24;

/// An optional `description` of at most 2,000 characters.
fn description(f: &mut Fields, spec: &mut Map<String, Value>) {
    if let Some(d) = f.str("description") {
        if d.chars().count() > 2000 {
            f.err("description", "must be at most 2000 characters");
        }
        spec.insert("description".into(), Value::from(d));
    }
}

/// A dashboard's charts: ids of the tenant's saved charts, each once, at most
/// [`MAX_DASHBOARD_CHARTS`], in the order given.
async fn dashboard_charts(
    state: &AppState,
    tenant: TenantId,
    items: &[Value],
    errors: &mut Vec<FieldError>,
) -> Result<Vec<ResourceId>, Problem> {
    if items.len() > MAX_DASHBOARD_CHARTS {
        errors.push(FieldError {
            field: "charts".into(),
            message: format!("a dashboard shows at most {MAX_DASHBOARD_CHARTS} charts"),
        });
        return Ok(Vec::new());
    }
    let saved: std::collections::HashSet<ResourceId> = state
        .store
        .list_resources(tenant, ResourceKind::Chart)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("charts[{i}]");
        match item.as_str().and_then(|s| s.parse::<ResourceId>().ok()) {
            Some(id) if !saved.contains(&id) => errors.push(FieldError {
                field,
                message: "no saved chart of this tenant has this id".into(),
            }),
            Some(id) if out.contains(&id) => errors.push(FieldError {
                field,
                message: "is already on the dashboard".into(),
            }),
            Some(id) => out.push(id),
            None => errors.push(FieldError {
                field,
                message: "must be a chart id".into(),
            }),
        }
    }
    Ok(out)
}

/// The validated spec and credentials of a new or changed object.
pub(crate) struct Validated {
    pub(crate) name: String,
    pub(crate) slug: Option<String>,
    pub(crate) spec: Map<String, Value>,
    pub(crate) secrets: Map<String, Value>,
}

pub(crate) async fn validate(
    state: &AppState,
    refs: &Refs,
    tenant: TenantId,
    kind: ResourceKind,
    body: Map<String, Value>,
    mut secrets: Map<String, Value>,
) -> Result<Validated, Problem> {
    let mut f = Fields::new(body);
    for ro in ["id", "version", "created_at", "updated_at", "secrets_set"] {
        if f.has(ro) {
            f.take(ro);
            f.err(ro, "is set by the server");
        }
    }
    let name = f.required_str("name").map(|n| n.trim().to_owned());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        f.err("name", "must be at most 200 characters");
    }
    let mut spec = Map::new();
    let mut slug = None;
    let mut errors = Vec::new();
    match kind {
        ResourceKind::Channel => {
            let ck = match f.str("kind") {
                None => {
                    f.err("kind", "is required");
                    None
                }
                Some(k) => match channel_kind(&k) {
                    Some(ck) => Some(ck),
                    None => {
                        let known: Vec<_> = CHANNEL_KINDS.iter().map(|k| k.kind).collect();
                        f.err("kind", format!("must be one of {}", known.join(", ")));
                        None
                    }
                },
            };
            if let Some(ck) = ck {
                spec.insert("kind".into(), Value::from(ck.kind));
                for (key, value) in f.rest() {
                    let known = ck.required.contains(&key.as_str())
                        || ck.optional.contains(&key.as_str())
                        || ck.secret.contains(&key.as_str());
                    if !known {
                        errors.push(FieldError {
                            message: format!("is not a setting of {} channels", ck.kind),
                            field: key,
                        });
                        continue;
                    }
                    if ck.secret.contains(&key.as_str()) {
                        if value.is_null() {
                            secrets.remove(&key);
                        } else {
                            secrets.insert(key, value);
                        }
                    } else if !value.is_null() {
                        spec.insert(key, value);
                    }
                }
                secrets.retain(|k, _| ck.secret.contains(&k.as_str()));
                for key in ck.required {
                    if !spec.contains_key(*key) && !secrets.contains_key(*key) {
                        errors.push(FieldError {
                            field: (*key).into(),
                            message: "is required".into(),
                        });
                    }
                }
                for (key, value) in spec.iter().chain(secrets.iter()) {
                    let ok = match key.as_str() {
                        "headers" => value
                            .as_object()
                            .is_some_and(|h| h.values().all(Value::is_string)),
                        "to" if ck.kind == "email" => value.as_array().is_some_and(|a| {
                            !a.is_empty()
                                && a.iter()
                                    .all(|e| e.as_str().is_some_and(|s| s.contains('@')))
                        }),
                        "smtp_port" => value.as_u64().is_some_and(|p| (1..=65_535).contains(&p)),
                        "smtp_tls" => value
                            .as_str()
                            .is_some_and(|s| ["starttls", "tls", "none"].contains(&s)),
                        "priority" => value.is_string() || value.is_number(),
                        // Telegram chat ids are numbers (or @channel names).
                        "chat_id" => {
                            value.is_i64() || value.as_str().is_some_and(|s| !s.trim().is_empty())
                        }
                        k if URL_FIELDS.contains(&k) => value.as_str().is_some_and(is_http_url),
                        _ => value.as_str().is_some_and(|s| !s.trim().is_empty()),
                    };
                    if !ok {
                        let message = match key.as_str() {
                            "headers" => "must be an object of header names to strings",
                            "to" if ck.kind == "email" => "must be a non-empty list of addresses",
                            "smtp_port" => "must be a port number",
                            "smtp_tls" => "must be `starttls`, `tls` or `none`",
                            "chat_id" => "must be a chat id (a number) or an @channel name",
                            k if URL_FIELDS.contains(&k) => "must be an http:// or https:// URL",
                            _ => "must be a non-empty string",
                        };
                        errors.push(FieldError {
                            field: key.clone(),
                            message: message.into(),
                        });
                    }
                }
            } else {
                f.rest();
            }
        }
        ResourceKind::Rule => {
            let monitors = f.take("monitors");
            if let Some(sel) =
                monitor_selection(state, refs, tenant, "monitors", monitors, &mut errors, true)
                    .await?
            {
                spec.insert("monitors".into(), sel);
            }
            match f.strings("events") {
                Some(events) if !events.is_empty() => {
                    for (i, e) in events.iter().enumerate() {
                        if !RULE_EVENTS.contains(&e.as_str()) {
                            f.err(
                                &format!("events[{i}]"),
                                format!("must be one of {}", RULE_EVENTS.join(", ")),
                            );
                        }
                    }
                    spec.insert("events".into(), Value::from(events));
                }
                _ => f.err("events", "must be a non-empty list of events"),
            }
            let channels = f.take("channels");
            if let Some(ids) =
                channel_ids(state, refs, tenant, "channels", channels, &mut errors).await?
            {
                spec.insert("channels".into(), ids);
            }
            for (key, min, max) in [
                ("after_failures", 1, 100),
                ("renotify_minutes", 0, 10_080),
                ("cert_expiring_days", 0, 365),
            ] {
                if let Some(n) = f.int(key, min, max) {
                    spec.insert(key.into(), Value::from(n));
                }
            }
            if let Some(b) = f.bool("notify_on_resolve") {
                spec.insert("notify_on_resolve".into(), Value::from(b));
            }
            match f.take("flap") {
                None | Some(Value::Null) => {}
                Some(Value::Object(o)) => {
                    let failures = o.get("failures").and_then(Value::as_u64);
                    let within = o.get("within_minutes").and_then(Value::as_u64);
                    match (failures, within) {
                        (Some(n), Some(w))
                            if (1..=1000).contains(&n)
                                && (1..=1440).contains(&w)
                                && o.len() == 2 =>
                        {
                            spec.insert("flap".into(), Value::Object(o));
                        }
                        _ => f.err(
                            "flap",
                            "must be {\"failures\": 1..1000, \"within_minutes\": 1..1440}",
                        ),
                    }
                }
                Some(_) => f.err("flap", "must be {\"failures\": N, \"within_minutes\": M}"),
            }
            match f.take("escalate") {
                None | Some(Value::Null) => {}
                Some(Value::Object(mut o)) => {
                    let after = o.remove("after_minutes").and_then(|v| v.as_u64());
                    let chans = channel_ids(
                        state,
                        refs,
                        tenant,
                        "escalate.channels",
                        o.remove("channels"),
                        &mut errors,
                    )
                    .await?;
                    if !o.is_empty() {
                        f.err("escalate", "takes only `after_minutes` and `channels`");
                    }
                    match (after, chans) {
                        (Some(a), Some(c)) if (1..=10_080).contains(&a) => {
                            let mut e = Map::new();
                            e.insert("after_minutes".into(), Value::from(a));
                            e.insert("channels".into(), c);
                            spec.insert("escalate".into(), Value::Object(e));
                        }
                        _ => f.err("escalate.after_minutes", "must be from 1 to 10080"),
                    }
                }
                Some(_) => f.err(
                    "escalate",
                    "must be {\"after_minutes\": N, \"channels\": [...]}",
                ),
            }
            f.reject_rest("a rule");
        }
        ResourceKind::Maintenance => {
            let monitors = f.take("monitors");
            if let Some(sel) =
                monitor_selection(state, refs, tenant, "monitors", monitors, &mut errors, true)
                    .await?
            {
                spec.insert("monitors".into(), sel);
            }
            let starts: Option<Timestamp> = f.take("starts_at").and_then(|v| {
                serde_json::from_value(v)
                    .map_err(|_| f.err("starts_at", "must be an RFC 3339 time"))
                    .ok()
            });
            let ends: Option<Timestamp> = f.take("ends_at").and_then(|v| {
                serde_json::from_value(v)
                    .map_err(|_| f.err("ends_at", "must be an RFC 3339 time"))
                    .ok()
            });
            let cron = f.str("cron");
            let duration = f.int("duration_minutes", 1, 7 * 1440);
            let tz = f.str("timezone");
            match (starts, ends, cron) {
                (Some(s), Some(e), None) => {
                    if e <= s {
                        f.err("ends_at", "must be after starts_at");
                    }
                    spec.insert("starts_at".into(), Value::from(s.to_string()));
                    spec.insert("ends_at".into(), Value::from(e.to_string()));
                }
                (None, None, Some(expr)) => {
                    let tz_name = tz.clone().unwrap_or_else(|| "UTC".into());
                    if let Err((field, message)) =
                        pingtower_core::check::CronSchedule::parse(&expr, &tz_name)
                    {
                        f.err(&field, message);
                    }
                    if duration.is_none() {
                        f.err("duration_minutes", "is required with cron");
                    }
                    spec.insert("cron".into(), Value::from(expr));
                    spec.insert("timezone".into(), Value::from(tz_name));
                    if let Some(d) = duration {
                        spec.insert("duration_minutes".into(), Value::from(d));
                    }
                }
                _ => f.err(
                    "starts_at",
                    "give either starts_at and ends_at (one-off) or cron and duration_minutes (recurring)",
                ),
            }
            description(&mut f, &mut spec);
            f.reject_rest("a maintenance window");
        }
        ResourceKind::StatusPage => {
            if let Some(s) = f.required_str("slug") {
                let ok = s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !s.starts_with('-');
                if ok {
                    spec.insert("slug".into(), Value::from(s.clone()));
                    slug = Some(s);
                } else {
                    f.err("slug", "use 1 to 64 lowercase letters, digits and `-`");
                }
            }
            let mut shown: Option<Vec<MonitorId>> = match f.take("monitors") {
                Some(Value::Array(items)) => {
                    Some(monitor_ids(state, refs, tenant, "monitors", &items, &mut errors).await?)
                }
                None | Some(Value::Null) => None,
                Some(_) => {
                    f.err("monitors", "must be a list of monitor ids");
                    Some(Vec::new())
                }
            };
            let groups = f.take("groups");
            if let Some(g) =
                status_page_groups(state, refs, tenant, groups, &mut shown, &mut errors).await?
            {
                spec.insert("groups".into(), g);
            }
            let shown = shown.unwrap_or_default();
            if let Some(n) = public_names(f.take("public_names"), &shown, &mut errors) {
                spec.insert("public_names".into(), n);
            }
            spec.insert("monitors".into(), id_list(&shown));
            description(&mut f, &mut spec);
            f.reject_rest("a status page");
        }
        ResourceKind::Chart => {
            match f.take("query") {
                Some(Value::Object(q)) => {
                    match pingtower_analytics::query::read_query(q.clone(), pingtower_engine::now())
                    {
                        Ok(_) => {
                            spec.insert("query".into(), Value::Object(q));
                        }
                        Err(wrong) => errors.extend(wrong.into_iter().map(|e| FieldError {
                            field: format!("query.{}", e.field),
                            message: e.message,
                        })),
                    }
                }
                None | Some(Value::Null) => f.err(
                    "query",
                    "is required: the object POST /api/v1/events/query takes",
                ),
                Some(_) => f.err(
                    "query",
                    "must be an object, as POST /api/v1/events/query takes",
                ),
            }
            let style = f.str("style").unwrap_or_else(|| "line".into());
            if CHART_STYLES.contains(&style.as_str()) {
                spec.insert("style".into(), Value::from(style));
            } else {
                f.err(
                    "style",
                    format!("must be one of {}", CHART_STYLES.join(", ")),
                );
            }
            description(&mut f, &mut spec);
            f.reject_rest("a chart");
        }
        ResourceKind::Dashboard => {
            let charts = match f.take("charts") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => {
                    dashboard_charts(state, tenant, &items, &mut errors).await?
                }
                Some(_) => {
                    f.err("charts", "must be a list of chart ids");
                    Vec::new()
                }
            };
            spec.insert(
                "charts".into(),
                Value::Array(charts.iter().map(|c| Value::from(c.to_string())).collect()),
            );
            let columns = f.int("columns", 1, 4).unwrap_or(2);
            spec.insert("columns".into(), Value::from(columns));
            description(&mut f, &mut spec);
            f.reject_rest("a dashboard");
        }
    }
    f.push_errors(errors);
    f.finish()?;
    Ok(Validated {
        name: name.unwrap_or_default(),
        slug,
        spec,
        secrets,
    })
}

pub(crate) fn new_resource(
    state: &AppState,
    tenant: TenantId,
    kind: ResourceKind,
    v: Validated,
) -> Result<NewResource, Problem> {
    let secret =
        if v.secrets.is_empty() {
            None
        } else {
            let plain = serde_json::to_vec(&v.secrets)
                .map_err(|e| Problem::internal(format_args!("encoding credentials failed: {e}")))?;
            Some(
                state.auth.keys.seal(tenant, &plain).map_err(|e| {
                    Problem::internal(format_args!("sealing credentials failed: {e}"))
                })?,
            )
        };
    Ok(NewResource {
        kind,
        name: v.name,
        slug: v.slug,
        spec: Value::Object(v.spec),
        secret,
    })
}

fn conflict(kind: ResourceKind) -> impl Fn(pingtower_store::StoreError) -> Problem {
    move |e| match e {
        pingtower_store::StoreError::Conflict(_) => {
            let what = if kind == ResourceKind::StatusPage {
                "a status page with this slug, or one of this name, exists"
            } else {
                "the tenant already has one with this name"
            };
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict").with_detail(what)
        }
        pingtower_store::StoreError::NotFound => Problem::not_found(kind.as_str()),
        other => other.into(),
    }
}

/// The collection's path segment, the same under `/api/v1/` and in the dashboard.
pub(crate) fn path_of(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Channel => "channels",
        ResourceKind::Rule => "rules",
        ResourceKind::Maintenance => "maintenance",
        ResourceKind::StatusPage => "status-pages",
        ResourceKind::Chart => "events/charts",
        ResourceKind::Dashboard => "events/dashboards",
    }
}

pub(crate) async fn announce(state: &AppState, tenant: TenantId, kind: ResourceKind) {
    // Notifiers cache channels and rules; tell them to reload.
    let msg = pingtower_engine::scheduler::ResourceChanged {
        tenant_id: tenant,
        resource: kind.as_str().to_owned(),
    };
    if let Err(e) = pingtower_bus::publish_json(
        state.bus.as_ref(),
        pingtower_bus::topics::CONFIG_CHANGED,
        &msg,
    )
    .await
    {
        tracing::warn!(error = %e, "announcing a configuration change failed");
    }
}

/// How many objects of `kind` a tenant may have (saved charts and dashboards are made from a
/// page by anyone with the editor role; a bound keeps one tenant from filling the store).
fn most_of(kind: ResourceKind) -> Option<usize> {
    match kind {
        ResourceKind::Chart => Some(1000),
        ResourceKind::Dashboard => Some(1000),
        _ => None,
    }
}

async fn list_of(
    state: &AppState,
    p: &Principal,
    kind: ResourceKind,
    q: &crate::input::PageParams,
) -> Result<Json<ResourceList>, Problem> {
    let page = q.request()?;
    let items = state.store.list_resources(p.tenant, kind).await?;
    let items = crate::http::page_of(items, |r| r.id.to_string(), &page);
    Ok(Json(ResourceList::new(items, |r| out(state, r))))
}

async fn create_of(
    state: &AppState,
    p: &Principal,
    kind: ResourceKind,
    body: Map<String, Value>,
) -> Result<Created<ResourceOut>, Problem> {
    p.require(Role::Editor)?;
    if let Some(max) = most_of(kind) {
        let have = state.store.list_resources(p.tenant, kind).await?.len();
        if have >= max {
            return Err(
                Problem::new(StatusCode::FORBIDDEN, "quota-exceeded", "Quota exceeded")
                    .with_detail(format!(
                        "a tenant may have at most {max} of these; it has {have}: delete some first"
                    )),
            );
        }
    }
    let v = validate(state, &Refs::Store, p.tenant, kind, body, Map::new()).await?;
    let new = new_resource(state, p.tenant, kind, v)?;
    let r = state
        .store
        .create_resource(p.tenant, &new, pingtower_engine::now())
        .await
        .map_err(conflict(kind))?;
    announce(state, p.tenant, kind).await;
    let target = format!("{}:{}", kind.as_str(), r.id);
    audit(
        state,
        p,
        &format!("{}.create", kind.as_str()),
        &target,
        Some(&r.name),
    )
    .await;
    Ok(Created::new(
        format!("/api/v1/{}/{}", path_of(kind), r.id),
        r.version,
        out(state, r),
    ))
}

async fn get_of(
    state: &AppState,
    p: &Principal,
    kind: ResourceKind,
    id: &str,
) -> Result<Tagged<ResourceOut>, Problem> {
    let id: ResourceId = parse_id(id, kind.as_str())?;
    let r = state
        .store
        .get_resource(p.tenant, kind, id)
        .await
        .map_err(|e| not_found_as(e, kind.as_str()))?;
    Ok(Tagged(r.version, out(state, r)))
}

async fn update_of(
    state: &AppState,
    p: &Principal,
    kind: ResourceKind,
    id: &str,
    headers: &axum::http::HeaderMap,
    patch: Map<String, Value>,
) -> Result<Tagged<ResourceOut>, Problem> {
    p.require(Role::Editor)?;
    let id: ResourceId = parse_id(id, kind.as_str())?;
    let expected = if_match(headers)?;
    let current = state
        .store
        .get_resource(p.tenant, kind, id)
        .await
        .map_err(|e| not_found_as(e, kind.as_str()))?;
    let secrets = open_secrets(state, p.tenant, current.secret.as_deref())?;
    let mut merged = match &current.spec {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merged.insert("name".into(), Value::from(current.name.clone()));
    if kind == ResourceKind::Channel
        && let Some(k) = patch.get("kind")
        && merged.get("kind") != Some(k)
    {
        return Err(Problem::invalid(vec![FieldError {
            field: "kind".into(),
            message: "a channel's kind cannot change; create a new channel".into(),
        }]));
    }
    if kind == ResourceKind::Channel {
        // Credentials stored before sealing (kept in the settings) count as stored.
        let mut stored = secrets.clone();
        for field in public_spec(kind, &current.spec).1 {
            stored.entry(field).or_insert(Value::Null);
        }
        let errors = credentials_follow_destination(&current.spec, &stored, &patch);
        if !errors.is_empty() {
            return Err(Problem::invalid(errors));
        }
    }
    for (k, v) in patch {
        if v.is_null() && kind != ResourceKind::Channel {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let v = validate(state, &Refs::Store, p.tenant, kind, merged, secrets).await?;
    let new = new_resource(state, p.tenant, kind, v)?;
    let r = state
        .store
        .update_resource(
            p.tenant,
            id,
            Some(expected.unwrap_or(current.version)),
            &new,
            pingtower_engine::now(),
        )
        .await
        .map_err(|e| match e {
            e @ pingtower_store::StoreError::VersionMismatch { .. } => Problem::from(e),
            e => conflict(kind)(e),
        })?;
    announce(state, p.tenant, kind).await;
    let target = format!("{}:{}", kind.as_str(), r.id);
    audit(
        state,
        p,
        &format!("{}.update", kind.as_str()),
        &target,
        Some(&r.name),
    )
    .await;
    Ok(Tagged(r.version, out(state, r)))
}

async fn delete_of(
    state: &AppState,
    p: &Principal,
    kind: ResourceKind,
    id: &str,
) -> Result<StatusCode, Problem> {
    p.require(Role::Editor)?;
    let id: ResourceId = parse_id(id, kind.as_str())?;
    // The audit log names what was deleted.
    let name = state
        .store
        .get_resource(p.tenant, kind, id)
        .await
        .ok()
        .map(|r| r.name);
    state
        .store
        .delete_resource(p.tenant, kind, id)
        .await
        .map_err(|e| not_found_as(e, kind.as_str()))?;
    if kind == ResourceKind::Chart {
        forget_chart(state, p.tenant, id).await;
    }
    announce(state, p.tenant, kind).await;
    let target = format!("{}:{id}", kind.as_str());
    audit(
        state,
        p,
        &format!("{}.delete", kind.as_str()),
        &target,
        name.as_deref(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The five handlers of one kind, each with its OpenAPI description.
macro_rules! resource_handlers {
    ($module:ident, $kind:expr, $list_path:literal, $item_path:literal, $tag:literal, $what:literal, $fields:literal) => {
        pub mod $module {
            use super::*;

            #[doc = concat!("List ", $what, "s.")]
            #[utoipa::path(get, path = $list_path, tag = $tag,
                params(crate::input::PageParams),
                responses((status = 200, body = ResourceList), (status = 401, body = Problem), (status = 422, body = Problem)))]
            pub async fn list(
                State(state): State<AppState>,
                p: Principal,
                crate::input::Params(q): crate::input::Params<crate::input::PageParams>,
            ) -> Result<Json<ResourceList>, Problem> {
                list_of(&state, &p, $kind, &q).await
            }

            #[doc = concat!("Create a ", $what, ".")]
            #[utoipa::path(post, path = $list_path, tag = $tag,
                request_body(content = Object, description = concat!("the ", $what, "'s fields: ", $fields)),
                responses((status = 201, body = ResourceOut), (status = 403, body = Problem),
                    (status = 409, body = Problem), (status = 422, body = Problem)))]
            pub async fn create(
                State(state): State<AppState>,
                p: Principal,
                Body(body): Body,
            ) -> Result<Created<ResourceOut>, Problem> {
                create_of(&state, &p, $kind, body).await
            }

            #[doc = concat!("Read a ", $what, ".")]
            #[utoipa::path(get, path = $item_path, tag = $tag,
                params(("id" = String, Path)),
                responses((status = 200, body = ResourceOut), (status = 404, body = Problem)))]
            pub async fn get(
                State(state): State<AppState>,
                p: Principal,
                Path(id): Path<String>,
            ) -> Result<Tagged<ResourceOut>, Problem> {
                get_of(&state, &p, $kind, &id).await
            }

            #[doc = concat!("Change some fields of a ", $what, " (with `If-Match`, only if unchanged meanwhile).")]
            #[utoipa::path(patch, path = $item_path, tag = $tag,
                params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
                request_body(content = Object, description = concat!("the fields to change (null removes an optional one): ", $fields)),
                responses((status = 200, body = ResourceOut), (status = 404, body = Problem),
                    (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
            pub async fn update(
                State(state): State<AppState>,
                p: Principal,
                Path(id): Path<String>,
                headers: axum::http::HeaderMap,
                Body(body): Body,
            ) -> Result<Tagged<ResourceOut>, Problem> {
                update_of(&state, &p, $kind, &id, &headers, body).await
            }

            #[doc = concat!("Delete a ", $what, ".")]
            #[utoipa::path(delete, path = $item_path, tag = $tag,
                params(("id" = String, Path)),
                responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
            pub async fn delete(
                State(state): State<AppState>,
                p: Principal,
                Path(id): Path<String>,
            ) -> Result<StatusCode, Problem> {
                delete_of(&state, &p, $kind, &id).await
            }
        }
    };
}

resource_handlers!(
    channels,
    ResourceKind::Channel,
    "/api/v1/channels",
    "/api/v1/channels/{id}",
    "notifications",
    "notification channel",
    "`name`, `kind` (webhook, slack, discord, teams, mattermost, google_chat, telegram, matrix, pagerduty, opsgenie, ntfy, gotify, pushover, twilio, email) and that kind's settings; credentials are write-only (`secrets_set` says which are stored)"
);
resource_handlers!(
    rules,
    ResourceKind::Rule,
    "/api/v1/rules",
    "/api/v1/rules/{id}",
    "notifications",
    "notification rule",
    "`name`, `monitors` (\"all\", a list of monitor ids, or {\"tags\": [...]}), `events` (down, up, degraded, cert_expiring), `channels` (ids), optional `after_failures`, `renotify_minutes`, `notify_on_resolve`, `flap` {`failures`, `within_minutes`}, `escalate` {`after_minutes`, `channels`}, `cert_expiring_days`"
);
resource_handlers!(
    maintenance,
    ResourceKind::Maintenance,
    "/api/v1/maintenance",
    "/api/v1/maintenance/{id}",
    "maintenance",
    "maintenance window",
    "`name`, `monitors` (\"all\", ids, or {\"tags\": [...]}), then `starts_at` and `ends_at` (RFC 3339, one-off) or `cron`, `duration_minutes` and `timezone` (recurring), optional `description`"
);
resource_handlers!(
    status_pages,
    ResourceKind::StatusPage,
    "/api/v1/status-pages",
    "/api/v1/status-pages/{id}",
    "status pages",
    "status page",
    "`name`, `slug` (its address `/status/{slug}`), `monitors` (ids, in the order shown), optional `groups` ([{\"name\": ..., \"monitors\": [ids]}], sections shown under their names after the monitors in no group; without `monitors`, the page shows the groups' monitors), `public_names` ({\"<monitor id>\": \"name shown\"}), `description`"
);

resource_handlers!(
    charts,
    ResourceKind::Chart,
    "/api/v1/events/charts",
    "/api/v1/events/charts/{id}",
    "analytics",
    "saved chart",
    "`name`, `query` (the object `POST /api/v1/events/query` takes; a relative `range` keeps the chart moving), optional `style` (`line`, the default, or `bar`) and `description`; its figures are at `GET /api/v1/events/charts/{id}/data`"
);
resource_handlers!(
    dashboards,
    ResourceKind::Dashboard,
    "/api/v1/events/dashboards",
    "/api/v1/events/dashboards/{id}",
    "analytics",
    "dashboard",
    "`name`, `charts` (ids of saved charts, in the order shown, at most 24), optional `columns` (1 to 4, default 2) and `description`"
);

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelTestOut {
    /// Whether the provider took the message.
    pub ok: bool,
    /// The provider's answer, or why sending failed.
    pub answer: String,
    pub latency_ms: i64,
}

/// Send a test message through a channel now and report the provider's answer.
#[utoipa::path(post, path = "/api/v1/channels/{id}/test", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 200, body = ChannelTestOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn test_channel(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ChannelTestOut>, Problem> {
    p.require(Role::Editor)?;
    let id: ResourceId = parse_id(&id, "channel")?;
    let channel = state
        .store
        .get_resource(p.tenant, ResourceKind::Channel, id)
        .await
        .map_err(|e| not_found_as(e, "channel"))?;
    let secrets = open_secrets(&state, p.tenant, channel.secret.as_deref())?;
    let (kind, spec) = pingtower_notify::channels::spec_of(&channel);
    let now = pingtower_engine::now();
    let n = pingtower_notify::Notification {
        delivery_id: pingtower_core::DeliveryId::new(),
        tenant_id: p.tenant,
        channel_id: id,
        event: pingtower_notify::Event::Test,
        monitor_id: MonitorId::new(),
        monitor_name: "PingTower test".into(),
        status: pingtower_core::MonitorStatus::Up,
        reason: None,
        at: now,
        incident_id: None,
        down_for_ms: None,
        idempotency_key: format!("test:{id}:{}", now.as_millis()),
        link: None,
    };
    let ch = pingtower_notify::channels::Channel {
        kind: &kind,
        spec: &spec,
        secrets: &secrets,
    };
    let started = std::time::Instant::now();
    let sent = pingtower_notify::channels::send(
        &state.notify_http,
        &ch,
        &n,
        std::time::Duration::from_secs(10),
    )
    .await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    audit(
        &state,
        &p,
        "channel.test",
        &format!("channel:{id}"),
        Some(&channel.name),
    )
    .await;
    Ok(Json(match sent {
        Ok(a) => ChannelTestOut {
            ok: true,
            answer: format!("HTTP {}: {}", a.status, a.body),
            latency_ms,
        },
        Err(e) => ChannelTestOut {
            ok: false,
            answer: e.to_string(),
            latency_ms,
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterOut {
    /// The dead letter's id (for replay).
    pub id: String,
    pub delivery_id: pingtower_core::DeliveryId,
    pub channel_id: ResourceId,
    pub event: String,
    pub monitor_id: MonitorId,
    pub monitor_name: String,
    pub at: Timestamp,
    /// Times it was handed to a delivery worker.
    pub deliveries: u32,
}

crate::http::list_type!(DeadLetterList, DeadLetterOut);

/// The tenant's dead letters, with the bus's id of each (what a replay names).
pub(crate) async fn tenant_dead_letters(
    state: &AppState,
    tenant: TenantId,
) -> Result<Vec<(uuid::Uuid, DeadLetterOut)>, Problem> {
    let letters = state
        .bus
        .dead_letters(
            pingtower_bus::topics::NOTIFICATIONS_SEND,
            pingtower_notify::delivery::DELIVERERS_GROUP,
        )
        .await
        .map_err(|e| Problem::internal(format_args!("reading dead letters failed: {e}")))?;
    Ok(letters
        .into_iter()
        .filter_map(|l| {
            let n: pingtower_notify::Notification = l.message.json().ok()?;
            (n.tenant_id == tenant).then(|| {
                (
                    l.message.id,
                    DeadLetterOut {
                        id: l.message.id.to_string(),
                        delivery_id: n.delivery_id,
                        channel_id: n.channel_id,
                        event: n.event.as_str().to_owned(),
                        monitor_id: n.monitor_id,
                        monitor_name: n.monitor_name,
                        at: n.at,
                        deliveries: l.deliveries,
                    },
                )
            })
        })
        .collect())
}

/// Notifications that could not be delivered after their last attempt.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "notifications",
    params(crate::input::PageParams),
    responses((status = 200, body = DeadLetterList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn dead_letters(
    State(state): State<AppState>,
    p: Principal,
    crate::input::Params(q): crate::input::Params<crate::input::PageParams>,
) -> Result<Json<DeadLetterList>, Problem> {
    let page = q.request()?;
    let items: Vec<DeadLetterOut> = tenant_dead_letters(&state, p.tenant)
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let items = crate::http::page_of(items, |d| d.id.clone(), &page);
    Ok(Json(DeadLetterList::new(items, |d| d)))
}

/// Send a dead-lettered notification again (its attempts start over).
#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/replay", tag = "notifications",
    params(("id" = String, Path)),
    responses((status = 202), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn replay_dead_letter(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    p.require(Role::Editor)?;
    let id: uuid::Uuid = parse_id(&id, "dead letter")?;
    let mine = tenant_dead_letters(&state, p.tenant)
        .await?
        .into_iter()
        .any(|(lid, _)| lid == id);
    if !mine {
        return Err(Problem::not_found("dead letter"));
    }
    state
        .bus
        .replay_dead_letter(
            pingtower_bus::topics::NOTIFICATIONS_SEND,
            pingtower_notify::delivery::DELIVERERS_GROUP,
            id,
        )
        .await
        .map_err(|_| Problem::not_found("dead letter"))?;
    audit(
        &state,
        &p,
        "dead_letter.replay",
        &format!("dead_letter:{id}"),
        None,
    )
    .await;
    Ok(StatusCode::ACCEPTED)
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(test_channel))
        .routes(routes!(dead_letters))
        .routes(routes!(replay_dead_letter))
        .routes(routes!(channels::list, channels::create))
        .routes(routes!(channels::get, channels::update, channels::delete))
        .routes(routes!(rules::list, rules::create))
        .routes(routes!(rules::get, rules::update, rules::delete))
        .routes(routes!(maintenance::list, maintenance::create))
        .routes(routes!(
            maintenance::get,
            maintenance::update,
            maintenance::delete
        ))
        .routes(routes!(charts::list, charts::create))
        .routes(routes!(charts::get, charts::update, charts::delete))
        .routes(routes!(dashboards::list, dashboards::create))
        .routes(routes!(
            dashboards::get,
            dashboards::update,
            dashboards::delete
        ))
        .routes(routes!(status_pages::list, status_pages::create))
        .routes(routes!(
            status_pages::get,
            status_pages::update,
            status_pages::delete
        ))
}

/// Takes a deleted monitor out of the rules, maintenance windows and status pages that name it,
/// so that they stay editable (a stored reference to a monitor that is gone is refused like any
/// unknown id) and nothing points at it. Failures are logged: the monitor is gone either way,
/// and pages skip monitors that do not exist.
/// The name of a monitor's own rule, the one its form keeps (`<name>: notifications`, the
/// monitor's name cut so that the whole fits a rule's 200 characters). The script builds the
/// same name.
pub(crate) fn own_rule_name(monitor: &str) -> String {
    let cut: String = monitor.chars().take(185).collect();
    format!("{cut}: notifications")
}

/// Whether a spec's list of ids (`spec["monitors"]`, `spec["channels"]`, …) holds `id`.
pub(crate) fn lists(list: &Value, id: &str) -> bool {
    list.as_array()
        .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)))
}

/// Whether `rule` is the monitor's own: named [`own_rule_name`] and selecting it alone.
pub(crate) fn is_own_rule(rule: &Resource, monitor_id: &str, monitor_name: &str) -> bool {
    rule.kind == ResourceKind::Rule
        && rule.name == own_rule_name(monitor_name)
        && rule.spec["monitors"]
            .as_array()
            .is_some_and(|ids| ids.len() == 1 && ids[0].as_str() == Some(monitor_id))
}

/// Takes a deleted monitor out of the rules, windows and status pages that name it; its own
/// rule (see [`own_rule_name`]) goes with it.
pub(crate) async fn forget_monitor(
    state: &AppState,
    tenant: TenantId,
    id: MonitorId,
    monitor_name: &str,
) {
    let id = id.to_string();
    for kind in [
        ResourceKind::Rule,
        ResourceKind::Maintenance,
        ResourceKind::StatusPage,
    ] {
        let found = match state.store.list_resources(tenant, kind).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "reading references to a deleted monitor failed");
                continue;
            }
        };
        let mut changed = false;
        for r in found {
            if is_own_rule(&r, &id, monitor_name) {
                match state.store.delete_resource(tenant, kind, r.id).await {
                    Ok(()) => changed = true,
                    Err(e) => {
                        tracing::warn!(error = %e, resource = %r.id, "removing a deleted monitor's rule failed");
                    }
                }
                continue;
            }
            let mut spec = r.spec.clone();
            if !without_monitor(&mut spec, &id) {
                continue;
            }
            let new = NewResource {
                kind,
                name: r.name.clone(),
                slug: r.slug.clone(),
                spec,
                secret: r.secret.clone(),
            };
            match state
                .store
                .update_resource(tenant, r.id, Some(r.version), &new, pingtower_engine::now())
                .await
            {
                Ok(_) => changed = true,
                Err(e) => {
                    tracing::warn!(error = %e, resource = %r.id, "removing a deleted monitor failed");
                }
            }
        }
        if changed {
            announce(state, tenant, kind).await;
        }
    }
}

/// Takes a deleted chart off the tenant's dashboards.
async fn forget_chart(state: &AppState, tenant: TenantId, id: ResourceId) {
    let id = id.to_string();
    let found = match state
        .store
        .list_resources(tenant, ResourceKind::Dashboard)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "reading the dashboards of a deleted chart failed");
            return;
        }
    };
    for r in found {
        let mut spec = r.spec.clone();
        let Some(charts) = spec.get_mut("charts").and_then(Value::as_array_mut) else {
            continue;
        };
        let before = charts.len();
        charts.retain(|c| c.as_str() != Some(id.as_str()));
        if charts.len() == before {
            continue;
        }
        let new = NewResource {
            kind: ResourceKind::Dashboard,
            name: r.name.clone(),
            slug: None,
            spec,
            secret: None,
        };
        if let Err(e) = state
            .store
            .update_resource(tenant, r.id, Some(r.version), &new, pingtower_engine::now())
            .await
        {
            tracing::warn!(error = %e, dashboard = %r.id, "taking a deleted chart off a dashboard failed");
        }
    }
}

/// Removes `id` from a spec's monitor references; whether anything was removed.
fn without_monitor(spec: &mut Value, id: &str) -> bool {
    let mut removed = false;
    let mut strip = |list: &mut Value| {
        if let Value::Array(items) = list {
            let before = items.len();
            items.retain(|v| v.as_str() != Some(id));
            removed |= items.len() != before;
        }
    };
    if let Some(list) = spec.get_mut("monitors") {
        strip(list);
    }
    if let Some(Value::Array(groups)) = spec.get_mut("groups") {
        for g in groups {
            if let Some(list) = g.get_mut("monitors") {
                strip(list);
            }
        }
    }
    if let Some(Value::Object(names)) = spec.get_mut("public_names") {
        removed |= names.remove(id).is_some();
    }
    removed
}
