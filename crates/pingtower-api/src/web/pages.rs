//! The dashboard's pages: overview, monitor detail, the monitor form, incidents, login and
//! first-run setup.

use super::svg::{self, Bar, Series};
use super::{Ago, Me, Viewer, When, format_ms, format_percent, format_time, render};
use crate::{AppState, Problem};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use pingtower_core::stats::{LatencyFigures, Rollup, RollupLevel};
use pingtower_core::{
    CheckStatus, Incident, IncidentStatus, Monitor, MonitorId, MonitorStatus, Timestamp,
};
use pingtower_engine::figures;
use pingtower_store::{IncidentFilter, MonitorFilter, MonitorOrder, PageRequest};
use serde::Deserialize;
use std::collections::HashMap;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// Rows of the overview per page: enough to scan, few enough to draw at once.
const OVERVIEW_PAGE: u32 = 100;

fn now_ms() -> i64 {
    pingtower_engine::now().as_millis()
}

/// The 90 daily bars of each monitor (oldest first), from the day rollups (today's is kept
/// current by every fold).
pub(crate) async fn daily_bars(
    state: &AppState,
    monitors: &[&Monitor],
    now: i64,
    compact: bool,
) -> Result<HashMap<i64, String>, Problem> {
    let today = RollupLevel::Day.floor(now);
    let first = today - 89 * DAY;
    let seqs: Vec<i64> = monitors.iter().map(|m| m.seq).collect();
    let mut by_seq: HashMap<i64, HashMap<i64, Rollup>> = HashMap::new();
    for row in state
        .store
        .rollups(&seqs, RollupLevel::Day, first, today)
        .await?
    {
        by_seq
            .entry(row.monitor_seq)
            .or_default()
            .insert(row.bucket, row.rollup);
    }
    // Today's bar also counts what the fold has not reached yet.
    for (seq, r) in figures::per_monitor(state.store.as_ref(), &seqs, today, now + 1).await? {
        by_seq.entry(seq).or_default().insert(today, r);
    }
    let mut out = HashMap::new();
    for m in monitors {
        let days = by_seq.get(&m.seq);
        let bars: Vec<Bar> = (0..90)
            .map(|i| {
                let day = first + i * DAY;
                let date = Timestamp::from_millis(day).to_datetime().format("%Y-%m-%d");
                match days.and_then(|d| d.get(&day)).filter(|r| r.checks() > 0) {
                    None => Bar {
                        class: "none",
                        title: format!("{date}: no data"),
                    },
                    Some(r) => Bar {
                        class: if r.down > 0 {
                            "down"
                        } else if r.degraded > 0 {
                            "degraded"
                        } else {
                            "up"
                        },
                        title: format!("{date}: {} up", format_percent(r.uptime_percent())),
                    },
                }
            })
            .collect();
        // The figures the bars show, for screen readers and as the tooltip of a compact one.
        let n = |class: &str| bars.iter().filter(|b| b.class == class).count();
        let label = format!(
            "last 90 days: {} up, {} degraded, {} with downtime, {} without data",
            n("up"),
            n("degraded"),
            n("down"),
            n("none")
        );
        let drawn = if compact {
            svg::bars_compact(&bars, &label)
        } else {
            svg::bars(&bars, &label)
        };
        out.insert(m.seq, drawn);
    }
    Ok(out)
}

// ---- overview ------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct OverviewQuery {
    status: Option<String>,
    tag: Option<String>,
    q: Option<String>,
    /// `attention` (the default) or `newest`.
    order: Option<String>,
    cursor: Option<String>,
}

/// A group's row on the overview: its worst status, and its members on this page.
pub struct GroupHead {
    /// `g0`, `g1`…: ties the row to its members' rows.
    key: String,
    name: String,
    status: &'static str,
    /// `3 monitors: 1 down, 2 up`.
    summary: String,
}

pub struct OverviewRow {
    /// Set on a group's first row: the group's own row goes before it.
    head: Option<GroupHead>,
    /// The key of its group's row (`""`: in no group).
    group: String,
    id: String,
    name: String,
    kind: &'static str,
    status: &'static str,
    /// Why it is down: its open incident's reason.
    reason: String,
    checked: Ago,
    latency: String,
    tags: Vec<String>,
    /// The tags as JSON, for the bulk tagging of the script.
    tags_json: String,
    /// The latest checks, a bar each.
    beats: String,
    spark: String,
    bars: String,
}

pub struct Count {
    status: &'static str,
    n: i64,
    active: bool,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    me: Me,
    counts: Vec<Count>,
    total: i64,
    rows: Vec<OverviewRow>,
    status: String,
    tag: String,
    q: String,
    newest: bool,
    next: Option<String>,
    /// Editors and above select monitors to act on many at once.
    can_edit: bool,
}

pub async fn overview(
    State(state): State<AppState>,
    v: Viewer,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, Problem> {
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<MonitorStatus>().ok());
    let tag = q.tag.clone().filter(|t| !t.trim().is_empty());
    let search = q.q.clone().filter(|t| !t.trim().is_empty());
    let newest = q.order.as_deref() == Some("newest");
    let filter = MonitorFilter {
        status,
        tag: tag.clone(),
        search: search.clone(),
        order: if newest {
            MonitorOrder::Newest
        } else {
            MonitorOrder::Attention
        },
    };
    let page = PageRequest {
        limit: OVERVIEW_PAGE,
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    };
    let (found, counted) = tokio::try_join!(
        state.store.list_monitors(v.p.tenant, &filter, &page),
        state.store.count_monitors(v.p.tenant),
    )?;
    let now = now_ms();
    let monitors: Vec<&Monitor> = found.items.iter().collect();
    let seqs: Vec<i64> = monitors.iter().map(|m| m.seq).collect();

    // Latest latency: the newest result of the last hour; hourly p50 for the sparkline.
    let troubled: Vec<MonitorId> = monitors
        .iter()
        .filter(|m| matches!(m.status, MonitorStatus::Down | MonitorStatus::Degraded))
        .map(|m| m.id)
        .collect();
    let (points, hours, bars, open) = tokio::try_join!(
        async {
            state
                .store
                .result_points(&seqs, now - HOUR, now + 1)
                .await
                .map_err(Problem::from)
        },
        async {
            state
                .store
                .rollups(
                    &seqs,
                    RollupLevel::Hour,
                    RollupLevel::Hour.floor(now) - 23 * HOUR,
                    now + 1,
                )
                .await
                .map_err(Problem::from)
        },
        daily_bars(&state, &monitors, now, true),
        async {
            if troubled.is_empty() {
                return Ok(Vec::new());
            }
            state
                .store
                .incidents_between(
                    v.p.tenant,
                    Some(&troubled),
                    Timestamp::from_millis(now),
                    Timestamp::from_millis(now + 1),
                )
                .await
                .map_err(Problem::from)
        },
    )?;
    // The reason of each troubled monitor's open incident (the newest, should there be two).
    let mut reasons: HashMap<MonitorId, &Incident> = HashMap::new();
    for i in open.iter().filter(|i| i.resolved_at.is_none()) {
        let kept = reasons.entry(i.monitor_id).or_insert(i);
        if i.opened_at > kept.opened_at {
            *kept = i;
        }
    }
    // Each monitor's results of the last hour, oldest first.
    let mut recent: HashMap<i64, Vec<(i64, CheckStatus, i64)>> = HashMap::new();
    for p in points {
        recent
            .entry(p.monitor_seq)
            .or_default()
            .push((p.checked_at, p.status, p.latency_us));
    }
    for list in recent.values_mut() {
        list.sort_by_key(|(at, _, _)| *at);
    }
    let latest: HashMap<i64, (i64, CheckStatus, i64)> = recent
        .iter()
        .filter_map(|(seq, list)| Some((*seq, *list.last()?)))
        .collect();
    let first_hour = RollupLevel::Hour.floor(now) - 23 * HOUR;
    let mut spark: HashMap<i64, Vec<Option<f64>>> = HashMap::new();
    for row in hours {
        let i = ((row.bucket - first_hour) / HOUR) as usize;
        if let Some(slot) = spark
            .entry(row.monitor_seq)
            .or_insert_with(|| vec![None; 24])
            .get_mut(i)
        {
            *slot = row.rollup.latency.quantile(0.5).map(|us| us / 1000.0);
        }
    }
    // The last two hours are folded into rollups only once they close (and a little after):
    // until then their points come from the results themselves, so a monitor made a minute
    // ago already has a sparkline.
    for (seq, list) in &recent {
        let slots = spark.entry(*seq).or_insert_with(|| vec![None; 24]);
        for (i, start) in [
            (22usize, first_hour + 22 * HOUR),
            (23, first_hour + 23 * HOUR),
        ] {
            if slots[i].is_some() {
                continue;
            }
            let mut latencies: Vec<i64> = list
                .iter()
                .filter(|(at, status, _)| {
                    *at >= start && *at < start + HOUR && *status != CheckStatus::Down
                })
                .map(|(_, _, us)| *us)
                .collect();
            if !latencies.is_empty() {
                latencies.sort_unstable();
                slots[i] = Some(latencies[latencies.len() / 2] as f64 / 1000.0);
            }
        }
    }
    let rows: Vec<OverviewRow> = monitors
        .iter()
        .map(|m| OverviewRow {
            head: None,
            group: String::new(),
            id: m.id.to_string(),
            name: m.name.clone(),
            kind: m.kind.as_str(),
            status: m.status.as_str(),
            reason: reasons
                .get(&m.id)
                .and_then(|i| i.reason.clone())
                .unwrap_or_default(),
            checked: Ago {
                at: latest
                    .get(&m.seq)
                    .map(|(at, _, _)| Timestamp::from_millis(*at)),
                now: Timestamp::from_millis(now),
            },
            latency: match latest.get(&m.seq) {
                Some((_, CheckStatus::Down, _)) => "–".to_owned(),
                Some((_, _, us)) => format_ms(*us as f64 / 1000.0),
                None => "–".to_owned(),
            },
            tags: m.tags.clone(),
            tags_json: serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into()),
            beats: svg::beats_of(
                &recent
                    .get(&m.seq)
                    .map(|list| {
                        list[list.len().saturating_sub(OVERVIEW_BEATS)..]
                            .iter()
                            .map(|(at, status, us)| svg::Beat {
                                // Within the last hour: the time says enough.
                                at: Timestamp::from_millis(*at)
                                    .to_datetime()
                                    .format("%H:%M:%S UTC")
                                    .to_string(),
                                status: status.as_str(),
                                latency: if *status == CheckStatus::Down {
                                    String::new()
                                } else {
                                    format_ms(*us as f64 / 1000.0)
                                },
                                reason: String::new(),
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                "latest checks",
                OVERVIEW_BEATS,
            ),
            spark: svg::sparkline(
                spark.get(&m.seq).map_or(&[][..], Vec::as_slice),
                "median latency per hour, last 24 hours",
            ),
            bars: bars.get(&m.seq).cloned().unwrap_or_default(),
        })
        .collect();
    let rows = grouped(rows, &monitors);
    let n_of = |s: MonitorStatus| {
        counted
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    let counts = [
        MonitorStatus::Down,
        MonitorStatus::Degraded,
        MonitorStatus::Up,
        MonitorStatus::Pending,
        MonitorStatus::Maintenance,
        MonitorStatus::Paused,
    ]
    .into_iter()
    .map(|s| Count {
        status: s.as_str(),
        n: n_of(s),
        active: status == Some(s),
    })
    .collect();
    Ok(render(&OverviewPage {
        me: v.me.clone(),
        counts,
        total: counted.iter().map(|(_, n)| n).sum(),
        rows,
        status: status.map_or(String::new(), |s| s.as_str().to_owned()),
        tag: tag.unwrap_or_default(),
        q: search.unwrap_or_default(),
        newest,
        can_edit: v.p.role.at_least(pingtower_core::Role::Editor),
        next: found.next_cursor.map(|c| {
            let mut qs = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = status {
                qs.append_pair("status", s.as_str());
            }
            if let Some(t) = &q.tag {
                qs.append_pair("tag", t);
            }
            if let Some(t) = &q.q {
                qs.append_pair("q", t);
            }
            if newest {
                qs.append_pair("order", "newest");
            }
            qs.append_pair("cursor", &c.0);
            qs.finish()
        }),
    }))
}

// ---- monitor detail ------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct DetailQuery {
    window: Option<String>,
}

pub struct Uptime {
    label: &'static str,
    value: String,
}

pub struct ResultRow {
    time: When,
    status: &'static str,
    latency: String,
    region: String,
    reason: String,
    timings: String,
}

pub struct IncidentRow {
    id: String,
    monitor_id: String,
    monitor: String,
    status: &'static str,
    reason: String,
    opened: When,
    resolved: When,
    acknowledged_by: String,
    acknowledged_at: When,
    can_ack: bool,
}

impl IncidentRow {
    fn of(i: &Incident, monitor: &str) -> Self {
        Self {
            id: i.id.to_string(),
            monitor_id: i.monitor_id.to_string(),
            monitor: monitor.to_owned(),
            status: i.status.as_str(),
            reason: i.reason.clone().unwrap_or_default(),
            opened: When::at(i.opened_at),
            resolved: When(i.resolved_at),
            acknowledged_by: i.acknowledged_by.clone().unwrap_or_default(),
            acknowledged_at: When(i.acknowledged_at),
            can_ack: i.status == IncidentStatus::Open,
        }
    }
}

pub struct Window {
    key: &'static str,
    active: bool,
}

#[derive(Template)]
#[template(path = "monitor.html")]
pub struct MonitorPage {
    me: Me,
    id: String,
    name: String,
    kind: &'static str,
    target: String,
    status: &'static str,
    enabled: bool,
    interval: String,
    tags: Vec<String>,
    uptimes: Vec<Uptime>,
    latency: Option<LatencyFigures>,
    windows: Vec<Window>,
    chart: String,
    bars: String,
    results: Vec<ResultRow>,
    /// The latest checks, a bar each.
    beats: String,
    incidents: Vec<IncidentRow>,
    /// A heartbeat's push URL, whole, to copy into the job that pings it.
    push_url: Option<String>,
    /// Its public badges, when a status page publishes it.
    badges: Vec<BadgeSnippet>,
    /// The status pages that publish it (name, URL).
    published: Vec<(String, String)>,
}

/// Beats a row of the overview shows (a monitor's page shows [`svg::BEATS`]).
const OVERVIEW_BEATS: usize = 20;

/// Most results read to draw the last hour (one a second).
const RECENT_RESULTS: usize = 3_600;

/// The monitor's results since `since`, newest first, at most [`RECENT_RESULTS`].
async fn recent_results(
    state: &AppState,
    p: &crate::auth::Principal,
    id: MonitorId,
    since: i64,
) -> Result<Vec<pingtower_core::CheckResult>, Problem> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(pingtower_core::page::MAX_LIMIT);
    loop {
        let got = state.store.list_results(p.tenant, id, &page).await?;
        let done = got.next_cursor.is_none();
        for r in got.items {
            if r.checked_at.as_millis() < since || out.len() >= RECENT_RESULTS {
                return Ok(out);
            }
            out.push(r);
        }
        match got.next_cursor {
            Some(c) if !done => page.cursor = Some(c.0),
            _ => return Ok(out),
        }
    }
}

/// Where the server is reached: `PINGTOWER_PUBLIC_URL`, or else the request's own host and
/// scheme (the page is shown to the one who asked, so a forged header only misleads its
/// sender).
pub(crate) fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if let Some(url) = &state.auth.public_url {
        return url.clone();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    // Behind a TLS-terminating proxy the request came in as https: say so, or jobs would send
    // the token in the clear (or follow a redirect `curl -fsS` does not follow).
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// What a monitor watches, in a few words.
fn target_of(m: &Monitor) -> String {
    if m.kind == pingtower_core::MonitorKind::Event {
        return pingtower_core::event_rule::EventRule::read(&m.settings)
            .map_or_else(|_| "events".to_owned(), |r| r.describe());
    }
    let s = |k: &str| {
        m.settings
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let port = m.settings.get("port").and_then(serde_json::Value::as_u64);
    s("url")
        .or_else(|| match (s("host"), port) {
            (Some(h), Some(p)) => Some(format!("{h}:{p}")),
            (Some(h), None) => Some(h),
            _ => None,
        })
        .or_else(|| s("query"))
        .unwrap_or_else(|| "push".to_owned())
}

fn duration_text(ms: i64) -> String {
    match ms {
        ms if ms % DAY == 0 => format!("{} d", ms / DAY),
        ms if ms % HOUR == 0 => format!("{} h", ms / HOUR),
        ms if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        ms => format!("{} s", ms / 1000),
    }
}

pub async fn monitor(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, Problem> {
    let id: MonitorId = crate::http::parse_id(&id, "monitor")?;
    let m = crate::monitors::fetch(&state, &v.p, id).await?;
    let now = now_ms();
    // A monitor made within the last two hours opens on its last hour, drawn from its results.
    let window = match q.window.as_deref() {
        Some("1h") => "1h",
        Some("24h") => "24h",
        Some("7d") => "7d",
        Some("30d") => "30d",
        Some("90d") => "90d",
        _ if now - m.created_at.as_millis() < 2 * HOUR => "1h",
        _ => "24h",
    };
    let mut uptimes = Vec::new();
    let mut latency = None;
    for (label, span) in [
        ("24 h", DAY),
        ("7 d", 7 * DAY),
        ("30 d", 30 * DAY),
        ("90 d", 90 * DAY),
    ] {
        let r = figures::total(state.store.as_ref(), &[m.seq], now - span, now).await?;
        if label == "24 h" {
            latency = LatencyFigures::of(&r.latency);
        }
        uptimes.push(Uptime {
            label,
            value: format_percent(r.uptime_percent()),
        });
    }

    // The chart: the last hour by minute from the results themselves (minute rollups are
    // folded two minutes after their minute, so a new monitor would have none), hourly
    // buckets up to a week, daily beyond.
    let (level, buckets) = match window {
        "1h" => (RollupLevel::Minute, 60),
        "7d" => (RollupLevel::Hour, 7 * 24),
        "30d" => (RollupLevel::Day, 30),
        "90d" => (RollupLevel::Day, 90),
        _ => (RollupLevel::Hour, 24),
    };
    let first = level.floor(now) - (buckets - 1) * level.millis();
    let mut by_bucket: HashMap<i64, Rollup> = HashMap::new();
    if level == RollupLevel::Minute {
        for r in recent_results(&state, &v.p, m.id, first).await? {
            by_bucket
                .entry(level.floor(r.checked_at.as_millis()))
                .or_default()
                .add(r.status, r.latency_us, false);
        }
    } else {
        for r in state.store.rollups(&[m.seq], level, first, now + 1).await? {
            by_bucket.insert(r.bucket, r.rollup);
        }
    }
    let series_of = |q: f64| -> Vec<Option<f64>> {
        (0..buckets)
            .map(|i| {
                by_bucket
                    .get(&(first + i * level.millis()))
                    .and_then(|r| r.latency.quantile(q))
                    .map(|us| us / 1000.0)
            })
            .collect()
    };
    let label = |t: i64| {
        let d = Timestamp::from_millis(t).to_datetime();
        match level {
            RollupLevel::Minute => d.format("%H:%M").to_string(),
            RollupLevel::Hour => d.format("%m-%d %H:00").to_string(),
            RollupLevel::Day => d.format("%Y-%m-%d").to_string(),
        }
    };
    let chart = svg::chart(
        &[
            Series {
                name: "p50",
                class: "p50",
                values: series_of(0.5),
            },
            Series {
                name: "p95",
                class: "p95",
                values: series_of(0.95),
            },
            Series {
                name: "p99",
                class: "p99",
                values: series_of(0.99),
            },
        ],
        &label(first),
        // The axis is drawn on the server, in UTC: it says so.
        &match level {
            RollupLevel::Day => label(level.floor(now)),
            _ => format!("{} UTC", label(level.floor(now))),
        },
        "latency percentiles",
    );
    let bars = daily_bars(&state, &[&m], now, false)
        .await?
        .remove(&m.seq)
        .unwrap_or_default();
    let latest = state
        .store
        .list_results(v.p.tenant, m.id, &PageRequest::first(svg::BEATS as u32))
        .await?
        .items;
    let beats = svg::beats(
        &latest
            .iter()
            .rev()
            .map(|r| svg::Beat {
                at: format_time(r.checked_at),
                status: r.status.as_str(),
                latency: if r.status == CheckStatus::Down {
                    String::new()
                } else {
                    format_ms(r.latency_us as f64 / 1000.0)
                },
                reason: r.reason.clone().unwrap_or_default(),
            })
            .collect::<Vec<_>>(),
        "latest checks",
    );
    let results = latest
        .into_iter()
        .take(25)
        .map(|r| ResultRow {
            time: When::at(r.checked_at),
            status: r.status.as_str(),
            latency: format_ms(r.latency_us as f64 / 1000.0),
            region: r.region,
            reason: r.reason.unwrap_or_default(),
            timings: timings_text(r.details.as_ref()),
        })
        .collect();
    let incidents = state
        .store
        .list_incidents(
            v.p.tenant,
            &IncidentFilter {
                monitor_id: Some(m.id),
                status: None,
            },
            &PageRequest::first(20),
        )
        .await?
        .items
        .iter()
        .map(|i| IncidentRow::of(i, &m.name))
        .collect();
    let base = base_url(&state, &headers);
    let (badges, published) = badges_of(&state, &v, &m, &base).await?;
    Ok(render(&MonitorPage {
        me: v.me.clone(),
        id: m.id.to_string(),
        name: m.name.clone(),
        kind: m.kind.as_str(),
        target: target_of(&m),
        status: m.status.as_str(),
        enabled: m.enabled,
        interval: duration_text(m.interval_ms),
        tags: m.tags.clone(),
        uptimes,
        latency,
        windows: ["1h", "24h", "7d", "30d", "90d"]
            .into_iter()
            .map(|key| Window {
                key,
                active: key == window,
            })
            .collect(),
        chart,
        bars,
        results,
        beats,
        incidents,
        // The token lets its holder mark the monitor up or down: editors and above only, as
        // in the JSON API.
        push_url: m
            .push_token
            .as_ref()
            .filter(|_| v.p.role.at_least(pingtower_core::Role::Editor))
            .map(|t| format!("{base}/api/v1/push/{t}")),
        badges,
        published,
    }))
}

/// One public badge of a monitor, with what to paste to show it elsewhere.
pub struct BadgeSnippet {
    key: &'static str,
    label: &'static str,
    url: String,
    markdown: String,
    html: String,
}

/// The badges of a monitor that status pages publish (badges are public only then), linking
/// to the first of those pages; and those pages.
async fn badges_of(
    state: &AppState,
    v: &Viewer,
    m: &Monitor,
    base: &str,
) -> Result<(Vec<BadgeSnippet>, Vec<(String, String)>), Problem> {
    let id = m.id.to_string();
    let pages: Vec<(String, String)> = state
        .store
        .list_resources(v.p.tenant, pingtower_core::ResourceKind::StatusPage)
        .await?
        .into_iter()
        .filter(|p| crate::resources::lists(&p.spec["monitors"], &id))
        .filter_map(|p| Some((p.name, format!("{base}/status/{}", p.slug?))))
        .collect();
    let Some((_, page)) = pages.first() else {
        return Ok((Vec::new(), pages));
    };
    let badges = [
        ("status", "Status"),
        ("uptime", "Uptime, 30 days"),
        ("latency", "Median latency, 24 hours"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let url = format!("{base}/badge/{id}/{key}.svg");
        BadgeSnippet {
            key,
            label,
            markdown: format!("[![{label}]({url})]({page})"),
            html: format!(r#"<a href="{page}"><img src="{url}" alt="{label}"></a>"#),
            url,
        }
    })
    .collect();
    Ok((badges, pages))
}

/// Folds the page's monitors of one group under the group's row, placed where its first
/// member was (in the attention order, its worst), its members after it in their order.
fn grouped(rows: Vec<OverviewRow>, monitors: &[&Monitor]) -> Vec<OverviewRow> {
    let group_of = |i: usize| pingtower_core::check::group_of(&monitors[i].settings);
    if !(0..rows.len()).any(|i| group_of(i).is_some()) {
        return rows;
    }
    let mut groups = 0;
    let mut slots: Vec<Option<OverviewRow>> = rows.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for i in 0..slots.len() {
        let Some(group) = group_of(i) else {
            out.extend(slots[i].take());
            continue;
        };
        if slots[i].is_none() {
            continue;
        }
        let members: Vec<usize> = (i..slots.len())
            .filter(|&j| group_of(j) == Some(group))
            .collect();
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for &j in &members {
            let st = monitors[j].status.as_str();
            match counts.iter_mut().find(|(s, _)| *s == st) {
                Some((_, n)) => *n += 1,
                None => counts.push((st, 1)),
            }
        }
        let key = format!("g{groups}");
        groups += 1;
        // The worst of its members here, whatever the page's order.
        let worst = members
            .iter()
            .map(|&j| monitors[j].status)
            .min_by_key(|s| MonitorOrder::rank(*s))
            .unwrap_or(monitors[i].status);
        let mut head = Some(GroupHead {
            key: key.clone(),
            name: group.to_owned(),
            status: worst.as_str(),
            summary: format!(
                "{} monitor{}: {}",
                members.len(),
                if members.len() == 1 { "" } else { "s" },
                counts
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        for &j in &members {
            if let Some(mut row) = slots[j].take() {
                row.group = key.clone();
                // On the first member's row: the group's own row goes before it.
                row.head = head.take();
                out.push(row);
            }
        }
    }
    out
}

/// `dns 1.2 ms · connect 0.3 ms · ttfb 4 ms` from a result's details.
fn timings_text(details: Option<&serde_json::Value>) -> String {
    let Some(t) = details.and_then(|d| d.get("timings")) else {
        return String::new();
    };
    [
        ("dns", "dns_us"),
        ("connect", "connect_us"),
        ("tls", "tls_us"),
        ("ttfb", "ttfb_us"),
    ]
    .into_iter()
    .filter_map(|(name, key)| {
        t.get(key)
            .and_then(serde_json::Value::as_f64)
            .map(|us| format!("{name} {}", format_ms(us / 1000.0)))
    })
    .collect::<Vec<_>>()
    .join(" · ")
}

// ---- the monitor form ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "monitor_form.html")]
pub struct MonitorFormPage {
    me: Me,
    title: String,
    /// The monitor being edited; `None` for a new one.
    id: Option<String>,
    version: i64,
    kind: String,
    /// The fields' values as the form shows them (never credentials).
    values: HashMap<String, String>,
    /// The credentials stored (shown as set, never their values).
    secrets_set: Vec<String>,
    /// A word above the form (a clone's credentials that were not copied).
    note: String,
    /// The tenant's channels (id, name, whether the monitor's own rule sends to it).
    channels: Vec<(String, String, bool)>,
    /// The monitor's own rule, which the form's channels are kept as (`""`: none yet).
    notify_rule: String,
}

/// The channels the monitor form offers, and the monitor's own rule if it has one (the rule
/// named [`crate::resources::own_rule_name`] that selects exactly this monitor).
async fn notify_choices(
    state: &AppState,
    v: &Viewer,
    monitor: Option<&Monitor>,
) -> Result<(Vec<(String, String, bool)>, String), Problem> {
    use pingtower_core::ResourceKind;
    let (channels, rules) = tokio::try_join!(
        state
            .store
            .list_resources(v.p.tenant, ResourceKind::Channel),
        async {
            match monitor {
                Some(_) => {
                    state
                        .store
                        .list_resources(v.p.tenant, ResourceKind::Rule)
                        .await
                }
                None => Ok(Vec::new()),
            }
        },
    )?;
    let own = monitor.and_then(|m| {
        let id = m.id.to_string();
        rules
            .into_iter()
            .find(|r| crate::resources::is_own_rule(r, &id, &m.name))
    });
    let chosen = |id: &str| {
        own.as_ref()
            .is_some_and(|r| crate::resources::lists(&r.spec["channels"], id))
    };
    let list = channels
        .into_iter()
        .map(|c| {
            let id = c.id.to_string();
            let on = chosen(&id);
            (id, c.name, on)
        })
        .collect();
    Ok((list, own.map(|r| r.id.to_string()).unwrap_or_default()))
}

impl MonitorFormPage {
    /// A field's value, or nothing.
    fn v(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// Whether a credential is stored.
    fn is_set(&self, key: &str) -> bool {
        self.secrets_set.iter().any(|s| s == key)
    }
}

/// A new monitor's form; `?kind=event&event_names=…` (the Events page's "Create an alert")
/// fills in an event monitor.
pub async fn new_monitor(
    State(state): State<AppState>,
    v: Viewer,
    axum::extract::Query(given): axum::extract::Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let mut values: HashMap<String, String> = [
        ("interval_seconds", "60"),
        ("timeout_seconds", "10"),
        ("down_after", "1"),
        ("up_after", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let event = given.get("kind").is_some_and(|k| k == "event");
    if event {
        let names = given.get("event_names").cloned().unwrap_or_default();
        values.insert("name".into(), format!("{names} rate"));
        values.insert("event_names".into(), names);
        values.insert("condition_op".into(), "above".into());
        values.insert("condition_minutes".into(), "5".into());
        values.insert("interval_seconds".into(), "60".into());
    }
    let (channels, notify_rule) = notify_choices(&state, &v, None).await?;
    Ok(render(&MonitorFormPage {
        me: v.me.clone(),
        title: "New monitor".into(),
        id: None,
        version: 0,
        kind: if event { "event" } else { "http" }.into(),
        values,
        secrets_set: Vec::new(),
        note: String::new(),
        channels,
        notify_rule,
    }))
}

/// A monitor's settings as the form's fields (never its credentials).
fn form_values(m: &Monitor) -> HashMap<String, String> {
    let mut values = crate::monitors::writable_json(m)
        .into_iter()
        .map(|(k, value)| {
            let text = match (k.as_str(), value) {
                (_, serde_json::Value::String(s)) => s,
                ("assertions", serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                (_, serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                ("headers", serde_json::Value::Object(h)) => h
                    .iter()
                    .map(|(name, v)| format!("{name}: {}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                (_, serde_json::Value::Null) => String::new(),
                (_, other) => other.to_string(),
            };
            (k, text)
        })
        .collect::<HashMap<String, String>>();
    // An event monitor's query and condition, as the form's fields.
    if let Ok(rule) = pingtower_core::event_rule::EventRule::read(&m.settings) {
        use pingtower_core::event_rule::{ConditionOp, NameFilter};
        if let NameFilter::Only(names) = &rule.names {
            values.insert("event_names".into(), names.join(", "));
        }
        let op = match rule.op {
            ConditionOp::Above => "above",
            ConditionOp::Below => "below",
            ConditionOp::Absent => "absent",
        };
        values.insert("condition_op".into(), op.into());
        values.insert("condition_threshold".into(), rule.threshold.to_string());
        values.insert("condition_minutes".into(), rule.minutes.to_string());
    }
    values
}

pub async fn edit_monitor(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id: MonitorId = crate::http::parse_id(&id, "monitor")?;
    let m = crate::monitors::fetch(&state, &v.p, id).await?;
    let (channels, notify_rule) = notify_choices(&state, &v, Some(&m)).await?;
    Ok(render(&MonitorFormPage {
        channels,
        notify_rule,
        me: v.me.clone(),
        title: format!("Edit {}", m.name),
        id: Some(m.id.to_string()),
        version: m.version,
        kind: m.kind.as_str().to_owned(),
        values: form_values(&m),
        secrets_set: crate::monitors::stored_secrets(&m.settings),
        note: String::new(),
    }))
}

/// The new-monitor form filled with a monitor's settings, named "… (copy)". Its credentials
/// are not copied (they are never put in a page): the form says so.
pub async fn clone_monitor(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id: MonitorId = crate::http::parse_id(&id, "monitor")?;
    let m = crate::monitors::fetch(&state, &v.p, id).await?;
    let mut values = form_values(&m);
    values.insert("name".into(), format!("{} (copy)", m.name));
    let secrets = crate::monitors::stored_secrets(&m.settings);
    // A clone starts without notifications of its own.
    let (channels, notify_rule) = notify_choices(&state, &v, None).await?;
    Ok(render(&MonitorFormPage {
        channels,
        notify_rule,
        me: v.me.clone(),
        title: format!("Clone {}", m.name),
        id: None,
        version: 0,
        kind: m.kind.as_str().to_owned(),
        values,
        secrets_set: Vec::new(),
        note: if secrets.is_empty() {
            String::new()
        } else {
            format!(
                "Credentials are not copied ({}): give them again.",
                secrets.join(", ").replace('_', " ")
            )
        },
    }))
}

// ---- incidents -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "incidents.html")]
pub struct IncidentsPage {
    me: Me,
    incidents: Vec<IncidentRow>,
}

pub async fn incidents(State(state): State<AppState>, v: Viewer) -> Result<Response, Problem> {
    let found = state
        .store
        .list_incidents(
            v.p.tenant,
            &IncidentFilter::default(),
            &PageRequest::first(100),
        )
        .await?
        .items;
    let mut ids: Vec<MonitorId> = found.iter().map(|i| i.monitor_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names: HashMap<MonitorId, String> = state
        .store
        .monitors_by_ids(&ids)
        .await?
        .into_iter()
        .filter(|m| m.tenant_id == v.p.tenant)
        .map(|m| (m.id, m.name))
        .collect();
    let incidents = found
        .iter()
        .map(|i| {
            IncidentRow::of(
                i,
                names.get(&i.monitor_id).map_or("(deleted)", String::as_str),
            )
        })
        .collect();
    Ok(render(&IncidentsPage {
        me: v.me.clone(),
        incidents,
    }))
}

pub struct TimelineRow {
    at: When,
    kind: String,
    actor: String,
    message: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
pub struct IncidentPage {
    me: Me,
    i: IncidentRow,
    timeline: Vec<TimelineRow>,
}

pub async fn incident(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id: pingtower_core::IncidentId = crate::http::parse_id(&id, "incident")?;
    let found = state
        .store
        .get_incident(v.p.tenant, id)
        .await
        .map_err(|e| crate::http::not_found_as(e, "incident"))?;
    let name = state
        .store
        .get_monitor(v.p.tenant, found.monitor_id)
        .await
        .map(|m| m.name)
        .unwrap_or_else(|_| "(deleted)".to_owned());
    let timeline = state
        .store
        .incident_events(v.p.tenant, found.id)
        .await?
        .into_iter()
        .map(|e| TimelineRow {
            at: When::at(e.at),
            kind: e.kind.as_str().replace('_', " "),
            actor: e.actor.unwrap_or_default(),
            message: e.message.unwrap_or_default(),
        })
        .collect();
    Ok(render(&IncidentPage {
        me: v.me.clone(),
        i: IncidentRow::of(&found, &name),
        timeline,
    }))
}

// ---- login and setup -----------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    next: String,
    oidc: bool,
}

pub async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if matches!(state.store.count_users().await, Ok(0)) {
        return Redirect::to("/setup").into_response();
    }
    render(&LoginPage {
        next: crate::browser_login::safe_return(q.next.as_deref()),
        oidc: state
            .auth
            .oidc
            .as_ref()
            .is_some_and(|o| o.config().client_id.is_some()),
    })
}

pub struct InvitationView {
    tenant: String,
    role: String,
    email: String,
}

#[derive(Template)]
#[template(path = "invite.html")]
pub struct InvitePage {
    invitation: Option<InvitationView>,
    token: String,
    /// This page, to come back to after logging in.
    here: String,
    /// Where to go once accepted.
    then: String,
    /// Logged in (by cookie) as the invited email.
    signed_in: bool,
    csrf: Option<String>,
}

/// An invitation's page: who invites whom, and a form to accept it.
pub async fn invite(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    caller: Result<crate::auth::Caller, Problem>,
    Path(token): Path<String>,
) -> Result<Response, Problem> {
    let now = pingtower_engine::now();
    let found = state
        .store
        .find_invitation(&crate::auth::hash_secret(&token))
        .await?
        .filter(|i| i.accepted_at.is_none() && now < i.expires_at);
    let mut page = InvitePage {
        invitation: None,
        here: format!("/invite/{token}"),
        token,
        then: "/login".into(),
        signed_in: false,
        csrf: None,
    };
    if let Some(i) = found {
        let tenant = state.store.get_tenant(i.tenant_id).await?;
        // Logged in as the invited email: accepting needs nothing more.
        if let (Ok(crate::auth::Caller::User { user, .. }), Some(session)) =
            (&caller, crate::auth::session_cookie(&headers))
            && user.email == i.email
        {
            page.signed_in = true;
            page.then = "/".into();
            page.csrf = Some(crate::auth::csrf_token(&state.auth, &session));
        }
        page.invitation = Some(InvitationView {
            tenant: tenant.name,
            role: i.role.as_str().to_owned(),
            email: i.email,
        });
    }
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    token: String,
    /// The link is the installation's and has not expired.
    valid: bool,
}

/// A mailed registration link's page: the password chosen when registering makes the account.
pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let valid =
        crate::account_mail::open(&state.auth.keys, &token, pingtower_engine::now()).is_some();
    render(&ConfirmPage { token, valid })
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage {
    /// The installation sends mail.
    mail: bool,
}

pub async fn forgot(State(state): State<AppState>) -> Response {
    render(&ForgotPage {
        mail: state.auth.mail.is_some(),
    })
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    token: String,
    /// In time and sealed by this installation (whether it was used shows on sending).
    valid: bool,
}

pub async fn reset(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let valid = crate::account_mail::open_reset(&state.auth.keys, &token, pingtower_engine::now())
        .is_some();
    render(&ResetPage { token, valid })
}

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {}

pub async fn setup(State(state): State<AppState>) -> Response {
    match state.store.count_users().await {
        Ok(0) => render(&SetupPage {}),
        _ => Redirect::to("/login").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_only_returns_to_this_server() {
        use crate::browser_login::safe_return;
        assert_eq!(
            safe_return(Some("/monitors/x?window=7d")),
            "/monitors/x?window=7d"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(safe_return(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return(None), "/");
    }

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        assert_eq!(duration_text(30_000), "30 s");
        assert_eq!(duration_text(120_000), "2 min");
        assert_eq!(duration_text(7_200_000), "2 h");
        assert_eq!(duration_text(DAY), "1 d");
    }
}
