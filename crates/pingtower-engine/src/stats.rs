//! The stats role's folding: results become rollups shortly after their minute closes, and
//! older raw results are compacted into hourly chunks.
//!
//! Folding reads what the store holds rather than the bus: a result counts once because the
//! store refused its duplicate, not because a consumer remembered it (see the store's
//! `stats.rs`). Results checked in the last [`StatsConfig::lateness`] are left for the next
//! round; any that arrive later still count, through the store's late path.

use pingtower_core::resource::MaintenanceWindow;
use pingtower_core::stats::{Attribution, NoMaintenance};
use pingtower_core::{MonitorId, ResourceKind, TenantId, Timestamp};
use pingtower_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// How often closed minutes are folded.
    pub fold_every: Duration,
    /// How long after a minute closes it is folded (results still in flight get this long).
    pub lateness: Duration,
    /// Most of the timeline one fold transaction covers (catching up after downtime).
    pub fold_span: Duration,
    /// How often older raw results are compacted.
    pub compact_every: Duration,
    /// Raw results younger than this stay in plain rows (with all their details).
    pub compact_after: Duration,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            fold_every: Duration::from_secs(20),
            lateness: Duration::from_secs(120),
            fold_span: Duration::from_secs(3_600),
            compact_every: Duration::from_secs(600),
            compact_after: Duration::from_secs(2 * 3_600),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Maintenance windows by monitor seq, read when a fold begins.
struct Windows {
    monitors: HashMap<i64, (TenantId, MonitorId, Vec<String>)>,
    windows: HashMap<TenantId, Vec<MaintenanceWindow>>,
}

impl Attribution for Windows {
    fn in_maintenance(&self, seq: i64, at: Timestamp) -> bool {
        let Some((tenant, id, tags)) = self.monitors.get(&seq) else {
            return false;
        };
        self.windows
            .get(tenant)
            .is_some_and(|ws| ws.iter().any(|w| w.covers(*id, tags, at)))
    }
}

/// The maintenance windows that exist now; `None` when there are none (the common case,
/// which then costs no monitor list).
async fn windows(store: &dyn Store) -> Result<Option<Windows>, crate::EngineError> {
    let mut windows = HashMap::new();
    for tenant in store.list_tenants().await? {
        let ws: Vec<MaintenanceWindow> = store
            .list_resources(tenant.id, ResourceKind::Maintenance)
            .await?
            .iter()
            .filter_map(|r| MaintenanceWindow::from_spec(&r.spec))
            .collect();
        if !ws.is_empty() {
            windows.insert(tenant.id, ws);
        }
    }
    if windows.is_empty() {
        return Ok(None);
    }
    let monitors = store
        .all_monitors()
        .await?
        .into_iter()
        .filter(|m| windows.contains_key(&m.tenant_id))
        .map(|m| (m.seq, (m.tenant_id, m.id, m.tags)))
        .collect();
    Ok(Some(Windows { monitors, windows }))
}

/// Folds everything up to `now - lateness`. Returns the results counted.
pub async fn fold_once(
    store: &dyn Store,
    config: &StatsConfig,
    now: Timestamp,
) -> Result<u64, crate::EngineError> {
    let until = now.add_millis(-millis(config.lateness));
    let attribution = windows(store).await?;
    let attribution: &dyn Attribution = match &attribution {
        Some(w) => w,
        None => &NoMaintenance,
    };
    let mut counted = 0;
    loop {
        let r = store
            .fold_results(until, millis(config.fold_span), attribution)
            .await?;
        counted += r.folded + r.late;
        if r.caught_up {
            return Ok(counted);
        }
    }
}

/// Compacts the folded raw results older than `compact_after`. Returns the results moved.
pub async fn compact_once(
    store: &dyn Store,
    config: &StatsConfig,
    now: Timestamp,
) -> Result<u64, crate::EngineError> {
    Ok(store
        .compact_results(now.add_millis(-millis(config.compact_after)))
        .await?)
}

/// Folds every `fold_every` and compacts every `compact_every` until shutdown.
pub async fn run(store: Arc<dyn Store>, config: StatsConfig, shutdown: CancellationToken) {
    let mut fold_tick = tokio::time::interval(config.fold_every);
    fold_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut compact_tick = tokio::time::interval(config.compact_every);
    compact_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let compact = tokio::select! {
            _ = fold_tick.tick() => false,
            _ = compact_tick.tick() => true,
            () = shutdown.cancelled() => return,
        };
        let started = std::time::Instant::now();
        let work = async {
            if compact {
                compact_once(store.as_ref(), &config, crate::now()).await
            } else {
                fold_once(store.as_ref(), &config, crate::now()).await
            }
        };
        let outcome = tokio::select! {
            r = work => r,
            () = shutdown.cancelled() => return,
        };
        let what = if compact { "compaction" } else { "fold" };
        match outcome {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                what,
                results = n,
                took_ms = started.elapsed().as_millis() as u64,
                "statistics updated"
            ),
            Err(e) => tracing::warn!(what, error = %e, "statistics upkeep failed; will retry"),
        }
    }
}
