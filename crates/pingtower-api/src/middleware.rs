//! One log line and one metric sample per request.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use pingtower_engine::metrics::HttpLabels;
use std::time::Instant;

pub(crate) async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // Push URLs carry a secret: log the route, not the path.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // The path as asked, except where it holds a secret (push tokens).
    let path = if route.contains("{token}") {
        route.clone()
    } else {
        req.uri().path().to_owned()
    };
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // What the handler logs (an internal error's cause) carries the request id.
    let span = tracing::error_span!("request", request_id = %request_id);
    let response = tracing::Instrument::instrument(next.run(req), span).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    tracing::info!(
        target: "pingtower::http",
        method = %method,
        path = %path,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    let labels = HttpLabels {
        method: method.to_string(),
        route,
        status,
    };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state
        .metrics
        .http_latency
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    response
}

/// Headers that keep pages from being framed by other sites, scripts from other origins from
/// running, and answers from being sniffed as another type. Public status pages may be framed
/// (people embed them); nothing else may.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    use axum::http::{HeaderValue, header};
    let framable = req.uri().path().starts_with("/status/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let policy = if framable {
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'"
    } else {
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    };
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(policy));
    if !framable {
        headers
            .entry(header::X_FRAME_OPTIONS)
            .or_insert(HeaderValue::from_static("DENY"));
    }
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    response
}
