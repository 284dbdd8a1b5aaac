//! Tenants, users, memberships and API keys.

use crate::{ApiKeyId, InvitationId, SessionId, TenantId, Timestamp, UserId};
use serde::Serialize;

crate::wire_enum! {
    /// What a member of a tenant may do. Ordered from most to least powerful.
    pub enum Role ("role") {
        Owner => "owner",
        Admin => "admin",
        Editor => "editor",
        Viewer => "viewer",
        /// For API keys only: may send analytics events (`POST /api/v1/events`) and nothing
        /// else, not even read. Such a key can sit in an application's configuration.
        Ingest => "ingest",
    }
}

impl Role {
    /// A rank where a higher number may do more.
    pub const fn rank(self) -> u8 {
        match self {
            Role::Owner => 4,
            Role::Admin => 3,
            Role::Editor => 2,
            Role::Viewer => 1,
            Role::Ingest => 0,
        }
    }

    /// Whether this role includes everything `other` may do.
    pub const fn at_least(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

/// A user account. The password hash never leaves the store layer in API answers: the API maps
/// this to its own response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: Option<String>,
    /// PHC-format argon2id hash, absent for accounts that only log in through OIDC.
    pub password_hash: Option<String>,
    /// May create and delete tenants.
    pub platform_admin: bool,
    /// Whether the account's owner proved the email (an invitation accepted, an admin or the
    /// operator made it). An account registered by anyone is not proven: an invitation to its
    /// email may then set its password.
    pub email_verified: bool,
    pub created_at: Timestamp,
}

/// A login session: a login token names one and works only while it is neither revoked nor
/// expired (logging out, changing the password and "end my other sessions" revoke).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Session {
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// An invitation to join a tenant with a role, accepted with its token (only a hash of which is
/// stored) by the person who has that email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    pub token_hash: Vec<u8>,
    pub invited_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
    pub created_at: Timestamp,
}

/// An API key. Only a hash of the secret is stored; `prefix` is the public part that finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether the key may be used at `now`.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_order() {
        assert_eq!("editor".parse::<Role>().unwrap(), Role::Editor);
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Owner.at_least(Role::Admin));
        assert!(!Role::Viewer.at_least(Role::Editor));
        assert!(Role::Editor.at_least(Role::Editor));
    }
}
