//! Mail about accounts, when the operator gave the installation an SMTP server
//! (`PINGTOWER_SMTP_URL`): an email counts only once a link sent to it was used.
//!
//! - Registration answers the same `202` whatever the email: a new email gets a link that
//!   makes the account; an email with an account gets a note saying so. Nothing in the answer,
//!   nor in its timing (the mail leaves after the answer), tells which emails have accounts.
//! - The link carries the registration sealed with the installation's key (nothing is stored
//!   before it is used), and making the account needs the password chosen at registration:
//!   whoever receives a registration they did not ask for cannot take it up, and whoever asked
//!   for it cannot make the account without the mailbox.
//! - Invitations go to the invited email instead of being shown to the admin who made them.
//! - "Forgot password" answers the same `202` whatever the email; an account with a password
//!   gets a link that sets a new one. The link is sealed (nothing is stored) and names a
//!   fingerprint of the password it replaces, so it works once: any change of the password,
//!   by it or otherwise, ends it. An admin can have the link sent to a member; it goes to the
//!   member's own mailbox, never to the admin (only a platform administrator, on a server
//!   without mail, is given the link to pass on).
//!
//! Links are built from `PINGTOWER_PUBLIC_URL` only, never from a request's `Host` (which a
//! caller chooses, and would receive the link).

use crate::Problem;
use pingtower_core::{TenantId, Timestamp, UserId};
use pingtower_engine::secrets::Keys;
use pingtower_notify::mail::Mailer;
use serde::{Deserialize, Serialize};

/// How long a confirmation link works.
pub const CONFIRM_TTL_MS: i64 = 24 * 3_600_000;

/// The installation's mail and the address its links point to.
#[derive(Debug, Clone)]
pub struct AccountMail {
    pub mailer: Mailer,
    /// `PINGTOWER_PUBLIC_URL`, without a trailing `/`.
    pub public_url: String,
}

impl AccountMail {
    /// Sends in the background: the caller's answer neither waits for the server nor differs
    /// when it fails (the failure is logged; the person asks again).
    pub fn send_later(&self, to: String, subject: &'static str, body: String) {
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&to, subject, body).await {
                tracing::warn!(error = %e, "the installation's mail was not sent");
            }
        });
    }

    /// The mail for a registration of an email without an account.
    pub fn confirmation(&self, token: &str) -> (&'static str, String) {
        (
            "Confirm your email for PingTower",
            format!(
                "Someone, probably you, registered this email with PingTower.\n\n\
                 To make the account, open this link within 24 hours and enter the password \
                 you chose:\n\n{}/confirm/{token}\n\n\
                 If it was not you, ignore this message: no account is made without it.\n",
                self.public_url
            ),
        )
    }

    /// The mail for a registration of an email that has an account.
    pub fn already_registered(&self) -> (&'static str, String) {
        (
            "Your PingTower account",
            format!(
                "Someone, probably you, tried to register this email with PingTower, but it \
                 already has an account. Log in at:\n\n{}/login\n\n\
                 If it was not you, ignore this message: nothing changed.\n",
                self.public_url
            ),
        )
    }

    /// The mail carrying an invitation's link.
    pub fn invitation(&self, tenant: &str, role: &str, token: &str) -> (&'static str, String) {
        (
            "You are invited to PingTower",
            format!(
                "You are invited to join {tenant} on PingTower as {role}.\n\n\
                 Accept within 7 days:\n\n{}/invite/{token}\n\n\
                 If you did not expect this, ignore this message.\n",
                self.public_url
            ),
        )
    }
}

impl AccountMail {
    /// The mail with a link that sets a new password; `by` names the admin who sent it.
    pub fn reset(&self, token: &str, by: Option<&str>) -> (&'static str, String) {
        let why = match by {
            Some(admin) => format!("{admin}, an administrator, sent you"),
            None => "Someone, probably you, asked for".to_owned(),
        };
        (
            "Choose a new PingTower password",
            format!(
                "{why} a link to choose a new password for PingTower.\n\n\
                 Open it within an hour:\n\n{}\n\n\
                 Choosing a new password logs you out everywhere. If you did not expect this, \
                 ignore this message: your password stays as it is.\n",
                reset_link(&self.public_url, token)
            ),
        )
    }
}

/// Where a reset link points.
pub fn reset_link(public_url: &str, token: &str) -> String {
    format!("{public_url}/reset/{token}")
}

/// How long a password reset link works.
pub const RESET_TTL_MS: i64 = 3_600_000;

/// A password reset, carried sealed in the link.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reset {
    pub user: UserId,
    /// [`password_fingerprint`] of the password it replaces.
    pub replaces: String,
    pub expires_at: Timestamp,
    /// Mailed to the account's email (using it proves the email); `false`: given to a
    /// platform administrator to pass on, which proves nothing (and a link without it).
    #[serde(default)]
    pub mailed: bool,
}

/// Names a stored password hash without giving it away (a link holding it is mailed).
pub fn password_fingerprint(hash: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, hash.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// A registration waiting for its email to be proven, carried sealed in the link.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    pub email: String,
    /// The password chosen at registration (argon2 PHC string).
    pub password_hash: String,
    pub tenant_name: String,
    pub expires_at: Timestamp,
}

/// Registrations and resets are sealed under ids no tenant has, each its own, so that nothing
/// sealed for a tenant, nor one of them, opens as the other.
fn scope() -> TenantId {
    TenantId(uuid::Uuid::nil())
}

fn reset_scope() -> TenantId {
    TenantId(uuid::Uuid::from_u128(1))
}

fn seal_in<T: Serialize>(keys: &Keys, scope: TenantId, value: &T) -> Result<String, Problem> {
    use base64::Engine;
    let plain = serde_json::to_vec(value)
        .map_err(|e| Problem::internal(format_args!("encoding a link failed: {e}")))?;
    let sealed = keys
        .seal(scope, &plain)
        .map_err(|e| Problem::internal(format_args!("sealing a link failed: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
}

fn open_in<T: serde::de::DeserializeOwned>(keys: &Keys, scope: TenantId, token: &str) -> Option<T> {
    use base64::Engine;
    // A sealed link is a few hundred bytes.
    if token.len() > 4096 {
        return None;
    }
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let plain = keys.open(scope, &sealed).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// The link's token for `pending`.
pub fn seal(keys: &Keys, pending: &Pending) -> Result<String, Problem> {
    seal_in(keys, scope(), pending)
}

/// The registration in a link's token, while it is valid (`None`: forged, damaged or expired).
pub fn open(keys: &Keys, token: &str, now: Timestamp) -> Option<Pending> {
    open_in::<Pending>(keys, scope(), token).filter(|p| now < p.expires_at)
}

/// The link's token for `reset`.
pub fn seal_reset(keys: &Keys, reset: &Reset) -> Result<String, Problem> {
    seal_in(keys, reset_scope(), reset)
}

/// The reset in a link's token, while it is in time (whether its password is still the
/// current one is for the caller to check).
pub fn open_reset(keys: &Keys, token: &str, now: Timestamp) -> Option<Reset> {
    open_in::<Reset>(keys, reset_scope(), token).filter(|r| now < r.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> Keys {
        Keys::new(&[byte; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pending(expires_at: i64) -> Pending {
        Pending {
            email: "new@example.test".into(),
            password_hash: "$argon2id$x".into(),
            tenant_name: "New".into(),
            expires_at: Timestamp::from_millis(expires_at),
        }
    }

    #[test]
    fn a_registration_opens_only_with_its_key_unchanged_and_in_time() {
        let k = keys(7);
        let token = seal(&k, &pending(2_000)).unwrap_or_else(|e| panic!("{e:?}"));
        let opened = open(&k, &token, Timestamp::from_millis(1_000));
        assert_eq!(opened.map(|p| p.email).as_deref(), Some("new@example.test"));
        // Expired.
        assert!(open(&k, &token, Timestamp::from_millis(2_000)).is_none());
        // Another installation's key.
        assert!(open(&keys(8), &token, Timestamp::from_millis(1_000)).is_none());
        // One character changed.
        let mut bytes = token.into_bytes();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap_or_default();
        assert!(open(&k, &changed, Timestamp::from_millis(1_000)).is_none());
        assert!(open(&k, "not a token", Timestamp::from_millis(1_000)).is_none());
    }

    #[test]
    fn a_reset_opens_only_as_a_reset_and_in_time() {
        let k = keys(7);
        let reset = Reset {
            user: UserId(uuid::Uuid::from_u128(9)),
            replaces: password_fingerprint("$argon2id$old"),
            expires_at: Timestamp::from_millis(2_000),
            mailed: true,
        };
        let token = seal_reset(&k, &reset).unwrap_or_else(|e| panic!("{e:?}"));
        let opened = open_reset(&k, &token, Timestamp::from_millis(1_000));
        assert_eq!(opened.map(|r| r.replaces), Some(reset.replaces.clone()));
        assert!(open_reset(&k, &token, Timestamp::from_millis(2_000)).is_none());
        assert!(open_reset(&keys(8), &token, Timestamp::from_millis(1_000)).is_none());
        // A registration's token is no reset, nor the other way round.
        let reg = seal(&k, &pending(2_000)).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(open_reset(&k, &reg, Timestamp::from_millis(1_000)).is_none());
        assert!(open(&k, &token, Timestamp::from_millis(1_000)).is_none());
        // The fingerprint tells passwords apart and does not contain the hash.
        assert_ne!(
            password_fingerprint("$argon2id$a"),
            password_fingerprint("$argon2id$b")
        );
        assert!(!password_fingerprint("$argon2id$a").contains("argon2"));
    }
}
