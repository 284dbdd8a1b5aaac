//! Distinct counts that merge: a HyperLogLog sketch of the `distinct_id`s of one name in one
//! minute or hour, kept beside its count, so that "unique users" over any window is a merge of
//! the window's sketches instead of a scan of its events.
//!
//! The format is ours, and stays: sketches are stored, so every process and every later
//! version must read and merge what an earlier one wrote. Values are hashed with SipHash-1-3
//! under fixed keys (a specified function, unlike `std`'s hasher, which may change); 2^12
//! registers give a standard error of 1.6 %. A sketch with few values keeps them as a sorted
//! list of (register, rank) pairs and becomes the dense register array when that list would
//! be larger; either way the estimate is the same function of the registers, and small counts
//! (below about 2,500) are linear counting, exact for a handful of values.
//!
//! Bytes: `3` then, per pair, the gap from the previous pair's register (the first: its
//! register) less one as a LEB128 varint and the rank, for the sparse form (about 2 bytes a
//! pair where registers are dense, 3 where few: a sketch of up to about 900 users stays under
//! PostgreSQL's 2 KB out-of-line threshold); `2` then one byte per register for the dense
//! form. `1` then 3 bytes per pair (register as u16 little-endian, rank) is the sparse form
//! written before; it is still read.

use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Bits of the hash that pick a register.
const P: u32 = 12;
/// Registers.
const M: usize = 1 << P;
/// Pairs a sparse sketch holds before it becomes dense (stored in 2 to 3 bytes each, well under
/// the dense form's 4 KiB).
const SPARSE_MAX: usize = M / 4;
const SPARSE: u8 = 1;
const DENSE: u8 = 2;
const SPARSE_GAPS: u8 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a stored sketch is damaged: {0}")]
pub struct Damaged(&'static str);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Registers {
    /// (register, rank) pairs, sorted by register, one per register.
    Sparse(Vec<(u16, u8)>),
    Dense(Box<[u8; M]>),
}

/// A mergeable estimate of how many distinct values were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sketch(Registers);

impl Default for Sketch {
    fn default() -> Self {
        Self(Registers::Sparse(Vec::new()))
    }
}

fn hash(value: &str) -> u64 {
    let mut h = SipHasher13::new_with_keys(0x7069_6e67_746f_7765, 0x7220_736b_6574_6368);
    h.write(value.as_bytes());
    h.finish()
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value.
    pub fn insert(&mut self, value: &str) {
        let h = hash(value);
        let register = (h >> (64 - P)) as u16;
        // The rank: where the first 1 is in the bits left, counting from 1.
        let rest = h << P;
        let rank = (rest.leading_zeros().min(64 - P) + 1) as u8;
        self.raise(register, rank);
    }

    fn raise(&mut self, register: u16, rank: u8) {
        match &mut self.0 {
            Registers::Dense(r) => {
                let slot = &mut r[usize::from(register)];
                *slot = (*slot).max(rank);
            }
            Registers::Sparse(pairs) => {
                match pairs.binary_search_by_key(&register, |(r, _)| *r) {
                    Ok(i) => pairs[i].1 = pairs[i].1.max(rank),
                    Err(i) => pairs.insert(i, (register, rank)),
                }
                if pairs.len() > SPARSE_MAX {
                    let mut dense = Box::new([0u8; M]);
                    for (r, k) in pairs.iter() {
                        dense[usize::from(*r)] = *k;
                    }
                    self.0 = Registers::Dense(dense);
                }
            }
        }
    }

    /// Makes this sketch count the values of both.
    pub fn merge(&mut self, other: &Sketch) {
        match (&mut self.0, &other.0) {
            (Registers::Dense(a), Registers::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = (*x).max(*y);
                }
            }
            (_, Registers::Sparse(pairs)) => {
                for (r, k) in pairs {
                    self.raise(*r, *k);
                }
            }
            (Registers::Sparse(_), Registers::Dense(b)) => {
                let mine = std::mem::replace(&mut self.0, Registers::Dense(b.clone()));
                if let Registers::Sparse(pairs) = mine {
                    for (r, k) in pairs {
                        self.raise(r, k);
                    }
                }
            }
        }
    }

    /// How many distinct values were added, estimated.
    pub fn estimate(&self) -> u64 {
        let m = M as f64;
        let (zeros, sum) = match &self.0 {
            Registers::Sparse(pairs) => {
                let set: f64 = pairs.iter().map(|(_, k)| 2f64.powi(-i32::from(*k))).sum();
                (M - pairs.len(), set + (M - pairs.len()) as f64)
            }
            Registers::Dense(r) => (
                r.iter().filter(|k| **k == 0).count(),
                r.iter().map(|k| 2f64.powi(-i32::from(*k))).sum(),
            ),
        };
        if zeros == M {
            return 0;
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let e = if raw <= 2.5 * m && zeros > 0 {
            // Linear counting, far more precise while registers are still empty.
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        e.round() as u64
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Registers::Sparse(pairs) => {
                let mut out = Vec::with_capacity(1 + 3 * pairs.len());
                out.push(SPARSE_GAPS);
                let mut next = 0u16;
                for (r, k) in pairs {
                    // Pairs are sorted by register, one per register: r >= next.
                    let mut gap = r.saturating_sub(next);
                    while gap >= 0x80 {
                        out.push((gap & 0x7f) as u8 | 0x80);
                        gap >>= 7;
                    }
                    out.push(gap as u8);
                    out.push(*k);
                    next = r.saturating_add(1);
                }
                out
            }
            Registers::Dense(r) => {
                let mut out = Vec::with_capacity(1 + M);
                out.push(DENSE);
                out.extend_from_slice(&r[..]);
                out
            }
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Damaged> {
        let max_rank = (64 - P + 1) as u8;
        match bytes.split_first() {
            Some((&SPARSE, rest)) => {
                if rest.len() % 3 != 0 || rest.len() / 3 > SPARSE_MAX {
                    return Err(Damaged("a sparse sketch's length"));
                }
                let mut pairs = Vec::with_capacity(rest.len() / 3);
                for c in rest.chunks_exact(3) {
                    let r = u16::from_le_bytes([c[0], c[1]]);
                    if usize::from(r) >= M || c[2] == 0 || c[2] > max_rank {
                        return Err(Damaged("a sparse sketch's pair"));
                    }
                    if pairs.last().is_some_and(|(last, _)| *last >= r) {
                        return Err(Damaged("a sparse sketch's order"));
                    }
                    pairs.push((r, c[2]));
                }
                Ok(Self(Registers::Sparse(pairs)))
            }
            Some((&SPARSE_GAPS, rest)) => {
                let mut pairs = Vec::new();
                let (mut at, mut next) = (0usize, 0usize);
                while at < rest.len() {
                    let mut gap = 0usize;
                    let mut shift = 0;
                    loop {
                        let b = *rest.get(at).ok_or(Damaged("a sparse sketch's gap"))?;
                        at += 1;
                        gap |= usize::from(b & 0x7f) << shift;
                        if b & 0x80 == 0 {
                            break;
                        }
                        shift += 7;
                        if shift > 14 {
                            return Err(Damaged("a sparse sketch's gap"));
                        }
                    }
                    let r = next + gap;
                    let k = *rest.get(at).ok_or(Damaged("a sparse sketch's rank"))?;
                    at += 1;
                    if r >= M || k == 0 || k > max_rank {
                        return Err(Damaged("a sparse sketch's pair"));
                    }
                    if pairs.len() == SPARSE_MAX {
                        return Err(Damaged("a sparse sketch's length"));
                    }
                    pairs.push((r as u16, k));
                    next = r + 1;
                }
                Ok(Self(Registers::Sparse(pairs)))
            }
            Some((&DENSE, rest)) => {
                let r: [u8; M] = rest
                    .try_into()
                    .map_err(|_| Damaged("a dense sketch's length"))?;
                if r.iter().any(|k| *k > max_rank) {
                    return Err(Damaged("a dense sketch's register"));
                }
                Ok(Self(Registers::Dense(Box::new(r))))
            }
            _ => Err(Damaged("an unknown sketch form")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn of(range: std::ops::Range<u32>) -> Sketch {
        let mut s = Sketch::new();
        for i in range {
            s.insert(&format!("user-{i}"));
        }
        s
    }

    fn within(estimate: u64, truth: u64, share: f64) -> bool {
        (estimate as f64 - truth as f64).abs() <= truth as f64 * share
    }

    #[test]
    fn small_counts_are_exact_and_large_ones_close() {
        assert_eq!(Sketch::new().estimate(), 0);
        for n in [1, 2, 7, 12] {
            assert_eq!(of(0..n).estimate(), u64::from(n), "{n}");
        }
        assert!(of(0..100).estimate().abs_diff(100) <= 2);
        for n in [1_000u32, 10_000, 100_000, 1_000_000] {
            let e = of(0..n).estimate();
            assert!(within(e, u64::from(n), 0.05), "{n}: {e}");
        }
        // Values added again count once.
        let mut s = of(0..500);
        s.merge(&of(0..500));
        assert!(within(s.estimate(), 500, 0.02));
    }

    #[test]
    fn merging_counts_the_union_whatever_the_forms() {
        for (a, b) in [
            (0..50, 25..80),
            (0..5_000, 2_500..9_000),
            (0..20, 10..6_000),
        ] {
            let union = u64::from(a.end.max(b.end) - a.start.min(b.start));
            let (mut x, y) = (of(a.clone()), of(b.clone()));
            x.merge(&y);
            let mut z = of(b);
            z.merge(&of(a));
            assert_eq!(x, z, "merging is symmetric");
            assert!(
                within(x.estimate(), union, 0.03),
                "{} {union}",
                x.estimate()
            );
            assert_eq!(x, of(0..union as u32), "the union's sketch, exactly");
        }
    }

    #[test]
    fn bytes_read_back_and_damage_is_refused() {
        for s in [Sketch::new(), of(0..10), of(0..100_000)] {
            assert_eq!(Sketch::from_bytes(&s.to_bytes()).unwrap(), s);
        }
        // Ten values: a byte or two of gap and a rank each.
        assert!(of(0..10).to_bytes().len() <= 31);
        // An hour of a name's users (hundreds): about two bytes a pair.
        let hour = of(0..700);
        assert!(hour.to_bytes().len() < 1_600, "{}", hour.to_bytes().len());
        // The sparse form written before (3 bytes a pair) reads as the same sketch.
        for s in [Sketch::new(), of(0..10), hour] {
            let Registers::Sparse(pairs) = &s.0 else {
                panic!("sparse")
            };
            let mut old = vec![SPARSE];
            for (r, k) in pairs {
                old.extend_from_slice(&r.to_le_bytes());
                old.push(*k);
            }
            assert_eq!(Sketch::from_bytes(&old).unwrap(), s);
        }
        for bad in [
            &[][..],
            &[9],
            &[SPARSE, 1, 0],
            &[SPARSE, 0xff, 0xff, 3],
            &[SPARSE, 2, 0, 3, 1, 0, 3],
            &[SPARSE_GAPS, 1],
            &[SPARSE_GAPS, 0x80],
            &[SPARSE_GAPS, 0xff, 0xff, 0xff, 1],
            &[SPARSE_GAPS, 0x80, 0x20, 3],
            &[SPARSE_GAPS, 0, 0],
            &[DENSE, 0],
        ] {
            assert!(Sketch::from_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
