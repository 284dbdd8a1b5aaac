//! What an event monitor watches (`kind: event`): a tenant's analytics events of some names,
//! counted over its last minutes, against a condition. Shared by the analytics queries (the
//! name filters) and the worker that evaluates event monitors.

use crate::Timestamp;
use serde_json::{Map, Value};

/// Which event names are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameFilter {
    All,
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl NameFilter {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameFilter::All => true,
            NameFilter::Only(n) => n.iter().any(|x| x == name),
            NameFilter::AllBut(n) => !n.iter().any(|x| x == name),
        }
    }

    /// The names to read, when the filter lists them.
    pub fn only(&self) -> Option<&[String]> {
        match self {
            NameFilter::Only(n) => Some(n),
            _ => None,
        }
    }

    /// How a reason names what is counted: `payment_failed`, `a or b`, `events`.
    pub fn describe(&self) -> String {
        match self {
            NameFilter::All => "events".into(),
            NameFilter::Only(n) => n.join(" or "),
            NameFilter::AllBut(n) => format!("events other than {}", n.join(", ")),
        }
    }
}

/// Most names one filter lists.
pub const MAX_NAMES: usize = 1_000;
/// Most filters one query (or funnel step) has.
pub const MAX_FILTERS: usize = 20;

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// Reads query filters (`[{"property": "name", "op": "eq" | "neq" | "in", "value": ...}]`).
/// Problems are `(field, message)`, fields named `{prefix}[i]`.
pub fn read_name_filters(filters: &[Value], prefix: &str) -> (NameFilter, Vec<(String, String)>) {
    let mut names = NameFilter::All;
    let mut errors = Vec::new();
    if filters.len() > MAX_FILTERS {
        errors.push((prefix.to_owned(), format!("at most {MAX_FILTERS} filters")));
        return (names, errors);
    }
    for (i, f) in filters.iter().enumerate() {
        let field = format!("{prefix}[{i}]");
        if f.get("value")
            .and_then(Value::as_array)
            .is_some_and(|v| v.len() > MAX_NAMES)
        {
            errors.push((field, format!("at most {MAX_NAMES} values")));
            continue;
        }
        let property = f.get("property").and_then(Value::as_str);
        let op = f.get("op").and_then(Value::as_str);
        let value = f.get("value").and_then(strings);
        match (property, op, value) {
            (Some("name"), Some(_), Some(_)) if names != NameFilter::All => {
                errors.push((field, "one filter on `name` at most".into()));
            }
            (Some("name"), Some("eq" | "in"), Some(v)) => names = NameFilter::Only(v),
            (Some("name"), Some("neq"), Some(v)) => names = NameFilter::AllBut(v),
            (Some("name"), _, _) => errors.push((
                field,
                "a filter on `name` is {\"property\": \"name\", \"op\": \"eq\" | \"neq\" | \"in\", \"value\": ...}".into(),
            )),
            (Some(_), _, _) => errors.push((
                field,
                "filters on properties are not available yet; filter on `name`".into(),
            )),
            (None, _, _) => errors.push((field, "needs `property`, `op` and `value`".into())),
        }
    }
    (names, errors)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionOp {
    /// DOWN while the count is above the threshold.
    Above,
    /// DOWN while the count is below the threshold.
    Below,
    /// DOWN while no matching event came for the minutes.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRule {
    pub names: NameFilter,
    pub op: ConditionOp,
    pub threshold: i64,
    pub minutes: u32,
}

/// Most minutes a condition looks back.
pub const MAX_MINUTES: u64 = 7 * 24 * 60;

impl EventRule {
    /// Reads an event monitor's `query` and `condition`; problems are `(field, message)`.
    pub fn read(settings: &Map<String, Value>) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut names = NameFilter::All;
        match settings.get("query") {
            None | Some(Value::Null) => errors.push(("query".into(), "is required".into())),
            Some(Value::Object(q)) => {
                for (k, v) in q {
                    match (k.as_str(), v) {
                        ("metric", Value::String(m)) if m == "count" => {}
                        ("metric", _) => {
                            errors.push(("query.metric".into(), "only `count` for now".into()));
                        }
                        ("filters", Value::Array(f)) => {
                            let (n, e) = read_name_filters(f, "query.filters");
                            names = n;
                            errors.extend(e);
                        }
                        ("filters", _) => {
                            errors.push(("query.filters".into(), "must be a list".into()))
                        }
                        (other, _) => errors.push((
                            format!("query.{other}"),
                            "is not a field of an event monitor's query (metric, filters)".into(),
                        )),
                    }
                }
            }
            Some(_) => errors.push(("query".into(), "must be an object".into())),
        }
        let (mut op, mut threshold, mut minutes) = (ConditionOp::Above, 0, 5);
        match settings.get("condition") {
            Some(Value::Object(c)) => {
                match c.get("op").and_then(Value::as_str) {
                    Some("above") => op = ConditionOp::Above,
                    Some("below") => op = ConditionOp::Below,
                    Some("absent") => op = ConditionOp::Absent,
                    _ => errors.push((
                        "condition.op".into(),
                        "must be `above`, `below` or `absent`".into(),
                    )),
                }
                match c.get("minutes").and_then(Value::as_u64) {
                    Some(m) if (1..=MAX_MINUTES).contains(&m) => minutes = m as u32,
                    _ => errors.push((
                        "condition.minutes".into(),
                        format!("a whole number of minutes from 1 to {MAX_MINUTES}"),
                    )),
                }
                match (op, c.get("threshold")) {
                    (ConditionOp::Absent, None | Some(Value::Null)) => {}
                    (ConditionOp::Absent, Some(_)) => errors.push((
                        "condition.threshold".into(),
                        "`absent` takes no threshold".into(),
                    )),
                    (_, Some(t)) => match t.as_i64() {
                        Some(t) if t >= 0 => threshold = t,
                        _ => errors.push((
                            "condition.threshold".into(),
                            "a whole number, 0 or more".into(),
                        )),
                    },
                    (_, None) => errors.push(("condition.threshold".into(), "is required".into())),
                }
                for k in c.keys() {
                    if !["op", "threshold", "minutes"].contains(&k.as_str()) {
                        errors.push((
                            format!("condition.{k}"),
                            "is not a field of a condition (op, threshold, minutes)".into(),
                        ));
                    }
                }
            }
            None | Some(Value::Null) => errors.push(("condition".into(), "is required".into())),
            Some(_) => errors.push(("condition".into(), "must be an object".into())),
        }
        if errors.is_empty() {
            Ok(Self {
                names,
                op,
                threshold,
                minutes,
            })
        } else {
            Err(errors)
        }
    }

    /// The window a check at `now` counts: the last `minutes` complete minutes; for `absent`,
    /// up to `now` (an event this minute means events are not absent).
    pub fn window(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let minute = now.as_millis().div_euclid(60_000) * 60_000;
        let span = i64::from(self.minutes) * 60_000;
        match self.op {
            ConditionOp::Absent => (
                Timestamp::from_millis(now.as_millis() - span),
                Timestamp::from_millis(now.as_millis() + 1),
            ),
            _ => (
                Timestamp::from_millis(minute - span),
                Timestamp::from_millis(minute),
            ),
        }
    }

    /// The rule in a few words: `payment_failed above 100 in 5 min`, `no signup for 15 min`.
    pub fn describe(&self) -> String {
        let what = self.names.describe();
        match self.op {
            ConditionOp::Above => {
                format!("{what} above {} in {} min", self.threshold, self.minutes)
            }
            ConditionOp::Below => {
                format!("{what} below {} in {} min", self.threshold, self.minutes)
            }
            ConditionOp::Absent => format!("no {what} for {} min", self.minutes),
        }
    }

    /// Whether `count` breaks the condition, and the reason people read.
    pub fn judge(&self, count: i64) -> (bool, String) {
        let what = self.names.describe();
        let m = self.minutes;
        match self.op {
            ConditionOp::Above => (
                count > self.threshold,
                format!(
                    "{count} {what} in the last {m} min, {} {}",
                    if count > self.threshold {
                        "above"
                    } else {
                        "not above"
                    },
                    self.threshold
                ),
            ),
            ConditionOp::Below => (
                count < self.threshold,
                format!(
                    "{count} {what} in the last {m} min, {} {}",
                    if count < self.threshold {
                        "below"
                    } else {
                        "not below"
                    },
                    self.threshold
                ),
            ),
            ConditionOp::Absent if count == 0 => (true, format!("no {what} for {m} min")),
            ConditionOp::Absent => (false, format!("{count} {what} in the last {m} min")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<EventRule, Vec<(String, String)>> {
        EventRule::read(v.as_object().unwrap())
    }

    #[test]
    fn conditions_judge_counts_with_reasons_people_read() {
        let above = read(json!({"query": {"filters": [{"property": "name", "op": "eq", "value": "payment_failed"}]},
                                "condition": {"op": "above", "threshold": 100, "minutes": 5}}))
        .unwrap();
        assert_eq!(
            above.judge(412),
            (
                true,
                "412 payment_failed in the last 5 min, above 100".into()
            )
        );
        assert!(!above.judge(100).0);
        let absent = read(json!({"query": {"filters": [{"property": "name", "op": "eq", "value": "order_placed"}]},
                                 "condition": {"op": "absent", "minutes": 15}}))
        .unwrap();
        assert_eq!(absent.judge(0), (true, "no order_placed for 15 min".into()));
        assert_eq!(above.describe(), "payment_failed above 100 in 5 min");
        assert!(!absent.judge(1).0);
        let below =
            read(json!({"query": {}, "condition": {"op": "below", "threshold": 10, "minutes": 1}}))
                .unwrap();
        assert!(below.judge(9).0 && !below.judge(10).0);
    }

    #[test]
    fn windows_are_complete_minutes_except_for_absence() {
        let r =
            read(json!({"query": {}, "condition": {"op": "above", "threshold": 1, "minutes": 5}}))
                .unwrap();
        let now = Timestamp::from_millis(10 * 60_000 + 30_000);
        assert_eq!(
            r.window(now),
            (
                Timestamp::from_millis(5 * 60_000),
                Timestamp::from_millis(10 * 60_000)
            )
        );
        let a = read(json!({"query": {}, "condition": {"op": "absent", "minutes": 5}})).unwrap();
        assert_eq!(a.window(now).1, Timestamp::from_millis(now.as_millis() + 1));
    }

    #[test]
    fn every_wrong_field_is_named() {
        let e = read(json!({"query": {"metric": "sum", "range": "1h", "filters": [{"property": "plan", "op": "eq", "value": "x"}]},
                            "condition": {"op": "sideways", "minutes": 0, "extra": 1}}))
        .unwrap_err();
        // (Map order depends on serde_json's features: compare sorted.)
        let mut fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "condition.extra",
                "condition.minutes",
                "condition.op",
                "condition.threshold",
                "query.filters[0]",
                "query.metric",
                "query.range"
            ]
        );
        let e = read(json!({})).unwrap_err();
        assert_eq!(e.len(), 2);
    }
}
