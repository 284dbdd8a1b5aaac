//! Statistics: rollups of check results per minute, hour and day, each with a mergeable
//! latency sketch, and the plan that answers any window from the fewest rollups.
//!
//! The sketch is a DDSketch (Masson, Rim, Lee, VLDB 2019) with a relative accuracy of 1 %: a
//! latency `v` lands in bin `ceil(log_γ v)` with `γ = (1 + α) / (1 − α)`, so every quantile it
//! answers is within 1 % of the exact value at the same rank. Two sketches merge by adding their
//! bins, which is what makes a 90-day percentile a merge of 90 day rows rather than a scan of
//! 130,000 results. It is written here rather than taken from a crate because what matters is
//! its stored form: a few bytes per occupied bin, read and written by the store.

use crate::codec::{DecodeError, Reader, put_i64, put_u64};
use crate::{CheckStatus, Timestamp};
use std::collections::BTreeMap;

/// The relative accuracy of every latency percentile.
pub const RELATIVE_ACCURACY: f64 = 0.01;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// A mergeable summary of latencies in microseconds: exact count, sum, min and max, and
/// quantiles within [`RELATIVE_ACCURACY`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencySketch {
    bins: BTreeMap<i32, u64>,
    /// Values of 0 µs, which have no logarithm.
    zeros: u64,
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl LatencySketch {
    fn key(v: u64) -> i32 {
        ((v as f64).ln() / gamma().ln()).ceil() as i32
    }

    fn value_of(key: i32) -> f64 {
        let g = gamma();
        2.0 * g.powi(key) / (g + 1.0)
    }

    pub fn add(&mut self, us: u64) {
        self.add_n(us, 1);
    }

    fn add_n(&mut self, us: u64, n: u64) {
        if n == 0 {
            return;
        }
        if us == 0 {
            self.zeros += n;
        } else {
            *self.bins.entry(Self::key(us)).or_default() += n;
        }
        self.min = if self.count == 0 {
            us
        } else {
            self.min.min(us)
        };
        self.max = self.max.max(us);
        self.count += n;
        self.sum = self.sum.saturating_add(us.saturating_mul(n));
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        if other.count == 0 {
            return;
        }
        for (k, n) in &other.bins {
            *self.bins.entry(*k).or_default() += n;
        }
        self.zeros += other.zeros;
        self.min = if self.count == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value at rank `floor(q × (count − 1))` of the sorted values, within the relative
    /// accuracy (and never outside the exact min and max).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (k, n) in &self.bins {
            seen += n;
            if seen > rank {
                let v = Self::value_of(*k);
                return Some(v.clamp(self.min as f64, self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        put_u64(out, self.count);
        if self.count == 0 {
            return;
        }
        // One value (a minute of a monitor checked every minute): the value says it all.
        if self.count == 1 {
            put_u64(out, self.min);
            return;
        }
        put_u64(out, self.zeros);
        put_u64(out, self.sum);
        put_u64(out, self.min);
        put_u64(out, self.max - self.min);
        put_u64(out, self.bins.len() as u64);
        let mut prev = 0i64;
        for (k, n) in &self.bins {
            put_i64(out, i64::from(*k) - prev);
            put_u64(out, *n);
            prev = i64::from(*k);
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let corrupt = |detail| DecodeError {
            what: "latency sketch",
            detail,
        };
        let count = r.u64()?;
        if count == 0 {
            return Ok(Self::default());
        }
        if count == 1 {
            let mut one = Self::default();
            one.add(r.u64()?);
            return Ok(one);
        }
        let zeros = r.u64()?;
        let sum = r.u64()?;
        let min = r.u64()?;
        let max = min
            .checked_add(r.u64()?)
            .ok_or(corrupt("maximum overflows"))?;
        let n = r.u64()?;
        let mut bins = BTreeMap::new();
        let mut key = 0i64;
        let mut total = zeros;
        for _ in 0..n {
            key += r.i64()?;
            let k = i32::try_from(key).map_err(|_| corrupt("bin out of range"))?;
            let c = r.u64()?;
            total = total.checked_add(c).ok_or(corrupt("count overflows"))?;
            bins.insert(k, c);
        }
        if total != count {
            return Err(corrupt("bin counts do not add up"));
        }
        Ok(Self {
            bins,
            zeros,
            count,
            sum,
            min,
            max,
        })
    }
}

/// The granularity of a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RollupLevel {
    Minute,
    Hour,
    Day,
}

impl RollupLevel {
    pub const ALL: [RollupLevel; 3] = [RollupLevel::Minute, RollupLevel::Hour, RollupLevel::Day];

    pub const fn millis(self) -> i64 {
        match self {
            RollupLevel::Minute => MINUTE_MS,
            RollupLevel::Hour => HOUR_MS,
            RollupLevel::Day => DAY_MS,
        }
    }

    /// The code stored in rollup rows.
    pub const fn code(self) -> i16 {
        match self {
            RollupLevel::Minute => 0,
            RollupLevel::Hour => 1,
            RollupLevel::Day => 2,
        }
    }

    pub const fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(RollupLevel::Minute),
            1 => Some(RollupLevel::Hour),
            2 => Some(RollupLevel::Day),
            _ => None,
        }
    }

    /// The start of the bucket that holds `ms` (days are UTC days).
    pub const fn floor(self, ms: i64) -> i64 {
        ms.saturating_sub(ms.rem_euclid(self.millis()))
    }
}

/// What one bucket of one monitor's results adds up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    pub up: u64,
    pub degraded: u64,
    pub down: u64,
    /// Results taken while a maintenance window covered the monitor: they count neither for
    /// nor against uptime.
    pub maintenance: u64,
    /// Latencies of the results that were not DOWN (a timeout is not a latency) and not in
    /// maintenance.
    pub latency: LatencySketch,
}

impl Rollup {
    pub fn add(&mut self, status: CheckStatus, latency_us: i64, in_maintenance: bool) {
        if in_maintenance {
            self.maintenance += 1;
            return;
        }
        match status {
            CheckStatus::Up => self.up += 1,
            CheckStatus::Degraded => self.degraded += 1,
            CheckStatus::Down => {
                self.down += 1;
                return;
            }
        }
        self.latency.add(u64::try_from(latency_us).unwrap_or(0));
    }

    pub fn merge(&mut self, other: &Rollup) {
        self.up += other.up;
        self.degraded += other.degraded;
        self.down += other.down;
        self.maintenance += other.maintenance;
        self.latency.merge(&other.latency);
    }

    /// Results that count for uptime (everything but maintenance).
    pub fn checks(&self) -> u64 {
        self.up + self.degraded + self.down
    }

    /// Percentage of counted results that were not DOWN; `None` without any.
    pub fn uptime_percent(&self) -> Option<f64> {
        let n = self.checks();
        (n > 0).then(|| (self.up + self.degraded) as f64 * 100.0 / n as f64)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(1); // format version
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        put_u64(out, self.up);
        put_u64(out, self.degraded);
        put_u64(out, self.down);
        put_u64(out, self.maintenance);
        self.latency.encode_into(out);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            up: r.u64()?,
            degraded: r.u64()?,
            down: r.u64()?,
            maintenance: r.u64()?,
            latency: LatencySketch::decode_from(r)?,
        })
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "rollup");
        if r.u8()? != 1 {
            return Err(DecodeError {
                what: "rollup",
                detail: "unknown format version",
            });
        }
        let rollup = Self::decode_from(&mut r)?;
        if !r.is_empty() {
            return Err(DecodeError {
                what: "rollup",
                detail: "trailing bytes",
            });
        }
        Ok(rollup)
    }
}

/// The minute rollups of one hour of one monitor, stored as one blob: a row per minute would
/// cost more in row and index overhead than the rollup itself (about 9 bytes).
///
/// Form: a version byte, then for each minute in ascending order its index in the hour (0 to
/// 59) and its rollup.
pub fn encode_minutes<'a>(minutes: impl IntoIterator<Item = (i64, &'a Rollup)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(1);
    for (bucket, rollup) in minutes {
        put_u64(
            &mut out,
            u64::try_from(bucket.rem_euclid(HOUR_MS) / MINUTE_MS).unwrap_or(0),
        );
        rollup.encode_into(&mut out);
    }
    out
}

/// The inverse of [`encode_minutes`]: `(minute start, rollup)` of the hour starting at `hour`.
pub fn decode_minutes(hour: i64, bytes: &[u8]) -> Result<Vec<(i64, Rollup)>, DecodeError> {
    let corrupt = |detail| DecodeError {
        what: "minute rollups",
        detail,
    };
    let mut r = Reader::new(bytes, "minute rollups");
    if r.u8()? != 1 {
        return Err(corrupt("unknown format version"));
    }
    let mut out: Vec<(i64, Rollup)> = Vec::new();
    while !r.is_empty() {
        let minute = r.u64()?;
        if minute >= 60 {
            return Err(corrupt("minute out of the hour"));
        }
        let bucket = hour + minute as i64 * MINUTE_MS;
        if out.last().is_some_and(|(b, _)| *b >= bucket) {
            return Err(corrupt("minutes out of order"));
        }
        out.push((bucket, Rollup::decode_from(&mut r)?));
    }
    Ok(out)
}

/// One stored rollup.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    pub monitor_seq: i64,
    pub level: RollupLevel,
    /// Start of the bucket, in milliseconds since the epoch.
    pub bucket: i64,
    pub rollup: Rollup,
}

/// The minimum a fold or a raw tail needs of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultPoint {
    pub monitor_seq: i64,
    pub checked_at: i64,
    pub status: CheckStatus,
    pub latency_us: i64,
}

/// Tells the fold whether a result was taken during a maintenance window.
pub trait Attribution: Send + Sync {
    fn in_maintenance(&self, monitor_seq: i64, at: Timestamp) -> bool;
}

/// No maintenance anywhere.
pub struct NoMaintenance;

impl Attribution for NoMaintenance {
    fn in_maintenance(&self, _: i64, _: Timestamp) -> bool {
        false
    }
}

/// Folds results into rollups at every level: the deltas to merge into what is stored.
pub fn fold(
    points: &[ResultPoint],
    attribution: &dyn Attribution,
) -> BTreeMap<(i64, RollupLevel, i64), Rollup> {
    let mut out: BTreeMap<(i64, RollupLevel, i64), Rollup> = BTreeMap::new();
    for p in points {
        let maint = attribution.in_maintenance(p.monitor_seq, Timestamp::from_millis(p.checked_at));
        let mut one = Rollup::default();
        one.add(p.status, p.latency_us, maint);
        for level in RollupLevel::ALL {
            out.entry((p.monitor_seq, level, level.floor(p.checked_at)))
                .or_default()
                .merge(&one);
        }
    }
    out
}

/// One piece of a window: a run of buckets of one level, or raw results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Buckets of `level` starting in `[from, to)`.
    Rollups {
        level: RollupLevel,
        from: i64,
        to: i64,
    },
    /// Results checked in `[from, to)`.
    Raw { from: i64, to: i64 },
}

/// Splits `[from, to)` into the fewest whole rollup buckets, given that everything before
/// `folded` has been folded; what is not a whole bucket, or not folded yet, is read raw.
pub fn plan(from: i64, to: i64, folded: i64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    if from >= to {
        return pieces;
    }
    let end = to.min(folded).max(from);
    // Left to right: raw up to the first minute boundary, then the coarsest bucket that fits.
    let mut at = from;
    let mut push = |p: Piece| match (pieces.last_mut(), p) {
        (
            Some(Piece::Rollups {
                level: l, to: t, ..
            }),
            Piece::Rollups { level, from, to },
        ) if *l == level && *t == from => *t = to,
        (Some(Piece::Raw { to: t, .. }), Piece::Raw { from, to }) if *t == from => *t = to,
        _ => pieces.push(p),
    };
    while at < end {
        let level = [RollupLevel::Day, RollupLevel::Hour, RollupLevel::Minute]
            .into_iter()
            .find(|l| at % l.millis() == 0 && at + l.millis() <= end);
        match level {
            Some(level) => {
                push(Piece::Rollups {
                    level,
                    from: at,
                    to: at + level.millis(),
                });
                at += level.millis();
            }
            None => {
                let next = (RollupLevel::Minute.floor(at) + MINUTE_MS).min(end);
                push(Piece::Raw { from: at, to: next });
                at = next;
            }
        }
    }
    if end < to {
        push(Piece::Raw { from: end, to });
    }
    pieces
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct LatencyFigures {
    pub min: f64,
    pub avg: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencyFigures {
    pub fn of(sketch: &LatencySketch) -> Option<Self> {
        let ms = |us: f64| (us / 1000.0 * 1000.0).round() / 1000.0;
        Some(Self {
            min: ms(sketch.min()? as f64),
            avg: ms(sketch.mean()?),
            p50: ms(sketch.quantile(0.50)?),
            p90: ms(sketch.quantile(0.90)?),
            p95: ms(sketch.quantile(0.95)?),
            p99: ms(sketch.quantile(0.99)?),
            max: ms(sketch.max()? as f64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[u64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize] as f64
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_relative_accuracy_and_merging_equals_adding(
            a in proptest::collection::vec(0u64..60_000_000, 1..400),
            b in proptest::collection::vec(1u64..2_000, 0..400),
        ) {
            let mut sa = LatencySketch::default();
            a.iter().for_each(|v| sa.add(*v));
            let mut sb = LatencySketch::default();
            b.iter().for_each(|v| sb.add(*v));
            let mut all = LatencySketch::default();
            a.iter().chain(&b).for_each(|v| all.add(*v));
            sa.merge(&sb);
            prop_assert_eq!(&sa, &all);
            let mut sorted: Vec<u64> = a.iter().chain(&b).copied().collect();
            sorted.sort_unstable();
            for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
                let want = exact(&sorted, q);
                let got = sa.quantile(q).unwrap();
                prop_assert!((got - want).abs() <= want * RELATIVE_ACCURACY + 1e-9,
                    "q {q}: got {got}, exact {want}");
            }
            prop_assert_eq!(sa.min(), sorted.first().copied());
            prop_assert_eq!(sa.max(), sorted.last().copied());
            let decoded = Rollup::decode(&Rollup { latency: sa.clone(), up: 3, ..Rollup::default() }.encode()).unwrap();
            prop_assert_eq!(decoded.latency, sa);
        }

        #[test]
        fn a_plan_covers_the_window_exactly_once(
            from in 0i64..10 * DAY_MS, len in 0i64..40 * DAY_MS, folded_off in -2 * DAY_MS..DAY_MS,
        ) {
            let to = from + len;
            let folded = RollupLevel::Minute.floor(to + folded_off);
            let mut at = from;
            for p in plan(from, to, folded) {
                let (f, t) = match p {
                    Piece::Rollups { level, from, to } => {
                        prop_assert_eq!(from % level.millis(), 0);
                        prop_assert_eq!((to - from) % level.millis(), 0);
                        prop_assert!(to <= folded);
                        (from, to)
                    }
                    Piece::Raw { from, to } => (from, to),
                };
                prop_assert_eq!(f, at);
                prop_assert!(t > f);
                at = t;
            }
            prop_assert_eq!(at, to.max(from));
        }
    }

    #[test]
    fn minute_rollups_of_an_hour_round_trip_in_a_few_bytes_each() {
        let hour = 7 * DAY_MS + 3 * HOUR_MS;
        let mut minutes = Vec::new();
        for m in [0i64, 1, 17, 59] {
            let mut r = Rollup::default();
            r.add(CheckStatus::Up, 100_000 + m * 1_000, false);
            if m == 17 {
                r.add(CheckStatus::Down, 0, false);
                r.add(CheckStatus::Degraded, 900_000, true);
            }
            minutes.push((hour + m * MINUTE_MS, r));
        }
        let blob = encode_minutes(minutes.iter().map(|(b, r)| (*b, r)));
        assert_eq!(decode_minutes(hour, &blob).unwrap(), minutes);
        // Three of the four minutes hold one result: about 9 bytes each with the index.
        assert!(blob.len() < 4 * 12, "{} bytes", blob.len());
        assert_eq!(decode_minutes(hour, &[1]).unwrap(), vec![]);
        assert!(decode_minutes(hour, &[2]).is_err(), "unknown version");
        assert!(
            decode_minutes(hour, &[1, 60, 0, 0, 0, 0, 0]).is_err(),
            "minute 60"
        );
        assert!(
            decode_minutes(hour, &blob[..blob.len() - 1]).is_err(),
            "truncated"
        );
        let mut twice = blob.clone();
        twice.extend_from_slice(&blob[1..]);
        assert!(decode_minutes(hour, &twice).is_err(), "out of order");
    }

    #[test]
    fn a_90_day_window_is_a_few_pieces() {
        let now = 100 * DAY_MS + 5 * HOUR_MS + 17 * MINUTE_MS + 1234;
        let folded = RollupLevel::Minute.floor(now) - 2 * MINUTE_MS;
        let p = plan(now - 90 * DAY_MS, now, folded);
        assert!(p.len() <= 8, "{p:?}");
        assert!(matches!(p[0], Piece::Raw { .. }));
        assert!(matches!(p.last(), Some(Piece::Raw { .. })));
    }

    #[test]
    fn rollups_count_statuses_and_leave_downs_and_maintenance_out_of_latency() {
        let mut r = Rollup::default();
        r.add(CheckStatus::Up, 1_000, false);
        r.add(CheckStatus::Degraded, 3_000, false);
        r.add(CheckStatus::Down, 10_000_000, false);
        r.add(CheckStatus::Down, 5, true);
        assert_eq!((r.up, r.degraded, r.down, r.maintenance), (1, 1, 1, 1));
        assert_eq!(r.latency.count(), 2);
        assert_eq!(r.latency.max(), Some(3_000));
        assert!((r.uptime_percent().unwrap() - 66.666).abs() < 0.01);
        assert_eq!(Rollup::decode(&r.encode()).unwrap(), r);
        assert!(Rollup::decode(&[2]).is_err());
        assert!(Rollup::decode(&r.encode()[..5]).is_err());
        assert_eq!(Rollup::default().uptime_percent(), None);
        // A rollup of one minute with one result is a handful of bytes.
        let mut one = Rollup::default();
        one.add(CheckStatus::Up, 48_213, false);
        assert!(one.encode().len() <= 9, "{}", one.encode().len());
        assert_eq!(Rollup::decode(&one.encode()).unwrap(), one);
    }
}
