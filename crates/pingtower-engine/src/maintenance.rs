//! Storage upkeep: time partitions ahead of need, and raw results pruned by age.

use pingtower_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long raw results are kept, and how often upkeep runs.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub raw_results: Duration,
    pub every: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_results: Duration::from_secs(14 * 86_400),
            every: Duration::from_secs(3_600),
        }
    }
}

/// One round of upkeep. Returns the results removed.
pub async fn run_once(
    store: &dyn Store,
    config: &RetentionConfig,
) -> Result<u64, crate::EngineError> {
    let now = crate::now();
    store.prepare_result_storage(now).await?;
    let keep_ms = i64::try_from(config.raw_results.as_millis()).unwrap_or(i64::MAX);
    let removed = store.prune_results(now.add_millis(-keep_ms)).await?;
    Ok(removed)
}

/// Runs upkeep now and then every `config.every` until shutdown.
pub async fn run(store: Arc<dyn Store>, config: RetentionConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let started = std::time::Instant::now();
        // Upkeep can be long on a big database; shutdown does not wait for it.
        let outcome = tokio::select! {
            r = run_once(store.as_ref(), &config) => r,
            () = shutdown.cancelled() => return,
        };
        match outcome {
            Ok(removed) => tracing::info!(
                removed,
                took_ms = started.elapsed().as_millis() as u64,
                "result retention applied"
            ),
            Err(e) => tracing::warn!(error = %e, "result retention failed; will retry"),
        }
    }
}
