//! Configuration resources (channels, rules, maintenance windows, status pages), deliveries and
//! the audit log.

use crate::{AuditId, DeliveryId, IncidentId, ResourceId, TenantId, Timestamp};
use serde::Serialize;

crate::wire_enum! {
    /// The configuration objects that share one storage shape: a name, a JSON spec, a version.
    pub enum ResourceKind ("resource kind") {
        Channel => "channel",
        Rule => "rule",
        Maintenance => "maintenance",
        StatusPage => "status_page",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub id: ResourceId,
    pub tenant_id: TenantId,
    pub kind: ResourceKind,
    pub name: String,
    /// Globally unique public name; status pages use it for `/status/{slug}`.
    pub slug: Option<String>,
    pub spec: serde_json::Value,
    /// Encrypted credentials (channels). Ciphertext only: the store never sees the key.
    #[serde(skip)]
    pub secret: Option<Vec<u8>>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewResource {
    pub kind: ResourceKind,
    pub name: String,
    pub slug: Option<String>,
    pub spec: serde_json::Value,
    pub secret: Option<Vec<u8>>,
}

crate::wire_enum! {
    pub enum DeliveryStatus ("delivery status") {
        Pending => "pending",
        Sent => "sent",
        Failed => "failed",
        Dead => "dead",
    }
}

/// One notification to one channel, with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub tenant_id: TenantId,
    pub channel_id: ResourceId,
    pub incident_id: Option<IncidentId>,
    /// (transition key, channel): the store refuses a second delivery with the same key, so a
    /// redelivered message does not notify twice.
    pub idempotency_key: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub response: Option<String>,
    pub latency_ms: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: AuditId,
    pub tenant_id: TenantId,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
    pub at: Timestamp,
}
