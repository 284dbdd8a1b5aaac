//! Access management: login, first-run setup, the caller, API keys, members, tenants and the
//! audit log.

use crate::auth::{
    AuthState, Caller, MIN_PASSWORD, Principal, forbidden, hash_password, issue_token, too_many,
    verify_password,
};
use crate::http::{Created, audit, not_found_as, parse_id};
use crate::input::{Body, Fields, PageParams, Params};
use crate::{AppState, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pingtower_core::{
    ApiKey, ApiKeyId, AuditEntry, Membership, Role, Tenant, TenantId, Timestamp, User, UserId,
};
use pingtower_store::{NewUser, Store, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: TenantId,
    pub name: String,
    /// The caller's role there (absent for a platform administrator who is not a member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub created_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: UserId,
    pub email: String,
    pub display_name: Option<String>,
    pub platform_admin: bool,
    pub created_at: Timestamp,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            platform_admin: u.platform_admin,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOut {
    /// Send as `Authorization: Bearer`.
    pub token: String,
    pub expires_at: Timestamp,
    pub user: UserOut,
    pub tenants: Vec<TenantOut>,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct LoginIn {
    email: String,
    password: String,
    /// The tenant to act in; the first one otherwise.
    tenant_id: Option<TenantId>,
}

fn email_field(f: &mut Fields, field: &str) -> Option<String> {
    let email = f.required_str(field)?;
    let email = email.trim().to_owned();
    let ok = email
        .split_once('@')
        .is_some_and(|(u, h)| !u.is_empty() && !h.is_empty() && !h.contains('@'))
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace);
    if ok {
        Some(email)
    } else {
        f.err(field, "is not an email address");
        None
    }
}

fn password_field(f: &mut Fields, field: &str) -> Option<String> {
    let password = f.required_str(field)?;
    if password.chars().count() < MIN_PASSWORD || password.len() > 1024 {
        f.err(
            field,
            format!("must be {MIN_PASSWORD} to 1024 characters long"),
        );
        return None;
    }
    Some(password)
}

async fn tenants_of(store: &dyn Store, user: &User) -> Result<Vec<TenantOut>, Problem> {
    let mut out = Vec::new();
    for m in store.memberships_of_user(user.id).await? {
        let t = store.get_tenant(m.tenant_id).await?;
        out.push(TenantOut {
            id: t.id,
            name: t.name,
            role: Some(m.role),
            created_at: t.created_at,
        });
    }
    Ok(out)
}

async fn login_answer(
    state: &AppState,
    user: User,
    tenant: Option<TenantId>,
) -> Result<LoginOut, Problem> {
    let tenants = tenants_of(state.store.as_ref(), &user).await?;
    let tenant = tenant.or_else(|| tenants.first().map(|t| t.id));
    let (token, expires_at) = issue_token(
        &state.auth,
        state.store.as_ref(),
        user.id,
        tenant,
        pingtower_engine::now(),
    )
    .await?;
    Ok(LoginOut {
        token,
        expires_at,
        user: user.into(),
        tenants,
    })
}

/// Log in with email and password; answers a signed token that expires.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()),
    request_body = LoginIn,
    responses((status = 200, body = LoginOut), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    source: crate::auth::Source,
    Body(body): Body,
) -> Result<Json<LoginOut>, Problem> {
    let mut f = Fields::new(body);
    let email = f.required_str("email");
    let password = f.required_str("password");
    let tenant: Option<TenantId> = f.parsed("tenant_id");
    f.reject_rest("a login");
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    let ip = source.key();
    let account_key = format!("{ip}|{}", email.trim().to_lowercase());
    let limits: &AuthState = &state.auth;
    // Every attempt is counted before it is verified (and taken back if it was right), so
    // parallel attempts cannot all pass the check before any of them has failed.
    let by_source = limits.login_failures_by_source.hit(&ip);
    let by_account = limits.login_failures_by_account.hit(&account_key);
    let refund = || {
        limits.login_failures_by_source.refund(&ip);
        limits.login_failures_by_account.refund(&account_key);
    };
    if let Err(wait) = by_source.and(by_account) {
        refund();
        return Err(too_many(wait));
    }
    let user = state.store.find_user_by_email(&email).await;
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            refund();
            return Err(e.into());
        }
    };
    let ok = match verify_password(
        user.as_ref().and_then(|u| u.password_hash.clone()),
        password,
    )
    .await
    {
        Ok(ok) => ok,
        Err(busy) => {
            refund();
            return Err(busy);
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(source = %ip, "failed login");
        return Err(crate::auth::unauthorized("wrong email or password"));
    };
    refund();
    if let Some(t) = tenant {
        let member = state
            .store
            .memberships_of_user(user.id)
            .await?
            .iter()
            .any(|m| m.tenant_id == t);
        if !member {
            return Err(forbidden("you are not a member of this tenant"));
        }
    }
    Ok(Json(login_answer(&state, user, tenant).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// Send in `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    pub expires_at: Timestamp,
    pub user: UserOut,
    pub tenants: Vec<TenantOut>,
}

/// Log in for a browser session: the token goes into an HttpOnly, SameSite=Lax cookie, and
/// the answer carries the CSRF token that requests changing something must send.
#[utoipa::path(post, path = "/api/v1/auth/session", tag = "auth", security(()),
    request_body = LoginIn,
    responses((status = 200, body = SessionOut), (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn create_session(
    state: State<AppState>,
    source: crate::auth::Source,
    body: Body,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let Json(login) = login(state.clone(), source, body).await?;
    let ttl = state.auth.token_ttl.as_secs();
    let out = SessionOut {
        csrf_token: crate::auth::csrf_token(&state.auth, &login.token),
        expires_at: login.expires_at,
        user: login.user,
        tenants: login.tenants,
    };
    let cookie = crate::auth::session_set_cookie(&state.auth, Some(&login.token), ttl);
    let mut r = Json(out).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// End the current session: the login token (sent as a cookie or a bearer token) stops working
/// at once, and the cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/auth/session", tag = "auth", security(()),
    responses((status = 204)))]
pub async fn end_session(
    State(state): State<AppState>,
    caller: Result<Caller, Problem>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    if let Ok(Caller::User {
        user,
        session: Some(session),
        ..
    }) = &caller
    {
        state
            .store
            .revoke_session(user.id, *session, pingtower_engine::now())
            .await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&crate::auth::session_set_cookie(&state.auth, None, 0))
    {
        r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct PasswordIn {
    current_password: String,
    /// At least 8 characters.
    new_password: String,
}

/// Change one's password: the current one is needed; every other session ends.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth",
    request_body = PasswordIn,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    source: crate::auth::Source,
    caller: Caller,
    Body(body): Body,
) -> Result<StatusCode, Problem> {
    let Caller::User { user, session, .. } = &caller else {
        return Err(forbidden("an API key has no password"));
    };
    let mut f = Fields::new(body);
    let current = f.required_str("current_password");
    let new = password_field(&mut f, "new_password");
    f.reject_rest("a password change");
    f.finish()?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    // The same limits as logging in: this is a way to guess the password too.
    let key = format!("{}|{}", source.key(), user.email);
    let limits = &state.auth;
    if let Err(wait) = limits.login_failures_by_account.hit(&key) {
        limits.login_failures_by_account.refund(&key);
        return Err(too_many(wait));
    }
    let right = match verify_password(user.password_hash.clone(), current).await {
        Ok(right) => right,
        Err(busy) => {
            limits.login_failures_by_account.refund(&key);
            return Err(busy);
        }
    };
    if !right {
        return Err(crate::auth::unauthorized("the current password is wrong"));
    }
    limits.login_failures_by_account.refund(&key);
    let hash = hash_password(new).await?;
    state
        .store
        .set_password(user.id, Some(&hash), user.email_verified)
        .await?;
    let ended = state
        .store
        .revoke_sessions_of_user(user.id, *session, pingtower_engine::now())
        .await?;
    tracing::info!(user = %user.id, ended, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct ForgotIn {
    email: String,
}

/// What a reset request did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetSent {
    pub detail: String,
    /// The link itself: only for a platform administrator, on a server without mail, to pass
    /// on to the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The sealed reset link's token for an account with a password.
fn reset_token(state: &AppState, user: &User, mailed: bool) -> Result<Option<String>, Problem> {
    let Some(hash) = &user.password_hash else {
        return Ok(None);
    };
    let reset = crate::account_mail::Reset {
        user: user.id,
        replaces: crate::account_mail::password_fingerprint(hash),
        expires_at: pingtower_engine::now().add_millis(crate::account_mail::RESET_TTL_MS),
        mailed,
    };
    crate::account_mail::seal_reset(&state.auth.keys, &reset).map(Some)
}

/// Forgot password: mails a link that sets a new one (valid an hour, once) to the email, if it
/// has an account with a password. Answers `202` whatever the email. Needs the installation's
/// mail (`PINGTOWER_SMTP_URL`); without it, an administrator resets passwords.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", security(()),
    request_body = ForgotIn,
    responses((status = 202, body = ResetSent), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    source: crate::auth::Source,
    Body(body): Body,
) -> Result<(StatusCode, Json<ResetSent>), Problem> {
    let mut f = Fields::new(body);
    let email = email_field(&mut f, "email");
    f.reject_rest("a password reset");
    f.finish()?;
    let Some(email) = email else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    let Some(mail) = &state.auth.mail else {
        return Err(forbidden(
            "this server sends no mail: ask an administrator to reset your password",
        ));
    };
    state
        .auth
        .resets_by_source
        .hit(&source.key())
        .map_err(too_many)?;
    // An account gets a few reset mails an hour at most, whoever asks; past that the answer is
    // the same, and no mail goes.
    // Counted per account and asking address, so that strangers cannot use up the owner's.
    if let Some(user) = state.store.find_user_by_email(&email).await?
        && user.password_hash.is_some()
        && state
            .auth
            .reset_mails_by_user
            .hit(&format!("{}|{}", user.id, source.key()))
            .is_ok()
        && let Some(token) = reset_token(&state, &user, true)?
    {
        let (subject, text) = mail.reset(&token, None);
        mail.send_later(user.email.clone(), subject, text);
        tracing::info!(user = %user.id, "a password reset link was mailed");
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetSent {
            detail: "if this email has an account with a password, a link to choose a new one \
                     was sent to it"
                .into(),
            link: None,
        }),
    ))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct ResetIn {
    /// The token from the link (`/reset/<token>`).
    token: String,
    /// At least 8 characters.
    new_password: String,
}

/// Set a new password from a reset link: the link works once, within the hour; every session
/// of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", security(()),
    request_body = ResetIn,
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn reset_password(
    State(state): State<AppState>,
    source: crate::auth::Source,
    Body(body): Body,
) -> Result<StatusCode, Problem> {
    let mut f = Fields::new(body);
    let token = f.required_str("token");
    let new = password_field(&mut f, "new_password");
    f.reject_rest("a password reset");
    f.finish()?;
    let (Some(token), Some(new)) = (token, new) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    // Guessing links is slowed like guessing passwords.
    state
        .auth
        .login_failures_by_source
        .check(&source.key())
        .map_err(too_many)?;
    let now = pingtower_engine::now();
    let gone = || Problem::not_found("reset link (it may have expired or been used: ask again)");
    let Some(reset) = crate::account_mail::open_reset(&state.auth.keys, &token, now) else {
        let _ = state.auth.login_failures_by_source.hit(&source.key());
        return Err(gone());
    };
    let user = match state.store.get_user(reset.user).await {
        Ok(u) => u,
        Err(StoreError::NotFound) => return Err(gone()),
        Err(e) => return Err(e.into()),
    };
    let Some(old) = user
        .password_hash
        .as_deref()
        .filter(|h| crate::account_mail::password_fingerprint(h) == reset.replaces)
    else {
        return Err(gone());
    };
    let hash = hash_password(new).await?;
    // A link that came through the mailbox proves the email; one an administrator passed on
    // does not. Replaced only if no other use of the link got there first.
    let verified = user.email_verified || reset.mailed;
    if !state
        .store
        .replace_password(user.id, old, &hash, verified)
        .await?
    {
        return Err(gone());
    }
    let ended = state
        .store
        .revoke_sessions_of_user(user.id, None, now)
        .await?;
    tracing::info!(user = %user.id, ended, "password reset from a link; every session ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Send a member a link to choose a new password (admins): it goes to the member's own email,
/// never to the admin. On a server without mail only a platform administrator can reset, and
/// is given the link to pass on.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 202, body = ResetSent), (status = 201, body = ResetSent),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reset_member_password(
    State(state): State<AppState>,
    p: Principal,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ResetSent>), Problem> {
    p.require(Role::Admin)?;
    let id: UserId = parse_id(&id, "user")?;
    let member = membership(&state, &p, id).await?;
    // As with roles: only an owner acts on an owner.
    if member.role == Role::Owner && p.role != Role::Owner {
        return Err(forbidden("only an owner can reset an owner's password"));
    }
    let user = state.store.get_user(id).await?;
    let mailed = state.auth.mail.is_some();
    let Some(token) = reset_token(&state, &user, mailed)? else {
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
            .with_detail("this member logs in through single sign-on and has no password"));
    };
    if mailed
        && let Err(wait) = state
            .auth
            .reset_mails_by_user
            .hit(&format!("{}|admin", user.id))
    {
        return Err(too_many(wait));
    }
    let answer = if let Some(mail) = &state.auth.mail {
        let (subject, text) = mail.reset(&token, Some(&p.actor()));
        mail.send_later(user.email.clone(), subject, text);
        (
            StatusCode::ACCEPTED,
            ResetSent {
                detail: format!("a link to choose a new password was sent to {}", user.email),
                link: None,
            },
        )
    } else if p.caller.platform_admin() {
        // Shown to the one who asked only: their own request's host will do.
        let base = crate::web::base_url(&state, &headers);
        (
            StatusCode::CREATED,
            ResetSent {
                detail: "this server sends no mail: give this link (valid an hour, once) to the \
                         member yourself"
                    .into(),
                link: Some(crate::account_mail::reset_link(&base, &token)),
            },
        )
    } else {
        return Err(forbidden(
            "this server sends no mail: ask a platform administrator to reset the password",
        ));
    };
    audit(
        &state,
        &p,
        "member.password_reset",
        &format!("user:{id}"),
        None,
    )
    .await;
    Ok((answer.0, Json(answer.1)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEnded {
    /// How many other sessions were ended.
    pub ended: u64,
}

/// End every other session of one's account (on other devices and browsers).
#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, body = SessionsEnded), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SessionsEnded>, Problem> {
    let Caller::User { user, session, .. } = &caller else {
        return Err(forbidden(
            "an API key has no sessions; revoke the key instead",
        ));
    };
    let ended = state
        .store
        .revoke_sessions_of_user(user.id, *session, pingtower_engine::now())
        .await?;
    Ok(Json(SessionsEnded { ended }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupState {
    /// True until the first account exists.
    pub setup_needed: bool,
}

/// Whether first-run setup is still open.
#[utoipa::path(get, path = "/api/v1/setup", tag = "auth", security(()),
    responses((status = 200, body = SetupState)))]
pub async fn setup_state(State(state): State<AppState>) -> Result<Json<SetupState>, Problem> {
    Ok(Json(SetupState {
        setup_needed: state.store.count_users().await? == 0,
    }))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct SetupIn {
    email: String,
    /// At least 8 characters.
    password: String,
    /// The first tenant's name ("Default" when absent).
    tenant_name: Option<String>,
}

/// First-run setup: creates the owner account and the first tenant. Refused (409) once any
/// account exists.
#[utoipa::path(post, path = "/api/v1/setup", tag = "auth", security(()),
    request_body = SetupIn,
    responses((status = 201, body = LoginOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn setup(
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<LoginOut>), Problem> {
    let mut f = Fields::new(body);
    let email = email_field(&mut f, "email");
    let password = password_field(&mut f, "password");
    let tenant_name = f.str("tenant_name");
    let tenant_name = tenant_name.unwrap_or_else(|| "Default".into());
    if tenant_name.trim().is_empty() || tenant_name.chars().count() > 200 {
        f.err("tenant_name", "must be 1 to 200 characters");
    }
    f.reject_rest("setup");
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    let _guard = state.auth.setup_lock.lock().await;
    if state.store.count_users().await? > 0 {
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
            .with_detail("setup is done: an account exists; log in instead"));
    }
    let hash = hash_password(password).await?;
    let (user, tenant) = create_owner(
        state.store.as_ref(),
        &email,
        hash,
        tenant_name.trim(),
        true,
        pingtower_engine::now(),
    )
    .await?;
    tracing::info!(user = %user.id, tenant = %tenant.id, "first-run setup created the owner");
    Ok((
        StatusCode::CREATED,
        Json(login_answer(&state, user, Some(tenant.id)).await?),
    ))
}

/// Open self-registration (when the operator turned it on): a new account and a tenant of its
/// own, with the account as owner. With the installation's mail configured, the account is made
/// only from the link mailed to the email (`202` whatever the email: the answer never tells
/// whether it has an account); without, at once (`201`), and an email that has an account is
/// refused (`409`).
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", security(()),
    request_body = SetupIn,
    responses((status = 201, body = LoginOut), (status = 202, body = RegistrationPending),
        (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn register(
    State(state): State<AppState>,
    source: crate::auth::Source,
    Body(body): Body,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    if !state.auth.registration_open {
        return Err(forbidden(
            "registration is closed on this server; ask an administrator for an account",
        ));
    }
    let mut f = Fields::new(body);
    let email = email_field(&mut f, "email");
    let password = password_field(&mut f, "password");
    let tenant_name = f.str("tenant_name");
    if tenant_name
        .as_ref()
        .is_some_and(|t| t.trim().is_empty() || t.chars().count() > 200)
    {
        f.err("tenant_name", "must be 1 to 200 characters");
    }
    f.reject_rest("a registration");
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    state
        .auth
        .registrations_by_source
        .hit(&source.key())
        .map_err(too_many)?;
    let name = tenant_name.map_or_else(|| format!("{email}'s tenant"), |t| t.trim().to_owned());
    if let Some(mail) = &state.auth.mail {
        // Hashed first, whatever the email, so that the answer takes as long either way.
        let hash = hash_password(password).await?;
        let now = pingtower_engine::now();
        let (subject, text) = if state.store.find_user_by_email(&email).await?.is_some() {
            mail.already_registered()
        } else {
            let pending = crate::account_mail::Pending {
                email: email.clone(),
                password_hash: hash,
                tenant_name: name,
                expires_at: now.add_millis(crate::account_mail::CONFIRM_TTL_MS),
            };
            mail.confirmation(&crate::account_mail::seal(&state.auth.keys, &pending)?)
        };
        mail.send_later(email.clone(), subject, text);
        tracing::info!("self-registration: a confirmation was mailed");
        let out = RegistrationPending {
            email,
            detail: "a link to finish registering was sent to this email".into(),
        };
        return Ok((StatusCode::ACCEPTED, Json(out)).into_response());
    }
    if state.store.find_user_by_email(&email).await?.is_some() {
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
            .with_detail("an account with this email exists; log in instead"));
    }
    let hash = hash_password(password).await?;
    let (user, tenant) = create_owner(
        state.store.as_ref(),
        &email,
        hash,
        &name,
        false,
        pingtower_engine::now(),
    )
    .await?;
    // Nobody proved this email: it does not count as its owner's until an invitation to it is
    // accepted (which may then set the password).
    state.store.set_email_verified(user.id, false).await?;
    let user = User {
        email_verified: false,
        ..user
    };
    tracing::info!(user = %user.id, tenant = %tenant.id, "self-registration");
    Ok((
        StatusCode::CREATED,
        Json(login_answer(&state, user, Some(tenant.id)).await?),
    )
        .into_response())
}

/// A registration waiting for its email's link.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationPending {
    pub email: String,
    pub detail: String,
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct ConfirmIn {
    /// The token from the mailed link (`/confirm/<token>`).
    token: String,
    /// The password chosen when registering.
    password: String,
}

/// Finish a registration from its mailed link: the password chosen when registering makes the
/// account (its email proven) and its tenant, and logs in.
#[utoipa::path(post, path = "/api/v1/auth/register/confirm", tag = "auth", security(()),
    request_body = ConfirmIn,
    responses((status = 201, body = LoginOut), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn confirm_registration(
    State(state): State<AppState>,
    source: crate::auth::Source,
    Body(body): Body,
) -> Result<(StatusCode, Json<LoginOut>), Problem> {
    let mut f = Fields::new(body);
    let token = f.required_str("token");
    let password = f.required_str("password");
    f.reject_rest("a confirmation");
    f.finish()?;
    let (Some(token), Some(password)) = (token, password) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    // Guessing is slowed like guessing passwords.
    state
        .auth
        .login_failures_by_source
        .check(&source.key())
        .map_err(too_many)?;
    let now = pingtower_engine::now();
    let Some(pending) = crate::account_mail::open(&state.auth.keys, &token, now) else {
        let _ = state.auth.login_failures_by_source.hit(&source.key());
        return Err(Problem::not_found(
            "registration (the link may have expired: register again)",
        ));
    };
    if !verify_password(Some(pending.password_hash.clone()), password).await? {
        let _ = state.auth.login_failures_by_source.hit(&source.key());
        return Err(crate::auth::unauthorized(
            "this is not the password chosen when registering",
        ));
    }
    // Whoever holds the link and its password owns the mailbox: telling them is no leak.
    if state
        .store
        .find_user_by_email(&pending.email)
        .await?
        .is_some()
    {
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
            .with_detail("this email has an account already (was the link used?); log in"));
    }
    let (user, tenant) = create_owner(
        state.store.as_ref(),
        &pending.email,
        pending.password_hash,
        &pending.tenant_name,
        false,
        now,
    )
    .await?;
    tracing::info!(user = %user.id, tenant = %tenant.id, "self-registration confirmed");
    Ok((
        StatusCode::CREATED,
        Json(login_answer(&state, user, Some(tenant.id)).await?),
    ))
}

/// A new account that owns a new tenant (first-run setup is also the platform administrator).
async fn create_owner(
    store: &dyn Store,
    email: &str,
    password_hash: String,
    tenant_name: &str,
    platform_admin: bool,
    now: Timestamp,
) -> Result<(User, Tenant), StoreError> {
    let user = store
        .create_user(
            &NewUser {
                email: email.to_owned(),
                display_name: None,
                password_hash: Some(password_hash),
                platform_admin,
            },
            now,
        )
        .await?;
    let tenant = store.create_tenant(tenant_name, now).await?;
    store
        .set_membership(tenant.id, user.id, Role::Owner, now)
        .await?;
    Ok((user, tenant))
}

/// First start with `PINGTOWER_ADMIN_EMAIL` and `PINGTOWER_ADMIN_PASSWORD`: when the database
/// has no account yet, creates the owner (a platform administrator) and a first tenant.
/// Returns whether it created them.
pub async fn bootstrap_admin(
    store: &dyn Store,
    email: &str,
    password: &str,
) -> Result<bool, Problem> {
    if store.count_users().await? > 0 {
        return Ok(false);
    }
    let hash = hash_password(password.to_owned()).await?;
    create_owner(store, email, hash, "Default", true, pingtower_engine::now()).await?;
    Ok(true)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    /// The account (absent for an API key).
    pub user: Option<UserOut>,
    /// The API key's name (absent for an account).
    pub api_key: Option<String>,
    pub tenants: Vec<TenantOut>,
    /// With a browser session: the token to send in `X-CSRF-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// Who the caller is and which tenants they belong to.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = MeOut), (status = 401, body = Problem)))]
pub async fn me(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    caller: Caller,
) -> Result<Json<MeOut>, Problem> {
    let csrf_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .is_none()
        .then(|| crate::auth::session_cookie(&headers))
        .flatten()
        .map(|session| crate::auth::csrf_token(&state.auth, &session));
    Ok(Json(match caller {
        Caller::User { user, .. } => MeOut {
            tenants: tenants_of(state.store.as_ref(), &user).await?,
            user: Some(user.into()),
            api_key: None,
            csrf_token,
        },
        Caller::Key(key) => {
            let t = state.store.get_tenant(key.tenant_id).await?;
            MeOut {
                user: None,
                api_key: Some(key.name),
                csrf_token: None,
                tenants: vec![TenantOut {
                    id: t.id,
                    name: t.name,
                    role: Some(key.role),
                    created_at: t.created_at,
                }],
            }
        }
    }))
}

// ---- API keys ------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    /// The key's public start, to recognise it.
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The whole key: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            role: k.role,
            prefix: format!("ptk_{}", k.prefix),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            key: None,
        }
    }
}

crate::http::list_type!(ApiKeyList, ApiKeyOut);

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct ApiKeyIn {
    name: String,
    /// At most the creator's own role.
    role: Role,
    expires_at: Option<Timestamp>,
}

/// The tenant's API keys (secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "access",
    params(PageParams),
    responses((status = 200, body = ApiKeyList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_keys(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<PageParams>,
) -> Result<Json<ApiKeyList>, Problem> {
    p.require(Role::Admin)?;
    let page = q.request()?;
    let keys = state.store.list_api_keys(p.tenant).await?;
    let keys = crate::http::page_of(keys, |k| k.id.to_string(), &page);
    Ok(Json(ApiKeyList::new(keys, ApiKeyOut::from)))
}

/// Create an API key; its secret is in `key`, shown this once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "access",
    request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_key(
    State(state): State<AppState>,
    p: Principal,
    Body(body): Body,
) -> Result<Created<ApiKeyOut>, Problem> {
    p.require(Role::Admin)?;
    let now = pingtower_engine::now();
    let mut f = Fields::new(body);
    let name = f.required_str("name").map(|n| n.trim().to_owned());
    if name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        f.err("name", "must be at most 100 characters");
    }
    let role: Option<Role> = f.required_parsed("role");
    if role.is_some_and(|r| !p.role.at_least(r)) {
        f.err("role", "cannot be more than your own role");
    }
    let expires_at: Option<Timestamp> = f.take("expires_at").and_then(|v| {
        if v.is_null() {
            return None;
        }
        match serde_json::from_value::<Timestamp>(v) {
            Ok(t) if t > now => Some(t),
            Ok(_) => {
                f.err("expires_at", "must be in the future");
                None
            }
            Err(_) => {
                f.err("expires_at", "must be an RFC 3339 time");
                None
            }
        }
    });
    f.reject_rest("an API key");
    f.finish()?;
    let (Some(name), Some(role)) = (name, role) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    let (prefix, secret_hash, full) = crate::auth::new_api_key();
    let key = ApiKey {
        id: ApiKeyId::new(),
        tenant_id: p.tenant,
        name,
        role,
        prefix,
        secret_hash,
        // A key made by a key belongs to the person behind that key.
        created_by: match &p.caller {
            Caller::User { user, .. } => Some(user.id),
            Caller::Key(k) => k.created_by,
        },
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    state.store.create_api_key(&key).await?;
    audit(
        &state,
        &p,
        "api_key.create",
        &format!("api_key:{}", key.id),
        Some(&key.name),
    )
    .await;
    let location = format!("/api/v1/api-keys/{}", key.id);
    let mut out = ApiKeyOut::from(key);
    out.key = Some(full);
    Ok(Created::new(location, 1, out))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "access",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    p.require(Role::Admin)?;
    let id: ApiKeyId = parse_id(&id, "API key")?;
    state
        .store
        .revoke_api_key(p.tenant, id, pingtower_engine::now())
        .await
        .map_err(|e| not_found_as(e, "API key"))?;
    audit(&state, &p, "api_key.revoke", &format!("api_key:{id}"), None).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- members -------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub id: UserId,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub member_since: Timestamp,
}

crate::http::list_type!(MemberList, MemberOut);

async fn member_out(store: &dyn Store, m: &Membership) -> Result<MemberOut, Problem> {
    let u = store.get_user(m.user_id).await?;
    Ok(MemberOut {
        id: u.id,
        email: u.email,
        display_name: u.display_name,
        role: m.role,
        member_since: m.created_at,
    })
}

/// The tenant's members and their roles.
#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    params(PageParams),
    responses((status = 200, body = MemberList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<PageParams>,
) -> Result<Json<MemberList>, Problem> {
    p.require(Role::Admin)?;
    let page = q.request()?;
    let members = state.store.members_of_tenant(p.tenant).await?;
    let members = crate::http::page_of(members, |m| m.user_id.to_string(), &page);
    let mut items = Vec::new();
    for m in &members.items {
        items.push(member_out(state.store.as_ref(), m).await?);
    }
    Ok(Json(MemberList {
        items,
        next_cursor: members.next_cursor.map(|c| c.0),
    }))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct MemberIn {
    email: String,
    role: Role,
    /// Needed when the account does not exist yet.
    password: Option<String>,
    display_name: Option<String>,
}

/// Only an owner may make or unmake owners; `ingest` is for API keys, not people.
fn may_grant(p: &Principal, role: Role) -> Result<(), Problem> {
    if role == Role::Ingest {
        return Err(Problem::invalid(vec![FieldError {
            field: "role".into(),
            message: "`ingest` is a role for API keys only (they may send events and nothing else)"
                .into(),
        }]));
    }
    if role == Role::Owner && p.role != Role::Owner {
        return Err(forbidden(
            "only an owner can grant or take away the owner role",
        ));
    }
    Ok(())
}

/// How long an invitation can be accepted.
const INVITATION_TTL_MS: i64 = 7 * 86_400_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationOut {
    pub id: pingtower_core::InvitationId,
    pub email: String,
    pub role: Role,
    pub expires_at: Timestamp,
    /// Whether the link was mailed to the email (the installation has mail). Then it is shown
    /// to nobody else: only the email's owner can accept.
    pub emailed: bool,
    /// Where the person accepts it (`/invite/<token>` on this server), when it was not mailed:
    /// shown this once, to be sent to them; only its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_path: Option<String>,
    /// The token alone, for `POST /api/v1/invitations/accept` (when it was not mailed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Add a member. A platform administrator may make a new account with a password at once
/// (201). Everyone else invites (202): the person accepts with the invitation's link (mailed
/// to them when the installation has mail), so nobody is added without consenting, no password
/// but the account owner's ever logs in as them, and the answer is the same whether the email
/// has an account or not.
#[utoipa::path(post, path = "/api/v1/users", tag = "access",
    request_body = MemberIn,
    responses((status = 201, body = MemberOut), (status = 202, body = InvitationOut), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_user(
    State(state): State<AppState>,
    p: Principal,
    Body(body): Body,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    p.require(Role::Admin)?;
    let platform_admin = p.caller.platform_admin();
    let mut f = Fields::new(body);
    let email = email_field(&mut f, "email");
    let role: Option<Role> = f.required_parsed("role");
    let password = if !f.has("password") {
        None
    } else if platform_admin {
        password_field(&mut f, "password")
    } else {
        // Decided by who asks, never by whether the email has an account (which would tell).
        f.take("password");
        f.err(
            "password",
            "only a platform administrator sets passwords for others; leave it out to send \
             an invitation, with which the person chooses their own",
        );
        None
    };
    let display_name = f.str("display_name");
    f.reject_rest("a member");
    f.finish()?;
    let (Some(email), Some(role)) = (email, role) else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    may_grant(&p, role)?;
    let now = pingtower_engine::now();
    let existing = state.store.find_user_by_email(&email).await?;
    let (Some(password), None) = (password, &existing) else {
        if let Some(user) = &existing {
            let already = state
                .store
                .memberships_of_user(user.id)
                .await?
                .iter()
                .any(|m| m.tenant_id == p.tenant);
            if already {
                return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
                    .with_detail("this account is already a member; change its role with PATCH"));
            }
        }
        let token = crate::auth::random_secret(40);
        let invitation = pingtower_core::Invitation {
            id: pingtower_core::InvitationId::new(),
            tenant_id: p.tenant,
            email: email.clone(),
            role,
            token_hash: crate::auth::hash_secret(&token),
            // A key's invitation is its person's.
            invited_by: match &p.caller {
                Caller::User { user, .. } => Some(user.id),
                Caller::Key(k) => k.created_by,
            },
            created_at: now,
            expires_at: now.add_millis(INVITATION_TTL_MS),
            accepted_at: None,
        };
        state.store.create_invitation(&invitation).await?;
        audit(
            &state,
            &p,
            "member.invite",
            &format!("invitation:{}", invitation.id),
            Some(role.as_str()),
        )
        .await;
        let emailed = mail_invitation(&state, &invitation, &token).await?;
        let out = InvitationOut {
            id: invitation.id,
            email: invitation.email,
            role,
            expires_at: invitation.expires_at,
            emailed,
            invite_path: (!emailed).then(|| format!("/invite/{token}")),
            token: (!emailed).then_some(token),
        };
        return Ok((StatusCode::ACCEPTED, Json(out)).into_response());
    };
    let hash = hash_password(password).await?;
    let user = state
        .store
        .create_user(
            &NewUser {
                email: email.clone(),
                display_name,
                password_hash: Some(hash),
                platform_admin: false,
            },
            now,
        )
        .await?;
    // The admin set its password: the email is not the owner's proof (a provider's login
    // later takes the account over cleanly).
    state.store.set_email_verified(user.id, false).await?;
    let m = state
        .store
        .set_membership(p.tenant, user.id, role, now)
        .await?;
    audit(
        &state,
        &p,
        "member.add",
        &format!("user:{}", user.id),
        Some(role.as_str()),
    )
    .await;
    let out = member_out(state.store.as_ref(), &m).await?;
    Ok(Created::new(format!("/api/v1/users/{}", user.id), 1, out).into_response())
}

/// Mails an invitation's link to its email when the installation has mail; `false` when it
/// has none or the server refused (the link is then shown to the admin, as without mail).
async fn mail_invitation(
    state: &AppState,
    invitation: &pingtower_core::Invitation,
    token: &str,
) -> Result<bool, Problem> {
    let Some(mail) = &state.auth.mail else {
        return Ok(false);
    };
    let tenant = state.store.get_tenant(invitation.tenant_id).await?;
    let (subject, text) = mail.invitation(&tenant.name, invitation.role.as_str(), token);
    match mail.mailer.send(&invitation.email, subject, text).await {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::warn!(error = %e, invitation = %invitation.id,
                "mailing an invitation failed; its link is shown to the admin instead");
            Ok(false)
        }
    }
}

/// What an invitation grants now: its role, but no more than its sender may still grant in its
/// tenant (a sender demoted or removed since cannot bring people in through it).
async fn inviters_grant(
    state: &AppState,
    invitation: &pingtower_core::Invitation,
) -> Result<Role, Problem> {
    let gone = || {
        Problem::new(StatusCode::GONE, "invitation-void", "Invitation void").with_detail(
            "whoever sent this invitation may no longer add members; ask for a new one",
        )
    };
    let sender = invitation.invited_by.ok_or_else(gone)?;
    let role = state
        .store
        .memberships_of_user(sender)
        .await?
        .into_iter()
        .find(|m| m.tenant_id == invitation.tenant_id)
        .map(|m| m.role)
        .ok_or_else(gone)?;
    if !role.at_least(Role::Admin) || (invitation.role == Role::Owner && role != Role::Owner) {
        return Err(gone());
    }
    Ok(crate::auth::lesser(invitation.role, role))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingInvitation {
    pub id: pingtower_core::InvitationId,
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

crate::http::list_type!(InvitationList, PendingInvitation);

/// The tenant's invitations not accepted yet (their links are never shown again).
#[utoipa::path(get, path = "/api/v1/invitations", tag = "access",
    responses((status = 200, body = InvitationList), (status = 403, body = Problem)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<InvitationList>, Problem> {
    p.require(Role::Admin)?;
    let items = state
        .store
        .pending_invitations(p.tenant, pingtower_engine::now())
        .await?
        .into_iter()
        .map(|i| PendingInvitation {
            id: i.id,
            email: i.email,
            role: i.role,
            created_at: i.created_at,
            expires_at: i.expires_at,
        })
        .collect();
    Ok(Json(InvitationList {
        items,
        next_cursor: None,
    }))
}

/// Withdraw an invitation: its link stops working.
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "access",
    params(("id" = String, Path, description = "invitation id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn withdraw_invitation(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    p.require(Role::Admin)?;
    let id: pingtower_core::InvitationId = parse_id(&id, "invitation")?;
    state
        .store
        .delete_invitation(p.tenant, id)
        .await
        .map_err(|e| not_found_as(e, "invitation"))?;
    audit(
        &state,
        &p,
        "member.uninvite",
        &format!("invitation:{id}"),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct AcceptIn {
    /// The invitation's token (the end of its link).
    token: String,
    /// The account's password: needed to make the account, or to set the password of an
    /// account whose email nobody proved yet. Without it, the caller must be logged in as the
    /// invited email.
    password: Option<String>,
}

/// Accept an invitation: join its tenant with its role. Logged in as the invited email, it
/// needs nothing more; when the email has no account, the password given makes one. The link
/// alone never speaks for an account that exists. Answers a login token acting in the tenant.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "access", security(()),
    request_body = AcceptIn,
    responses((status = 200, body = LoginOut), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    source: crate::auth::Source,
    caller: Result<Caller, Problem>,
    Body(body): Body,
) -> Result<Json<LoginOut>, Problem> {
    let mut f = Fields::new(body);
    let token = f.required_str("token");
    let password = if f.has("password") {
        password_field(&mut f, "password")
    } else {
        None
    };
    f.reject_rest("an acceptance");
    f.finish()?;
    let Some(token) = token else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    // Guessing tokens is slowed like guessing passwords.
    state
        .auth
        .login_failures_by_source
        .check(&source.key())
        .map_err(too_many)?;
    let now = pingtower_engine::now();
    let invitation = state
        .store
        .find_invitation(&crate::auth::hash_secret(&token))
        .await?
        .filter(|i| i.accepted_at.is_none() && now < i.expires_at);
    let Some(invitation) = invitation else {
        let _ = state.auth.login_failures_by_source.hit(&source.key());
        return Err(Problem::not_found(
            "invitation (it may have been used or have expired)",
        ));
    };
    let logged_in = match &caller {
        Ok(Caller::User { user, .. }) if user.email == invitation.email => Some(user.clone()),
        _ => None,
    };
    let existing = state.store.find_user_by_email(&invitation.email).await?;
    if logged_in.is_none() && existing.is_some() {
        // The link alone never speaks for an account that exists: the person logs in to it.
        // (Whoever made the invitation holds the link too.)
        return Err(crate::auth::unauthorized(
            "this email has an account: log in to it, then accept the invitation",
        ));
    }
    let password = match (&logged_in, password) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(hash_password(p).await?),
        (None, None) => {
            return Err(Problem::invalid(vec![FieldError {
                field: "password".into(),
                message: "is required to make the account".into(),
            }]));
        }
    };
    // The role the person gets is at most what the person who invited them may still grant.
    let role = inviters_grant(&state, &invitation).await?;
    // Taken before anything changes: a second acceptance does nothing.
    if !state.store.accept_invitation(invitation.id, now).await? {
        return Err(Problem::not_found(
            "invitation (it may have been used or have expired)",
        ));
    }
    let user = match logged_in {
        Some(user) => user,
        None => {
            let user = state
                .store
                .create_user(
                    &NewUser {
                        email: invitation.email.clone(),
                        display_name: None,
                        password_hash: password,
                        platform_admin: false,
                    },
                    now,
                )
                .await?;
            // Whoever holds the link set this password, and the inviter holds it too: the
            // email is not proven (a provider's login later takes the account over cleanly).
            state.store.set_email_verified(user.id, false).await?;
            User {
                email_verified: false,
                ..user
            }
        }
    };
    let already = state
        .store
        .memberships_of_user(user.id)
        .await?
        .into_iter()
        .find(|m| m.tenant_id == invitation.tenant_id);
    // An invitation never lowers a role the person already has there.
    if already.is_none_or(|m| !m.role.at_least(role)) {
        state
            .store
            .set_membership(invitation.tenant_id, user.id, role, now)
            .await?;
    }
    let entry = AuditEntry {
        id: pingtower_core::AuditId::new(),
        tenant_id: invitation.tenant_id,
        actor: user.email.clone(),
        action: "member.join".into(),
        target: format!("user:{}", user.id),
        detail: Some(role.as_str().to_owned()),
        at: now,
    };
    if let Err(e) = state.store.append_audit(&entry).await {
        tracing::warn!(error = %e, "recording an accepted invitation in the audit log failed");
    }
    Ok(Json(
        login_answer(&state, user, Some(invitation.tenant_id)).await?,
    ))
}

async fn membership(state: &AppState, p: &Principal, id: UserId) -> Result<Membership, Problem> {
    state
        .store
        .members_of_tenant(p.tenant)
        .await?
        .into_iter()
        .find(|m| m.user_id == id)
        .ok_or_else(|| Problem::not_found("member"))
}

async fn ensure_owner_remains(
    state: &AppState,
    p: &Principal,
    leaving: UserId,
) -> Result<(), Problem> {
    let owners = state
        .store
        .members_of_tenant(p.tenant)
        .await?
        .into_iter()
        .filter(|m| m.role == Role::Owner && m.user_id != leaving)
        .count();
    if owners == 0 {
        return Err(Problem::new(StatusCode::CONFLICT, "conflict", "Conflict")
            .with_detail("a tenant keeps at least one owner"));
    }
    Ok(())
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct MemberPatch {
    role: Role,
}

/// Change a member's role.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "access",
    params(("id" = String, Path, description = "user id")),
    request_body = MemberPatch,
    responses((status = 200, body = MemberOut), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_user(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<MemberOut>, Problem> {
    p.require(Role::Admin)?;
    let id: UserId = parse_id(&id, "member")?;
    let mut f = Fields::new(body);
    let role: Option<Role> = f.required_parsed("role");
    f.reject_rest("a membership");
    f.finish()?;
    let Some(role) = role else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    let current = membership(&state, &p, id).await?;
    may_grant(&p, role)?;
    may_grant(&p, current.role)?;
    if current.role == Role::Owner && role != Role::Owner {
        ensure_owner_remains(&state, &p, id).await?;
    }
    let m = state
        .store
        .set_membership(p.tenant, id, role, pingtower_engine::now())
        .await?;
    audit(
        &state,
        &p,
        "member.role",
        &format!("user:{id}"),
        Some(role.as_str()),
    )
    .await;
    Ok(Json(member_out(state.store.as_ref(), &m).await?))
}

/// Remove a member from the tenant (the account stays).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "access",
    params(("id" = String, Path, description = "user id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_user(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    p.require(Role::Admin)?;
    let id: UserId = parse_id(&id, "member")?;
    let current = membership(&state, &p, id).await?;
    may_grant(&p, current.role)?;
    if current.role == Role::Owner {
        ensure_owner_remains(&state, &p, id).await?;
    }
    state.store.remove_membership(p.tenant, id).await?;
    audit(&state, &p, "member.remove", &format!("user:{id}"), None).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- tenants -------------------------------------------------------------------------------

crate::http::list_type!(TenantList, TenantOut);

/// The tenants the caller belongs to (a platform administrator sees all).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    params(PageParams),
    responses((status = 200, body = TenantList), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<PageParams>,
) -> Result<Json<TenantList>, Problem> {
    let page = q.request()?;
    let items = match &caller {
        Caller::User { user, .. } => {
            let mut mine = tenants_of(state.store.as_ref(), user).await?;
            if user.platform_admin {
                for t in state.store.list_tenants().await? {
                    if !mine.iter().any(|m| m.id == t.id) {
                        mine.push(TenantOut {
                            id: t.id,
                            name: t.name,
                            role: None,
                            created_at: t.created_at,
                        });
                    }
                }
            }
            mine
        }
        Caller::Key(key) => {
            let t = state.store.get_tenant(key.tenant_id).await?;
            vec![TenantOut {
                id: t.id,
                name: t.name,
                role: Some(key.role),
                created_at: t.created_at,
            }]
        }
    };
    let items = crate::http::page_of(items, |t| t.id.to_string(), &page);
    Ok(Json(TenantList::new(items, |t| t)))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct TenantIn {
    name: String,
    /// An existing account that becomes the tenant's owner (the caller otherwise).
    owner_email: Option<String>,
}

fn platform_admin(caller: &Caller) -> Result<(), Problem> {
    if caller.platform_admin() {
        Ok(())
    } else {
        Err(forbidden(
            "only a platform administrator can create or delete tenants",
        ))
    }
}

/// Create a tenant (platform administrators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants",
    request_body = TenantIn,
    responses((status = 201, body = TenantOut), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body,
) -> Result<Created<TenantOut>, Problem> {
    platform_admin(&caller)?;
    let mut f = Fields::new(body);
    let name = f.required_str("name").map(|n| n.trim().to_owned());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        f.err("name", "must be at most 200 characters");
    }
    let owner_email = if f.has("owner_email") {
        email_field(&mut f, "owner_email")
    } else {
        None
    };
    f.reject_rest("a tenant");
    f.finish()?;
    let Some(name) = name else {
        return Err(Problem::internal(
            "a field that validation checked is missing",
        ));
    };
    let owner = match owner_email {
        Some(email) => state
            .store
            .find_user_by_email(&email)
            .await?
            .ok_or_else(|| {
                Problem::invalid(vec![FieldError {
                    field: "owner_email".into(),
                    message: "no account has this email".into(),
                }])
            })?,
        None => caller
            .user()
            .cloned()
            .ok_or_else(|| forbidden("an API key cannot own a tenant"))?,
    };
    let now = pingtower_engine::now();
    let t = state.store.create_tenant(&name, now).await?;
    state
        .store
        .set_membership(t.id, owner.id, Role::Owner, now)
        .await?;
    tracing::info!(tenant = %t.id, actor = %caller.actor(), "tenant created");
    let role = (caller.user().map(|u| u.id) == Some(owner.id)).then_some(Role::Owner);
    Ok(Created::new(
        format!("/api/v1/tenants/{}", t.id),
        1,
        TenantOut {
            id: t.id,
            name: t.name,
            role,
            created_at: t.created_at,
        },
    ))
}

/// Delete a tenant and everything it owns (platform administrators).
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    platform_admin(&caller)?;
    let id: TenantId = parse_id(&id, "tenant")?;
    // The scheduler must forget the tenant's monitors.
    let mut monitors = Vec::new();
    let mut page = pingtower_store::PageRequest::first(pingtower_core::page::MAX_LIMIT);
    loop {
        let found = state
            .store
            .list_monitors(id, &Default::default(), &page)
            .await?;
        monitors.extend(found.items.iter().map(|m| m.id));
        match found.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    state
        .store
        .delete_tenant(id)
        .await
        .map_err(|e| not_found_as(e, "tenant"))?;
    // Its analytics events go with it.
    state
        .analytics
        .store
        .delete_tenant(id)
        .await
        .map_err(|e| Problem::internal(format_args!("deleting a tenant's events failed: {e}")))?;
    for m in monitors {
        if let Err(e) = pingtower_engine::notify_monitor_changed(state.bus.as_ref(), id, m).await {
            tracing::warn!(error = %e, "announcing a removed monitor failed");
        }
    }
    tracing::info!(tenant = %id, actor = %caller.actor(), "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Read a tenant the caller belongs to.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = TenantOut), (status = 404, body = Problem)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TenantOut>, Problem> {
    let id: TenantId = parse_id(&id, "tenant")?;
    let role = match &caller {
        Caller::Key(k) => (k.tenant_id == id).then_some(k.role),
        Caller::User { user, .. } => state
            .store
            .memberships_of_user(user.id)
            .await?
            .into_iter()
            .find(|m| m.tenant_id == id)
            .map(|m| m.role),
    };
    if role.is_none() && !caller.platform_admin() {
        return Err(Problem::not_found("tenant"));
    }
    let t = state
        .store
        .get_tenant(id)
        .await
        .map_err(|e| not_found_as(e, "tenant"))?;
    Ok(Json(TenantOut {
        id: t.id,
        name: t.name,
        role,
        created_at: t.created_at,
    }))
}

// ---- audit log -----------------------------------------------------------------------------

crate::http::list_type!(AuditList, AuditEntry);

/// Who changed what and when, newest first (admins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "access",
    params(PageParams),
    responses((status = 200, body = AuditList), (status = 403, body = Problem)))]
pub async fn list_audit(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<PageParams>,
) -> Result<Json<AuditList>, Problem> {
    p.require(Role::Admin)?;
    let page = state.store.list_audit(p.tenant, &q.request()?).await?;
    Ok(Json(AuditList::new(page, |e| e)))
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(register))
        .routes(routes!(confirm_registration))
        .routes(routes!(create_session, end_session))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(reset_member_password))
        .routes(routes!(end_other_sessions))
        .routes(routes!(me))
        .routes(routes!(setup_state, setup))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(list_users, add_user))
        .routes(routes!(accept_invitation))
        .routes(routes!(list_invitations))
        .routes(routes!(withdraw_invitation))
        .routes(routes!(update_user, remove_user))
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, delete_tenant))
        .routes(routes!(list_audit))
}
