//! The state evaluator (part of the notifier role): folds committed check results into each
//! monitor's evaluated state, applying its confirmation counts, and alone opens and resolves
//! incidents.
//!
//! Invariants:
//! - One incident per DOWN transition, even when results arrive twice: each monitor has a
//!   transition counter, an incident is keyed by (monitor, counter), and the store refuses a
//!   second one with the same key.
//! - A result older than the last one folded for its monitor and region is skipped (a
//!   redelivered batch, or one that arrives late), so it cannot flip the state back.
//! - The state survives a restart: it is loaded from the monitor row and its latest incident (an
//!   unresolved incident means DOWN, whatever the row says, since the incident is written first).
//! - Every change of state is published on `monitor.state` after it is stored.

use crate::EngineError;
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::resource::MaintenanceWindow;
use pingtower_core::{
    CheckResult, CheckStatus, IncidentId, IncidentStatus, MonitorId, MonitorStatus, ResourceKind,
    TenantId, Timestamp,
};
use pingtower_store::{IncidentFilter, PageRequest, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The consumer group of evaluators on `check.results`.
pub const EVALUATORS_GROUP: &str = "evaluators";

/// The message on `monitor.state`: a monitor's evaluated state changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub tenant_id: TenantId,
    pub monitor_id: MonitorId,
    pub from: MonitorStatus,
    pub to: MonitorStatus,
    pub at: Timestamp,
    pub reason: Option<String>,
    /// The incident this change opened or resolved.
    pub incident_id: Option<IncidentId>,
    /// The monitor's DOWN transition counter (the incident's key).
    pub transition: i64,
    /// The monitor this one depends on, when that one is down: notifications are suppressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<MonitorId>,
}

/// The message on `monitor.cert`: a certificate's time left crossed one of [`CERT_THRESHOLDS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertExpiring {
    pub tenant_id: TenantId,
    pub monitor_id: MonitorId,
    /// When the certificate expires.
    pub expires_at: Timestamp,
    /// Whole days left when the check ran (negative once expired).
    pub days_left: i64,
    /// The threshold crossed: the certificate expires within this many days.
    pub threshold_days: i64,
    pub at: Timestamp,
}

/// Days before expiry at which a certificate is reported, each once per certificate.
pub const CERT_THRESHOLDS: &[i64] = &[30, 14, 7, 3, 1, 0];

/// The smallest threshold a certificate with `days_left` is within.
pub fn cert_threshold(days_left: i64) -> Option<i64> {
    CERT_THRESHOLDS
        .iter()
        .rev()
        .copied()
        .find(|t| days_left <= *t)
}

#[derive(Debug, Clone)]
struct State {
    tenant: TenantId,
    tags: Vec<String>,
    depends_on: Option<MonitorId>,
    status: MonitorStatus,
    enabled: bool,
    down_after: u32,
    up_after: u32,
    fails: u32,
    oks: u32,
    /// The newest result folded, per region.
    last_at: HashMap<String, i64>,
    transition: i64,
    open: Option<IncidentId>,
    /// The certificate seen last and the threshold reported for it.
    cert: Option<(Timestamp, i64)>,
}

pub struct Evaluator {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    states: HashMap<MonitorId, State>,
    /// Each tenant's maintenance windows, dropped when they change.
    windows: HashMap<TenantId, Vec<MaintenanceWindow>>,
}

impl Evaluator {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            store,
            bus,
            states: HashMap::new(),
            windows: HashMap::new(),
        }
    }

    /// Whether a maintenance window of the tenant covers the monitor at `at`.
    async fn in_maintenance(
        &mut self,
        tenant: TenantId,
        id: MonitorId,
        tags: &[String],
        at: Timestamp,
    ) -> Result<bool, EngineError> {
        if !self.windows.contains_key(&tenant) {
            let windows = self
                .store
                .list_resources(tenant, ResourceKind::Maintenance)
                .await?
                .iter()
                .filter_map(|r| MaintenanceWindow::from_spec(&r.spec))
                .collect();
            self.windows.insert(tenant, windows);
        }
        Ok(self
            .windows
            .get(&tenant)
            .is_some_and(|ws| ws.iter().any(|w| w.covers(id, tags, at))))
    }

    /// Loads the state of the monitors not known yet.
    async fn load(&mut self, ids: &[MonitorId]) -> Result<(), EngineError> {
        let missing: Vec<MonitorId> = ids
            .iter()
            .filter(|id| !self.states.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for m in self.store.monitors_by_ids(&missing).await? {
            let filter = IncidentFilter {
                monitor_id: Some(m.id),
                status: None,
            };
            let latest = self
                .store
                .list_incidents(m.tenant_id, &filter, &PageRequest::first(1))
                .await?
                .items
                .into_iter()
                .next();
            let unresolved = latest
                .as_ref()
                .filter(|i| i.status != IncidentStatus::Resolved);
            let status = match (unresolved, m.status) {
                (Some(_), _) => MonitorStatus::Down,
                // Resolved, but the row was not updated before a stop: it is up again.
                (None, MonitorStatus::Down) => MonitorStatus::Up,
                (None, s) => s,
            };
            self.states.insert(
                m.id,
                State {
                    tenant: m.tenant_id,
                    tags: m.tags.clone(),
                    depends_on: pingtower_core::check::depends_on(&m.settings),
                    status,
                    enabled: m.enabled,
                    down_after: u32::try_from(m.down_after).unwrap_or(1).max(1),
                    up_after: u32::try_from(m.up_after).unwrap_or(1).max(1),
                    fails: 0,
                    oks: 0,
                    last_at: HashMap::new(),
                    transition: latest.as_ref().map_or(0, |i| i.transition),
                    open: unresolved.map(|i| i.id),
                    cert: None,
                },
            );
        }
        Ok(())
    }

    /// Forgets a monitor's cached settings (it changed or was deleted); its counts restart.
    pub fn forget(&mut self, id: MonitorId) {
        self.states.remove(&id);
    }

    /// The certificates of a batch that crossed an expiry threshold (each once per certificate
    /// and threshold while this evaluator runs; the notificator's keys make it once for good).
    pub fn certs(&mut self, results: &[CheckResult]) -> Vec<CertExpiring> {
        let mut out = Vec::new();
        for r in results {
            let Some(expires_at) = r
                .details
                .as_ref()
                .and_then(|d| d.get("cert"))
                .and_then(|c| c.get("expires_at"))
                .and_then(|e| serde_json::from_value::<Timestamp>(e.clone()).ok())
            else {
                continue;
            };
            let Some(st) = self.states.get_mut(&r.monitor_id) else {
                continue;
            };
            let days_left =
                (expires_at.as_millis() - r.checked_at.as_millis()).div_euclid(86_400_000);
            let Some(threshold) = cert_threshold(days_left) else {
                continue;
            };
            let new = match st.cert {
                Some((seen, reported)) if seen == expires_at => threshold < reported,
                _ => true,
            };
            if new {
                st.cert = Some((expires_at, threshold));
                out.push(CertExpiring {
                    tenant_id: st.tenant,
                    monitor_id: r.monitor_id,
                    expires_at,
                    days_left,
                    threshold_days: threshold,
                    at: r.checked_at,
                });
            }
        }
        out
    }

    /// Folds a batch of committed results; returns the changes of state it made.
    pub async fn fold(&mut self, results: &[CheckResult]) -> Result<Vec<StateChange>, EngineError> {
        let mut sorted: Vec<&CheckResult> = results.iter().collect();
        sorted.sort_by_key(|r| r.checked_at);
        let mut ids: Vec<MonitorId> = sorted.iter().map(|r| r.monitor_id).collect();
        ids.sort();
        ids.dedup();
        self.load(&ids).await?;
        let mut changes = Vec::new();
        for r in sorted {
            if let Some(change) = self.fold_one(r).await? {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    async fn fold_one(&mut self, r: &CheckResult) -> Result<Option<StateChange>, EngineError> {
        // A monitor deleted meanwhile has no state; its results are of no concern.
        let Some((tenant, tags)) = self
            .states
            .get(&r.monitor_id)
            .map(|st| (st.tenant, st.tags.clone()))
        else {
            return Ok(None);
        };
        let maintenance = self
            .in_maintenance(tenant, r.monitor_id, &tags, r.checked_at)
            .await?;
        let Some(st) = self.states.get_mut(&r.monitor_id) else {
            return Ok(None);
        };
        if !st.enabled || st.status == MonitorStatus::Paused {
            return Ok(None);
        }
        let at = r.checked_at.as_millis();
        let last = st.last_at.entry(r.region.clone()).or_insert(i64::MIN);
        if at <= *last {
            return Ok(None);
        }
        *last = at;
        match r.status {
            CheckStatus::Down => {
                st.fails = st.fails.saturating_add(1);
                st.oks = 0;
            }
            CheckStatus::Up | CheckStatus::Degraded => {
                st.oks = st.oks.saturating_add(1);
                st.fails = 0;
            }
        }
        let working = if r.status == CheckStatus::Degraded {
            MonitorStatus::Degraded
        } else {
            MonitorStatus::Up
        };
        let next = match (st.status, r.status) {
            // Checks go on; the state says maintenance and nobody is paged.
            _ if maintenance => MonitorStatus::Maintenance,
            (MonitorStatus::Down, CheckStatus::Down) => MonitorStatus::Down,
            (MonitorStatus::Down, _) if st.oks >= st.up_after => working,
            (MonitorStatus::Down, _) => MonitorStatus::Down,
            (_, CheckStatus::Down) if st.fails >= st.down_after => MonitorStatus::Down,
            (current, CheckStatus::Down) => current,
            (_, _) => working,
        };
        if next == st.status {
            return Ok(None);
        }
        let from = st.status;
        let tenant = st.tenant;
        let parent = st.depends_on;
        let mut incident_id = None;
        let mut suppressed_by = None;
        if next == MonitorStatus::Down && st.open.is_none() {
            let transition = st.transition + 1;
            let opened = self
                .store
                .open_incident(
                    tenant,
                    r.monitor_id,
                    transition,
                    r.reason.as_deref(),
                    r.checked_at,
                )
                .await?;
            let id = match opened {
                Some(i) => i.id,
                // Opened before (a redelivery after a stop): find it.
                None => {
                    let filter = IncidentFilter {
                        monitor_id: Some(r.monitor_id),
                        status: None,
                    };
                    self.store
                        .list_incidents(tenant, &filter, &PageRequest::first(1))
                        .await?
                        .items
                        .into_iter()
                        .next()
                        .map(|i| i.id)
                        .ok_or(pingtower_store::StoreError::NotFound)?
                }
            };
            st.transition = transition;
            st.open = Some(id);
            incident_id = Some(id);
            if let Some(parent) = parent {
                suppressed_by = self
                    .link_to_parent(tenant, id, parent, r.checked_at)
                    .await?;
            }
        } else if next != MonitorStatus::Down
            && next != MonitorStatus::Maintenance
            && let Some(id) = st.open.take()
        {
            let message = match self.store.get_incident(tenant, id).await {
                Ok(i) => format!(
                    "the monitor is up again after {} s down",
                    (r.checked_at.as_millis() - i.opened_at.as_millis()).max(0) / 1000
                ),
                Err(_) => "the monitor is up again".to_owned(),
            };
            self.store
                .resolve_incident(tenant, id, Some(&message), r.checked_at)
                .await?;
            incident_id = Some(id);
        }
        self.store
            .set_monitor_status(tenant, r.monitor_id, next, r.checked_at)
            .await?;
        if let Some(st) = self.states.get_mut(&r.monitor_id) {
            st.status = next;
        }
        Ok(Some(StateChange {
            tenant_id: tenant,
            monitor_id: r.monitor_id,
            from,
            to: next,
            at: r.checked_at,
            reason: r.reason.clone(),
            incident_id,
            transition: self.states.get(&r.monitor_id).map_or(0, |st| st.transition),
            suppressed_by,
        }))
    }

    /// When `parent` is down, notes on the child's incident that it links to the parent's, and
    /// answers the parent (whose outage suppresses the child's notifications).
    async fn link_to_parent(
        &mut self,
        tenant: TenantId,
        incident: IncidentId,
        parent: MonitorId,
        at: Timestamp,
    ) -> Result<Option<MonitorId>, EngineError> {
        let status = match self.states.get(&parent) {
            Some(p) => p.status,
            None => match self.store.get_monitor(tenant, parent).await {
                Ok(m) => m.status,
                Err(pingtower_store::StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        if status != MonitorStatus::Down {
            return Ok(None);
        }
        let filter = IncidentFilter {
            monitor_id: Some(parent),
            status: None,
        };
        let parent_incident = self
            .store
            .list_incidents(tenant, &filter, &PageRequest::first(1))
            .await?
            .items
            .into_iter()
            .next()
            .filter(|i| i.status != IncidentStatus::Resolved);
        let message = match parent_incident {
            Some(p) => format!(
                "depends on monitor {parent}, which is down: linked to its incident {}; notifications suppressed",
                p.id
            ),
            None => format!("depends on monitor {parent}, which is down; notifications suppressed"),
        };
        self.store
            .add_incident_event(
                tenant,
                incident,
                pingtower_core::IncidentEventKind::Comment,
                Some("system"),
                Some(&message),
                at,
            )
            .await?;
        Ok(Some(parent))
    }

    /// Consumes `check.results` and `config.changed` until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), EngineError> {
        let mut results = self
            .bus
            .subscribe(
                topics::CHECK_RESULTS,
                EVALUATORS_GROUP,
                SubscribeOptions::default(),
            )
            .await?;
        let mut changes =
            crate::scheduler::subscribe_changes(self.bus.as_ref(), "evaluator-changes").await?;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                d = results.next() => {
                    let Some(d) = d else { break };
                    let Ok(batch) = d.message.json::<Vec<CheckResult>>() else {
                        tracing::warn!("malformed check.results message");
                        d.nack(false);
                        continue;
                    };
                    match self.fold(&batch).await {
                        Ok(changes) => {
                            for c in self.certs(&batch) {
                                if let Err(e) = pingtower_bus::publish_json(self.bus.as_ref(), topics::MONITOR_CERT, &c).await {
                                    tracing::warn!(error = %e, "publishing a certificate warning failed");
                                }
                            }
                            for c in &changes {
                                if let Err(e) = pingtower_bus::publish_json(self.bus.as_ref(), topics::MONITOR_STATE, c).await {
                                    tracing::warn!(error = %e, "publishing a state change failed");
                                }
                            }
                            d.ack();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "evaluating results failed; retrying");
                            // Cached counts may be ahead of the store now: start over for these.
                            for r in &batch {
                                self.forget(r.monitor_id);
                            }
                            d.nack(true);
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                    }
                }
                d = changes.next() => {
                    let Some(d) = d else { break };
                    match crate::scheduler::monitor_change(&d.message) {
                        Ok(Some(change)) => self.forget(change.monitor_id),
                        Ok(None) => {
                            if let Ok(c) = d.message.json::<crate::scheduler::ResourceChanged>()
                                && c.resource == ResourceKind::Maintenance.as_str()
                            {
                                self.windows.remove(&c.tenant_id);
                            }
                        }
                        Err(_) => {}
                    }
                    d.ack();
                }
            }
        }
        Ok(())
    }
}
