//! Rules: which changes of state go to which channels, and when.
//!
//! A rule selects monitors (`"all"`, a list of ids, or `{"tags": [...]}`), events (`down`, `up`,
//! `degraded`) and channels. A DOWN transition is `down`; UP after DOWN is `up` (unless the rule
//! sets `notify_on_resolve: false`, and only to channels that heard the `down`); DEGRADED (not
//! after DOWN) is `degraded`. Timing, checked on each change and by a periodic [`Notificator::scan`]
//! of open incidents:
//! - `after_failures: N`: `down` only once the monitor's newest N results all failed;
//! - `flap: {failures: X, within_minutes: Y}`: `down` only once X results failed within Y minutes
//!   (with `after_failures` too, either one suffices);
//! - `renotify_minutes: Z`: `down` again every Z minutes while the incident is open and not
//!   acknowledged;
//! - `escalate: {after_minutes: W, channels}`: to those channels once, if the incident is still
//!   open and not acknowledged W minutes after it opened.
//!
//! Every notification is one delivery keyed by (monitor, transition, what, channel): the delivery
//! log refuses a second with the same key, so a state change delivered twice, or a scan that
//! runs again, notifies once.

use crate::{Event, Notification, NotifyError};
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::{
    CheckStatus, Delivery, DeliveryId, DeliveryStatus, Incident, IncidentId, IncidentStatus,
    Monitor, MonitorStatus, Resource, ResourceId, ResourceKind, TenantId, Timestamp,
};
use pingtower_engine::evaluator::StateChange;
use pingtower_store::{IncidentFilter, PageRequest, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The consumer group of notificators on `monitor.state`.
pub const NOTIFICATORS_GROUP: &str = "notificators";

/// A tenant's rules and channels, as cached.
struct TenantConfig {
    rules: Vec<Rule>,
    channels: HashMap<ResourceId, Resource>,
}

/// A rule, read from its stored spec.
#[derive(Debug, Clone)]
struct Rule {
    monitors: Value,
    events: Vec<String>,
    channels: Vec<ResourceId>,
    notify_on_resolve: bool,
    after_failures: u32,
    /// (failures, within milliseconds)
    flap: Option<(u32, i64)>,
    renotify_ms: Option<i64>,
    /// (after milliseconds, channels)
    escalate: Option<(i64, Vec<ResourceId>)>,
    /// `cert_expiring` is sent from this many days before expiry (default 14).
    cert_days: i64,
}

fn ids(v: &Value) -> Vec<ResourceId> {
    let mut out = Vec::new();
    for id in v.as_array().into_iter().flatten() {
        if let Some(id) = id.as_str().and_then(|s| s.parse::<ResourceId>().ok())
            && !out.contains(&id)
        {
            out.push(id);
        }
    }
    out
}

impl Rule {
    fn from_spec(spec: &Value) -> Self {
        let minutes = |v: &Value| v.as_i64().filter(|m| *m > 0).map(|m| m * 60_000);
        Self {
            monitors: spec["monitors"].clone(),
            events: spec["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect(),
            channels: ids(&spec["channels"]),
            notify_on_resolve: spec["notify_on_resolve"] != Value::Bool(false),
            after_failures: spec["after_failures"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1),
            flap: match (
                spec["flap"]["failures"].as_u64(),
                minutes(&spec["flap"]["within_minutes"]),
            ) {
                (Some(x), Some(y)) => Some((u32::try_from(x).unwrap_or(u32::MAX), y)),
                _ => None,
            },
            renotify_ms: minutes(&spec["renotify_minutes"]),
            escalate: minutes(&spec["escalate"]["after_minutes"])
                .map(|w| (w, ids(&spec["escalate"]["channels"]))),
            cert_days: spec["cert_expiring_days"].as_i64().unwrap_or(14),
        }
    }

    fn wants(&self, event: Event) -> bool {
        (event != Event::Up || self.notify_on_resolve)
            && self.events.iter().any(|e| e == event.as_str())
    }

    fn conditional(&self) -> bool {
        self.after_failures > 1 || self.flap.is_some()
    }

    fn timed(&self) -> bool {
        self.conditional() || self.renotify_ms.is_some() || self.escalate.is_some()
    }
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

/// What a notification is about, before its channel and key.
struct Subject<'a> {
    tenant: TenantId,
    monitor: &'a Monitor,
    transition: i64,
    event: Event,
    status: MonitorStatus,
    reason: Option<String>,
    at: Timestamp,
    incident: Option<IncidentId>,
    down_for_ms: Option<i64>,
}

fn down_key(s: &Subject<'_>, channel: ResourceId) -> String {
    format!("{}:{}:down:{channel}", s.monitor.id, s.transition)
}

pub struct Notificator {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    cache: HashMap<TenantId, TenantConfig>,
    scan_every: Duration,
    /// The server's address as people reach it, for links in messages.
    public_url: Option<String>,
}

impl Notificator {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            store,
            bus,
            cache: HashMap::new(),
            scan_every: Duration::from_secs(15),
            public_url: None,
        }
    }

    /// Messages link to the monitor under this address (`PINGTOWER_PUBLIC_URL`).
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// How often open incidents are scanned for re-notification, escalation and delayed `down`.
    pub fn with_scan_every(mut self, every: Duration) -> Self {
        self.scan_every = every;
        self
    }

    async fn config(&mut self, tenant: TenantId) -> Result<&TenantConfig, NotifyError> {
        if !self.cache.contains_key(&tenant) {
            let rules = self
                .store
                .list_resources(tenant, ResourceKind::Rule)
                .await?
                .iter()
                .map(|r| Rule::from_spec(&r.spec))
                .collect();
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

    /// Whether a rule's `after_failures` / `flap` conditions hold for the monitor at `now`.
    async fn down_condition(
        &self,
        rule: &Rule,
        m: &Monitor,
        now: Timestamp,
    ) -> Result<bool, NotifyError> {
        if !rule.conditional() {
            return Ok(true);
        }
        let results = self
            .store
            .list_results(m.tenant_id, m.id, &PageRequest::first(1000))
            .await?
            .items;
        let consecutive = results
            .iter()
            .take_while(|r| r.status == CheckStatus::Down)
            .count();
        let by_count = rule.after_failures > 1 && consecutive >= rule.after_failures as usize;
        let by_flap = rule.flap.is_some_and(|(x, within)| {
            results
                .iter()
                .filter(|r| {
                    r.status == CheckStatus::Down
                        && r.checked_at.as_millis() >= now.as_millis() - within
                })
                .count()
                >= x as usize
        });
        Ok(by_count || by_flap)
    }

    /// Records and publishes one notification; `false` when its key was sent before.
    async fn emit(
        &self,
        s: &Subject<'_>,
        channel_id: ResourceId,
        key: String,
    ) -> Result<bool, NotifyError> {
        let now = pingtower_engine::now();
        let delivery = Delivery {
            id: DeliveryId::new(),
            tenant_id: s.tenant,
            channel_id,
            incident_id: s.incident,
            idempotency_key: key.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            response: None,
            latency_ms: None,
            created_at: now,
            updated_at: now,
        };
        let (delivery_id, new) = if self.store.record_delivery(&delivery).await? {
            (delivery.id, true)
        } else {
            // Recorded before. Never attempted: the process may have stopped between
            // recording and publishing it, so publish it again (the deliverer skips what was
            // sent meanwhile). Attempted: it is on its way, or done.
            match self.store.find_delivery_by_key(s.tenant, &key).await? {
                Some(d) if d.status == DeliveryStatus::Pending && d.attempts == 0 => (d.id, false),
                _ => return Ok(false),
            }
        };
        let n = Notification {
            delivery_id,
            tenant_id: s.tenant,
            channel_id,
            event: s.event,
            monitor_id: s.monitor.id,
            monitor_name: s.monitor.name.clone(),
            status: s.status,
            reason: s.reason.clone(),
            at: s.at,
            incident_id: s.incident,
            down_for_ms: s.down_for_ms,
            idempotency_key: key,
            link: self
                .public_url
                .as_ref()
                .map(|u| format!("{u}/monitors/{}", s.monitor.id)),
        };
        pingtower_bus::publish_json(self.bus.as_ref(), topics::NOTIFICATIONS_SEND, &n).await?;
        if !new {
            return Ok(false);
        }
        if let Some(incident) = s.incident {
            let _ = self
                .store
                .add_incident_event(
                    s.tenant,
                    incident,
                    pingtower_core::IncidentEventKind::Notified,
                    Some("system"),
                    Some(&format!("{} notification queued", s.event.as_str())),
                    now,
                )
                .await;
        }
        Ok(true)
    }

    /// Records and publishes the notifications of one change of state; returns how many were
    /// new (a redelivered change gives none).
    pub async fn route(&mut self, change: &StateChange) -> Result<usize, NotifyError> {
        let Some(event) = event_of(change) else {
            return Ok(0);
        };
        // The monitor it depends on is down: that one's incident is the one people hear of.
        if event == Event::Down && change.suppressed_by.is_some() {
            return Ok(0);
        }
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
        let config = self.config(change.tenant_id).await?;
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .filter(|r| pingtower_core::resource::selects(&r.monitors, monitor.id, &monitor.tags))
            .filter(|r| r.wants(event))
            .cloned()
            .collect();
        let known: Vec<ResourceId> = config.channels.keys().copied().collect();
        let subject = Subject {
            tenant: change.tenant_id,
            monitor: &monitor,
            transition: change.transition,
            event,
            status: change.to,
            reason: change.reason.clone(),
            at: change.at,
            incident: change.incident_id,
            down_for_ms,
        };
        let mut sent = 0;
        let mut done: Vec<ResourceId> = Vec::new();
        for rule in rules {
            if event == Event::Down && !self.down_condition(&rule, &monitor, change.at).await? {
                continue;
            }
            for ch in rule.channels.iter().filter(|c| known.contains(c)) {
                if done.contains(ch) {
                    continue;
                }
                done.push(*ch);
                let key = match event {
                    Event::Down => down_key(&subject, *ch),
                    // Only channels that heard the DOWN hear the UP.
                    Event::Up => {
                        let down = down_key(&subject, *ch);
                        if self
                            .store
                            .find_delivery_by_key(subject.tenant, &down)
                            .await?
                            .is_none()
                        {
                            continue;
                        }
                        format!("{}:{}:up:{ch}", monitor.id, change.transition)
                    }
                    _ => format!(
                        "{}:{}:{}@{}:{ch}",
                        monitor.id,
                        change.transition,
                        event.as_str(),
                        change.at.as_millis()
                    ),
                };
                if self.emit(&subject, *ch, key).await? {
                    sent += 1;
                }
            }
        }
        Ok(sent)
    }

    /// Records and publishes the warnings of a certificate that crossed an expiry threshold:
    /// once per (certificate, threshold, channel).
    pub async fn route_cert(
        &mut self,
        cert: &pingtower_engine::evaluator::CertExpiring,
    ) -> Result<usize, NotifyError> {
        let Some(monitor) = self
            .store
            .monitors_by_ids(&[cert.monitor_id])
            .await?
            .into_iter()
            .next()
        else {
            return Ok(0);
        };
        let config = self.config(cert.tenant_id).await?;
        let known: Vec<ResourceId> = config.channels.keys().copied().collect();
        let mut channels: Vec<ResourceId> = Vec::new();
        for rule in &config.rules {
            if rule.wants(Event::CertExpiring)
                && cert.threshold_days <= rule.cert_days
                && pingtower_core::resource::selects(&rule.monitors, monitor.id, &monitor.tags)
            {
                for ch in &rule.channels {
                    if known.contains(ch) && !channels.contains(ch) {
                        channels.push(*ch);
                    }
                }
            }
        }
        let when = if cert.days_left < 0 {
            format!("expired at {}", cert.expires_at)
        } else {
            format!(
                "expires at {} (in {} days)",
                cert.expires_at, cert.days_left
            )
        };
        let subject = Subject {
            tenant: cert.tenant_id,
            monitor: &monitor,
            transition: 0,
            event: Event::CertExpiring,
            status: monitor.status,
            reason: Some(when),
            at: cert.at,
            incident: None,
            down_for_ms: None,
        };
        let mut sent = 0;
        for ch in channels {
            let key = format!(
                "{}:cert:{}:{}:{ch}",
                monitor.id,
                cert.expires_at.as_millis(),
                cert.threshold_days
            );
            if self.emit(&subject, ch, key).await? {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Looks at every open incident whose monitor a timed rule selects: sends a delayed `down`
    /// whose condition now holds, re-notifies, and escalates. Returns notifications sent.
    pub async fn scan(&mut self, now: Timestamp) -> Result<usize, NotifyError> {
        let mut sent = 0;
        for tenant in self.store.list_tenants().await? {
            let config = self.config(tenant.id).await?;
            let rules: Vec<Rule> = config.rules.iter().filter(|r| r.timed()).cloned().collect();
            if rules.is_empty() {
                continue;
            }
            let known: Vec<ResourceId> = config.channels.keys().copied().collect();
            let mut incidents: Vec<Incident> = Vec::new();
            for status in [IncidentStatus::Open, IncidentStatus::Acknowledged] {
                let filter = IncidentFilter {
                    monitor_id: None,
                    status: Some(status),
                };
                incidents.extend(
                    self.store
                        .list_incidents(tenant.id, &filter, &PageRequest::first(1000))
                        .await?
                        .items,
                );
            }
            for inc in incidents {
                let Some(monitor) = self
                    .store
                    .monitors_by_ids(&[inc.monitor_id])
                    .await?
                    .into_iter()
                    .next()
                else {
                    continue;
                };
                if let Some(parent) = pingtower_core::check::depends_on(&monitor.settings)
                    && self
                        .store
                        .get_monitor(tenant.id, parent)
                        .await
                        .is_ok_and(|p| p.status == MonitorStatus::Down)
                {
                    continue;
                }
                let open_for = now.as_millis() - inc.opened_at.as_millis();
                let subject = Subject {
                    tenant: tenant.id,
                    monitor: &monitor,
                    transition: inc.transition,
                    event: Event::Down,
                    status: MonitorStatus::Down,
                    reason: inc.reason.clone(),
                    at: inc.opened_at,
                    incident: Some(inc.id),
                    down_for_ms: None,
                };
                for rule in &rules {
                    if !rule.wants(Event::Down)
                        || !pingtower_core::resource::selects(
                            &rule.monitors,
                            monitor.id,
                            &monitor.tags,
                        )
                    {
                        continue;
                    }
                    let channels: Vec<ResourceId> = rule
                        .channels
                        .iter()
                        .copied()
                        .filter(|c| known.contains(c))
                        .collect();
                    if rule.conditional() && self.down_condition(rule, &monitor, now).await? {
                        for ch in &channels {
                            if self.emit(&subject, *ch, down_key(&subject, *ch)).await? {
                                sent += 1;
                            }
                        }
                    }
                    if inc.status != IncidentStatus::Open {
                        continue;
                    }
                    if let Some(every) = rule.renotify_ms {
                        let round = open_for / every;
                        for ch in &channels {
                            let heard = self
                                .store
                                .find_delivery_by_key(tenant.id, &down_key(&subject, *ch))
                                .await?
                                .is_some();
                            if round >= 1 && heard {
                                let key = format!(
                                    "{}:{}:renotify{round}:{ch}",
                                    monitor.id, inc.transition
                                );
                                if self.emit(&subject, *ch, key).await? {
                                    sent += 1;
                                }
                            }
                        }
                    }
                    if let Some((after, to)) = &rule.escalate
                        && open_for >= *after
                    {
                        for ch in to.iter().filter(|c| known.contains(c)) {
                            let key = format!("{}:{}:escalate:{ch}", monitor.id, inc.transition);
                            if self.emit(&subject, *ch, key).await? {
                                sent += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(sent)
    }

    /// Consumes `monitor.state` and `config.changed`, and scans open incidents, until `shutdown`.
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
        let mut changes = pingtower_engine::scheduler::subscribe_changes(
            self.bus.as_ref(),
            "notificator-changes",
        )
        .await
        .map_err(|e| match e {
            pingtower_engine::EngineError::Bus(b) => NotifyError::Bus(b),
            other => NotifyError::Http(other.to_string()),
        })?;
        let mut certs = self
            .bus
            .subscribe(
                topics::MONITOR_CERT,
                NOTIFICATORS_GROUP,
                SubscribeOptions::default(),
            )
            .await?;
        let mut scan = tokio::time::interval(self.scan_every);
        scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = scan.tick() => {
                    if let Err(e) = self.scan(pingtower_engine::now()).await {
                        tracing::warn!(error = %e, "scanning open incidents failed");
                    }
                }
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
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                d = certs.next() => {
                    let Some(d) = d else { break };
                    let Ok(cert) = d.message.json::<pingtower_engine::evaluator::CertExpiring>() else {
                        d.nack(false);
                        continue;
                    };
                    match self.route_cert(&cert).await {
                        Ok(_) => d.ack(),
                        Err(e) => {
                            tracing::warn!(error = %e, "routing a certificate warning failed; retrying");
                            d.nack(true);
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
