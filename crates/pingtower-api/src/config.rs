//! Configuration as code: `GET /api/v1/config` exports a tenant's monitors, channels, rules,
//! maintenance windows and status pages as one document; `POST /api/v1/config/apply` makes the
//! tenant match a document (what `pingtower apply` and `pingtower export` call).
//!
//! Items are matched by name; references between items (a rule's channels and monitors, a
//! maintenance window's and a status page's monitors) are by name too. Invariants: the whole
//! document is validated, with the same checks as the single-object endpoints, before anything
//! is written, and every error is reported with its path (`monitors[2].url`); applying a
//! document the tenant already matches writes nothing; channel credentials absent from the
//! document are kept (an export never contains them).

use crate::auth::Principal;
use crate::http::audit;
use crate::input::{Body, Params};
use crate::monitors::{
    credentials_follow_url, interval_allowed, plain_json, read_monitor, room_for, seal,
    writable_json,
};
use crate::resources::{
    Refs, Validated, announce, credentials_follow_destination, new_resource, open_secrets, validate,
};
use crate::{AppState, FieldError, Problem};
use axum::Json;
use axum::extract::State;
use pingtower_core::check::DEPENDS_ON;
use pingtower_core::{
    Monitor, MonitorId, NewMonitor, Resource, ResourceId, ResourceKind, Role, TenantId,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use utoipa::{IntoParams, ToSchema};

/// The lists of a document, in the order they are applied.
const SECTIONS: &[(&str, Option<ResourceKind>)] = &[
    ("channels", Some(ResourceKind::Channel)),
    ("monitors", None),
    ("rules", Some(ResourceKind::Rule)),
    ("maintenance", Some(ResourceKind::Maintenance)),
    ("status_pages", Some(ResourceKind::StatusPage)),
];

fn type_name(kind: Option<ResourceKind>) -> &'static str {
    match kind {
        None => "monitor",
        Some(k) => k.as_str(),
    }
}

/// One change of a plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// `monitor`, `channel`, `rule`, `maintenance` or `status_page`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Plan {
    /// True when nothing was written.
    pub dry_run: bool,
    pub changes: Vec<Change>,
    /// Items of the document that already match.
    pub unchanged: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplyParams {
    /// Only compute the plan.
    #[serde(default)]
    dry_run: bool,
    /// Delete what the document does not name.
    #[serde(default)]
    prune: bool,
}

/// Everything the tenant has, by section.
struct Current {
    monitors: Vec<Monitor>,
    resources: HashMap<ResourceKind, Vec<Resource>>,
}

async fn current(state: &AppState, tenant: TenantId) -> Result<Current, Problem> {
    let mut monitors = Vec::new();
    let mut page = pingtower_store::PageRequest::first(pingtower_core::page::MAX_LIMIT);
    loop {
        let found = state
            .store
            .list_monitors(tenant, &Default::default(), &page)
            .await?;
        monitors.extend(found.items);
        match found.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    monitors.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
    let mut resources = HashMap::new();
    for (_, kind) in SECTIONS {
        if let Some(kind) = kind {
            resources.insert(*kind, state.store.list_resources(tenant, *kind).await?);
        }
    }
    Ok(Current {
        monitors,
        resources,
    })
}

/// Replaces ids by names in a monitor selection or id list (export).
fn ids_to_names(value: &Value, names: &HashMap<String, String>) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .and_then(|id| names.get(id))
                        .map_or_else(|| v.clone(), |n| Value::from(n.clone()))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A status page's groups with their monitors' names.
fn groups_to_names(value: &Value, names: &HashMap<String, String>) -> Value {
    match value {
        Value::Array(groups) => Value::Array(
            groups
                .iter()
                .map(|g| {
                    let mut g = g.clone();
                    if let Some(ids) = g.get("monitors").map(|v| ids_to_names(v, names)) {
                        g["monitors"] = ids;
                    }
                    g
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An object keyed by monitor ids (a status page's `public_names`), keyed by names.
fn keys_to_names(value: &Value, names: &HashMap<String, String>) -> Value {
    match value {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    (
                        names.get(k).cloned().unwrap_or_else(|| k.clone()),
                        v.clone(),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The tenant's configuration as a document that `apply` accepts.
#[utoipa::path(get, path = "/api/v1/config", tag = "configuration",
    responses((status = 200, body = Object, description = "the document: monitors, channels, rules, maintenance, status_pages"),
        (status = 401, body = Problem)))]
pub async fn export(State(state): State<AppState>, p: Principal) -> Result<Json<Value>, Problem> {
    let cur = current(&state, p.tenant).await?;
    let monitor_names: HashMap<String, String> = cur
        .monitors
        .iter()
        .map(|m| (m.id.to_string(), m.name.clone()))
        .collect();
    let channel_names: HashMap<String, String> = cur
        .resources
        .get(&ResourceKind::Channel)
        .into_iter()
        .flatten()
        .map(|r| (r.id.to_string(), r.name.clone()))
        .collect();
    let mut doc = Map::new();
    for (section, kind) in SECTIONS {
        let items: Vec<Value> = match kind {
            None => cur
                .monitors
                .iter()
                .map(|m| {
                    let mut item = writable_json(m);
                    // References are by name in a document.
                    if let Some(parent) = item
                        .get(DEPENDS_ON)
                        .and_then(Value::as_str)
                        .and_then(|id| monitor_names.get(id))
                    {
                        item.insert(DEPENDS_ON.into(), Value::from(parent.clone()));
                    }
                    Value::Object(item)
                })
                .collect(),
            Some(kind) => cur
                .resources
                .get(kind)
                .into_iter()
                .flatten()
                .map(|r| {
                    let mut item = Map::new();
                    item.insert("name".into(), Value::from(r.name.clone()));
                    // Credentials are never exported (nor old ones kept in the settings).
                    let (spec, _) = crate::resources::public_spec(*kind, &r.spec);
                    {
                        for (k, v) in &spec {
                            let v = match k.as_str() {
                                "monitors" => ids_to_names(v, &monitor_names),
                                "groups" => groups_to_names(v, &monitor_names),
                                "public_names" => keys_to_names(v, &monitor_names),
                                "channels" => ids_to_names(v, &channel_names),
                                "escalate" => {
                                    let mut e = v.as_object().cloned().unwrap_or_default();
                                    if let Some(c) = e.get("channels").cloned() {
                                        e.insert(
                                            "channels".into(),
                                            ids_to_names(&c, &channel_names),
                                        );
                                    }
                                    Value::Object(e)
                                }
                                _ => v.clone(),
                            };
                            item.insert(k.clone(), v);
                        }
                    }
                    Value::Object(item)
                })
                .collect(),
        };
        doc.insert((*section).into(), Value::Array(items));
    }
    Ok(Json(Value::Object(doc)))
}

/// What one item of the document becomes.
enum Desired {
    Monitor(NewMonitor),
    Resource(Validated),
}

struct Item {
    section: &'static str,
    kind: Option<ResourceKind>,
    name: String,
    desired: Desired,
    /// The existing object of that name.
    existing: Option<String>,
    /// The id references use: the existing id, or a placeholder until it is created.
    planned_id: String,
}

fn prefixed(path: &str, errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|e| FieldError {
            field: format!("{path}.{}", e.field),
            message: e.message,
        })
        .collect()
}

/// Resolves names in a reference field to planned ids.
fn resolve_names(
    value: Option<&Value>,
    names: &HashMap<String, String>,
    path: &str,
    what: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let Value::Array(items) = value? else {
        return value.cloned();
    };
    Some(Value::Array(
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str().and_then(|n| names.get(n)) {
                Some(id) => Value::from(id.clone()),
                None => {
                    errors.push(FieldError {
                        field: format!("{path}[{i}]"),
                        message: format!("no {what} of this name in the document or on the server"),
                    });
                    v.clone()
                }
            })
            .collect(),
    ))
}

/// A status page's references by name (its groups' monitors, the keys of its public names)
/// become planned ids.
fn resolve_page_names(
    map: &mut Map<String, Value>,
    monitor_names: &HashMap<String, String>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(Value::Array(groups)) = map.get_mut("groups") {
        for (i, g) in groups.iter_mut().enumerate() {
            if let Value::Object(o) = g
                && let Some(v) = resolve_names(
                    o.get("monitors"),
                    monitor_names,
                    &format!("{path}.groups[{i}].monitors"),
                    "monitor",
                    errors,
                )
            {
                o.insert("monitors".into(), v);
            }
        }
    }
    if let Some(Value::Object(o)) = map.get("public_names") {
        let mut named = Map::new();
        for (name, public) in o {
            match monitor_names.get(name) {
                Some(id) => {
                    named.insert(id.clone(), public.clone());
                }
                None => errors.push(FieldError {
                    field: format!("{path}.public_names.{name}"),
                    message: "no monitor of this name in the document or on the server".into(),
                }),
            }
        }
        map.insert("public_names".into(), Value::Object(named));
    }
}

/// Make the tenant's configuration match a document; answers the plan.
#[utoipa::path(post, path = "/api/v1/config/apply", tag = "configuration",
    params(ApplyParams),
    request_body(content = Object, description = "the document: monitors, channels, rules, maintenance, status_pages"),
    responses((status = 200, body = Plan), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn apply(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<ApplyParams>,
    Body(mut doc): Body,
) -> Result<Json<Plan>, Problem> {
    p.require(Role::Editor)?;
    let mut errors = Vec::new();
    let mut sections: HashMap<&'static str, Vec<Value>> = HashMap::new();
    for (section, _) in SECTIONS {
        match doc.remove(*section) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                sections.insert(section, items);
            }
            Some(_) => errors.push(FieldError {
                field: (*section).into(),
                message: "must be a list".into(),
            }),
        }
    }
    for key in doc.keys() {
        errors.push(FieldError {
            field: key.clone(),
            message: "is not a section; use monitors, channels, rules, maintenance, status_pages"
                .into(),
        });
    }
    let cur = current(&state, p.tenant).await?;

    // Names in the document, and the ids they will have.
    let mut planned: HashMap<&'static str, HashMap<String, String>> = HashMap::new();
    for (section, kind) in SECTIONS {
        let existing: HashMap<String, String> = match kind {
            None => cur
                .monitors
                .iter()
                .map(|m| (m.name.clone(), m.id.to_string()))
                .collect(),
            Some(k) => cur
                .resources
                .get(k)
                .into_iter()
                .flatten()
                .map(|r| (r.name.clone(), r.id.to_string()))
                .collect(),
        };
        let mut names = HashMap::new();
        let mut seen = HashSet::new();
        for (i, item) in sections.get(section).into_iter().flatten().enumerate() {
            let Some(name) = item.get("name").and_then(Value::as_str).map(str::trim) else {
                errors.push(FieldError {
                    field: format!("{section}[{i}].name"),
                    message: "is required (items are matched by name)".into(),
                });
                continue;
            };
            if !seen.insert(name.to_owned()) {
                errors.push(FieldError {
                    field: format!("{section}[{i}].name"),
                    message: format!("`{name}` appears twice in {section}"),
                });
            }
            let id = existing.get(name).cloned().unwrap_or_else(|| match kind {
                None => MonitorId::new().to_string(),
                Some(_) => ResourceId::new().to_string(),
            });
            names.insert(name.to_owned(), id);
        }
        // Without --prune, what the document does not name stays and can be referred to.
        if !q.prune {
            for (name, id) in existing {
                names.entry(name).or_insert(id);
            }
        }
        planned.insert(section, names);
    }
    let known_ids = |section: &str| -> HashSet<String> {
        planned
            .get(section)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    };
    let refs = Refs::Known {
        monitors: known_ids("monitors"),
        channels: known_ids("channels"),
    };
    let empty = HashMap::new();
    let monitor_names = planned.get("monitors").unwrap_or(&empty);
    let channel_names = planned.get("channels").unwrap_or(&empty);

    let mut items = Vec::new();
    for (section, kind) in SECTIONS {
        for (i, item) in sections.remove(section).into_iter().flatten().enumerate() {
            let path = format!("{section}[{i}]");
            let Value::Object(mut map) = item else {
                errors.push(FieldError {
                    field: path,
                    message: "must be an object".into(),
                });
                continue;
            };
            let Some(name) = map
                .get("name")
                .and_then(Value::as_str)
                .map(|n| n.trim().to_owned())
            else {
                continue;
            };
            // References by name become ids.
            if matches!(
                kind,
                Some(ResourceKind::Rule | ResourceKind::Maintenance | ResourceKind::StatusPage)
            ) && let Some(v) = resolve_names(
                map.get("monitors"),
                monitor_names,
                &format!("{path}.monitors"),
                "monitor",
                &mut errors,
            ) {
                map.insert("monitors".into(), v);
            }
            if *kind == Some(ResourceKind::StatusPage) {
                resolve_page_names(&mut map, monitor_names, &path, &mut errors);
            }
            if *kind == Some(ResourceKind::Rule) {
                if let Some(v) = resolve_names(
                    map.get("channels"),
                    channel_names,
                    &format!("{path}.channels"),
                    "channel",
                    &mut errors,
                ) {
                    map.insert("channels".into(), v);
                }
                if let Some(Value::Object(mut e)) = map.get("escalate").cloned() {
                    if let Some(v) = resolve_names(
                        e.get("channels"),
                        channel_names,
                        &format!("{path}.escalate.channels"),
                        "channel",
                        &mut errors,
                    ) {
                        e.insert("channels".into(), v);
                    }
                    map.insert("escalate".into(), Value::Object(e));
                }
            }
            let planned_id = planned
                .get(section)
                .and_then(|m| m.get(&name))
                .cloned()
                .unwrap_or_default();
            match kind {
                None => {
                    if let Some(v) = map.get(DEPENDS_ON).cloned() {
                        match v.as_str().and_then(|n| monitor_names.get(n)) {
                            Some(id) => {
                                map.insert(DEPENDS_ON.into(), Value::from(id.clone()));
                            }
                            None => {
                                errors.push(FieldError {
                                    field: format!("{path}.{DEPENDS_ON}"),
                                    message:
                                        "no monitor of this name in the document or on the server"
                                            .into(),
                                });
                                continue;
                            }
                        }
                    }
                    let existing = cur.monitors.iter().find(|m| m.name == name);
                    if let Some(m) = existing {
                        let moved = credentials_follow_url(m, &map);
                        if !moved.is_empty() {
                            errors.extend(prefixed(&path, moved));
                            continue;
                        }
                        // Credentials absent from the document are kept (an export never
                        // contains them).
                        let stored = plain_json(&state, m)?;
                        for field in pingtower_engine::secrets::MONITOR_SECRET_FIELDS {
                            if !map.contains_key(*field)
                                && let Some(v) = stored.get(*field)
                            {
                                map.insert((*field).to_owned(), v.clone());
                            }
                        }
                    }
                    let read = read_monitor(map, existing.and_then(|m| m.push_token.clone()))
                        .and_then(|new| interval_allowed(&state, existing, &new).map(|()| new));
                    match read {
                        Ok(new) => items.push(Item {
                            section,
                            kind: None,
                            name,
                            desired: Desired::Monitor(new),
                            existing: existing.map(|m| m.id.to_string()),
                            planned_id,
                        }),
                        Err(problem) => errors.extend(prefixed(&path, problem.errors)),
                    }
                }
                Some(k) => {
                    let existing = cur
                        .resources
                        .get(k)
                        .into_iter()
                        .flatten()
                        .find(|r| r.name == name);
                    let secrets = match existing {
                        Some(r) => open_secrets(&state, p.tenant, r.secret.as_deref())?,
                        None => Map::new(),
                    };
                    if let Some(r) = existing.filter(|_| *k == ResourceKind::Channel) {
                        let mut stored = secrets.clone();
                        for field in crate::resources::public_spec(*k, &r.spec).1 {
                            stored.entry(field).or_insert(Value::Null);
                        }
                        let moved = credentials_follow_destination(&r.spec, &stored, &map);
                        if !moved.is_empty() {
                            errors.extend(prefixed(&path, moved));
                            continue;
                        }
                    }
                    match validate(&state, &refs, p.tenant, *k, map, secrets).await {
                        Ok(v) => items.push(Item {
                            section,
                            kind: Some(*k),
                            name,
                            desired: Desired::Resource(v),
                            existing: existing.map(|r| r.id.to_string()),
                            planned_id,
                        }),
                        Err(problem) => errors.extend(prefixed(&path, problem.errors)),
                    }
                }
            }
        }
    }
    // Dependencies among monitors: no cycles; parents are written before their children.
    let parent_of: HashMap<String, String> = items
        .iter()
        .filter_map(|i| match &i.desired {
            Desired::Monitor(m) => pingtower_core::check::depends_on(&m.settings)
                .map(|p| (i.planned_id.clone(), p.to_string())),
            Desired::Resource(_) => None,
        })
        .chain(cur.monitors.iter().filter_map(|m| {
            pingtower_core::check::depends_on(&m.settings)
                .map(|p| (m.id.to_string(), p.to_string()))
        }))
        .collect();
    let depth = |id: &str| -> Option<usize> {
        let mut at = id.to_owned();
        for d in 0..64 {
            match parent_of.get(&at) {
                Some(p) if p == id => return None,
                Some(p) => at = p.clone(),
                None => return Some(d),
            }
        }
        None
    };
    for (i, item) in items.iter().enumerate() {
        if item.kind.is_none() && depth(&item.planned_id).is_none() {
            errors.push(FieldError {
                field: format!("monitors[{i}].{DEPENDS_ON}"),
                message: "makes a cycle of dependencies".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    items.sort_by_key(|i| match i.kind {
        None => (1, depth(&i.planned_id).unwrap_or(0)),
        Some(ResourceKind::Channel) => (0, 0),
        Some(_) => (2, 0),
    });

    // The plan.
    let mut changes = Vec::new();
    let mut unchanged = 0;
    let mut todo = Vec::new();
    for item in items {
        let same = match (&item.desired, &item.existing) {
            (_, None) => false,
            (Desired::Monitor(new), Some(id)) => cur
                .monitors
                .iter()
                .find(|m| &m.id.to_string() == id)
                .and_then(|m| {
                    plain_json(&state, m)
                        .ok()
                        .and_then(|plain| read_monitor(plain, m.push_token.clone()).ok())
                })
                .is_some_and(|old| &old == new),
            (Desired::Resource(v), Some(id)) => {
                let old = item.kind.and_then(|k| {
                    cur.resources
                        .get(&k)
                        .into_iter()
                        .flatten()
                        .find(|r| &r.id.to_string() == id)
                });
                match old {
                    Some(r) => {
                        let secrets = open_secrets(&state, p.tenant, r.secret.as_deref())?;
                        r.name == v.name
                            && r.spec == Value::Object(v.spec.clone())
                            && secrets == v.secrets
                    }
                    None => false,
                }
            }
        };
        if same {
            unchanged += 1;
            continue;
        }
        changes.push(Change {
            action: if item.existing.is_some() {
                "update"
            } else {
                "create"
            },
            kind: type_name(item.kind),
            name: item.name.clone(),
        });
        todo.push(item);
    }
    let named: HashSet<(&str, String)> = todo
        .iter()
        .map(|i| (i.section, i.name.clone()))
        .chain(
            planned
                .iter()
                .flat_map(|(s, m)| m.keys().map(move |n| (*s, n.clone()))),
        )
        .collect();
    let mut deletions: Vec<(Option<ResourceKind>, String, String)> = Vec::new();
    if q.prune {
        for (section, kind) in SECTIONS.iter().rev() {
            match kind {
                None => {
                    for m in &cur.monitors {
                        if !named.contains(&(*section, m.name.clone())) {
                            deletions.push((None, m.id.to_string(), m.name.clone()));
                        }
                    }
                }
                Some(k) => {
                    for r in cur.resources.get(k).into_iter().flatten() {
                        if !named.contains(&(*section, r.name.clone())) {
                            deletions.push((Some(*k), r.id.to_string(), r.name.clone()));
                        }
                    }
                }
            }
        }
    }
    for (kind, _, name) in &deletions {
        changes.push(Change {
            action: "delete",
            kind: type_name(*kind),
            name: name.clone(),
        });
    }
    // The tenant's quota, counting the monitors the document makes and the ones it prunes.
    let created = todo
        .iter()
        .filter(|i| i.kind.is_none() && i.existing.is_none())
        .count();
    let pruned = deletions.iter().filter(|(k, _, _)| k.is_none()).count();
    let _room = if created > pruned {
        Some(room_for(&state, p.tenant, created - pruned).await?)
    } else {
        None
    };
    if q.dry_run || changes.is_empty() {
        return Ok(Json(Plan {
            dry_run: q.dry_run,
            changes,
            unchanged,
        }));
    }

    // Apply, in section order, replacing placeholder ids by the ids the store gives.
    let now = pingtower_engine::now();
    let mut real: HashMap<String, String> = HashMap::new();
    for item in todo {
        match item.desired {
            Desired::Monitor(mut new) => {
                if let Some(Value::String(parent)) = new.settings.get_mut(DEPENDS_ON)
                    && let Some(r) = real.get(parent.as_str())
                {
                    *parent = r.clone();
                }
                seal(&state, p.tenant, &mut new)?;
                let m = match &item.existing {
                    Some(id) => {
                        let id: MonitorId = id.parse().map_err(|e| {
                            Problem::internal(format_args!("a planned id does not parse: {e}"))
                        })?;
                        state
                            .store
                            .update_monitor(p.tenant, id, None, &new, now)
                            .await?
                    }
                    None => state.store.create_monitor(p.tenant, &new, now).await?,
                };
                real.insert(item.planned_id.clone(), m.id.to_string());
                if let Err(e) =
                    pingtower_engine::notify_monitor_changed(state.bus.as_ref(), p.tenant, m.id)
                        .await
                {
                    tracing::warn!(error = %e, "announcing a monitor change failed");
                }
                audit(
                    &state,
                    &p,
                    "config.apply",
                    &format!("monitor:{}", m.id),
                    Some(&m.name),
                )
                .await;
            }
            Desired::Resource(mut v) => {
                let kind = item
                    .kind
                    .ok_or_else(|| Problem::internal("a planned resource has no kind"))?;
                replace_ids(&mut v.spec, &real);
                let new = new_resource(&state, p.tenant, kind, v)?;
                let r = match &item.existing {
                    Some(id) => {
                        let id: ResourceId = id.parse().map_err(|e| {
                            Problem::internal(format_args!("a planned id does not parse: {e}"))
                        })?;
                        state
                            .store
                            .update_resource(p.tenant, id, None, &new, now)
                            .await?
                    }
                    None => state.store.create_resource(p.tenant, &new, now).await?,
                };
                real.insert(item.planned_id.clone(), r.id.to_string());
                announce(&state, p.tenant, kind).await;
                let target = format!("{}:{}", kind.as_str(), r.id);
                audit(&state, &p, "config.apply", &target, Some(&r.name)).await;
            }
        }
    }
    for (kind, id, name) in deletions {
        match kind {
            None => {
                let id: MonitorId = id.parse().map_err(|e| {
                    Problem::internal(format_args!("a planned id does not parse: {e}"))
                })?;
                state.store.delete_monitor(p.tenant, id).await?;
                if let Err(e) =
                    pingtower_engine::notify_monitor_changed(state.bus.as_ref(), p.tenant, id).await
                {
                    tracing::warn!(error = %e, "announcing a monitor change failed");
                }
                audit(
                    &state,
                    &p,
                    "config.prune",
                    &format!("monitor:{id}"),
                    Some(&name),
                )
                .await;
            }
            Some(k) => {
                let id: ResourceId = id.parse().map_err(|e| {
                    Problem::internal(format_args!("a planned id does not parse: {e}"))
                })?;
                state.store.delete_resource(p.tenant, k, id).await?;
                announce(&state, p.tenant, k).await;
                audit(
                    &state,
                    &p,
                    "config.prune",
                    &format!("{}:{id}", k.as_str()),
                    Some(&name),
                )
                .await;
            }
        }
    }
    Ok(Json(Plan {
        dry_run: false,
        changes,
        unchanged,
    }))
}

/// Replaces placeholder ids (of objects created earlier in the same apply) by real ones.
fn replace_ids(spec: &mut Map<String, Value>, real: &HashMap<String, String>) {
    fn walk(v: &mut Value, real: &HashMap<String, String>) {
        match v {
            Value::String(s) => {
                if let Some(r) = real.get(s.as_str()) {
                    *s = r.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, real)),
            Value::Object(o) => o.values_mut().for_each(|i| walk(i, real)),
            _ => {}
        }
    }
    for (k, v) in spec.iter_mut() {
        if matches!(k.as_str(), "monitors" | "channels" | "escalate" | "groups") {
            walk(v, real);
        }
        if k == "public_names"
            && let Value::Object(o) = v
        {
            *o = std::mem::take(o)
                .into_iter()
                .map(|(id, name)| (real.get(&id).cloned().unwrap_or(id), name))
                .collect();
        }
    }
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(apply))
}
