//! The Events pages: an explorer that asks the same queries as `POST /api/v1/events/query`
//! from a form (a GET, so a chart has a link to share) and draws them server-side; saved charts
//! and dashboards (grids of saved charts that redraw as the tenant's events arrive); a link that
//! makes an event monitor from a chart; and a live tail of the newest events.
//!
//! Saving a chart or changing a dashboard is a call of the JSON API by the script, as on every
//! page; a dashboard's cells fetch their redrawn figure from `/events/charts/{id}/figure`.

use super::svg::{self, Series};
use super::{Me, Viewer, When, format_time, render};
use crate::{AppState, Problem};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use pingtower_core::{Resource, ResourceKind, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The explorer's form, as its query string carries it.
#[derive(Debug, Default, Deserialize)]
pub struct Explore {
    name: Option<String>,
    metric: Option<String>,
    property: Option<String>,
    /// A filter on a property: the property, its operator and its value.
    fp: Option<String>,
    fop: Option<String>,
    fv: Option<String>,
    breakdown: Option<String>,
    /// Breakdown values drawn.
    limit: Option<String>,
    bucket: Option<String>,
    range: Option<String>,
    style: Option<String>,
}

/// The explorer's fields, trimmed, with their defaults.
#[derive(Debug, Clone, PartialEq)]
struct Form {
    name: String,
    metric: String,
    property: String,
    fp: String,
    fop: String,
    fv: String,
    breakdown: String,
    limit: String,
    bucket: String,
    range: String,
    style: String,
}

/// Breakdown values the explorer draws unless told.
const BREAKDOWN_LIMIT: &str = "5";
/// The ranges the explorer offers.
const RANGES: [&str; 6] = ["1h", "6h", "24h", "7d", "30d", "90d"];

/// A query with the defaults `POST /api/v1/events/query` assumes written out, so that two
/// queries that ask the same compare equal.
fn normalized(query: &Map<String, Value>) -> Map<String, Value> {
    let mut q = query.clone();
    if q.contains_key("breakdown") && !q.contains_key("breakdown_limit") {
        q.insert("breakdown_limit".into(), json!(10));
    }
    q
}

fn text(v: Option<&String>, default: &str) -> String {
    v.map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Form {
    fn of(x: &Explore) -> Self {
        Self {
            name: text(x.name.as_ref(), ""),
            metric: text(x.metric.as_ref(), "count"),
            property: text(x.property.as_ref(), ""),
            fp: text(x.fp.as_ref(), ""),
            fop: text(x.fop.as_ref(), "eq"),
            fv: text(x.fv.as_ref(), ""),
            breakdown: text(x.breakdown.as_ref(), ""),
            limit: text(x.limit.as_ref(), BREAKDOWN_LIMIT),
            bucket: text(x.bucket.as_ref(), "hour"),
            range: text(x.range.as_ref(), "24h"),
            style: text(x.style.as_ref(), "line"),
        }
    }

    /// The query body the form asks (as `POST /api/v1/events/query` takes it).
    fn body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("metric".into(), json!(self.metric));
        if !self.property.is_empty() {
            body.insert("property".into(), json!(self.property));
        }
        body.insert("bucket".into(), json!(self.bucket));
        body.insert("range".into(), json!(self.range));
        let mut filters = Vec::new();
        if !self.name.is_empty() {
            filters.push(json!({"property": "name", "op": "eq", "value": self.name}));
        }
        if !self.fp.is_empty() {
            let value = match self.fop.as_str() {
                "gt" | "lt" => self
                    .fv
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| json!(self.fv), Value::Number),
                "in" => Value::Array(
                    self.fv
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(Value::from)
                        .collect(),
                ),
                "exists" => json!(true),
                _ => json!(self.fv),
            };
            filters.push(json!({"property": self.fp, "op": self.fop, "value": value}));
        }
        if !filters.is_empty() {
            body.insert("filters".into(), Value::Array(filters));
        }
        if !self.breakdown.is_empty() {
            body.insert("breakdown".into(), json!(self.breakdown));
            let limit = self
                .limit
                .parse::<u64>()
                .map_or_else(|_| json!(self.limit), Value::from);
            body.insert("breakdown_limit".into(), limit);
        }
        body
    }

    /// The form that asks `query` exactly, when the form can (a saved chart made elsewhere may
    /// ask more than it has fields for).
    fn from_query(query: &Map<String, Value>, style: &str) -> Option<Self> {
        let s = |k: &str| query.get(k).and_then(Value::as_str).unwrap_or_default();
        let filters = match query.get("filters") {
            Some(Value::Array(f)) => f.clone(),
            _ => Vec::new(),
        };
        let (mut name, mut fp, mut fop, mut fv) =
            (String::new(), String::new(), "eq", String::new());
        for f in &filters {
            let prop = f
                .get("property")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = f.get("op").and_then(Value::as_str).unwrap_or_default();
            let value = f.get("value");
            if prop == "name" && op == "eq" && name.is_empty() {
                name = value.and_then(Value::as_str).unwrap_or_default().to_owned();
            } else if fp.is_empty() {
                fp = prop.to_owned();
                fop = match op {
                    "eq" => "eq",
                    "neq" => "neq",
                    "contains" => "contains",
                    "gt" => "gt",
                    "lt" => "lt",
                    "exists" => "exists",
                    "in" => "in",
                    _ => return None,
                };
                fv = match value {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Some(Value::String(t)) => t.clone(),
                    Some(Value::Bool(true)) if op == "exists" => String::new(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
            }
        }
        let form = Form {
            name,
            metric: text(Some(&s("metric").to_owned()), "count"),
            property: s("property").to_owned(),
            fp,
            fop: fop.to_owned(),
            fv,
            breakdown: s("breakdown").to_owned(),
            limit: match query.get("breakdown_limit") {
                Some(v) => v.to_string(),
                None => "10".into(),
            },
            bucket: text(Some(&s("bucket").to_owned()), "hour"),
            range: text(Some(&s("range").to_owned()), "24h"),
            style: style.to_owned(),
        };
        (normalized(&form.body()) == normalized(query)).then_some(form)
    }

    /// The explorer's address for this form.
    fn link(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("name", &self.name),
            ("metric", &self.metric),
            ("property", &self.property),
            ("fp", &self.fp),
            ("fop", &self.fop),
            ("fv", &self.fv),
            ("breakdown", &self.breakdown),
            ("limit", &self.limit),
            ("bucket", &self.bucket),
            ("range", &self.range),
            ("style", &self.style),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        format!("/events?{}", q.finish())
    }
}

pub struct Key {
    name: String,
    class: &'static str,
    total: String,
}

/// A drawn chart: its SVG and legend, or why it could not be drawn.
#[derive(Template)]
#[template(path = "chart_figure.html")]
pub struct Figure {
    chart: String,
    keys: Vec<Key>,
    problem: Option<String>,
}

const CLASSES: [&str; 6] = ["p50", "p95", "p99", "s3", "s4", "s5"];

/// Runs `body` for `tenant` and draws it (`style`: `line` or `bar`).
async fn figure(
    state: &AppState,
    tenant: pingtower_core::TenantId,
    body: Map<String, Value>,
    style: &str,
    label: &str,
) -> Figure {
    let counting = body.get("metric").and_then(Value::as_str) == Some("count");
    match crate::analytics::run_query(state, tenant, body).await {
        Ok(series) => {
            let first = series
                .first()
                .and_then(|s| s.points.first())
                .map(|p| format_time(p.t))
                .unwrap_or_default();
            let last = series
                .first()
                .and_then(|s| s.points.last())
                .map(|p| format_time(p.t))
                .unwrap_or_default();
            let drawn: Vec<Series<'_>> = series
                .iter()
                .zip(CLASSES.iter().cycle())
                .map(|(s, class)| Series {
                    name: &s.key,
                    class,
                    values: s
                        .points
                        .iter()
                        .map(|p| p.value.as_ref().and_then(serde_json::Number::as_f64))
                        .collect(),
                })
                .collect();
            let empty = "No events in this range yet";
            let chart = if style == "bar" {
                svg::bar_chart_of(&drawn, &first, &last, label, "", empty)
            } else {
                svg::chart_of(&drawn, &first, &last, label, "", empty)
            };
            let keys = series
                .iter()
                .zip(CLASSES.iter().cycle())
                .map(|(s, class)| Key {
                    name: s.key.clone(),
                    class,
                    total: if counting {
                        let t: f64 = s
                            .points
                            .iter()
                            .filter_map(|p| p.value.as_ref().and_then(serde_json::Number::as_f64))
                            .sum();
                        format!("{t:.0} in all")
                    } else {
                        String::new()
                    },
                })
                .collect();
            Figure {
                chart,
                keys,
                problem: None,
            }
        }
        Err(p) => Figure {
            chart: String::new(),
            keys: Vec::new(),
            problem: Some(if p.errors.is_empty() {
                p.detail.unwrap_or(p.title)
            } else {
                p.errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        },
    }
}

/// A figure as HTML to put in a page.
fn html_of(f: &Figure) -> String {
    f.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a chart failed to render");
        "<p class=\"error\">The chart could not be drawn.</p>".into()
    })
}

pub struct TailRow {
    at: When,
    name: String,
    who: String,
    properties: String,
}

#[derive(Template)]
#[template(path = "events.html")]
pub struct EventsPage {
    me: Me,
    form: Form,
    /// The ranges offered: the usual ones and the one asked.
    ranges: Vec<String>,
    /// The tenant's event names, for the name field's suggestions.
    names: Vec<String>,
    figure: String,
    drawn: bool,
    /// The query the form asks, as JSON (what "Save this chart" sends).
    query: String,
    can_edit: bool,
    /// `/monitors/new?…` for an alert on this chart (a count of one name).
    alert: Option<String>,
    tail: Vec<TailRow>,
}

pub async fn events(
    State(state): State<AppState>,
    v: Viewer,
    Query(x): Query<Explore>,
) -> Result<Response, Problem> {
    let form = Form::of(&x);
    let body = form.body();
    let query = Value::Object(body.clone()).to_string();
    let fig = figure(&state, v.p.tenant, body, &form.style, "Events over time").await;
    let drawn = fig.problem.is_none();
    let store = &state.analytics.store;
    let names = store
        .names(v.p.tenant)
        .await
        .map(|n| n.into_iter().take(200).map(|n| n.name).collect())
        .unwrap_or_default();
    let tail = store
        .list(v.p.tenant, None, None, 20)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| TailRow {
            at: When::at(e.timestamp),
            name: e.name,
            who: e.distinct_id.unwrap_or_default(),
            properties: {
                let t = Value::Object(e.properties).to_string();
                if t.chars().count() > 120 {
                    format!("{}…", t.chars().take(120).collect::<String>())
                } else {
                    t
                }
            },
        })
        .collect();
    let alert =
        (form.metric == "count" && !form.name.is_empty() && form.fp.is_empty()).then(|| {
            format!(
                "/monitors/new?kind=event&event_names={}",
                form_urlencoded::byte_serialize(form.name.as_bytes()).collect::<String>()
            )
        });
    let mut ranges: Vec<String> = RANGES.iter().map(|r| (*r).to_owned()).collect();
    if !ranges.contains(&form.range) {
        ranges.insert(0, form.range.clone());
    }
    Ok(render(&EventsPage {
        me: v.me,
        ranges,
        figure: html_of(&fig),
        drawn,
        form,
        names,
        query,
        can_edit: v.p.role.at_least(Role::Editor),
        alert,
        tail,
    }))
}

/// A saved chart as a list shows it.
pub struct ChartRow {
    id: String,
    name: String,
    style: String,
    /// The explorer's address for the chart, when its form can ask the chart's query.
    explore: Option<String>,
    /// The query, as JSON.
    query: String,
}

fn chart_row(r: &Resource) -> ChartRow {
    let query = crate::analytics::chart_query(r);
    let style = chart_style(r).to_owned();
    ChartRow {
        id: r.id.to_string(),
        name: r.name.clone(),
        explore: Form::from_query(&query, &style).map(|f| f.link()),
        query: Value::Object(query).to_string(),
        style,
    }
}

fn chart_style(r: &Resource) -> &str {
    r.spec
        .get("style")
        .and_then(Value::as_str)
        .unwrap_or("line")
}

pub struct DashboardRow {
    id: String,
    name: String,
    charts: usize,
}

#[derive(Template)]
#[template(path = "dashboards.html")]
pub struct DashboardsPage {
    me: Me,
    can_edit: bool,
    dashboards: Vec<DashboardRow>,
    charts: Vec<ChartRow>,
}

pub async fn dashboards(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    let boards = state
        .store
        .list_resources(v.p.tenant, ResourceKind::Dashboard)
        .await?;
    let charts = state
        .store
        .list_resources(v.p.tenant, ResourceKind::Chart)
        .await?;
    Ok(render(&DashboardsPage {
        can_edit: v.p.role.at_least(Role::Editor),
        dashboards: boards
            .iter()
            .map(|d| DashboardRow {
                id: d.id.to_string(),
                name: d.name.clone(),
                charts: d.spec["charts"].as_array().map_or(0, Vec::len),
            })
            .collect(),
        charts: charts.iter().map(chart_row).collect(),
        me: v.me,
    }))
}

/// One chart of a dashboard.
pub struct Cell {
    id: String,
    name: String,
    /// The event names the chart counts (none: every name), for live redraws.
    names: String,
    figure: String,
    explore: Option<String>,
}

/// A chart the dashboard's form offers, ticked when it is on the dashboard.
pub struct Choice {
    id: String,
    name: String,
    on: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    me: Me,
    id: String,
    name: String,
    description: String,
    version: i64,
    columns: i64,
    cells: Vec<Cell>,
    can_edit: bool,
    choices: Vec<Choice>,
}

/// The event names a saved chart's query reads (empty: every name).
fn names_of(query: &Map<String, Value>) -> String {
    pingtower_analytics::query::read_query(query.clone(), pingtower_engine::now())
        .ok()
        .and_then(|q| q.names_to_read().map(|names| names.join(",")))
        .unwrap_or_default()
}

pub async fn dashboard(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let board_id: pingtower_core::ResourceId = crate::http::parse_id(&id, "dashboard")?;
    let board = state
        .store
        .get_resource(v.p.tenant, ResourceKind::Dashboard, board_id)
        .await
        .map_err(|e| crate::http::not_found_as(e, "dashboard"))?;
    let charts = state
        .store
        .list_resources(v.p.tenant, ResourceKind::Chart)
        .await?;
    let on: Vec<String> = board.spec["charts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut cells = Vec::new();
    for chart_id in &on {
        let Some(chart) = charts.iter().find(|c| c.id.to_string() == *chart_id) else {
            continue;
        };
        let query = crate::analytics::chart_query(chart);
        let style = chart_style(chart);
        let fig = figure(&state, v.p.tenant, query.clone(), style, &chart.name).await;
        cells.push(Cell {
            id: chart_id.clone(),
            name: chart.name.clone(),
            names: names_of(&query),
            figure: html_of(&fig),
            explore: Form::from_query(&query, style).map(|f| f.link()),
        });
    }
    // The dashboard's charts first, in their order, then the others.
    let mut choices: Vec<Choice> = on
        .iter()
        .filter_map(|id| charts.iter().find(|c| c.id.to_string() == *id))
        .map(|c| Choice {
            id: c.id.to_string(),
            name: c.name.clone(),
            on: true,
        })
        .collect();
    choices.extend(
        charts
            .iter()
            .filter(|c| !on.contains(&c.id.to_string()))
            .map(|c| Choice {
                id: c.id.to_string(),
                name: c.name.clone(),
                on: false,
            }),
    );
    Ok(render(&DashboardPage {
        id: board.id.to_string(),
        name: board.name.clone(),
        description: board.spec["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        version: board.version,
        columns: board.spec["columns"].as_i64().unwrap_or(2).clamp(1, 4),
        cells,
        can_edit: v.p.role.at_least(Role::Editor),
        choices,
        me: v.me,
    }))
}

/// A saved chart drawn now, as an HTML fragment (what a dashboard's cell redraws itself with).
pub async fn chart_figure(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let chart = crate::analytics::saved_chart(&state, v.p.tenant, &id).await?;
    let fig = figure(
        &state,
        v.p.tenant,
        crate::analytics::chart_query(&chart),
        chart_style(&chart),
        &chart.name,
    )
    .await;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        html_of(&fig),
    )
        .into_response())
}
