//! Rule timing: after N failures, flap control, re-notification and escalation, checked with
//! the notificator's scan at chosen times (no waiting for minutes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_bus::{Bus, MemoryBus};
use pingtower_core::*;
use pingtower_engine::evaluator::StateChange;
use pingtower_notify::router::Notificator;
use pingtower_store::{PageRequest, Store, StoreOptions};
use serde_json::{Value, json};
use std::sync::Arc;

struct World {
    store: Arc<dyn Store>,
    notificator: Notificator,
    monitor: Monitor,
    ops: ResourceId,
    boss: ResourceId,
    _dir: tempfile::TempDir,
}

const MIN: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;

async fn world(rule: impl FnOnce(&str, &str) -> Value) -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let store = pingtower_store::open(&db, &StoreOptions::default())
        .await
        .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let now = Timestamp::from_millis(T0);
    let tenant = store.create_tenant("t", now).await.unwrap().id;
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), json!("http://127.0.0.1:9/"));
    let monitor = store
        .create_monitor(
            tenant,
            &NewMonitor {
                name: "api".into(),
                kind: MonitorKind::Http,
                settings,
                interval_ms: 60_000,
                timeout_ms: 10_000,
                down_after: 1,
                up_after: 1,
                tags: vec![],
                enabled: true,
                push_token: None,
            },
            now,
        )
        .await
        .unwrap();
    let channel = |name: &str| {
        let store = store.clone();
        let name = name.to_owned();
        async move {
            store
                .create_resource(
                    tenant,
                    &NewResource {
                        kind: ResourceKind::Channel,
                        name,
                        slug: None,
                        spec: json!({"kind": "webhook", "url": "http://127.0.0.1:9/"}),
                        secret: None,
                    },
                    now,
                )
                .await
                .unwrap()
                .id
        }
    };
    let ops = channel("ops").await;
    let boss = channel("boss").await;
    store
        .create_resource(
            tenant,
            &NewResource {
                kind: ResourceKind::Rule,
                name: "rule".into(),
                slug: None,
                spec: rule(&ops.to_string(), &boss.to_string()),
                secret: None,
            },
            now,
        )
        .await
        .unwrap();
    World {
        notificator: Notificator::new(store.clone(), bus),
        store,
        monitor,
        ops,
        boss,
        _dir: dir,
    }
}

impl World {
    /// Results of the monitor, one a minute from `T0`, and the incident of the first DOWN.
    async fn results(&self, statuses: &[CheckStatus]) {
        let rs: Vec<CheckResult> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| CheckResult {
                monitor_id: self.monitor.id,
                monitor_seq: self.monitor.seq,
                tenant_id: self.monitor.tenant_id,
                region: "r".into(),
                checked_at: Timestamp::from_millis(T0 + i as i64 * MIN),
                status: *s,
                latency_us: 1,
                reason: None,
                details: None,
            })
            .collect();
        self.store.insert_results(&rs).await.unwrap();
    }

    async fn open_incident(&self, at: i64) -> Incident {
        self.store
            .open_incident(
                self.monitor.tenant_id,
                self.monitor.id,
                1,
                Some("down"),
                Timestamp::from_millis(at),
            )
            .await
            .unwrap()
            .unwrap()
    }

    fn change(&self, incident: &Incident, to: MonitorStatus) -> StateChange {
        StateChange {
            tenant_id: self.monitor.tenant_id,
            monitor_id: self.monitor.id,
            from: if to == MonitorStatus::Down {
                MonitorStatus::Up
            } else {
                MonitorStatus::Down
            },
            to,
            at: incident.opened_at,
            reason: Some("down".into()),
            incident_id: Some(incident.id),
            transition: 1,
            suppressed_by: None,
        }
    }

    /// The keys in the delivery log, as (what, channel).
    async fn sent(&self) -> Vec<(String, ResourceId)> {
        let mut out: Vec<(String, ResourceId)> = self
            .store
            .list_deliveries(self.monitor.tenant_id, &PageRequest::first(100))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| {
                let parts: Vec<&str> = d.idempotency_key.split(':').collect();
                (parts[2].to_owned(), d.channel_id)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

use CheckStatus::{Down as D, Up as U};

#[tokio::test]
async fn after_n_failures_waits_for_the_nth_failure() {
    let mut w = world(|ops, _| json!({"monitors": "all", "events": ["down", "up"], "channels": [ops], "after_failures": 3})).await;
    w.results(&[U, D, D]).await;
    let inc = w.open_incident(T0 + MIN).await;
    w.notificator
        .route(&w.change(&inc, MonitorStatus::Down))
        .await
        .unwrap();
    assert!(w.sent().await.is_empty(), "two failures are not three");
    w.results(&[U, D, D, D]).await;
    assert_eq!(
        w.notificator
            .scan(Timestamp::from_millis(T0 + 4 * MIN))
            .await
            .unwrap(),
        1
    );
    assert_eq!(w.sent().await, [("down".to_owned(), w.ops)]);
    // Scanning again sends nothing more.
    assert_eq!(
        w.notificator
            .scan(Timestamp::from_millis(T0 + 5 * MIN))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn flap_control_counts_failures_within_the_window() {
    let mut w = world(|ops, _| {
        json!({"monitors": "all", "events": ["down", "up"], "channels": [ops],
                                      "flap": {"failures": 3, "within_minutes": 10}})
    })
    .await;
    w.results(&[D, U, D]).await;
    let inc = w.open_incident(T0 + 2 * MIN).await;
    w.notificator
        .route(&w.change(&inc, MonitorStatus::Down))
        .await
        .unwrap();
    assert!(w.sent().await.is_empty());
    // UP after a DOWN nobody heard is not sent either.
    let mut up = w.change(&inc, MonitorStatus::Up);
    up.at = Timestamp::from_millis(T0 + 3 * MIN);
    w.notificator.route(&up).await.unwrap();
    assert!(w.sent().await.is_empty());
    w.results(&[D, U, D, U, D]).await;
    w.notificator
        .scan(Timestamp::from_millis(T0 + 5 * MIN))
        .await
        .unwrap();
    assert_eq!(w.sent().await, [("down".to_owned(), w.ops)]);
}

#[tokio::test]
async fn open_incidents_are_renotified_and_escalated_until_acknowledged() {
    let mut w = world(|ops, boss| json!({"monitors": "all", "events": ["down", "up"], "channels": [ops],
                                          "renotify_minutes": 30, "escalate": {"after_minutes": 15, "channels": [boss]}})).await;
    w.results(&[D]).await;
    let inc = w.open_incident(T0).await;
    w.notificator
        .route(&w.change(&inc, MonitorStatus::Down))
        .await
        .unwrap();
    assert_eq!(w.sent().await, [("down".to_owned(), w.ops)]);
    let at = |m: i64| Timestamp::from_millis(T0 + m * MIN);
    assert_eq!(
        w.notificator.scan(at(10)).await.unwrap(),
        0,
        "nothing yet at 10 minutes"
    );
    assert_eq!(
        w.notificator.scan(at(16)).await.unwrap(),
        1,
        "escalated at 15"
    );
    assert_eq!(
        w.notificator.scan(at(20)).await.unwrap(),
        0,
        "escalated once"
    );
    assert_eq!(
        w.notificator.scan(at(31)).await.unwrap(),
        1,
        "renotified at 30"
    );
    assert_eq!(w.notificator.scan(at(45)).await.unwrap(), 0);
    let sent = w.sent().await;
    assert!(sent.contains(&("escalate".to_owned(), w.boss)), "{sent:?}");
    assert!(sent.contains(&("renotify1".to_owned(), w.ops)), "{sent:?}");
    // Acknowledged: no more reminders.
    w.store
        .acknowledge_incident(w.monitor.tenant_id, inc.id, "oncall@x.test", at(50))
        .await
        .unwrap();
    assert_eq!(w.notificator.scan(at(61)).await.unwrap(), 0);
    // The UP goes to the channel that heard the DOWN.
    let mut up = w.change(&inc, MonitorStatus::Up);
    up.at = at(70);
    assert_eq!(w.notificator.route(&up).await.unwrap(), 1);
}

#[tokio::test]
async fn certificate_warnings_follow_the_rules_threshold_once_each() {
    use pingtower_engine::evaluator::CertExpiring;
    let mut w = world(|ops, _| json!({"monitors": "all", "events": ["cert_expiring"], "channels": [ops], "cert_expiring_days": 14})).await;
    let cert = |days: i64, threshold: i64| CertExpiring {
        tenant_id: w.monitor.tenant_id,
        monitor_id: w.monitor.id,
        expires_at: Timestamp::from_millis(T0 + 40 * 86_400_000),
        days_left: days,
        threshold_days: threshold,
        at: Timestamp::from_millis(T0),
    };
    assert_eq!(
        w.notificator.route_cert(&cert(20, 30)).await.unwrap(),
        0,
        "30 days is above the rule's 14"
    );
    assert_eq!(w.notificator.route_cert(&cert(6, 7)).await.unwrap(), 1);
    assert_eq!(
        w.notificator.route_cert(&cert(6, 7)).await.unwrap(),
        0,
        "once per threshold"
    );
    assert_eq!(w.notificator.route_cert(&cert(1, 1)).await.unwrap(), 1);
    assert_eq!(w.sent().await.len(), 2);
}
