//! Rules: which changes of state go to which channels.
//!
//! A rule selects monitors (`"all"`, a list of ids, or `{"tags": [...]}`), events (`down`, `up`,
//! `degraded`) and channels. A DOWN transition is `down`; UP after DOWN is `up` (unless the rule
//! sets `notify_on_resolve: false`); DEGRADED (not after DOWN) is `degraded`. Each (transition,
//! event, channel) becomes one delivery: the delivery log refuses a second with the same key, so
//! a state change delivered twice notifies once.

use crate::{Event, Notification, NotifyError};
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::{
    Delivery, DeliveryId, DeliveryStatus, Monitor, MonitorStatus, Resource, ResourceId,
    ResourceKind, TenantId,
};
use pingtower_engine::evaluator::StateChange;
use pingtower_store::Store;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The consumer group of notificators on `monitor.state`.
pub const NOTIFICATORS_GROUP: &str = "notificators";

/// A tenant's rules and channels, as cached.
struct TenantConfig {
    rules: Vec<Resource>,
    channels: HashMap<ResourceId, Resource>,
}

pub struct Notificator {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    cache: HashMap<TenantId, TenantConfig>,
}

/// The event a change of state is, if any.
pub fn event_of(change: &StateChange) -> Option<Event> {
    match (change.from, change.to) {
        (_, MonitorStatus::Down) => Some(Event::Down),
        (MonitorStatus::Down, MonitorStatus::Up | MonitorStatus::Degraded) => Some(Event::Up),
        (_, MonitorStatus::Degraded) => Some(Event::Degraded),
        _ => None,
    }
}

/// Whether a rule's monitor selection takes `m`.
fn selects(selection: &Value, m: &Monitor) -> bool {
    pingtower_core::resource::selects(selection, m.id, &m.tags)
}

/// The channels the tenant's rules send `event` of `m` to, each once.
fn channels_for(rules: &[Resource], m: &Monitor, event: Event) -> Vec<ResourceId> {
    let mut out = Vec::new();
    for rule in rules {
        let spec = &rule.spec;
        if !selects(&spec["monitors"], m) {
            continue;
        }
        let wants = spec["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x.as_str() == Some(event.as_str())));
        let resolve_off = event == Event::Up && spec["notify_on_resolve"] == Value::Bool(false);
        if !wants || resolve_off {
            continue;
        }
        for id in spec["channels"].as_array().into_iter().flatten() {
            if let Some(id) = id.as_str().and_then(|s| s.parse::<ResourceId>().ok())
                && !out.contains(&id)
            {
                out.push(id);
            }
        }
    }
    out
}

impl Notificator {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            store,
            bus,
            cache: HashMap::new(),
        }
    }

    async fn config(&mut self, tenant: TenantId) -> Result<&TenantConfig, NotifyError> {
        if !self.cache.contains_key(&tenant) {
            let rules = self
                .store
                .list_resources(tenant, ResourceKind::Rule)
                .await?;
            let channels = self
                .store
                .list_resources(tenant, ResourceKind::Channel)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
            self.cache.insert(tenant, TenantConfig { rules, channels });
        }
        self.cache
            .get(&tenant)
            .ok_or(NotifyError::Store(pingtower_store::StoreError::NotFound))
    }

    /// Records and publishes the notifications of one change of state; returns how many were
    /// new (a redelivered change gives none).
    pub async fn route(&mut self, change: &StateChange) -> Result<usize, NotifyError> {
        let Some(event) = event_of(change) else {
            return Ok(0);
        };
        let Some(monitor) = self
            .store
            .monitors_by_ids(&[change.monitor_id])
            .await?
            .into_iter()
            .next()
        else {
            return Ok(0);
        };
        let down_for_ms = match (event, change.incident_id) {
            (Event::Up, Some(id)) => self
                .store
                .get_incident(change.tenant_id, id)
                .await
                .ok()
                .map(|i| change.at.as_millis() - i.opened_at.as_millis()),
            _ => None,
        };
        let store = self.store.clone();
        let bus = self.bus.clone();
        let config = self.config(change.tenant_id).await?;
        let targets: Vec<ResourceId> = channels_for(&config.rules, &monitor, event)
            .into_iter()
            .filter(|id| config.channels.contains_key(id))
            .collect();
        let mut sent = 0;
        for channel_id in targets {
            // Down and up are once per transition; degraded once per change.
            let key = match event {
                Event::Degraded => format!(
                    "{}:{}:degraded@{}:{channel_id}",
                    change.monitor_id,
                    change.transition,
                    change.at.as_millis()
                ),
                _ => format!(
                    "{}:{}:{}:{channel_id}",
                    change.monitor_id,
                    change.transition,
                    event.as_str()
                ),
            };
            let now = pingtower_engine::now();
            let delivery = Delivery {
                id: DeliveryId::new(),
                tenant_id: change.tenant_id,
                channel_id,
                incident_id: change.incident_id,
                idempotency_key: key.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
                response: None,
                latency_ms: None,
                created_at: now,
                updated_at: now,
            };
            if !store.record_delivery(&delivery).await? {
                continue;
            }
            let n = Notification {
                delivery_id: delivery.id,
                tenant_id: change.tenant_id,
                channel_id,
                event,
                monitor_id: monitor.id,
                monitor_name: monitor.name.clone(),
                status: change.to,
                reason: change.reason.clone(),
                at: change.at,
                incident_id: change.incident_id,
                down_for_ms,
                idempotency_key: key,
            };
            pingtower_bus::publish_json(bus.as_ref(), topics::NOTIFICATIONS_SEND, &n).await?;
            if let Some(incident) = change.incident_id {
                let _ = store
                    .add_incident_event(
                        change.tenant_id,
                        incident,
                        pingtower_core::IncidentEventKind::Notified,
                        Some("system"),
                        Some(&format!("{} notification queued", event.as_str())),
                        now,
                    )
                    .await;
            }
            sent += 1;
        }
        Ok(sent)
    }

    /// Consumes `monitor.state` and `config.changed` until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), NotifyError> {
        // Declared now, so that deliveries published before the deliverer starts wait for it.
        self.bus
            .declare(
                topics::NOTIFICATIONS_SEND,
                crate::delivery::DELIVERERS_GROUP,
                crate::delivery::subscribe_options(),
            )
            .await?;
        let mut states = self
            .bus
            .subscribe(
                topics::MONITOR_STATE,
                NOTIFICATORS_GROUP,
                SubscribeOptions::default(),
            )
            .await?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let mut changes = self
            .bus
            .subscribe(
                topics::CONFIG_CHANGED,
                &format!("notificator-changes-{instance}"),
                SubscribeOptions::default(),
            )
            .await?;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                d = states.next() => {
                    let Some(d) = d else { break };
                    let Ok(change) = d.message.json::<StateChange>() else {
                        d.nack(false);
                        continue;
                    };
                    match self.route(&change).await {
                        Ok(_) => d.ack(),
                        Err(e) => {
                            tracing::warn!(error = %e, "routing a state change failed; retrying");
                            self.cache.remove(&change.tenant_id);
                            d.nack(true);
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                    }
                }
                d = changes.next() => {
                    let Some(d) = d else { break };
                    // A monitor change needs nothing: the monitor is read afresh for every
                    // change of state.
                    if let Ok(c) = d.message.json::<pingtower_engine::scheduler::ResourceChanged>() {
                        self.cache.remove(&c.tenant_id);
                    }
                    d.ack();
                }
            }
        }
        Ok(())
    }
}
