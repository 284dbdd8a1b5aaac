//! Storage upkeep: time partitions ahead of need, raw results and rollups pruned by age
//! (raw 14 days, minute rollups 30 days, hour rollups a year, day rollups for ever, by default).

use pingtower_core::Timestamp;
use pingtower_core::stats::RollupLevel;
use pingtower_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long raw results are kept, and how often upkeep runs.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub raw_results: Duration,
    pub minute_rollups: Duration,
    pub hour_rollups: Duration,
    pub every: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_results: Duration::from_secs(14 * 86_400),
            minute_rollups: Duration::from_secs(30 * 86_400),
            hour_rollups: Duration::from_secs(365 * 86_400),
            every: Duration::from_secs(3_600),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One round of upkeep. Returns the results removed.
pub async fn run_once(
    store: &dyn Store,
    config: &RetentionConfig,
    now: Timestamp,
) -> Result<u64, crate::EngineError> {
    store.prepare_result_storage(now).await?;
    let mut removed = store
        .prune_results(now.add_millis(-millis(config.raw_results)))
        .await?;
    removed += store
        .prune_rollups(
            RollupLevel::Minute,
            now.add_millis(-millis(config.minute_rollups)),
        )
        .await?;
    removed += store
        .prune_rollups(
            RollupLevel::Hour,
            now.add_millis(-millis(config.hour_rollups)),
        )
        .await?;
    // Day rollups are kept for ever; this removes those of deleted monitors.
    removed += store
        .prune_rollups(RollupLevel::Day, Timestamp::from_millis(i64::MIN))
        .await?;
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
            r = run_once(store.as_ref(), &config, crate::now()) => r,
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
