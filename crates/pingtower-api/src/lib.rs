//! PingTower's HTTP layer.
//!
//! Invariant: this is the only crate that knows HTTP and the JSON shapes of the public
//! interface. Handlers translate between those shapes and the store, bus and writer; they hold
//! no state of their own beyond [`AppState`].

mod health;
mod middleware;
mod problem;
mod push;

use axum::Router;
use axum::routing::get;
use pingtower_bus::Bus;
use pingtower_engine::{Metrics, WriterHandle};
use pingtower_store::Store;
use std::sync::Arc;

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
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/push/{token}", get(push::push).post(push::push))
        .fallback(problem::not_found)
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
