//! The dashboard's configuration pages: status pages (list, build, edit), channels (with a
//! test message), rules and maintenance windows, and settings (members, API keys, audit log).

use super::{Me, Viewer, When, render};
use crate::{AppState, Problem};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use pingtower_core::{Resource, ResourceId, ResourceKind, Role};
use pingtower_store::{MonitorFilter, PageRequest};
use std::collections::{HashMap, HashSet};

/// Monitors a status page form offers to pick from (a page shows a handful, not thousands).
const PICKABLE: u32 = 1000;

pub struct Item {
    id: String,
    name: String,
    detail: String,
    /// Where it can be seen (a status page's public address).
    view: Option<String>,
}

/// A list of configuration objects with a short description each.
#[derive(Template)]
#[template(path = "resources.html")]
pub struct ResourcesPage {
    me: Me,
    title: &'static str,
    /// The collection's path segment (`channels`): the API's `/api/v1/channels` and the
    /// dashboard's `/channels/new`, `/channels/{id}/edit`.
    path: &'static str,
    /// Channels can be tested.
    testable: bool,
    items: Vec<Item>,
    /// How to make one without a form here.
    hint: &'static str,
}

fn list_of(spec: &serde_json::Value, key: &str) -> String {
    match &spec[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn resources(state: &AppState, v: Viewer, kind: ResourceKind) -> Result<Response, Problem> {
    let found = state.store.list_resources(v.p.tenant, kind).await?;
    let items = found
        .iter()
        .map(|r| Item {
            id: r.id.to_string(),
            name: r.name.clone(),
            detail: match kind {
                ResourceKind::Channel => list_of(&r.spec, "kind"),
                ResourceKind::Rule => format!(
                    "events: {}; channels: {}",
                    list_of(&r.spec, "events"),
                    r.spec["channels"].as_array().map_or(0, Vec::len)
                ),
                ResourceKind::Maintenance => format!(
                    "{} to {}",
                    list_of(&r.spec, "starts_at"),
                    list_of(&r.spec, "ends_at")
                ),
                ResourceKind::StatusPage => format!(
                    "/status/{} · {} monitors",
                    r.slug.clone().unwrap_or_default(),
                    r.spec["monitors"].as_array().map_or(0, Vec::len)
                ),
                ResourceKind::Chart => list_of(&r.spec, "style"),
                ResourceKind::Dashboard => {
                    format!("{} charts", r.spec["charts"].as_array().map_or(0, Vec::len))
                }
            },
            view: match kind {
                ResourceKind::StatusPage => r.slug.as_ref().map(|s| format!("/status/{s}")),
                _ => None,
            },
        })
        .collect();
    let (title, hint) = match kind {
        ResourceKind::Channel => (
            "Channels",
            "Webhook headers can be set through the API or `pingtower apply`.",
        ),
        ResourceKind::Rule => (
            "Rules",
            "Flap control and escalation can be set through the API or `pingtower apply`.",
        ),
        ResourceKind::Maintenance => ("Maintenance windows", ""),
        ResourceKind::StatusPage => ("Status pages", ""),
        ResourceKind::Chart => ("Saved charts", ""),
        ResourceKind::Dashboard => ("Dashboards", ""),
    };
    Ok(render(&ResourcesPage {
        me: v.me.clone(),
        title,
        path: crate::resources::path_of(kind),
        testable: kind == ResourceKind::Channel,
        items,
        hint,
    }))
}

/// A row of the delivery log.
pub struct DeliveryRow {
    at: When,
    channel: String,
    incident: String,
    status: &'static str,
    attempts: i32,
    latency: String,
    /// The last error, or what the provider answered.
    detail: String,
}

/// A notification that ran out of attempts.
pub struct DeadRow {
    id: String,
    at: When,
    channel: String,
    monitor: String,
    event: String,
    handed: u32,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
pub struct DeliveriesPage {
    me: Me,
    can_replay: bool,
    dead: Vec<DeadRow>,
    rows: Vec<DeliveryRow>,
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct DeliveriesQuery {
    cursor: Option<String>,
}

/// The delivery log (every notification to every channel, newest first) and the dead letters,
/// which an editor can send again.
pub async fn deliveries(
    State(state): State<AppState>,
    v: Viewer,
    axum::extract::Query(q): axum::extract::Query<DeliveriesQuery>,
) -> Result<Response, Problem> {
    let page = PageRequest {
        limit: 50,
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let (found, dead, channels) = tokio::try_join!(
        async {
            state
                .store
                .list_deliveries(v.p.tenant, &page)
                .await
                .map_err(Problem::from)
        },
        crate::resources::tenant_dead_letters(&state, v.p.tenant),
        async {
            state
                .store
                .list_resources(v.p.tenant, ResourceKind::Channel)
                .await
                .map_err(Problem::from)
        },
    )?;
    let names: HashMap<ResourceId, &str> =
        channels.iter().map(|c| (c.id, c.name.as_str())).collect();
    let name_of = |id: &ResourceId| {
        names
            .get(id)
            .map_or_else(|| "(deleted channel)".to_owned(), |n| (*n).to_owned())
    };
    let rows = found
        .items
        .iter()
        .map(|d| DeliveryRow {
            at: When::at(d.created_at),
            channel: name_of(&d.channel_id),
            incident: d.incident_id.map(|i| i.to_string()).unwrap_or_default(),
            status: d.status.as_str(),
            attempts: d.attempts,
            latency: d
                .latency_ms
                .map(|ms| {
                    if ms < 1 {
                        "< 1 ms".to_owned()
                    } else {
                        super::format_ms(ms as f64)
                    }
                })
                .unwrap_or_default(),
            detail: d
                .last_error
                .clone()
                .or_else(|| d.response.clone())
                .unwrap_or_default(),
        })
        .collect();
    let mut dead: Vec<DeadRow> = dead
        .into_iter()
        .map(|(_, d)| DeadRow {
            id: d.id,
            at: When::at(d.at),
            channel: name_of(&d.channel_id),
            monitor: d.monitor_name,
            event: d.event,
            handed: d.deliveries,
        })
        .collect();
    dead.sort_by_key(|d| std::cmp::Reverse(d.at.0));
    Ok(render(&DeliveriesPage {
        me: v.me.clone(),
        can_replay: v.p.role.at_least(Role::Editor),
        dead,
        rows,
        next: found.next_cursor.map(|c| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair("cursor", &c.0)
                .finish()
        }),
    }))
}

pub async fn channels(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    resources(&state, v, ResourceKind::Channel).await
}

pub async fn rules(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    resources(&state, v, ResourceKind::Rule).await
}

pub async fn maintenance(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    resources(&state, v, ResourceKind::Maintenance).await
}

pub async fn status_pages(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    resources(&state, v, ResourceKind::StatusPage).await
}

// ---- the status page form ------------------------------------------------------------------

pub struct Pick {
    id: String,
    name: String,
    checked: bool,
    /// On a status page: the monitor's group and public name.
    group: String,
    public_name: String,
}

#[derive(Template)]
#[template(path = "status_page_form.html")]
pub struct StatusPageForm {
    me: Me,
    title: String,
    id: Option<String>,
    version: i64,
    name: String,
    slug: String,
    description: String,
    monitors: Vec<Pick>,
}

/// The monitors to pick from, with what a status page's `spec` says of them.
async fn picks(
    state: &AppState,
    v: &Viewer,
    spec: &serde_json::Value,
) -> Result<Vec<Pick>, Problem> {
    let chosen: HashSet<&str> = spec["monitors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let mut groups: HashMap<&str, &str> = HashMap::new();
    for (name, ids) in crate::resources::page_groups(spec) {
        for id in ids {
            groups.insert(id, name);
        }
    }
    let found = state
        .store
        .list_monitors(
            v.p.tenant,
            &MonitorFilter::default(),
            &PageRequest::first(PICKABLE),
        )
        .await?;
    let mut out: Vec<Pick> = found
        .items
        .into_iter()
        .map(|m| {
            let id = m.id.to_string();
            Pick {
                checked: chosen.contains(id.as_str()),
                group: groups.get(id.as_str()).copied().unwrap_or_default().into(),
                public_name: crate::resources::public_name(spec, &id)
                    .unwrap_or_default()
                    .into(),
                id,
                name: m.name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub async fn new_status_page(
    State(state): State<AppState>,
    v: Viewer,
) -> Result<Response, Problem> {
    let monitors = picks(&state, &v, &serde_json::Value::Null).await?;
    Ok(render(&StatusPageForm {
        me: v.me.clone(),
        title: "New status page".into(),
        id: None,
        version: 0,
        name: String::new(),
        slug: String::new(),
        description: String::new(),
        monitors,
    }))
}

pub async fn edit_status_page(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let page = editable(&state, &v, ResourceKind::StatusPage, &id).await?;
    let monitors = picks(&state, &v, &page.spec).await?;
    Ok(render(&StatusPageForm {
        me: v.me.clone(),
        title: format!("Edit {}", page.name),
        id: Some(page.id.to_string()),
        version: page.version,
        name: page.name.clone(),
        slug: page.slug.clone().unwrap_or_default(),
        description: page.spec["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        monitors,
    }))
}

// ---- settings ------------------------------------------------------------------------------

pub struct KeyRow {
    id: String,
    name: String,
    role: &'static str,
    prefix: String,
    created: When,
    last_used: When,
    revoked: bool,
}

pub struct MemberRow {
    id: String,
    email: String,
    role: &'static str,
    since: When,
    /// The person looking at the page (who is not offered to remove themselves here).
    me: bool,
}

pub struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    expires: When,
}

pub struct AuditRow {
    at: When,
    actor: String,
    action: String,
    /// What kind of object, as people say it (`monitor`, `status page`).
    what: &'static str,
    /// Its name (or e-mail, or the monitor of an incident), as it was or as it is now.
    name: String,
    /// Its page, while it exists.
    link: Option<String>,
    /// `kind:id`, as stored (the tooltip).
    target: String,
}

/// Names the object of each audit entry: its name as the entry recorded it (monitors,
/// channels, keys, … record their name), or as the object has it now; and a link while it
/// exists. Monitors and configuration objects are read in one query per kind; incidents and
/// members one each.
async fn audit_rows(
    state: &AppState,
    tenant: pingtower_core::TenantId,
    entries: Vec<pingtower_core::AuditEntry>,
) -> Result<Vec<AuditRow>, Problem> {
    use pingtower_core::{IncidentId, MonitorId, UserId};
    // What each target (`kind:id`) is called now, and its page.
    let mut now: HashMap<String, (String, Option<String>)> = HashMap::new();
    let targets: HashSet<&str> = entries.iter().map(|a| a.target.as_str()).collect();
    let ids = |kind: &str| -> Vec<&str> {
        targets
            .iter()
            .filter_map(|t| t.strip_prefix(kind)?.strip_prefix(':'))
            .collect()
    };
    // Incidents are named after their monitor.
    let mut incidents = Vec::new();
    for id in ids("incident") {
        let Ok(iid) = id.parse::<IncidentId>() else {
            continue;
        };
        match state.store.get_incident(tenant, iid).await {
            Ok(i) => incidents.push(i),
            Err(pingtower_store::StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut monitor_ids: Vec<MonitorId> = ids("monitor")
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    monitor_ids.extend(incidents.iter().map(|i| i.monitor_id));
    let monitors: HashMap<MonitorId, String> = if monitor_ids.is_empty() {
        HashMap::new()
    } else {
        state
            .store
            .monitors_by_ids(&monitor_ids)
            .await?
            .into_iter()
            .filter(|m| m.tenant_id == tenant)
            .map(|m| (m.id, m.name))
            .collect()
    };
    for (id, name) in &monitors {
        now.insert(
            format!("monitor:{id}"),
            (name.clone(), Some(format!("/monitors/{id}"))),
        );
    }
    for i in &incidents {
        let of = monitors.get(&i.monitor_id).map(|n| format!("of {n}"));
        now.insert(
            format!("incident:{}", i.id),
            (of.unwrap_or_default(), Some(format!("/incidents/{}", i.id))),
        );
    }
    for kind in [
        ResourceKind::Channel,
        ResourceKind::Rule,
        ResourceKind::Maintenance,
        ResourceKind::StatusPage,
        ResourceKind::Chart,
        ResourceKind::Dashboard,
    ] {
        if ids(kind.as_str()).is_empty() {
            continue;
        }
        for r in state.store.list_resources(tenant, kind).await? {
            let link = match kind {
                ResourceKind::Chart => None,
                ResourceKind::Dashboard => Some(format!("/events/dashboards/{}", r.id)),
                _ => Some(format!(
                    "/{}/{}/edit",
                    crate::resources::path_of(kind),
                    r.id
                )),
            };
            now.insert(format!("{}:{}", kind.as_str(), r.id), (r.name, link));
        }
    }
    for id in ids("user") {
        let Ok(uid) = id.parse::<UserId>() else {
            continue;
        };
        match state.store.get_user(uid).await {
            Ok(u) => {
                now.insert(format!("user:{id}"), (u.email, None));
            }
            Err(pingtower_store::StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(entries
        .into_iter()
        .map(|a| {
            let (kind, _) = a.target.split_once(':').unwrap_or((a.target.as_str(), ""));
            let what = match kind.parse::<ResourceKind>() {
                Ok(ResourceKind::Channel) => "channel",
                Ok(ResourceKind::Rule) => "rule",
                Ok(ResourceKind::Maintenance) => "maintenance window",
                Ok(ResourceKind::StatusPage) => "status page",
                Ok(ResourceKind::Chart) => "chart",
                Ok(ResourceKind::Dashboard) => "dashboard",
                Err(_) => match kind {
                    "monitor" => "monitor",
                    "incident" => "incident",
                    "api_key" => "API key",
                    "user" => "member",
                    "invitation" => "invitation",
                    "dead_letter" => "dead letter",
                    _ => "",
                },
            };
            let (now_name, link) = match now.get(&a.target) {
                Some((name, link)) => (Some(name.clone()).filter(|n| !n.is_empty()), link.clone()),
                None => (None, None),
            };
            // Monitors, channels, keys… record their name as the detail; members and
            // invitations record the role given.
            let name = match kind {
                "user" | "invitation" => {
                    let role = a.detail.as_deref().map(|r| format!("({r})"));
                    [now_name, role]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ")
                }
                _ => a.detail.clone().or(now_name).unwrap_or_default(),
            };
            AuditRow {
                at: When::at(a.at),
                actor: a.actor,
                action: a.action,
                what,
                name: if name.is_empty() && what.is_empty() {
                    a.target.clone()
                } else {
                    name
                },
                link,
                target: a.target,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "settings.html")]
pub struct SettingsPage {
    me: Me,
    role: &'static str,
    admin: bool,
    platform_admin: bool,
    /// The caller's tenants: id, name, role there.
    tenants: Vec<(String, String, &'static str)>,
    keys: Vec<KeyRow>,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    audit: Vec<AuditRow>,
    /// The person has a password (not a provider's login only).
    has_password: bool,
}

pub async fn settings(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    let admin = v.p.role.at_least(Role::Admin);
    let mut tenants = Vec::new();
    if let Some(user) = v.p.caller.user() {
        for m in state.store.memberships_of_user(user.id).await? {
            if let Ok(t) = state.store.get_tenant(m.tenant_id).await {
                tenants.push((t.id.to_string(), t.name, m.role.as_str()));
            }
        }
    }
    let (mut keys, mut members, mut audit) = (Vec::new(), Vec::new(), Vec::new());
    let mut invitations = Vec::new();
    if admin {
        invitations = state
            .store
            .pending_invitations(v.p.tenant, pingtower_engine::now())
            .await?
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                email: i.email,
                role: i.role.as_str(),
                expires: When::at(i.expires_at),
            })
            .collect();
        keys = state
            .store
            .list_api_keys(v.p.tenant)
            .await?
            .into_iter()
            .map(|k| KeyRow {
                id: k.id.to_string(),
                name: k.name,
                role: k.role.as_str(),
                prefix: k.prefix,
                created: When::at(k.created_at),
                last_used: When(k.last_used_at),
                revoked: k.revoked_at.is_some(),
            })
            .collect();
        let memberships = state.store.members_of_tenant(v.p.tenant).await?;
        let mut emails: HashMap<String, String> = HashMap::new();
        for m in &memberships {
            if let Ok(u) = state.store.get_user(m.user_id).await {
                emails.insert(m.user_id.to_string(), u.email);
            }
        }
        members = memberships
            .iter()
            .map(|m| MemberRow {
                id: m.user_id.to_string(),
                me: v.p.user_id() == Some(m.user_id),
                email: emails
                    .get(&m.user_id.to_string())
                    .cloned()
                    .unwrap_or_default(),
                role: m.role.as_str(),
                since: When::at(m.created_at),
            })
            .collect();
        let entries = state
            .store
            .list_audit(v.p.tenant, &PageRequest::first(50))
            .await?
            .items;
        audit = audit_rows(&state, v.p.tenant, entries).await?;
    }
    Ok(render(&SettingsPage {
        me: v.me.clone(),
        role: v.p.role.as_str(),
        admin,
        platform_admin: v.p.caller.platform_admin(),
        tenants,
        keys,
        members,
        invitations,
        audit,
        has_password: v.p.caller.user().is_some_and(|u| u.password_hash.is_some()),
    }))
}

// ---- the channel form ----------------------------------------------------------------------

/// One setting of the channel form, shown for the kinds that have it.
pub struct ChannelField {
    name: &'static str,
    /// The element's id: the name, or with `-secret` for the secret one of a pair.
    id: String,
    label: String,
    /// Space-separated kinds that have this setting.
    kinds: String,
    /// Space-separated kinds that require it.
    required_in: String,
    secret: bool,
    /// `number`, or plain text.
    data_type: &'static str,
    /// Space-separated kinds where it is a comma-separated list.
    list_in: &'static str,
    /// Several lines (a certificate, a template): a text area, whose line breaks survive.
    multiline: bool,
}

#[derive(Template)]
#[template(path = "channel_form.html")]
pub struct ChannelForm {
    me: Me,
    title: String,
    form: Editing,
    /// The credentials the channel has stored.
    secrets_set: Vec<String>,
    kinds: Vec<&'static str>,
    fields: Vec<ChannelField>,
}

/// How a channel setting is named on the form.
fn channel_label(name: &str) -> String {
    match name {
        "url" => "URL".into(),
        "method" => "HTTP method".into(),
        "body_template" => "Body template".into(),
        "hmac_secret" => "HMAC signing secret".into(),
        "to" => "To".into(),
        "smtp_host" => "SMTP host".into(),
        "smtp_port" => "SMTP port".into(),
        "smtp_tls" => "SMTP TLS (starttls, tls or none)".into(),
        "username" => "User name".into(),
        "from" => "From".into(),
        "tls_ca_pem" => "CA certificate (PEM), for a private SMTP server".into(),
        "password" => "Password".into(),
        "channel" => "Channel".into(),
        "chat_id" => "Chat ID".into(),
        "bot_token" => "Bot token".into(),
        "base_url" => "API base URL (leave blank for the provider's)".into(),
        "homeserver" => "Homeserver URL".into(),
        "room_id" => "Room ID".into(),
        "access_token" => "Access token".into(),
        "routing_key" => "Routing key".into(),
        "severity" => "Severity".into(),
        "api_key" => "API key".into(),
        "priority" => "Priority".into(),
        "token" => "Token".into(),
        "user_key" => "User key".into(),
        "account_sid" => "Account SID".into(),
        "auth_token" => "Auth token".into(),
        other => {
            let text = other.replace('_', " ");
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

/// Every setting of every channel kind, with the kinds it belongs to: once, or twice when
/// some kinds keep it secret (a Slack URL holds its token) and others do not (a webhook's
/// URL), so that only secrets are password boxes. The form shows the chosen kind's fields.
fn channel_fields() -> Vec<ChannelField> {
    use crate::resources::CHANNEL_KINDS;
    let mut order: Vec<(&'static str, bool)> = Vec::new();
    for k in CHANNEL_KINDS {
        for f in k.required.iter().chain(k.optional).chain(k.secret) {
            // Headers are an object: the API or `apply` sets them.
            let key = (*f, k.secret.contains(f));
            if *f != "headers" && !order.contains(&key) {
                order.push(key);
            }
        }
    }
    let both: Vec<&'static str> = order
        .iter()
        .filter(|(name, secret)| *secret && order.contains(&(*name, false)))
        .map(|(name, _)| *name)
        .collect();
    order
        .into_iter()
        .map(|(name, secret)| {
            let has = |k: &crate::resources::ChannelKind| {
                k.secret.contains(&name) == secret
                    && (k.required.contains(&name)
                        || k.optional.contains(&name)
                        || k.secret.contains(&name))
            };
            let kinds_with = |pick: &dyn Fn(&crate::resources::ChannelKind) -> bool| {
                CHANNEL_KINDS
                    .iter()
                    .filter(|k| has(k) && pick(k))
                    .map(|k| k.kind)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            ChannelField {
                name,
                id: if secret && both.contains(&name) {
                    format!("{name}-secret")
                } else {
                    name.to_owned()
                },
                label: channel_label(name),
                kinds: kinds_with(&|_| true),
                required_in: kinds_with(&|k| k.required.contains(&name)),
                secret,
                // Email takes a list of addresses; SMS one number.
                list_in: if name == "to" { "email" } else { "" },
                multiline: matches!(name, "tls_ca_pem" | "body_template"),
                data_type: match name {
                    "smtp_port" => "number",
                    _ => "",
                },
            }
        })
        .collect()
}

impl ChannelForm {
    /// Whether the channel has this credential stored (its value is never shown).
    fn is_set(&self, name: &str) -> bool {
        self.secrets_set.iter().any(|s| s == name)
    }
}

fn channel_kinds() -> Vec<&'static str> {
    crate::resources::CHANNEL_KINDS
        .iter()
        .map(|k| k.kind)
        .collect()
}

pub async fn new_channel(v: Viewer) -> Response {
    render(&ChannelForm {
        me: v.me.clone(),
        title: "New channel".into(),
        form: Editing::default(),
        secrets_set: Vec::new(),
        kinds: channel_kinds(),
        fields: channel_fields(),
    })
}

pub async fn edit_channel(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let r = editable(&state, &v, ResourceKind::Channel, &id).await?;
    // Which credentials are stored; their values stay sealed.
    let secrets_set = crate::resources::open_secrets(&state, v.p.tenant, r.secret.as_deref())?
        .keys()
        .cloned()
        .collect();
    Ok(render(&ChannelForm {
        me: v.me.clone(),
        title: format!("Edit {}", r.name),
        form: Editing::of(&r),
        secrets_set,
        kinds: channel_kinds(),
        fields: channel_fields(),
    }))
}

// ---- rule and maintenance forms ------------------------------------------------------------

/// The object an edit form changes (none for a new one) and its fields as the form shows them.
#[derive(Default)]
pub struct Editing {
    id: Option<String>,
    version: i64,
    values: HashMap<String, String>,
    /// How many monitors are chosen by id, if they are (the form edits tags only; a list of
    /// ids, even an empty one, is kept as it is rather than turned into "all").
    monitors_by_id: Option<usize>,
}

impl Editing {
    fn of(r: &Resource) -> Self {
        let mut values = HashMap::new();
        let mut monitors_by_id = None;
        values.insert("name".to_owned(), r.name.clone());
        for (key, value) in r.spec.as_object().into_iter().flatten() {
            use serde_json::Value;
            let shown = match (key.as_str(), value) {
                ("monitors", Value::String(_)) => String::new(),
                ("monitors", o @ Value::Object(_)) => list_of(o, "tags"),
                ("monitors", Value::Array(ids)) => {
                    monitors_by_id = Some(ids.len());
                    continue;
                }
                (_, Value::String(s)) => s.clone(),
                (_, Value::Number(n)) => n.to_string(),
                (_, Value::Bool(b)) => b.to_string(),
                (_, Value::Array(_)) => list_of(&r.spec, key),
                (_, Value::Object(o)) => {
                    // A rule's `flap` and `escalate`: a field per part, `flap.failures`.
                    for (part, v) in o {
                        if let Value::Number(n) = v {
                            values.insert(format!("{key}.{part}"), n.to_string());
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            values.insert(key.clone(), shown);
        }
        Editing {
            id: Some(r.id.to_string()),
            version: r.version,
            values,
            monitors_by_id,
        }
    }

    /// A field's value, or nothing.
    fn v(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }
}

/// One of the tenant's objects of `kind`, to edit.
async fn editable(
    state: &AppState,
    v: &Viewer,
    kind: ResourceKind,
    id: &str,
) -> Result<Resource, Problem> {
    let id: ResourceId = crate::http::parse_id(id, kind.as_str())?;
    state
        .store
        .get_resource(v.p.tenant, kind, id)
        .await
        .map_err(|e| crate::http::not_found_as(e, kind.as_str()))
}

#[derive(Template)]
#[template(path = "rule_form.html")]
pub struct RuleForm {
    me: Me,
    title: String,
    form: Editing,
    /// Each event, and whether it is ticked.
    events: Vec<(&'static str, bool)>,
    channels: Vec<Pick>,
    /// The same channels, ticked if the rule escalates to them.
    escalate: Vec<Pick>,
}

async fn rule_form(
    state: &AppState,
    v: &Viewer,
    title: String,
    form: Editing,
    spec: &serde_json::Value,
) -> Result<Response, Problem> {
    let ticked = |key: &str, value: &str| crate::resources::lists(&spec[key], value);
    let all = state
        .store
        .list_resources(v.p.tenant, ResourceKind::Channel)
        .await?;
    let picks = |checked: &dyn Fn(&str) -> bool| -> Vec<Pick> {
        all.iter()
            .map(|c| Pick {
                checked: checked(&c.id.to_string()),
                id: c.id.to_string(),
                name: c.name.clone(),
                group: String::new(),
                public_name: String::new(),
            })
            .collect()
    };
    let channels = picks(&|id| ticked("channels", id));
    let escalate = picks(&|id| crate::resources::lists(&spec["escalate"]["channels"], id));
    let events = crate::resources::RULE_EVENTS
        .iter()
        .map(|e| {
            let on = if form.id.is_some() {
                ticked("events", e)
            } else {
                matches!(*e, "down" | "up")
            };
            (*e, on)
        })
        .collect();
    Ok(render(&RuleForm {
        me: v.me.clone(),
        title,
        form,
        events,
        channels,
        escalate,
    }))
}

pub async fn new_rule(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    rule_form(
        &state,
        &v,
        "New rule".into(),
        Editing::default(),
        &serde_json::Value::Null,
    )
    .await
}

pub async fn edit_rule(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let r = editable(&state, &v, ResourceKind::Rule, &id).await?;
    rule_form(
        &state,
        &v,
        format!("Edit {}", r.name),
        Editing::of(&r),
        &r.spec,
    )
    .await
}

#[derive(Template)]
#[template(path = "maintenance_form.html")]
pub struct MaintenanceForm {
    me: Me,
    title: String,
    form: Editing,
}

pub async fn new_maintenance(v: Viewer) -> Response {
    render(&MaintenanceForm {
        me: v.me.clone(),
        title: "New maintenance window".into(),
        form: Editing::default(),
    })
}

pub async fn edit_maintenance(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let r = editable(&state, &v, ResourceKind::Maintenance, &id).await?;
    Ok(render(&MaintenanceForm {
        me: v.me.clone(),
        title: format!("Edit {}", r.name),
        form: Editing::of(&r),
    }))
}
