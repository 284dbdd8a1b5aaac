//! The real API router over a SQLite store in `dir` (and an events store at `events_url`), as
//! the benchmarks that time the HTTP side build it.

use pingtower_api::{AppState, AuthState};
use pingtower_bus::{Bus, MemoryBus};
use pingtower_engine::{Metrics, ResultWriter, WriterConfig};
use pingtower_store::{Store, StoreOptions};
use std::sync::Arc;

pub struct App {
    pub router: axum::Router,
    pub store: Arc<dyn Store>,
    pub events: Arc<dyn pingtower_analytics::EventStore>,
    /// Stops the writer when dropped.
    pub _stop: tokio_util::sync::DropGuard,
}

pub async fn build(dir: &std::path::Path, events_url: &str) -> anyhow::Result<App> {
    // The channel-test client is built with rustls and no provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store: Arc<dyn Store> = pingtower_store::open(&url, &StoreOptions::default()).await?;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let metrics = Metrics::new();
    let (writer, _task) = ResultWriter::spawn(
        store.clone(),
        bus.clone(),
        WriterConfig::default(),
        metrics.clone(),
        stop.clone(),
    );
    let keys = pingtower_engine::secrets::Keys::new(&[7u8; 32])?;
    let events = pingtower_analytics::store::open(events_url).await?;
    let state = AppState {
        store: store.clone(),
        bus,
        writer,
        metrics,
        region: Arc::from("bench"),
        push_clock: Arc::default(),
        auth: Arc::new(AuthState::new(keys)),
        notify_http: pingtower_notify::channels::Outbound::new(Default::default())?,
        events: pingtower_api::events::EventHub::default(),
        metrics_access: pingtower_api::MetricsAccess::default(),
        quotas: pingtower_api::Quotas::default(),
        analytics: pingtower_api::analytics::Analytics::new(events.clone(), None, 0),
    };
    Ok(App {
        router: pingtower_api::router(state),
        store,
        events,
        _stop: stop.drop_guard(),
    })
}
