//! The web dashboard and the public pages, served by the binary itself.
//!
//! Pages are HTML rendered on the server from templates that askama checks at compile time
//! (`templates/`), with one stylesheet and one small script (`assets/`), both compiled into the
//! binary: nothing is fetched at run time from anywhere but this server, so the dashboard works
//! offline and `cargo run -- serve` serves it on a fresh clone. Charts are SVG drawn on the
//! server ([`svg`]).
//!
//! Invariants: pages only read. Every change a page offers is a call of the JSON API by the
//! script, with the session cookie and its CSRF token, so the API's validation, roles, audit
//! and problem details apply unchanged, and the forms show the API's own messages. A page
//! answers 303 to `/login` (or `/setup` on a fresh installation) without a session. Public
//! pages (`/status/{slug}`, `/badge/…`) need no login and say how long they may be cached.

mod admin;
mod analytics;
mod pages;
mod public;
pub(crate) mod svg;

pub(crate) use pages::base_url;

use crate::AppState;
use crate::auth::{Principal, cookie, csrf_token, session_cookie};
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

/// The routes of the dashboard, the public pages and their assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login))
        .route("/setup", get(pages::setup))
        .route("/invite/{token}", get(pages::invite))
        .route("/confirm/{token}", get(pages::confirm))
        .route("/forgot", get(pages::forgot))
        .route("/reset/{token}", get(pages::reset))
        .route("/monitors/new", get(pages::new_monitor))
        .route("/monitors/{id}", get(pages::monitor))
        .route("/monitors/{id}/edit", get(pages::edit_monitor))
        .route("/monitors/{id}/clone", get(pages::clone_monitor))
        .route("/incidents", get(pages::incidents))
        .route("/events", get(analytics::events))
        .route("/events/dashboards", get(analytics::dashboards))
        .route("/events/dashboards/{id}", get(analytics::dashboard))
        .route("/events/charts/{id}/figure", get(analytics::chart_figure))
        .route("/incidents/{id}", get(pages::incident))
        .route("/status-pages", get(admin::status_pages))
        .route("/status-pages/new", get(admin::new_status_page))
        .route("/status-pages/{id}/edit", get(admin::edit_status_page))
        .route("/channels", get(admin::channels))
        .route("/deliveries", get(admin::deliveries))
        .route("/channels/new", get(admin::new_channel))
        .route("/channels/{id}/edit", get(admin::edit_channel))
        .route("/rules", get(admin::rules))
        .route("/rules/new", get(admin::new_rule))
        .route("/rules/{id}/edit", get(admin::edit_rule))
        .route("/maintenance", get(admin::maintenance))
        .route("/maintenance/new", get(admin::new_maintenance))
        .route("/maintenance/{id}/edit", get(admin::edit_maintenance))
        .route("/settings", get(admin::settings))
        .route("/status/{slug}", get(public::status_page))
        .route("/badge/{id}/{kind}", get(public::badge))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/assets/status.js", get(status_js))
        .route("/assets/time.js", get(time_js))
        .route("/assets/favicon.svg", get(favicon))
        // Browsers ask for it whatever the page says.
        .route("/favicon.ico", get(favicon))
}

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");
const STATUS_JS: &str = include_str!("../../assets/status.js");
const TIME_JS: &str = include_str!("../../assets/time.js");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

async fn status_js() -> Response {
    asset(STATUS_JS, "text/javascript; charset=utf-8")
}

async fn time_js() -> Response {
    asset(TIME_JS, "text/javascript; charset=utf-8")
}

async fn favicon() -> Response {
    asset(FAVICON, "image/svg+xml")
}

/// Renders a template into an HTML answer; a template that fails to render is a 500 page.
pub(crate) fn render<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<h1>Something went wrong</h1><p>The page could not be drawn.</p>"),
            )
                .into_response()
        }
    }
}

/// What every page's frame shows and its script sends back.
#[derive(Clone)]
pub(crate) struct Me {
    /// Sent back in `X-CSRF-Token` by the script.
    pub csrf: String,
    pub who: String,
    /// The tenant the page shows; the script sends it in `X-Tenant-Id` so that its API calls
    /// act in the same one.
    pub tenant_id: String,
    pub tenant_name: String,
}

/// The cookie that remembers which of a person's tenants the dashboard shows (a preference:
/// the membership is checked on every request as for `X-Tenant-Id`).
pub(crate) const TENANT_COOKIE: &str = "pingtower_tenant";

/// A logged-in person looking at a page: the principal, and what the page's frame needs.
pub(crate) struct Viewer {
    pub p: Principal,
    pub me: Me,
}

/// For browser sessions: the tenant the dashboard was switched to becomes the request's
/// `X-Tenant-Id`, unless the request names one itself or authenticates otherwise. So pages, the
/// script's API calls and the live event stream (which cannot send headers) all act in it.
pub(crate) async fn tenant_from_cookie(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    if !headers.contains_key(header::AUTHORIZATION)
        && !headers.contains_key(crate::auth::TENANT_HEADER)
        && session_cookie(headers).is_some()
        && let Some(t) =
            cookie(headers, TENANT_COOKIE).filter(|t| t.parse::<pingtower_core::TenantId>().is_ok())
        && let Ok(v) = HeaderValue::from_str(&t)
    {
        req.headers_mut().insert(crate::auth::TENANT_HEADER, v);
        req.extensions_mut().insert(TenantFromCookie);
    }
    next.run(req).await
}

/// Marks a request whose tenant came from the dashboard's cookie.
#[derive(Clone, Copy)]
struct TenantFromCookie;

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let chosen = parts.extensions.get::<TenantFromCookie>().is_some();
        let mut found = Principal::from_request_parts(parts, state).await;
        if chosen && matches!(&found, Err(p) if p.status == 403) {
            // No longer a member there: the default tenant instead.
            parts.headers.remove(crate::auth::TENANT_HEADER);
            found = Principal::from_request_parts(parts, state).await;
        }
        match found {
            Ok(p) => {
                let csrf = session_cookie(&parts.headers)
                    .map(|s| csrf_token(&state.auth, &s))
                    .unwrap_or_default();
                let tenant_name = state
                    .store
                    .get_tenant(p.tenant)
                    .await
                    .map(|t| t.name)
                    .unwrap_or_default();
                let me = Me {
                    csrf,
                    who: p.actor(),
                    tenant_id: p.tenant.to_string(),
                    tenant_name,
                };
                Ok(Viewer { p, me })
            }
            Err(problem) if problem.status == 401 => {
                let fresh = state.store.count_users().await.map(|n| n == 0);
                if matches!(fresh, Ok(true)) {
                    return Err(Redirect::to("/setup").into_response());
                }
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let to = format!(
                    "/login?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&to).into_response())
            }
            Err(problem) => Err(problem.into_response()),
        }
    }
}

/// `12.3 ms`, `1.24 s`.
pub(crate) fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// `99.95 %`, or a dash without data.
pub(crate) fn format_percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p >= 99.995 || p == 0.0 => format!("{p:.0} %"),
        Some(p) => format!("{:.2} %", (p * 100.0).floor() / 100.0),
        None => "–".to_owned(),
    }
}

/// `2026-11-22 10:04:05 UTC`.
pub(crate) fn format_time(t: pingtower_core::Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time on a page: `<time>` in UTC, which `assets/time.js` shows in the viewer's time zone
/// (the UTC time stays in the tooltip). Nothing at all for `None`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct When(pub Option<pingtower_core::Timestamp>);

impl When {
    pub fn at(t: pingtower_core::Timestamp) -> Self {
        Self(Some(t))
    }
}

/// `<time datetime="…Z" title="… UTC" {attr}>{text}</time>`: what `assets/time.js` redraws.
fn time_element(
    f: &mut std::fmt::Formatter<'_>,
    t: pingtower_core::Timestamp,
    attr: &str,
    text: &str,
) -> std::fmt::Result {
    write!(
        f,
        r#"<time datetime="{}" title="{}" {attr}>{text}</time>"#,
        t.to_datetime().format("%Y-%m-%dT%H:%M:%SZ"),
        format_time(t),
    )
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => time_element(f, t, "data-local", &format_time(t)),
            None => Ok(()),
        }
    }
}

/// Only digits, dashes, colons and letters of a format: nothing to escape.
impl askama::filters::HtmlSafe for When {}

/// How long ago, as `<time>` that `assets/time.js` keeps current (`12 s ago`), the UTC time in
/// its tooltip. Nothing at all for `None`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ago {
    pub at: Option<pingtower_core::Timestamp>,
    pub now: pingtower_core::Timestamp,
}

impl std::fmt::Display for Ago {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some(t) => time_element(
                f,
                t,
                "data-ago",
                &format_ago(self.now.as_millis() - t.as_millis()),
            ),
            None => Ok(()),
        }
    }
}

impl askama::filters::HtmlSafe for Ago {}

/// `just now`, `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago` (as `assets/time.js` says it).
pub(crate) fn format_ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..5 => "just now".to_owned(),
        5..120 => format!("{s} s ago"),
        120..7_200 => format!("{} min ago", s / 60),
        7_200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_the_way_people_say_them() {
        assert_eq!(format_ms(0.42), "0.4 ms");
        assert_eq!(format_ms(131.2), "131 ms");
        assert_eq!(format_ms(2_345.0), "2.35 s");
        assert_eq!(format_percent(Some(100.0)), "100 %");
        assert_eq!(format_percent(Some(99.999)), "100 %");
        // Never rounded up to a figure not reached.
        assert_eq!(format_percent(Some(99.987)), "99.98 %");
        assert_eq!(format_percent(None), "–");
        assert_eq!(format_ago(-3_000), "just now");
        assert_eq!(format_ago(42_000), "42 s ago");
        assert_eq!(format_ago(600_000), "10 min ago");
        assert_eq!(format_ago(3 * 3_600_000 + 1), "3 h ago");
        assert_eq!(format_ago(50 * 3_600_000), "2 d ago");
    }

    #[test]
    fn times_are_utc_elements_the_script_localises() {
        let t = pingtower_core::Timestamp::from_millis(1_795_000_000_000);
        assert_eq!(
            When::at(t).to_string(),
            r#"<time datetime="2026-11-18T11:06:40Z" title="2026-11-18 11:06:40 UTC" data-local>2026-11-18 11:06:40 UTC</time>"#
        );
        assert_eq!(When(None).to_string(), "");
        let ago = Ago {
            at: Some(t),
            now: pingtower_core::Timestamp::from_millis(1_795_000_090_000),
        };
        assert!(ago.to_string().ends_with(">90 s ago</time>"));
    }
}
