//! Events packed by column: how a block of one tenant's events of one hour is kept on disk
//! (the stores' `analytics_blocks`).
//!
//! A block holds its events sorted by (timestamp, id). Each column is encoded on its own and
//! compressed with zstd, so a block of the benchmark's shape takes about 15 bytes per event
//! rather than the 200 of a row with JSON properties, and a reader that needs only some columns
//! ([`Columns`]) decompresses only those:
//! - `ts`: the first timestamp, then the (non-negative) gaps, as varints;
//! - `id`: zig-zag varint differences;
//! - `name`, `distinct_id`, `session_id`: a dictionary of the block's values, then per event its entry
//!   (0 for none);
//! - one column per property key: a tag per event (absent, null, bool, integer, decimal,
//!   float, string, object), then the values: strings as dictionary entries, decimals with up
//!   to 6 places as scaled integers (exactly the same `f64` back), objects as JSON text.
//!
//! Layout: `VERSION`, the event count, the column count, then per column its name, its
//! length, its compressed length and its bytes. A reader ([`decode_where`]) reads the
//! timestamps, ids and names first and builds only the events it keeps. A block that does
//! not decode is an error, never a panic.

use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// The layout written by [`encode`].
const VERSION: u8 = 1;
/// zstd's level: 3 is its default, fast to write and small.
const LEVEL: i32 = 3;
/// Most events one block holds.
pub const MAX_EVENTS: usize = 4_096;

const TS: &str = "\0ts";
const ID: &str = "\0id";
const NAME: &str = "\0name";
const USER: &str = "\0user";
const SESSION: &str = "\0session";

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("a block is damaged: {0}")]
    Damaged(&'static str),
    #[error("compressing a block: {0}")]
    Compress(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, PackError>;

/// One event of a block (its tenant and hour are the block's).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedEvent {
    pub id: i64,
    pub ts: i64,
    pub name: String,
    pub distinct_id: Option<String>,
    pub session_id: Option<String>,
    pub properties: Map<String, Value>,
}

/// Which columns a reader needs.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub distinct_id: bool,
    pub session_id: bool,
    /// `None`: every property; otherwise only these keys (top level).
    pub properties: Option<Vec<String>>,
}

impl Columns {
    /// The columns that `fields` read (a nested property needs its top-level key).
    pub fn of<'a>(fields: impl IntoIterator<Item = &'a crate::query::Field>) -> Self {
        use crate::query::Field;
        let mut c = Columns {
            properties: Some(Vec::new()),
            ..Columns::default()
        };
        for f in fields {
            match f {
                Field::Name => {}
                Field::DistinctId => c.distinct_id = true,
                Field::SessionId => c.session_id = true,
                Field::Property(key, _) => {
                    if let Some(keys) = c.properties.as_mut()
                        && !keys.contains(key)
                    {
                        keys.push(key.clone());
                    }
                }
            }
        }
        c
    }

    pub fn all() -> Self {
        Self {
            distinct_id: true,
            session_id: true,
            properties: None,
        }
    }

    fn wants(&self, column: &str) -> bool {
        match column {
            TS | ID | NAME => true,
            USER => self.distinct_id,
            SESSION => self.session_id,
            key => self
                .properties
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k == key)),
        }
    }
}

/// Packs `events` (any order: they are sorted by timestamp, then id) into one block.
pub fn encode(events: &mut [PackedEvent]) -> Result<Vec<u8>> {
    events.sort_by_key(|e| (e.ts, e.id));
    let mut columns: Vec<(String, Vec<u8>)> = Vec::new();

    let mut ts = Vec::with_capacity(events.len() * 2);
    let mut last = 0i64;
    for (i, e) in events.iter().enumerate() {
        if i == 0 {
            put_i64(&mut ts, e.ts);
        } else {
            put_u64(&mut ts, (e.ts - last) as u64);
        }
        last = e.ts;
    }
    columns.push((TS.into(), ts));

    let mut ids = Vec::with_capacity(events.len() * 3);
    let mut last = 0i64;
    for e in events.iter() {
        put_i64(&mut ids, e.id.wrapping_sub(last));
        last = e.id;
    }
    columns.push((ID.into(), ids));
    columns.push((
        NAME.into(),
        strings(events.iter().map(|e| Some(e.name.as_str()))),
    ));

    if events.iter().any(|e| e.distinct_id.is_some()) {
        columns.push((
            USER.into(),
            strings(events.iter().map(|e| e.distinct_id.as_deref())),
        ));
    }
    if events.iter().any(|e| e.session_id.is_some()) {
        columns.push((
            SESSION.into(),
            strings(events.iter().map(|e| e.session_id.as_deref())),
        ));
    }

    let mut keys: Vec<&str> = events
        .iter()
        .flat_map(|e| e.properties.keys().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        columns.push((
            key.to_owned(),
            property(events.iter().map(|e| e.properties.get(key))),
        ));
    }

    let mut out = vec![VERSION];
    put_u64(&mut out, events.len() as u64);
    put_u64(&mut out, columns.len() as u64);
    for (name, raw) in columns {
        put_str(&mut out, &name);
        let packed = COMPRESSOR.with_borrow_mut(|c| match c {
            Some(c) => c.compress(&raw),
            None => {
                let mut made = zstd::bulk::Compressor::new(LEVEL)?;
                let packed = made.compress(&raw);
                *c = Some(made);
                packed
            }
        })?;
        put_u64(&mut out, raw.len() as u64);
        put_u64(&mut out, packed.len() as u64);
        out.extend_from_slice(&packed);
    }
    Ok(out)
}

thread_local! {
    // A compression context is costly to make (hundreds of KiB): one per thread, reused.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn decompress(packed: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    DECOMPRESSOR
        .with_borrow_mut(|d| match d {
            Some(d) => d.decompress(packed, raw_len),
            None => {
                let mut made = zstd::bulk::Decompressor::new()?;
                let raw = made.decompress(packed, raw_len);
                *d = Some(made);
                raw
            }
        })
        .map_err(|_| PackError::Damaged("a column does not decompress"))
}

/// The events of a block, oldest first, with the columns asked for (the others empty).
pub fn decode(block: &[u8], want: &Columns) -> Result<Vec<PackedEvent>> {
    decode_where(block, want, |_, _, _| true)
}

/// The events of a block that `keep(name, ts, id)` keeps, oldest first, with the columns
/// asked for (the others empty). Only the kept events are built.
pub fn decode_where(
    block: &[u8],
    want: &Columns,
    keep: impl Fn(&str, i64, i64) -> bool,
) -> Result<Vec<PackedEvent>> {
    let mut r = Reader(block);
    if r.byte()? != VERSION {
        return Err(PackError::Damaged("unknown version"));
    }
    let n = r.len(MAX_EVENTS)?;
    let count = r.u64()?;
    let mut columns = Vec::new();
    for _ in 0..count {
        let name = r.str()?;
        let raw_len = r.len(64 << 20)?;
        let packed_len = r.len(block.len())?;
        columns.push((name, raw_len, r.take(packed_len)?));
    }
    let column = |wanted: &str| -> Result<Vec<u8>> {
        let (_, raw_len, packed) = columns
            .iter()
            .find(|(name, _, _)| *name == wanted)
            .ok_or(PackError::Damaged("a column is missing"))?;
        decompress(packed, *raw_len)
    };
    let (ts_raw, id_raw, name_raw) = (column(TS)?, column(ID)?, column(NAME)?);
    let (mut ts, mut ids, mut names) = (Reader(&ts_raw), Reader(&id_raw), Reader(&name_raw));
    let dict = names.dictionary()?;
    // Where each event of the block goes in the answer (`usize::MAX`: not kept).
    let mut slot = vec![usize::MAX; n];
    let mut events = Vec::new();
    let (mut last_ts, mut last_id) = (0i64, 0i64);
    for (i, slot) in slot.iter_mut().enumerate() {
        last_ts = if i == 0 {
            ts.i64()?
        } else {
            last_ts.wrapping_add(ts.u64()? as i64)
        };
        last_id = last_id.wrapping_add(ids.i64()?);
        let name = names
            .entry(&dict)?
            .ok_or(PackError::Damaged("an event has no name"))?;
        if keep(name, last_ts, last_id) {
            *slot = events.len();
            events.push(PackedEvent {
                id: last_id,
                ts: last_ts,
                name: name.to_owned(),
                distinct_id: None,
                session_id: None,
                properties: Map::new(),
            });
        }
    }
    if events.is_empty() {
        return Ok(events);
    }
    for (name, raw_len, packed) in &columns {
        if matches!(*name, TS | ID | NAME) || !want.wants(name) {
            continue;
        }
        let raw = decompress(packed, *raw_len)?;
        let mut c = Reader(&raw);
        match *name {
            USER | SESSION => {
                let dict = c.dictionary()?;
                for &at in &slot {
                    let value = c.entry(&dict)?;
                    if let Some(e) = events.get_mut(at) {
                        let value = value.map(str::to_owned);
                        if *name == USER {
                            e.distinct_id = value;
                        } else {
                            e.session_id = value;
                        }
                    }
                }
            }
            key => {
                let dict = c.dictionary()?;
                let tags = c.take(n)?;
                for (&at, &tag) in slot.iter().zip(tags) {
                    let value = c.value(tag, &dict)?;
                    if let (Some(e), Some(v)) = (events.get_mut(at), value) {
                        e.properties.insert(key.to_owned(), v);
                    }
                }
            }
        }
    }
    Ok(events)
}

/// Strings of a column as a block keeps them: a dictionary, and per event its entry.
#[derive(Debug, Default)]
pub struct Strings {
    pub dict: Vec<String>,
    /// Per event: 0 for none, `k` for `dict[k - 1]`.
    pub at: Vec<u32>,
}

impl Strings {
    pub fn get(&self, i: usize) -> Option<&str> {
        let k = *self.at.get(i)? as usize;
        k.checked_sub(1)
            .and_then(|k| self.dict.get(k))
            .map(String::as_str)
    }
}

/// One property's value in a [`Frame`].
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Absent,
    Null,
    Bool(bool),
    Number(Number),
    /// An entry of the column's dictionary.
    Str(u32),
    /// An object (nested properties), as it was sent.
    Json(Box<Value>),
}

/// One property key's column in a [`Frame`].
#[derive(Debug)]
pub struct Property {
    pub key: String,
    pub dict: Vec<String>,
    pub values: Vec<Scalar>,
}

/// A block's columns, decoded but not made into events: what a query aggregates over, so
/// that reading an event allocates nothing.
#[derive(Debug)]
pub struct Frame {
    /// Per event, oldest first.
    pub ts: Vec<i64>,
    pub name: Strings,
    /// Read when asked for ([`Columns`]); otherwise every entry is none.
    pub distinct_id: Strings,
    pub session_id: Strings,
    /// The properties asked for that the block has.
    pub properties: Vec<Property>,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn property(&self, key: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.key == key)
    }
}

/// A block's columns asked for in `want` (the timestamps and names always).
pub fn frame(block: &[u8], want: &Columns) -> Result<Frame> {
    let mut r = Reader(block);
    if r.byte()? != VERSION {
        return Err(PackError::Damaged("unknown version"));
    }
    let n = r.len(MAX_EVENTS)?;
    let count = r.u64()?;
    let mut out = Frame {
        ts: Vec::with_capacity(n),
        name: Strings::default(),
        distinct_id: Strings {
            dict: Vec::new(),
            at: vec![0; n],
        },
        session_id: Strings {
            dict: Vec::new(),
            at: vec![0; n],
        },
        properties: Vec::new(),
    };
    let mut seen = (false, false);
    for _ in 0..count {
        let name = r.str()?;
        let raw_len = r.len(64 << 20)?;
        let packed_len = r.len(block.len())?;
        let packed = r.take(packed_len)?;
        if name != TS && name != NAME && !(name != ID && want.wants(name)) {
            continue;
        }
        let raw = decompress(packed, raw_len)?;
        let mut c = Reader(&raw);
        match name {
            TS => {
                seen.0 = true;
                let mut last = 0i64;
                for i in 0..n {
                    last = if i == 0 {
                        c.i64()?
                    } else {
                        last.wrapping_add(c.u64()? as i64)
                    };
                    out.ts.push(last);
                }
            }
            NAME => {
                seen.1 = true;
                out.name = c.strings(n)?;
            }
            USER => out.distinct_id = c.strings(n)?,
            SESSION => out.session_id = c.strings(n)?,
            key => {
                let dict = c.dictionary()?;
                let tags = c.take(n)?;
                let mut values = Vec::with_capacity(n);
                for &tag in tags {
                    values.push(c.scalar(tag, dict.len())?);
                }
                out.properties.push(Property {
                    key: key.to_owned(),
                    dict: dict.into_iter().map(str::to_owned).collect(),
                    values,
                });
            }
        }
    }
    if !(seen.0 && seen.1) {
        return Err(PackError::Damaged("a column is missing"));
    }
    if out.name.at.contains(&0) {
        return Err(PackError::Damaged("an event has no name"));
    }
    Ok(out)
}

// Tags of property values.
const ABSENT: u8 = 0;
const NULL: u8 = 1;
const FALSE: u8 = 2;
const TRUE: u8 = 3;
const INT: u8 = 4;
const UINT: u8 = 5;
/// A decimal of 1 to 6 places: the scaled integer, then the places.
const DECIMAL: u8 = 6;
const FLOAT: u8 = 7;
const STRING: u8 = 8;
const JSON: u8 = 9;

/// A dictionary of the strings, then each one's entry (0: none).
fn strings<'a>(values: impl Iterator<Item = Option<&'a str>> + Clone) -> Vec<u8> {
    let mut dict: HashMap<&str, u64> = HashMap::new();
    let mut order = Vec::new();
    for v in values.clone().flatten() {
        dict.entry(v).or_insert_with(|| {
            order.push(v);
            order.len() as u64
        });
    }
    let mut out = Vec::new();
    put_u64(&mut out, order.len() as u64);
    for s in &order {
        put_str(&mut out, s);
    }
    for v in values {
        put_u64(&mut out, v.map_or(0, |s| dict[s]));
    }
    out
}

/// A property column: the dictionary of its strings, a tag per event, then the values.
fn property<'a>(values: impl Iterator<Item = Option<&'a Value>> + Clone) -> Vec<u8> {
    let mut dict: HashMap<&str, u64> = HashMap::new();
    let mut order = Vec::new();
    for v in values.clone() {
        if let Some(Value::String(s)) = v {
            dict.entry(s.as_str()).or_insert_with(|| {
                order.push(s.as_str());
                order.len() as u64 - 1
            });
        }
    }
    let mut head = Vec::new();
    put_u64(&mut head, order.len() as u64);
    for s in &order {
        put_str(&mut head, s);
    }
    let mut tags = Vec::new();
    let mut body = Vec::new();
    for v in values {
        let tag = match v {
            None => ABSENT,
            Some(Value::Null) => NULL,
            Some(Value::Bool(false)) => FALSE,
            Some(Value::Bool(true)) => TRUE,
            Some(Value::String(s)) => {
                put_u64(&mut body, dict[s.as_str()]);
                STRING
            }
            Some(Value::Number(n)) => number(n, &mut body),
            Some(v @ (Value::Object(_) | Value::Array(_))) => {
                put_str(&mut body, &v.to_string());
                JSON
            }
        };
        tags.push(tag);
    }
    head.extend_from_slice(&tags);
    head.extend_from_slice(&body);
    head
}

fn number(n: &Number, out: &mut Vec<u8>) -> u8 {
    if let Some(i) = n.as_i64() {
        put_i64(out, i);
        return INT;
    }
    if let Some(u) = n.as_u64() {
        put_u64(out, u);
        return UINT;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let mut scale = 1.0;
    // -0.0 would come back as 0.0: kept as a float.
    for places in (1..=6u8).filter(|_| f.to_bits() != (-0.0f64).to_bits()) {
        scale *= 10.0;
        let m = (f * scale).round();
        if m.abs() < 9.0e15 && m / scale == f {
            put_i64(out, m as i64);
            out.push(places);
            return DECIMAL;
        }
    }
    out.extend_from_slice(&f.to_le_bytes());
    FLOAT
}

const POWERS: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self
            .0
            .split_first()
            .ok_or(PackError::Damaged("it ends early"))?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(PackError::Damaged("it ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PackError::Damaged("a number is too long"))
    }

    fn i64(&mut self) -> Result<i64> {
        let z = self.u64()?;
        Ok((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    /// A length no larger than `max`.
    fn len(&mut self, max: usize) -> Result<usize> {
        usize::try_from(self.u64()?)
            .ok()
            .filter(|&n| n <= max)
            .ok_or(PackError::Damaged("a length is out of range"))
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.len(self.0.len())?;
        std::str::from_utf8(self.take(n)?).map_err(|_| PackError::Damaged("a string is not UTF-8"))
    }

    fn dictionary(&mut self) -> Result<Vec<&'a str>> {
        let n = self.len(self.0.len())?;
        (0..n).map(|_| self.str()).collect()
    }

    /// An entry of a `strings` column (0: none).
    fn entry<'d>(&mut self, dict: &[&'d str]) -> Result<Option<&'d str>> {
        match self.u64()? {
            0 => Ok(None),
            k => dict
                .get(k as usize - 1)
                .copied()
                .map(Some)
                .ok_or(PackError::Damaged("an entry is not in the dictionary")),
        }
    }

    /// A `strings` column of `n` events.
    fn strings(&mut self, n: usize) -> Result<Strings> {
        let dict: Vec<String> = self.dictionary()?.into_iter().map(str::to_owned).collect();
        let mut at = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.u64()?;
            if k as usize > dict.len() {
                return Err(PackError::Damaged("an entry is not in the dictionary"));
            }
            at.push(k as u32);
        }
        Ok(Strings { dict, at })
    }

    /// A property's value as a [`Frame`] keeps it (`entries`: the dictionary's size).
    fn scalar(&mut self, tag: u8, entries: usize) -> Result<Scalar> {
        Ok(match tag {
            ABSENT => Scalar::Absent,
            STRING => {
                let k = self.u64()?;
                if k as usize >= entries {
                    return Err(PackError::Damaged("an entry is not in the dictionary"));
                }
                Scalar::Str(k as u32)
            }
            tag => match self.value(tag, &[])? {
                None => Scalar::Absent,
                Some(Value::Null) => Scalar::Null,
                Some(Value::Bool(b)) => Scalar::Bool(b),
                Some(Value::Number(n)) => Scalar::Number(n),
                Some(v) => Scalar::Json(Box::new(v)),
            },
        })
    }

    fn value(&mut self, tag: u8, dict: &[&str]) -> Result<Option<Value>> {
        Ok(Some(match tag {
            ABSENT => return Ok(None),
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::from(self.i64()?),
            UINT => Value::from(self.u64()?),
            DECIMAL => {
                let m = self.i64()?;
                let places = POWERS
                    .get(usize::from(self.byte()?))
                    .ok_or(PackError::Damaged("a decimal has too many places"))?;
                Number::from_f64(m as f64 / places)
                    .map(Value::Number)
                    .ok_or(PackError::Damaged("a decimal is not finite"))?
            }
            FLOAT => {
                let bytes: [u8; 8] = self
                    .take(8)?
                    .try_into()
                    .map_err(|_| PackError::Damaged("it ends early"))?;
                Number::from_f64(f64::from_le_bytes(bytes))
                    .map(Value::Number)
                    .ok_or(PackError::Damaged("a float is not finite"))?
            }
            STRING => {
                let k = self.u64()?;
                Value::String(
                    dict.get(k as usize)
                        .ok_or(PackError::Damaged("an entry is not in the dictionary"))?
                        .to_string(),
                )
            }
            JSON => serde_json::from_str(self.str()?)
                .map_err(|_| PackError::Damaged("an object is not JSON"))?,
            _ => return Err(PackError::Damaged("unknown value tag")),
        }))
    }
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: i64, ts: i64, props: Value) -> PackedEvent {
        PackedEvent {
            id,
            ts,
            name: format!("event-{}", id.rem_euclid(4)),
            distinct_id: (id % 3 != 0).then(|| format!("user-{}", id % 7)),
            session_id: (id % 2 == 0).then(|| format!("s{}", id % 5)),
            properties: props.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn every_kind_of_value_comes_back_as_it_went_in() {
        let mut events = vec![
            event(
                5,
                1_000,
                json!({"plan": "pro", "amount": 12.34, "n": -3, "ok": true}),
            ),
            event(
                2,
                1_000,
                json!({"plan": "free", "big": u64::MAX, "f": 0.1 + 0.2}),
            ),
            event(
                9,
                999,
                json!({"nested": {"a": 1, "b": "x"}, "none": null, "off": false}),
            ),
            event(
                -4,
                -50,
                json!({"amount": 1e300, "tiny": 5e-324, "whole": 3.0}),
            ),
            event(i64::MAX, i64::MAX, json!({})),
            event(i64::MIN, i64::MIN, json!({"s": ""})),
        ];
        let block = encode(&mut events).unwrap();
        let back = decode(&block, &Columns::all()).unwrap();
        assert_eq!(back, events, "sorted by (ts, id) and otherwise the same");
        assert!(
            back.windows(2)
                .all(|w| (w[0].ts, w[0].id) <= (w[1].ts, w[1].id))
        );
        for (a, b) in back.iter().zip(&events) {
            for (k, v) in &a.properties {
                if let (Some(x), Some(y)) = (v.as_f64(), b.properties[k].as_f64()) {
                    assert_eq!(x.to_bits(), y.to_bits(), "{k} is the same f64");
                }
            }
        }
    }

    #[test]
    fn a_reader_gets_only_the_columns_it_asks_for() {
        let mut events = vec![event(1, 10, json!({"plan": "pro", "country": "C07"}))];
        let block = encode(&mut events).unwrap();
        let some = decode(
            &block,
            &Columns {
                distinct_id: true,
                session_id: false,
                properties: Some(vec!["country".into()]),
            },
        )
        .unwrap();
        assert_eq!(some[0].distinct_id.as_deref(), Some("user-1"));
        assert_eq!(some[0].session_id, None);
        assert_eq!(
            Value::Object(some[0].properties.clone()),
            json!({"country": "C07"})
        );
    }

    #[test]
    fn the_benchmark_shape_takes_a_few_bytes_an_event() {
        let mut events: Vec<PackedEvent> = (0..2_000i64)
            .map(|i| {
                let x = (i * 7_919) % 100_003;
                PackedEvent {
                    id: (i * 104_729) % 9_999_991,
                    ts: 1_700_000_000_000 + i * 1_800,
                    name: format!("event_{}", x % 20),
                    distinct_id: Some(format!("user-{}", x % 100_000)),
                    session_id: None,
                    properties: json!({
                        "plan": (["free", "pro", "team"][(x % 3) as usize]),
                        "country": format!("C{:02}", x % 50),
                        "amount": f64::from((x % 100_000) as i32) / 100.0,
                    })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                }
            })
            .collect();
        let block = encode(&mut events).unwrap();
        let per_event = block.len() as f64 / events.len() as f64;
        assert!(per_event < 24.0, "{per_event} bytes an event");
        assert_eq!(decode(&block, &Columns::all()).unwrap(), events);
    }

    #[test]
    fn a_reader_builds_only_the_events_it_keeps() {
        let mut events: Vec<PackedEvent> = (0..40)
            .map(|i| event(i, 1_000 + i, json!({"n": i})))
            .collect();
        let block = encode(&mut events).unwrap();
        let kept = decode_where(&block, &Columns::all(), |name, ts, id| {
            name == "event-1" && ts >= 1_010 && id != 13
        })
        .unwrap();
        let expected: Vec<PackedEvent> = events
            .iter()
            .filter(|e| e.name == "event-1" && e.ts >= 1_010 && e.id != 13)
            .cloned()
            .collect();
        assert_eq!(kept, expected);
        assert_eq!(kept.len(), 6);
        assert!(
            decode_where(&block, &Columns::all(), |_, _, _| false)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_damaged_block_is_an_error() {
        let mut events = vec![event(1, 10, json!({"plan": "pro"}))];
        let block = encode(&mut events).unwrap();
        for cut in 0..block.len() {
            assert!(
                decode(&block[..cut], &Columns::all()).is_err()
                    && frame(&block[..cut], &Columns::all()).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = block.clone();
        bad[0] = 99;
        assert!(decode(&bad, &Columns::all()).is_err());
        assert!(decode(&[], &Columns::all()).is_err());
    }
}
