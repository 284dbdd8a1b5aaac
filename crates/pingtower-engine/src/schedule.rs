//! Due-time arithmetic: phases spread by a hash of the monitor id, no drift, no bursts.

use pingtower_core::MonitorId;

/// A monitor's phase inside its interval: stable across restarts (it comes from the id), and
/// spread evenly, so that many monitors with the same interval do not fire together.
pub fn phase_of(id: MonitorId, interval_ms: i64) -> i64 {
    let v = id.0.as_u128();
    let mixed = ((v as u64) ^ ((v >> 64) as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mixed = mixed ^ (mixed >> 29);
    (mixed % interval_ms.max(1) as u64) as i64
}

/// The first due time strictly after `after`, on the monitor's grid `phase + k × interval`.
pub fn next_due_after(after: i64, phase: i64, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    let k = (after - phase).div_euclid(interval) + 1;
    phase + k * interval
}

/// The due time that follows a check due at `due`: one interval later on the same grid, or, if
/// the scheduler fell behind past that, the next grid point after `now` (missed checks are
/// skipped, never run in a burst).
pub fn following(due: i64, now: i64, interval_ms: i64) -> i64 {
    let next = due + interval_ms.max(1);
    if next > now {
        next
    } else {
        next_due_after(now, due.rem_euclid(interval_ms.max(1)), interval_ms)
    }
}

/// Due times of many monitors in one binary heap. An entry carries the generation it was made
/// for; an owner that re-arms a monitor bumps its generation, and stale entries are skipped
/// when they surface (no search-and-remove in the heap).
#[derive(Default)]
pub struct DueHeap {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, u64, MonitorId)>>,
}

impl DueHeap {
    pub fn push(&mut self, at: i64, generation: u64, id: MonitorId) {
        self.heap.push(std::cmp::Reverse((at, generation, id)));
    }

    /// The earliest entry due by `now`, removed: `(due, generation, id)`.
    pub fn pop_due(&mut self, now: i64) -> Option<(i64, u64, MonitorId)> {
        match self.heap.peek() {
            Some(std::cmp::Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|r| r.0),
            _ => None,
        }
    }

    /// How long until the earliest entry is due (an hour when there is none).
    pub fn wait(&self, now: i64) -> std::time::Duration {
        self.heap.peek().map_or(
            std::time::Duration::from_secs(3600),
            |std::cmp::Reverse((at, _, _))| {
                std::time::Duration::from_millis((at - now).max(0) as u64)
            },
        )
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Keeps only the entries for which `live(generation, id)` holds.
    pub fn retain(&mut self, live: impl Fn(u64, MonitorId) -> bool) {
        let heap = std::mem::take(&mut self.heap);
        self.heap = heap
            .into_iter()
            .filter(|std::cmp::Reverse((_, g, id))| live(*g, *id))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_check_is_due_at_start_plus_n_intervals() {
        let (phase, interval) = (1_234, 60_000);
        let first = next_due_after(1_795_000_000_000, phase, interval);
        assert_eq!((first - phase) % interval, 0);
        let mut due = first;
        for n in 1..=1000 {
            // Each check fires a little late; the grid does not move.
            due = following(due, due + 37, interval);
            assert_eq!(due, first + n * interval);
        }
    }

    #[test]
    fn a_late_scheduler_skips_instead_of_bursting() {
        let interval = 10_000;
        let due = 1_000_000;
        let now = due + 35_500;
        let next = following(due, now, interval);
        assert!(next > now && next - now <= interval);
        assert_eq!((next - due) % interval, 0, "still on the grid");
    }

    #[test]
    fn phases_are_stable_and_spread() {
        let interval = 60_000;
        let ids: Vec<MonitorId> = (0..10_000).map(|_| MonitorId::new()).collect();
        assert_eq!(phase_of(ids[0], interval), phase_of(ids[0], interval));
        // UUIDv7s made in the same millisecond differ only in their random bits: phases must
        // still spread. 60 one-second buckets of 10,000 monitors: about 167 each.
        let mut buckets = [0u32; 60];
        for id in &ids {
            buckets[(phase_of(*id, interval) / 1000) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min().unwrap(), buckets.iter().max().unwrap());
        assert!(*min > 100 && *max < 240, "uneven: min {min}, max {max}");
    }
}
