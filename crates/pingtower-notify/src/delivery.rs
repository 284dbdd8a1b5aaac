//! Delivery: send each notification through its channel, reliably, without hammering an
//! endpoint that is down.
//!
//! Each notification is tried up to `max_attempts` times with exponential backoff and jitter;
//! every attempt is recorded in the delivery log (status, attempts, provider answer, latency).
//! A circuit breaker per channel opens after `breaker_threshold` failures in a row: while it is
//! open, that channel's notifications wait (their attempts are not spent), and after
//! `breaker_open` one attempt probes it; a success closes it. After its last attempt a
//! notification is marked dead and dead-lettered on the bus, where the API can list and replay it.
//!
//! Fairness between tenants: a request on the wire holds one of the shared send slots
//! ([`crate::slots`]: a cap per tenant and per channel, turns in round robin when slots are
//! short); a notification that backs off or waits for its channel's breaker holds none. One
//! process takes up to `max_pending` notifications off the bus at once, at most
//! `per_tenant_pending` of them for one tenant, and a tenant only while what it holds is less
//! than half the room left: a tenant past its share has its further notifications wait in
//! memory (unsettled, in order; delayed, never dropped, given up only past `max_wait` from
//! their event) while other tenants' are taken; a tenant with nothing waiting always finds room.

use crate::channels::{self, Channel, SendError};
use crate::outbound::Outbound;
use crate::slots::{SlotLimits, Slots};
use crate::{Notification, NotifyError};
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::{DeliveryStatus, ResourceId, ResourceKind, TenantId};
use pingtower_engine::secrets::Keys;
use pingtower_store::{DeliveryUpdate, Store};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The consumer group of delivery workers on `notifications.send`.
pub const DELIVERERS_GROUP: &str = "deliverers";

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub breaker_threshold: u32,
    pub breaker_open: Duration,
    /// Requests to providers on the wire at once (send slots, shared fairly).
    pub concurrency: u16,
    /// Per request to a provider: no send lasts longer.
    pub timeout: Duration,
    /// Notifications worked on at once (sending, backing off, waiting for a breaker or a slot).
    pub max_pending: u16,
    /// Of those, at most this many of one tenant.
    pub per_tenant_pending: usize,
    /// A notification not sent within this time of its event is given up (dead-lettered).
    /// Below RabbitMQ's consumer timeout (30 minutes by default), which also bounds how long
    /// one may wait unsettled in this process.
    pub max_wait: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            breaker_threshold: 5,
            breaker_open: Duration::from_secs(30),
            concurrency: 32,
            timeout: Duration::from_secs(10),
            max_pending: 4096,
            per_tenant_pending: 512,
            max_wait: Duration::from_secs(15 * 60),
        }
    }
}

/// How the group is declared (the notificator declares it before any delivery worker runs).
pub fn subscribe_options() -> SubscribeOptions {
    SubscribeOptions {
        // The bus hands over everything it has (up to its limit); which notifications are
        // worked on is decided by the deliverer, per tenant.
        prefetch: u16::MAX,
        // Retries happen inside one delivery; a redelivery only follows a stopped worker.
        max_deliveries: 3,
        ephemeral: false,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    /// An attempt is probing the half-open breaker.
    probing: bool,
}

/// The circuit breakers of every channel, shared by the delivery tasks.
#[derive(Debug, Default)]
pub struct Breakers {
    state: Mutex<HashMap<ResourceId, Breaker>>,
    /// Times a breaker opened and closed (for metrics and tests).
    pub opened: std::sync::atomic::AtomicU64,
    pub closed: std::sync::atomic::AtomicU64,
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ResourceId, Breaker>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `None` when an attempt may go now; otherwise how long to wait.
    fn wait(&self, channel: ResourceId) -> Option<Duration> {
        let mut all = self.lock();
        let b = all.entry(channel).or_default();
        match b.open_until {
            None => None,
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    Some(until - now)
                } else if b.probing {
                    Some(Duration::from_millis(100))
                } else {
                    b.probing = true;
                    None
                }
            }
        }
    }

    fn success(&self, channel: ResourceId) {
        let mut all = self.lock();
        let b = all.entry(channel).or_default();
        if b.open_until.is_some() {
            self.closed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(channel = %channel, "circuit breaker closed: the channel answers again");
        }
        *b = Breaker::default();
    }

    fn failure(&self, channel: ResourceId, threshold: u32, open_for: Duration) {
        let mut all = self.lock();
        let b = all.entry(channel).or_default();
        b.failures = b.failures.saturating_add(1);
        let was_open = b.open_until.is_some();
        if b.failures >= threshold {
            b.open_until = Some(Instant::now() + open_for);
            b.probing = false;
            if !was_open {
                self.opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(channel = %channel, "circuit breaker opened: the channel keeps failing");
            }
        }
    }

    /// Whether a channel's breaker is open now.
    pub fn is_open(&self, channel: ResourceId) -> bool {
        self.lock()
            .get(&channel)
            .is_some_and(|b| b.open_until.is_some())
    }
}

/// The backoff before attempt `attempt + 1`: base × 2^(attempt-1), capped, ±20 % jitter.
pub fn backoff(config: &DeliveryConfig, attempt: u32) -> Duration {
    use rand::Rng;
    let exp = config
        .base_backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(config.max_backoff);
    let jitter = rand::rng().random_range(0.8..1.2);
    capped.mul_f64(jitter)
}

pub struct Deliverer {
    /// Keys being delivered now: a second copy of one waits for nothing and is dropped.
    in_flight: Mutex<std::collections::HashSet<String>>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    keys: Keys,
    http: Outbound,
    config: DeliveryConfig,
    breakers: Arc<Breakers>,
    slots: Arc<Slots>,
    /// Notifications taken off the bus and not finished, per tenant.
    pending: Mutex<HashMap<TenantId, usize>>,
}

enum Outcome {
    Sent,
    /// Another copy of a notification sent, given up, or being sent.
    Duplicate,
    Dead,
    /// Stopped before it finished: hand the notification back.
    Interrupted,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        keys: Keys,
        config: DeliveryConfig,
        breakers: Arc<Breakers>,
    ) -> Result<Self, NotifyError> {
        let http = Outbound::new(pingtower_core::net::Blocklist::default())?;
        let slots = Slots::new(SlotLimits::fair(usize::from(config.concurrency)));
        Ok(Self {
            in_flight: Mutex::default(),
            store,
            bus,
            keys,
            http,
            config,
            breakers,
            slots,
            pending: Mutex::default(),
        })
    }

    /// Sends through `outbound` (the operator's blocklist) instead of an unrestricted client.
    pub fn with_outbound(mut self, outbound: Outbound) -> Self {
        self.http = outbound;
        self
    }

    /// Counts a notification taken off the bus; `false` when its tenant has too many already.
    fn take_pending(&self, tenant: TenantId) -> bool {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A tenant may take a notification only while what it already holds is less than half
        // of the room left in the window: however many tenants fill it, some room always
        // remains for one that has nothing waiting.
        let window = usize::from(self.config.max_pending.max(1));
        let total: usize = pending.values().sum();
        let room = window.saturating_sub(total);
        let n = pending.get(&tenant).copied().unwrap_or(0);
        if n >= self.config.per_tenant_pending.max(1) || n.saturating_mul(2) >= room {
            return false;
        }
        let n = pending.entry(tenant).or_default();
        *n += 1;
        true
    }

    fn end_pending(&self, tenant: TenantId) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = pending.get_mut(&tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&tenant);
            }
        }
    }

    async fn record(&self, n: &Notification, update: DeliveryUpdate) {
        if let Err(e) = self
            .store
            .update_delivery(n.tenant_id, n.delivery_id, &update, pingtower_engine::now())
            .await
        {
            tracing::warn!(error = %e, delivery = %n.delivery_id, "recording a delivery attempt failed");
        }
    }

    /// Sends one notification once: a copy of one being sent, or already sent or given up, is
    /// dropped.
    async fn deliver_once(&self, n: &Notification, stop: &CancellationToken) -> Outcome {
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(n.idempotency_key.clone());
        if !fresh {
            return Outcome::Duplicate;
        }
        let done = match self
            .store
            .find_delivery_by_key(n.tenant_id, &n.idempotency_key)
            .await
        {
            Ok(Some(d)) => matches!(d.status, DeliveryStatus::Sent | DeliveryStatus::Dead),
            // A test message, or the store did not answer: send.
            _ => false,
        };
        let outcome = if done {
            Outcome::Duplicate
        } else {
            self.deliver(n, stop).await
        };
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&n.idempotency_key);
        outcome
    }

    /// Sends one notification with retries; answers how it ended.
    async fn deliver(&self, n: &Notification, stop: &CancellationToken) -> Outcome {
        let channel = match self
            .store
            .get_resource(n.tenant_id, ResourceKind::Channel, n.channel_id)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let reason = match e {
                    pingtower_store::StoreError::NotFound => "the channel was deleted".to_owned(),
                    other => other.to_string(),
                };
                self.record(
                    n,
                    DeliveryUpdate {
                        status: DeliveryStatus::Failed,
                        attempts: 0,
                        last_error: Some(reason),
                        response: None,
                        latency_ms: None,
                    },
                )
                .await;
                return Outcome::Dead;
            }
        };
        let secrets: Map<String, Value> = match channel.secret.as_deref() {
            None => Map::new(),
            Some(sealed) => match self.keys.open(n.tenant_id, sealed) {
                Ok(plain) => serde_json::from_slice(&plain).unwrap_or_default(),
                Err(e) => {
                    self.record(
                        n,
                        DeliveryUpdate {
                            status: DeliveryStatus::Dead,
                            attempts: 0,
                            last_error: Some(e.to_string()),
                            response: None,
                            latency_ms: None,
                        },
                    )
                    .await;
                    return Outcome::Dead;
                }
            },
        };
        let (kind, spec) = channels::spec_of(&channel);
        let ch = Channel {
            kind: &kind,
            spec: &spec,
            secrets: &secrets,
        };
        let mut attempts = 0u32;
        // From the event: a notification that went round the queue (over its tenant's share)
        // does not start its wait again.
        let age_ms = pingtower_engine::now().as_millis() - n.at.as_millis();
        let age = Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        let deadline = Instant::now() + self.config.max_wait.saturating_sub(age);
        loop {
            // Wait while the channel's breaker is open: attempts are not spent on it, and no
            // send slot is held.
            while let Some(wait) = self.breakers.wait(n.channel_id) {
                if Instant::now() + wait > deadline {
                    return self
                        .give_up(n, attempts, "the channel's circuit breaker stayed open")
                        .await;
                }
                tokio::select! {
                    () = stop.cancelled() => return Outcome::Interrupted,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            attempts += 1;
            let slot = tokio::select! {
                () = stop.cancelled() => return Outcome::Interrupted,
                () = tokio::time::sleep_until(deadline.into()) => {
                    return self.give_up(n, attempts, "no send slot came free").await;
                }
                slot = self.slots.acquire(n.tenant_id, n.channel_id) => slot,
            };
            let started = Instant::now();
            let result = channels::send(&self.http, &ch, n, self.config.timeout).await;
            drop(slot);
            let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let attempts_i32 = i32::try_from(attempts).unwrap_or(i32::MAX);
            match result {
                Ok(answer) => {
                    self.breakers.success(n.channel_id);
                    self.record(
                        n,
                        DeliveryUpdate {
                            status: DeliveryStatus::Sent,
                            attempts: attempts_i32,
                            last_error: None,
                            response: Some(format!("HTTP {}: {}", answer.status, answer.body)),
                            latency_ms: Some(latency_ms),
                        },
                    )
                    .await;
                    if let Some(incident) = n.incident_id {
                        let message = format!(
                            "{} notification sent through {kind} channel {}",
                            n.event.as_str(),
                            channel.name
                        );
                        let _ = self
                            .store
                            .add_incident_event(
                                n.tenant_id,
                                incident,
                                pingtower_core::IncidentEventKind::Notified,
                                Some("system"),
                                Some(&message),
                                pingtower_engine::now(),
                            )
                            .await;
                    }
                    return Outcome::Sent;
                }
                Err(e) => {
                    let permanent = matches!(e, SendError::Permanent(_));
                    if !permanent {
                        self.breakers.failure(
                            n.channel_id,
                            self.config.breaker_threshold,
                            self.config.breaker_open,
                        );
                    } else {
                        // The endpoint answered: it is up, the request is wrong.
                        self.breakers.success(n.channel_id);
                    }
                    let wait = backoff(&self.config, attempts);
                    let last = permanent
                        || attempts >= self.config.max_attempts
                        || Instant::now() + wait > deadline;
                    self.record(
                        n,
                        DeliveryUpdate {
                            status: if last {
                                DeliveryStatus::Dead
                            } else {
                                DeliveryStatus::Failed
                            },
                            attempts: attempts_i32,
                            last_error: Some(e.to_string()),
                            response: None,
                            latency_ms: Some(latency_ms),
                        },
                    )
                    .await;
                    if last {
                        tracing::warn!(delivery = %n.delivery_id, channel = %n.channel_id, attempts, "delivery failed for good; dead-lettered");
                        return Outcome::Dead;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return Outcome::Interrupted,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Marks a notification dead without another attempt.
    async fn give_up(&self, n: &Notification, attempts: u32, why: &str) -> Outcome {
        let minutes = self.config.max_wait.as_secs() / 60;
        self.record(
            n,
            DeliveryUpdate {
                status: DeliveryStatus::Dead,
                attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
                last_error: Some(format!(
                    "{why}; given up after {minutes} min (replay it from the dead letters)"
                )),
                response: None,
                latency_ms: None,
            },
        )
        .await;
        tracing::warn!(delivery = %n.delivery_id, channel = %n.channel_id, "{why}; notification dead-lettered");
        Outcome::Dead
    }

    /// Starts sending one notification (its tenant counted as pending).
    fn spawn_delivery(
        self: &Arc<Self>,
        tasks: &mut tokio::task::JoinSet<TenantId>,
        stop: &CancellationToken,
        d: pingtower_bus::Delivery,
        n: Notification,
    ) {
        let (this, stop) = (self.clone(), stop.clone());
        tasks.spawn(async move {
            let outcome = this.deliver_once(&n, &stop).await;
            this.end_pending(n.tenant_id);
            match outcome {
                Outcome::Sent | Outcome::Duplicate => d.ack(),
                Outcome::Dead => d.nack(false),
                Outcome::Interrupted => drop(d),
            }
            n.tenant_id
        });
    }

    /// Consumes `notifications.send` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NotifyError> {
        let mut sub = self
            .bus
            .subscribe(
                topics::NOTIFICATIONS_SEND,
                DELIVERERS_GROUP,
                subscribe_options(),
            )
            .await?;
        let this = Arc::new(self);
        let mut tasks: tokio::task::JoinSet<TenantId> = tokio::task::JoinSet::new();
        // Interrupts in-flight deliveries once the subscription has stopped, so that what they
        // hand back goes to another deliverer, not to this one again.
        let interrupt = CancellationToken::new();
        // Notifications of tenants that hold their share of the window, oldest first: they
        // wait (unsettled, in memory) without keeping other tenants' from being taken.
        let mut waiting: HashMap<
            TenantId,
            std::collections::VecDeque<(pingtower_bus::Delivery, Notification)>,
        > = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    // Room came free: the tenant that freed it first, then the others.
                    let mut order: Vec<TenantId> = waiting.keys().copied().collect();
                    if let Ok(t) = done {
                        order.sort_by_key(|x| *x != t);
                    }
                    for t in order {
                        let Some(queue) = waiting.get_mut(&t) else { continue };
                        while !queue.is_empty() && this.take_pending(t) {
                            if let Some((d, n)) = queue.pop_front() {
                                this.spawn_delivery(&mut tasks, &interrupt, d, n);
                            }
                        }
                        if queue.is_empty() {
                            waiting.remove(&t);
                        }
                    }
                }
                d = sub.next() => {
                    let Some(d) = d else { break };
                    let Ok(n) = d.message.json::<Notification>() else {
                        d.nack(false);
                        continue;
                    };
                    let queued = waiting.get(&n.tenant_id).is_some_and(|q| !q.is_empty());
                    if queued || !this.take_pending(n.tenant_id) {
                        waiting.entry(n.tenant_id).or_default().push_back((d, n));
                        continue;
                    }
                    this.spawn_delivery(&mut tasks, &interrupt, d, n);
                }
            }
        }
        sub.stop().await;
        // What waited is handed back once the consumer is gone (so it goes to another
        // deliverer, not to this one again).
        drop(waiting);
        interrupt.cancel();
        // In-flight deliveries see the stop and hand their notifications back.
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}
