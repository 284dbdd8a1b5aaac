//! The Events page: an explorer that asks the same queries as `POST /api/v1/events/query`
//! from a form (a GET, so a chart has a link to share) and draws them server-side, a link that
//! makes an event monitor from the chart, and a live tail of the newest events.

use super::svg::{self, Series};
use super::{Me, Viewer, format_time, render};
use crate::{AppState, Problem};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Default, Deserialize)]
pub struct Explore {
    name: Option<String>,
    metric: Option<String>,
    bucket: Option<String>,
    range: Option<String>,
    breakdown: Option<String>,
}

pub struct TailRow {
    at: String,
    name: String,
    who: String,
    properties: String,
}

pub struct Key {
    name: String,
    class: &'static str,
    total: String,
}

#[derive(Template)]
#[template(path = "events.html")]
pub struct EventsPage {
    me: Me,
    name: String,
    metric: String,
    bucket: String,
    range: String,
    breakdown: String,
    /// The tenant's event names, for the name field's suggestions.
    names: Vec<String>,
    chart: String,
    keys: Vec<Key>,
    /// Why the chart could not be drawn.
    problem: Option<String>,
    /// `/monitors/new?…` for an alert on this chart (a count of one name).
    alert: Option<String>,
    tail: Vec<TailRow>,
}

const CLASSES: [&str; 6] = ["p50", "p95", "p99", "s3", "s4", "s5"];

fn text(v: Option<&String>, default: &str) -> String {
    v.map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub async fn events(
    State(state): State<AppState>,
    v: Viewer,
    Query(x): Query<Explore>,
) -> Result<Response, Problem> {
    let name = text(x.name.as_ref(), "");
    let metric = text(x.metric.as_ref(), "count");
    let bucket = text(x.bucket.as_ref(), "hour");
    let range = text(x.range.as_ref(), "24h");
    let breakdown = text(x.breakdown.as_ref(), "");
    let mut body = Map::new();
    body.insert("metric".into(), json!(metric));
    body.insert("bucket".into(), json!(bucket));
    body.insert("range".into(), json!(range));
    if !name.is_empty() {
        body.insert(
            "filters".into(),
            json!([{"property": "name", "op": "eq", "value": name}]),
        );
    }
    if !breakdown.is_empty() {
        body.insert("breakdown".into(), json!(breakdown));
        body.insert("breakdown_limit".into(), json!(5));
    }
    let (mut chart, mut keys, mut problem) = (String::new(), Vec::new(), None);
    match crate::analytics::run_query(&state, v.p.tenant, body).await {
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
            chart = svg::chart_of(
                &drawn,
                &first,
                &last,
                "Events over time",
                "",
                "No events in this range yet",
            );
            keys = series
                .iter()
                .zip(CLASSES.iter().cycle())
                .map(|(s, class)| Key {
                    name: s.key.clone(),
                    class,
                    total: {
                        let t: f64 = s
                            .points
                            .iter()
                            .filter_map(|p| p.value.as_ref().and_then(serde_json::Number::as_f64))
                            .sum();
                        if metric == "count" {
                            format!("{t:.0} in all")
                        } else {
                            String::new()
                        }
                    },
                })
                .collect();
        }
        Err(p) => {
            problem = Some(match p.errors.is_empty() {
                true => p.detail.unwrap_or(p.title),
                false => p
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }
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
            at: format_time(e.timestamp),
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
    let alert = (metric == "count" && !name.is_empty()).then(|| {
        format!(
            "/monitors/new?kind=event&event_names={}",
            form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        )
    });
    Ok(render(&EventsPage {
        me: v.me,
        name,
        metric,
        bucket,
        range,
        breakdown,
        names,
        chart,
        keys,
        problem,
        alert,
        tail,
    }))
}
