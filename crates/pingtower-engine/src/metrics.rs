//! PingTower's own figures, exposed at `/metrics` in the Prometheus text format.
//!
//! Invariant: two registries. The process's own figures (counts, queues, latencies by route) say
//! nothing about any tenant; the per-monitor series (labelled by monitor and tenant) go in a
//! registry of their own, which [`Metrics::encode`] leaves out: only
//! [`Metrics::encode_with_monitors`] shows them, and the API calls it only for the operator's
//! scraper.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route (`/api/v1/monitors/{id}`), never the raw path, so cardinality stays
    /// bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

/// Every metric the process registers. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Series labelled by monitor and tenant.
    per_monitor: Arc<Mutex<Registry>>,
    pub results_written: Counter,
    pub result_batches: Counter,
    pub result_write_errors: Counter,
    pub writer_queue: Gauge,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_latency: Family<HttpLabels, Histogram>,
    pub scheduled_monitors: Gauge,
    pub checks_scheduled: Counter,
    pub checks_skipped: Counter,
    pub checks_run: Family<StatusLabels, Counter>,
    pub schedule_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pingtower");
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "PingTower's version", build);
        let m = Self {
            results_written: Counter::default(),
            result_batches: Counter::default(),
            result_write_errors: Counter::default(),
            writer_queue: Gauge::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            scheduled_monitors: Gauge::default(),
            checks_scheduled: Counter::default(),
            checks_skipped: Counter::default(),
            checks_run: Family::default(),
            schedule_lag: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            registry: Arc::new(Mutex::new(Registry::default())),
            per_monitor: Arc::new(Mutex::new(Registry::with_prefix("pingtower"))),
        };
        registry.register(
            "scheduled_monitors",
            "Monitors the scheduler holds",
            m.scheduled_monitors.clone(),
        );
        registry.register(
            "checks_scheduled",
            "Checks published as due",
            m.checks_scheduled.clone(),
        );
        registry.register(
            "checks_skipped",
            "Due checks skipped because they were more than an interval late",
            m.checks_skipped.clone(),
        );
        registry.register("checks", "Checks run, by outcome", m.checks_run.clone());
        registry.register(
            "check_schedule_lag_seconds",
            "Time from a check's due time to its start (0 when it starts early)",
            m.schedule_lag.clone(),
        );
        registry.register(
            "results_written",
            "Check results committed to the store",
            m.results_written.clone(),
        );
        registry.register(
            "result_batches",
            "Result batches committed to the store",
            m.result_batches.clone(),
        );
        registry.register(
            "result_write_errors",
            "Failed attempts to commit a result batch (retried)",
            m.result_write_errors.clone(),
        );
        registry.register(
            "writer_queue_results",
            "Results waiting for the writer",
            m.writer_queue.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            m.http_latency.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            ..m
        }
    }

    /// Registers a metric of another part of the process. It must not be labelled by tenant,
    /// monitor or anything else of a tenant's: see [`Metrics::register_per_monitor`].
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// Registers a metric labelled by monitor or tenant: shown only by
    /// [`Metrics::encode_with_monitors`].
    pub fn register_per_monitor(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.per_monitor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// The exposition text of the process's own figures (no per-monitor series).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        self.encode_parts(false)
    }

    /// The exposition text of the process's own figures and every per-monitor series.
    pub fn encode_with_monitors(&self) -> Result<String, std::fmt::Error> {
        self.encode_parts(true)
    }

    fn encode_parts(&self, monitors: bool) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        {
            let registry = self
                .registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            encode_registry(&mut out, &registry)?;
        }
        if monitors {
            let registry = self
                .per_monitor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            encode_registry(&mut out, &registry)?;
        }
        encode_eof(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_values() {
        let m = Metrics::new();
        m.results_written.inc_by(3);
        m.http_requests
            .get_or_create(&HttpLabels {
                method: "GET".into(),
                route: "/healthz".into(),
                status: 200,
            })
            .inc();
        let text = m.encode().unwrap();
        assert!(text.contains("pingtower_results_written_total 3"), "{text}");
        assert!(text.contains("pingtower_build_info{version=\""), "{text}");
        assert!(
            text.contains(
                "pingtower_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
