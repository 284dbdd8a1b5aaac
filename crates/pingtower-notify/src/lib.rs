//! PingTower's notificator: from a monitor's change of state to a message in the channel its
//! people use, sent once.
//!
//! - [`router::Notificator`] consumes `monitor.state`, matches the tenant's rules (cached, and
//!   dropped on `config.changed`), records one delivery per (transition, event, channel) in the
//!   delivery log, whose idempotency key refuses a second, and publishes it on
//!   `notifications.send`.
//! - [`delivery::Deliverer`] consumes `notifications.send`, sends through the channel's module,
//!   retries with exponential backoff and jitter, keeps a circuit breaker per channel, records
//!   every attempt, and dead-letters a notification after its last attempt.
//!
//! Invariants: a channel's credentials are opened only here, in memory, at the moment of
//! sending; they are never logged, and provider answers are cut short (status and a bounded
//! excerpt) before they are stored or shown. Every connection goes through
//! [`outbound::Outbound`], which applies the operator's blocklist to every address and does
//! not follow redirects. Every send ends within its timeout.

pub mod channels;
pub mod delivery;
pub mod mail;
pub mod outbound;
pub mod render;
pub mod router;
pub mod slots;

use pingtower_core::{
    DeliveryId, IncidentId, MonitorId, MonitorStatus, ResourceId, TenantId, Timestamp,
};
use serde::{Deserialize, Serialize};

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Down,
    Up,
    Degraded,
    /// A monitor's TLS certificate expires soon.
    CertExpiring,
    /// A test message (`POST /api/v1/channels/{id}/test`).
    Test,
}

impl Event {
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Down => "down",
            Event::Up => "up",
            Event::Degraded => "degraded",
            Event::CertExpiring => "cert_expiring",
            Event::Test => "test",
        }
    }
}

/// The message on `notifications.send`: one notification to one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub delivery_id: DeliveryId,
    pub tenant_id: TenantId,
    pub channel_id: ResourceId,
    pub event: Event,
    pub monitor_id: MonitorId,
    pub monitor_name: String,
    pub status: MonitorStatus,
    pub reason: Option<String>,
    pub at: Timestamp,
    pub incident_id: Option<IncidentId>,
    /// How long the monitor was down (UP after DOWN).
    pub down_for_ms: Option<i64>,
    /// Also the `Idempotency-Key` sent to providers that take one.
    pub idempotency_key: String,
    /// Where people see the monitor (with a public URL set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("store: {0}")]
    Store(#[from] pingtower_store::StoreError),
    #[error("bus: {0}")]
    Bus(#[from] pingtower_bus::BusError),
    #[error("cannot make an HTTP client: {0}")]
    Http(String),
}
