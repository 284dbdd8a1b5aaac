//! Funnels (`POST /api/v1/events/funnel`): of the people (`distinct_id`) who did the first
//! step in the range, how many then did each next step, in order, within the conversion window
//! of their first step.
//!
//! Each person's best attempt counts: a first step that does not convert within its window lets
//! a later first step start over. Events without a `distinct_id` cannot be followed and are not
//! counted.

use crate::query::{
    Field, Filter, MAX_FUNNEL_SCAN, MAX_KEYS, QueryError, TooLarge, err, field_of,
    parse_duration_ms, read_filters,
};
use crate::store::StoredEvent;
use pingtower_core::Timestamp;
use pingtower_core::event_rule::NameFilter;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Most steps in a funnel.
pub const MAX_STEPS: usize = 10;
/// The longest conversion window.
const MAX_WINDOW_MS: i64 = 90 * 86_400_000;
/// The longest range of first steps.
const MAX_RANGE_MS: i64 = 366 * 86_400_000;
/// Breakdown values shown (by people at the first step); the rest are summed into `other`.
pub const BREAKDOWN_SHOWN: usize = 20;

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub filters: Vec<Filter>,
}

impl Step {
    fn matches(&self, e: &StoredEvent) -> bool {
        self.name == e.name && self.filters.iter().all(|f| f.matches(e))
    }
}

#[derive(Debug, Clone)]
pub struct Funnel {
    pub steps: Vec<Step>,
    pub window_ms: i64,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Counted separately per value of this field of the person's first step.
    pub breakdown: Option<Field>,
}

impl Funnel {
    /// The columns of an event the funnel reads: who, and what its filters and breakdown read.
    pub fn columns(&self) -> crate::packed::Columns {
        let mut c = crate::packed::Columns::of(
            self.steps
                .iter()
                .flat_map(|s| s.filters.iter().map(|f| &f.field))
                .chain(&self.breakdown),
        );
        c.distinct_id = true;
        c
    }
}

/// Reads a funnel body; every wrong field is named.
pub fn read_funnel(
    mut body: Map<String, Value>,
    now: Timestamp,
) -> Result<Funnel, Vec<QueryError>> {
    let mut errors = Vec::new();
    let mut steps = Vec::new();
    match body.remove("steps") {
        Some(Value::Array(items)) if (2..=MAX_STEPS).contains(&items.len()) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("steps[{i}]");
                let name = item.get("name").and_then(Value::as_str).map(str::trim);
                let Some(name) = name.filter(|n| !n.is_empty()) else {
                    errors.push(err(&format!("{at}.name"), "is required"));
                    continue;
                };
                let filters = match item.get("filters") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(f)) => {
                        let mut problems = Vec::new();
                        let (names, filters) = read_filters(f, &mut problems);
                        if names != NameFilter::All {
                            problems
                                .push(err("filters", "a step's name is its `name`, not a filter"));
                        }
                        errors.extend(problems.into_iter().map(|e| QueryError {
                            field: format!("{at}.{}", e.field),
                            message: e.message,
                        }));
                        filters
                    }
                    Some(_) => {
                        errors.push(err(&format!("{at}.filters"), "must be a list"));
                        Vec::new()
                    }
                };
                if let Some(obj) = item.as_object() {
                    for k in obj.keys().filter(|k| *k != "name" && *k != "filters") {
                        errors.push(err(
                            &format!("{at}.{k}"),
                            "is not a field of a step (name, filters)",
                        ));
                    }
                }
                steps.push(Step {
                    name: name.to_owned(),
                    filters,
                });
            }
        }
        Some(Value::Array(_)) => errors.push(err("steps", format!("2 to {MAX_STEPS} steps"))),
        _ => errors.push(err(
            "steps",
            "a list of steps, each {\"name\": ..., \"filters\": [...]}",
        )),
    }
    let window_ms = match body.remove("window") {
        None => 86_400_000,
        Some(Value::String(w)) => parse_duration_ms(&w)
            .filter(|ms| *ms <= MAX_WINDOW_MS)
            .unwrap_or_else(|| {
                errors.push(err(
                    "window",
                    "a duration such as `30m`, `1h` or `7d`, at most 90 days",
                ));
                0
            }),
        Some(_) => {
            errors.push(err("window", "a duration such as `30m`, `1h` or `7d`"));
            0
        }
    };
    let range_ms = match body.remove("range") {
        None => 7 * 86_400_000,
        Some(Value::String(r)) => parse_duration_ms(&r)
            .filter(|ms| *ms <= MAX_RANGE_MS)
            .unwrap_or_else(|| {
                errors.push(err(
                    "range",
                    "a duration such as `24h` or `7d`, at most 366 days",
                ));
                0
            }),
        Some(_) => {
            errors.push(err("range", "a duration such as `24h` or `7d`"));
            0
        }
    };
    let breakdown = match body.remove("breakdown") {
        None | Some(Value::Null) => None,
        Some(b) => field_of(&b, "breakdown", &mut errors),
    };
    for k in body.keys() {
        errors.push(err(
            k,
            "is not a field of a funnel (steps, window, range, breakdown)",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Funnel {
        steps,
        window_ms,
        from: Timestamp::from_millis(now.as_millis() - range_ms),
        to: now,
        breakdown,
    })
}

/// One person's progress.
#[derive(Debug, Clone)]
struct Person {
    /// The current attempt: when its first step was, and the steps reached.
    start: i64,
    reached: usize,
    /// The most steps any attempt reached.
    best: usize,
    /// The breakdown value (interned) of the first step of the best attempt.
    key: u32,
    current_key: u32,
}

/// Follows people through a funnel as events come, oldest first.
pub struct FunnelCounter {
    f: std::sync::Arc<Funnel>,
    people: HashMap<String, Person>,
    keys: HashMap<String, u32>,
    key_names: Vec<String>,
    read: i64,
    too_large: Option<TooLarge>,
}

/// The steps of one breakdown value.
pub type Breakdown = (String, Vec<StepCount>);

#[derive(Debug, Clone, PartialEq)]
pub struct StepCount {
    pub name: String,
    pub count: u64,
    /// Of those who did the first step, the share who got here (1 for the first step).
    pub conversion: f64,
}

impl FunnelCounter {
    pub fn new(f: std::sync::Arc<Funnel>) -> Self {
        Self {
            f,
            people: HashMap::new(),
            keys: HashMap::new(),
            key_names: Vec::new(),
            read: 0,
            too_large: None,
        }
    }

    /// The names of the steps (what to read).
    pub fn names(f: &Funnel) -> Vec<String> {
        let mut n: Vec<String> = f.steps.iter().map(|s| s.name.clone()).collect();
        n.sort();
        n.dedup();
        n
    }

    /// Whether the answer is already known to be refused (stop reading).
    pub fn refused(&self) -> bool {
        self.too_large.is_some()
    }

    fn key_id(&mut self, e: &StoredEvent) -> Option<u32> {
        let Some(b) = &self.f.breakdown else {
            return Some(0);
        };
        let key = b.text_of(e).unwrap_or_else(|| "(none)".into());
        if let Some(id) = self.keys.get(&key) {
            return Some(*id);
        }
        if self.keys.len() >= MAX_KEYS {
            self.too_large = Some(TooLarge::Keys);
            return None;
        }
        let id = u32::try_from(self.key_names.len()).ok()?;
        self.keys.insert(key.clone(), id);
        self.key_names.push(key);
        Some(id)
    }

    pub fn add(&mut self, e: &StoredEvent) {
        if self.too_large.is_some() {
            return;
        }
        self.read += 1;
        if self.read > MAX_FUNNEL_SCAN {
            self.too_large = Some(TooLarge::Events(MAX_FUNNEL_SCAN));
            return;
        }
        let Some(who) = e.distinct_id.as_deref() else {
            return;
        };
        let t = e.timestamp.as_millis();
        let total = self.f.steps.len();
        let first = self.f.steps[0].matches(e);
        let window = self.f.window_ms;
        let key = if first {
            match self.key_id(e) {
                Some(k) => k,
                None => return,
            }
        } else {
            0
        };
        match self.people.get_mut(who) {
            None => {
                if first {
                    self.people.insert(
                        who.to_owned(),
                        Person {
                            start: t,
                            reached: 1,
                            best: 1,
                            key,
                            current_key: key,
                        },
                    );
                }
            }
            Some(p) => {
                let open = t <= p.start.saturating_add(window);
                if open && p.reached < total && self.f.steps[p.reached].matches(e) {
                    p.reached += 1;
                    if p.reached > p.best {
                        p.best = p.reached;
                        p.key = p.current_key;
                    }
                } else if first && (!open || p.reached == total) && p.best < total {
                    // The attempt ran out: a new first step starts over.
                    p.start = t;
                    p.reached = 1;
                    p.current_key = key;
                }
            }
        }
    }

    /// The count at each step, overall and (with a breakdown) per value: the values with the
    /// most people first, at most [`BREAKDOWN_SHOWN`], the rest summed into `other`.
    pub fn finish(self) -> Result<(Vec<StepCount>, Vec<Breakdown>), TooLarge> {
        if let Some(t) = self.too_large {
            return Err(t);
        }
        let total = self.f.steps.len();
        let mut overall = vec![0u64; total];
        let mut per_key: HashMap<u32, Vec<u64>> = HashMap::new();
        for p in self.people.values() {
            let row = per_key.entry(p.key).or_insert_with(|| vec![0; total]);
            for (i, c) in overall.iter_mut().enumerate().take(p.best) {
                *c += 1;
                row[i] += 1;
            }
        }
        let steps = |counts: &[u64]| {
            let first = counts[0];
            self.f
                .steps
                .iter()
                .zip(counts)
                .map(|(s, c)| StepCount {
                    name: s.name.clone(),
                    count: *c,
                    conversion: if first == 0 {
                        0.0
                    } else {
                        *c as f64 / first as f64
                    },
                })
                .collect::<Vec<_>>()
        };
        let mut by_key = Vec::new();
        if self.f.breakdown.is_some() {
            let mut rows: Vec<(u32, Vec<u64>)> = per_key.into_iter().collect();
            rows.sort_by(|a, b| {
                b.1[0]
                    .cmp(&a.1[0])
                    .then_with(|| self.key_names[a.0 as usize].cmp(&self.key_names[b.0 as usize]))
            });
            let rest = rows.split_off(rows.len().min(BREAKDOWN_SHOWN));
            for (k, counts) in rows {
                by_key.push((self.key_names[k as usize].clone(), steps(&counts)));
            }
            if !rest.is_empty() {
                let mut other = vec![0u64; total];
                for (_, counts) in rest {
                    for (o, c) in other.iter_mut().zip(counts) {
                        *o += c;
                    }
                }
                by_key.push(("other".into(), steps(&other)));
            }
        }
        Ok((steps(&overall), by_key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_000_000_000;
    const H: i64 = 3_600_000;

    fn ev(id: i64, name: &str, at: i64, who: &str, plan: &str) -> StoredEvent {
        StoredEvent {
            id,
            name: name.into(),
            timestamp: Timestamp::from_millis(at),
            distinct_id: Some(who.into()),
            session_id: None,
            properties: json!({"plan": plan}).as_object().unwrap().clone(),
        }
    }

    fn funnel(v: Value) -> Funnel {
        read_funnel(v.as_object().unwrap().clone(), Timestamp::from_millis(NOW)).unwrap()
    }

    #[test]
    fn people_convert_in_order_within_the_window() {
        let f = funnel(
            json!({"steps": [{"name": "signup"}, {"name": "checkout", "filters": [{"property": "plan", "op": "eq", "value": "pro"}]}, {"name": "paid"}],
                              "window": "1h", "range": "7d", "breakdown": "plan"}),
        );
        let t = NOW - 24 * H;
        let mut c = FunnelCounter::new(std::sync::Arc::new(f));
        for e in [
            // a: all three, in time.
            ev(1, "signup", t, "a", "pro"),
            ev(2, "checkout", t + 60_000, "a", "pro"),
            ev(3, "paid", t + 120_000, "a", "pro"),
            // b: checks out on the free plan (not the step), then pays: only the first step.
            ev(4, "signup", t, "b", "free"),
            ev(5, "checkout", t + 60_000, "b", "free"),
            ev(6, "paid", t + 120_000, "b", "free"),
            // c: too late for the first attempt, converts on a second one.
            ev(7, "signup", t, "c", "pro"),
            ev(8, "checkout", t + 2 * H, "c", "pro"),
            ev(9, "signup", t + 3 * H, "c", "pro"),
            ev(10, "checkout", t + 3 * H + 1, "c", "pro"),
            // d: out of order (pays first): one step.
            ev(11, "paid", t, "d", "pro"),
            ev(12, "signup", t + 1, "d", "pro"),
            // e: never signed up.
            ev(13, "checkout", t, "e", "pro"),
        ] {
            c.add(&e);
        }
        let (steps, by_plan) = c.finish().unwrap();
        let by_plan: HashMap<String, Vec<StepCount>> = by_plan.into_iter().collect();
        let counts: Vec<u64> = steps.iter().map(|s| s.count).collect();
        assert_eq!(counts, [4, 2, 1]);
        assert_eq!(steps[1].conversion, 0.5);
        assert_eq!(
            by_plan["free"].iter().map(|s| s.count).collect::<Vec<_>>(),
            [1, 0, 0]
        );
        assert_eq!(
            by_plan["pro"].iter().map(|s| s.count).collect::<Vec<_>>(),
            [3, 2, 1]
        );
    }

    #[test]
    fn a_wrong_funnel_names_its_fields() {
        let e = read_funnel(
            json!({"steps": [{"name": "a"}, {"filters": [{"property": "x", "op": "??"}]}], "window": "soon", "extra": 1})
                .as_object()
                .unwrap()
                .clone(),
            Timestamp::from_millis(NOW),
        )
        .unwrap_err();
        let mut fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["extra", "steps[1].name", "window"]);
        let e = read_funnel(
            json!({"steps": [{"name": "only"}]})
                .as_object()
                .unwrap()
                .clone(),
            Timestamp::from_millis(NOW),
        )
        .unwrap_err();
        assert_eq!(e[0].field, "steps");
    }
}
