//! One analytics event as a tenant sends it, and the rules it must follow to be kept.
//!
//! Every rule gives a reason a person can act on; a batch keeps its valid events and names the
//! others by index ([`read_batch`]).

use pingtower_core::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

/// Most events in one request.
pub const MAX_BATCH: usize = 10_000;
/// Longest event name, in characters.
pub const MAX_NAME: usize = 200;
/// Longest `distinct_id` or `session_id`, in characters.
pub const MAX_ID: usize = 200;
/// Most properties (nested ones counted) of one event.
pub const MAX_PROPERTIES: usize = 100;
/// Longest property key, in characters.
pub const MAX_KEY: usize = 128;
/// Longest string property, in characters.
pub const MAX_STRING: usize = 1_024;
/// Largest `properties` object, as JSON.
pub const MAX_PROPERTIES_BYTES: usize = 8 * 1024;
/// How far ahead of the server's clock a timestamp may be.
pub const MAX_AHEAD_MS: i64 = 3_600_000;

/// An event ready to be stored: valid, with its time decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    pub name: String,
    pub timestamp: Timestamp,
    pub distinct_id: Option<String>,
    pub session_id: Option<String>,
    /// Strings, numbers and booleans, flat or one object deep.
    pub properties: Map<String, Value>,
}

/// An event in a batch that is not kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
}

/// Why a whole request is refused (nothing in it is kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the body is an event (an object with `name`) or `{{\"events\": [...]}}`")]
    Shape,
    #[error("`events` holds {0} events; at most {MAX_BATCH} go in one request")]
    TooMany(usize),
    #[error("`events` is empty")]
    Empty,
}

/// What the server needs to judge an event's time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When the request arrived (the time of events that give none).
    pub now: Timestamp,
    /// How long events are kept; older ones are refused. `None`: kept for ever.
    pub retention_ms: Option<i64>,
}

/// The events of a request body: one event, or `{"events": [...]}`. Valid events are returned
/// in order; each invalid one is named by its index.
pub fn read_batch(
    body: Value,
    clock: Clock,
) -> Result<(Vec<NewEvent>, Vec<Rejection>), BatchError> {
    let items = match body {
        Value::Object(mut map) => match map.remove("events") {
            Some(Value::Array(items)) if map.is_empty() => items,
            Some(_) => return Err(BatchError::Shape),
            None if map.contains_key("name") => vec![Value::Object(map)],
            None => return Err(BatchError::Shape),
        },
        _ => return Err(BatchError::Shape),
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > MAX_BATCH {
        return Err(BatchError::TooMany(items.len()));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match read_event(item, clock) {
            Ok(event) => events.push(event),
            Err(reason) => rejected.push(Rejection { index, reason }),
        }
    }
    Ok((events, rejected))
}

/// One event, or the reason it is not kept.
pub fn read_event(item: Value, clock: Clock) -> Result<NewEvent, String> {
    let Value::Object(mut map) = item else {
        return Err("an event is a JSON object".into());
    };
    let name = match map.remove("name") {
        Some(Value::String(s)) => s,
        Some(_) => return Err("`name` must be a string".into()),
        None => return Err("`name` is required".into()),
    };
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("`name` is empty".into());
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(format!("`name` is longer than {MAX_NAME} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("`name` holds a control character".into());
    }
    let timestamp = match map.remove("timestamp") {
        None | Some(Value::Null) => clock.now,
        Some(v) => timestamp(&v)?,
    };
    if timestamp.as_millis() > clock.now.as_millis().saturating_add(MAX_AHEAD_MS) {
        return Err("`timestamp` is more than an hour ahead of the server's clock".into());
    }
    if let Some(keep) = clock.retention_ms
        && timestamp.as_millis() < clock.now.as_millis().saturating_sub(keep)
    {
        return Err("`timestamp` is older than this server keeps events".into());
    }
    let distinct_id = id_field(&mut map, "distinct_id")?;
    let session_id = id_field(&mut map, "session_id")?;
    let properties = match map.remove("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => properties(p)?,
        Some(_) => return Err("`properties` must be a JSON object".into()),
    };
    if let Some(field) = map.keys().next() {
        return Err(format!(
            "`{field}` is not a field of an event (name, timestamp, properties, distinct_id, session_id)"
        ));
    }
    Ok(NewEvent {
        name: trimmed.to_owned(),
        timestamp,
        distinct_id,
        session_id,
        properties,
    })
}

/// RFC 3339 text or epoch milliseconds.
fn timestamp(v: &Value) -> Result<Timestamp, String> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp::from_millis(t.timestamp_millis()))
            .map_err(|_| format!("`timestamp` `{s}` is not RFC 3339 (2026-11-22T10:00:00Z)")),
        Value::Number(n) => n
            .as_i64()
            .filter(|ms| *ms >= 0)
            .map(Timestamp::from_millis)
            .ok_or_else(|| "`timestamp` as a number is whole epoch milliseconds".into()),
        _ => Err("`timestamp` is RFC 3339 text or epoch milliseconds".into()),
    }
}

fn id_field(map: &mut Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_ID => {
            Err(format!("`{field}` is longer than {MAX_ID} characters"))
        }
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            Err(format!("`{field}` holds a control character"))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        // Numbers are common user ids: kept as their text.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(format!("`{field}` must be a string")),
    }
}

fn properties(p: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut count = 0usize;
    for (key, value) in &p {
        check_key(key)?;
        count += 1;
        match value {
            Value::Object(inner) => {
                for (k, v) in inner {
                    check_key(k)?;
                    count += 1;
                    if !scalar(v)? {
                        return Err(format!(
                            "property `{key}.{k}` is not a string, number or boolean (one level of nesting at most)"
                        ));
                    }
                }
            }
            v => {
                if !scalar(v)? {
                    return Err(format!(
                        "property `{key}` is not a string, number, boolean or object of those"
                    ));
                }
            }
        }
    }
    if count > MAX_PROPERTIES {
        return Err(format!("more than {MAX_PROPERTIES} properties"));
    }
    let size = serde_json::to_vec(&p)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PROPERTIES_BYTES {
        return Err(format!(
            "`properties` is {size} bytes as JSON; at most {MAX_PROPERTIES_BYTES}"
        ));
    }
    Ok(p)
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > MAX_KEY {
        return Err(format!("a property key has 1 to {MAX_KEY} characters"));
    }
    // A dot would make `a.b` ambiguous in queries; control characters are never a name.
    if key.contains('.') || key.chars().any(char::is_control) {
        return Err(format!(
            "property key `{}` holds a dot or a control character",
            key.escape_debug()
        ));
    }
    Ok(())
}

/// Whether `v` is a scalar a property may hold; `Err` for a string that is too long.
fn scalar(v: &Value) -> Result<bool, String> {
    match v {
        Value::String(s) if s.chars().count() > MAX_STRING => Err(format!(
            "a string property is longer than {MAX_STRING} characters"
        )),
        // No database keeps a NUL in text (PostgreSQL refuses it).
        Value::String(s) if s.contains('\0') => {
            Err("a string property holds a NUL character".into())
        }
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(true),
        _ => Ok(false),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_000_000_000;

    fn clock() -> Clock {
        Clock {
            now: Timestamp::from_millis(NOW),
            retention_ms: Some(30 * 86_400_000),
        }
    }

    #[test]
    fn one_event_or_a_batch() {
        let (one, rejected) = read_batch(json!({"name": "signup"}), clock()).unwrap();
        assert_eq!(one.len(), 1);
        assert!(rejected.is_empty());
        assert_eq!(
            one[0].timestamp.as_millis(),
            NOW,
            "no timestamp: when received"
        );
        let (many, _) = read_batch(
            json!({"events": [
                {"name": "a", "timestamp": "2026-11-18T08:26:40Z"},
                {"name": "b", "timestamp": NOW - 1000, "distinct_id": 42,
                 "properties": {"plan": "pro", "amount": 9.5, "paid": true, "geo": {"country": "DE"}}}
            ]}),
            clock(),
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].distinct_id.as_deref(), Some("42"));
        assert_eq!(many[1].properties["geo"]["country"], "DE");
        for bad in [
            json!([]),
            json!({"events": {}}),
            json!({"x": 1}),
            json!({"events": [], "x": 1}),
        ] {
            assert!(read_batch(bad.clone(), clock()).is_err(), "{bad}");
        }
        assert_eq!(
            read_batch(json!({"events": []}), clock()),
            Err(BatchError::Empty)
        );
        let too_many: Vec<Value> = (0..=MAX_BATCH).map(|_| json!({"name": "x"})).collect();
        assert_eq!(
            read_batch(json!({ "events": too_many }), clock()),
            Err(BatchError::TooMany(MAX_BATCH + 1))
        );
    }

    #[test]
    fn invalid_events_are_named_by_index_and_the_rest_kept() {
        let (kept, rejected) = read_batch(
            json!({"events": [
                {"name": "ok"},
                {"properties": {}},
                {"name": "deep", "properties": {"a": {"b": {"c": 1}}}},
                {"name": "list", "properties": {"a": [1, 2]}},
                {"name": "future", "timestamp": NOW + 2 * 3_600_000},
                {"name": "old", "timestamp": NOW - 31 * 86_400_000},
                {"name": "bad time", "timestamp": "yesterday"},
                {"name": "extra", "type": "track"},
                {"name": "   "},
                {"name": "null prop", "properties": {"a": null}},
                {"name": "big", "properties": {"a": "x".repeat(1_000), "b": "x".repeat(1_000),
                  "c": "x".repeat(1_000), "d": "x".repeat(1_000), "e": "x".repeat(1_000),
                  "f": "x".repeat(1_000), "g": "x".repeat(1_000), "h": "x".repeat(1_000),
                  "i": "x".repeat(1_000)}},
                {"name": "nul", "properties": {"a": "x\u{0000}y"}},
                {"name": "nul id", "distinct_id": "u\u{0000}"},
                {"name": "dotted", "properties": {"a.b": 1}},
                {"name": "ok too", "timestamp": NOW + 60_000}
            ]}),
            clock(),
        )
        .unwrap();
        assert_eq!(
            kept.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["ok", "ok too"]
        );
        let indexes: Vec<usize> = rejected.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        for (r, needle) in rejected.iter().zip([
            "`name` is required",
            "one level",
            "not a string",
            "an hour ahead",
            "older than",
            "RFC 3339",
            "`type` is not a field",
            "empty",
            "not a string",
            "bytes as JSON",
            "NUL",
            "control character",
            "dot",
        ]) {
            assert!(r.reason.contains(needle), "{}: {}", r.index, r.reason);
        }
    }

    #[test]
    fn without_retention_old_events_are_kept() {
        let forever = Clock {
            retention_ms: None,
            ..clock()
        };
        assert!(read_event(json!({"name": "x", "timestamp": 0}), forever).is_ok());
        assert!(read_event(json!({"name": "x", "timestamp": -1}), forever).is_err());
    }
}
