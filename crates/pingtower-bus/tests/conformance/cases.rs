use bytes::Bytes;
use pingtower_bus::{Bus, BusError, Delivery, SubscribeOptions, Subscription, publish_json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Generous for a broker on loopback; cases that expect *nothing* wait this long.
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn opts() -> SubscribeOptions {
    SubscribeOptions::default()
}

async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery in time")
        .expect("bus open")
}

async fn nothing(sub: &mut Box<dyn Subscription>) {
    if let Ok(Some(d)) = tokio::time::timeout(QUIET, sub.next()).await {
        panic!("expected no delivery, got {d:?}");
    }
}

fn text(d: &Delivery) -> String {
    String::from_utf8(d.message.payload.to_vec()).unwrap()
}

pub async fn publish_reaches_every_group(bus: Arc<dyn Bus>) {
    let mut stats = bus.subscribe("t.results", "stats", opts()).await.unwrap();
    let mut notifier = bus
        .subscribe("t.results", "notifier", opts())
        .await
        .unwrap();
    let id = publish_json(bus.as_ref(), "t.results", &serde_json::json!({"up": true}))
        .await
        .unwrap();
    for sub in [&mut stats, &mut notifier] {
        let d = next(sub).await;
        assert_eq!(d.message.id, id);
        assert_eq!(d.message.topic, "t.results");
        assert_eq!(d.attempt, 1);
        let v: serde_json::Value = d.message.json().unwrap();
        assert_eq!(v["up"], true);
        d.ack();
    }
    nothing(&mut stats).await;
}

pub async fn a_group_keeps_messages_until_consumed(bus: Arc<dyn Bus>) {
    bus.declare("t.due", "workers", opts()).await.unwrap();
    for i in 0..3 {
        bus.publish("t.due", Bytes::from(format!("m{i}")))
            .await
            .unwrap();
    }
    assert_eq!(bus.depth("t.due", "workers").await.unwrap(), 3);
    let mut sub = bus.subscribe("t.due", "workers", opts()).await.unwrap();
    for i in 0..3 {
        let d = next(&mut sub).await;
        assert_eq!(text(&d), format!("m{i}"));
        d.ack();
    }
    assert_eq!(bus.depth("t.due", "workers").await.unwrap(), 0);
}

pub async fn a_topic_without_groups_drops_messages(bus: Arc<dyn Bus>) {
    bus.publish("t.nobody", Bytes::from_static(b"lost"))
        .await
        .unwrap();
    let mut sub = bus.subscribe("t.nobody", "late", opts()).await.unwrap();
    nothing(&mut sub).await;
}

pub async fn competing_consumers_share_the_work(bus: Arc<dyn Bus>) {
    let a = bus.subscribe("t.work", "workers", opts()).await.unwrap();
    let b = bus.subscribe("t.work", "workers", opts()).await.unwrap();
    let total = 200;
    let mut ids = HashSet::new();
    for i in 0..total {
        ids.insert(
            bus.publish("t.work", Bytes::from(format!("{i}")))
                .await
                .unwrap(),
        );
    }
    let consume = |mut sub: Box<dyn Subscription>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok(Some(d)) = tokio::time::timeout(QUIET * 2, sub.next()).await {
                got.push(d.message.id);
                d.ack();
                tokio::task::yield_now().await;
            }
            got
        })
    };
    let (ga, gb) = (consume(a), consume(b));
    let (ga, gb) = (ga.await.unwrap(), gb.await.unwrap());
    assert_eq!(
        ga.len() + gb.len(),
        total,
        "each message exactly once in the group"
    );
    let seen: HashSet<_> = ga.iter().chain(gb.iter()).copied().collect();
    assert_eq!(seen, ids);
}

pub async fn order_is_kept_for_one_consumer(bus: Arc<dyn Bus>) {
    let mut sub = bus.subscribe("t.order", "one", opts()).await.unwrap();
    for i in 0..50 {
        bus.publish("t.order", Bytes::from(format!("{i}")))
            .await
            .unwrap();
    }
    for i in 0..50 {
        let d = next(&mut sub).await;
        assert_eq!(text(&d), format!("{i}"));
        d.ack();
    }
}

pub async fn unsettled_delivery_is_handed_back(bus: Arc<dyn Bus>) {
    let mut first = bus
        .subscribe("t.handback", "workers", opts())
        .await
        .unwrap();
    let id = bus
        .publish("t.handback", Bytes::from_static(b"job"))
        .await
        .unwrap();
    let d = next(&mut first).await;
    assert_eq!(d.message.id, id);
    // The consumer dies mid-work: its delivery and its subscription are dropped.
    drop(d);
    drop(first);
    let mut second = bus
        .subscribe("t.handback", "workers", opts())
        .await
        .unwrap();
    let again = next(&mut second).await;
    assert_eq!(again.message.id, id);
    // A broker may hand the message back to the stopping consumer once more before its
    // subscription is gone (RabbitMQ counts that delivery too): 2, or 3.
    assert!(
        (2..=3).contains(&again.attempt),
        "attempt {}",
        again.attempt
    );
    again.ack();
    nothing(&mut second).await;
}

pub async fn nack_requeues_or_dead_letters(bus: Arc<dyn Bus>) {
    let mut sub = bus.subscribe("t.nack", "g", opts()).await.unwrap();
    let keep = bus
        .publish("t.nack", Bytes::from_static(b"retry me"))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    d.nack(true);
    let d = next(&mut sub).await;
    assert_eq!((d.message.id, d.attempt), (keep, 2));
    d.ack();

    let poison = bus
        .publish("t.nack", Bytes::from_static(b"poison"))
        .await
        .unwrap();
    next(&mut sub).await.nack(false);
    nothing(&mut sub).await;
    let dead = bus.dead_letters("t.nack", "g").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].message.id, dead[0].deliveries), (poison, 1));
}

pub async fn exhausted_deliveries_are_dead_lettered_and_replayable(bus: Arc<dyn Bus>) {
    let options = SubscribeOptions {
        max_deliveries: 3,
        ..opts()
    };
    let mut sub = bus.subscribe("t.dlq", "g", options).await.unwrap();
    let id = bus
        .publish("t.dlq", Bytes::from_static(b"flaky"))
        .await
        .unwrap();
    for attempt in 1..=3 {
        let d = next(&mut sub).await;
        assert_eq!((d.message.id, d.attempt), (id, attempt));
        d.nack(true);
    }
    nothing(&mut sub).await;
    let dead = bus.dead_letters("t.dlq", "g").await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (d.message.id, d.deliveries))
            .collect::<Vec<_>>(),
        vec![(id, 3)]
    );

    bus.replay_dead_letter("t.dlq", "g", id).await.unwrap();
    assert!(bus.dead_letters("t.dlq", "g").await.unwrap().is_empty());
    let d = next(&mut sub).await;
    assert_eq!(
        (d.message.id, d.attempt),
        (id, 1),
        "a replayed message starts its count anew"
    );
    d.ack();
    assert!(matches!(
        bus.replay_dead_letter("t.dlq", "g", id).await,
        Err(BusError::NoSuchDeadLetter(_))
    ));
}

pub async fn prefetch_bounds_unsettled_deliveries(bus: Arc<dyn Bus>) {
    let options = SubscribeOptions {
        prefetch: 2,
        ..opts()
    };
    let mut sub = bus.subscribe("t.prefetch", "g", options).await.unwrap();
    for i in 0..3 {
        bus.publish("t.prefetch", Bytes::from(format!("{i}")))
            .await
            .unwrap();
    }
    let a = next(&mut sub).await;
    let b = next(&mut sub).await;
    nothing(&mut sub).await;
    a.ack();
    let c = next(&mut sub).await;
    assert_eq!(text(&c), "2");
    b.ack();
    c.ack();
}

pub async fn close_ends_subscriptions(bus: Arc<dyn Bus>) {
    let mut sub = bus.subscribe("t.close", "g", opts()).await.unwrap();
    let waiter = tokio::spawn(async move { sub.next().await.is_none() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    bus.close().await;
    assert!(
        tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap(),
        "next() ends with None"
    );
    assert!(bus.ping().await.is_err());
    assert!(bus.publish("t.close", Bytes::new()).await.is_err());
}

pub async fn bad_names_are_refused(bus: Arc<dyn Bus>) {
    for bad in ["", "has space", "a/b", "ünï"] {
        assert!(
            matches!(
                bus.publish(bad, Bytes::new()).await,
                Err(BusError::InvalidName(_))
            ),
            "{bad:?}"
        );
        assert!(bus.subscribe("t.ok", bad, opts()).await.is_err(), "{bad:?}");
    }
}

pub async fn an_ephemeral_group_goes_with_its_subscription(bus: Arc<dyn Bus>) {
    let mut sub = bus
        .subscribe("t.live", "process-1", SubscribeOptions::ephemeral())
        .await
        .unwrap();
    let id = bus
        .publish("t.live", Bytes::from_static(b"a"))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!((d.message.id, d.attempt), (id, 1));
    d.ack();
    drop(sub);
    // Once the subscription is gone, nothing waits for it: what is published next is not kept.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        bus.publish("t.live", Bytes::from_static(b"b"))
            .await
            .unwrap();
        if bus.depth("t.live", "process-1").await.unwrap() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group outlived its subscription"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn a_group_declared_again_with_other_options_is_kept(bus: Arc<dyn Bus>) {
    bus.declare("t.redeclare", "workers", opts()).await.unwrap();
    let id = bus
        .publish("t.redeclare", Bytes::from_static(b"job"))
        .await
        .unwrap();
    let other = SubscribeOptions {
        max_deliveries: 2,
        prefetch: 8,
        ..opts()
    };
    let mut sub = bus
        .subscribe("t.redeclare", "workers", other)
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(
        d.message.id, id,
        "the message published before is still there"
    );
    d.ack();
    bus.declare("t.redeclare", "workers", other).await.unwrap();
}

pub async fn a_stopped_subscription_hands_back_without_extra_deliveries(bus: Arc<dyn Bus>) {
    let mut first = bus.subscribe("t.stop", "workers", opts()).await.unwrap();
    let id = bus
        .publish("t.stop", Bytes::from_static(b"job"))
        .await
        .unwrap();
    let d = next(&mut first).await;
    assert_eq!((d.message.id, d.attempt), (id, 1));
    // A role stopping: it takes nothing more, then hands back what it did not finish.
    first.stop().await;
    drop(d);
    assert!(
        tokio::time::timeout(QUIET, first.next())
            .await
            .is_ok_and(|d| d.is_none()),
        "a stopped subscription delivers nothing"
    );
    drop(first);
    let mut second = bus.subscribe("t.stop", "workers", opts()).await.unwrap();
    let again = next(&mut second).await;
    assert_eq!((again.message.id, again.attempt), (id, 2));
    again.ack();
}

pub async fn a_delivery_held_past_its_subscription_can_still_be_acked(bus: Arc<dyn Bus>) {
    let mut first = bus.subscribe("t.held", "workers", opts()).await.unwrap();
    bus.publish("t.held", Bytes::from_static(b"job"))
        .await
        .unwrap();
    let d = next(&mut first).await;
    drop(first);
    // The work finishes after the subscription went: its ack still counts.
    tokio::time::sleep(Duration::from_millis(100)).await;
    d.ack();
    let mut second = bus.subscribe("t.held", "workers", opts()).await.unwrap();
    nothing(&mut second).await;
}

pub async fn a_refused_message_counts_its_deliveries(bus: Arc<dyn Bus>) {
    let mut sub = bus.subscribe("t.refused", "g", opts()).await.unwrap();
    let id = bus
        .publish("t.refused", Bytes::from_static(b"bad"))
        .await
        .unwrap();
    next(&mut sub).await.nack(true);
    let d = next(&mut sub).await;
    assert_eq!((d.message.id, d.attempt), (id, 2));
    d.nack(false);
    nothing(&mut sub).await;
    let dead = bus.dead_letters("t.refused", "g").await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| (d.message.id, d.deliveries))
            .collect::<Vec<_>>(),
        vec![(id, 2)]
    );
}
