//! The worker role: takes batches of due checks from `checks.due`, runs them with bounded
//! concurrency, and hands the results to the writer. A batch is acknowledged only when every
//! one of its results is committed; a worker that stops mid-batch hands the batch back.

use crate::scheduler::{DueCheck, DueChecks};
use crate::{EngineError, Metrics, WriterHandle};
use futures::FutureExt;
use pingtower_bus::{Bus, Delivery, SubscribeOptions, topics};
use pingtower_checks::{Checker, Outcome};
use pingtower_core::check::CheckSpec;
use pingtower_core::{CheckResult, Monitor, MonitorId, MonitorKind};
use pingtower_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The consumer group of every worker.
pub const WORKERS_GROUP: &str = "workers";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Checks running at once in this process.
    pub concurrency: usize,
    pub region: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 512,
            region: "default".into(),
        }
    }
}

/// A monitor as a worker keeps it: parsed once per version.
#[derive(Clone)]
pub struct Prepared {
    pub monitor: Arc<Monitor>,
    /// The check, or why the stored settings do not make one.
    pub spec: Arc<Result<CheckSpec, String>>,
}

impl Prepared {
    /// Parses a monitor's check, opening its sealed credentials with `keys`.
    pub fn new(monitor: Monitor, keys: Option<&crate::secrets::Keys>) -> Self {
        let settings = match keys {
            Some(keys) => keys
                .open_settings(monitor.tenant_id, &monitor.settings)
                .map_err(|e| e.to_string()),
            None if monitor.settings.contains_key(crate::secrets::SEALED_FIELD) => Err(
                "the monitor's credentials are sealed and this worker has no secret key".to_owned(),
            ),
            None => Ok(monitor.settings.clone()),
        };
        let spec = settings.and_then(|settings| {
            CheckSpec::parse(monitor.kind, &settings, monitor.timeout_ms).map_err(|errors| {
                let fields: Vec<_> = errors.iter().map(|(f, m)| format!("{f} {m}")).collect();
                format!("invalid monitor settings: {}", fields.join("; "))
            })
        });
        Self {
            monitor: Arc::new(monitor),
            spec: Arc::new(spec),
        }
    }
}

/// Runs one check to a result. Never fails: a monitor whose stored settings no longer parse
/// gives a DOWN result that says so. Event monitors count in `events`.
pub async fn run_check(
    checker: &Checker,
    prepared: &Prepared,
    region: &str,
    events: Option<&dyn pingtower_analytics::EventStore>,
) -> CheckResult {
    let started = crate::now();
    let outcome = match prepared.spec.as_ref() {
        Ok(CheckSpec {
            kind: pingtower_core::check::CheckKindSpec::Event(rule),
            timeout_ms,
            ..
        }) => {
            let timeout =
                std::time::Duration::from_millis(u64::try_from((*timeout_ms).max(1)).unwrap_or(1));
            crate::event_check::run(events, prepared.monitor.tenant_id, rule, started, timeout)
                .await
        }
        Ok(spec) => checker.run(spec).await,
        Err(reason) => Outcome {
            status: pingtower_core::CheckStatus::Down,
            latency_us: 0,
            reason: Some(reason.clone()),
            details: serde_json::json!({}),
        },
    };
    let m = &prepared.monitor;
    CheckResult {
        monitor_id: m.id,
        monitor_seq: m.seq,
        tenant_id: m.tenant_id,
        region: region.to_owned(),
        checked_at: started,
        status: outcome.status,
        latency_us: outcome.latency_us,
        reason: outcome.reason,
        details: Some(outcome.details),
    }
}

/// Called with each check's schedule lag in milliseconds as it starts (benchmarks).
pub type LagObserver = Arc<dyn Fn(i64) + Send + Sync>;

struct Cached {
    prepared: Prepared,
    last_used: i64,
}

/// Monitors by id, refreshed when a due check names a newer version.
#[derive(Default)]
struct MonitorCache {
    entries: HashMap<MonitorId, Cached>,
    last_sweep: i64,
}

/// Entries unused this long are dropped (deleted or moved monitors).
const CACHE_IDLE_MS: i64 = 10 * 60_000;

pub struct Worker {
    store: Arc<dyn Store>,
    cache: Mutex<MonitorCache>,
    bus: Arc<dyn Bus>,
    writer: WriterHandle,
    checker: Checker,
    config: WorkerConfig,
    metrics: Metrics,
    lag_observer: Option<LagObserver>,
    /// Opens monitors' sealed credentials.
    keys: Option<crate::secrets::Keys>,
    /// Where event monitors count.
    events: Option<Arc<dyn pingtower_analytics::EventStore>>,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        writer: WriterHandle,
        checker: Checker,
        config: WorkerConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            cache: Mutex::new(MonitorCache::default()),
            bus,
            writer,
            checker,
            config,
            metrics,
            lag_observer: None,
            keys: None,
            events: None,
        }
    }

    /// Counts event monitors' events in `events` (without it they are DOWN, saying why).
    pub fn with_events(mut self, events: Arc<dyn pingtower_analytics::EventStore>) -> Self {
        self.events = Some(events);
        self
    }

    /// Opens monitors' sealed credentials with `keys` (the installation's).
    pub fn with_keys(mut self, keys: crate::secrets::Keys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Also reports each check's schedule lag to `observer`.
    pub fn with_lag_observer(mut self, observer: LagObserver) -> Self {
        self.lag_observer = Some(observer);
        self
    }

    /// Runs until shutdown; then finishes the batches in flight.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let options = SubscribeOptions {
            prefetch: 64,
            max_deliveries: 5,
            ephemeral: false,
        };
        let mut sub = self
            .bus
            .subscribe(topics::CHECKS_DUE, WORKERS_GROUP, options)
            .await?;
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let this = Arc::new(self);
        let mut batches = JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                delivery = sub.next() => {
                    let Some(delivery) = delivery else { break };
                    let (this, slots) = (this.clone(), slots.clone());
                    batches.spawn(async move { this.handle(delivery, slots).await });
                }
                Some(_) = batches.join_next(), if !batches.is_empty() => {}
            }
        }
        // No more batches for this worker (the broker gives them to others from now on).
        sub.stop().await;
        // Checks end within their timeouts, so this wait is bounded.
        while batches.join_next().await.is_some() {}
        tracing::debug!("worker stopped");
        Ok(())
    }

    /// The prepared monitors of a batch: from the cache, or fetched in one query when missing or
    /// older than the version the scheduler saw.
    async fn prepare(
        &self,
        checks: &[DueCheck],
    ) -> Result<HashMap<MonitorId, Prepared>, EngineError> {
        let now = crate::now().as_millis();
        let mut ready = HashMap::with_capacity(checks.len());
        let mut missing = Vec::new();
        {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for due in checks {
                match cache.entries.get_mut(&due.monitor_id) {
                    Some(c) if c.prepared.monitor.version >= due.version => {
                        c.last_used = now;
                        ready.insert(due.monitor_id, c.prepared.clone());
                    }
                    _ => missing.push(due.monitor_id),
                }
            }
        }
        if !missing.is_empty() {
            let fetched = self.store.monitors_by_ids(&missing).await?;
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for m in fetched {
                let p = Prepared::new(m, self.keys.as_ref());
                cache.entries.insert(
                    p.monitor.id,
                    Cached {
                        prepared: p.clone(),
                        last_used: now,
                    },
                );
                ready.insert(p.monitor.id, p);
            }
            if now - cache.last_sweep > CACHE_IDLE_MS {
                cache
                    .entries
                    .retain(|_, c| now - c.last_used < CACHE_IDLE_MS);
                cache.last_sweep = now;
            }
        }
        ready.retain(|_, p| p.monitor.enabled && p.monitor.kind != MonitorKind::Heartbeat);
        Ok(ready)
    }

    async fn handle(&self, delivery: Delivery, slots: Arc<Semaphore>) {
        let batch: DueChecks = match delivery.message.json() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "malformed checks.due message");
                delivery.nack(false);
                return;
            }
        };
        let prepared = match self.prepare(&batch.checks).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "looking up due monitors failed; handing the batch back");
                delivery.nack(true);
                return;
            }
        };
        let mut running = JoinSet::new();
        for due in batch.checks {
            // Deleted, paused or turned into a heartbeat since it was scheduled: nothing to run.
            let Some(p) = prepared.get(&due.monitor_id).cloned() else {
                continue;
            };
            // Later than a whole interval (workers fell behind, or a batch came back after a
            // crash): the next check is already due, so this one is skipped, not run in a burst.
            let lag = (crate::now().as_millis() - due.due_at.as_millis()).max(0);
            if lag > p.monitor.interval_ms {
                self.metrics.checks_skipped.inc();
                continue;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let checker = self.checker.clone();
            let region = self.config.region.clone();
            let metrics = self.metrics.clone();
            let observer = self.lag_observer.clone();
            let writer = self.writer.clone();
            let events = self.events.clone();
            running.spawn(async move {
                let lag = (crate::now().as_millis() - due.due_at.as_millis()).max(0);
                metrics.schedule_lag.observe(lag as f64 / 1000.0);
                if let Some(observe) = observer {
                    observe(lag);
                }
                // A panic in a check is a bug of ours; the monitor still gets a (DOWN) result.
                let result = match std::panic::AssertUnwindSafe(run_check(
                    &checker,
                    &p,
                    &region,
                    events.as_deref(),
                ))
                .catch_unwind()
                .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::error!(monitor = %p.monitor.id, "a check panicked");
                        CheckResult {
                            monitor_id: p.monitor.id,
                            monitor_seq: p.monitor.seq,
                            tenant_id: p.monitor.tenant_id,
                            region: region.clone(),
                            checked_at: crate::now(),
                            status: pingtower_core::CheckStatus::Down,
                            latency_us: 0,
                            reason: Some("internal error while checking (logged)".into()),
                            details: None,
                        }
                    }
                };
                drop(permit);
                metrics
                    .checks_run
                    .get_or_create(&crate::metrics::StatusLabels {
                        status: result.status.as_str().to_owned(),
                    })
                    .inc();
                // Each result goes to the writer as soon as it is known: a fast DOWN does not
                // wait for the slowest check of its batch.
                match writer.submit_check(vec![result]).await {
                    Ok(committed) => committed.await.unwrap_or(Err(EngineError::WriterStopped)),
                    Err(e) => Err(e),
                }
            });
        }
        let mut outcome = Ok(());
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => outcome = Err(e),
                Err(e) => tracing::error!(error = %e, "a check task failed"),
            }
        }
        match outcome {
            Ok(()) => delivery.ack(),
            Err(e) => {
                tracing::warn!(error = %e, "results not committed; handing the batch back");
                delivery.nack(true);
            }
        }
    }
}
