//! Counts over a range, in buckets, from the per-minute counts the store keeps.
//!
//! What a query may ask today: the `count` metric, filtered on the event name (`eq`, `neq`,
//! `in`), broken down by `name` or not at all, in `minute`, `hour` or `day` buckets (UTC), over
//! a relative range (`30m`, `24h`, `7d`) or `from`/`to`. Anything else is refused naming the
//! field, never silently ignored.

use crate::store::MinuteCount;
use pingtower_core::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most buckets one answer holds.
pub const MAX_BUCKETS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    pub const fn millis(self) -> i64 {
        match self {
            Bucket::Minute => 60_000,
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }
}

pub use pingtower_core::event_rule::NameFilter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountQuery {
    pub names: NameFilter,
    /// One series per event name (`breakdown: "name"`), or one in all.
    pub by_name: bool,
    pub bucket: Bucket,
    /// Start of the first bucket.
    pub from: Timestamp,
    /// End of the last bucket (exclusive).
    pub to: Timestamp,
}

/// A field of the query that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> QueryError {
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

fn time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp::from_millis(t.timestamp_millis())),
        Value::Number(n) => n.as_i64().map(Timestamp::from_millis),
        _ => None,
    }
}

/// Reads a query body (`POST /api/v1/events/query`); every wrong field is named.
pub fn read_count_query(
    body: Map<String, Value>,
    now: Timestamp,
) -> Result<CountQuery, Vec<QueryError>> {
    let mut errors = Vec::new();
    let mut body = body;
    match body.remove("metric") {
        None => {}
        Some(Value::String(m)) if m == "count" => {}
        Some(Value::String(m))
            if [
                "unique", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99",
            ]
            .contains(&m.as_str()) =>
        {
            errors.push(err(
                "metric",
                format!("`{m}` is not available yet; `count` is"),
            ));
        }
        Some(_) => errors.push(err("metric", "must be `count`")),
    }
    let bucket = match body.remove("bucket") {
        None => Bucket::Hour,
        Some(Value::String(b)) => match b.as_str() {
            "minute" => Bucket::Minute,
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "week" | "month" => {
                errors.push(err(
                    "bucket",
                    format!("`{b}` is not available yet; minute, hour or day"),
                ));
                Bucket::Hour
            }
            _ => {
                errors.push(err("bucket", "must be minute, hour or day"));
                Bucket::Hour
            }
        },
        Some(_) => {
            errors.push(err("bucket", "must be minute, hour or day"));
            Bucket::Hour
        }
    };
    match body.remove("time_zone") {
        None => {}
        Some(Value::String(z)) if z == "UTC" || z == "Etc/UTC" => {}
        Some(_) => errors.push(err("time_zone", "only `UTC` is available yet")),
    }
    let by_name = match body.remove("breakdown") {
        None | Some(Value::Null) => false,
        Some(Value::String(b)) if b == "name" => true,
        Some(Value::String(_)) => {
            errors.push(err("breakdown", "only `name` is available yet"));
            false
        }
        Some(_) => {
            errors.push(err("breakdown", "must be a property name"));
            false
        }
    };
    let mut names = NameFilter::All;
    match body.remove("filters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(filters)) => {
            let (n, problems) = pingtower_core::event_rule::read_name_filters(&filters, "filters");
            names = n;
            errors.extend(
                problems
                    .into_iter()
                    .map(|(field, message)| QueryError { field, message }),
            );
        }
        Some(_) => errors.push(err("filters", "must be a list")),
    }
    let range = body.remove("range");
    let from = body.remove("from");
    let to = body.remove("to");
    let (start, end) = match (range, from, to) {
        (Some(Value::String(r)), None, None) => match parse_duration_ms(&r) {
            Some(ms) => (now.as_millis().saturating_sub(ms), now.as_millis()),
            None => {
                errors.push(err("range", "a duration such as `30m`, `24h` or `7d`"));
                (now.as_millis(), now.as_millis())
            }
        },
        (None, Some(f), t) => {
            let f = time(&f);
            let t = match t {
                None => Some(now),
                Some(t) => time(&t),
            };
            match (f, t) {
                (Some(f), Some(t)) if f.as_millis() < t.as_millis() => {
                    (f.as_millis(), t.as_millis())
                }
                (Some(_), Some(_)) => {
                    errors.push(err("to", "must be after `from`"));
                    (now.as_millis(), now.as_millis())
                }
                (None, _) => {
                    errors.push(err("from", "RFC 3339 time or epoch milliseconds"));
                    (now.as_millis(), now.as_millis())
                }
                (_, None) => {
                    errors.push(err("to", "RFC 3339 time or epoch milliseconds"));
                    (now.as_millis(), now.as_millis())
                }
            }
        }
        (None, None, None) => (now.as_millis() - 86_400_000, now.as_millis()),
        (Some(_), None, None) => {
            errors.push(err("range", "a duration such as `30m`, `24h` or `7d`"));
            (now.as_millis(), now.as_millis())
        }
        _ => {
            errors.push(err("range", "give `range` or `from`/`to`, not both"));
            (now.as_millis(), now.as_millis())
        }
    };
    for field in body.keys() {
        errors.push(err(field, "is not a field of a query"));
    }
    // Buckets are aligned to their size (UTC); the last one holds `to`.
    let size = bucket.millis();
    let from = start.div_euclid(size) * size;
    let to = (end.saturating_sub(1)).div_euclid(size) * size + size;
    if errors.is_empty() && (to - from) / size > MAX_BUCKETS {
        errors.push(err(
            "bucket",
            format!(
                "the range holds more than {MAX_BUCKETS} buckets of this size; pick a larger bucket"
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CountQuery {
        names,
        by_name,
        bucket,
        from: Timestamp::from_millis(from),
        to: Timestamp::from_millis(to),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub t: Timestamp,
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The breakdown's value (the event name), or `"all"`.
    pub key: String,
    pub points: Vec<Point>,
}

impl CountQuery {
    /// The names to read from the store (`None`: all of them).
    pub fn names_to_read(&self) -> Option<&[String]> {
        self.names.only()
    }

    /// The series of this query from per-minute counts (every bucket present, zero when none).
    pub fn series(&self, counts: &[MinuteCount]) -> Vec<Series> {
        let size = self.bucket.millis();
        let buckets =
            usize::try_from((self.to.as_millis() - self.from.as_millis()) / size).unwrap_or(0);
        let mut by_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        if !self.by_name {
            by_key.insert("all".into(), vec![0; buckets]);
        }
        for c in counts {
            if !self.names.matches(&c.name) {
                continue;
            }
            let at = c.minute.as_millis();
            if at < self.from.as_millis() || at >= self.to.as_millis() {
                continue;
            }
            let Ok(i) = usize::try_from((at - self.from.as_millis()) / size) else {
                continue;
            };
            let key = if self.by_name {
                c.name.clone()
            } else {
                "all".into()
            };
            let values = by_key.entry(key).or_insert_with(|| vec![0; buckets]);
            if let Some(v) = values.get_mut(i) {
                *v += c.count;
            }
        }
        by_key
            .into_iter()
            .map(|(key, values)| Series {
                key,
                points: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Point {
                        t: Timestamp::from_millis(self.from.as_millis() + i as i64 * size),
                        value,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_000_000_000; // 2026-11-18T10:26:40Z

    fn read(v: Value) -> Result<CountQuery, Vec<QueryError>> {
        read_count_query(v.as_object().unwrap().clone(), Timestamp::from_millis(NOW))
    }

    fn mc(name: &str, minute: i64, count: i64) -> MinuteCount {
        MinuteCount {
            name: name.into(),
            minute: Timestamp::from_millis(minute),
            count,
        }
    }

    #[test]
    fn counts_fall_into_aligned_buckets_with_zeros_between() {
        let q = read(json!({"metric": "count", "bucket": "hour", "range": "3h",
                            "filters": [{"property": "name", "op": "eq", "value": "signup"}]}))
        .unwrap();
        assert_eq!(q.names_to_read(), Some(&["signup".to_owned()][..]));
        // 07:00 .. 11:00 (the hour holding now is the last bucket).
        assert_eq!(q.from.as_millis() % 3_600_000, 0);
        assert_eq!((q.to.as_millis() - q.from.as_millis()) / 3_600_000, 4);
        let first = q.from.as_millis();
        let s = q.series(&[
            mc("signup", first, 2),
            mc("signup", first + 60_000, 3),
            mc("signup", first + 3 * 3_600_000, 7),
        ]);
        assert_eq!(s.len(), 1);
        assert_eq!(
            s[0].points.iter().map(|p| p.value).collect::<Vec<_>>(),
            [5, 0, 0, 7]
        );
    }

    #[test]
    fn a_breakdown_by_name_and_an_exclusion() {
        let q = read(json!({"bucket": "day", "range": "2d", "breakdown": "name",
                            "filters": [{"property": "name", "op": "neq", "value": "noise"}]}))
        .unwrap();
        let first = q.from.as_millis();
        let s = q.series(&[
            mc("a", first, 1),
            mc("noise", first, 9),
            mc("b", first + 86_400_000, 4),
        ]);
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn what_is_not_available_is_named_never_ignored() {
        let e = read(json!({"metric": "unique", "bucket": "week", "time_zone": "Europe/Berlin",
                            "breakdown": "plan", "filters": [{"property": "plan", "op": "eq", "value": "pro"}],
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
        let e = read(json!({"bucket": "minute", "range": "30d"})).unwrap_err();
        assert_eq!(e[0].field, "bucket");
        let e = read(json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-17T00:00:00Z"}))
            .unwrap_err();
        assert_eq!(e[0].field, "to");
    }
}
