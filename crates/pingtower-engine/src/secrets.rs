//! Keys derived from the installation's secret key: one signs login tokens, one encrypts
//! stored credentials (channel passwords, tokens, webhook URLs).
//!
//! Invariants: the secret key itself is never used directly, only keys derived from it with
//! HKDF-SHA256 under distinct labels; a sealed value is bound to its tenant (the tenant id is
//! the AEAD's associated data), so a ciphertext copied into another tenant's row does not open.

use pingtower_core::TenantId;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use ring::rand::{SecureRandom, SystemRandom};

const SEALED_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret key must be 32 bytes")]
    KeyLength,
    #[error("the system random generator failed")]
    Random,
    /// Wrong key, another tenant's value, or damaged data.
    #[error("a stored credential could not be decrypted (was the secret key changed?)")]
    Open,
}

/// The keys of one installation. Cheap to clone.
#[derive(Clone)]
pub struct Keys {
    token_key: std::sync::Arc<[u8; 32]>,
    sealing: std::sync::Arc<LessSafeKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(prk: &Prk, label: &[u8]) -> Result<[u8; 32], SecretError> {
    let info = [label];
    let okm = prk
        .expand(&info, Len(32))
        .map_err(|_| SecretError::KeyLength)?;
    let mut out = [0u8; 32];
    okm.fill(&mut out).map_err(|_| SecretError::KeyLength)?;
    Ok(out)
}

impl Keys {
    pub fn new(secret_key: &[u8]) -> Result<Self, SecretError> {
        if secret_key.len() != 32 {
            return Err(SecretError::KeyLength);
        }
        let prk = Salt::new(HKDF_SHA256, b"pingtower").extract(secret_key);
        let token_key = derive(&prk, b"pingtower login tokens v1")?;
        let sealing_key = derive(&prk, b"pingtower stored credentials v1")?;
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &sealing_key)
            .map_err(|_| SecretError::KeyLength)?;
        Ok(Self {
            token_key: std::sync::Arc::new(token_key),
            sealing: std::sync::Arc::new(LessSafeKey::new(unbound)),
            rng: SystemRandom::new(),
        })
    }

    /// The key that signs login tokens (HMAC-SHA256).
    pub fn token_key(&self) -> &[u8] {
        self.token_key.as_slice()
    }

    /// Encrypts `plain` for `tenant`: version, random nonce, ciphertext and tag.
    pub fn seal(&self, tenant: TenantId, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut buf = plain.to_vec();
        self.sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(tenant.0.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`Keys::seal`] made for the same tenant.
    pub fn open(&self, tenant: TenantId, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretError::Open)?;
        if version != SEALED_VERSION || rest.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut buf = body.to_vec();
        let plain = self
            .sealing
            .open_in_place(nonce, Aad::from(tenant.0.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Open)?;
        Ok(plain.to_vec())
    }
}

/// A monitor's settings that are credentials: sealed at rest inside its settings (under
/// [`SEALED_FIELD`]), never returned by the API, opened only by the worker that runs its check
/// and by an update that merges a change.
pub const MONITOR_SECRET_FIELDS: &[&str] =
    &["basic_auth_password", "bearer_token", "headers", "proxy"];

/// The settings field that holds a monitor's sealed credentials:
/// `{"set": [names], "data": "<hex of the sealed JSON object>"}`.
pub const SEALED_FIELD: &str = "sealed";

/// The names of the credentials sealed in a monitor's settings.
pub fn sealed_names(settings: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    settings
        .get(SEALED_FIELD)
        .and_then(|s| s.get("set"))
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Keys {
    /// Moves a monitor's credentials out of `settings` into its sealed field (replacing what
    /// was sealed there).
    pub fn seal_settings(
        &self,
        tenant: TenantId,
        settings: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), SecretError> {
        settings.remove(SEALED_FIELD);
        let mut secrets = serde_json::Map::new();
        for field in MONITOR_SECRET_FIELDS {
            if let Some(v) = settings.remove(*field) {
                secrets.insert((*field).to_owned(), v);
            }
        }
        if secrets.is_empty() {
            return Ok(());
        }
        let plain = serde_json::to_vec(&secrets).map_err(|_| SecretError::Open)?;
        let sealed = self.seal(tenant, &plain)?;
        let names: Vec<&String> = secrets.keys().collect();
        settings.insert(
            SEALED_FIELD.to_owned(),
            serde_json::json!({"set": names, "data": hex::encode(sealed)}),
        );
        Ok(())
    }

    /// A monitor's settings with its credentials opened in place of its sealed field.
    pub fn open_settings(
        &self,
        tenant: TenantId,
        settings: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SecretError> {
        let mut out = settings.clone();
        let Some(sealed) = out.remove(SEALED_FIELD) else {
            return Ok(out);
        };
        let data = sealed
            .get("data")
            .and_then(serde_json::Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .ok_or(SecretError::Open)?;
        let plain = self.open(tenant, &data)?;
        let secrets: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&plain).map_err(|_| SecretError::Open)?;
        for (k, v) in secrets {
            out.entry(k).or_insert(v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_credentials_seal_into_settings_and_open_for_their_tenant_only() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let tenant = TenantId::new();
        let mut settings = serde_json::json!({"url": "https://x.test", "bearer_token": "t0k3n",
            "headers": {"X-Api-Key": "k3y"}})
        .as_object()
        .unwrap()
        .clone();
        let plain = settings.clone();
        keys.seal_settings(tenant, &mut settings).unwrap();
        let text = serde_json::to_string(&settings).unwrap();
        assert!(!text.contains("t0k3n") && !text.contains("k3y"), "{text}");
        assert_eq!(sealed_names(&settings), ["bearer_token", "headers"]);
        assert_eq!(keys.open_settings(tenant, &settings).unwrap(), plain);
        assert_eq!(
            keys.open_settings(TenantId::new(), &settings).unwrap_err(),
            SecretError::Open
        );
        // Nothing to seal: nothing added.
        let mut bare = serde_json::json!({"url": "https://x.test"})
            .as_object()
            .unwrap()
            .clone();
        keys.seal_settings(tenant, &mut bare).unwrap();
        assert!(!bare.contains_key(SEALED_FIELD));
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_tenant() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let tenant = TenantId::new();
        let sealed = keys.seal(tenant, b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(keys.open(tenant, &sealed).unwrap(), b"hunter2");
        assert_eq!(keys.open(TenantId::new(), &sealed), Err(SecretError::Open));
        let other = Keys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.open(tenant, &sealed), Err(SecretError::Open));
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(keys.open(tenant, &damaged), Err(SecretError::Open));
        assert_ne!(
            keys.seal(tenant, b"hunter2").unwrap(),
            sealed,
            "nonces differ"
        );
    }

    #[test]
    fn derived_keys_differ_and_the_key_length_is_checked() {
        let keys = Keys::new(&[1u8; 32]).unwrap();
        assert_ne!(keys.token_key(), &[1u8; 32]);
        assert_eq!(Keys::new(&[0u8; 16]).unwrap_err(), SecretError::KeyLength);
    }
}
