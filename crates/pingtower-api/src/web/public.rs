//! Pages anyone may read: published status pages and badges. They show only what their owner
//! chose to publish: a status page its monitors, a badge one monitor that is on one of its
//! tenant's status pages (a monitor's id alone, which notifications carry in links, opens
//! nothing). Incidents are shown as outages with their times, never with the check's reason,
//! which can name internal hosts and addresses. Both say how long caches may keep them, so a
//! burst of visitors during an outage costs the server little.

use super::svg;
use super::{When, format_ms, format_percent, render};
use crate::resources::{page_groups, public_name};
use crate::{AppState, Problem};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use pingtower_core::stats::RollupLevel;
use pingtower_core::{IncidentStatus, Monitor, MonitorId, MonitorStatus, ResourceKind};
use pingtower_engine::figures;
use std::collections::HashMap;

const DAY: i64 = 86_400_000;
/// How long a status page or badge may be served from a cache.
const PUBLIC_MAX_AGE: &str = "public, max-age=30";

pub struct PublicMonitor {
    name: String,
    status: &'static str,
    label: &'static str,
    uptime: String,
    bars: String,
}

pub struct PublicIncident {
    monitor: String,
    /// What the public is told: "Outage", "Outage, being worked on".
    state: &'static str,
    opened: When,
    resolved: When,
}

/// A section of a status page; the page's monitors in no group come first, without a name.
pub struct PublicGroup {
    name: String,
    monitors: Vec<PublicMonitor>,
}

#[derive(Template)]
#[template(path = "status_page.html")]
pub struct StatusPage {
    title: String,
    description: String,
    overall: &'static str,
    overall_text: &'static str,
    groups: Vec<PublicGroup>,
    active: Vec<PublicIncident>,
    history: Vec<PublicIncident>,
    updated: When,
}

/// What the public is told of a status: maintenance and pauses are not outages.
fn public_status(s: MonitorStatus) -> (&'static str, &'static str) {
    match s {
        MonitorStatus::Up => ("up", "Operational"),
        MonitorStatus::Degraded => ("degraded", "Degraded performance"),
        MonitorStatus::Down => ("down", "Outage"),
        MonitorStatus::Maintenance => ("maintenance", "Under maintenance"),
        MonitorStatus::Paused | MonitorStatus::Pending => ("none", "No data"),
    }
}

pub async fn status_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Response, Problem> {
    let page = state
        .store
        .find_status_page(&slug)
        .await?
        .ok_or_else(|| Problem::not_found("status page"))?;
    let ids: Vec<MonitorId> = page.spec["monitors"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let found = state.store.monitors_by_ids(&ids).await?;
    // In the page's order, and only the page's tenant's.
    let by_id: HashMap<MonitorId, &Monitor> = found
        .iter()
        .filter(|m| m.tenant_id == page.tenant_id)
        .map(|m| (m.id, m))
        .collect();
    let monitors: Vec<&Monitor> = ids.iter().filter_map(|id| by_id.get(id).copied()).collect();
    let now = pingtower_engine::now().as_millis();
    let bars = super::pages::daily_bars(&state, &monitors, now, false).await?;
    let seqs: Vec<i64> = monitors.iter().map(|m| m.seq).collect();
    let uptimes = figures::per_monitor(state.store.as_ref(), &seqs, now - 90 * DAY, now).await?;
    let incidents = state
        .store
        .incidents_between(
            page.tenant_id,
            Some(&ids),
            pingtower_core::Timestamp::from_millis(now - 90 * DAY),
            // The window's end is exclusive: an incident opened this very millisecond counts.
            pingtower_core::Timestamp::from_millis(now + 1),
        )
        .await?;
    let name_of = |id: MonitorId| {
        public_name(&page.spec, &id.to_string())
            .or_else(|| by_id.get(&id).map(|m| m.name.as_str()))
            .unwrap_or_default()
            .to_owned()
    };
    let mut active = Vec::new();
    let mut history = Vec::new();
    let mut sorted = incidents;
    sorted.sort_by_key(|i| std::cmp::Reverse(i.opened_at));
    for i in sorted {
        let row = PublicIncident {
            monitor: name_of(i.monitor_id),
            state: match i.status {
                IncidentStatus::Acknowledged => "Outage, being worked on",
                _ => "Outage",
            },
            opened: When::at(i.opened_at),
            resolved: When(i.resolved_at),
        };
        if i.status == IncidentStatus::Resolved {
            if history.len() < 50 {
                history.push(row);
            }
        } else {
            active.push(row);
        }
    }
    let statuses: Vec<MonitorStatus> = monitors.iter().map(|m| m.status).collect();
    let (overall, overall_text) = if statuses.contains(&MonitorStatus::Down) {
        ("down", "Some systems are down")
    } else if statuses.contains(&MonitorStatus::Degraded) {
        ("degraded", "Some systems are degraded")
    } else if statuses.contains(&MonitorStatus::Maintenance) {
        ("maintenance", "Maintenance in progress")
    } else {
        ("up", "All systems operational")
    };
    let out = StatusPage {
        title: page.name.clone(),
        description: page.spec["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        overall,
        overall_text,
        groups: sections(&page.spec, &monitors, &by_id)
            .into_iter()
            .map(|(name, members)| PublicGroup {
                name,
                monitors: members
                    .into_iter()
                    .map(|m| {
                        let (status, label) = public_status(m.status);
                        PublicMonitor {
                            name: name_of(m.id),
                            status,
                            label,
                            uptime: format_percent(
                                uptimes.get(&m.seq).and_then(|r| r.uptime_percent()),
                            ),
                            bars: bars.get(&m.seq).cloned().unwrap_or_default(),
                        }
                    })
                    .collect(),
            })
            .collect(),
        active,
        history,
        updated: When::at(pingtower_core::Timestamp::from_millis(now)),
    };
    let mut response = render(&out);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(PUBLIC_MAX_AGE),
    );
    Ok(response)
}

/// A page's monitors in its sections: those in no group first (unnamed), then each group in
/// its order; empty sections are left out.
fn sections<'m>(
    spec: &serde_json::Value,
    monitors: &[&'m Monitor],
    by_id: &HashMap<MonitorId, &'m Monitor>,
) -> Vec<(String, Vec<&'m Monitor>)> {
    let groups: Vec<(String, Vec<&'m Monitor>)> = page_groups(spec)
        .into_iter()
        .map(|(name, ids)| {
            let members = ids
                .iter()
                .filter_map(|id| by_id.get(&id.parse().ok()?).copied())
                .collect();
            (name.to_owned(), members)
        })
        .collect();
    let grouped: std::collections::HashSet<MonitorId> = groups
        .iter()
        .flat_map(|(_, members)| members.iter().map(|m| m.id))
        .collect();
    let ungrouped = monitors
        .iter()
        .filter(|m| !grouped.contains(&m.id))
        .copied()
        .collect();
    let mut out = vec![(String::new(), ungrouped)];
    out.extend(groups);
    out.retain(|(_, members)| !members.is_empty());
    out
}

/// `/badge/{id}/status.svg`, `uptime.svg` (30 days) and `latency.svg` (24 h median).
pub async fn badge(
    State(state): State<AppState>,
    Path((id, kind)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let id: MonitorId = crate::http::parse_id(&id, "monitor")?;
    let m = state
        .store
        .monitors_by_ids(&[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Problem::not_found("monitor"))?;
    let pages = state
        .store
        .list_resources(m.tenant_id, ResourceKind::StatusPage)
        .await?;
    let id = m.id.to_string();
    let published: Vec<&pingtower_core::Resource> = pages
        .iter()
        .filter(|page| crate::resources::lists(&page.spec["monitors"], &id))
        .collect();
    if published.is_empty() {
        return Err(Problem::not_found("monitor"));
    }
    // The name the public knows it by: a page's name for it, if one gives it one.
    let name = published
        .iter()
        .find_map(|p| public_name(&p.spec, &id))
        .unwrap_or(&m.name);
    let now = pingtower_engine::now().as_millis();
    let image = match kind.as_str() {
        "status.svg" => {
            let (s, label) = public_status(m.status);
            let color = match s {
                "up" => "#2e7d32",
                "degraded" => "#b26a00",
                "down" => "#c62828",
                "maintenance" => "#1565c0",
                _ => "#757575",
            };
            svg::badge(name, &label.to_lowercase(), color)
        }
        "uptime.svg" => {
            let r = figures::total(state.store.as_ref(), &[m.seq], now - 30 * DAY, now).await?;
            let up = r.uptime_percent();
            let color = match up {
                Some(u) if u >= 99.9 => "#2e7d32",
                Some(u) if u >= 99.0 => "#b26a00",
                Some(_) => "#c62828",
                None => "#757575",
            };
            svg::badge("uptime 30d", &format_percent(up), color)
        }
        "latency.svg" => {
            let from = RollupLevel::Hour.floor(now - DAY);
            let r = figures::total(state.store.as_ref(), &[m.seq], from, now).await?;
            let value = r
                .latency
                .quantile(0.5)
                .map_or_else(|| "–".to_owned(), |us| format_ms(us / 1000.0));
            svg::badge("latency p50", &value, "#1565c0")
        }
        _ => return Err(Problem::not_found("badge")),
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(PUBLIC_MAX_AGE),
            ),
        ],
        image,
    )
        .into_response())
}
