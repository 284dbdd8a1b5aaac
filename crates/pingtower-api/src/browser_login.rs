//! Browser login through the OIDC provider: the authorization-code flow with PKCE.
//!
//! `GET /api/v1/auth/oidc/login` sends the browser to the provider with a fresh `state`, `nonce`
//! and PKCE challenge (S256); their secrets travel in a short-lived cookie sealed with the
//! installation's key (no server-side state). `GET /api/v1/auth/oidc/callback` checks `state`,
//! exchanges the code with the verifier, checks the ID token (signature, issuer, audience = the
//! client id, expiry, nonce), finds or makes the account, and opens a browser session.

use crate::auth::{forbidden, issue_token, session_set_cookie};
use crate::input::Params;
use crate::{AppState, Problem};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use pingtower_core::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const FLOW_COOKIE: &str = "pingtower_oidc";
const FLOW_TTL_MS: i64 = 10 * 60_000;

#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    verifier: String,
    nonce: String,
    return_to: String,
    expires_ms: i64,
}

fn random_text(len: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Where the provider sends the browser back: this server, as the browser reached it.
fn redirect_uri(headers: &HeaderMap) -> Result<String, Problem> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '@', ' ']))
        .ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "bad-header", "Bad header")
                .with_detail("the request has no usable Host header")
        })?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    Ok(format!("{scheme}://{host}/api/v1/auth/oidc/callback"))
}

/// Only paths of this server, so a login cannot be turned into an open redirect: a path that
/// starts with one `/`, without backslashes, and without whitespace or control characters
/// (browsers drop tabs and newlines from URLs, so `/\t/evil.example` would become
/// `//evil.example`).
pub(crate) fn safe_return(path: Option<&str>) -> String {
    match path {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn provider(state: &AppState) -> Result<&crate::oidc::Oidc, Problem> {
    state
        .auth
        .oidc
        .as_ref()
        .filter(|o| o.config().client_id.is_some())
        .ok_or_else(|| {
            Problem::not_found("OIDC login").with_detail(
                "browser login through an identity provider is not configured \
                 (PINGTOWER_OIDC_ISSUER and PINGTOWER_OIDC_CLIENT_ID)",
            )
        })
}

fn unreachable(e: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "OIDC provider");
    Problem::unavailable("the identity provider cannot be reached")
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginParams {
    /// A path of this server to go to after login (`/` by default).
    return_to: Option<String>,
}

/// Start a browser login at the identity provider (302 to its authorization endpoint).
#[utoipa::path(get, path = "/api/v1/auth/oidc/login", tag = "auth", security(()),
    params(LoginParams),
    responses((status = 302, description = "to the provider"), (status = 404, body = Problem),
        (status = 503, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(q): Params<LoginParams>,
) -> Result<Response, Problem> {
    let oidc = provider(&state)?;
    let endpoints = oidc.endpoints().await.map_err(unreachable)?;
    let authorize = endpoints
        .authorization
        .ok_or_else(|| unreachable("the discovery document names no authorization_endpoint"))?;
    let flow = Flow {
        state: random_text(32),
        verifier: random_text(64),
        nonce: random_text(32),
        return_to: safe_return(q.return_to.as_deref()),
        expires_ms: pingtower_engine::now().as_millis() + FLOW_TTL_MS,
    };
    let challenge =
        b64(ring::digest::digest(&ring::digest::SHA256, flow.verifier.as_bytes()).as_ref());
    let mut url = url::Url::parse(&authorize).map_err(unreachable)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair(
            "client_id",
            oidc.config().client_id.as_deref().unwrap_or_default(),
        )
        .append_pair("redirect_uri", &redirect_uri(&headers)?)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let plain = serde_json::to_vec(&flow)
        .map_err(|e| Problem::internal(format_args!("encoding a login flow failed: {e}")))?;
    let sealed = state
        .auth
        .keys
        .seal(TenantId(uuid::Uuid::nil()), &plain)
        .map_err(|e| Problem::internal(format_args!("sealing a login flow failed: {e}")))?;
    let cookie = format!(
        "{FLOW_COOKIE}={}; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={}",
        hex::encode(sealed),
        FLOW_TTL_MS / 1000
    );
    let mut r = (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the user did not log in.
    error: Option<String>,
    error_description: Option<String>,
}

fn flow_of(state: &AppState, headers: &HeaderMap) -> Option<Flow> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == FLOW_COOKIE)?
        .1;
    let sealed = hex::decode(value).ok()?;
    let plain = state
        .auth
        .keys
        .open(TenantId(uuid::Uuid::nil()), &sealed)
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

/// Where the provider sends the browser back: opens the session and goes on to `return_to`.
#[utoipa::path(get, path = "/api/v1/auth/oidc/callback", tag = "auth", security(()),
    params(CallbackParams),
    responses((status = 303, description = "logged in"), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(q): Params<CallbackParams>,
) -> Result<Response, Problem> {
    let oidc = provider(&state)?;
    let bad = |detail: &str| {
        Problem::new(StatusCode::BAD_REQUEST, "login-failed", "Login failed").with_detail(detail)
    };
    if let Some(e) = q.error {
        return Err(bad(&format!(
            "the identity provider said {e}: {}",
            q.error_description.unwrap_or_default()
        )));
    }
    let flow = flow_of(&state, &headers)
        .filter(|f| f.expires_ms > pingtower_engine::now().as_millis())
        .ok_or_else(|| bad("the login took too long or did not start here; start it again"))?;
    let sent_state = q.state.unwrap_or_default();
    {
        use subtle::ConstantTimeEq;
        if !bool::from(sent_state.as_bytes().ct_eq(flow.state.as_bytes())) {
            return Err(bad("the login's state does not match; start it again"));
        }
    }
    let code = q.code.ok_or_else(|| bad("the provider sent no code"))?;
    let endpoints = oidc.endpoints().await.map_err(unreachable)?;
    let token_url = endpoints
        .token
        .ok_or_else(|| unreachable("the discovery document names no token_endpoint"))?;
    let client_id = oidc.config().client_id.clone().unwrap_or_default();
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect_uri(&headers)?),
        ("client_id", client_id.clone()),
        ("code_verifier", flow.verifier.clone()),
    ];
    if let Some(secret) = &oidc.config().client_secret {
        form.push(("client_secret", secret.clone()));
    }
    let answer = oidc
        .http()
        .post(&token_url)
        .form(&form)
        .send()
        .await
        .map_err(unreachable)?;
    let status = answer.status();
    let tokens: Value = answer.json().await.map_err(unreachable)?;
    if !status.is_success() {
        tracing::info!(status = %status, error = %tokens["error"], "the provider refused the code");
        return Err(crate::auth::unauthorized(
            "the identity provider refused the login",
        ));
    }
    let id_token = tokens["id_token"]
        .as_str()
        .ok_or_else(|| crate::auth::unauthorized("the provider sent no ID token"))?;
    let mut claims = oidc.verify_for(id_token, &client_id).await?;
    if claims["nonce"].as_str() != Some(flow.nonce.as_str()) {
        return Err(crate::auth::unauthorized(
            "the ID token's nonce does not match",
        ));
    }
    // Providers often put roles in the access token only (Keycloak's default).
    if oidc.role(&claims).is_none()
        && let Some(access) = tokens["access_token"].as_str()
        && let Ok(access_claims) = oidc.verify(access).await
        && oidc.role(&access_claims).is_some()
    {
        let path: Vec<&str> = oidc.config().roles_claim.split('.').collect();
        let mut src = &access_claims;
        for p in &path {
            src = &src[*p];
        }
        let mut dst = &mut claims;
        for p in &path {
            if !dst.is_object() {
                *dst = Value::Object(Default::default());
            }
            dst = dst
                .as_object_mut()
                .ok_or_else(|| Problem::internal("a claim path is not an object"))?
                .entry((*p).to_owned())
                .or_insert(Value::Null);
        }
        *dst = src.clone();
    }
    if oidc.role(&claims).is_none() {
        return Err(forbidden(format!(
            "your identity provider gives you no PingTower role in `{}`",
            oidc.config().roles_claim
        )));
    }
    let (user, tenant) = oidc.account(state.store.as_ref(), &claims).await?;
    let (token, _) = issue_token(
        &state.auth,
        state.store.as_ref(),
        user.id,
        Some(tenant),
        pingtower_engine::now(),
    )
    .await?;
    tracing::info!(user = %user.id, "browser login through the identity provider");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, flow.return_to)]).into_response();
    let session = session_set_cookie(&state.auth, Some(&token), state.auth.token_ttl.as_secs());
    let clear =
        format!("{FLOW_COOKIE}=; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0");
    for c in [session, clear] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    // The page that loads next reads its CSRF token from /api/v1/auth/me.
    Ok(r)
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(callback))
}
