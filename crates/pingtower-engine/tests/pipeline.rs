//! Scheduler -> checks.due -> worker -> writer -> store, against a target server on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_bus::{Bus, MemoryBus, SubscribeOptions, topics};
use pingtower_checks::{Checker, TlsContext};
use pingtower_core::*;
use pingtower_engine::{
    Metrics, ResultWriter, Scheduler, SchedulerConfig, Worker, WorkerConfig, WriterConfig,
    notify_monitor_changed,
};
use pingtower_store::{PageRequest, Store, StoreOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A minimal HTTP/1.1 server on loopback answering 200 "ok"; stops when the returned token fires.
async fn target() -> (std::net::SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stopped.cancelled() => return,
                accepted = listener.accept() => {
                    let Ok((mut s, _)) = accepted else { return };
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    });
                }
            }
        }
    });
    (addr, stop)
}

fn http_monitor(name: &str, url: &str) -> NewMonitor {
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), serde_json::json!(url));
    settings.insert(
        "assertions".into(),
        serde_json::json!(["status == 200", "body == \"ok\""]),
    );
    NewMonitor {
        name: name.into(),
        kind: MonitorKind::Http,
        settings,
        interval_ms: 1_000,
        timeout_ms: 1_000,
        down_after: 1,
        up_after: 1,
        tags: vec![],
        enabled: true,
        push_token: None,
    }
}

async fn results(store: &Arc<dyn Store>, m: &Monitor) -> Vec<CheckResult> {
    let mut r = store
        .list_results(m.tenant_id, m.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    r.reverse();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_are_checked_on_time_and_changes_apply_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let metrics = Metrics::new();
    let tenant = store
        .create_tenant("acme", pingtower_engine::now())
        .await
        .unwrap()
        .id;
    let (addr, stop_target) = target().await;
    let base = format!("http://{addr}/health");
    let mut monitors = Vec::new();
    for i in 0..3 {
        monitors.push(
            store
                .create_monitor(
                    tenant,
                    &http_monitor(&format!("m{i}"), &base),
                    pingtower_engine::now(),
                )
                .await
                .unwrap(),
        );
    }
    let mut published = bus
        .subscribe(topics::CHECK_RESULTS, "test", SubscribeOptions::default())
        .await
        .unwrap();

    let stop_roles = CancellationToken::new();
    let stop_writer = CancellationToken::new();
    let (writer, writer_task) = ResultWriter::spawn(
        store.clone(),
        bus.clone(),
        WriterConfig::default(),
        metrics.clone(),
        stop_writer.clone(),
    );
    let checker =
        Checker::with_tls(TlsContext::with_roots(rustls::RootCertStore::empty()).unwrap());
    let scheduler = Scheduler::new(
        store.clone(),
        bus.clone(),
        SchedulerConfig::default(),
        metrics.clone(),
    );
    let worker = Worker::new(
        store.clone(),
        bus.clone(),
        writer.clone(),
        checker,
        WorkerConfig {
            concurrency: 16,
            region: "eu-test".into(),
        },
        metrics.clone(),
    );
    drop(writer);
    let scheduler_task = tokio::spawn(scheduler.run(stop_roles.clone()));
    let worker_task = tokio::spawn(worker.run(stop_roles.clone()));

    tokio::time::sleep(Duration::from_millis(3_600)).await;
    for m in &monitors {
        let r = results(&store, m).await;
        assert!(
            (3..=4).contains(&r.len()),
            "{}: {} results in 3.6 s at 1 s",
            m.name,
            r.len()
        );
        assert!(
            r.iter()
                .all(|r| r.status == CheckStatus::Up && r.region == "eu-test"),
            "{r:?}"
        );
        // No drift: checks stay one interval apart.
        for w in r.windows(2) {
            let gap = w[1].checked_at.as_millis() - w[0].checked_at.as_millis();
            assert!((850..=1150).contains(&gap), "{}: gap {gap} ms", m.name);
        }
        assert!(r[0].details.as_ref().unwrap()["timings"]["ttfb_us"].is_i64());
    }
    let d = tokio::time::timeout(Duration::from_secs(2), published.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !d.message.json::<Vec<CheckResult>>().unwrap().is_empty(),
        "results are published after commit"
    );
    d.ack();

    // Pause one, delete one, add one: each applies within a second, without a restart.
    let mut paused = http_monitor("m0", &base);
    paused.enabled = false;
    store
        .update_monitor(
            tenant,
            monitors[0].id,
            None,
            &paused,
            pingtower_engine::now(),
        )
        .await
        .unwrap();
    notify_monitor_changed(bus.as_ref(), tenant, monitors[0].id)
        .await
        .unwrap();
    store.delete_monitor(tenant, monitors[1].id).await.unwrap();
    notify_monitor_changed(bus.as_ref(), tenant, monitors[1].id)
        .await
        .unwrap();
    let added = store
        .create_monitor(tenant, &http_monitor("m3", &base), pingtower_engine::now())
        .await
        .unwrap();
    notify_monitor_changed(bus.as_ref(), tenant, added.id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let paused_count = results(&store, &monitors[0]).await.len();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(
        results(&store, &monitors[0]).await.len(),
        paused_count,
        "a paused monitor is not checked"
    );
    assert!(
        results(&store, &added).await.len() >= 2,
        "a new monitor is checked"
    );

    // The target goes away: the next checks are DOWN with the reason.
    stop_target.cancel();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = results(&store, &monitors[2]).await;
    let last = r.last().unwrap();
    assert_eq!(last.status, CheckStatus::Down, "{last:?}");
    assert!(
        last.reason
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{last:?}"
    );

    stop_roles.cancel();
    scheduler_task.await.unwrap().unwrap();
    worker_task.await.unwrap().unwrap();
    stop_writer.cancel();
    writer_task.await.unwrap();
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("pingtower_check_schedule_lag_seconds_count"),
        "{text}"
    );
    assert!(text.contains("pingtower_scheduled_monitors 2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_heartbeat_goes_down_and_pings_hold_it_up() {
    use pingtower_engine::heartbeat::{HeartbeatPing, HeartbeatWatcher, publish_ping};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let store = pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let tenant = store
        .create_tenant("acme", pingtower_engine::now())
        .await
        .unwrap()
        .id;
    let mut settings = serde_json::Map::new();
    settings.insert("grace_seconds".into(), serde_json::json!(1));
    let hb = NewMonitor {
        name: "nightly".into(),
        kind: MonitorKind::Heartbeat,
        settings,
        interval_ms: 1_000,
        timeout_ms: 1_000,
        down_after: 1,
        up_after: 1,
        tags: vec![],
        enabled: true,
        push_token: Some("tok".into()),
    };
    let m = store
        .create_monitor(tenant, &hb, pingtower_engine::now())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let stop_writer = CancellationToken::new();
    let (writer, writer_task) = ResultWriter::spawn(
        store.clone(),
        bus.clone(),
        WriterConfig::default(),
        Metrics::new(),
        stop_writer.clone(),
    );
    let watcher =
        HeartbeatWatcher::new(store.clone(), bus.clone(), writer.clone(), "default".into());
    let task = tokio::spawn(watcher.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Pings every 500 ms for 3 s: never late, nothing recorded by the watcher.
    for _ in 0..6 {
        let at = pingtower_engine::now();
        let r = CheckResult {
            monitor_id: m.id,
            monitor_seq: m.seq,
            tenant_id: tenant,
            region: "default".into(),
            checked_at: at,
            status: CheckStatus::Up,
            latency_us: 0,
            reason: None,
            details: None,
        };
        writer.write(vec![r]).await.unwrap();
        publish_ping(
            bus.as_ref(),
            &HeartbeatPing {
                tenant_id: tenant,
                monitor_id: m.id,
                at,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let downs = |r: &[CheckResult]| r.iter().filter(|r| r.status == CheckStatus::Down).count();
    assert_eq!(
        downs(&results(&store, &m).await),
        0,
        "regular pings keep it up"
    );

    // Silence: DOWN once the interval plus grace (2 s) has passed, then once a second.
    tokio::time::sleep(Duration::from_millis(3_300)).await;
    let r = results(&store, &m).await;
    let n = downs(&r);
    assert!(
        (2..=3).contains(&n),
        "{n} DOWN results after 3.3 s of silence: {r:?}"
    );
    let last = r.last().unwrap();
    assert!(
        last.reason
            .as_deref()
            .unwrap()
            .starts_with("no ping since "),
        "{last:?}"
    );
    assert!(
        last.reason
            .as_deref()
            .unwrap()
            .contains("expected every 1s, 1s grace"),
        "{last:?}"
    );

    stop.cancel();
    task.await.unwrap().unwrap();
    drop(writer);
    stop_writer.cancel();
    writer_task.await.unwrap();
}
