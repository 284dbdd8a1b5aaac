//! Incidents and their timelines.

use crate::{IncidentEventId, IncidentId, MonitorId, TenantId, Timestamp};
use serde::Serialize;

crate::wire_enum! {
    pub enum IncidentStatus ("incident status") {
        Open => "open",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
    }
}

crate::wire_enum! {
    pub enum IncidentEventKind ("incident event kind") {
        Opened => "opened",
        Notified => "notified",
        Acknowledged => "acknowledged",
        Comment => "comment",
        Resolved => "resolved",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: IncidentId,
    pub tenant_id: TenantId,
    pub monitor_id: MonitorId,
    /// The monitor's transition counter at the DOWN transition that opened this incident. The
    /// store refuses a second incident with the same (monitor, transition): this is what makes
    /// opening idempotent when a result is delivered twice.
    pub transition: i64,
    pub status: IncidentStatus,
    pub reason: Option<String>,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IncidentEvent {
    pub id: IncidentEventId,
    pub incident_id: IncidentId,
    pub at: Timestamp,
    pub kind: IncidentEventKind,
    /// Who did it: a user's email, an API key's name, or `system`.
    pub actor: Option<String>,
    pub message: Option<String>,
}
