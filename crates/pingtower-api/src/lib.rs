//! PingTower's HTTP layer.
//!
//! Invariant: this is the only crate that knows HTTP and the JSON shapes of the public
//! interface. Handlers translate between those shapes and the store, bus and writer; they hold
//! no state of their own beyond [`AppState`]. Every `/api/v1` route is declared with its
//! OpenAPI description (utoipa), so `/api/v1/openapi.json` is generated from the same code that
//! serves the requests.

mod access;
pub mod account_mail;
pub mod analytics;
pub mod auth;
mod browser_login;
mod config;
mod docs;
pub mod events;
mod health;
mod http;
mod incidents;
mod input;
mod listener;
mod middleware;
mod monitors;
pub mod oidc;
mod problem;
mod push;
mod resources;
mod stats;
mod web;

use axum::Router;
use axum::routing::get;
use pingtower_bus::Bus;
use pingtower_engine::{Metrics, WriterHandle};
use pingtower_store::Store;
use std::sync::Arc;
use utoipa::OpenApi;

pub use access::bootstrap_admin;
pub use auth::AuthState;
pub use health::MetricsAccess;
pub use listener::{MAX_URI_BYTES, serve};
pub use problem::{FieldError, Problem};
pub use push::PushClock;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub writer: WriterHandle,
    pub metrics: Metrics,
    /// The region this process reports results from.
    pub region: Arc<str>,
    pub push_clock: Arc<push::PushClock>,
    pub auth: Arc<AuthState>,
    /// The client that sends channel test messages (bound to the operator's blocklist).
    pub notify_http: pingtower_notify::channels::Outbound,
    /// Live updates for `/api/v1/events/stream`.
    pub events: events::EventHub,
    /// Who may read `/metrics` and whether it shows per-monitor series.
    pub metrics_access: MetricsAccess,
    /// Limits per tenant (the operator's settings).
    pub quotas: Quotas,
    /// Tenants' own analytics events (not the live view's `events`).
    pub analytics: analytics::Analytics,
}

/// What one tenant may have: an operator hosting others sets these.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Most monitors per tenant; `None`: no limit.
    pub max_monitors: Option<u32>,
    /// Shortest check interval, in milliseconds.
    pub min_interval_ms: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_monitors: None,
            min_interval_ms: pingtower_core::monitor::MIN_INTERVAL_MS,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PingTower API",
        description = "Monitors, results, incidents, notification channels and rules, status pages and access management. Authenticate with `Authorization: Bearer` and a login token (`POST /api/v1/auth/login`) or an API key. Errors are `application/problem+json`.",
    ),
    modifiers(&Security),
    security(("bearer" = [])),
    components(schemas(Problem, FieldError)),
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("a login token or an API key (`ptk_…`)"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the REST API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_links(api_routes().split_for_parts().1)
}

/// Adds OpenAPI links from each create (`POST /x` answering 201 or 202 with an `id`) and each
/// list (`GET /x`, its first item) to the operations on that object (`/x/{id}` and below, one
/// path parameter), so that tools that follow links (schemathesis' stateful phase) act on real
/// objects.
fn with_links(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::Link;
    fn pointer(path: &str, method: &str) -> String {
        let escaped = path
            .replace('~', "~0")
            .replace('/', "~1")
            .replace('{', "%7B")
            .replace('}', "%7D");
        format!("#/paths/{escaped}/{method}")
    }
    // The operations under each collection: (path, its one parameter, method).
    let mut targets: Vec<(String, String, &'static str)> = Vec::new();
    for (path, item) in &doc.paths.paths {
        let params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let [param] = params[..] else { continue };
        for (method, op) in [
            ("get", &item.get),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
            ("post", &item.post),
        ] {
            if op.is_some() {
                targets.push((path.clone(), param.to_owned(), method));
            }
        }
    }
    for (path, item) in &mut doc.paths.paths {
        let prefix = format!("{path}/{{");
        // What a create made (its `id`), and the first item of a list (`items[0].id`).
        for (method_of, status, value) in [
            ("post", "201", "$response.body#/id"),
            ("post", "202", "$response.body#/id"),
            ("get", "200", "$response.body#/items/0/id"),
        ] {
            let op = if method_of == "post" {
                item.post.as_mut()
            } else {
                item.get.as_mut()
            };
            let Some(op) = op else { continue };
            let Some(RefOr::T(response)) = op.responses.responses.get_mut(status) else {
                continue;
            };
            for (target, param, method) in targets.iter().filter(|(t, ..)| t.starts_with(&prefix)) {
                let name = format!("{method} {target}");
                // utoipa 5.5 writes `operation_ref` in snake case; the specification's name is
                // set through the link's extensions (written flat beside its fields).
                let mut spec_names = utoipa::openapi::extensions::Extensions::default();
                spec_names.insert(
                    "operationRef".into(),
                    serde_json::Value::String(pointer(target, method)),
                );
                let link = Link::builder()
                    .parameter(param.clone(), value)
                    .extensions(Some(spec_names))
                    .build();
                response.links.insert(name, RefOr::T(link));
            }
        }
    }
    doc
}

fn api_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(access::routes())
        .merge(monitors::routes())
        .merge(incidents::routes())
        .merge(resources::routes())
        .merge(config::routes())
        .merge(browser_login::routes())
        .merge(events::routes())
        .merge(analytics::routes())
        .merge(stats::routes())
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let openapi = Arc::new(with_links(openapi));
    let docs_page = Arc::new(docs::render(&openapi));
    api.route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/push/{token}", get(push::push).post(push::push))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .route(
            "/api/v1/docs",
            get(move || {
                let page = docs_page.clone();
                async move { axum::response::Html(page.as_ref().clone()) }
            }),
        )
        .merge(web::routes())
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(axum::middleware::from_fn(web::tenant_from_cookie))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            problem::panic_response,
        ))
        .with_state(state)
}
