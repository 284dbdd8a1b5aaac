//! The `analytics` role's background work: packing appended events into blocks (every two
//! seconds), reclaiming the space of replaced rows (every 15 seconds), and the partitions
//! ahead of time (PostgreSQL) and retention (`PINGTOWER_EVENTS_RETENTION_DAYS`), every ten
//! minutes.

use crate::EventStore;
use pingtower_core::Timestamp;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(600);
const PACK_EVERY: Duration = Duration::from_secs(2);
const RECLAIM_EVERY: Duration = Duration::from_secs(15);

/// Chunks one round packs at most, so that a round ends (and retention and shutdown get
/// their turn) however fast events arrive.
const CHUNKS_PER_ROUND: usize = 20;

/// Packs what waits, a chunk at a time, until less than a chunk is left (or
/// [`CHUNKS_PER_ROUND`] chunks). Returns the events packed.
pub async fn pack(store: &dyn EventStore) -> crate::store::Result<u64> {
    let mut packed = 0;
    for _ in 0..CHUNKS_PER_ROUND {
        let n = store.pack(crate::store::PACK_CHUNK).await?;
        packed += n;
        if n < u64::from(crate::store::PACK_CHUNK) {
            break;
        }
    }
    Ok(packed)
}

/// One round: prepares what is ahead, then removes what is past retention (and idempotency keys
/// past their window). Returns the events removed.
pub async fn once(
    store: &dyn EventStore,
    retention_ms: Option<i64>,
    now: Timestamp,
) -> crate::store::Result<u64> {
    store.maintain(now).await?;
    let before = retention_ms.map_or(Timestamp::from_millis(0), |keep| {
        Timestamp::from_millis(now.as_millis().saturating_sub(keep))
    });
    store.prune(before, now).await
}

/// Runs [`pack`] every two seconds, [`EventStore::reclaim`] every 15 seconds and [`once`]
/// every ten minutes until `stop` completes.
pub async fn run(
    store: Arc<dyn EventStore>,
    retention_ms: Option<i64>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut last_round: Option<tokio::time::Instant> = None;
    let mut last_reclaim = tokio::time::Instant::now();
    loop {
        if last_round.is_none_or(|t| t.elapsed() >= EVERY) {
            last_round = Some(tokio::time::Instant::now());
            let now = Timestamp::from_datetime(chrono::Utc::now());
            match once(store.as_ref(), retention_ms, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "removed analytics events past retention"),
                Err(e) => {
                    tracing::warn!(error = %e, "analytics maintenance failed; retrying later")
                }
            }
        }
        if let Err(e) = pack(store.as_ref()).await {
            tracing::warn!(error = %e, "packing analytics events failed; retrying soon");
        }
        if last_reclaim.elapsed() >= RECLAIM_EVERY {
            last_reclaim = tokio::time::Instant::now();
            if let Err(e) = store.reclaim().await {
                tracing::warn!(error = %e, "reclaiming analytics space failed; retrying later");
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(PACK_EVERY) => {}
        }
    }
}
