//! Who is calling, and what they may do.
//!
//! A request carries `Authorization: Bearer …` with either a login token (a JWT signed with a
//! key derived from the installation's secret key, HS256, naming the user and a tenant) or an
//! API key (`ptk_<prefix>_<secret>`: the prefix finds the key, the SHA-256 of the secret must
//! match, compared in constant time). Roles are read from the store on every request, so a
//! changed or removed membership takes effect at once, not when a token expires.
//!
//! Invariants: a password is only ever hashed with argon2id (on the blocking pool); a secret
//! (password, token, API key) is never logged; a caller who is not a member of a tenant cannot
//! tell its resources from missing ones.

use crate::{AppState, Problem};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use pingtower_core::{ApiKey, Role, SessionId, TenantId, Timestamp, User, UserId};
use pingtower_engine::secrets::Keys;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Header that picks the tenant a user acts in (a user may belong to several).
pub const TENANT_HEADER: &str = "x-tenant-id";
const ISSUER: &str = "pingtower";
const API_KEY_PREFIX: &str = "ptk_";

/// What authentication needs beyond the store.
pub struct AuthState {
    pub keys: Keys,
    pub token_ttl: Duration,
    /// Failed logins per source address.
    pub login_failures_by_source: Limiter,
    /// Failed logins per (source address, email): an attacker guessing one account's password
    /// is slowed without locking its owner out from elsewhere.
    pub login_failures_by_account: Limiter,
    /// Pushes per source address.
    pub pushes_by_source: Limiter,
    /// Serializes first-run setup, so two racing requests cannot both create an owner.
    pub setup_lock: tokio::sync::Mutex<()>,
    /// An OpenID Connect provider whose tokens are accepted too.
    pub oidc: Option<crate::oidc::Oidc>,
    /// Whether anyone may register, getting a tenant of their own.
    pub registration_open: bool,
    /// Registrations per source address.
    pub registrations_by_source: Limiter,
    /// Password reset requests per source address (forgot password).
    pub resets_by_source: Limiter,
    /// Reset mails per account and asking address (or per account, from its admins), so
    /// nobody fills a mailbox with them nor uses up the owner's.
    pub reset_mails_by_user: Limiter,
    /// Session cookies carry `Secure` (the server is reached over HTTPS: its public URL is
    /// https).
    pub secure_cookies: bool,
    /// The installation's mail: registrations are confirmed and invitations sent by email.
    /// `None`: no mail (see [`crate::account_mail`]).
    pub mail: Option<crate::account_mail::AccountMail>,
    /// `PINGTOWER_PUBLIC_URL` (without a trailing `/`): where people reach the server, for
    /// the links pages show (a heartbeat's push URL). `None`: the request's host.
    pub public_url: Option<String>,
}

impl AuthState {
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            token_ttl: Duration::from_secs(12 * 3600),
            login_failures_by_source: Limiter::new(50, Duration::from_secs(900)),
            login_failures_by_account: Limiter::new(5, Duration::from_secs(900)),
            pushes_by_source: Limiter::new(6_000, Duration::from_secs(60)),
            setup_lock: tokio::sync::Mutex::new(()),
            oidc: None,
            registration_open: false,
            registrations_by_source: Limiter::new(10, Duration::from_secs(3600)),
            resets_by_source: Limiter::new(10, Duration::from_secs(3600)),
            reset_mails_by_user: Limiter::new(3, Duration::from_secs(3600)),
            secure_cookies: false,
            mail: None,
            public_url: None,
        }
    }

    /// Accepts an OIDC provider's tokens as well.
    pub fn with_oidc(mut self, oidc: crate::oidc::Oidc) -> Self {
        self.oidc = Some(oidc);
        self
    }
}

/// Counts events per key in fixed windows; a key over its limit is refused until its window
/// ends.
pub struct Limiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

const LIMITER_MAX_KEYS: usize = 100_000;

impl Limiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` while `key` is over its limit; counts nothing.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        match self.lock().get(key) {
            Some((start, n)) if *n >= self.limit && now.duration_since(*start) < self.window => {
                Err(self.window - now.duration_since(*start))
            }
            _ => Ok(()),
        }
    }

    /// Counts one event for `key`; `Err(wait)` when that puts it over its limit.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut counts = self.lock();
        if counts.len() >= LIMITER_MAX_KEYS {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > self.limit {
            Err(self.window - now.duration_since(entry.0))
        } else {
            Ok(())
        }
    }
}

impl Limiter {
    /// Takes back one event counted for `key` (an attempt counted before it was known to be
    /// good, which was).
    pub fn refund(&self, key: &str) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// 429 with `Retry-After`.
pub fn too_many(wait: Duration) -> Problem {
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
    )
    .with_detail("too many attempts from this source; retry later");
    p.retry_after = Some(wait.as_secs().max(1));
    p
}

pub fn unauthorized(detail: &str) -> Problem {
    let mut p = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
    )
    .with_detail(detail);
    p.challenge = true;
    p
}

pub fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").with_detail(detail)
}

// ---- passwords -----------------------------------------------------------------------------

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// Password hashes computed at once: each takes about 19 MiB and a core for tens of
/// milliseconds, so unbounded, a burst of logins took the server from 65 to 620 MB.
const HASHING_AT_ONCE: usize = 4;
/// Hashes waiting for their turn; past this, the request is answered 503 with `Retry-After`.
const HASHING_QUEUE: usize = 64;

/// A bound on password hashes: a few run at once, a few more wait, the rest are refused. The
/// permits go with the work onto the blocking pool, so a request that goes away (a client that
/// disconnects) keeps its place until its hash has really finished.
struct Hashing {
    queue: std::sync::Arc<tokio::sync::Semaphore>,
    running: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Hashing {
    fn new(at_once: usize, waiting: usize) -> Self {
        Self {
            queue: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once + waiting)),
            running: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once)),
        }
    }

    /// Runs `work` (a password hash) on the blocking pool in turn; a full queue is a 503.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Problem> {
        let Ok(place) = self.queue.clone().try_acquire_owned() else {
            let mut p = Problem::unavailable("too many logins at once; retry in a second");
            p.retry_after = Some(1);
            return Err(p);
        };
        let turn = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Problem::internal(format_args!("the hashing queue closed: {e}")))?;
        // Both permits go with the work: a request that goes away while its hash runs does
        // not free its place before the hash is done.
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop((turn, place));
            out
        })
        .await
        .map_err(|e| Problem::internal(format_args!("a password hash failed: {e}")))
    }
}

static HASHING: std::sync::LazyLock<Hashing> =
    std::sync::LazyLock::new(|| Hashing::new(HASHING_AT_ONCE, HASHING_QUEUE));

async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Problem> {
    HASHING.run(work).await
}

/// Hashes a password with argon2id (PHC string), on the blocking pool.
pub async fn hash_password(password: String) -> Result<String, Problem> {
    hashing(move || {
        use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| Problem::internal(format_args!("hashing a password failed: {e}")))
}

/// Whether `password` matches `hash`. Without a hash, a dummy verification still runs, so the
/// answer takes as long for a missing account as for a wrong password.
pub async fn verify_password(hash: Option<String>, password: String) -> Result<bool, Problem> {
    hashing(move || {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J5Ow6xk+Nl6oR9tbOBnhLlHo2Wn0Brq1FGVp+bm3bgo";
        let (stored, real) = match hash.as_deref() {
            Some(h) => (h, true),
            None => (DUMMY, false),
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
}

// ---- login tokens --------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: uuid::Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tid: Option<uuid::Uuid>,
    /// The session: the token works while it is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<uuid::Uuid>,
    iat: i64,
    exp: i64,
}

/// A new login session for `user` and its signed token, acting in `tenant` unless a request
/// names another.
pub async fn issue_token(
    auth: &AuthState,
    store: &dyn pingtower_store::Store,
    user: UserId,
    tenant: Option<TenantId>,
    now: Timestamp,
) -> Result<(String, Timestamp), Problem> {
    let ttl_ms = i64::try_from(auth.token_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = pingtower_core::Session {
        id: SessionId::new(),
        user_id: user,
        created_at: now,
        expires_at: now.add_millis(ttl_ms),
        revoked_at: None,
    };
    store.create_session(&session).await?;
    sign_token(auth, user, tenant, Some(session.id), now)
}

/// Signs a login token naming `session`.
fn sign_token(
    auth: &AuthState,
    user: UserId,
    tenant: Option<TenantId>,
    session: Option<SessionId>,
    now: Timestamp,
) -> Result<(String, Timestamp), Problem> {
    let ttl_ms = i64::try_from(auth.token_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires = now.add_millis(ttl_ms);
    let claims = Claims {
        iss: ISSUER.into(),
        aud: ISSUER.into(),
        sub: user.0,
        tid: tenant.map(|t| t.0),
        sid: session.map(|s| s.0),
        iat: now.as_millis() / 1000,
        exp: expires.as_millis() / 1000,
    };
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(auth.keys.token_key()),
    )
    .map_err(|e| Problem::internal(format_args!("signing a token failed: {e}")))?;
    Ok((token, expires))
}

/// Whether a token is one of PingTower's own (signed HS256 with the installation's key);
/// providers sign with asymmetric keys.
fn is_local_token(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.alg == jsonwebtoken::Algorithm::HS256)
}

fn verify_token(auth: &AuthState, token: &str) -> Option<Claims> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[ISSUER]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(auth.keys.token_key()),
        &validation,
    )
    .ok()
    .map(|d| d.claims)
}

// ---- API keys ------------------------------------------------------------------------------

/// A new key: its public prefix, the SHA-256 of its secret, and the whole key to show once.
pub fn new_api_key() -> (String, Vec<u8>, String) {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    let mut rng = rand::rng();
    let prefix: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let full = format!("{API_KEY_PREFIX}{prefix}_{secret}");
    (prefix, hash_secret(&secret), full)
}

pub(crate) fn hash_secret(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// A random secret of `len` letters and digits (invitation tokens).
pub(crate) fn random_secret(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn split_api_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    rest.split_once('_')
}

// ---- the caller ----------------------------------------------------------------------------

/// An authenticated caller, before a tenant is chosen.
#[derive(Debug, Clone)]
pub enum Caller {
    User {
        user: User,
        /// The tenant the token was issued for.
        token_tenant: Option<TenantId>,
        /// The login session (none for an OIDC provider's tokens).
        session: Option<SessionId>,
        /// When the token stops working (a long request, such as the live stream, ends then).
        expires_at: Option<Timestamp>,
    },
    Key(ApiKey),
}

impl Caller {
    /// How the audit log and timelines name this caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::User { user, .. } => user.email.clone(),
            Caller::Key(key) => format!("api-key:{}", key.name),
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::User { user, .. } => Some(user),
            Caller::Key(_) => None,
        }
    }

    pub fn platform_admin(&self) -> bool {
        self.user().is_some_and(|u| u.platform_admin)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The cookie of a browser session (the web UI): the same signed token, HttpOnly,
/// SameSite=Lax: a link followed from a chat message or an email arrives logged in (pages only
/// read), while every change also needs the CSRF token, which another site cannot obtain.
pub const SESSION_COOKIE: &str = "pingtower_session";
/// Header that must carry the session's CSRF token on every request that changes something.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of the cookie `name` of a request, if it has one.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The session cookie of a request, if it has one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The CSRF token of a session: an HMAC of the session token under the token key, so the
/// server keeps no state and another site, which cannot read the answer that gave it, cannot
/// forge it.
pub fn csrf_token(auth: &AuthState, session: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, auth.keys.token_key());
    hex::encode(ring::hmac::sign(&key, format!("csrf:{session}").as_bytes()).as_ref())
}

/// `Set-Cookie` for a new session, or (with `None`) to end one; `Secure` when the server is
/// reached over HTTPS.
pub fn session_set_cookie(auth: &AuthState, token: Option<&str>, max_age_secs: u64) -> String {
    let secure = if auth.secure_cookies { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    /// Who calls; a key with the `ingest` role is refused here (it reaches ingestion only,
    /// through [`crate::analytics::Ingestor`], which uses [`Caller::authenticate`]).
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = Self::authenticate(parts, state).await?;
        if let Caller::Key(key) = &caller {
            crate::analytics::refuse_ingest_only(key.role)?;
        }
        Ok(caller)
    }
}

impl Caller {
    /// Who calls, whatever their role.
    pub(crate) async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let cookie;
        let token = match bearer(parts) {
            Some(t) => t,
            None => {
                cookie = session_cookie(&parts.headers).ok_or_else(|| {
                    unauthorized("send `Authorization: Bearer` with a login token or an API key")
                })?;
                // A browser sends cookies with requests other sites make: a change needs the
                // session's CSRF token too.
                let safe = matches!(
                    parts.method,
                    axum::http::Method::GET
                        | axum::http::Method::HEAD
                        | axum::http::Method::OPTIONS
                );
                if !safe {
                    use subtle::ConstantTimeEq;
                    let expected = csrf_token(&state.auth, &cookie);
                    let sent = parts
                        .headers
                        .get(CSRF_HEADER)
                        .map(|v| v.as_bytes().to_vec())
                        .unwrap_or_default();
                    if !bool::from(sent.ct_eq(expected.as_bytes())) {
                        return Err(forbidden(
                            "a session needs its CSRF token in `X-CSRF-Token` to change anything",
                        ));
                    }
                }
                if split_api_key(&cookie).is_some() {
                    return Err(unauthorized("an API key is not a session"));
                }
                cookie.as_str()
            }
        };
        let now = pingtower_engine::now();
        let caller = if let Some((prefix, secret)) = split_api_key(token) {
            let key = state
                .store
                .find_api_key_by_prefix(prefix)
                .await?
                .filter(|k| {
                    use subtle::ConstantTimeEq;
                    bool::from(k.secret_hash.ct_eq(&hash_secret(secret)))
                })
                .ok_or_else(|| unauthorized("unknown API key"))?;
            if !key.is_usable(now) {
                return Err(unauthorized("the API key is revoked or expired"));
            }
            // It acts with at most its creator's current role; a key whose creator left its
            // tenant works nowhere, not even for `/auth/me`.
            let role = key_role(state, &key).await?;
            let key = ApiKey { role, ..key };
            // Last use is kept to the minute: one write per key per minute, not per request.
            if key
                .last_used_at
                .is_none_or(|t| now.as_millis() - t.as_millis() >= 60_000)
                && let Err(e) = state.store.touch_api_key(key.id, now).await
            {
                tracing::warn!(error = %e, "recording an API key's last use failed");
            }
            Caller::Key(key)
        } else if let Some(oidc) = state.auth.oidc.as_ref().filter(|_| !is_local_token(token)) {
            let claims = oidc.verify(token).await?;
            let (user, tenant) = oidc.account(state.store.as_ref(), &claims).await?;
            // The provider checked `exp` is there (a required claim).
            let expires_at = claims
                .get("exp")
                .and_then(serde_json::Value::as_i64)
                .map(|s| Timestamp::from_millis(s.saturating_mul(1000)));
            Caller::User {
                user,
                token_tenant: Some(tenant),
                session: None,
                expires_at,
            }
        } else {
            let claims = verify_token(&state.auth, token)
                .ok_or_else(|| unauthorized("the token is invalid or expired; log in again"))?;
            // A token works only while its session does (logging out ends it).
            let session = claims
                .sid
                .map(SessionId)
                .ok_or_else(|| unauthorized("the token names no session; log in again"))?;
            let active = state
                .store
                .get_session(session)
                .await?
                .is_some_and(|s| s.user_id.0 == claims.sub && s.is_active(now));
            if !active {
                return Err(unauthorized("the session has ended; log in again"));
            }
            let user = match state.store.get_user(UserId(claims.sub)).await {
                Ok(user) => user,
                Err(pingtower_store::StoreError::NotFound) => {
                    return Err(unauthorized("the token's user no longer exists"));
                }
                Err(e) => return Err(e.into()),
            };
            Caller::User {
                user,
                token_tenant: claims.tid.map(TenantId),
                session: Some(session),
                expires_at: Some(Timestamp::from_millis(claims.exp.saturating_mul(1000))),
            }
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// A caller acting in one tenant with one role.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub role: Role,
    pub caller: Caller,
}

impl Principal {
    /// 403 unless the caller's role includes `role`.
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.role.at_least(role) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "this needs the {role} role; you are {} in this tenant",
                self.role
            )))
        }
    }

    pub fn actor(&self) -> String {
        self.caller.actor()
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.caller.user().map(|u| u.id)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let asked = match parts.headers.get(TENANT_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<TenantId>().ok())
                    .ok_or_else(|| {
                        Problem::new(StatusCode::BAD_REQUEST, "bad-header", "Bad header")
                            .with_detail(format!("`{TENANT_HEADER}` must be a tenant id"))
                    })?,
            ),
        };
        match &caller {
            Caller::Key(key) => {
                // (An `ingest` key was refused when the caller was read.)
                if asked.is_some_and(|t| t != key.tenant_id) {
                    return Err(forbidden("an API key acts only in its own tenant"));
                }
                Ok(Principal {
                    tenant: key.tenant_id,
                    // Already capped by its creator's role when the key was checked.
                    role: key.role,
                    caller,
                })
            }
            Caller::User {
                user, token_tenant, ..
            } => {
                let memberships = state.store.memberships_of_user(user.id).await?;
                let wanted = asked.or(*token_tenant);
                let membership = match wanted {
                    Some(t) => memberships.iter().find(|m| m.tenant_id == t),
                    None => memberships.first(),
                };
                let Some(m) = membership else {
                    return Err(forbidden(match wanted {
                        Some(_) => "you are not a member of this tenant",
                        None => "you are not a member of any tenant",
                    }));
                };
                crate::analytics::refuse_ingest_only(m.role)?;
                Ok(Principal {
                    tenant: m.tenant_id,
                    role: m.role,
                    caller,
                })
            }
        }
    }
}

/// The role an API key acts with: its own, but never more than its creator's current role in
/// its tenant; a key whose creator left the tenant (or is unknown) does not work.
async fn key_role(state: &AppState, key: &ApiKey) -> Result<Role, Problem> {
    let Some(creator) = key.created_by else {
        return Err(unauthorized(
            "this API key has no creator on record (it was made by another key before keys were tied to a person); make a new one",
        ));
    };
    let membership = state
        .store
        .memberships_of_user(creator)
        .await?
        .into_iter()
        .find(|m| m.tenant_id == key.tenant_id);
    match membership {
        Some(m) => Ok(lesser(key.role, m.role)),
        None => Err(unauthorized(
            "the API key's creator is no longer a member of its tenant",
        )),
    }
}

/// Whether a principal resolved earlier may still act (a long-lived answer, such as the live
/// event stream, asks again): its session active, its membership there, its key usable and its
/// creator still a member.
pub(crate) async fn still_allowed(state: &AppState, p: &Principal) -> bool {
    let now = pingtower_engine::now();
    match &p.caller {
        Caller::Key(key) => {
            let Ok(Some(current)) = state.store.find_api_key_by_prefix(&key.prefix).await else {
                return false;
            };
            current.is_usable(now) && key_role(state, &current).await.is_ok()
        }
        Caller::User {
            user,
            session,
            expires_at,
            ..
        } => {
            if expires_at.is_some_and(|e| now >= e) {
                return false;
            }
            if let Some(id) = session {
                let active = state
                    .store
                    .get_session(*id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.is_active(now));
                if !active {
                    return false;
                }
            }
            state
                .store
                .memberships_of_user(user.id)
                .await
                .is_ok_and(|ms| ms.iter().any(|m| m.tenant_id == p.tenant))
        }
    }
}

/// The lesser of two roles.
pub fn lesser(a: Role, b: Role) -> Role {
    if a.at_least(b) { b } else { a }
}

/// The source address of a request: the peer (proxies are not trusted); `None` when the
/// server was not started with connection info (tests that call the router directly).
pub struct Source(pub Option<IpAddr>);

impl Source {
    /// A key for rate limits.
    pub fn key(&self) -> String {
        self.0
            .map_or_else(|| "local".to_owned(), |ip| ip.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_over_the_limit_per_key() {
        let l = Limiter::new(2, Duration::from_secs(60));
        assert!(l.hit("a").is_ok());
        assert!(l.check("a").is_ok());
        assert!(l.hit("a").is_ok());
        assert!(l.check("a").is_err());
        assert!(l.hit("a").is_err());
        assert!(l.hit("b").is_ok(), "another key is not slowed");
    }

    #[test]
    fn api_keys_split_and_hash() {
        let (prefix, hash, full) = new_api_key();
        let (p, secret) = split_api_key(&full).unwrap();
        assert_eq!(p, prefix);
        assert_eq!(hash_secret(secret), hash);
        assert!(split_api_key("eyJhbGciOi.x.y").is_none());
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password(Some(hash.clone()), "correct horse".into())
                .await
                .unwrap()
        );
        assert!(!verify_password(Some(hash), "wrong".into()).await.unwrap());
        assert!(!verify_password(None, "anything".into()).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_hashing_is_bounded_and_a_full_queue_is_a_503() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        let bound = std::sync::Arc::new(Hashing::new(HASHING_AT_ONCE, HASHING_QUEUE));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (running, most, bound) = (running.clone(), most.clone(), bound.clone());
            tasks.push(tokio::spawn(async move {
                bound
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        let mut refused = 0;
        for t in tasks {
            if let Err(p) = t.await.unwrap() {
                assert_eq!(p.status, 503);
                assert_eq!(p.retry_after, Some(1));
                refused += 1;
            }
        }
        assert!(most.load(Ordering::SeqCst) <= HASHING_AT_ONCE);
        assert!(
            refused >= 100 - HASHING_QUEUE - HASHING_AT_ONCE,
            "{refused}"
        );
    }

    #[test]
    fn tokens_verify_only_with_the_key_and_before_expiry() {
        let auth = AuthState::new(Keys::new(&[3u8; 32]).unwrap());
        let user = UserId::new();
        let now = pingtower_engine::now();
        let (token, _) = sign_token(&auth, user, None, None, now).unwrap();
        assert_eq!(verify_token(&auth, &token).unwrap().sub, user.0);
        let other = AuthState::new(Keys::new(&[4u8; 32]).unwrap());
        assert!(verify_token(&other, &token).is_none());
        let (old, _) =
            sign_token(&auth, user, None, None, now.add_millis(-13 * 3_600_000)).unwrap();
        assert!(verify_token(&auth, &old).is_none());
    }
}
