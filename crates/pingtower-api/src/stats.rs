//! Statistics: `/api/v1/monitors/{id}/stats` (and `/daily`), and the tenant's report over all
//! its monitors or those with a tag, `/api/v1/stats` (and `/daily`). Every answer is JSON, or
//! CSV with `format=csv` or `Accept: text/csv`.

use crate::auth::Principal;
use crate::http::parse_id;
use crate::input::Params;
use crate::{AppState, FieldError, Problem};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use pingtower_core::stats::{LatencyFigures, Rollup, RollupLevel};
use pingtower_core::{Monitor, MonitorId, Timestamp};
use pingtower_engine::figures::{self, IncidentFigures, SloFigures};
use pingtower_store::{MonitorFilter, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
const MAX_WINDOW_MS: i64 = 3_660 * DAY_MS;

impl From<pingtower_engine::EngineError> for Problem {
    fn from(e: pingtower_engine::EngineError) -> Self {
        match e {
            pingtower_engine::EngineError::Store(e) => e.into(),
            other => Problem::internal(format_args!("statistics failed: {other}")),
        }
    }
}

/// The window and options of a statistics request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// The window up to now: `1h`, `24h`, `7d`, `30d`, `90d`, `1y`, or any whole number of
    /// `m`, `h`, `d`, `w` or `y` (24h by default). Windows over a day start on the hour, over
    /// 90 days on the day (UTC); the answer says which `from` it used.
    pub window: Option<String>,
    /// Start of a window given by its ends (RFC 3339), with `to`, instead of `window`.
    pub from: Option<String>,
    /// End of a window given by its ends (RFC 3339; not after now).
    pub to: Option<String>,
    /// An SLO target in percent (e.g. 99.9): adds the error budget and what is left of it.
    pub slo: Option<f64>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
    /// For the tenant report: only the monitors with this tag.
    pub tag: Option<String>,
}

/// The days and options of a daily-bars request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyParams {
    /// How many UTC days, ending today: 1 to 366, 90 by default.
    pub days: Option<i64>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
    /// For the tenant's bars: only the monitors with this tag.
    pub tag: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn parse_window(text: &str) -> Option<i64> {
    let unit = match text.chars().last()? {
        'm' => 60_000,
        'h' => HOUR_MS,
        'd' => DAY_MS,
        'w' => 7 * DAY_MS,
        'y' => 365 * DAY_MS,
        _ => return None,
    };
    let n: i64 = text[..text.len() - 1].parse().ok()?;
    (n > 0).then(|| n.checked_mul(unit)).flatten()
}

fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn wants_csv(format: &Option<String>, headers: &HeaderMap) -> Result<bool, Problem> {
    match format.as_deref() {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(Problem::invalid(vec![invalid(
            "format",
            format!("`{other}` is not `json` or `csv`"),
        )])),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv"))),
    }
}

/// A validated request: the window and the options.
struct Request {
    from: i64,
    to: i64,
    slo: Option<f64>,
    csv: bool,
}

impl Request {
    fn of(q: &StatsParams, headers: &HeaderMap, now: i64) -> Result<Self, Problem> {
        let mut errors = Vec::new();
        let csv = match wants_csv(&q.format, headers) {
            Ok(c) => c,
            Err(_) => {
                errors.push(invalid("format", "must be `json` or `csv`"));
                false
            }
        };
        let slo = q.slo.filter(|s| {
            let ok = s.is_finite() && *s > 0.0 && *s <= 100.0;
            if !ok {
                errors.push(invalid("slo", "must be a percentage above 0, at most 100"));
            }
            ok
        });
        let (mut from, mut to) = (now - DAY_MS, now);
        match (&q.window, &q.from, &q.to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => errors.push(invalid(
                "window",
                "give `window` or `from` and `to`, not both",
            )),
            (Some(w), None, None) => match parse_window(w) {
                Some(ms) if ms <= MAX_WINDOW_MS => from = now - ms,
                _ => errors.push(invalid(
                    "window",
                    format!("`{w}` is not a window such as 1h, 24h, 7d, 30d, 90d or 1y"),
                )),
            },
            (None, f, t) if f.is_some() || t.is_some() => {
                let f = match f.as_deref().map(parse_time) {
                    Some(Some(v)) => Some(v),
                    Some(None) => {
                        errors.push(invalid("from", "must be an RFC 3339 time"));
                        None
                    }
                    None => {
                        errors.push(invalid("from", "required with `to`"));
                        None
                    }
                };
                let t = match t.as_deref().map(parse_time) {
                    Some(Some(v)) if v > now => {
                        errors.push(invalid("to", "must not be in the future"));
                        None
                    }
                    Some(Some(v)) => Some(v),
                    Some(None) => {
                        errors.push(invalid("to", "must be an RFC 3339 time"));
                        None
                    }
                    None => {
                        errors.push(invalid("to", "required with `from`"));
                        None
                    }
                };
                if let (Some(f), Some(t)) = (f, t) {
                    if f >= t {
                        errors.push(invalid("from", "must be before `to`"));
                    } else if t - f > MAX_WINDOW_MS {
                        errors.push(invalid("from", "the window is longer than ten years"));
                    }
                    (from, to) = (f, t);
                }
            }
            _ => {}
        }
        if !errors.is_empty() {
            return Err(Problem::invalid(errors));
        }
        // Long windows are answered from coarser rollups, and so are ends older than the finer
        // tiers keep (by default raw 14 days, minutes 30, hours 365): such ends move outwards to
        // the bucket that still exists.
        let level = |span: i64, age: i64| {
            if span > 90 * DAY_MS || age > 364 * DAY_MS {
                Some(RollupLevel::Day)
            } else if span > DAY_MS || age > 29 * DAY_MS {
                Some(RollupLevel::Hour)
            } else if age > 13 * DAY_MS {
                Some(RollupLevel::Minute)
            } else {
                None
            }
        };
        if let Some(l) = level(to - from, now - from) {
            from = l.floor(from);
        }
        if let Some(l) = level(0, now - to) {
            let up = l.floor(to);
            if up < to {
                to = (up + l.millis()).min(now);
            }
        }
        Ok(Self { from, to, slo, csv })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckCounts {
    /// Results that count for uptime (maintenance excluded).
    pub total: u64,
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    /// Results taken during maintenance windows.
    pub maintenance: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SloOut {
    pub target_percent: f64,
    pub met: bool,
    /// The error budget as DOWN results allowed.
    pub budget_checks: f64,
    /// The error budget as time over the window.
    pub budget_seconds: f64,
    pub consumed_percent: f64,
    pub remaining_percent: f64,
    pub remaining_seconds: f64,
}

impl From<SloFigures> for SloOut {
    fn from(s: SloFigures) -> Self {
        Self {
            target_percent: s.target_percent,
            met: s.met,
            budget_checks: s.budget_checks,
            budget_seconds: s.budget_seconds,
            consumed_percent: s.consumed_percent,
            remaining_percent: s.remaining_percent,
            remaining_seconds: s.remaining_seconds,
        }
    }
}

/// The figures of one monitor, or of several together, over a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Figures {
    /// Share of counted results that were not DOWN, in percent; null without results.
    pub uptime_percent: Option<f64>,
    pub checks: CheckCounts,
    /// Of the results that were not DOWN; within 1 % of the exact percentile.
    pub latency_ms: Option<LatencyFigures>,
    /// Incidents open at some time in the window.
    pub incidents: u64,
    /// Time DOWN inside the window (summed over monitors).
    pub downtime_seconds: f64,
    /// Mean time to recovery of the incidents resolved in the window.
    pub mttr_seconds: Option<f64>,
    /// Mean time between failures over the window.
    pub mtbf_seconds: Option<f64>,
    pub slo: Option<SloOut>,
}

impl Figures {
    fn of(r: &Rollup, inc: IncidentFigures, slo: Option<f64>, window_ms: i64) -> Self {
        let secs = |ms: i64| ms as f64 / 1000.0;
        Self {
            uptime_percent: r
                .uptime_percent()
                .map(|u| (u * 10_000.0).round() / 10_000.0),
            checks: CheckCounts {
                total: r.checks(),
                up: r.up,
                degraded: r.degraded,
                down: r.down,
                maintenance: r.maintenance,
            },
            latency_ms: LatencyFigures::of(&r.latency),
            incidents: inc.count,
            downtime_seconds: secs(inc.downtime_ms),
            mttr_seconds: inc.mttr_ms.map(secs),
            mtbf_seconds: inc.mtbf_ms.map(secs),
            slo: slo.map(|t| figures::slo(t, r, window_ms).into()),
        }
    }
}

/// A monitor's statistics over a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonitorStats {
    pub monitor_id: MonitorId,
    pub name: String,
    pub from: Timestamp,
    pub to: Timestamp,
    #[serde(flatten)]
    pub figures: Figures,
}

/// The tenant's report: its monitors (or those with a tag) together and one by one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub from: Timestamp,
    pub to: Timestamp,
    pub tag: Option<String>,
    #[serde(flatten)]
    pub figures: Figures,
    pub monitors: Vec<MonitorStats>,
}

/// One UTC day of a status bar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `up` (no DOWN or DEGRADED result), `degraded`, `down` (some DOWN result) or `no_data`.
    pub status: String,
    pub uptime_percent: Option<f64>,
    pub checks: CheckCounts,
    pub incidents: u64,
    pub downtime_seconds: f64,
    pub latency_ms: Option<LatencyFigures>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Daily {
    pub days: Vec<Day>,
}

fn csv_field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

fn csv(header: &[&str], rows: Vec<Vec<String>>, name: &str) -> Response {
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, v);
        }
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        out,
    )
        .into_response()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

const STATS_HEADER: &[&str] = &[
    "monitor_id",
    "name",
    "from",
    "to",
    "uptime_percent",
    "checks",
    "up",
    "degraded",
    "down",
    "maintenance",
    "latency_min_ms",
    "latency_avg_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "incidents",
    "downtime_seconds",
    "mttr_seconds",
    "mtbf_seconds",
    "slo_target_percent",
    "slo_met",
    "slo_remaining_percent",
    "slo_remaining_seconds",
];

fn stats_row(id: &str, name: &str, from: Timestamp, to: Timestamp, f: &Figures) -> Vec<String> {
    let l = f.latency_ms;
    vec![
        id.to_owned(),
        name.to_owned(),
        from.to_string(),
        to.to_string(),
        opt(f.uptime_percent),
        f.checks.total.to_string(),
        f.checks.up.to_string(),
        f.checks.degraded.to_string(),
        f.checks.down.to_string(),
        f.checks.maintenance.to_string(),
        opt(l.map(|l| l.min)),
        opt(l.map(|l| l.avg)),
        opt(l.map(|l| l.p50)),
        opt(l.map(|l| l.p90)),
        opt(l.map(|l| l.p95)),
        opt(l.map(|l| l.p99)),
        opt(l.map(|l| l.max)),
        f.incidents.to_string(),
        f.downtime_seconds.to_string(),
        opt(f.mttr_seconds),
        opt(f.mtbf_seconds),
        opt(f.slo.as_ref().map(|s| s.target_percent)),
        opt(f.slo.as_ref().map(|s| s.met)),
        opt(f.slo.as_ref().map(|s| s.remaining_percent)),
        opt(f.slo.as_ref().map(|s| s.remaining_seconds)),
    ]
}

async fn monitor_of(state: &AppState, p: &Principal, id: &str) -> Result<Monitor, Problem> {
    crate::monitors::fetch(state, p, parse_id(id, "monitor")?).await
}

/// Every monitor of the tenant, or those with `tag`.
async fn monitors_of(
    state: &AppState,
    p: &Principal,
    tag: &Option<String>,
) -> Result<Vec<Monitor>, Problem> {
    let filter = MonitorFilter {
        tag: tag.clone(),
        ..MonitorFilter::default()
    };
    let mut page = PageRequest::first(pingtower_core::page::MAX_LIMIT);
    let mut all = Vec::new();
    loop {
        let got = state.store.list_monitors(p.tenant, &filter, &page).await?;
        all.extend(got.items);
        match got.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => return Ok(all),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A monitor's uptime, latency percentiles, incidents and SLO over a window.
#[utoipa::path(get, path = "/api/v1/monitors/{id}/stats", tag = "statistics",
    params(("id" = String, Path, description = "monitor id"), StatsParams),
    responses((status = 200, body = MonitorStats, description = "JSON, or CSV with `format=csv`"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn monitor_stats(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Params(q): Params<StatsParams>,
) -> Result<Response, Problem> {
    if q.tag.is_some() {
        return Err(Problem::invalid(vec![invalid(
            "tag",
            "only the tenant report (/api/v1/stats) takes a tag",
        )]));
    }
    let req = Request::of(&q, &headers, now_ms())?;
    let m = monitor_of(&state, &p, &id).await?;
    let rollup = figures::total(state.store.as_ref(), &[m.seq], req.from, req.to).await?;
    let (from, to) = (
        Timestamp::from_millis(req.from),
        Timestamp::from_millis(req.to),
    );
    let incidents = state
        .store
        .incidents_between(p.tenant, Some(&[m.id]), from, to)
        .await?;
    let inc = figures::incident_figures(&incidents, req.from, req.to, 1);
    let out = MonitorStats {
        monitor_id: m.id,
        name: m.name,
        from,
        to,
        figures: Figures::of(&rollup, inc, req.slo, req.to - req.from),
    };
    if req.csv {
        let row = stats_row(
            &out.monitor_id.to_string(),
            &out.name,
            from,
            to,
            &out.figures,
        );
        return Ok(csv(STATS_HEADER, vec![row], "monitor-stats"));
    }
    Ok(axum::Json(out).into_response())
}

/// The tenant's report over a window: all its monitors (or those with `tag`) together and one
/// by one, with SLO error budgets when `slo` is given.
#[utoipa::path(get, path = "/api/v1/stats", tag = "statistics", params(StatsParams),
    responses((status = 200, body = Report, description = "JSON, or CSV with `format=csv` (one row per monitor, then the total)"),
        (status = 422, body = Problem)))]
pub async fn report(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Params(q): Params<StatsParams>,
) -> Result<Response, Problem> {
    let req = Request::of(&q, &headers, now_ms())?;
    let monitors = monitors_of(&state, &p, &q.tag).await?;
    let seqs: Vec<i64> = monitors.iter().map(|m| m.seq).collect();
    let ids: Vec<MonitorId> = monitors.iter().map(|m| m.id).collect();
    let (from, to) = (
        Timestamp::from_millis(req.from),
        Timestamp::from_millis(req.to),
    );
    let window_ms = req.to - req.from;
    let per = figures::per_monitor(state.store.as_ref(), &seqs, req.from, req.to).await?;
    // No monitors, no incidents: the store answers an empty list without a query.
    let incidents = state
        .store
        .incidents_between(p.tenant, Some(&ids), from, to)
        .await?;
    let mut all = Rollup::default();
    let mut rows = Vec::with_capacity(monitors.len());
    for m in monitors {
        let r = per.get(&m.seq).cloned().unwrap_or_default();
        all.merge(&r);
        let own: Vec<_> = incidents
            .iter()
            .filter(|i| i.monitor_id == m.id)
            .cloned()
            .collect();
        let inc = figures::incident_figures(&own, req.from, req.to, 1);
        rows.push(MonitorStats {
            monitor_id: m.id,
            name: m.name,
            from,
            to,
            figures: Figures::of(&r, inc, req.slo, window_ms),
        });
    }
    let inc = figures::incident_figures(&incidents, req.from, req.to, rows.len());
    let out = Report {
        from,
        to,
        tag: q.tag.clone(),
        figures: Figures::of(&all, inc, req.slo, window_ms),
        monitors: rows,
    };
    if req.csv {
        let mut lines: Vec<Vec<String>> = out
            .monitors
            .iter()
            .map(|m| stats_row(&m.monitor_id.to_string(), &m.name, from, to, &m.figures))
            .collect();
        lines.push(stats_row("", "(all)", from, to, &out.figures));
        return Ok(csv(STATS_HEADER, lines, "stats"));
    }
    Ok(axum::Json(out).into_response())
}

const DAILY_HEADER: &[&str] = &[
    "date",
    "status",
    "uptime_percent",
    "checks",
    "up",
    "degraded",
    "down",
    "maintenance",
    "incidents",
    "downtime_seconds",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
];

async fn daily_of(
    state: &AppState,
    p: &Principal,
    monitors: &[Monitor],
    q: &DailyParams,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let mut errors = Vec::new();
    let days = q.days.unwrap_or(90);
    if !(1..=366).contains(&days) {
        errors.push(invalid("days", "must be from 1 to 366"));
    }
    let csv_out = match wants_csv(&q.format, headers) {
        Ok(c) => c,
        Err(_) => {
            errors.push(invalid("format", "must be `json` or `csv`"));
            false
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let now = now_ms();
    let seqs: Vec<i64> = monitors.iter().map(|m| m.seq).collect();
    let ids: Vec<MonitorId> = monitors.iter().map(|m| m.id).collect();
    let bars = figures::daily(state.store.as_ref(), &seqs, days, now).await?;
    let first = bars.first().map_or(now, |b| b.0);
    let incidents = state
        .store
        .incidents_between(
            p.tenant,
            Some(&ids),
            Timestamp::from_millis(first),
            Timestamp::from_millis(now),
        )
        .await?;
    let out = Daily {
        days: bars
            .into_iter()
            .map(|(day, r)| {
                let end = (day + DAY_MS).min(now);
                let inc = figures::incident_figures(&incidents, day, end, monitors.len());
                let status = if r.checks() == 0 {
                    "no_data"
                } else if r.down > 0 {
                    "down"
                } else if r.degraded > 0 {
                    "degraded"
                } else {
                    "up"
                };
                let f = Figures::of(&r, inc, None, end - day);
                Day {
                    date: Timestamp::from_millis(day)
                        .to_datetime()
                        .format("%Y-%m-%d")
                        .to_string(),
                    status: status.to_owned(),
                    uptime_percent: f.uptime_percent,
                    checks: f.checks,
                    incidents: f.incidents,
                    downtime_seconds: f.downtime_seconds,
                    latency_ms: f.latency_ms,
                }
            })
            .collect(),
    };
    if csv_out {
        let rows = out
            .days
            .iter()
            .map(|d| {
                let l = d.latency_ms;
                vec![
                    d.date.clone(),
                    d.status.clone(),
                    opt(d.uptime_percent),
                    d.checks.total.to_string(),
                    d.checks.up.to_string(),
                    d.checks.degraded.to_string(),
                    d.checks.down.to_string(),
                    d.checks.maintenance.to_string(),
                    d.incidents.to_string(),
                    d.downtime_seconds.to_string(),
                    opt(l.map(|l| l.p50)),
                    opt(l.map(|l| l.p95)),
                    opt(l.map(|l| l.p99)),
                ]
            })
            .collect();
        return Ok(csv(DAILY_HEADER, rows, "daily"));
    }
    Ok(axum::Json(out).into_response())
}

/// A monitor's daily status bars (UTC days, oldest first, today so far last).
#[utoipa::path(get, path = "/api/v1/monitors/{id}/stats/daily", tag = "statistics",
    params(("id" = String, Path, description = "monitor id"), DailyParams),
    responses((status = 200, body = Daily, description = "JSON, or CSV with `format=csv`"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn monitor_daily(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Params(q): Params<DailyParams>,
) -> Result<Response, Problem> {
    if q.tag.is_some() {
        return Err(Problem::invalid(vec![invalid(
            "tag",
            "only the tenant's bars (/api/v1/stats/daily) take a tag",
        )]));
    }
    let m = monitor_of(&state, &p, &id).await?;
    daily_of(&state, &p, &[m], &q, &headers).await
}

/// Daily status bars of all the tenant's monitors together (or those with `tag`).
#[utoipa::path(get, path = "/api/v1/stats/daily", tag = "statistics", params(DailyParams),
    responses((status = 200, body = Daily, description = "JSON, or CSV with `format=csv`"),
        (status = 422, body = Problem)))]
pub async fn tenant_daily(
    State(state): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Params(q): Params<DailyParams>,
) -> Result<Response, Problem> {
    let monitors = monitors_of(&state, &p, &q.tag).await?;
    daily_of(&state, &p, &monitors, &q, &headers).await
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(monitor_stats))
        .routes(routes!(monitor_daily))
        .routes(routes!(report))
        .routes(routes!(tenant_daily))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(window: Option<&str>, from: Option<&str>, to: Option<&str>) -> StatsParams {
        StatsParams {
            window: window.map(str::to_owned),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            ..StatsParams::default()
        }
    }

    #[test]
    fn windows_parse_and_long_ones_align() {
        let now = 1_795_000_123_456;
        let h = HeaderMap::new();
        let r = Request::of(&q(None, None, None), &h, now).unwrap();
        assert_eq!((r.from, r.to), (now - DAY_MS, now));
        let r = Request::of(&q(Some("1h"), None, None), &h, now).unwrap();
        assert_eq!(r.from, now - HOUR_MS);
        let r = Request::of(&q(Some("30d"), None, None), &h, now).unwrap();
        assert_eq!(r.from, RollupLevel::Hour.floor(now - 30 * DAY_MS));
        let r = Request::of(&q(Some("1y"), None, None), &h, now).unwrap();
        assert_eq!(r.from, RollupLevel::Day.floor(now - 365 * DAY_MS));
        for bad in ["", "h", "0d", "-1d", "5x", "99999y"] {
            assert!(
                Request::of(&q(Some(bad), None, None), &h, now).is_err(),
                "{bad}"
            );
        }
        let r = Request::of(
            &q(
                None,
                Some("2026-11-18T10:00:00Z"),
                Some("2026-11-18T10:30:00Z"),
            ),
            &h,
            now,
        )
        .unwrap();
        assert_eq!(r.to - r.from, 30 * 60_000);
        // Ends older than the raw and minute tiers move out to whole buckets.
        let r = Request::of(
            &q(
                None,
                Some("2025-01-01T10:17:33Z"),
                Some("2025-01-01T10:45:12Z"),
            ),
            &h,
            now,
        )
        .unwrap();
        assert_eq!(r.from % DAY_MS, 0);
        assert_eq!(r.to % DAY_MS, 0);
        assert!(Request::of(&q(None, Some("2026-11-18T10:00:00Z"), None), &h, now).is_err());
        assert!(Request::of(&q(Some("1h"), Some("2026-11-18T10:00:00Z"), None), &h, now).is_err());
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut s = String::new();
        csv_field(&mut s, "a,\"b\"");
        assert_eq!(s, "\"a,\"\"b\"\"\"");
    }
}
