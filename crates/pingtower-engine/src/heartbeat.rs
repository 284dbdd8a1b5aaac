//! Heartbeat (push) monitors: nobody checks them, they are pinged. This watcher, part of the
//! scheduler role, knows each heartbeat monitor's deadline (last ping + interval + grace, or
//! the next cron time + grace) and records a DOWN result for every deadline that passes without
//! a ping; one per interval while the silence lasts.

use crate::schedule::DueHeap;
use crate::{EngineError, WriterHandle};
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::check::{CheckKindSpec, CheckSpec, HeartbeatSpec};
use pingtower_core::{
    CheckResult, CheckStatus, Monitor, MonitorId, MonitorKind, TenantId, Timestamp,
};
use pingtower_store::{PageRequest, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The message on `heartbeat.pings`: a ping was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatPing {
    pub tenant_id: TenantId,
    pub monitor_id: MonitorId,
    pub at: Timestamp,
}

/// Tells the watcher a ping was committed (the push endpoint calls this).
pub async fn publish_ping(bus: &dyn Bus, ping: &HeartbeatPing) -> Result<(), EngineError> {
    pingtower_bus::publish_json(bus, topics::HEARTBEAT_PINGS, ping).await?;
    Ok(())
}

/// The `details` marker of the results this watcher writes, so they are never taken for pings.
pub const MISSED: &str = "missed";

struct Beat {
    generation: u64,
    monitor: Arc<Monitor>,
    spec: HeartbeatSpec,
    /// The last ping, if any.
    last_ping: Option<i64>,
}

pub struct HeartbeatWatcher {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    writer: WriterHandle,
    region: String,
    beats: HashMap<MonitorId, Beat>,
    heap: DueHeap,
    generation: u64,
}

fn heartbeat_spec(m: &Monitor) -> Option<HeartbeatSpec> {
    if m.kind != MonitorKind::Heartbeat || !m.enabled {
        return None;
    }
    match CheckSpec::of(m) {
        Ok(CheckSpec {
            kind: CheckKindSpec::Heartbeat(h),
            ..
        }) => Some(h),
        _ => None,
    }
}

impl HeartbeatWatcher {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        writer: WriterHandle,
        region: String,
    ) -> Self {
        Self {
            store,
            bus,
            writer,
            region,
            beats: HashMap::new(),
            heap: DueHeap::default(),
            generation: 0,
        }
    }

    fn arm(&mut self, id: MonitorId, since: i64) {
        let Some(beat) = self.beats.get_mut(&id) else {
            return;
        };
        self.generation += 1;
        beat.generation = self.generation;
        let deadline = beat.spec.deadline(since, beat.monitor.interval_ms);
        self.heap.push(deadline, self.generation, id);
    }

    /// The last ping stored for a monitor (results this watcher wrote do not count).
    async fn last_ping(&self, m: &Monitor) -> Result<Option<i64>, EngineError> {
        let page = self
            .store
            .list_results(m.tenant_id, m.id, &PageRequest::first(500))
            .await?;
        Ok(page
            .items
            .iter()
            .find(|r| {
                r.details
                    .as_ref()
                    .and_then(|d| d.get("heartbeat"))
                    .and_then(|v| v.as_str())
                    != Some(MISSED)
            })
            .map(|r| r.checked_at.as_millis()))
    }

    async fn upsert(&mut self, m: Monitor) -> Result<(), EngineError> {
        let Some(spec) = heartbeat_spec(&m) else {
            self.beats.remove(&m.id);
            return Ok(());
        };
        let last_ping = match self.beats.get(&m.id) {
            Some(b) => b.last_ping,
            None => self.last_ping(&m).await?,
        };
        // Never pinged: the clock starts when the monitor was created or last changed.
        let since = last_ping.unwrap_or(m.updated_at.as_millis());
        let id = m.id;
        self.beats.insert(
            id,
            Beat {
                generation: 0,
                monitor: Arc::new(m),
                spec,
                last_ping,
            },
        );
        self.arm(id, since);
        Ok(())
    }

    async fn load_all(&mut self) -> Result<(), EngineError> {
        let ids: Vec<MonitorId> = self
            .store
            .schedule_entries()
            .await?
            .into_iter()
            .filter(|e| e.kind == MonitorKind::Heartbeat && e.enabled)
            .map(|e| e.id)
            .collect();
        for m in self.store.monitors_by_ids(&ids).await? {
            self.upsert(m).await?;
        }
        Ok(())
    }

    fn ping(&mut self, ping: &HeartbeatPing) {
        let at = ping.at.as_millis();
        let Some(beat) = self.beats.get_mut(&ping.monitor_id) else {
            return;
        };
        if beat.last_ping.is_some_and(|l| l >= at) {
            return;
        }
        beat.last_ping = Some(at);
        self.arm(ping.monitor_id, at);
    }

    /// Records a DOWN result for every deadline passed by `now`.
    async fn fire(&mut self, now: i64) {
        let mut missed = Vec::new();
        while let Some((at, generation, id)) = self.heap.pop_due(now) {
            let Some(beat) = self.beats.get(&id) else {
                continue;
            };
            if beat.generation != generation {
                continue;
            }
            let m = &beat.monitor;
            let expected = match &beat.spec.cron {
                Some(c) => format!("on schedule `{}` ({})", c.expression, c.tz),
                None => format!("every {}s", m.interval_ms / 1000),
            };
            let reason = match beat.last_ping {
                Some(last) => format!(
                    "no ping since {} (expected {expected}, {}s grace)",
                    Timestamp::from_millis(last),
                    beat.spec.grace_ms / 1000
                ),
                None => format!(
                    "no ping yet (expected {expected}, {}s grace)",
                    beat.spec.grace_ms / 1000
                ),
            };
            missed.push(CheckResult {
                monitor_id: m.id,
                monitor_seq: m.seq,
                tenant_id: m.tenant_id,
                region: self.region.clone(),
                checked_at: Timestamp::from_millis(at),
                status: CheckStatus::Down,
                latency_us: 0,
                reason: Some(reason),
                details: Some(serde_json::json!({"heartbeat": MISSED})),
            });
            // Again one period later while the silence lasts; after a long outage of this
            // watcher (a restart), one DOWN for the silence, not one per missed period.
            let mut since = at - beat.spec.grace_ms;
            loop {
                let next = beat.spec.deadline(since, m.interval_ms);
                if next > now || next <= since {
                    break;
                }
                since = next - beat.spec.grace_ms;
            }
            self.arm(id, since);
        }
        if !missed.is_empty()
            && let Err(e) = self.writer.write(missed).await
        {
            tracing::warn!(error = %e, "recording missed heartbeats failed");
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let mut pings = self
            .bus
            .subscribe(
                topics::HEARTBEAT_PINGS,
                &format!("heartbeats-{instance}"),
                SubscribeOptions::ephemeral(),
            )
            .await?;
        let mut changes =
            crate::scheduler::subscribe_changes(self.bus.as_ref(), "heartbeat-changes").await?;
        self.load_all().await?;
        loop {
            let now = crate::now().as_millis();
            let wait = self.heap.wait(now);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => self.fire(crate::now().as_millis()).await,
                d = pings.next() => {
                    let Some(d) = d else { break };
                    if let Ok(ping) = d.message.json::<HeartbeatPing>() {
                        self.ping(&ping);
                    }
                    d.ack();
                }
                d = changes.next() => {
                    let Some(d) = d else { break };
                    let change = match crate::scheduler::monitor_change(&d.message) {
                        Ok(Some(change)) => change,
                        Ok(None) => { d.ack(); continue }
                        Err(_) => { d.nack(false); continue }
                    };
                    match self.store.get_monitor(change.tenant_id, change.monitor_id).await {
                        Ok(m) => match self.upsert(m).await {
                            Ok(()) => d.ack(),
                            Err(_) => d.nack(true),
                        },
                        Err(pingtower_store::StoreError::NotFound) => {
                            self.beats.remove(&change.monitor_id);
                            d.ack();
                        }
                        Err(_) => d.nack(true),
                    }
                }
            }
        }
        Ok(())
    }
}
