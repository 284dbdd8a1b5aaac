//! Tokens from an OpenID Connect provider (a Keycloak realm, or any other).
//!
//! With `PINGTOWER_OIDC_ISSUER` set, a bearer token that is not one of PingTower's own is checked
//! against the provider: its discovery document names the JWKS; keys are cached by `kid` and the
//! JWKS is fetched again when a token names a key the cache lacks (key rotation), at most once
//! per `refresh_interval`. The issuer, the audience and the expiry are checked; the roles claim
//! (`realm_access.roles` by default, or e.g. `groups`) gives the PingTower role: `owner`, `admin`,
//! `editor` or `viewer`, bare or prefixed `pingtower-`/`pingtower_`; the highest one wins. The
//! account is found by its `email` claim, and made on first use, a member of the tenant the
//! `pingtower_tenant` claim names (a tenant id) or else of the installation's first tenant.

use crate::Problem;
use crate::auth::{forbidden, unauthorized};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pingtower_core::{Role, TenantId, User};
use pingtower_store::{NewUser, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// What PingTower needs to know of the provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    /// The `aud` a token must carry (the client id when not set apart).
    pub audience: String,
    /// Dotted path of the roles (or groups) claim.
    pub roles_claim: String,
    /// Shortest time between two JWKS fetches caused by unknown key ids.
    pub refresh_interval: Duration,
    /// The web UI's client (authorization-code flow with PKCE); none: no browser login.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl OidcConfig {
    pub fn new(issuer: &str, audience: &str, roles_claim: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: audience.to_owned(),
            roles_claim: roles_claim.to_owned(),
            refresh_interval: Duration::from_secs(10),
            client_id: None,
            client_secret: None,
        }
    }

    /// With the web UI's client, for browser login.
    pub fn with_client(mut self, id: &str, secret: Option<&str>) -> Self {
        self.client_id = Some(id.to_owned());
        self.client_secret = secret.map(str::to_owned);
        self
    }
}

/// The endpoints the discovery document names.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub jwks_uri: String,
    pub authorization: Option<String>,
    pub token: Option<String>,
}

struct Cache {
    endpoints: Option<Endpoints>,
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Option<Instant>,
}

/// A provider whose tokens are accepted.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the OIDC provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the OIDC provider's {0} is not usable: {1}")]
    BadDocument(&'static str, String),
}

const TENANT_CLAIM: &str = "pingtower_tenant";

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        Ok(Self {
            config,
            http,
            cache: Mutex::new(Cache {
                endpoints: None,
                keys: HashMap::new(),
                fetched: None,
            }),
        })
    }

    async fn get_json(&self, url: &str, what: &'static str) -> Result<Value, OidcError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if !r.status().is_success() {
            return Err(OidcError::BadDocument(what, format!("HTTP {}", r.status())));
        }
        r.json()
            .await
            .map_err(|e| OidcError::BadDocument(what, e.to_string()))
    }

    /// Reads the discovery document and the JWKS now (start-up uses it to report a wrong
    /// issuer early; tokens use it when they name an unknown key).
    pub async fn refresh(&self) -> Result<usize, OidcError> {
        let mut cache = self.cache.lock().await;
        self.refresh_locked(&mut cache).await
    }

    async fn refresh_locked(&self, cache: &mut Cache) -> Result<usize, OidcError> {
        cache.fetched = Some(Instant::now());
        let jwks_uri = match &cache.endpoints {
            Some(e) => e.jwks_uri.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
                let doc = self.get_json(&url, "discovery document").await?;
                if doc["issuer"].as_str().map(|i| i.trim_end_matches('/'))
                    != Some(self.config.issuer.as_str())
                {
                    return Err(OidcError::BadDocument(
                        "discovery document",
                        format!("its issuer is {}", doc["issuer"]),
                    ));
                }
                let uri = doc["jwks_uri"]
                    .as_str()
                    .ok_or(OidcError::BadDocument(
                        "discovery document",
                        "no jwks_uri".into(),
                    ))?
                    .to_owned();
                cache.endpoints = Some(Endpoints {
                    jwks_uri: uri.clone(),
                    authorization: doc["authorization_endpoint"].as_str().map(str::to_owned),
                    token: doc["token_endpoint"].as_str().map(str::to_owned),
                });
                uri
            }
        };
        let jwks = self.get_json(&jwks_uri, "JWKS").await?;
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks)
            .map_err(|e| OidcError::BadDocument("JWKS", e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match jwk.common.key_algorithm {
                Some(a) => {
                    let name = serde_json::to_value(a)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned));
                    match name.and_then(|n| n.parse::<Algorithm>().ok()) {
                        Some(alg) => alg,
                        None => continue,
                    }
                }
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => continue,
                },
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, alg));
            }
        }
        cache.keys = keys;
        Ok(cache.keys.len())
    }

    /// The key a token names; fetches the JWKS again for an unknown one, if allowed.
    async fn key(&self, kid: &str) -> Result<Option<(DecodingKey, Algorithm)>, OidcError> {
        let mut cache = self.cache.lock().await;
        if let Some(k) = cache.keys.get(kid) {
            return Ok(Some(k.clone()));
        }
        let may_refresh = cache
            .fetched
            .is_none_or(|t| t.elapsed() >= self.config.refresh_interval);
        if !may_refresh {
            return Ok(None);
        }
        self.refresh_locked(&mut cache).await?;
        Ok(cache.keys.get(kid).cloned())
    }

    /// The provider's endpoints (reading its discovery document if need be).
    pub async fn endpoints(&self) -> Result<Endpoints, OidcError> {
        let mut cache = self.cache.lock().await;
        if cache.endpoints.is_none() {
            self.refresh_locked(&mut cache).await?;
        }
        cache.endpoints.clone().ok_or(OidcError::BadDocument(
            "discovery document",
            "missing".into(),
        ))
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The HTTP client that talks to the provider.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Checks a provider's access token (audience: the API's); answers its claims.
    pub async fn verify(&self, token: &str) -> Result<Value, Problem> {
        let audience = self.config.audience.clone();
        self.verify_for(token, &audience).await
    }

    /// Checks a provider's token for `audience` (an ID token's is the client id).
    pub async fn verify_for(&self, token: &str, audience: &str) -> Result<Value, Problem> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed token"))?;
        let kid = header
            .kid
            .ok_or_else(|| unauthorized("the token names no key (kid)"))?;
        let (key, alg) = self
            .key(&kid)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "OIDC provider");
                crate::Problem::unavailable("the identity provider cannot be reached")
            })?
            .ok_or_else(|| unauthorized("the token is signed with an unknown key"))?;
        if header.alg != alg {
            return Err(unauthorized("the token's algorithm is not its key's"));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                unauthorized(match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::InvalidIssuer => "the token is from another issuer",
                    K::InvalidAudience => "the token is for another audience",
                    _ => "the token is invalid",
                })
            })
    }

    /// The PingTower role the token's roles claim gives, if any.
    pub fn role(&self, claims: &Value) -> Option<Role> {
        let mut v = claims;
        for part in self.config.roles_claim.split('.') {
            v = v.get(part)?;
        }
        v.as_array()?
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|r| {
                let r = r.trim_start_matches('/');
                let r = r
                    .strip_prefix("pingtower-")
                    .or_else(|| r.strip_prefix("pingtower_"))
                    .unwrap_or(r);
                r.parse::<Role>().ok()
            })
            .max_by_key(|r| r.rank())
    }

    /// The account and tenant of a verified token, made or updated on the way.
    pub async fn account(
        &self,
        store: &dyn Store,
        claims: &Value,
    ) -> Result<(User, TenantId), Problem> {
        let role = self.role(claims).ok_or_else(|| {
            forbidden(format!(
                "your identity provider gives you no PingTower role in `{}`",
                self.config.roles_claim
            ))
        })?;
        let email = claims["email"]
            .as_str()
            .filter(|e| e.contains('@'))
            .ok_or_else(|| forbidden("the token carries no email claim"))?;
        let now = pingtower_engine::now();
        let user = match store.find_user_by_email(email).await? {
            // The provider proves the email: an account someone else made for it (registered,
            // or given a password by an admin or by whoever held an invitation link) loses that
            // password and its sessions, so nobody else shares it.
            Some(u) if !u.email_verified => {
                store.set_password(u.id, None, true).await?;
                store.revoke_sessions_of_user(u.id, None, now).await?;
                tracing::info!(user = %u.id, "a provider's login proved an account's email; its password was removed");
                store.get_user(u.id).await?
            }
            Some(u) => u,
            None => {
                let name = claims["name"].as_str().map(str::to_owned);
                match store
                    .create_user(
                        &NewUser {
                            email: email.to_owned(),
                            display_name: name,
                            password_hash: None,
                            platform_admin: false,
                        },
                        now,
                    )
                    .await
                {
                    Ok(u) => u,
                    // Made meanwhile by a concurrent request.
                    Err(pingtower_store::StoreError::Conflict(_)) => {
                        store.find_user_by_email(email).await?.ok_or_else(|| {
                            Problem::internal("a user that conflicted on creation is not found")
                        })?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let tenant = match claims[TENANT_CLAIM].as_str() {
            Some(t) => {
                let id: TenantId = t
                    .parse()
                    .map_err(|_| forbidden("the token's pingtower_tenant is not a tenant id"))?;
                store
                    .get_tenant(id)
                    .await
                    .map_err(|_| forbidden("the token's pingtower_tenant does not exist"))?
                    .id
            }
            None => {
                let tenants = store.list_tenants().await?;
                tenants
                    .iter()
                    .min_by_key(|t| t.created_at)
                    .ok_or_else(|| forbidden("there is no tenant yet; finish setup first"))?
                    .id
            }
        };
        let current = store
            .memberships_of_user(user.id)
            .await?
            .into_iter()
            .find(|m| m.tenant_id == tenant)
            .map(|m| m.role);
        if current != Some(role) {
            store.set_membership(tenant, user.id, role, now).await?;
        }
        Ok((user, tenant))
    }
}
