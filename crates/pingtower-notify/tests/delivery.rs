//! Rules, delivery, retries, the circuit breaker and dead letters, against a webhook endpoint
//! the test starts on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::{HeaderMap, StatusCode};
use pingtower_bus::{Bus, MemoryBus, topics};
use pingtower_core::*;
use pingtower_engine::evaluator::StateChange;
use pingtower_engine::secrets::Keys;
use pingtower_notify::delivery::{Breakers, DELIVERERS_GROUP, Deliverer, DeliveryConfig};
use pingtower_notify::router::Notificator;
use pingtower_store::{PageRequest, Store, StoreOptions};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Hook {
    up: Arc<AtomicBool>,
    /// Every request answered 200: (headers, body).
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    refused: Arc<Mutex<u32>>,
    status_when_down: Arc<Mutex<u16>>,
}

async fn hook() -> (String, Hook) {
    let h = Hook::default();
    h.up.store(true, Ordering::SeqCst);
    *h.status_when_down.lock().unwrap() = 503;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let state = h.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let h = state.clone();
            async move {
                if h.up.load(Ordering::SeqCst) {
                    h.received.lock().unwrap().push((headers, body));
                    StatusCode::OK
                } else {
                    *h.refused.lock().unwrap() += 1;
                    StatusCode::from_u16(*h.status_when_down.lock().unwrap()).unwrap()
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, h)
}

struct World {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    tenant: TenantId,
    monitors: Vec<Monitor>,
    channel: ResourceId,
    breakers: Arc<Breakers>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn world(url: &str, monitors: usize, config: DeliveryConfig) -> World {
    let (store, bus, dir) = store_and_bus().await;
    let keys = Keys::new(&[5u8; 32]).unwrap();
    let now = pingtower_engine::now();
    let tenant = store.create_tenant("t", now).await.unwrap().id;
    let mut ms = Vec::new();
    for i in 0..monitors {
        let mut settings = serde_json::Map::new();
        settings.insert("url".into(), json!("http://127.0.0.1:9/"));
        ms.push(
            store
                .create_monitor(
                    tenant,
                    &NewMonitor {
                        name: format!("api-{i}"),
                        kind: MonitorKind::Http,
                        settings,
                        interval_ms: 1_000,
                        timeout_ms: 1_000,
                        down_after: 1,
                        up_after: 1,
                        tags: vec!["prod".into()],
                        enabled: true,
                        push_token: None,
                    },
                    now,
                )
                .await
                .unwrap(),
        );
    }
    let secret = keys
        .seal(
            tenant,
            json!({"hmac_secret": "s3cret"}).to_string().as_bytes(),
        )
        .unwrap();
    let channel = store
        .create_resource(
            tenant,
            &NewResource {
                kind: ResourceKind::Channel,
                name: "ops".into(),
                slug: None,
                spec: json!({"kind": "webhook", "url": url}),
                secret: Some(secret),
            },
            now,
        )
        .await
        .unwrap();
    store
        .create_resource(
            tenant,
            &NewResource {
                kind: ResourceKind::Rule,
                name: "prod".into(),
                slug: None,
                spec: json!({"monitors": {"tags": ["prod"]}, "events": ["down", "up"], "channels": [channel.id.to_string()]}),
                secret: None,
            },
            now,
        )
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let breakers = Arc::new(Breakers::default());
    tokio::spawn(Notificator::new(store.clone(), bus.clone()).run(stop.clone()));
    let deliverer =
        Deliverer::new(store.clone(), bus.clone(), keys, config, breakers.clone()).unwrap();
    tokio::spawn(deliverer.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    World {
        store,
        bus,
        tenant,
        monitors: ms,
        channel: channel.id,
        breakers,
        stop,
        _dir: dir,
    }
}

fn fast() -> DeliveryConfig {
    DeliveryConfig {
        max_attempts: 100,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        breaker_threshold: 3,
        breaker_open: Duration::from_millis(300),
        concurrency: 8,
        timeout: Duration::from_secs(2),
        ..DeliveryConfig::default()
    }
}

fn down(m: &Monitor, transition: i64) -> StateChange {
    StateChange {
        tenant_id: m.tenant_id,
        monitor_id: m.id,
        from: MonitorStatus::Up,
        to: MonitorStatus::Down,
        at: pingtower_engine::now(),
        reason: Some("HTTP 503".into()),
        incident_id: None,
        transition,
        suppressed_by: None,
    }
}

async fn publish(bus: &dyn Bus, c: &StateChange) {
    pingtower_bus::publish_json(bus, topics::MONITOR_STATE, c)
        .await
        .unwrap();
}

async fn until(within: Duration, what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_down_change_is_delivered_once_signed_and_logged() {
    let (url, h) = hook().await;
    let w = world(&url, 1, fast()).await;
    let change = down(&w.monitors[0], 1);
    publish(w.bus.as_ref(), &change).await;
    publish(w.bus.as_ref(), &change).await; // redelivered
    until(Duration::from_secs(5), "the webhook", || {
        !h.received.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = h.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "delivered twice");
    let (headers, body) = &received[0];
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["event"], "down");
    assert_eq!(v["monitor"]["name"], "api-0");
    assert_eq!(v["reason"], "HTTP 503");
    assert!(v["title"].as_str().unwrap().contains("DOWN"));
    // The signature is an HMAC-SHA256 of the body with the channel's secret.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    let want = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body.as_bytes()).as_ref())
    );
    assert_eq!(headers["x-pingtower-signature"].to_str().unwrap(), want);
    assert!(headers.contains_key("idempotency-key"));
    // The delivery log.
    let log = w
        .store
        .list_deliveries(w.tenant, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(log.items[0].status, DeliveryStatus::Sent);
    assert_eq!(log.items[0].attempts, 1);
    assert!(
        log.items[0]
            .response
            .as_deref()
            .unwrap()
            .starts_with("HTTP 200")
    );
    // An UP after it is delivered too; a change no rule takes (paused) is not.
    let mut up = down(&w.monitors[0], 1);
    up.from = MonitorStatus::Down;
    up.to = MonitorStatus::Up;
    publish(w.bus.as_ref(), &up).await;
    let mut paused = down(&w.monitors[0], 1);
    paused.to = MonitorStatus::Paused;
    publish(w.bus.as_ref(), &paused).await;
    until(Duration::from_secs(5), "the up message", || {
        h.received.lock().unwrap().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.received.lock().unwrap().len(), 2);
    w.stop.cancel();
}

#[tokio::test]
async fn an_endpoint_that_was_down_gets_everything_once_after_it_recovers() {
    let (url, h) = hook().await;
    let w = world(&url, 4, fast()).await;
    h.up.store(false, Ordering::SeqCst);
    for m in &w.monitors {
        publish(w.bus.as_ref(), &down(m, 1)).await;
    }
    until(Duration::from_secs(5), "the breaker to open", || {
        w.breakers.opened.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(w.breakers.is_open(w.channel));
    // While open, the endpoint is left alone.
    let refused = *h.refused.lock().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        *h.refused.lock().unwrap() <= refused + 1,
        "hammered while the breaker was open"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.up.store(true, Ordering::SeqCst);
    until(Duration::from_secs(10), "every notification", || {
        h.received.lock().unwrap().len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = h.received.lock().unwrap().clone();
    let mut keys: Vec<String> = received
        .iter()
        .map(|(hd, _)| hd["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!((received.len(), keys.len()), (4, 4), "each once");
    assert!(
        w.breakers.closed.load(Ordering::SeqCst) >= 1,
        "the breaker never closed"
    );
    assert!(!w.breakers.is_open(w.channel));
    let log = w
        .store
        .list_deliveries(w.tenant, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(
        log.items.iter().all(|d| d.status == DeliveryStatus::Sent),
        "{log:?}"
    );
    assert!(log.items.iter().any(|d| d.attempts > 1));
    w.stop.cancel();
}

#[tokio::test]
async fn a_notification_that_cannot_be_delivered_is_dead_lettered() {
    let (url, h) = hook().await;
    let config = DeliveryConfig {
        max_attempts: 3,
        breaker_threshold: 100,
        ..fast()
    };
    let w = world(&url, 1, config).await;
    h.up.store(false, Ordering::SeqCst);
    publish(w.bus.as_ref(), &down(&w.monitors[0], 1)).await;
    let bus = w.bus.clone();
    let start = Instant::now();
    loop {
        let dead = bus
            .dead_letters(topics::NOTIFICATIONS_SEND, DELIVERERS_GROUP)
            .await
            .unwrap();
        if !dead.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*h.refused.lock().unwrap(), 3);
    let log = w
        .store
        .list_deliveries(w.tenant, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(log.items[0].status, DeliveryStatus::Dead);
    assert_eq!(log.items[0].attempts, 3);
    assert!(log.items[0].last_error.as_deref().unwrap().contains("503"));
    // A 4xx is not retried.
    *h.status_when_down.lock().unwrap() = 404;
    publish(w.bus.as_ref(), &down(&w.monitors[0], 2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*h.refused.lock().unwrap(), 4);
    w.stop.cancel();
}

#[tokio::test]
async fn a_delivery_recorded_but_never_published_goes_out_when_its_change_comes_again() {
    let (url, h) = hook().await;
    let w = world(&url, 1, fast()).await;
    let m = &w.monitors[0];
    let change = down(m, 1);
    // As if the process stopped right after recording the delivery, before publishing it.
    let key = format!("{}:1:down:{}", m.id, w.channel);
    let now = pingtower_engine::now();
    let recorded = Delivery {
        id: DeliveryId::new(),
        tenant_id: w.tenant,
        channel_id: w.channel,
        incident_id: None,
        idempotency_key: key.clone(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        response: None,
        latency_ms: None,
        created_at: now,
        updated_at: now,
    };
    assert!(w.store.record_delivery(&recorded).await.unwrap());
    // The state change was not acknowledged, so it comes again.
    publish(w.bus.as_ref(), &change).await;
    until(Duration::from_secs(5), "the webhook", || {
        h.received.lock().unwrap().len() == 1
    })
    .await;
    let d = w
        .store
        .find_delivery_by_key(w.tenant, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.id, d.status), (recorded.id, DeliveryStatus::Sent));
    // Once more, and a stray copy of the notification itself: still one message.
    publish(w.bus.as_ref(), &change).await;
    let copy = pingtower_notify::Notification {
        delivery_id: recorded.id,
        tenant_id: w.tenant,
        channel_id: w.channel,
        event: pingtower_notify::Event::Down,
        monitor_id: m.id,
        monitor_name: m.name.clone(),
        status: MonitorStatus::Down,
        reason: None,
        at: now,
        incident_id: None,
        down_for_ms: None,
        idempotency_key: key,
        link: None,
    };
    pingtower_bus::publish_json(w.bus.as_ref(), topics::NOTIFICATIONS_SEND, &copy)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.received.lock().unwrap().len(), 1);
    w.stop.cancel();
}

/// A store in a temporary folder and the in-process bus (keep the folder while they are used).
async fn store_and_bus() -> (Arc<dyn Store>, Arc<dyn Bus>, tempfile::TempDir) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("n.db").display());
    let store = pingtower_store::open(&db, &StoreOptions::default())
        .await
        .unwrap();
    (store, Arc::new(MemoryBus::new()), dir)
}

/// A deliverer alone (no notificator: tests publish notifications themselves); stops with the
/// token it answers.
async fn start_deliverer(
    store: &Arc<dyn Store>,
    bus: &Arc<dyn Bus>,
    config: DeliveryConfig,
) -> CancellationToken {
    bus.declare(
        topics::NOTIFICATIONS_SEND,
        DELIVERERS_GROUP,
        pingtower_notify::delivery::subscribe_options(),
    )
    .await
    .unwrap();
    let keys = Keys::new(&[5u8; 32]).unwrap();
    let deliverer =
        Deliverer::new(store.clone(), bus.clone(), keys, config, Arc::default()).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(deliverer.run(stop.clone()));
    stop
}

/// A server on loopback that accepts connections and never answers (every request to it runs
/// to its timeout); its URL.
async fn black_hole() -> String {
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    url
}

/// A tenant's webhook channel to `url`.
async fn channel_to(store: &dyn Store, tenant: TenantId, url: &str) -> ResourceId {
    store
        .create_resource(
            tenant,
            &NewResource {
                kind: ResourceKind::Channel,
                name: format!("hook {}", ResourceId::new()),
                slug: None,
                spec: json!({"kind": "webhook", "url": url}),
                secret: None,
            },
            pingtower_engine::now(),
        )
        .await
        .unwrap()
        .id
}

/// Records a delivery (as the notificator does) and publishes its notification.
async fn notify(
    store: &dyn Store,
    bus: &dyn Bus,
    tenant: TenantId,
    channel: ResourceId,
) -> DeliveryId {
    let now = pingtower_engine::now();
    let id = DeliveryId::new();
    let key = format!("{id}");
    store
        .record_delivery(&Delivery {
            id,
            tenant_id: tenant,
            channel_id: channel,
            incident_id: None,
            idempotency_key: key.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            response: None,
            latency_ms: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let n = pingtower_notify::Notification {
        delivery_id: id,
        tenant_id: tenant,
        channel_id: channel,
        event: pingtower_notify::Event::Down,
        monitor_id: MonitorId::new(),
        monitor_name: "api".into(),
        status: MonitorStatus::Down,
        reason: None,
        at: now,
        incident_id: None,
        down_for_ms: None,
        idempotency_key: key,
        link: None,
    };
    pingtower_bus::publish_json(bus, topics::NOTIFICATIONS_SEND, &n)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn one_tenants_broken_channels_do_not_hold_up_another_tenants_notification() {
    let (store, bus, _dir) = store_and_bus().await;
    let now = pingtower_engine::now();
    let hostile = store.create_tenant("hostile", now).await.unwrap().id;
    let victim = store.create_tenant("victim", now).await.unwrap().id;
    // The hostile tenant's channels: a server that accepts and never answers (every attempt
    // runs to its timeout), and a closed port (fails at once, backs off, opens its breaker).
    let hole_url = black_hole().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let mut hostile_channels = Vec::new();
    for _ in 0..4 {
        hostile_channels.push(channel_to(store.as_ref(), hostile, &hole_url).await);
        hostile_channels.push(channel_to(store.as_ref(), hostile, &closed).await);
    }
    let (url, h) = hook().await;
    let victims_channel = channel_to(store.as_ref(), victim, &url).await;
    let config = DeliveryConfig {
        max_attempts: 100,
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        breaker_threshold: 3,
        breaker_open: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
        per_tenant_pending: 200,
        ..DeliveryConfig::default()
    };
    let stop = start_deliverer(&store, &bus, config).await;
    // A burst of 400 notifications to the broken channels first.
    for i in 0..400 {
        let c = hostile_channels[i % hostile_channels.len()];
        notify(store.as_ref(), bus.as_ref(), hostile, c).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Then the other tenant's DOWN notification: it goes out at once.
    let started = Instant::now();
    let id = notify(store.as_ref(), bus.as_ref(), victim, victims_channel).await;
    until(
        Duration::from_secs(2),
        "the other tenant's notification",
        || h.received.lock().unwrap().len() == 1,
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    let log = store
        .list_deliveries(victim, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(log.items[0].id, id);
    // Past its share of the window, the hostile tenant's notifications wait their turn at the
    // back of the queue: none is given up for it.
    let log = store
        .list_deliveries(hostile, &PageRequest::first(1000))
        .await
        .unwrap();
    assert!(
        log.items.iter().all(|d| d.status != DeliveryStatus::Dead),
        "a hostile notification was dropped"
    );
    stop.cancel();
}

#[tokio::test]
async fn several_hostile_tenants_together_cannot_fill_the_window() {
    let (store, bus, _dir) = store_and_bus().await;
    let now = pingtower_engine::now();
    let hole_url = black_hole().await;
    let config = DeliveryConfig {
        max_attempts: 100,
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        breaker_threshold: 100,
        timeout: Duration::from_secs(5),
        max_pending: 64,
        per_tenant_pending: 64,
        ..DeliveryConfig::default()
    };
    let stop = start_deliverer(&store, &bus, config).await;
    // Five tenants, each well under the per-tenant cap, together more than the window.
    for i in 0..5 {
        let t = store
            .create_tenant(&format!("hostile{i}"), now)
            .await
            .unwrap()
            .id;
        let c = channel_to(store.as_ref(), t, &hole_url).await;
        for _ in 0..30 {
            notify(store.as_ref(), bus.as_ref(), t, c).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = store.create_tenant("victim", now).await.unwrap().id;
    let (url, h) = hook().await;
    let c = channel_to(store.as_ref(), victim, &url).await;
    let started = Instant::now();
    notify(store.as_ref(), bus.as_ref(), victim, c).await;
    until(
        Duration::from_secs(2),
        "the other tenant's notification",
        || h.received.lock().unwrap().len() == 1,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    stop.cancel();
}
