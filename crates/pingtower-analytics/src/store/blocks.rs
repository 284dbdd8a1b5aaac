//! What both engines share about packed blocks (`analytics_blocks`): which staged events go
//! into which block, when a block is merged with its neighbours, and how a listing or a scan
//! joins the events still staged (`analytics_events`) with the packed ones.
//!
//! Events are appended as rows (`analytics_events`, the staging table: an insert is cheap and
//! durable), then packed (`EventStore::pack`) in one transaction per chunk: the chunk's rows
//! are grouped by (tenant, hour), each group becomes a block ([`crate::packed`], the event's
//! name one of its columns), and the rows are deleted. A group's small blocks are merged when there are four of a size class
//! (sizes 1-3, 4-15, 16-63, …, up to [`MAX_EVENTS`]), so an hour holds few blocks and each
//! event is rewritten a few times at most, whatever order events arrive in. Readers see the
//! staged rows and the blocks in one snapshot, so an event being packed is never missed nor
//! seen twice.

use super::{Cursor, EventStoreError, PIECE_EVENTS, Piece, Result, StoredEvent};
use crate::NewEvent;
use crate::packed::{self, Columns, MAX_EVENTS, PackedEvent};
use std::collections::BTreeMap;
use tokio::sync::mpsc::Sender;

/// One snapshot of a tenant's events in a range, page by page, as an engine reads it for
/// [`send_pieces`].
#[async_trait::async_trait]
pub trait Pages: Send {
    /// Staged events after `after`, oldest first, at most [`PIECE_EVENTS`].
    async fn staged(&mut self, after: Option<Cursor>) -> Result<Vec<StoredEvent>>;

    /// Blocks `(id, hour, data)` of the hours `[first, last]` that overlap the timestamps
    /// `[lo, hi]`, past `after` (as `(hour, id)`), oldest first, at most [`BLOCKS_PAGE`].
    async fn blocks(
        &mut self,
        hours: (i64, i64),
        bounds: (i64, i64),
        after: Option<(i64, i64)>,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>>;
}

/// What both engines' `EventStore::pieces` do over their snapshot: every staged event, then
/// every block that may hold events of `[from, to)`, sent as pieces until done or `out`
/// closes.
pub async fn send_pieces(
    pages: &mut dyn Pages,
    (from, to): (i64, i64),
    out: &Sender<Piece>,
) -> Result<()> {
    let mut after = None;
    loop {
        let staged = pages.staged(after).await?;
        let full = staged.len() == PIECE_EVENTS as usize;
        after = staged.last().map(Cursor::of);
        if !staged.is_empty() && out.send(Piece::Events(staged)).await.is_err() {
            return Ok(());
        }
        if !full {
            break;
        }
    }
    let bounds = (from, to.saturating_sub(1));
    let hours = (hour_of(bounds.0), hour_of(bounds.1));
    let mut after = None;
    loop {
        let rows = pages.blocks(hours, bounds, after).await?;
        let full = rows.len() == BLOCKS_PAGE;
        for (id, hour, data) in rows {
            after = Some((hour, id));
            if out.send(Piece::Block(data)).await.is_err() {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Staged rows one packing transaction takes.
pub const PACK_CHUNK: u32 = 50_000;
/// Blocks one read of a listing or scan fetches.
pub const BLOCKS_PAGE: usize = 32;

/// The hour that holds `ts`.
pub fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(3_600_000) * 3_600_000
}

/// A block's place: its tenant and hour.
pub type GroupKey = (uuid::Uuid, i64);

/// Staged events grouped by block.
pub fn group(
    rows: impl IntoIterator<Item = (uuid::Uuid, PackedEvent)>,
) -> BTreeMap<GroupKey, Vec<PackedEvent>> {
    let mut groups: BTreeMap<GroupKey, Vec<PackedEvent>> = BTreeMap::new();
    for (tenant, e) in rows {
        groups.entry((tenant, hour_of(e.ts))).or_default().push(e);
    }
    groups
}

/// Events of one hour in one batch from which the batch writes them as a block at once,
/// rather than as rows to pack later: a stream of events as they happen arrives in such
/// groups, and skips the staging table's insert, read and delete.
pub const DIRECT_MIN: usize = 256;

/// A batch split by hour: the groups of at least [`DIRECT_MIN`] events (to be written as
/// blocks, with their hour), and the rest (to be staged), each in the batch's order.
pub fn split_direct(events: &[NewEvent]) -> (Vec<(i64, Vec<&NewEvent>)>, Vec<&NewEvent>) {
    let mut hours: BTreeMap<i64, Vec<&NewEvent>> = BTreeMap::new();
    for e in events {
        hours
            .entry(hour_of(e.timestamp.as_millis()))
            .or_default()
            .push(e);
    }
    let mut direct = Vec::new();
    let mut staged = Vec::new();
    for (hour, group) in hours {
        if group.len() >= DIRECT_MIN {
            direct.push((hour, group));
        } else {
            staged.extend(group);
        }
    }
    (direct, staged)
}

/// `e` as a block keeps it, with the id given.
pub fn packed_new(e: &NewEvent, id: i64) -> PackedEvent {
    PackedEvent {
        id,
        ts: e.timestamp.as_millis(),
        name: e.name.clone(),
        distinct_id: e.distinct_id.clone(),
        session_id: e.session_id.clone(),
        properties: e.properties.clone(),
    }
}

/// Size classes: 1-3, 4-15, 16-63, …
fn class(count: i64) -> u32 {
    (count.max(1).ilog2()) / 2
}

/// Which of a group's blocks (`(id, count)`) to merge with `new` staged events: while the
/// new block and at least three others are of its size class or below, they merge (and the
/// merged block, now larger, may merge again). Full blocks are left alone.
pub fn merge_plan(existing: &[(i64, i64)], new: i64) -> Vec<i64> {
    let mut chosen: Vec<i64> = Vec::new();
    let mut total = new;
    loop {
        let c = class(total);
        let same: Vec<(i64, i64)> = existing
            .iter()
            .filter(|(id, n)| *n < MAX_EVENTS as i64 && class(*n) <= c && !chosen.contains(id))
            .copied()
            .collect();
        if same.len() < 3 {
            return chosen;
        }
        for (id, n) in same {
            chosen.push(id);
            total += n;
        }
        if total >= MAX_EVENTS as i64 {
            return chosen;
        }
    }
}

/// A block to write: its events (sorted) and the figures kept beside it.
pub struct NewBlock {
    pub count: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub data: Vec<u8>,
}

/// `events` packed into blocks of at most [`MAX_EVENTS`].
pub fn blocks_of(mut events: Vec<PackedEvent>) -> Result<Vec<NewBlock>> {
    events.sort_by_key(|e| (e.ts, e.id));
    events
        .chunks_mut(MAX_EVENTS)
        .map(|chunk| {
            let (min_ts, max_ts) = (chunk[0].ts, chunk[chunk.len() - 1].ts);
            Ok(NewBlock {
                count: chunk.len() as i64,
                min_ts,
                max_ts,
                data: packed::encode(chunk).map_err(corrupt)?,
            })
        })
        .collect()
}

pub fn corrupt(e: packed::PackError) -> EventStoreError {
    EventStoreError::Corrupt(e.to_string())
}

/// A block's events, every column.
pub fn unpack(data: &[u8]) -> Result<Vec<PackedEvent>> {
    packed::decode(data, &Columns::all()).map_err(corrupt)
}

/// A block's events, every column, to merge with others; `None` (logged) when it does not
/// decode, and the block `id` is to be left as it is.
pub fn unpack_or_keep(data: &[u8], id: i64) -> Option<Vec<PackedEvent>> {
    match unpack(data) {
        Ok(events) => Some(events),
        Err(e) => {
            tracing::error!(block = id, error = %e, "a block of events is damaged; it is not merged");
            None
        }
    }
}

pub fn packed_of(e: StoredEvent) -> PackedEvent {
    PackedEvent {
        id: e.id,
        ts: e.timestamp.as_millis(),
        name: e.name,
        distinct_id: e.distinct_id,
        session_id: e.session_id,
        properties: e.properties,
    }
}

pub fn stored_of(e: PackedEvent) -> StoredEvent {
    StoredEvent {
        id: e.id,
        name: e.name,
        timestamp: pingtower_core::Timestamp::from_millis(e.ts),
        distinct_id: e.distinct_id,
        session_id: e.session_id,
        properties: e.properties,
    }
}

/// Which way a reading goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newest first, before the cursor (a listing).
    NewestFirst,
    /// Oldest first, after the cursor (a scan).
    OldestFirst,
}

/// Gathers a page from blocks read hour by hour in the page's order: once `limit` events are
/// gathered, the rest of the hour being read is still needed (its blocks are not ordered
/// among themselves), then nothing more.
pub struct Gather {
    order: Order,
    limit: usize,
    range: (i64, i64),
    cursor: Option<Cursor>,
    events: Vec<StoredEvent>,
    /// The hour after which nothing more is needed.
    last_hour: Option<i64>,
    want: Columns,
    names: Option<Vec<String>>,
    /// The last block read, as (hour, id): where the next page of blocks starts.
    after: Option<(i64, i64)>,
}

impl Gather {
    pub fn new(order: Order, limit: u32, range: (i64, i64), cursor: Option<Cursor>) -> Self {
        Self {
            order,
            limit: limit as usize,
            range,
            cursor,
            events: Vec::new(),
            last_hour: None,
            want: Columns::all(),
            names: None,
            after: None,
        }
    }

    /// Keeps only events of these names (all when `None`).
    pub fn named(mut self, names: Option<&[String]>) -> Self {
        self.names = names.map(<[String]>::to_vec);
        self
    }

    /// Reads only these columns of packed events.
    pub fn reading(mut self, want: &Columns) -> Self {
        self.want = want.clone();
        self
    }

    pub fn newest_first(&self) -> bool {
        self.order == Order::NewestFirst
    }

    /// The first and last timestamps (inclusive) a block must overlap to hold a wanted event.
    pub fn ts_bounds(&self) -> (i64, i64) {
        let (mut lo, mut hi) = (self.range.0, self.range.1.saturating_sub(1));
        match (self.cursor, self.order) {
            (Some(c), Order::NewestFirst) => hi = hi.min(c.timestamp.as_millis()),
            (Some(c), Order::OldestFirst) => lo = lo.max(c.timestamp.as_millis()),
            (None, _) => {}
        }
        (lo, hi)
    }

    /// The last block read, as (hour, id): the next page starts past it.
    pub fn after(&self) -> Option<(i64, i64)> {
        self.after
    }

    /// Adds a page of blocks `(id, hour, data)`, read in the gather's order, at most
    /// [`BLOCKS_PAGE`]. Returns whether another page is needed.
    pub fn take_page(&mut self, rows: &[(i64, i64, Vec<u8>)]) -> Result<bool> {
        for (id, hour, data) in rows {
            if !self.wants(*hour) {
                return Ok(false);
            }
            self.add(*hour, data)?;
            self.after = Some((*hour, *id));
        }
        Ok(rows.len() == BLOCKS_PAGE)
    }

    /// Whether a block of `hour` is still needed (false: stop reading).
    fn wants(&self, hour: i64) -> bool {
        self.last_hour.is_none_or(|h| h == hour)
    }

    fn keeps(&self, name: &str, ts: i64, id: i64) -> bool {
        if ts < self.range.0 || ts >= self.range.1 {
            return false;
        }
        if let Some(names) = &self.names
            && !names.iter().any(|n| n == name)
        {
            return false;
        }
        match (self.cursor, self.order) {
            (None, _) => true,
            (Some(c), Order::NewestFirst) => (ts, id) < (c.timestamp.as_millis(), c.id),
            (Some(c), Order::OldestFirst) => (ts, id) > (c.timestamp.as_millis(), c.id),
        }
    }

    fn add(&mut self, hour: i64, data: &[u8]) -> Result<()> {
        let kept = packed::decode_where(data, &self.want, |name, ts, id| self.keeps(name, ts, id))
            .map_err(corrupt)?;
        self.events.extend(kept.into_iter().map(stored_of));
        if self.last_hour.is_none() && self.events.len() >= self.limit {
            self.last_hour = Some(hour);
        }
        Ok(())
    }

    /// The page: the gathered events and the staged ones (read in the same snapshot), in
    /// order, at most `limit`.
    pub fn finish(self, staged: Vec<StoredEvent>) -> Vec<StoredEvent> {
        let mut all = self.events;
        all.extend(staged);
        match self.order {
            Order::NewestFirst => {
                all.sort_by_key(|e| std::cmp::Reverse((e.timestamp.as_millis(), e.id)))
            }
            Order::OldestFirst => all.sort_by_key(|e| (e.timestamp.as_millis(), e.id)),
        }
        all.truncate(self.limit);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_blocks_merge_by_size_class_and_full_ones_stay() {
        assert_eq!(merge_plan(&[], 5), Vec::<i64>::new());
        assert_eq!(merge_plan(&[(1, 5), (2, 6)], 5), Vec::<i64>::new());
        assert_eq!(merge_plan(&[(1, 5), (2, 6), (3, 4)], 5), vec![1, 2, 3]);
        // 20 is of a class above 5: it waits for its own peers.
        assert_eq!(merge_plan(&[(1, 20), (2, 6), (3, 4)], 5), Vec::<i64>::new());
        // Merging makes a block of the next class, which merges again with its peers.
        let merged = merge_plan(&[(1, 20), (2, 20), (3, 20), (4, 6), (5, 4), (6, 5)], 5);
        assert_eq!(merged.len(), 6, "{merged:?}");
        // Full blocks are never rewritten.
        let full = MAX_EVENTS as i64;
        assert_eq!(
            merge_plan(&[(1, full), (2, full), (3, full)], full),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn an_hour_keeps_few_blocks_and_events_are_rewritten_a_few_times() {
        // 3 events at a time, 2,000 times: the shape of a busy store packing events spread
        // over a month.
        let mut blocks: Vec<(i64, i64)> = Vec::new();
        let (mut next, mut written) = (0i64, 0i64);
        for _ in 0..2_000 {
            let merge = merge_plan(&blocks, 3);
            let total = 3 + blocks
                .iter()
                .filter(|(id, _)| merge.contains(id))
                .map(|(_, n)| n)
                .sum::<i64>();
            blocks.retain(|(id, _)| !merge.contains(id));
            next += 1;
            blocks.push((next, total));
            written += total;
        }
        assert!(blocks.len() <= 12, "{} blocks", blocks.len());
        let amplification = written as f64 / 6_000.0;
        assert!(
            amplification < 6.0,
            "each event written {amplification} times"
        );
    }
}
