//! The scheduler role: every active monitor's next due time in one heap, and due checks
//! published to `checks.due` in batches.
//!
//! One structure for all monitors (a binary heap of (due, generation, seq)), not a timer per
//! monitor. A change replaces the monitor's entry and bumps its generation; stale heap entries
//! are dropped lazily when they surface. Changes arrive on `config.changed` and take effect at
//! once; a full resync from the store every minute repairs anything a lost message missed.

use crate::schedule::{DueHeap, following, next_due_after, phase_of};
use crate::{EngineError, Metrics};
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::{Monitor, MonitorId, MonitorKind, TenantId, Timestamp};
use pingtower_store::{ScheduleEntry, Store};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A batch of due checks: the message on `checks.due`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DueChecks {
    pub checks: Vec<DueCheck>,
}

/// One due check. Workers look the monitor up (and cache it by version).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DueCheck {
    pub monitor_id: MonitorId,
    pub tenant_id: TenantId,
    /// The monitor's version when it was scheduled: a worker with an older copy refetches it.
    pub version: i64,
    pub due_at: Timestamp,
}

/// The message on `config.changed` when a monitor was created, changed or deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorChanged {
    pub tenant_id: TenantId,
    pub monitor_id: MonitorId,
}

/// The message on `config.changed` when a channel, rule, maintenance window or status page
/// changed (notifiers reload their caches).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceChanged {
    pub tenant_id: TenantId,
    /// `channel`, `rule`, `maintenance` or `status_page`.
    pub resource: String,
}

/// What a `config.changed` message says: `Ok(Some)` for a monitor, `Ok(None)` for another kind
/// of configuration (of no concern to schedulers), `Err` for a malformed message.
pub fn monitor_change(
    message: &pingtower_bus::Message,
) -> Result<Option<MonitorChanged>, pingtower_bus::BusError> {
    match message.json::<MonitorChanged>() {
        Ok(c) => Ok(Some(c)),
        Err(e) => match message.json::<ResourceChanged>() {
            Ok(_) => Ok(None),
            Err(_) => Err(e),
        },
    }
}

/// Subscribes this process to `config.changed` with a group of its own (every process hears
/// every change), named after `role`.
pub async fn subscribe_changes(
    bus: &dyn Bus,
    role: &str,
) -> Result<Box<dyn pingtower_bus::Subscription>, EngineError> {
    let group = format!("{role}-{}", uuid::Uuid::new_v4().simple());
    Ok(bus
        .subscribe(
            topics::CONFIG_CHANGED,
            &group,
            SubscribeOptions::ephemeral(),
        )
        .await?)
}

/// Tells every scheduler that a monitor changed (the API calls this after each write).
pub async fn notify_monitor_changed(
    bus: &dyn Bus,
    tenant_id: TenantId,
    monitor_id: MonitorId,
) -> Result<(), EngineError> {
    pingtower_bus::publish_json(
        bus,
        topics::CONFIG_CHANGED,
        &MonitorChanged {
            tenant_id,
            monitor_id,
        },
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Due checks per `checks.due` message.
    pub batch: usize,
    /// Full reload from the store.
    pub resync_every: Duration,
    /// Checks due within this much after the one that wakes the scheduler start with it, in
    /// one message. Each wake-up costs thread switches in the scheduler, the bus and the
    /// workers; at a few checks a second that is most of a check's CPU, so a quiet scheduler
    /// wakes about ten times a second at most instead of once per check. Coalescing never
    /// delays a check; it may start one up to this much before its due time. The grid (and so
    /// the absence of drift) is unchanged.
    pub coalesce: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            batch: 50,
            resync_every: Duration::from_secs(60),
            coalesce: Duration::from_millis(100),
        }
    }
}

/// What the scheduler keeps per monitor: a few words, not the monitor.
struct Entry {
    generation: u64,
    /// The reload that last saw it (entries a reload did not see are gone from the store).
    seen: u64,
    tenant_id: TenantId,
    interval_ms: i64,
    version: i64,
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    config: SchedulerConfig,
    metrics: Metrics,
    entries: HashMap<MonitorId, Entry>,
    heap: DueHeap,
    generation: u64,
    reloads: u64,
    /// The latest wall-clock time seen, to notice the clock stepping back.
    last_now: i64,
}

/// Whether the scheduler runs checks for this monitor (heartbeats are pushed to instead).
fn schedulable(m: &ScheduleEntry) -> bool {
    m.enabled && m.kind != MonitorKind::Heartbeat
}

fn entry_of(m: &Monitor) -> ScheduleEntry {
    ScheduleEntry {
        id: m.id,
        tenant_id: m.tenant_id,
        seq: m.seq,
        kind: m.kind,
        interval_ms: m.interval_ms,
        enabled: m.enabled,
        version: m.version,
    }
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        config: SchedulerConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            bus,
            config,
            metrics,
            entries: HashMap::new(),
            heap: DueHeap::default(),
            generation: 0,
            reloads: 0,
            last_now: i64::MIN,
        }
    }

    /// Adds, replaces or removes a monitor's entry.
    fn upsert(&mut self, m: ScheduleEntry, now: i64) {
        if !schedulable(&m) {
            self.entries.remove(&m.id);
            return;
        }
        if let Some(e) = self.entries.get_mut(&m.id)
            && e.interval_ms == m.interval_ms
        {
            // Same timing: it keeps its place on the grid and carries the new version.
            e.version = e.version.max(m.version);
            e.tenant_id = m.tenant_id;
            e.seen = self.reloads;
            return;
        }
        self.generation += 1;
        let due = next_due_after(now, phase_of(m.id, m.interval_ms), m.interval_ms);
        self.heap.push(due, self.generation, m.id);
        let entry = Entry {
            generation: self.generation,
            seen: self.reloads,
            tenant_id: m.tenant_id,
            interval_ms: m.interval_ms,
            version: m.version,
        };
        self.entries.insert(m.id, entry);
    }

    async fn load_all(&mut self) -> Result<(), EngineError> {
        let monitors = self.store.schedule_entries().await?;
        self.replace_all(monitors, &HashSet::new());
        Ok(())
    }

    /// Makes the table match `monitors` (unchanged entries keep their place in the heap).
    /// Monitors in `fresher` changed while the snapshot was read: their current entries win.
    fn replace_all(&mut self, monitors: Vec<ScheduleEntry>, fresher: &HashSet<MonitorId>) {
        let now = crate::now().as_millis();
        self.reloads += 1;
        for m in monitors {
            if !fresher.contains(&m.id) {
                self.upsert(m, now);
            }
        }
        let reload = self.reloads;
        self.entries
            .retain(|id, e| e.seen == reload || fresher.contains(id));
        self.metrics
            .scheduled_monitors
            .set(self.entries.len() as i64);
    }

    async fn apply_change(&mut self, change: &MonitorChanged) -> Result<(), EngineError> {
        let now = crate::now().as_millis();
        match self
            .store
            .get_monitor(change.tenant_id, change.monitor_id)
            .await
        {
            Ok(m) => self.upsert(entry_of(&m), now),
            Err(pingtower_store::StoreError::NotFound) => {
                self.entries.remove(&change.monitor_id);
            }
            Err(e) => return Err(e.into()),
        }
        self.metrics
            .scheduled_monitors
            .set(self.entries.len() as i64);
        Ok(())
    }

    /// Due times are wall-clock times. If the clock steps back (an NTP correction), every due
    /// time would move away by the step and checks would stop for as long; so on a step back of
    /// more than a second every monitor is put back on its grid relative to the new time.
    fn observe_clock(&mut self, now: i64) {
        if now.saturating_add(1_000) < self.last_now {
            tracing::warn!(
                stepped_back_ms = self.last_now - now,
                "the clock stepped back; rescheduling every monitor"
            );
            for (id, entry) in &mut self.entries {
                self.generation += 1;
                entry.generation = self.generation;
                let due = next_due_after(now, phase_of(*id, entry.interval_ms), entry.interval_ms);
                self.heap.push(due, self.generation, *id);
            }
            let entries = &self.entries;
            self.heap
                .retain(|g, id| entries.get(&id).is_some_and(|e| e.generation == g));
        }
        self.last_now = now;
    }

    /// Pops every entry due by `horizon` (`now`, or a little after it), schedules its next
    /// check, and returns the due checks.
    fn take_due(&mut self, now: i64, horizon: i64) -> Vec<DueCheck> {
        let mut due = Vec::new();
        while let Some((at, generation, id)) = self.heap.pop_due(horizon.max(now)) {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if entry.generation != generation {
                continue;
            }
            due.push(DueCheck {
                monitor_id: id,
                tenant_id: entry.tenant_id,
                version: entry.version,
                due_at: Timestamp::from_millis(at),
            });
            // After the horizon, not only after now: a check taken early this time is not
            // taken a second time in the same wake-up (a scheduler that fell behind skips).
            let next = following(at, horizon.max(now), entry.interval_ms);
            self.heap.push(next, generation, id);
        }
        // Stale entries pile up when monitors change often; rebuild when they dominate.
        if self.heap.len() > 2 * self.entries.len() + 1024 {
            let entries = &self.entries;
            self.heap
                .retain(|g, id| entries.get(&id).is_some_and(|e| e.generation == g));
        }
        due
    }

    async fn publish(&self, due: Vec<DueCheck>) {
        for chunk in due.chunks(self.config.batch.max(1)) {
            let batch = DueChecks {
                checks: chunk.to_vec(),
            };
            match pingtower_bus::publish_json(self.bus.as_ref(), topics::CHECKS_DUE, &batch).await {
                Ok(_) => {
                    self.metrics.checks_scheduled.inc_by(chunk.len() as u64);
                }
                Err(e) => {
                    tracing::warn!(error = %e, checks = chunk.len(), "publishing due checks failed; they run at their next due time")
                }
            }
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let mut changes = subscribe_changes(self.bus.as_ref(), "scheduler").await?;
        // Workers' queue exists before the first publish, so nothing is dropped at start.
        self.bus
            .declare(
                topics::CHECKS_DUE,
                crate::worker::WORKERS_GROUP,
                SubscribeOptions::default(),
            )
            .await?;
        self.load_all().await?;
        tracing::info!(monitors = self.entries.len(), "scheduler started");
        let mut resync = tokio::time::interval(self.config.resync_every);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        // The periodic reload reads the store in its own task, so that due checks keep firing
        // on time while a large table is read.
        let mut reload: Option<
            tokio::task::JoinHandle<Result<Vec<ScheduleEntry>, pingtower_store::StoreError>>,
        > = None;
        // Monitors changed while a reload reads the store: the reload's older view of them loses.
        let mut changed_during_reload: HashSet<MonitorId> = HashSet::new();
        loop {
            let now = crate::now().as_millis();
            self.observe_clock(now);
            let wait = self.heap.wait(now);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {
                    let now = crate::now().as_millis();
                    let coalesce = i64::try_from(self.config.coalesce.as_millis()).unwrap_or(0);
                    let due = self.take_due(now, now + coalesce);
                    if !due.is_empty() {
                        self.publish(due).await;
                    }
                }
                delivery = changes.next() => {
                    let Some(d) = delivery else { break };
                    match monitor_change(&d.message) {
                        Ok(None) => d.ack(),
                        Ok(Some(change)) => {
                            if reload.is_some() {
                                changed_during_reload.insert(change.monitor_id);
                            }
                            match self.apply_change(&change).await {
                                Ok(()) => d.ack(),
                                Err(e) => {
                                    tracing::warn!(error = %e, "applying a monitor change failed; retrying");
                                    d.nack(true);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "malformed config.changed message");
                            d.nack(false);
                        }
                    }
                }
                _ = resync.tick(), if reload.is_none() => {
                    let store = self.store.clone();
                    reload = Some(tokio::spawn(async move { store.schedule_entries().await }));
                }
                loaded = async {
                    match reload.as_mut() {
                        Some(job) => job.await,
                        None => std::future::pending().await,
                    }
                }, if reload.is_some() => {
                    reload = None;
                    let changed_during_reload = std::mem::take(&mut changed_during_reload);
                    match loaded {
                        Ok(Ok(monitors)) => self.replace_all(monitors, &changed_during_reload),
                        Ok(Err(e)) => tracing::warn!(error = %e, "scheduler resync failed"),
                        Err(e) => tracing::warn!(error = %e, "scheduler resync task failed"),
                    }
                }
            }
        }
        tracing::debug!("scheduler stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_changes_of_other_resources_are_not_monitor_changes() {
        let msg = |v: serde_json::Value| pingtower_bus::Message {
            id: uuid::Uuid::new_v4(),
            topic: topics::CONFIG_CHANGED.into(),
            payload: serde_json::to_vec(&v).unwrap().into(),
        };
        let t = TenantId::new();
        let m = MonitorId::new();
        let c = monitor_change(&msg(serde_json::json!({"tenant_id": t, "monitor_id": m})));
        assert_eq!(c.unwrap().unwrap().monitor_id, m);
        let r = monitor_change(&msg(
            serde_json::json!({"tenant_id": t, "resource": "channel"}),
        ));
        assert!(r.unwrap().is_none());
        assert!(monitor_change(&msg(serde_json::json!({"nonsense": 1}))).is_err());
    }

    use super::*;

    /// A scheduler over an empty SQLite store, not running: tests drive its clock.
    async fn scheduler() -> (tempfile::TempDir, Scheduler) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = pingtower_store::open(&url, &pingtower_store::StoreOptions::default())
            .await
            .unwrap();
        let bus: Arc<dyn Bus> = Arc::new(pingtower_bus::MemoryBus::new());
        let s = Scheduler::new(store, bus, SchedulerConfig::default(), Metrics::new());
        (dir, s)
    }

    #[tokio::test]
    async fn checks_due_close_together_are_taken_together_on_their_grid() {
        let (_dir, mut s) = scheduler().await;
        let now = 1_795_000_000_000;
        s.observe_clock(now);
        let mut ids = Vec::new();
        for _ in 0..200 {
            let entry = ScheduleEntry {
                id: MonitorId::new(),
                tenant_id: TenantId::new(),
                seq: 1,
                kind: MonitorKind::Http,
                interval_ms: 10_000,
                enabled: true,
                version: 1,
            };
            ids.push(entry.id);
            s.upsert(entry, now);
        }
        // Wake at each head's due time, as `run` does, and take what is due within 100 ms.
        let mut t = now;
        let mut wakeups = 0;
        let mut taken: HashMap<MonitorId, Vec<i64>> = HashMap::new();
        while t < now + 30_000 {
            t += i64::try_from(s.heap.wait(t).as_millis()).unwrap();
            wakeups += 1;
            for d in s.take_due(t, t + 100) {
                let due = d.due_at.as_millis();
                assert!(due >= t && due <= t + 100, "started late or too early");
                taken.entry(d.monitor_id).or_default().push(due);
            }
        }
        // 200 monitors at 10 s spread over the interval: 600 checks in 30 s, in about 300
        // wake-ups of 100 ms at most rather than 600.
        assert!(wakeups <= 310, "{wakeups} wake-ups");
        for id in ids {
            let dues = &taken[&id];
            // Three in 30 s (a fourth when the last wake-up reaches past the end).
            assert!((3..=4).contains(&dues.len()), "every check once: {dues:?}");
            assert!(
                dues.windows(2).all(|w| w[1] - w[0] == 10_000),
                "no drift: {dues:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_late_scheduler_takes_a_monitor_once_per_wake_up() {
        let (_dir, mut s) = scheduler().await;
        let now = 1_795_000_000_000;
        s.observe_clock(now);
        let entry = ScheduleEntry {
            id: MonitorId::new(),
            tenant_id: TenantId::new(),
            seq: 1,
            kind: MonitorKind::Http,
            interval_ms: 1_000,
            enabled: true,
            version: 1,
        };
        s.upsert(entry, now);
        // Woken 950 ms after the check was due: its next one (due in 50 ms) falls inside the
        // coalescing window, but is skipped, not run in the same breath.
        let due_at = now + i64::try_from(s.heap.wait(now).as_millis()).unwrap();
        let late = due_at + 950;
        s.observe_clock(late);
        let taken = s.take_due(late, late + 100);
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[0].due_at.as_millis(), due_at);
        let next = late + i64::try_from(s.heap.wait(late).as_millis()).unwrap();
        assert_eq!(next, due_at + 2_000, "on the grid, after the window");
    }

    #[tokio::test]
    async fn a_clock_stepping_back_does_not_stop_checks() {
        let (_dir, mut s) = scheduler().await;
        let now = 1_795_000_000_000;
        let entry = ScheduleEntry {
            id: MonitorId::new(),
            tenant_id: TenantId::new(),
            seq: 1,
            kind: MonitorKind::Http,
            interval_ms: 60_000,
            enabled: true,
            version: 1,
        };
        s.observe_clock(now);
        s.upsert(entry, now);
        assert!(s.heap.wait(now) <= Duration::from_secs(60));
        // An hour back: without rescheduling, the next check would be an hour away.
        let back = now - 3_600_000;
        s.observe_clock(back);
        assert!(
            s.heap.wait(back) <= Duration::from_secs(60),
            "{:?}",
            s.heap.wait(back)
        );
        assert_eq!(s.heap.len(), 1, "stale entries are dropped");
        let due = s.take_due(back + 60_000, back + 60_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].monitor_id, entry.id);
        // Small jitter is not a step.
        let generation = s.generation;
        s.observe_clock(back + 60_000 - 500);
        assert_eq!(s.generation, generation);
    }
}
