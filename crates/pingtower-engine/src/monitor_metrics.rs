//! Each monitor's figures on `/metrics`, for Prometheus and Grafana users (stats role): whether
//! it is up, its latest latency and a latency histogram, and its certificate's expiry, labelled
//! by monitor, tenant and region.
//!
//! Invariant: cardinality follows the monitors that exist: a deleted or paused monitor's series
//! are removed (on `config.changed`), so series do not pile up as monitors come and go.

use crate::Metrics;
use pingtower_bus::{Bus, SubscribeOptions, topics};
use pingtower_core::{CheckResult, CheckStatus, MonitorId, Timestamp};
use pingtower_store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorLabels {
    pub monitor: String,
    pub tenant: String,
    pub region: String,
}

#[derive(Clone)]
pub struct MonitorMetrics {
    up: Family<MonitorLabels, Gauge>,
    latency: Family<MonitorLabels, Gauge<f64, AtomicU64>>,
    histogram: Family<MonitorLabels, Histogram>,
    cert_expiry: Family<MonitorLabels, Gauge>,
    series: Arc<Mutex<HashMap<MonitorId, HashSet<MonitorLabels>>>>,
    /// Monitors forgotten: results still in flight for them do not bring their series back.
    gone: Arc<Mutex<HashSet<MonitorId>>>,
}

/// Forgotten monitors remembered at most (ids are never reused; this only bounds memory).
const GONE_MAX: usize = 100_000;

impl MonitorMetrics {
    /// Registers the families with the process's per-monitor registry (shown only to the
    /// operator's scraper, see [`Metrics::encode_with_monitors`]).
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self {
            up: Family::default(),
            latency: Family::default(),
            histogram: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            cert_expiry: Family::default(),
            series: Arc::default(),
            gone: Arc::default(),
        };
        metrics.register_per_monitor(
            "monitor_up",
            "1 when the monitor's last check was up or degraded, 0 when down",
            m.up.clone(),
        );
        metrics.register_per_monitor(
            "monitor_latency_seconds",
            "The monitor's last check's duration",
            m.latency.clone(),
        );
        metrics.register_per_monitor(
            "monitor_check_duration_seconds",
            "Durations of the monitor's checks",
            m.histogram.clone(),
        );
        metrics.register_per_monitor(
            "monitor_cert_expiry_timestamp_seconds",
            "When the monitor's TLS certificate expires (Unix time)",
            m.cert_expiry.clone(),
        );
        m
    }

    /// Folds one result in.
    pub fn observe(&self, r: &CheckResult) {
        if self
            .gone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&r.monitor_id)
        {
            return;
        }
        let labels = MonitorLabels {
            monitor: r.monitor_id.to_string(),
            tenant: r.tenant_id.to_string(),
            region: r.region.clone(),
        };
        self.up
            .get_or_create(&labels)
            .set(i64::from(r.status != CheckStatus::Down));
        let seconds = r.latency_us as f64 / 1e6;
        self.latency.get_or_create(&labels).set(seconds);
        self.histogram.get_or_create(&labels).observe(seconds);
        if let Some(expires) = r
            .details
            .as_ref()
            .and_then(|d| d.get("cert"))
            .and_then(|c| c.get("expires_at"))
            .and_then(|e| serde_json::from_value::<Timestamp>(e.clone()).ok())
        {
            self.cert_expiry
                .get_or_create(&labels)
                .set(expires.as_millis() / 1000);
        }
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(r.monitor_id)
            .or_default()
            .insert(labels);
    }

    /// Removes every series of a monitor (deleted; a paused one comes back with its results).
    pub fn forget(&self, monitor: MonitorId, deleted: bool) {
        if deleted {
            let mut gone = self
                .gone
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if gone.len() >= GONE_MAX {
                gone.clear();
            }
            gone.insert(monitor);
        }
        let gone = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&monitor);
        for labels in gone.into_iter().flatten() {
            self.up.remove(&labels);
            self.latency.remove(&labels);
            self.histogram.remove(&labels);
            self.cert_expiry.remove(&labels);
        }
    }

    /// Consumes `check.results` and `config.changed` until `shutdown`.
    pub async fn run(
        self,
        bus: Arc<dyn Bus>,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<(), crate::EngineError> {
        // A group of this process's own: every process shows the results it hears of.
        let group = format!("monitor-metrics-{}", uuid::Uuid::new_v4().simple());
        let mut results = bus
            .subscribe(topics::CHECK_RESULTS, &group, SubscribeOptions::ephemeral())
            .await?;
        let mut changes =
            crate::scheduler::subscribe_changes(bus.as_ref(), "monitor-metrics").await?;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                d = results.next() => {
                    let Some(d) = d else { break };
                    if let Ok(batch) = d.message.json::<Vec<CheckResult>>() {
                        for r in &batch {
                            self.observe(r);
                        }
                    }
                    d.ack();
                }
                d = changes.next() => {
                    let Some(d) = d else { break };
                    if let Ok(Some(c)) = crate::scheduler::monitor_change(&d.message) {
                        match store.get_monitor(c.tenant_id, c.monitor_id).await {
                            Ok(m) if !m.enabled => self.forget(c.monitor_id, false),
                            Err(pingtower_store::StoreError::NotFound) => {
                                self.forget(c.monitor_id, true);
                            }
                            _ => {}
                        }
                    }
                    d.ack();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingtower_core::TenantId;

    #[test]
    fn series_come_with_results_and_go_with_their_monitor() {
        let metrics = Metrics::new();
        let mm = MonitorMetrics::register(&metrics);
        let (monitor, tenant) = (MonitorId::new(), TenantId::new());
        let r = CheckResult {
            monitor_id: monitor,
            monitor_seq: 1,
            tenant_id: tenant,
            region: "eu".into(),
            checked_at: Timestamp::from_millis(0),
            status: CheckStatus::Up,
            latency_us: 250_000,
            reason: None,
            details: Some(serde_json::json!({"cert": {"expires_at": "2030-01-01T00:00:00Z"}})),
        };
        mm.observe(&r);
        // The process's own figures say nothing of monitors or tenants.
        let own = metrics.encode().unwrap();
        assert!(own.contains("pingtower_build_info"), "{own}");
        assert!(!own.contains("pingtower_monitor_"), "{own}");
        assert!(!own.contains(&tenant.to_string()), "{own}");
        let text = metrics.encode_with_monitors().unwrap();
        assert!(text.contains("pingtower_build_info"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        let labels = format!("monitor=\"{monitor}\",tenant=\"{tenant}\",region=\"eu\"");
        assert!(
            text.contains(&format!("pingtower_monitor_up{{{labels}}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "pingtower_monitor_latency_seconds{{{labels}}} 0.25"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "pingtower_monitor_cert_expiry_timestamp_seconds{{{labels}}} 1893456000"
            )),
            "{text}"
        );
        assert!(
            text.contains("pingtower_monitor_check_duration_seconds_bucket"),
            "{text}"
        );
        mm.observe(&CheckResult {
            status: CheckStatus::Down,
            ..r.clone()
        });
        assert!(
            metrics
                .encode_with_monitors()
                .unwrap()
                .contains(&format!("pingtower_monitor_up{{{labels}}} 0"))
        );
        mm.forget(monitor, true);
        assert!(
            !metrics
                .encode_with_monitors()
                .unwrap()
                .contains(&monitor.to_string())
        );
        // A result still in flight for the deleted monitor does not bring it back.
        mm.observe(&CheckResult {
            status: CheckStatus::Up,
            ..r
        });
        assert!(
            !metrics
                .encode_with_monitors()
                .unwrap()
                .contains(&monitor.to_string())
        );
    }
}
