//! The bus conformance suite: every case is written once against the `Bus` trait and runs on
//! every backend (the in-process bus now; RabbitMQ joins with its backend).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;

macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let bus = std::sync::Arc::new(pingtower_bus::MemoryBus::new());
                crate::cases::$case(bus).await;
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
);
