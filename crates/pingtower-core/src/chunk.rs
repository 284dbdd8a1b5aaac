//! The stored form of older raw results: one blob per monitor, region and hour, the way
//! time-series databases keep points. Times are delta-of-delta encoded (a steady interval costs
//! one byte), latencies delta encoded, reasons and details kept once per distinct text. About
//! five bytes per result instead of a row each; see `bench/` for the measured figure.
//!
//! Compaction keeps a result's time, status, latency and reason, and its details (timings,
//! assertion outcomes) only when it was not UP: the details of an UP result are what every other
//! UP result says, and what matters of it later is in its latency.

use crate::CheckStatus;
use crate::codec::{DecodeError, Reader, put_bytes, put_i64, put_u64};

/// One result as a chunk holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkEntry {
    pub checked_at: i64,
    pub status: CheckStatus,
    pub latency_us: i64,
    pub reason: Option<String>,
    /// JSON text.
    pub details: Option<String>,
}

const VERSION: u8 = 1;
const HAS_REASON: u8 = 4;
const HAS_DETAILS: u8 = 8;

fn corrupt(detail: &'static str) -> DecodeError {
    DecodeError {
        what: "result chunk",
        detail,
    }
}

/// Encodes entries (sorted here by time; equal times keep the first). Details of UP results are
/// dropped.
pub fn encode(entries: &mut Vec<ChunkEntry>) -> Vec<u8> {
    entries.sort_by_key(|e| e.checked_at);
    entries.dedup_by_key(|e| e.checked_at);
    fn index<'a>(s: &'a str, texts: &mut Vec<&'a str>) -> u64 {
        // Chunks hold an hour: a linear search over its few distinct texts is cheapest.
        match texts.iter().position(|t| *t == s) {
            Some(i) => i as u64,
            None => {
                texts.push(s);
                (texts.len() - 1) as u64
            }
        }
    }
    let mut body = Vec::with_capacity(entries.len() * 6);
    let (mut prev_t, mut prev_dt, mut prev_lat) = (0i64, 0i64, 0i64);
    let mut strings = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let dt = if i == 0 { 0 } else { e.checked_at - prev_t };
        if i == 0 {
            put_i64(&mut body, e.checked_at);
        } else {
            put_i64(&mut body, dt - prev_dt);
        }
        prev_t = e.checked_at;
        prev_dt = dt;
        let details = e.details.as_deref().filter(|_| e.status != CheckStatus::Up);
        let mut tag = e.status.code() as u8;
        if e.reason.is_some() {
            tag |= HAS_REASON;
        }
        if details.is_some() {
            tag |= HAS_DETAILS;
        }
        body.push(tag);
        put_i64(&mut body, e.latency_us - prev_lat);
        prev_lat = e.latency_us;
        if let Some(r) = &e.reason {
            put_u64(&mut body, index(r, &mut strings));
        }
        if let Some(d) = details {
            put_u64(&mut body, index(d, &mut strings));
        }
    }
    let texts = strings;
    let mut out = Vec::with_capacity(body.len() + 8);
    out.push(VERSION);
    put_u64(&mut out, entries.len() as u64);
    put_u64(&mut out, texts.len() as u64);
    for t in &texts {
        put_bytes(&mut out, t.as_bytes());
    }
    out.extend_from_slice(&body);
    out
}

/// Decodes a chunk, oldest first.
pub fn decode(bytes: &[u8]) -> Result<Vec<ChunkEntry>, DecodeError> {
    let mut r = Reader::new(bytes, "result chunk");
    if r.u8()? != VERSION {
        return Err(corrupt("unknown format version"));
    }
    let n = r.u64()?;
    let n_texts = r.u64()?;
    // Every entry and text takes at least a byte: a count beyond the blob is corruption, and
    // must not become an allocation.
    if n > bytes.len() as u64 || n_texts > bytes.len() as u64 {
        return Err(corrupt("count larger than the chunk"));
    }
    let mut texts = Vec::with_capacity(n_texts as usize);
    for _ in 0..n_texts {
        texts.push(r.str()?);
    }
    let text = |i: u64| -> Result<String, DecodeError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| texts.get(i))
            .map(|s| (*s).to_owned())
            .ok_or(corrupt("text index out of range"))
    };
    let mut out = Vec::with_capacity(n as usize);
    let (mut t, mut dt, mut lat) = (0i64, 0i64, 0i64);
    for i in 0..n {
        if i == 0 {
            t = r.i64()?;
        } else {
            dt = dt.wrapping_add(r.i64()?);
            t = t.wrapping_add(dt);
        }
        let tag = r.u8()?;
        let status = CheckStatus::from_code(i16::from(tag & 3)).ok_or(corrupt("bad status"))?;
        lat = lat.wrapping_add(r.i64()?);
        let reason = if tag & HAS_REASON != 0 {
            Some(text(r.u64()?)?)
        } else {
            None
        };
        let details = if tag & HAS_DETAILS != 0 {
            Some(text(r.u64()?)?)
        } else {
            None
        };
        out.push(ChunkEntry {
            checked_at: t,
            status,
            latency_us: lat,
            reason,
            details,
        });
    }
    if !r.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = CheckStatus> {
        prop_oneof![
            Just(CheckStatus::Up),
            Just(CheckStatus::Down),
            Just(CheckStatus::Degraded)
        ]
    }

    proptest! {
        #[test]
        fn chunks_round_trip(entries in proptest::collection::vec(
            (0i64..3_600_000, status(), 0i64..60_000_000, proptest::option::of("[a-z ]{0,12}"),
             proptest::option::of("\\{\"[a-z]{1,4}\":[0-9]{1,3}\\}")), 0..200)) {
            let base = 1_800_000_000_000i64;
            let mut input: Vec<ChunkEntry> = entries.into_iter().map(|(t, status, latency_us, reason, details)| ChunkEntry {
                checked_at: base + t, status, latency_us, reason, details,
            }).collect();
            let bytes = encode(&mut input);
            let got = decode(&bytes).unwrap();
            let want: Vec<ChunkEntry> = input.into_iter().map(|mut e| {
                if e.status == CheckStatus::Up { e.details = None; }
                e
            }).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn an_hour_at_a_steady_minute_takes_a_few_bytes_per_result() {
        let base = 1_800_000_000_000i64;
        let mut entries: Vec<ChunkEntry> = (0..60)
            .map(|i| ChunkEntry {
                checked_at: base + i * 60_000 + (i * 37 % 11),
                status: CheckStatus::Up,
                latency_us: 40_000 + (i * 7919 % 5_000),
                reason: None,
                details: Some("{\"timings\":{}}".into()),
            })
            .collect();
        let bytes = encode(&mut entries);
        assert!(bytes.len() <= 60 * 5, "{} bytes", bytes.len());
    }
}
