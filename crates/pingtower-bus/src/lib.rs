//! PingTower's bus: how roles talk to each other.
//!
//! One concept covers both publish/subscribe and work queues, the way RabbitMQ does it: a
//! message is *published* to a topic (`check.results`, `checks.due`, …); every *group* that
//! subscribed to the topic gets its own copy, and within a group each message goes to one
//! consumer. So `check.results` with groups `stats` and `notifier` is fan-out, and `checks.due`
//! with the single group `workers` is a work queue shared by every worker.
//!
//! Delivery is at least once. A consumer settles each delivery: [`Delivery::ack`] removes it,
//! [`Delivery::nack`] hands it back (or dead-letters it), and a delivery dropped unsettled (a
//! consumer that stopped or crashed mid-work) is handed back too. A message delivered
//! `max_deliveries` times without an ack moves to the group's dead letters, which can be listed
//! and replayed. Consumers must therefore be idempotent; every message carries an id for that.
//!
//! A topic with no group drops what is published to it (as an AMQP exchange with no bound
//! queue does); a group, once declared, keeps messages until a consumer takes them.

mod memory;
mod rabbit;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use memory::MemoryBus;
pub use rabbit::{MAX_DEAD_LETTERS as RABBIT_MAX_DEAD_LETTERS, RabbitBus, RabbitOptions};

/// The topics PingTower's roles use.
pub mod topics {
    /// Scheduler -> workers: checks that are due (a work queue).
    pub const CHECKS_DUE: &str = "checks.due";
    /// Workers -> evaluator, stats, live UI: stored check results.
    pub const CHECK_RESULTS: &str = "check.results";
    /// Notificator -> delivery workers: notifications to send.
    pub const NOTIFICATIONS_SEND: &str = "notifications.send";
    /// Push endpoint -> heartbeat watcher: a heartbeat ping was recorded.
    pub const HEARTBEAT_PINGS: &str = "heartbeat.pings";
    /// Any role -> every process: cached configuration changed.
    pub const CONFIG_CHANGED: &str = "config.changed";
    /// Evaluator -> notificator, live UI: a monitor's evaluated state changed.
    pub const MONITOR_STATE: &str = "monitor.state";
    /// Evaluator -> notificator: a monitor's certificate crossed an expiry threshold.
    pub const MONITOR_CERT: &str = "monitor.cert";
    /// API processes -> live UI: analytics events accepted in the last second, per tenant and
    /// name.
    pub const ANALYTICS_TOTALS: &str = "analytics.totals";
    /// API processes -> live UI: what people changed that open pages show (an incident
    /// acknowledged or given a note).
    pub const LIVE_CHANGES: &str = "live.changes";
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is closed")]
    Closed,
    #[error("invalid name `{0}`: use letters, digits, `.`, `-` and `_`")]
    InvalidName(String),
    #[error("no dead letter {0}")]
    NoSuchDeadLetter(Uuid),
    #[error("malformed message payload: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("broker error: {0}")]
    Broker(String),
}

pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// A published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique per publish; consumers deduplicate on it.
    pub id: Uuid,
    pub topic: String,
    pub payload: Bytes,
}

impl Message {
    /// Decodes a JSON payload.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.payload)?)
    }
}

/// A message that exhausted its deliveries (or was refused without requeue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message: Message,
    /// How many times it was delivered.
    pub deliveries: u32,
}

/// How a group consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Most unsettled deliveries one subscription holds at a time.
    pub prefetch: u16,
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliveries: u32,
    /// A group of one process (its live view, its cache of the configuration): it goes with
    /// its subscription (on RabbitMQ, with its consumer or its connection) instead of keeping messages for a
    /// process that will never come back. On RabbitMQ its messages are not dead-lettered: one
    /// that used its deliveries up is dropped.
    pub ephemeral: bool,
}

impl SubscribeOptions {
    /// The options of a group of one process (see [`SubscribeOptions::ephemeral`]).
    pub fn ephemeral() -> Self {
        Self {
            ephemeral: true,
            ..Self::default()
        }
    }
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            prefetch: 64,
            max_deliveries: 5,
            ephemeral: false,
        }
    }
}

/// The bus. Object-safe so roles hold an `Arc<dyn Bus>` whatever the backend.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes to every group subscribed to `topic`. Returns the message id.
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<Uuid>;

    /// Creates `group` on `topic` if it does not exist, so that messages published from now on
    /// wait for a consumer.
    async fn declare(&self, topic: &str, group: &str, options: SubscribeOptions) -> Result<()>;

    /// Declares the group and starts consuming from it.
    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>>;

    /// Messages waiting in a group (for metrics and tests): ready and unacknowledged ones in
    /// process, ready ones on RabbitMQ (AMQP reports no more).
    async fn depth(&self, topic: &str, group: &str) -> Result<u64>;

    async fn dead_letters(&self, topic: &str, group: &str) -> Result<Vec<DeadLetter>>;

    /// Puts a dead letter back in its group's queue with a fresh delivery count.
    async fn replay_dead_letter(&self, topic: &str, group: &str, id: Uuid) -> Result<()>;

    /// Answers when the bus does (readiness).
    async fn ping(&self) -> Result<()>;

    /// Stops every subscription; unsettled deliveries are handed back first.
    async fn close(&self);
}

/// A stream of deliveries from one group.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery; `None` once the bus is closed (or the subscription stopped).
    async fn next(&mut self) -> Option<Delivery>;

    /// Takes no more deliveries (a role that is stopping): deliveries held can still be
    /// settled, and those handed back go to other consumers, not to this one again.
    async fn stop(&mut self) {}
}

/// What a backend does when a delivery is settled.
pub trait Settle: Send + Sync {
    fn ack(&self);
    /// `requeue`: hand it back for another delivery (unless it used up its deliveries);
    /// otherwise dead-letter it now.
    fn nack(&self, requeue: bool);
}

/// One delivery of a message to a consumer. Dropping it unsettled hands it back.
pub struct Delivery {
    pub message: Message,
    /// 1 for the first delivery, 2 for the first redelivery, … A broker counts every delivery
    /// it made, also one to a consumer that was stopping and never saw it.
    pub attempt: u32,
    settle: Option<Box<dyn Settle>>,
}

impl Delivery {
    pub fn new(message: Message, attempt: u32, settle: Box<dyn Settle>) -> Self {
        Self {
            message,
            attempt,
            settle: Some(settle),
        }
    }

    /// Done: the message will not be delivered again.
    pub fn ack(mut self) {
        if let Some(s) = self.settle.take() {
            s.ack();
        }
    }

    /// Not done: hand it back (`requeue`), or dead-letter it now.
    pub fn nack(mut self, requeue: bool) {
        if let Some(s) = self.settle.take() {
            s.nack(requeue);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(s) = self.settle.take() {
            s.nack(true);
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message", &self.message)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Publishes a value as JSON.
pub async fn publish_json<T: Serialize + ?Sized>(
    bus: &dyn Bus,
    topic: &str,
    value: &T,
) -> Result<Uuid> {
    let payload = serde_json::to_vec(value)?;
    bus.publish(topic, Bytes::from(payload)).await
}

/// Topic and group names: what every broker accepts.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidName(name.to_owned()))
    }
}
