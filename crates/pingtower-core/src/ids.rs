//! Typed identifiers. Every entity has a UUID (version 7, so ids sort by creation time);
//! the newtypes keep a monitor id from being passed where a tenant id is expected.

use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    )+};
}

id_type!(
    /// A tenant: the unit of isolation. Every other row belongs to exactly one.
    TenantId,
    /// A user account (global; joined to tenants through memberships).
    UserId,
    /// An API key.
    ApiKeyId,
    /// A monitor.
    MonitorId,
    /// An incident.
    IncidentId,
    /// An entry in an incident's timeline.
    IncidentEventId,
    /// A channel, rule, maintenance window or status page.
    ResourceId,
    /// A notification delivery.
    DeliveryId,
    /// An audit log entry.
    AuditId,
    /// A login session.
    SessionId,
    /// An invitation to join a tenant.
    InvitationId,
);
