//! The state evaluator on a real SQLite store: confirmation counts, exactly one incident per
//! transition under redelivery and restarts, and state changes on the bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_bus::{Bus, MemoryBus, SubscribeOptions, topics};
use pingtower_core::*;
use pingtower_engine::evaluator::{Evaluator, StateChange};
use pingtower_store::{IncidentFilter, PageRequest, Store, StoreOptions};
use std::sync::Arc;
use std::time::Duration;

async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    pingtower_store::open(&url, &StoreOptions::default())
        .await
        .unwrap()
}

async fn monitor(store: &dyn Store, down_after: i32, up_after: i32) -> Monitor {
    let t = store
        .create_tenant("t", Timestamp::from_millis(0))
        .await
        .unwrap();
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), serde_json::json!("http://127.0.0.1:9/"));
    store
        .create_monitor(
            t.id,
            &NewMonitor {
                name: "m".into(),
                kind: MonitorKind::Http,
                settings,
                interval_ms: 1_000,
                timeout_ms: 1_000,
                down_after,
                up_after,
                tags: vec![],
                enabled: true,
                push_token: None,
            },
            Timestamp::from_millis(0),
        )
        .await
        .unwrap()
}

fn result(m: &Monitor, at: i64, status: CheckStatus) -> CheckResult {
    CheckResult {
        monitor_id: m.id,
        monitor_seq: m.seq,
        tenant_id: m.tenant_id,
        region: "r".into(),
        checked_at: Timestamp::from_millis(at),
        status,
        latency_us: 1_000,
        reason: (status == CheckStatus::Down).then(|| format!("failed at {at}")),
        details: None,
    }
}

async fn incidents(store: &dyn Store, m: &Monitor) -> Vec<Incident> {
    let filter = IncidentFilter {
        monitor_id: Some(m.id),
        status: None,
    };
    store
        .list_incidents(m.tenant_id, &filter, &PageRequest::first(100))
        .await
        .unwrap()
        .items
}

async fn status(store: &dyn Store, m: &Monitor) -> MonitorStatus {
    store.get_monitor(m.tenant_id, m.id).await.unwrap().status
}

use CheckStatus::{Degraded as G, Down as D, Up as U};

#[tokio::test]
async fn confirmation_counts_decide_down_and_up_with_one_incident() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let m = monitor(store.as_ref(), 2, 2).await;
    let mut ev = Evaluator::new(store.clone(), bus);

    let steps = [
        (D, MonitorStatus::Pending),
        (D, MonitorStatus::Down),
        (D, MonitorStatus::Down),
        (U, MonitorStatus::Down),
        (D, MonitorStatus::Down),
        (U, MonitorStatus::Down),
        (U, MonitorStatus::Up),
        (G, MonitorStatus::Degraded),
        (D, MonitorStatus::Degraded),
        (U, MonitorStatus::Up),
    ];
    let mut changes: Vec<StateChange> = Vec::new();
    for (i, (r, want)) in steps.iter().enumerate() {
        changes.extend(
            ev.fold(&[result(&m, 1_000 * (i as i64 + 1), *r)])
                .await
                .unwrap(),
        );
        assert_eq!(status(store.as_ref(), &m).await, *want, "after step {i}");
    }
    let inc = incidents(store.as_ref(), &m).await;
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].status, IncidentStatus::Resolved);
    assert_eq!(inc[0].reason.as_deref(), Some("failed at 2000"));
    assert_eq!(inc[0].opened_at, Timestamp::from_millis(2_000));
    assert_eq!(inc[0].resolved_at, Some(Timestamp::from_millis(7_000)));
    let kinds: Vec<(MonitorStatus, MonitorStatus)> =
        changes.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(
        kinds,
        [
            (MonitorStatus::Pending, MonitorStatus::Down),
            (MonitorStatus::Down, MonitorStatus::Up),
            (MonitorStatus::Up, MonitorStatus::Degraded),
            (MonitorStatus::Degraded, MonitorStatus::Up),
        ]
    );
    assert_eq!(changes[0].incident_id, Some(inc[0].id));
    assert_eq!(changes[1].incident_id, Some(inc[0].id));
}

#[tokio::test]
async fn redelivered_and_late_results_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let m = monitor(store.as_ref(), 1, 1).await;
    let mut ev = Evaluator::new(store.clone(), bus);
    let batch = vec![result(&m, 1_000, U), result(&m, 2_000, D)];
    assert_eq!(ev.fold(&batch).await.unwrap().len(), 2);
    // The same batch again, and a late UP from before the failure.
    assert!(ev.fold(&batch).await.unwrap().is_empty());
    assert!(ev.fold(&[result(&m, 1_500, U)]).await.unwrap().is_empty());
    assert_eq!(status(store.as_ref(), &m).await, MonitorStatus::Down);
    assert_eq!(incidents(store.as_ref(), &m).await.len(), 1);
    // Out of order within one batch: sorted by time first.
    let changes = ev
        .fold(&[result(&m, 4_000, D), result(&m, 3_000, U)])
        .await
        .unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(incidents(store.as_ref(), &m).await.len(), 2);
}

#[tokio::test]
async fn a_restarted_evaluator_carries_on_where_the_store_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let m = monitor(store.as_ref(), 1, 1).await;
    let mut first = Evaluator::new(store.clone(), bus.clone());
    first.fold(&[result(&m, 1_000, D)]).await.unwrap();
    drop(first);
    // A new process: it knows the monitor is down from its open incident.
    let mut second = Evaluator::new(store.clone(), bus.clone());
    // A redelivered DOWN from before the restart opens nothing new.
    assert!(
        second
            .fold(&[result(&m, 1_000, D)])
            .await
            .unwrap()
            .is_empty()
    );
    let up = second.fold(&[result(&m, 2_000, U)]).await.unwrap();
    assert_eq!(up[0].to, MonitorStatus::Up);
    let down = second.fold(&[result(&m, 3_000, D)]).await.unwrap();
    assert_eq!(down[0].transition, 2);
    let inc = incidents(store.as_ref(), &m).await;
    assert_eq!(inc.len(), 2);
    assert_eq!(inc[0].transition, 2);
    assert_eq!(inc[1].status, IncidentStatus::Resolved);
}

#[tokio::test]
async fn the_running_evaluator_publishes_state_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let m = monitor(store.as_ref(), 1, 1).await;
    let mut states = bus
        .subscribe(topics::MONITOR_STATE, "test", SubscribeOptions::default())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Evaluator::new(store.clone(), bus.clone()).run(stop.clone()));
    // Give the evaluator its subscription before publishing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    pingtower_bus::publish_json(
        bus.as_ref(),
        topics::CHECK_RESULTS,
        &vec![result(&m, 1_000, D)],
    )
    .await
    .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), states.next())
        .await
        .unwrap()
        .unwrap();
    let change: StateChange = d.message.json().unwrap();
    d.ack();
    assert_eq!((change.monitor_id, change.to), (m.id, MonitorStatus::Down));
    assert!(change.incident_id.is_some());
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn maintenance_shows_in_the_state_and_opens_no_incident() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let m = monitor(store.as_ref(), 1, 1).await;
    store
        .create_resource(
            m.tenant_id,
            &NewResource {
                kind: ResourceKind::Maintenance,
                name: "upgrade".into(),
                slug: None,
                spec: serde_json::json!({"monitors": [m.id.to_string()],
                    "starts_at": "1970-01-01T00:00:10Z", "ends_at": "1970-01-01T00:00:20Z"}),
                secret: None,
            },
            Timestamp::from_millis(0),
        )
        .await
        .unwrap();
    let mut ev = Evaluator::new(store.clone(), bus);
    ev.fold(&[result(&m, 5_000, U)]).await.unwrap();
    // Failing during the window: maintenance, no incident.
    let c = ev.fold(&[result(&m, 12_000, D)]).await.unwrap();
    assert_eq!(c[0].to, MonitorStatus::Maintenance);
    ev.fold(&[result(&m, 15_000, D)]).await.unwrap();
    assert_eq!(status(store.as_ref(), &m).await, MonitorStatus::Maintenance);
    assert!(incidents(store.as_ref(), &m).await.is_empty());
    // Still failing after it: down, and now an incident.
    let c = ev.fold(&[result(&m, 21_000, D)]).await.unwrap();
    assert_eq!(
        (c[0].from, c[0].to),
        (MonitorStatus::Maintenance, MonitorStatus::Down)
    );
    assert_eq!(incidents(store.as_ref(), &m).await.len(), 1);
}

#[tokio::test]
async fn a_dependent_monitor_links_to_its_parents_incident_and_is_suppressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let parent = monitor(store.as_ref(), 1, 1).await;
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), serde_json::json!("http://127.0.0.1:9/child"));
    settings.insert(
        "depends_on".into(),
        serde_json::json!(parent.id.to_string()),
    );
    let child = store
        .create_monitor(
            parent.tenant_id,
            &NewMonitor {
                name: "child".into(),
                kind: MonitorKind::Http,
                settings,
                interval_ms: 1_000,
                timeout_ms: 1_000,
                down_after: 1,
                up_after: 1,
                tags: vec![],
                enabled: true,
                push_token: None,
            },
            Timestamp::from_millis(0),
        )
        .await
        .unwrap();
    let mut ev = Evaluator::new(store.clone(), bus);
    // The child alone fails: not suppressed.
    let c = ev.fold(&[result(&child, 1_000, D)]).await.unwrap();
    assert_eq!(c[0].suppressed_by, None);
    ev.fold(&[result(&child, 2_000, U)]).await.unwrap();
    // The parent is down, then the child fails: linked and suppressed.
    let p = ev.fold(&[result(&parent, 3_000, D)]).await.unwrap();
    let c = ev.fold(&[result(&child, 4_000, D)]).await.unwrap();
    assert_eq!(c[0].suppressed_by, Some(parent.id));
    let child_incident = c[0].incident_id.unwrap();
    let events = store
        .incident_events(parent.tenant_id, child_incident)
        .await
        .unwrap();
    let note = events
        .iter()
        .find(|e| e.kind == IncidentEventKind::Comment)
        .expect("a link to the parent");
    assert!(
        note.message
            .as_deref()
            .unwrap()
            .contains(&p[0].incident_id.unwrap().to_string()),
        "{note:?}"
    );
}

#[tokio::test]
async fn certificates_are_reported_once_per_threshold() {
    use pingtower_engine::evaluator::cert_threshold;
    assert_eq!(cert_threshold(45), None);
    assert_eq!(cert_threshold(20), Some(30));
    assert_eq!(cert_threshold(14), Some(14));
    assert_eq!(cert_threshold(2), Some(3));
    assert_eq!(cert_threshold(-3), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let m = monitor(store.as_ref(), 1, 1).await;
    let mut ev = Evaluator::new(store.clone(), bus);
    const DAY: i64 = 86_400_000;
    let with_cert = |at: i64, expires: i64| {
        let mut r = result(&m, at, U);
        r.details =
            Some(serde_json::json!({"cert": {"expires_at": Timestamp::from_millis(expires)}}));
        r
    };
    let expires = 40 * DAY;
    let batch = [with_cert(DAY, expires)]; // 39 days left: nothing
    ev.fold(&batch).await.unwrap();
    assert!(ev.certs(&batch).is_empty());
    let batch = [with_cert(20 * DAY, expires)]; // 20 days: the 30-day threshold
    ev.fold(&batch).await.unwrap();
    let c = ev.certs(&batch);
    assert_eq!((c.len(), c[0].threshold_days, c[0].days_left), (1, 30, 20));
    let batch = [with_cert(21 * DAY, expires)]; // still within 30: reported already
    ev.fold(&batch).await.unwrap();
    assert!(ev.certs(&batch).is_empty());
    let batch = [with_cert(34 * DAY, expires)]; // 6 days: the 7-day threshold
    ev.fold(&batch).await.unwrap();
    assert_eq!(ev.certs(&batch)[0].threshold_days, 7);
    let batch = [with_cert(35 * DAY, 125 * DAY)]; // renewed: 90 days, nothing
    ev.fold(&batch).await.unwrap();
    assert!(ev.certs(&batch).is_empty());
}
