//! Queries over a tenant's events (`POST /api/v1/events/query`): a metric, filters, a
//! breakdown, buckets in a time zone, over a range.
//!
//! Two ways to answer, chosen by [`Query::rollup_plan`]:
//! - counts and unique users of names (no property filter, no breakdown but by name) are sums
//!   of the per-minute or per-hour counts the store keeps and merges of their users' sketches
//!   (hours when every bucket starts on an hour): no event is read, whatever the range;
//! - anything else reads the range's events of the names asked for ([`Aggregator`]), at most
//!   [`MAX_SCAN`] of them (counted first, from the per-minute counts: a range holding more is
//!   refused naming `range`, never answered partly).
//!
//! Buckets follow the time zone's days: a day bucket is a local day (23 or 25 hours across a
//! daylight-saving change), a week starts on Monday, a month on its first day.

use crate::packed::{Frame, Property, Scalar, Strings};
use crate::sketch::Sketch;
use crate::store::{EventStore, EventStoreError, Grain, Piece, Rollup, StoredEvent};
use chrono::{Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use pingtower_core::TenantId;
use pingtower_core::Timestamp;
pub use pingtower_core::event_rule::NameFilter;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Most buckets one answer holds.
pub const MAX_BUCKETS: usize = 10_000;
/// Most events a query reads (read by column, about 50 ns each).
pub const MAX_SCAN: i64 = 20_000_000;
/// Most events a percentile or a unique count reads (each keeps every value, or its hash,
/// until the end: 8 bytes or more each).
pub const MAX_SCAN_VALUES: i64 = 5_000_000;
/// Most events a funnel reads (in time order, event by event).
pub const MAX_FUNNEL_SCAN: i64 = 5_000_000;
/// How far ahead of now a query may reach.
const MAX_AHEAD_MS: i64 = 366 * 86_400_000;
/// The longest range a query covers.
const MAX_RANGE_MS: i64 = 3_660 * 86_400_000;
/// Breakdown values shown by default (the rest are summed into `other`).
pub const DEFAULT_BREAKDOWN_LIMIT: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

/// What a filter, a breakdown or a metric reads from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    DistinctId,
    SessionId,
    /// A property, or a property of a nested object (`geo.country`).
    Property(String, Option<String>),
}

impl Field {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "name" => Some(Field::Name),
            "distinct_id" => Some(Field::DistinctId),
            "session_id" => Some(Field::SessionId),
            _ => {
                let (a, b) = match s.split_once('.') {
                    Some((a, b)) => (a, Some(b)),
                    None => (s, None),
                };
                let ok = |k: &str| !k.is_empty() && k.len() <= 128 && !k.contains('.');
                (ok(a) && b.is_none_or(ok)).then(|| Field::Property(a.into(), b.map(Into::into)))
            }
        }
    }

    /// The field's value in `e` as text (strings, numbers, booleans).
    pub fn text_of(&self, e: &StoredEvent) -> Option<String> {
        self.value(e).and_then(|v| v.text()).map(Cow::into_owned)
    }

    fn value<'a>(&self, e: &'a StoredEvent) -> Option<FieldValue<'a>> {
        match self {
            Field::Name => Some(FieldValue::Str(&e.name)),
            Field::DistinctId => e.distinct_id.as_deref().map(FieldValue::Str),
            Field::SessionId => e.session_id.as_deref().map(FieldValue::Str),
            Field::Property(a, None) => e.properties.get(a).map(FieldValue::Json),
            Field::Property(a, Some(b)) => e.properties.get(a)?.get(b).map(FieldValue::Json),
        }
    }
}

/// A field's value in an event, or in one event of a [`Frame`]: the same text and number
/// either way.
#[derive(Clone, Copy)]
enum FieldValue<'a> {
    Str(&'a str),
    Json(&'a Value),
    Number(&'a Number),
    Bool(bool),
    Null,
}

impl<'a> FieldValue<'a> {
    /// As text: borrowed from the event where it is a string (no copy per event read).
    fn text(&self) -> Option<Cow<'a, str>> {
        match *self {
            FieldValue::Str(s) => Some(Cow::Borrowed(s)),
            FieldValue::Json(Value::String(s)) => Some(Cow::Borrowed(s)),
            FieldValue::Json(v) => scalar_text(v).map(Cow::Owned),
            FieldValue::Number(n) => Some(Cow::Owned(n.to_string())),
            FieldValue::Bool(b) => Some(Cow::Owned(b.to_string())),
            FieldValue::Null => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match *self {
            FieldValue::Str(s) => s.parse().ok(),
            FieldValue::Json(Value::Number(n)) | FieldValue::Number(n) => n.as_f64(),
            FieldValue::Json(Value::String(s)) => s.parse().ok(),
            FieldValue::Json(_) | FieldValue::Bool(_) | FieldValue::Null => None,
        }
    }
}

/// Where a field is in a [`Frame`] (resolved once per frame, not per event).
#[derive(Clone, Copy)]
enum Column<'f> {
    Strings(&'f Strings),
    Property(&'f Property, Option<&'f str>),
    Missing,
}

impl<'f> Column<'f> {
    fn of(field: &'f Field, frame: &'f Frame) -> Self {
        match field {
            Field::Name => Column::Strings(&frame.name),
            Field::DistinctId => Column::Strings(&frame.distinct_id),
            Field::SessionId => Column::Strings(&frame.session_id),
            Field::Property(a, b) => frame
                .property(a)
                .map_or(Column::Missing, |p| Column::Property(p, b.as_deref())),
        }
    }

    /// Memo slots: one per dictionary entry, and slot 0 for no value.
    fn slots(&self) -> usize {
        match self {
            Column::Strings(s) => s.dict.len() + 1,
            Column::Property(p, None) => p.dict.len() + 1,
            Column::Property(_, Some(_)) | Column::Missing => 1,
        }
    }

    /// The slot of event `i`'s value, when it is a dictionary string or none (whose figures
    /// are the same for every event that has it); `None` for other values.
    fn slot(&self, i: usize) -> Option<usize> {
        match self {
            Column::Strings(s) => s.at.get(i).map(|&k| k as usize),
            Column::Property(p, None) => match p.values.get(i)? {
                Scalar::Str(k) => Some(*k as usize + 1),
                Scalar::Absent => Some(0),
                _ => None,
            },
            Column::Property(_, Some(_)) => None,
            Column::Missing => Some(0),
        }
    }

    /// The value that a slot stands for.
    fn slot_value(&self, slot: usize) -> Option<FieldValue<'f>> {
        let k = slot.checked_sub(1)?;
        match self {
            Column::Strings(s) => s.dict.get(k).map(|v| FieldValue::Str(v)),
            Column::Property(p, None) => p.dict.get(k).map(|v| FieldValue::Str(v)),
            Column::Property(_, Some(_)) | Column::Missing => None,
        }
    }

    fn value(&self, i: usize) -> Option<FieldValue<'f>> {
        match self {
            Column::Strings(s) => s.get(i).map(FieldValue::Str),
            Column::Property(p, nested) => {
                let v = match p.values.get(i)? {
                    Scalar::Absent => return None,
                    Scalar::Null => FieldValue::Null,
                    Scalar::Bool(b) => FieldValue::Bool(*b),
                    Scalar::Number(n) => FieldValue::Number(n),
                    Scalar::Str(k) => FieldValue::Str(p.dict.get(*k as usize)?),
                    Scalar::Json(v) => FieldValue::Json(v),
                };
                match (nested, v) {
                    (None, v) => Some(v),
                    (Some(b), FieldValue::Json(v)) => v.get(b).map(FieldValue::Json),
                    (Some(_), _) => None,
                }
            }
            Column::Missing => None,
        }
    }
}

/// Per-slot answers of a [`Column`], worked out the first time a slot is met.
struct Memo<T: Copy> {
    slots: Vec<Option<T>>,
}

impl<T: Copy> Memo<T> {
    fn new(column: &Column<'_>) -> Self {
        Self {
            slots: vec![None; column.slots()],
        }
    }

    /// The answer for event `i`: from its slot (worked out once), or worked out for it alone.
    fn get(
        &mut self,
        column: &Column<'_>,
        i: usize,
        mut work: impl FnMut(Option<FieldValue<'_>>) -> T,
    ) -> T {
        match column.slot(i) {
            Some(slot) => match self.slots.get(slot).copied().flatten() {
                Some(t) => t,
                None => {
                    let t = work(column.slot_value(slot));
                    if let Some(s) = self.slots.get_mut(slot) {
                        *s = Some(t);
                    }
                    t
                }
            },
            None => work(column.value(i)),
        }
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(String),
    Neq(String),
    Contains(String),
    Gt(f64),
    Lt(f64),
    Exists(bool),
    In(HashSet<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: Field,
    pub op: Op,
}

impl Filter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.test(self.field.value(e))
    }

    /// Whether a field's value (`None`: the event has none) passes.
    fn test(&self, v: Option<FieldValue<'_>>) -> bool {
        match &self.op {
            Op::Exists(want) => v.is_some() == *want,
            Op::Eq(x) => v.and_then(|v| v.text()).is_some_and(|t| *t == **x),
            Op::Neq(x) => v.and_then(|v| v.text()).is_none_or(|t| *t != **x),
            Op::Contains(x) => v
                .and_then(|v| v.text())
                .is_some_and(|t| t.contains(x.as_str())),
            Op::In(xs) => v.and_then(|v| v.text()).is_some_and(|t| xs.contains(&*t)),
            Op::Gt(x) => v.and_then(|v| v.number()).is_some_and(|n| n > *x),
            Op::Lt(x) => v.and_then(|v| v.number()).is_some_and(|n| n < *x),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Count,
    Unique(Field),
    Sum(Field),
    Avg(Field),
    Min(Field),
    Max(Field),
    /// A percentile (0 to 1) of a numeric field.
    Percentile(f64, Field),
}

impl Metric {
    /// The field the metric reads (none for a count).
    pub fn field(&self) -> Option<&Field> {
        match self {
            Metric::Count => None,
            Metric::Unique(f)
            | Metric::Sum(f)
            | Metric::Avg(f)
            | Metric::Min(f)
            | Metric::Max(f)
            | Metric::Percentile(_, f) => Some(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metric: Metric,
    pub names: NameFilter,
    /// Filters on anything but the name.
    pub filters: Vec<Filter>,
    pub breakdown: Option<Field>,
    pub breakdown_limit: usize,
    pub bucket: Bucket,
    pub time_zone: Tz,
    /// The start of each bucket, then the end of the last (so `starts.len() - 1` buckets).
    pub edges: Vec<i64>,
}

/// A field of the query that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

pub(crate) fn err(field: &str, message: impl Into<String>) -> QueryError {
    QueryError {
        field: field.into(),
        message: message.into(),
    }
}

/// A duration like `30m`, `24h`, `7d` (also `s` and `w`).
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let per = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    (n > 0).then(|| n.checked_mul(per)).flatten()
}

fn time(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Local midnight of `date` in `tz` (the first instant of that day).
fn midnight(tz: Tz, date: NaiveDate) -> i64 {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.timestamp_millis(),
        // Midnight does not exist that day (a change at 00:00): the day starts an hour later.
        None => tz
            .from_local_datetime(&(naive + ChronoDuration::hours(1)))
            .earliest()
            .map_or_else(
                || naive.and_utc().timestamp_millis(),
                |t| t.timestamp_millis(),
            ),
    }
}

/// The start of the bucket holding `t`.
pub fn bucket_start(t: i64, bucket: Bucket, tz: Tz) -> i64 {
    let Some(utc) = chrono::DateTime::from_timestamp_millis(t) else {
        return t;
    };
    let local = utc.with_timezone(&tz);
    match bucket {
        Bucket::Minute => t.div_euclid(60_000) * 60_000,
        Bucket::Hour => {
            let into = i64::from(local.minute()) * 60_000
                + i64::from(local.second()) * 1_000
                + i64::from(local.timestamp_subsec_millis());
            t - into
        }
        Bucket::Day => midnight(tz, local.date_naive()),
        Bucket::Week => {
            let d = local.date_naive();
            midnight(
                tz,
                d - ChronoDuration::days(i64::from(d.weekday().num_days_from_monday())),
            )
        }
        Bucket::Month => midnight(
            tz,
            NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local.date_naive()),
        ),
    }
}

/// The start of the bucket after the one starting at `start`.
fn next_start(start: i64, bucket: Bucket, tz: Tz) -> i64 {
    let local = || {
        chrono::DateTime::from_timestamp_millis(start)
            .map(|u| u.with_timezone(&tz).date_naive())
            .unwrap_or_default()
    };
    match bucket {
        Bucket::Minute => start + 60_000,
        Bucket::Hour => start + 3_600_000,
        Bucket::Day => midnight(tz, local() + ChronoDuration::days(1)),
        Bucket::Week => midnight(tz, local() + ChronoDuration::days(7)),
        Bucket::Month => {
            let d = local();
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            midnight(tz, NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d))
        }
    }
}

pub(crate) fn field_of(v: &Value, name: &str, errors: &mut Vec<QueryError>) -> Option<Field> {
    match v.as_str().and_then(Field::parse) {
        Some(f) => Some(f),
        None => {
            errors.push(err(
                name,
                "a field: name, distinct_id, session_id, a property or property.key",
            ));
            None
        }
    }
}

pub(crate) fn read_filters(
    filters: &[Value],
    errors: &mut Vec<QueryError>,
) -> (NameFilter, Vec<Filter>) {
    if filters.len() > pingtower_core::event_rule::MAX_FILTERS {
        errors.push(err(
            "filters",
            format!(
                "at most {} filters",
                pingtower_core::event_rule::MAX_FILTERS
            ),
        ));
        return (NameFilter::All, Vec::new());
    }
    // Filters on the name narrow what is read; the others are applied to the events read.
    type Numbered<'a> = Vec<(usize, &'a Value)>;
    let (name_filters, others): (Numbered<'_>, Numbered<'_>) = filters
        .iter()
        .enumerate()
        .partition(|(_, f)| f.get("property").and_then(Value::as_str) == Some("name"));
    let mut names = NameFilter::All;
    for (i, f) in &name_filters {
        let (n, problems) =
            pingtower_core::event_rule::read_name_filters(std::slice::from_ref(*f), "filters");
        if names != NameFilter::All {
            errors.push(err(
                &format!("filters[{i}]"),
                "one filter on `name` at most",
            ));
        }
        names = n;
        for (_, message) in problems {
            errors.push(err(&format!("filters[{i}]"), message));
        }
    }
    let mut out = Vec::new();
    for (i, f) in others {
        let at = format!("filters[{i}]");
        let Some(field) = f.get("property").map(|p| field_of(p, &at, errors)) else {
            errors.push(err(&at, "needs `property`, `op` and `value`"));
            continue;
        };
        let value = f.get("value");
        let text = value.and_then(scalar_text);
        let number = value.and_then(Value::as_f64);
        let op = match (f.get("op").and_then(Value::as_str), &text, number) {
            (Some("eq"), Some(t), _) => Some(Op::Eq(t.clone())),
            (Some("neq"), Some(t), _) => Some(Op::Neq(t.clone())),
            (Some("contains"), Some(t), _) => Some(Op::Contains(t.clone())),
            (Some("gt"), _, Some(n)) => Some(Op::Gt(n)),
            (Some("lt"), _, Some(n)) => Some(Op::Lt(n)),
            (Some("exists"), _, _) => {
                Some(Op::Exists(value.and_then(Value::as_bool).unwrap_or(true)))
            }
            (Some("in"), _, _) => value
                .and_then(Value::as_array)
                .filter(|a| a.len() <= pingtower_core::event_rule::MAX_NAMES)
                .and_then(|a| a.iter().map(scalar_text).collect::<Option<HashSet<_>>>())
                .map(Op::In),
            _ => None,
        };
        match (field, op) {
            (Some(field), Some(op)) => out.push(Filter { field, op }),
            (Some(_), None) => errors.push(err(
                &at,
                "`op` is eq, neq, contains (with a string, number or boolean), gt, lt (with a number), exists, or in (with a list of at most 1,000)",
            )),
            (None, _) => {}
        }
    }
    (names, out)
}

/// Reads a query body; every wrong field is named.
pub fn read_query(mut body: Map<String, Value>, now: Timestamp) -> Result<Query, Vec<QueryError>> {
    let mut errors = Vec::new();
    let property = body.remove("property");
    let metric_field = |errors: &mut Vec<QueryError>, default: Option<Field>| match &property {
        Some(p) => field_of(p, "property", errors),
        None => {
            if default.is_none() {
                errors.push(err(
                    "property",
                    "this metric needs the numeric property it reads",
                ));
            }
            default
        }
    };
    let metric = match body.remove("metric") {
        None => Metric::Count,
        Some(Value::String(m)) => match m.as_str() {
            "count" => Metric::Count,
            "unique" => Metric::Unique(
                metric_field(&mut errors, Some(Field::DistinctId)).unwrap_or(Field::DistinctId),
            ),
            "sum" | "avg" | "min" | "max" | "p50" | "p90" | "p95" | "p99" => {
                let f = metric_field(&mut errors, None).unwrap_or(Field::Name);
                match m.as_str() {
                    "sum" => Metric::Sum(f),
                    "avg" => Metric::Avg(f),
                    "min" => Metric::Min(f),
                    "max" => Metric::Max(f),
                    "p50" => Metric::Percentile(0.5, f),
                    "p90" => Metric::Percentile(0.9, f),
                    "p95" => Metric::Percentile(0.95, f),
                    _ => Metric::Percentile(0.99, f),
                }
            }
            _ => {
                errors.push(err(
                    "metric",
                    "count, unique, sum, avg, min, max, p50, p90, p95 or p99",
                ));
                Metric::Count
            }
        },
        Some(_) => {
            errors.push(err(
                "metric",
                "count, unique, sum, avg, min, max, p50, p90, p95 or p99",
            ));
            Metric::Count
        }
    };
    let bucket = match body.remove("bucket") {
        None => Bucket::Hour,
        Some(Value::String(b)) => match b.as_str() {
            "minute" => Bucket::Minute,
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "week" => Bucket::Week,
            "month" => Bucket::Month,
            _ => {
                errors.push(err("bucket", "minute, hour, day, week or month"));
                Bucket::Hour
            }
        },
        Some(_) => {
            errors.push(err("bucket", "minute, hour, day, week or month"));
            Bucket::Hour
        }
    };
    let time_zone = match body.remove("time_zone") {
        None => Tz::UTC,
        Some(Value::String(z)) => z.parse::<Tz>().unwrap_or_else(|_| {
            errors.push(err(
                "time_zone",
                format!("`{z}` is not an IANA time zone (Europe/Berlin, UTC)"),
            ));
            Tz::UTC
        }),
        Some(_) => {
            errors.push(err("time_zone", "an IANA time zone name"));
            Tz::UTC
        }
    };
    let breakdown = match body.remove("breakdown") {
        None | Some(Value::Null) => None,
        Some(b) => field_of(&b, "breakdown", &mut errors),
    };
    let breakdown_limit = match body.remove("breakdown_limit") {
        None => DEFAULT_BREAKDOWN_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=100).contains(&n) => n as usize,
            _ => {
                errors.push(err("breakdown_limit", "1 to 100"));
                DEFAULT_BREAKDOWN_LIMIT
            }
        },
    };
    let (names, filters) = match body.remove("filters") {
        None | Some(Value::Null) => (NameFilter::All, Vec::new()),
        Some(Value::Array(f)) => read_filters(&f, &mut errors),
        Some(_) => {
            errors.push(err("filters", "must be a list"));
            (NameFilter::All, Vec::new())
        }
    };
    let now = now.as_millis();
    let (start, end) = match (body.remove("range"), body.remove("from"), body.remove("to")) {
        (Some(Value::String(r)), None, None) => match parse_duration_ms(&r) {
            Some(ms) => (now.saturating_sub(ms), now),
            None => {
                errors.push(err("range", "a duration such as `30m`, `24h` or `7d`"));
                (now, now)
            }
        },
        (None, Some(f), t) => match (time(&f), t.as_ref().map_or(Some(now), time)) {
            (Some(f), Some(t)) if f < t => (f, t),
            (Some(_), Some(_)) => {
                errors.push(err("to", "must be after `from`"));
                (now, now)
            }
            (None, _) => {
                errors.push(err("from", "RFC 3339 time or epoch milliseconds"));
                (now, now)
            }
            (_, None) => {
                errors.push(err("to", "RFC 3339 time or epoch milliseconds"));
                (now, now)
            }
        },
        (None, None, None) => (now - 86_400_000, now),
        (None, None, Some(_)) => {
            errors.push(err("from", "is needed with `to`"));
            (now, now)
        }
        (Some(Value::String(_)), _, _) => {
            errors.push(err("range", "give `range` or `from`/`to`, not both"));
            (now, now)
        }
        (Some(_), _, _) => {
            errors.push(err("range", "a duration such as `30m`, `24h` or `7d`"));
            (now, now)
        }
    };
    for field in body.keys() {
        errors.push(err(field, "is not a field of a query"));
    }
    if errors.is_empty() {
        if end - start > MAX_RANGE_MS {
            errors.push(err("range", "at most ten years"));
        } else if start < 0 {
            errors.push(err("from", "must be after 1970"));
        } else if end > now.saturating_add(MAX_AHEAD_MS) {
            errors.push(err("to", "must be within a year from now"));
        }
    }
    let mut edges = Vec::new();
    if errors.is_empty() {
        let mut at = bucket_start(start, bucket, time_zone);
        edges.push(at);
        while at < end {
            at = next_start(at, bucket, time_zone).max(at + 1);
            edges.push(at);
            if edges.len() > MAX_BUCKETS + 1 {
                errors.push(err(
                    "bucket",
                    format!("the range holds more than {MAX_BUCKETS} buckets of this size; pick a larger bucket"),
                ));
                break;
            }
        }
    }
    let series = if breakdown.is_some() {
        breakdown_limit + 1
    } else {
        1
    };
    if errors.is_empty() && edges.len().saturating_sub(1) * series > MAX_POINTS {
        errors.push(err(
            "bucket",
            format!("the answer would hold more than {MAX_POINTS} points; pick a larger bucket or fewer breakdown values"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Query {
        metric,
        names,
        filters,
        breakdown,
        breakdown_limit,
        bucket,
        time_zone,
        edges,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub t: Timestamp,
    /// `None` for a bucket without a figure (the average of no events).
    pub value: Option<Number>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The breakdown's value (`other` for the rest, `(none)` for events without it), or `all`.
    pub key: String,
    pub points: Vec<Point>,
}

/// Most distinct breakdown values a query may meet (their top ones are shown).
pub const MAX_KEYS: usize = 10_000;
/// Most points an answer holds (buckets times series).
pub const MAX_POINTS: usize = 100_000;

/// One bucket of one series, as events are added.
#[derive(Debug, Clone, Default)]
struct Cell {
    events: u64,
    numbers: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    values: Vec<f64>,
    /// Hashes of the values seen (64 bits: a collision in two million values is unlikely
    /// enough not to matter), so that memory does not grow with the values' length.
    unique: HashSet<u64>,
    /// Distinct users, from rollups' sketches.
    users: Option<Sketch>,
}

/// What one event adds to a cell besides being counted.
enum Figure {
    None,
    /// A unique value's hash.
    Hash(u64),
    Number(f64),
}

impl Cell {
    fn add(&mut self, figure: Figure, keep_values: bool) {
        self.events += 1;
        match figure {
            Figure::None => {}
            Figure::Hash(h) => {
                self.unique.insert(h);
            }
            Figure::Number(n) => {
                self.numbers += 1;
                self.sum += n;
                self.min = Some(self.min.map_or(n, |m| m.min(n)));
                self.max = Some(self.max.map_or(n, |m| m.max(n)));
                if keep_values {
                    self.values.push(n);
                }
            }
        }
    }

    fn merge(&mut self, o: Cell) {
        self.events += o.events;
        self.numbers += o.numbers;
        self.sum += o.sum;
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.values.extend(o.values);
        self.unique.extend(o.unique);
        if let Some(u) = o.users {
            match &mut self.users {
                Some(mine) => mine.merge(&u),
                None => self.users = Some(u),
            }
        }
    }
}

fn hash_of(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Query {
    /// The range read: `[from, to)`.
    pub fn from(&self) -> Timestamp {
        Timestamp::from_millis(self.edges.first().copied().unwrap_or(0))
    }

    pub fn to(&self) -> Timestamp {
        Timestamp::from_millis(self.edges.last().copied().unwrap_or(0))
    }

    fn buckets(&self) -> usize {
        self.edges.len().saturating_sub(1)
    }

    fn index(&self, t: i64) -> Option<usize> {
        if t < *self.edges.first()? || t >= *self.edges.last()? {
            return None;
        }
        Some(self.edges.partition_point(|e| *e <= t) - 1)
    }

    /// The columns of an event the query reads.
    pub fn columns(&self) -> crate::packed::Columns {
        let metric = self.metric.field();
        crate::packed::Columns::of(
            self.filters
                .iter()
                .map(|f| &f.field)
                .chain(&self.breakdown)
                .chain(metric),
        )
    }

    /// Most events the query may read: fewer for a percentile or a unique count read from
    /// events, which keep every value (or its hash) until the end.
    pub fn max_scan(&self) -> i64 {
        match self.metric {
            Metric::Percentile(..) | Metric::Unique(_) => MAX_SCAN_VALUES,
            _ => MAX_SCAN,
        }
    }

    /// The names to read, when the query lists them.
    pub fn names_to_read(&self) -> Option<&[String]> {
        self.names.only()
    }

    /// Whether rollups answer this query, and how: the grain to read (hours when every
    /// bucket starts on an hour) and whether with users' sketches. Unique users come from
    /// sketches only over a range that starts at or after `sketches_since`.
    pub fn rollup_plan(&self, sketches_since: Timestamp) -> Option<(Grain, bool)> {
        let users = match &self.metric {
            Metric::Count => false,
            Metric::Unique(Field::DistinctId) => true,
            _ => return None,
        };
        if !self.filters.is_empty() || self.breakdown.as_ref().is_some_and(|b| *b != Field::Name) {
            return None;
        }
        if users && self.from() < sketches_since {
            return None;
        }
        let hourly = self
            .edges
            .iter()
            .all(|e| e.rem_euclid(Grain::Hour.millis()) == 0);
        Some((if hourly { Grain::Hour } else { Grain::Minute }, users))
    }
}

/// Why an answer could not be made; the query is refused naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TooLarge {
    /// More than [`MAX_KEYS`] breakdown values.
    Keys,
    /// More events to read than the limit given.
    Events(i64),
}

impl TooLarge {
    pub fn error(&self) -> QueryError {
        match self {
            TooLarge::Keys => err(
                "breakdown",
                format!(
                    "more than {MAX_KEYS} values; filter first, or break down by another field"
                ),
            ),
            TooLarge::Events(limit) => err(
                "range",
                format!("more than {limit} events to read; narrow the range or the names"),
            ),
        }
    }
}

/// Adds events (or per-minute counts) to a query's cells, then makes its series. Memory is
/// bounded: cells exist only where something was added, breakdown values are interned and at
/// most [`MAX_KEYS`], unique values are kept as hashes, and at most [`MAX_SCAN`] events are
/// added.
pub struct Aggregator {
    q: std::sync::Arc<Query>,
    keys: HashMap<String, u32>,
    names: Vec<String>,
    cells: HashMap<(u32, u32), Cell>,
    read: i64,
    /// Most events read ([`Query::max_scan`]).
    limit: i64,
    too_large: Option<TooLarge>,
}

impl Aggregator {
    pub fn new(q: std::sync::Arc<Query>) -> Self {
        Self {
            limit: q.max_scan(),
            q,
            keys: HashMap::new(),
            names: Vec::new(),
            cells: HashMap::new(),
            read: 0,
            too_large: None,
        }
    }

    /// Whether the answer is already known to be refused (stop reading).
    pub fn refused(&self) -> bool {
        self.too_large.is_some()
    }

    fn cell(&mut self, key: &str, i: usize) -> Option<&mut Cell> {
        let id = self.key_id(key)?;
        self.cell_at(id, i)
    }

    /// The breakdown value's number (`None`: one too many, the answer is refused).
    fn key_id(&mut self, key: &str) -> Option<u32> {
        match self.keys.get(key) {
            Some(id) => Some(*id),
            None => {
                if self.keys.len() >= MAX_KEYS {
                    self.too_large = Some(TooLarge::Keys);
                    return None;
                }
                let id = u32::try_from(self.names.len()).ok()?;
                self.keys.insert(key.to_owned(), id);
                self.names.push(key.to_owned());
                Some(id)
            }
        }
    }

    fn cell_at(&mut self, id: u32, i: usize) -> Option<&mut Cell> {
        Some(self.cells.entry((id, u32::try_from(i).ok()?)).or_default())
    }

    /// Adds rollup rows (for a query that [`Query::rollup_plan`] answers from them).
    pub fn add_rollups(&mut self, rows: &[Rollup]) {
        let q = self.q.clone();
        for r in rows {
            if self.too_large.is_some() {
                return;
            }
            if !q.names.matches(&r.name) {
                continue;
            }
            let Some(i) = q.index(r.start.as_millis()) else {
                continue;
            };
            let key = if q.breakdown.is_some() {
                r.name.as_str()
            } else {
                "all"
            };
            if let Some(cell) = self.cell(key, i) {
                cell.events += u64::try_from(r.count).unwrap_or(0);
                if let Some(u) = &r.users {
                    match &mut cell.users {
                        Some(mine) => mine.merge(u),
                        None => cell.users = Some(u.clone()),
                    }
                }
            }
        }
    }

    /// Adds one event (skipped unless it matches the query).
    pub fn add(&mut self, e: &StoredEvent) {
        if self.too_large.is_some() {
            return;
        }
        let q = self.q.clone();
        if !q.names.matches(&e.name) {
            return;
        }
        let Some(i) = q.index(e.timestamp.as_millis()) else {
            return;
        };
        // Counted as `add_frame` counts: events of the names and range read.
        self.read += 1;
        if self.read > self.limit {
            self.too_large = Some(TooLarge::Events(self.limit));
            return;
        }
        if !q.filters.iter().all(|f| f.matches(e)) {
            return;
        }
        let key = match &q.breakdown {
            None => Cow::Borrowed("all"),
            Some(b) => b
                .value(e)
                .and_then(|v| v.text())
                .unwrap_or(Cow::Borrowed("(none)")),
        };
        let Some(cell) = self.cell(&key, i) else {
            return;
        };
        let figure = match &q.metric {
            Metric::Count => Figure::None,
            Metric::Unique(f) => f
                .value(e)
                .and_then(|v| v.text())
                .map_or(Figure::None, |t| Figure::Hash(hash_of(&t))),
            Metric::Sum(f)
            | Metric::Avg(f)
            | Metric::Min(f)
            | Metric::Max(f)
            | Metric::Percentile(_, f) => f
                .value(e)
                .and_then(|v| v.number())
                .map_or(Figure::None, Figure::Number),
        };
        cell.add(figure, matches!(q.metric, Metric::Percentile(..)));
    }

    /// Adds the events of a block's [`Frame`] (read with [`Query::columns`]): the same
    /// answer as adding them one by one, without making them. What a field's dictionary
    /// string decides (a filter, a breakdown value, a unique value's hash) is worked out
    /// once per string, not per event.
    pub fn add_frame(&mut self, frame: &Frame) {
        if self.too_large.is_some() {
            return;
        }
        let q = self.q.clone();
        let names: Vec<bool> = frame.name.dict.iter().map(|n| q.names.matches(n)).collect();
        let filters: Vec<(Column<'_>, &Filter)> = q
            .filters
            .iter()
            .map(|f| (Column::of(&f.field, frame), f))
            .collect();
        let mut passes: Vec<Memo<bool>> = filters.iter().map(|(c, _)| Memo::new(c)).collect();
        let breakdown = q.breakdown.as_ref().map(|b| Column::of(b, frame));
        let mut keys: Option<Memo<Option<u32>>> = breakdown.as_ref().map(Memo::new);
        let all = match breakdown {
            None => self.key_id("all"),
            Some(_) => None,
        };
        let percentile = matches!(q.metric, Metric::Percentile(..));
        let metric = q.metric.field().map(|f| Column::of(f, frame));
        let mut hashes: Option<Memo<Option<u64>>> = match (&q.metric, &metric) {
            (Metric::Unique(_), Some(c)) => Some(Memo::new(c)),
            _ => None,
        };
        for (i, &t) in frame.ts.iter().enumerate() {
            let named = frame
                .name
                .at
                .get(i)
                .and_then(|&k| names.get((k as usize).checked_sub(1)?))
                .copied()
                .unwrap_or(false);
            if !named {
                continue;
            }
            let Some(bucket) = q.index(t) else {
                continue;
            };
            self.read += 1;
            if self.read > self.limit {
                self.too_large = Some(TooLarge::Events(self.limit));
                return;
            }
            if !filters
                .iter()
                .zip(passes.iter_mut())
                .all(|((c, f), memo)| memo.get(c, i, |v| f.test(v)))
            {
                continue;
            }
            let id = match (&breakdown, keys.as_mut()) {
                (Some(c), Some(memo)) => memo.get(c, i, |v| {
                    let key = v.and_then(|v| v.text());
                    self.key_id(key.as_deref().unwrap_or("(none)"))
                }),
                _ => all,
            };
            let Some(id) = id else {
                if self.too_large.is_some() {
                    return;
                }
                continue;
            };
            let figure = match (&metric, hashes.as_mut()) {
                (None, _) => Figure::None,
                (Some(c), Some(memo)) => memo
                    .get(c, i, |v| v.and_then(|v| v.text()).map(|t| hash_of(&t)))
                    .map_or(Figure::None, Figure::Hash),
                (Some(c), None) => c
                    .value(i)
                    .and_then(|v| v.number())
                    .map_or(Figure::None, Figure::Number),
            };
            if let Some(cell) = self.cell_at(id, bucket) {
                cell.add(figure, percentile);
            }
        }
    }

    /// The series: with a breakdown, its values with the most events first, at most the
    /// query's limit, the rest merged into `other`.
    pub fn finish(self) -> Result<Vec<Series>, TooLarge> {
        if let Some(t) = self.too_large {
            return Err(t);
        }
        let q = self.q;
        let n = q.buckets();
        let mut names = self.names;
        let mut totals = vec![0u64; names.len()];
        for ((k, _), c) in &self.cells {
            totals[*k as usize] += c.events;
        }
        // Rank the values, then give cells only to the ones shown (and `other`).
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|a, b| {
            totals[*b]
                .cmp(&totals[*a])
                .then_with(|| names[*a].cmp(&names[*b]))
        });
        let shown: HashMap<usize, usize> = order
            .iter()
            .take(q.breakdown_limit)
            .enumerate()
            .map(|(rank, k)| (*k, rank))
            .collect();
        let has_other = order.len() > q.breakdown_limit;
        let mut out: Vec<(String, Vec<Cell>)> = order
            .iter()
            .take(q.breakdown_limit)
            .map(|k| (std::mem::take(&mut names[*k]), vec![Cell::default(); n]))
            .collect();
        if has_other {
            out.push(("other".into(), vec![Cell::default(); n]));
        }
        if q.breakdown.is_none() && out.is_empty() {
            out.push(("all".into(), vec![Cell::default(); n]));
        }
        let other = out.len().saturating_sub(1);
        for ((k, i), c) in self.cells {
            let row = shown.get(&(k as usize)).copied().unwrap_or(other);
            if let Some(slot) = out.get_mut(row).and_then(|r| r.1.get_mut(i as usize)) {
                slot.merge(c);
            }
        }
        let figure = |c: Cell| -> Option<Number> {
            let f = |x: f64| Number::from_f64(x);
            match &q.metric {
                Metric::Count => Some(Number::from(c.events)),
                Metric::Unique(_) => Some(Number::from(
                    c.users
                        .as_ref()
                        .map_or(c.unique.len() as u64, Sketch::estimate),
                )),
                Metric::Sum(_) => f(c.sum),
                Metric::Avg(_) => (c.numbers > 0)
                    .then(|| c.sum / c.numbers as f64)
                    .and_then(f),
                Metric::Min(_) => c.min.and_then(f),
                Metric::Max(_) => c.max.and_then(f),
                Metric::Percentile(p, _) => {
                    let mut v = c.values;
                    if v.is_empty() {
                        return None;
                    }
                    v.sort_by(f64::total_cmp);
                    // Nearest rank.
                    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
                    f(v[rank - 1])
                }
            }
        };
        Ok(out
            .into_iter()
            .map(|(key, cells)| Series {
                key,
                points: cells
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| Point {
                        t: Timestamp::from_millis(q.edges[i]),
                        value: figure(c),
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Reads the events a query needs from `store` ([`EventStore::pieces`]) into `agg`: the
/// store reads while another thread aggregates what was read (blocks as [`Frame`]s, by
/// column), until everything is read or the answer is known to be refused.
pub async fn aggregate(
    store: &dyn EventStore,
    tenant: TenantId,
    mut agg: Aggregator,
) -> Result<Aggregator, EventStoreError> {
    let q = agg.q.clone();
    let want = q.columns();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(8);
    let reading = want.clone();
    let worker = tokio::task::spawn_blocking(move || {
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Events(events) => events.iter().for_each(|e| agg.add(e)),
                Piece::Block(data) => {
                    let frame = crate::packed::frame(&data, &reading)
                        .map_err(|e| EventStoreError::Corrupt(e.to_string()))?;
                    agg.add_frame(&frame);
                }
            }
            if agg.refused() {
                // Closing the channel stops the reading.
                break;
            }
        }
        Ok::<_, EventStoreError>(agg)
    });
    let read = store
        .pieces(tenant, q.names_to_read(), (q.from(), q.to()), &want, &tx)
        .await;
    drop(tx);
    let agg = worker
        .await
        .map_err(|e| EventStoreError::Corrupt(format!("aggregating events failed: {e}")))??;
    read?;
    Ok(agg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18T10:26:40Z

    fn read(v: Value) -> Result<Query, Vec<QueryError>> {
        read_query(v.as_object().unwrap().clone(), Timestamp::from_millis(NOW))
    }

    fn mc(name: &str, minute: i64, count: i64) -> Rollup {
        Rollup {
            name: name.into(),
            start: Timestamp::from_millis(minute),
            count,
            users: None,
        }
    }

    fn ev(id: i64, name: &str, at: i64, user: &str, props: Value) -> StoredEvent {
        StoredEvent {
            id,
            name: name.into(),
            timestamp: Timestamp::from_millis(at),
            distinct_id: Some(user.into()),
            session_id: None,
            properties: props.as_object().unwrap().clone(),
        }
    }

    /// Each series' total.
    fn totals(series: &[Series]) -> BTreeMap<String, f64> {
        series
            .iter()
            .map(|s| {
                (
                    s.key.clone(),
                    s.points
                        .iter()
                        .filter_map(|p| p.value.as_ref().and_then(Number::as_f64))
                        .sum(),
                )
            })
            .collect()
    }

    fn from_minutes(q: &Query, counts: &[Rollup]) -> Vec<Series> {
        let mut a = Aggregator::new(std::sync::Arc::new(q.clone()));
        a.add_rollups(counts);
        a.finish().unwrap()
    }

    fn values(s: &Series) -> Vec<Option<f64>> {
        s.points
            .iter()
            .map(|p| p.value.as_ref().and_then(Number::as_f64))
            .collect()
    }

    #[test]
    fn counts_fall_into_buckets_with_zeros_between() {
        let q = read(json!({"metric": "count", "bucket": "hour", "range": "3h",
                            "filters": [{"property": "name", "op": "eq", "value": "signup"}]}))
        .unwrap();
        assert!(q.rollup_plan(Timestamp::from_millis(0)).is_some());
        assert_eq!(q.names_to_read(), Some(&["signup".to_owned()][..]));
        assert_eq!(q.edges.len(), 5, "07:00 to 11:00: 4 buckets");
        let first = q.edges[0];
        let s = from_minutes(
            &q,
            &[
                mc("signup", first, 2),
                mc("signup", first + 60_000, 3),
                mc("signup", first + 3 * 3_600_000, 7),
            ],
        );
        assert_eq!(values(&s[0]), [Some(5.0), Some(0.0), Some(0.0), Some(7.0)]);
    }

    #[test]
    fn days_follow_the_time_zone_across_daylight_saving() {
        // Europe/Berlin leaves summer time on 2026-10-25: that day has 25 hours.
        let q = read(json!({"bucket": "day", "time_zone": "Europe/Berlin",
                            "from": "2026-10-24T00:00:00+02:00", "to": "2026-10-26T12:00:00+01:00"}))
        .unwrap();
        let hours: Vec<i64> = q
            .edges
            .windows(2)
            .map(|w| (w[1] - w[0]) / 3_600_000)
            .collect();
        assert_eq!(hours, [24, 25, 24]);
        // Weeks start on Monday, months on the first.
        let w = read(
            json!({"bucket": "week", "from": "2026-11-18T10:00:00Z", "to": "2026-11-19T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(
            chrono::DateTime::from_timestamp_millis(w.edges[0])
                .unwrap()
                .to_rfc3339(),
            "2026-11-16T00:00:00+00:00"
        );
        let m = read(json!({"bucket": "month", "time_zone": "America/New_York",
                            "from": "2026-11-18T10:00:00Z", "to": "2026-12-02T00:00:00Z"}))
        .unwrap();
        assert_eq!(
            chrono::DateTime::from_timestamp_millis(m.edges[0])
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T04:00:00+00:00"
        );
        assert_eq!(m.edges.len(), 3);
    }

    #[test]
    fn property_filters_breakdowns_and_metrics_read_events() {
        let q = read(json!({"metric": "unique", "bucket": "day", "range": "2d", "breakdown": "plan",
                            "filters": [{"property": "name", "op": "eq", "value": "order"},
                                        {"property": "geo.country", "op": "in", "value": ["DE", "FR"]},
                                        {"property": "amount", "op": "gt", "value": 5}]}))
        .unwrap();
        assert!(q.rollup_plan(Timestamp::from_millis(0)).is_none());
        let t = NOW - 1_000;
        let mut agg = Aggregator::new(std::sync::Arc::new(q.clone()));
        for e in [
            ev(
                1,
                "order",
                t,
                "u1",
                json!({"plan": "pro", "amount": 10, "geo": {"country": "DE"}}),
            ),
            ev(
                2,
                "order",
                t,
                "u1",
                json!({"plan": "pro", "amount": 12, "geo": {"country": "FR"}}),
            ),
            ev(
                3,
                "order",
                t,
                "u2",
                json!({"plan": "pro", "amount": 9, "geo": {"country": "DE"}}),
            ),
            ev(
                4,
                "order",
                t,
                "u3",
                json!({"plan": "free", "amount": 6, "geo": {"country": "DE"}}),
            ),
            ev(
                5,
                "order",
                t,
                "u4",
                json!({"plan": "free", "amount": 1, "geo": {"country": "DE"}}),
            ),
            ev(
                6,
                "order",
                t,
                "u5",
                json!({"plan": "pro", "amount": 50, "geo": {"country": "US"}}),
            ),
            ev(
                7,
                "refund",
                t,
                "u6",
                json!({"plan": "pro", "amount": 50, "geo": {"country": "DE"}}),
            ),
            ev(
                8,
                "order",
                t,
                "u7",
                json!({"amount": 7, "geo": {"country": "FR"}}),
            ),
        ] {
            agg.add(&e);
        }
        let s = agg.finish().unwrap();
        let unique = totals(&s);
        assert_eq!(unique["pro"], 2.0, "{unique:?}");
        assert_eq!(unique["free"], 1.0);
        assert_eq!(unique["(none)"], 1.0);
        // Numeric metrics, and a breakdown cut to its top values.
        let t2 = |m: &str| {
            read(
                json!({"metric": m, "property": "amount", "bucket": "day", "range": "1d",
                        "breakdown": "plan", "breakdown_limit": 1}),
            )
            .unwrap()
        };
        let events = [
            ev(1, "order", t, "u1", json!({"plan": "pro", "amount": 10})),
            ev(2, "order", t, "u2", json!({"plan": "pro", "amount": 20})),
            ev(3, "order", t, "u3", json!({"plan": "pro", "amount": 30})),
            ev(4, "order", t, "u4", json!({"plan": "free", "amount": 1})),
            ev(5, "order", t, "u5", json!({"plan": "team", "amount": "3"})),
        ];
        let run = |q: &Query| {
            let mut a = Aggregator::new(std::sync::Arc::new(q.clone()));
            events.iter().for_each(|e| a.add(e));
            totals(&a.finish().unwrap())
        };
        assert_eq!(
            run(&t2("sum")),
            BTreeMap::from([("pro".into(), 60.0), ("other".into(), 4.0)])
        );
        assert_eq!(run(&t2("avg"))["pro"], 20.0);
        assert_eq!(run(&t2("min"))["other"], 1.0);
        assert_eq!(run(&t2("max"))["pro"], 30.0);
        assert_eq!(run(&t2("p50"))["pro"], 20.0);
        assert_eq!(run(&t2("p99"))["pro"], 30.0);
    }

    #[test]
    fn a_block_read_by_column_answers_as_its_events_do() {
        use crate::packed::{Columns, PackedEvent, encode, frame};
        // Every kind of value, absent ones, nested ones, numbers sent as strings.
        let mut events: Vec<StoredEvent> = (0..600i64)
            .map(|i| {
                let (plan, country) = (
                    ["free", "pro", "team"][(i % 3) as usize],
                    ["DE", "FR", "US"][(i % 5 % 3) as usize],
                );
                let mut p = json!({
                    "plan": plan,
                    "amount": (i % 17) as f64 * 1.25,
                    "geo": {"country": country},
                });
                match i % 7 {
                    0 => p["plan"] = json!(null),
                    1 => p["amount"] = json!(format!("{}", i % 11)),
                    2 => p["flag"] = json!(i % 2 == 0),
                    3 => p["plan"] = json!(i % 4),
                    4 => {
                        p.as_object_mut().unwrap().remove("plan");
                    }
                    _ => {}
                }
                let mut e = ev(
                    i,
                    ["signup", "order", "refund"][(i % 3) as usize],
                    NOW - 1_000 - (i * 97_000) % 86_400_000,
                    &format!("u{}", i % 41),
                    p,
                );
                if i % 9 == 0 {
                    e.distinct_id = None;
                }
                e
            })
            .collect();
        events.sort_by_key(|e| (e.timestamp.as_millis(), e.id));
        let mut packed: Vec<PackedEvent> = events
            .iter()
            .map(|e| PackedEvent {
                id: e.id,
                ts: e.timestamp.as_millis(),
                name: e.name.clone(),
                distinct_id: e.distinct_id.clone(),
                session_id: None,
                properties: e.properties.clone(),
            })
            .collect();
        let block = encode(&mut packed).unwrap();
        let filters = [
            json!([]),
            json!([{"property": "name", "op": "in", "value": ["order", "refund"]}]),
            json!([{"property": "plan", "op": "eq", "value": "pro"}]),
            json!([{"property": "plan", "op": "neq", "value": "pro"}]),
            json!([{"property": "plan", "op": "eq", "value": "2"}]),
            json!([{"property": "plan", "op": "exists", "value": true}]),
            json!([{"property": "plan", "op": "exists", "value": false}]),
            json!([{"property": "geo.country", "op": "in", "value": ["DE", "US"]}]),
            json!([{"property": "amount", "op": "gt", "value": 5}]),
            json!([{"property": "amount", "op": "lt", "value": 5}, {"property": "flag", "op": "eq", "value": "true"}]),
            json!([{"property": "distinct_id", "op": "contains", "value": "1"}]),
            json!([{"property": "missing", "op": "exists", "value": false}]),
        ];
        let metrics = [
            json!({"metric": "count"}),
            json!({"metric": "unique"}),
            json!({"metric": "unique", "property": "plan"}),
            json!({"metric": "sum", "property": "amount"}),
            json!({"metric": "avg", "property": "amount"}),
            json!({"metric": "max", "property": "geo.country"}),
            json!({"metric": "p90", "property": "amount"}),
        ];
        let breakdowns = [
            json!(null),
            json!("plan"),
            json!("name"),
            json!("distinct_id"),
            json!("geo.country"),
            json!("amount"),
        ];
        let mut compared = 0;
        for f in &filters {
            for m in &metrics {
                for b in &breakdowns {
                    let mut body = m.clone();
                    body["bucket"] = json!("hour");
                    body["range"] = json!("2d");
                    body["filters"] = f.clone();
                    if !b.is_null() {
                        body["breakdown"] = b.clone();
                    }
                    let q = std::sync::Arc::new(read(body.clone()).unwrap());
                    let mut one_by_one = Aggregator::new(q.clone());
                    events.iter().for_each(|e| one_by_one.add(e));
                    let mut by_column = Aggregator::new(q.clone());
                    by_column.add_frame(&frame(&block, &q.columns()).unwrap());
                    let (a, b) = (one_by_one.finish().unwrap(), by_column.finish().unwrap());
                    assert_eq!(a, b, "{body}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, filters.len() * metrics.len() * breakdowns.len());
        // Only the columns asked for are read: a frame without `plan` has none of it.
        let f = frame(&block, &Columns::of([&Field::DistinctId])).unwrap();
        assert!(f.property("plan").is_none());
        assert_eq!(f.len(), events.len());
        assert_eq!(f.distinct_id.get(1), events[1].distinct_id.as_deref());
    }

    #[test]
    fn breakdowns_with_too_many_values_and_scans_past_the_cap_are_refused() {
        let q = std::sync::Arc::new(
            read(json!({"bucket": "day", "range": "1d", "breakdown": "distinct_id"})).unwrap(),
        );
        let mut a = Aggregator::new(q.clone());
        for i in 0..=MAX_KEYS as i64 {
            a.add(&ev(i, "x", NOW - 1_000, &format!("u{i}"), json!({})));
        }
        assert!(a.refused());
        assert_eq!(a.finish().unwrap_err(), TooLarge::Keys);
        let counted = std::sync::Arc::new(
            read(json!({"bucket": "day", "range": "1d", "metric": "sum", "property": "n"}))
                .unwrap(),
        );
        assert_eq!(counted.max_scan(), MAX_SCAN);
        let mut a = Aggregator::new(counted);
        a.limit = 1_000;
        let e = ev(1, "x", NOW - 1_000, "u", json!({"n": 1}));
        for _ in 0..=1_000 {
            a.add(&e);
            assert!(!a.refused() || a.read > 1_000);
        }
        assert_eq!(a.finish().unwrap_err(), TooLarge::Events(1_000));
        let p90 = read(json!({"bucket": "day", "range": "1d", "metric": "p90", "property": "n"}))
            .unwrap();
        assert_eq!(p90.max_scan(), MAX_SCAN_VALUES);
    }

    #[test]
    fn what_is_wrong_is_named_never_ignored() {
        let e = read(json!({"metric": "median", "bucket": "fortnight", "time_zone": "Mars/Olympus",
                            "breakdown": "a.b.c", "filters": [{"property": "plan", "op": "gt", "value": "x"}],
                            "range": "soon", "extra": 1}))
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metric",
                "bucket",
                "time_zone",
                "breakdown",
                "filters[0]",
                "range",
                "extra"
            ]
        );
        let e = read(json!({"metric": "sum"})).unwrap_err();
        assert_eq!(e[0].field, "property");
        let e = read(json!({"bucket": "minute", "range": "30d"})).unwrap_err();
        assert_eq!(e[0].field, "bucket");
        // Times far away, and answers too large to make, are refused before any work.
        let e = read(json!({"bucket": "day", "from": 8_210_266_790_400_000i64, "to": 8_210_266_790_400_001i64})).unwrap_err();
        assert_eq!(e[0].field, "to");
        let e = read(json!({"range": "99999d", "bucket": "month"})).unwrap_err();
        assert_eq!(e[0].field, "range");
        let e = read(
            json!({"range": "7d", "bucket": "minute", "breakdown": "plan", "breakdown_limit": 100}),
        )
        .unwrap_err();
        assert_eq!(e[0].field, "bucket");
        let e = read(json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-17T00:00:00Z"}))
            .unwrap_err();
        assert_eq!(e[0].field, "to");
    }
}
