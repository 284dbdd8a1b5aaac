//! PingTower's checks: each kind in its own module, all behind [`Checker::run`].
//!
//! Invariants:
//! - A check never returns an error: a target that is down, slow, lying or hostile is an
//!   [`Outcome`] with status DOWN and a readable reason.
//! - Every check ends within its timeout; the reason then names the phase it was stuck in.
//! - Reads from targets are capped (body bytes, reply bytes), so a target that sends gigabytes
//!   costs at most the cap.
//! - A fresh connection per check: no pooling, so timings are what a new visitor sees.

mod dns;
mod http;
mod icmp;
mod net;
mod tcp;
mod tls;

use pingtower_core::CheckStatus;
use pingtower_core::assertion::{AssertionOutcome, Facts};
use pingtower_core::check::{CheckKindSpec, CheckSpec};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use pingtower_core::net::Blocklist;
pub use tls::TlsContext;

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: CheckStatus,
    pub latency_us: i64,
    pub reason: Option<String>,
    /// Timings, protocol figures, certificate and assertion outcomes.
    pub details: Value,
}

/// Timings of the phases of a check, in microseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub dns_us: Option<i64>,
    pub connect_us: Option<i64>,
    pub tls_us: Option<i64>,
    pub ttfb_us: Option<i64>,
    pub total_us: i64,
}

impl Timings {
    fn to_json(&self) -> Value {
        json!({"dns_us": self.dns_us, "connect_us": self.connect_us, "tls_us": self.tls_us, "ttfb_us": self.ttfb_us, "total_us": self.total_us})
    }
}

/// The phase a check is in, so that a timeout can say where it was stuck.
/// The per-check context: the phase the check is in (named when it times out) and the
/// networks it may not reach.
#[derive(Clone, Default)]
pub(crate) struct Phase(Arc<Mutex<&'static str>>, Blocklist);

impl Phase {
    pub(crate) fn set(&self, phase: &'static str) {
        if let Ok(mut p) = self.0.lock() {
            *p = phase;
        }
    }

    fn get(&self) -> &'static str {
        self.0.lock().map(|p| *p).unwrap_or("running")
    }

    pub(crate) fn blocklist(&self) -> &Blocklist {
        &self.1
    }
}

pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Runs checks. Holds what every check shares: the TLS trust roots and client configurations.
/// Cheap to clone.
#[derive(Clone)]
pub struct Checker {
    tls: Arc<TlsContext>,
    blocked: Blocklist,
}

impl Checker {
    /// Loads the system trust store once (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`).
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            tls: Arc::new(TlsContext::system()?),
            blocked: Blocklist::default(),
        })
    }

    pub fn with_tls(tls: TlsContext) -> Self {
        Self {
            tls: Arc::new(tls),
            blocked: Blocklist::default(),
        }
    }

    /// Refuses connections to these ranges.
    pub fn with_blocklist(mut self, blocked: Blocklist) -> Self {
        self.blocked = blocked;
        self
    }

    /// Runs one check to its outcome, within its timeout.
    pub async fn run(&self, spec: &CheckSpec) -> Outcome {
        let timeout = Duration::from_millis(u64::try_from(spec.timeout_ms.max(1)).unwrap_or(1));
        let phase = Phase(Arc::default(), self.blocked.clone());
        let started = Instant::now();
        let raw = match &spec.kind {
            CheckKindSpec::Http(h) => {
                tokio::time::timeout(timeout, http::run(h, &self.tls, &phase)).await
            }
            CheckKindSpec::Tcp(t) => tokio::time::timeout(timeout, tcp::run(t, &phase)).await,
            CheckKindSpec::Tls(t) => {
                tokio::time::timeout(timeout, tls::run(t, &self.tls, &phase)).await
            }
            CheckKindSpec::Dns(d) => tokio::time::timeout(timeout, dns::run(d, &phase)).await,
            CheckKindSpec::Icmp(i) => {
                tokio::time::timeout(timeout, icmp::run(i, timeout, &phase)).await
            }
            CheckKindSpec::Heartbeat(_) => {
                return Outcome {
                    status: CheckStatus::Down,
                    latency_us: 0,
                    reason: Some("heartbeat monitors are not checked: they are pushed to".into()),
                    details: json!({}),
                };
            }
            CheckKindSpec::Event(_) => {
                return Outcome {
                    status: CheckStatus::Down,
                    latency_us: 0,
                    reason: Some(
                        "event monitors are evaluated by a worker with the events database".into(),
                    ),
                    details: json!({}),
                };
            }
        };
        let elapsed = micros(started.elapsed());
        let raw = match raw {
            Ok(raw) => raw,
            Err(_) => {
                return Outcome {
                    status: CheckStatus::Down,
                    latency_us: elapsed,
                    reason: Some(format!(
                        "timed out after {} ({})",
                        human(timeout),
                        phase.get()
                    )),
                    details: json!({"timed_out": true, "phase": phase.get()}),
                };
            }
        };
        judge(spec, raw)
    }
}

fn human(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What a kind's module returns: a failure reason, or facts for the assertions.
pub(crate) struct Raw {
    pub(crate) failure: Option<String>,
    pub(crate) facts: Facts,
    pub(crate) timings: Timings,
    pub(crate) details: Value,
    /// When the kind has no assertion, whether it is up (e.g. HTTP status below 400).
    pub(crate) default_up: Result<(), String>,
}

/// Applies the assertions and `degraded_when` to what a check found.
fn judge(spec: &CheckSpec, raw: Raw) -> Outcome {
    let mut details = raw.details;
    if let Value::Object(map) = &mut details {
        map.insert("timings".into(), raw.timings.to_json());
    }
    let latency_us = raw.timings.total_us;
    if let Some(reason) = raw.failure {
        return Outcome {
            status: CheckStatus::Down,
            latency_us,
            reason: Some(reason),
            details,
        };
    }
    let json_body: Option<Value> = raw
        .facts
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    let outcomes: Vec<AssertionOutcome> = spec
        .assertions
        .iter()
        .map(|a| a.evaluate(&raw.facts, json_body.as_ref()))
        .collect();
    let degraded: Vec<AssertionOutcome> = spec
        .degraded_when
        .iter()
        .map(|a| a.evaluate(&raw.facts, json_body.as_ref()))
        .collect();
    if let Value::Object(map) = &mut details {
        if !outcomes.is_empty() {
            map.insert(
                "assertions".into(),
                serde_json::to_value(&outcomes).unwrap_or_default(),
            );
        }
        if !degraded.is_empty() {
            map.insert(
                "degraded_when".into(),
                serde_json::to_value(&degraded).unwrap_or_default(),
            );
        }
    }
    let failed = outcomes.iter().find(|o| !o.passed);
    let down_reason = match (failed, spec.assertions.is_empty()) {
        (Some(o), _) => Some(match &o.actual {
            Some(actual) => format!("assertion `{}` failed (got {actual})", o.assertion),
            None => format!("assertion `{}` failed", o.assertion),
        }),
        (None, true) => raw.default_up.err(),
        (None, false) => None,
    };
    if let Some(reason) = down_reason {
        return Outcome {
            status: CheckStatus::Down,
            latency_us,
            reason: Some(reason),
            details,
        };
    }
    if let Some(o) = degraded.iter().find(|o| o.passed) {
        let reason = match &o.actual {
            Some(actual) => format!("degraded: `{}` (got {actual})", o.assertion),
            None => format!("degraded: `{}`", o.assertion),
        };
        return Outcome {
            status: CheckStatus::Degraded,
            latency_us,
            reason: Some(reason),
            details,
        };
    }
    Outcome {
        status: CheckStatus::Up,
        latency_us,
        reason: None,
        details,
    }
}
