//! PingTower's domain: the types every other crate speaks in.
//!
//! Architecture invariant: this crate does no I/O. It knows nothing of SQL, HTTP, brokers or the
//! clock's source (callers pass times in). It holds identifiers, the data model, enumerations with
//! their wire names, and validation that needs nothing but the value itself.

pub mod access;
pub mod assertion;
pub mod check;
pub mod chunk;
pub mod codec;
pub mod event_rule;
pub mod ids;
pub mod incident;
pub mod monitor;
pub mod net;
pub mod page;
pub mod resource;
pub mod result;
pub mod stats;
pub mod time;

pub use access::{ApiKey, Invitation, Membership, Role, Session, Tenant, User};
pub use ids::*;
pub use incident::{Incident, IncidentEvent, IncidentEventKind, IncidentStatus};
pub use monitor::{Monitor, MonitorKind, MonitorStatus, NewMonitor};
pub use page::{Cursor, Page};
pub use resource::{AuditEntry, Delivery, DeliveryStatus, NewResource, Resource, ResourceKind};
pub use result::{CheckResult, CheckStatus};
pub use time::Timestamp;

/// A value that did not parse into one of the domain's enumerations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of: {expected}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Declares a string-backed enumeration with stable wire names (used in JSON, SQL and the CLI).
#[macro_export]
macro_rules! wire_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident ($what:literal) { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        // By hand rather than derived: the derive does not see the wire names through the
        // macro's attributes, and would document the variant names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::ParseEnumError {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($wire, " "),+),
                    }),
                }
            }
        }
    };
}
