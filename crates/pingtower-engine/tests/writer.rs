#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_bus::{Bus, MemoryBus, SubscribeOptions, topics};
use pingtower_core::*;
use pingtower_engine::{EngineError, Metrics, ResultWriter, WriterConfig};
use pingtower_store::{PageRequest, Store, StoreOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    monitor: Monitor,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let store = pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let t = store
        .create_tenant("acme", pingtower_engine::now())
        .await
        .unwrap();
    let new = NewMonitor {
        name: "api".into(),
        kind: MonitorKind::Tcp,
        settings: Default::default(),
        interval_ms: 1_000,
        timeout_ms: 1_000,
        down_after: 1,
        up_after: 1,
        tags: vec![],
        enabled: true,
        push_token: None,
    };
    let monitor = store
        .create_monitor(t.id, &new, pingtower_engine::now())
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        store,
        bus: Arc::new(MemoryBus::new()),
        monitor,
    }
}

impl Fixture {
    /// A writer over the fixture's store and bus.
    fn writer(
        &self,
        config: WriterConfig,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> (pingtower_engine::WriterHandle, tokio::task::JoinHandle<()>) {
        ResultWriter::spawn(
            self.store.clone(),
            self.bus.clone(),
            config,
            metrics.clone(),
            shutdown.clone(),
        )
    }
}

fn result(m: &Monitor, ms: i64) -> CheckResult {
    CheckResult {
        monitor_id: m.id,
        monitor_seq: m.seq,
        tenant_id: m.tenant_id,
        region: "default".into(),
        checked_at: Timestamp::from_millis(1_795_000_000_000 + ms),
        status: CheckStatus::Up,
        latency_us: 10,
        reason: None,
        details: None,
    }
}

async fn stored(f: &Fixture) -> usize {
    f.store
        .list_results(f.monitor.tenant_id, f.monitor.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_results_are_acknowledged_then_published() {
    let f = fixture().await;
    let mut sub = f
        .bus
        .subscribe(topics::CHECK_RESULTS, "test", SubscribeOptions::default())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let (w, task) = f.writer(WriterConfig::default(), &Metrics::new(), &shutdown);
    w.write(vec![result(&f.monitor, 1), result(&f.monitor, 2)])
        .await
        .unwrap();
    assert_eq!(stored(&f).await, 2, "acknowledged means committed");
    let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    let published: Vec<CheckResult> = d.message.json().unwrap();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].monitor_id, f.monitor.id);
    d.ack();
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_are_batched() {
    let f = fixture().await;
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let config = WriterConfig {
        linger: Duration::from_millis(50),
        ..Default::default()
    };
    let (w, task) = f.writer(config, &metrics, &shutdown);
    let mut producers = Vec::new();
    for p in 0..50i64 {
        let (w, m) = (w.clone(), f.monitor.clone());
        producers.push(tokio::spawn(async move {
            w.write(vec![result(&m, 10 + p)]).await
        }));
    }
    for p in producers {
        p.await.unwrap().unwrap();
    }
    assert_eq!(stored(&f).await, 50);
    assert_eq!(metrics.results_written.get(), 50);
    assert!(
        metrics.result_batches.get() < 50,
        "{} batches for 50 results",
        metrics.result_batches.get()
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_everything_already_submitted() {
    let f = fixture().await;
    let shutdown = CancellationToken::new();
    let (w, task) = f.writer(WriterConfig::default(), &Metrics::new(), &shutdown);
    let mut pending = Vec::new();
    for i in 0..300 {
        pending.push(w.submit(vec![result(&f.monitor, 100 + i)]).await.unwrap());
    }
    shutdown.cancel();
    task.await.unwrap();
    for p in pending {
        p.await.unwrap().unwrap();
    }
    assert_eq!(stored(&f).await, 300);
    assert!(matches!(
        w.write(vec![result(&f.monitor, 1)]).await,
        Err(EngineError::WriterStopped)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stays_down_fails_the_producers_after_retries() {
    let f = fixture().await;
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let config = WriterConfig {
        max_attempts: 3,
        retry_delay: Duration::from_millis(1),
        ..Default::default()
    };
    let (w, task) = f.writer(config, &metrics, &shutdown);
    f.store.close().await;
    let outcome = w.write(vec![result(&f.monitor, 1)]).await;
    assert!(
        matches!(outcome, Err(EngineError::NotCommitted(_))),
        "{outcome:?}"
    );
    assert_eq!(metrics.result_write_errors.get(), 3);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_results_linger_longer_but_a_push_closes_their_batch_early() {
    let f = fixture().await;
    let metrics = Metrics::new();
    let shutdown = CancellationToken::new();
    let config = WriterConfig {
        linger: Duration::from_millis(50),
        check_linger: Duration::from_secs(3),
        ..Default::default()
    };
    let (w, task) = f.writer(config, &metrics, &shutdown);
    let started = std::time::Instant::now();
    let check = w.submit_check(vec![result(&f.monitor, 1)]).await.unwrap();
    // A check result alone waits for company.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        metrics.result_batches.get(),
        0,
        "committed before its linger"
    );
    // A push joins and is answered promptly; the check result is committed with it.
    w.write(vec![result(&f.monitor, 2)]).await.unwrap();
    check.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the push waited for the check results' linger: {:?}",
        started.elapsed()
    );
    assert_eq!(metrics.result_batches.get(), 1, "one batch");
    shutdown.cancel();
    task.await.unwrap();
}
