//! The bus conformance suite: every case is written once against the `Bus` trait and runs on
//! every backend (the in-process bus now; RabbitMQ joins with its backend).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;

/// The test broker: `PINGTOWER_TEST_AMQP_URL`, by default the one on loopback.
fn amqp_url() -> String {
    std::env::var("PINGTOWER_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Options for a namespace of its own, whose queues the broker deletes a minute after use.
fn test_namespace() -> pingtower_bus::RabbitOptions {
    pingtower_bus::RabbitOptions {
        namespace: format!("test-{}", uuid::Uuid::new_v4().simple()),
        expire_unused: Some(std::time::Duration::from_secs(60)),
    }
}

/// A RabbitMQ bus in a namespace of its own.
async fn rabbit() -> pingtower_bus::RabbitBus {
    let url = amqp_url();
    pingtower_bus::RabbitBus::connect(&url, test_namespace())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {url}: {e}"))
}

macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let bus = std::sync::Arc::new(pingtower_bus::MemoryBus::new());
                crate::cases::$case(bus).await;
            })+
        }
        mod rabbitmq {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let bus = std::sync::Arc::new(crate::rabbit().await);
                crate::cases::$case(bus.clone()).await;
                pingtower_bus::Bus::close(bus.as_ref()).await;
            })+
        }
    };
}

conformance!(
    publish_reaches_every_group,
    a_group_keeps_messages_until_consumed,
    a_topic_without_groups_drops_messages,
    competing_consumers_share_the_work,
    order_is_kept_for_one_consumer,
    unsettled_delivery_is_handed_back,
    nack_requeues_or_dead_letters,
    exhausted_deliveries_are_dead_lettered_and_replayable,
    prefetch_bounds_unsettled_deliveries,
    close_ends_subscriptions,
    bad_names_are_refused,
    an_ephemeral_group_goes_with_its_subscription,
    a_group_declared_again_with_other_options_is_kept,
    a_stopped_subscription_hands_back_without_extra_deliveries,
    a_delivery_held_past_its_subscription_can_still_be_acked,
    a_refused_message_counts_its_deliveries,
);

/// RabbitMQ only: an exchange deleted under a running bus (by hand, or the auto-deleted one of
/// a short-lived namespace) is declared again by the next publish, which then succeeds; the
/// publishing channel the error closed is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_publishing_survives_a_deleted_exchange() {
    use bytes::Bytes;
    use pingtower_bus::{Bus, SubscribeOptions};
    let url = amqp_url();
    let options = test_namespace();
    let namespace = options.namespace.clone();
    let bus = pingtower_bus::RabbitBus::connect(&url, options)
        .await
        .unwrap();
    let side = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = side.create_channel().await.unwrap();
    channel
        .exchange_delete(namespace.as_str().into(), Default::default())
        .await
        .unwrap();
    for _ in 0..3 {
        bus.publish("t.gone", Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let mut sub = bus
        .subscribe("t.gone", "g", SubscribeOptions::default())
        .await
        .unwrap();
    let id = bus
        .publish("t.gone", Bytes::from_static(b"y"))
        .await
        .unwrap();
    let d = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message.id, id);
    d.ack();
    // Deleted again with bindings on it, one of them a group that is gone since: the next
    // publish declares it again, binds the live group again, and is not failed by the gone one.
    let gone = bus
        .subscribe("t.gone", "process-1", SubscribeOptions::ephemeral())
        .await
        .unwrap();
    drop(gone);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    channel
        .exchange_delete(namespace.as_str().into(), Default::default())
        .await
        .unwrap();
    let id = bus
        .publish("t.gone", Bytes::from_static(b"z"))
        .await
        .unwrap();
    let d = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message.id, id, "the live group is bound again");
    d.ack();
    bus.close().await;
    let _ = side.close(200, "done".into()).await;
}
