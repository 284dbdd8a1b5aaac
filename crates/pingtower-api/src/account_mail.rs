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
//!
//! Links are built from `PINGTOWER_PUBLIC_URL` only, never from a request's `Host` (which a
//! caller chooses, and would receive the link).

use crate::Problem;
use pingtower_core::{TenantId, Timestamp};
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

/// A registration waiting for its email to be proven, carried sealed in the link.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pending {
    pub email: String,
    /// The password chosen at registration (argon2 PHC string).
    pub password_hash: String,
    pub tenant_name: String,
    pub expires_at: Timestamp,
}

/// Registrations are sealed under an id no tenant has, so that nothing sealed for a tenant
/// opens as one.
fn scope() -> TenantId {
    TenantId(uuid::Uuid::nil())
}

/// The link's token for `pending`.
pub fn seal(keys: &Keys, pending: &Pending) -> Result<String, Problem> {
    use base64::Engine;
    let plain = serde_json::to_vec(pending)
        .map_err(|e| Problem::internal(format_args!("encoding a registration failed: {e}")))?;
    let sealed = keys
        .seal(scope(), &plain)
        .map_err(|e| Problem::internal(format_args!("sealing a registration failed: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
}

/// The registration in a link's token, while it is valid (`None`: forged, damaged or expired).
pub fn open(keys: &Keys, token: &str, now: Timestamp) -> Option<Pending> {
    use base64::Engine;
    // A sealed registration is a few hundred bytes.
    if token.len() > 4096 {
        return None;
    }
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let plain = keys.open(scope(), &sealed).ok()?;
    let pending: Pending = serde_json::from_slice(&plain).ok()?;
    (now < pending.expires_at).then_some(pending)
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
}
