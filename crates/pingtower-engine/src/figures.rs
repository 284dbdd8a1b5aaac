//! The figures people report, computed from rollups: uptime and latency percentiles over any
//! window, daily bars, incident figures (count, downtime, MTTR, MTBF) and SLO error budgets.
//!
//! A window is answered by the plan of `pingtower_core::stats::plan`: whole day, hour and
//! minute rollups, and raw results only for the edges and the minutes not folded yet. Uptime
//! counts results (UP and DEGRADED are up, results in maintenance do not count); downtime comes
//! from incidents, which are the confirmed DOWN periods.

use pingtower_core::stats::{Piece, ResultPoint, Rollup, RollupLevel, fold, plan};
use pingtower_core::{Incident, stats::NoMaintenance};
use pingtower_store::Store;
use std::collections::{BTreeMap, HashMap};

const DAY_MS: i64 = 86_400_000;

/// The rollup of each monitor (by seq) over `[from, to)`.
pub async fn per_monitor(
    store: &dyn Store,
    seqs: &[i64],
    from: i64,
    to: i64,
) -> Result<HashMap<i64, Rollup>, crate::EngineError> {
    let mut out: HashMap<i64, Rollup> = HashMap::new();
    if seqs.is_empty() || from >= to {
        return Ok(out);
    }
    let folded = store
        .fold_watermark()
        .await?
        .map_or(i64::MIN, |t| t.as_millis());
    for piece in plan(from, to, folded) {
        match piece {
            Piece::Rollups { level, from, to } => {
                for row in store.rollups(seqs, level, from, to).await? {
                    out.entry(row.monitor_seq).or_default().merge(&row.rollup);
                }
            }
            Piece::Raw { from, to } => {
                let points = store.result_points(seqs, from, to).await?;
                add_points(&mut out, &points);
            }
        }
    }
    Ok(out)
}

fn add_points(out: &mut HashMap<i64, Rollup>, points: &[ResultPoint]) {
    for ((seq, level, _), r) in fold(points, &NoMaintenance) {
        if level == RollupLevel::Minute {
            out.entry(seq).or_default().merge(&r);
        }
    }
}

/// The rollup of all the monitors together over `[from, to)`.
pub async fn total(
    store: &dyn Store,
    seqs: &[i64],
    from: i64,
    to: i64,
) -> Result<Rollup, crate::EngineError> {
    let mut all = Rollup::default();
    for r in per_monitor(store, seqs, from, to).await?.values() {
        all.merge(r);
    }
    Ok(all)
}

/// One rollup per UTC day for the `days` days that end with the one holding `now` (oldest
/// first; today's runs up to `now`).
pub async fn daily(
    store: &dyn Store,
    seqs: &[i64],
    days: i64,
    now: i64,
) -> Result<Vec<(i64, Rollup)>, crate::EngineError> {
    let today = RollupLevel::Day.floor(now);
    let first = today - (days - 1) * DAY_MS;
    let mut by_day: BTreeMap<i64, Rollup> = (0..days)
        .map(|d| (first + d * DAY_MS, Rollup::default()))
        .collect();
    if !seqs.is_empty() {
        let folded = store
            .fold_watermark()
            .await?
            .map_or(i64::MIN, |t| t.as_millis());
        // Whole folded days are one row each; a day not wholly folded (today, or days the
        // stats role was down for) is answered like any window.
        let whole = RollupLevel::Day.floor(folded).clamp(first, today);
        for row in store.rollups(seqs, RollupLevel::Day, first, whole).await? {
            if let Some(r) = by_day.get_mut(&row.bucket) {
                r.merge(&row.rollup);
            }
        }
        let mut day = whole;
        while day <= today {
            if let Some(r) = by_day.get_mut(&day) {
                *r = total(store, seqs, day, (day + DAY_MS).min(now)).await?;
            }
            day += DAY_MS;
        }
    }
    Ok(by_day.into_iter().collect())
}

/// What the incidents of a window add up to.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IncidentFigures {
    /// Incidents open at some time in the window.
    pub count: u64,
    /// Time spent DOWN inside the window (summed over monitors).
    pub downtime_ms: i64,
    /// Mean time to recovery of the incidents resolved in the window.
    pub mttr_ms: Option<i64>,
    /// Mean time between failures: time up in the window per incident.
    pub mtbf_ms: Option<i64>,
}

/// Incident figures over `[from, to)` for `monitors` monitors.
pub fn incident_figures(
    incidents: &[Incident],
    from: i64,
    to: i64,
    monitors: usize,
) -> IncidentFigures {
    let mut f = IncidentFigures::default();
    let (mut repaired, mut repair_ms) = (0i64, 0i64);
    for i in incidents {
        let opened = i.opened_at.as_millis();
        let resolved = i.resolved_at.map(|t| t.as_millis());
        let end = resolved.unwrap_or(to).min(to);
        let start = opened.max(from);
        if opened >= to || resolved.is_some_and(|r| r <= from) {
            continue;
        }
        f.count += 1;
        f.downtime_ms += (end - start).max(0);
        if let Some(r) = resolved.filter(|r| (from..to).contains(r)) {
            repaired += 1;
            repair_ms += r - opened;
        }
    }
    f.mttr_ms = (repaired > 0).then(|| repair_ms / repaired);
    let up_ms = (to - from).max(0) * monitors as i64 - f.downtime_ms;
    f.mtbf_ms = (f.count > 0).then(|| up_ms.max(0) / f.count as i64);
    f
}

/// An SLO over a window: the error budget and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloFigures {
    pub target_percent: f64,
    /// Whether uptime met the target (true when nothing was checked).
    pub met: bool,
    /// The budget as DOWN results allowed, and as time over the window.
    pub budget_checks: f64,
    pub budget_seconds: f64,
    /// Share of the budget used, in percent (above 100 when overspent).
    pub consumed_percent: f64,
    /// Share left, in percent (negative when overspent).
    pub remaining_percent: f64,
    /// What is left, as time over the window (negative when overspent).
    pub remaining_seconds: f64,
}

pub fn slo(target_percent: f64, rollup: &Rollup, window_ms: i64) -> SloFigures {
    let budget_share = (100.0 - target_percent) / 100.0;
    let checks = rollup.checks() as f64;
    let down_share = if checks > 0.0 {
        rollup.down as f64 / checks
    } else {
        0.0
    };
    let window_s = window_ms as f64 / 1000.0;
    let consumed = if budget_share > 0.0 {
        down_share / budget_share * 100.0
    } else if down_share > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    SloFigures {
        target_percent,
        met: rollup.uptime_percent().is_none_or(|u| u >= target_percent),
        budget_checks: round(budget_share * checks),
        budget_seconds: round(budget_share * window_s),
        consumed_percent: round(consumed.min(1e9)),
        remaining_percent: round((100.0 - consumed).max(-1e9)),
        remaining_seconds: round((budget_share - down_share) * window_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingtower_core::{IncidentId, IncidentStatus, MonitorId, TenantId, Timestamp};

    fn incident(opened: i64, resolved: Option<i64>) -> Incident {
        Incident {
            id: IncidentId::new(),
            tenant_id: TenantId::new(),
            monitor_id: MonitorId::new(),
            transition: 1,
            status: if resolved.is_some() {
                IncidentStatus::Resolved
            } else {
                IncidentStatus::Open
            },
            reason: None,
            opened_at: Timestamp::from_millis(opened),
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: resolved.map(Timestamp::from_millis),
        }
    }

    #[test]
    fn incident_figures_clip_to_the_window() {
        let list = [
            incident(0, Some(1_000)),         // before the window
            incident(5_000, Some(15_000)),    // straddles the start: 5 s inside
            incident(20_000, Some(30_000)),   // inside: 10 s
            incident(90_000, None),           // still open: 10 s up to the end
            incident(200_000, Some(300_000)), // after
        ];
        let f = incident_figures(&list, 10_000, 100_000, 1);
        assert_eq!(f.count, 3);
        assert_eq!(f.downtime_ms, 25_000);
        assert_eq!(f.mttr_ms, Some(10_000));
        assert_eq!(f.mtbf_ms, Some((90_000 - 25_000) / 3));
        assert_eq!(incident_figures(&[], 0, 10, 1), IncidentFigures::default());
    }

    #[test]
    fn error_budgets() {
        let r = Rollup {
            up: 9_995,
            down: 5,
            ..Rollup::default()
        };
        let s = slo(99.9, &r, 30 * DAY_MS);
        assert!(s.met);
        assert_eq!(s.budget_checks, 10.0);
        assert_eq!(s.consumed_percent, 50.0);
        assert_eq!(s.remaining_percent, 50.0);
        assert!((s.budget_seconds - 2_592.0).abs() < 0.01);
        assert!((s.remaining_seconds - 1_296.0).abs() < 0.01);
        let over = slo(99.99, &r, DAY_MS);
        assert!(!over.met);
        assert!(over.remaining_percent < 0.0);
        assert!(slo(100.0, &Rollup::default(), DAY_MS).met);
    }
}
