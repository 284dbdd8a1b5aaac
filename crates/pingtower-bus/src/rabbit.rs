//! The RabbitMQ bus: what split roles talk over (`--broker amqp://…`).
//!
//! The mapping (everything under a namespace, `pingtower` unless told otherwise):
//! - one durable topic exchange `<ns>`; a message is published to it with its topic as the
//!   routing key, persistent, and waits for the broker's confirm before `publish` returns;
//! - a group is a queue `<ns>/<topic>/<group>` bound to the exchange by the topic: a durable
//!   quorum queue (replicated when the broker is a cluster) whose `x-delivery-limit` counts
//!   deliveries for us, also those of consumers that crashed, and dead-letters a message that
//!   used them up; an *ephemeral* group (one per process, see [`SubscribeOptions::ephemeral`])
//!   is an exclusive queue that goes with the connection;
//! - dead letters go through the direct exchange `<ns>.dead` to `<ns>/<topic>/<group>/dead`
//!   (at most [`MAX_DEAD_LETTERS`], the oldest dropped first), where they are listed by taking
//!   them without an ack and handing them all back, and replayed by publishing the one asked
//!   for to its group's queue alone.
//!
//! Each subscription has a channel of its own (its prefetch is the channel's `basic.qos`);
//! settling a delivery is sent from a task on the runtime, since [`Settle`] is called from sync
//! code (and from `Drop`). A lost connection ends every subscription (`next()` returns `None`)
//! and fails publishes: the process's roles stop and the process exits, for its supervisor to
//! start again; unsettled deliveries go back to their queues, so nothing is lost.

use crate::{
    Bus, BusError, DeadLetter, Delivery, Message, Result, Settle, SubscribeOptions, Subscription,
    check_name,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Dead letters kept per group; beyond this the oldest go (as on the in-process bus).
pub const MAX_DEAD_LETTERS: i64 = 10_000;

/// How the RabbitMQ bus names and keeps what it declares.
#[derive(Debug, Clone)]
pub struct RabbitOptions {
    /// Prefix of every exchange and queue, so that several installations (or test runs) can
    /// share a broker and a virtual host.
    pub namespace: String,
    /// Queues unused this long are deleted by the broker (for tests); `None`: kept.
    pub expire_unused: Option<Duration>,
}

impl RabbitOptions {
    /// The options a broker URL names: `?namespace=NAME` (letters, digits, `.`, `-`, `_`;
    /// default `pingtower`), for installations that share a virtual host, and
    /// `&expires=SECONDS`, for short-lived ones (tests, trials): their queues go once unused
    /// that long, and their exchanges with them.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| BusError::Broker(format!("malformed broker URL: {e}")))?;
        let mut options = Self::default();
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "namespace" => {
                    check_namespace(&value)?;
                    options.namespace = value.into_owned();
                }
                "expires" => match value.parse::<u64>() {
                    Ok(s) if s > 0 => options.expire_unused = Some(Duration::from_secs(s)),
                    _ => {
                        return Err(BusError::Broker(format!(
                            "expires: `{value}` is not a positive number of seconds"
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(options)
    }
}

impl Default for RabbitOptions {
    fn default() -> Self {
        Self {
            namespace: "pingtower".to_owned(),
            expire_unused: None,
        }
    }
}

/// (queue, exchange, routing key) of the bindings a bus made.
type Bindings = Arc<std::sync::Mutex<HashSet<(String, String, String)>>>;

/// A [`Bus`] over a RabbitMQ broker.
pub struct RabbitBus {
    connection: Arc<Connection>,
    /// In confirm mode; shared by every publish, made again when an error closed it.
    publisher: tokio::sync::Mutex<Channel>,
    options: RabbitOptions,
    closed: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// (queue, exchange, routing key) of every binding this bus made, to make again if an
    /// exchange has to be declared again.
    bindings: Bindings,
    /// One listing of dead letters at a time in this process: a listing holds every dead
    /// letter of a group unacknowledged while it reads them.
    listing: tokio::sync::Mutex<()>,
    /// One group declared (and consumed from) at a time in this process: RabbitMQ 3.10 answers
    /// a second declaration of a quorum queue still starting at once, and a consume right
    /// after it crashes the broker's channel with `noproc`, which closes the whole connection.
    declaring: tokio::sync::Mutex<()>,
}

/// How long a publish waits for the broker's confirm (a broker under a resource alarm blocks
/// publishers without a word).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping subscription waits for the broker to confirm its consumer's cancel.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest namespace: queue names (`<ns>/<topic>/<group>/dead/<n>`) must fit AMQP's 255 bytes.
const MAX_NAMESPACE: usize = 64;

fn check_namespace(ns: &str) -> Result<()> {
    check_name(ns)?;
    if ns.len() > MAX_NAMESPACE {
        return Err(BusError::Broker(format!(
            "namespace: at most {MAX_NAMESPACE} characters"
        )));
    }
    Ok(())
}

/// A channel in confirm mode.
async fn confirming(connection: &Connection) -> Result<Channel> {
    let channel = connection.create_channel().await.map_err(broker)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker)?;
    Ok(channel)
}

fn broker(e: lapin::Error) -> BusError {
    BusError::Broker(e.to_string())
}

fn soft_error(e: &lapin::Error) -> Option<AMQPSoftError> {
    match e.kind() {
        ErrorKind::ProtocolError(p) => match p.kind() {
            AMQPErrorKind::Soft(s) => Some(s.clone()),
            AMQPErrorKind::Hard(_) => None,
        },
        _ => None,
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// An integer header, whatever width the broker chose.
fn int_header(props: &BasicProperties, name: &str) -> Option<u64> {
    let value = props.headers().as_ref()?.inner().get(name)?;
    let n = match value {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u64::try_from(n).ok()
}

fn message_id(props: &BasicProperties) -> Uuid {
    props
        .message_id()
        .as_ref()
        .and_then(|id| Uuid::parse_str(id.as_str()).ok())
        .unwrap_or_else(|| {
            // Published by something else than PingTower: it still gets an id to settle by.
            tracing::warn!("a message without a PingTower id: giving it one");
            Uuid::now_v7()
        })
}

impl RabbitBus {
    /// Connects to `url` (`amqp://user:password@host:port/vhost`, or `amqps://`) and declares
    /// the namespace's exchanges.
    pub async fn connect(url: &str, options: RabbitOptions) -> Result<Self> {
        check_namespace(&options.namespace)?;
        let connection = Connection::connect(
            url,
            ConnectionProperties::default()
                .with_connection_name(LongString::from(b"pingtower".to_vec())),
        )
        .await
        .map_err(broker)?;
        let publisher = confirming(&connection).await?;
        let bus = Self {
            connection: Arc::new(connection),
            publisher: tokio::sync::Mutex::new(publisher),
            options,
            closed: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            bindings: Arc::default(),
            listing: tokio::sync::Mutex::const_new(()),
            declaring: tokio::sync::Mutex::const_new(()),
        };
        bus.declare_exchanges().await?;
        Ok(bus)
    }

    async fn declare_exchanges(&self) -> Result<()> {
        let durable = self.options.expire_unused.is_none();
        for (name, kind) in [
            (self.exchange(), ExchangeKind::Topic),
            (self.dead_exchange(), ExchangeKind::Direct),
        ] {
            let channel = self.channel().await?;
            let declared = channel
                .exchange_declare(
                    name.as_str().into(),
                    kind.clone(),
                    ExchangeDeclareOptions {
                        durable,
                        // Short-lived namespaces leave nothing behind once their queues expire.
                        auto_delete: !durable,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(()) => close(&channel, "declared").await,
                Err(e) if soft_error(&e) == Some(AMQPSoftError::PRECONDITIONFAILED) => {
                    // Made before with other properties (`expires` added or removed): keep it.
                    tracing::warn!(exchange = %name, error = %e, "exchange declared before with other properties; keeping it");
                    let channel = self.channel().await?;
                    channel
                        .exchange_declare(
                            name.as_str().into(),
                            kind,
                            ExchangeDeclareOptions {
                                passive: true,
                                ..ExchangeDeclareOptions::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                        .map_err(broker)?;
                    close(&channel, "declared").await;
                }
                Err(e) => return Err(broker(e)),
            }
        }
        Ok(())
    }

    /// Declares the exchanges again and every binding this bus made on them.
    async fn redeclare(&self) -> Result<()> {
        self.declare_exchanges().await?;
        let bindings: Vec<_> = self
            .bindings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let mut failed = None;
        for (queue, exchange, key) in bindings {
            // A queue gone since (an ephemeral group's, an expired one) needs no binding.
            let outcome = match self.queue_exists(&queue).await {
                Ok(true) => self.bind(&queue, &exchange, &key).await,
                Ok(false) => {
                    self.forget_binding(&queue);
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                tracing::warn!(%queue, %exchange, error = %e, "binding not made again");
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn forget_binding(&self, queue: &str) {
        self.bindings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(q, _, _)| q != queue);
    }

    /// Binds `queue` to `exchange` by `key`, and remembers it. An exchange gone (the
    /// auto-deleted one of a short-lived namespace whose last queue went) is declared again.
    async fn bind(&self, queue: &str, exchange: &str, key: &str) -> Result<()> {
        let mut declared_again = false;
        loop {
            let channel = self.channel().await?;
            match channel
                .queue_bind(
                    queue.into(),
                    exchange.into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            {
                Ok(()) => {
                    close(&channel, "bound").await;
                    self.bindings
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert((queue.to_owned(), exchange.to_owned(), key.to_owned()));
                    return Ok(());
                }
                Err(e) if !declared_again && soft_error(&e) == Some(AMQPSoftError::NOTFOUND) => {
                    self.declare_exchanges().await?;
                    declared_again = true;
                }
                Err(e) => return Err(broker(e)),
            }
        }
    }

    /// Declares a queue; one declared before with other arguments (another delivery limit,
    /// `expires` added or removed) is kept as it is.
    async fn declare_queue(
        &self,
        queue: &str,
        options: QueueDeclareOptions,
        args: FieldTable,
    ) -> Result<()> {
        let channel = self.channel().await?;
        match channel.queue_declare(queue.into(), options, args).await {
            Ok(_) => {
                close(&channel, "declared").await;
                Ok(())
            }
            Err(e) if soft_error(&e) == Some(AMQPSoftError::PRECONDITIONFAILED) => {
                tracing::debug!(%queue, error = %e, "queue declared before with other options; keeping it");
                let channel = self.channel().await?;
                channel
                    .queue_declare(
                        queue.into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(broker)?;
                close(&channel, "declared").await;
                Ok(())
            }
            Err(e) => Err(broker(e)),
        }
    }

    /// Publishes and waits for the broker's confirm. An error closes the publishing channel,
    /// so the next publish opens another; an exchange that went (deleted by hand, or the
    /// auto-deleted one of a short-lived namespace whose last queue went) is declared again
    /// and the message sent once more (it was not routed the first time).
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        id: Uuid,
        payload: &[u8],
    ) -> Result<()> {
        let mut declared_again = false;
        loop {
            self.ensure_open()?;
            if self.connection.status().blocked() {
                return Err(BusError::Broker(
                    "the broker blocks publishing (a memory or disk alarm)".to_owned(),
                ));
            }
            let channel = {
                let mut publisher = self.publisher.lock().await;
                if !publisher.status().connected() {
                    *publisher = confirming(&self.connection).await?;
                }
                publisher.clone()
            };
            let sent = async {
                channel
                    .basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions::default(),
                        payload,
                        BasicProperties::default()
                            .with_message_id(ShortString::from(id.to_string()))
                            .with_delivery_mode(2),
                    )
                    .await?
                    .await
            };
            let sent = match tokio::time::timeout(CONFIRM_TIMEOUT, sent).await {
                Ok(sent) => sent,
                Err(_) => {
                    return Err(BusError::Broker(format!(
                        "no confirm for message {id} within {}s (it may still arrive)",
                        CONFIRM_TIMEOUT.as_secs()
                    )));
                }
            };
            match sent {
                Ok(confirm) if confirm.is_nack() => {
                    return Err(BusError::Broker(format!(
                        "the broker did not take message {id} for `{routing_key}`"
                    )));
                }
                Ok(_) => return Ok(()),
                Err(e)
                    if !declared_again
                        && !exchange.is_empty()
                        && soft_error(&e) == Some(AMQPSoftError::NOTFOUND) =>
                {
                    tracing::warn!(%exchange, "the exchange was gone: declaring it and its bindings again");
                    self.redeclare().await?;
                    declared_again = true;
                }
                Err(e) => return Err(broker(e)),
            }
        }
    }

    fn exchange(&self) -> String {
        self.options.namespace.clone()
    }

    fn dead_exchange(&self) -> String {
        format!("{}.dead", self.options.namespace)
    }

    fn queue(&self, topic: &str, group: &str) -> String {
        format!("{}/{topic}/{group}", self.options.namespace)
    }

    fn dead_queue(&self, topic: &str, group: &str) -> String {
        format!("{}/dead", self.queue(topic, group))
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.is_cancelled() || !self.connection.status().connected() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    /// A channel for one piece of administration: an error the broker answers (a queue that
    /// does not exist) closes the channel it came on, not the shared ones.
    async fn channel(&self) -> Result<Channel> {
        self.ensure_open()?;
        self.connection.create_channel().await.map_err(broker)
    }

    fn with_expiry(&self, args: &mut FieldTable) {
        if let Some(d) = self.options.expire_unused {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
    }

    /// Declares the group's queue (and its dead letters), bound to the topic. The first
    /// declaration's options win: declaring again with others keeps the queue as it is.
    async fn declare_group(
        &self,
        topic: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<String> {
        check_name(topic)?;
        check_name(group)?;
        let queue = self.queue(topic, group);
        if options.ephemeral {
            let exclusive = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            };
            self.declare_queue(&queue, exclusive, FieldTable::default())
                .await?;
        } else {
            let dead = self.dead_queue(topic, group);
            // The dead-letter routing key carries the group's delivery limit, which a message
            // dead-lettered for using it up is read with (the broker adds no count to it).
            let max = options.max_deliveries.max(1);
            let dead_key = format!("{dead}/{max}");
            let mut dead_args = FieldTable::default();
            dead_args.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(MAX_DEAD_LETTERS),
            );
            self.with_expiry(&mut dead_args);
            self.declare_queue(&dead, QueueDeclareOptions::durable(), dead_args)
                .await?;
            self.bind(&dead, &self.dead_exchange(), &dead_key).await?;
            // What a consumer refuses is dead-lettered by the consumer itself (to carry its
            // count), by the queue's plain name, bound whatever limit the group was made with.
            self.bind(&dead, &self.dead_exchange(), &dead).await?;
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), long_string("quorum"));
            // Returned this many times, the next return dead-letters it: `max_deliveries`
            // deliveries in all.
            let limit = i64::from(max) - 1;
            args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
            args.insert(
                "x-dead-letter-exchange".into(),
                long_string(&self.dead_exchange()),
            );
            args.insert("x-dead-letter-routing-key".into(), long_string(&dead_key));
            self.with_expiry(&mut args);
            self.declare_queue(&queue, QueueDeclareOptions::durable(), args)
                .await?;
        }
        self.bind(&queue, &self.exchange(), topic).await?;
        Ok(queue)
    }

    /// Ready messages in `queue`; `None`: no such queue.
    async fn ready(&self, queue: &str) -> Result<Option<u64>> {
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => {
                close(&channel, "depth").await;
                Ok(Some(u64::from(q.message_count())))
            }
            Err(e) if soft_error(&e) == Some(AMQPSoftError::NOTFOUND) => Ok(None),
            Err(e) => Err(broker(e)),
        }
    }

    async fn queue_exists(&self, queue: &str) -> Result<bool> {
        Ok(self.ready(queue).await?.is_some())
    }

    /// Takes every message of a queue without an ack; closing the returned channel hands
    /// back all that were not acked. `None`: no such queue.
    async fn take_all(
        &self,
        queue: &str,
    ) -> Result<Option<(Channel, Vec<lapin::message::Delivery>)>> {
        let channel = self.channel().await?;
        let mut taken = Vec::new();
        loop {
            match channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await
            {
                Ok(Some(m)) => taken.push(m.delivery),
                Ok(None) => return Ok(Some((channel, taken))),
                Err(e) if soft_error(&e) == Some(AMQPSoftError::NOTFOUND) => return Ok(None),
                Err(e) => {
                    close(&channel, "failed").await;
                    return Err(broker(e));
                }
            }
        }
    }
}

async fn close(channel: &Channel, why: &str) {
    if channel.status().connected() {
        let _ = channel.close(200, why.into()).await;
    }
}

#[async_trait]
impl Bus for RabbitBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<Uuid> {
        check_name(topic)?;
        self.ensure_open()?;
        let id = Uuid::now_v7();
        self.send(&self.exchange(), topic, id, &payload).await?;
        Ok(id)
    }

    async fn declare(&self, topic: &str, group: &str, options: SubscribeOptions) -> Result<()> {
        let _one_at_a_time = self.declaring.lock().await;
        self.declare_group(topic, group, options).await.map(|_| ())
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>> {
        let _one_at_a_time = self.declaring.lock().await;
        let queue = self.declare_group(topic, group, options).await?;
        let channel = self.channel().await?;
        let dead = (!options.ephemeral)
            .then(|| Arc::new((self.dead_exchange(), self.dead_queue(topic, group))));
        channel
            .basic_qos(options.prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(broker)?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker)?;
        Ok(Box::new(RabbitSubscription {
            channel,
            consumer,
            topic: topic.to_owned(),
            ephemeral: options.ephemeral,
            max_deliveries: options.max_deliveries.max(1),
            dead,
            seen: HashMap::new(),
            connection: self.connection.clone(),
            bindings: options
                .ephemeral
                .then(|| (self.bindings.clone(), queue.clone())),
            held: Arc::new(Held::default()),
            stopped: false,
            closed: self.closed.clone(),
            runtime: self.runtime.clone(),
        }))
    }

    async fn depth(&self, topic: &str, group: &str) -> Result<u64> {
        check_name(topic)?;
        check_name(group)?;
        Ok(self.ready(&self.queue(topic, group)).await?.unwrap_or(0))
    }

    async fn dead_letters(&self, topic: &str, group: &str) -> Result<Vec<DeadLetter>> {
        check_name(topic)?;
        check_name(group)?;
        let _one_at_a_time = self.listing.lock().await;
        let Some((channel, taken)) = self.take_all(&self.dead_queue(topic, group)).await? else {
            return Ok(Vec::new());
        };
        close(&channel, "listed").await;
        Ok(taken
            .into_iter()
            .map(|d| {
                let deliveries = dead_deliveries(&d);
                DeadLetter {
                    message: Message {
                        id: message_id(&d.properties),
                        topic: topic.to_owned(),
                        payload: Bytes::from(d.data),
                    },
                    deliveries,
                }
            })
            .collect())
    }

    async fn replay_dead_letter(&self, topic: &str, group: &str, id: Uuid) -> Result<()> {
        check_name(topic)?;
        check_name(group)?;
        let queue = self.queue(topic, group);
        // The default exchange confirms a message for a queue that does not exist (and drops
        // it): the group must be there before its dead letter leaves the dead queue.
        if !self.queue_exists(&queue).await? {
            return Err(BusError::Broker(format!(
                "group `{group}` of `{topic}` no longer exists; its dead letters stay"
            )));
        }
        let _one_at_a_time = self.listing.lock().await;
        let Some((channel, taken)) = self.take_all(&self.dead_queue(topic, group)).await? else {
            return Err(BusError::NoSuchDeadLetter(id));
        };
        let outcome = async {
            let Some(d) = taken.iter().find(|d| message_id(&d.properties) == id) else {
                return Err(BusError::NoSuchDeadLetter(id));
            };
            // To its group alone (the default exchange routes by queue name), with a fresh
            // count: no headers from its earlier life.
            self.send("", &queue, id, &d.data).await?;
            d.ack(BasicAckOptions::default()).await.map_err(broker)?;
            Ok(())
        }
        .await;
        close(&channel, "replayed").await;
        outcome
    }

    async fn ping(&self) -> Result<()> {
        self.ensure_open()?;
        if self.connection.status().blocked() {
            return Err(BusError::Broker(
                "the broker blocks publishing (a memory or disk alarm)".to_owned(),
            ));
        }
        Ok(())
    }

    async fn close(&self) {
        self.closed.cancel();
        if self.options.expire_unused.is_some() {
            // A short-lived namespace: its exchanges go with their last queue, but one that
            // never had a queue bound would stay for ever. Only unused ones are deleted.
            for name in [self.exchange(), self.dead_exchange()] {
                if let Ok(channel) = self.connection.create_channel().await
                    && channel
                        .exchange_delete(
                            name.as_str().into(),
                            ExchangeDeleteOptions {
                                if_unused: true,
                                ..ExchangeDeleteOptions::default()
                            },
                        )
                        .await
                        .is_ok()
                {
                    close(&channel, "cleaned up").await;
                }
            }
        }
        if self.connection.status().connected()
            && let Err(e) = self.connection.close(200, "shutting down".into()).await
        {
            tracing::debug!(error = %e, "closing the broker connection");
        }
    }
}

/// Deliveries of a dead letter so far: the broker's count of returns, plus the last one.
fn deliveries_of(props: &BasicProperties) -> u32 {
    let returns = int_header(props, "x-delivery-count").unwrap_or(0);
    u32::try_from(returns.saturating_add(1)).unwrap_or(u32::MAX)
}

/// Deliveries of a dead letter: the count its consumer wrote on it when it refused it, or
/// the group's limit when it used them up (the last part of its dead-letter routing key).
fn dead_deliveries(d: &lapin::message::Delivery) -> u32 {
    if let Some(n) = int_header(&d.properties, DELIVERIES_HEADER) {
        return u32::try_from(n).unwrap_or(u32::MAX);
    }
    let reason = d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| match h.inner().get("x-death")? {
            AMQPValue::FieldArray(deaths) => match deaths.as_slice().first()? {
                AMQPValue::FieldTable(death) => match death.inner().get("reason")? {
                    AMQPValue::LongString(r) => Some(r.to_string()),
                    AMQPValue::ShortString(r) => Some(r.to_string()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        });
    if reason.as_deref() == Some("delivery_limit")
        && let Some(max) = d
            .routing_key
            .as_str()
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
    {
        return max;
    }
    deliveries_of(&d.properties)
}

/// Deliveries a subscription handed out and that are not settled yet.
#[derive(Default)]
struct Held {
    count: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

impl Held {
    fn take(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn release(&self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.settled.notify_waiters();
    }

    /// Waits until every held delivery is settled.
    async fn drained(&self) {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            settled.await;
        }
    }
}

/// Redeliveries of an ephemeral group's messages counted in the process (its classic queue
/// counts nothing); forgotten beyond this many.
const MAX_SEEN: usize = 10_000;

struct RabbitSubscription {
    channel: Channel,
    consumer: lapin::Consumer,
    topic: String,
    ephemeral: bool,
    max_deliveries: u32,
    /// Durable groups: the dead-letter exchange and routing key refused messages go to.
    dead: Option<Arc<(String, String)>>,
    /// Ephemeral groups: deliveries so far of the messages delivered again.
    seen: HashMap<Uuid, u32>,
    /// For refusals, published on a channel of their own.
    connection: Arc<Connection>,
    /// Ephemeral groups: the bus's bindings and this group's queue, forgotten with it.
    bindings: Option<(Bindings, String)>,
    held: Arc<Held>,
    stopped: bool,
    closed: CancellationToken,
    runtime: tokio::runtime::Handle,
}

impl RabbitSubscription {
    async fn cancel(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if !self.channel.status().connected() {
            return;
        }
        // Bounded: a blocked broker (resource alarm) or a dead link must not hold a shutdown.
        let cancelled = tokio::time::timeout(
            CANCEL_TIMEOUT,
            self.channel
                .basic_cancel(self.consumer.tag(), BasicCancelOptions::default()),
        )
        .await;
        match cancelled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(topic = %self.topic, error = %e, "cancelling a consumer"),
            Err(_) => {
                tracing::warn!(topic = %self.topic, "the broker did not confirm a consumer's cancel in time")
            }
        }
    }
}

#[async_trait]
impl Subscription for RabbitSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if self.stopped {
                return None;
            }
            let d = tokio::select! {
                d = self.consumer.next() => d,
                () = self.closed.cancelled() => return None,
            };
            let d = match d? {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "broker subscription ended");
                    return None;
                }
            };
            let id = message_id(&d.properties);
            let attempt = if self.ephemeral {
                // A classic queue counts nothing: count here what comes again, and drop a
                // message that used its deliveries up (no store error loops for ever).
                if d.redelivered {
                    if self.seen.len() >= MAX_SEEN {
                        self.seen.clear();
                    }
                    let n = self.seen.entry(id).or_insert(1);
                    *n += 1;
                    *n
                } else {
                    1
                }
            } else {
                deliveries_of(&d.properties)
            };
            if self.ephemeral && attempt > self.max_deliveries {
                tracing::warn!(topic = %self.topic, message = %id, attempt, "message dropped after its deliveries");
                self.seen.remove(&id);
                let acker = d.acker;
                self.runtime.spawn(async move {
                    let _ = acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: false,
                        })
                        .await;
                });
                continue;
            }
            let message = Message {
                id,
                topic: self.topic.clone(),
                payload: Bytes::from(d.data),
            };
            self.held.take();
            let settle = RabbitSettle {
                acker: d.acker,
                runtime: self.runtime.clone(),
                held: self.held.clone(),
                refuse: self.dead.clone().map(|dead| Refuse {
                    connection: self.connection.clone(),
                    dead,
                    id,
                    payload: message.payload.clone(),
                    attempt,
                }),
            };
            return Some(Delivery::new(message, attempt, Box::new(settle)));
        }
    }

    async fn stop(&mut self) {
        self.cancel().await;
    }
}

impl Drop for RabbitSubscription {
    fn drop(&mut self) {
        if let Some((bindings, queue)) = self.bindings.take() {
            // The queue goes with its consumer (auto-delete): nothing to bind again.
            bindings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(q, _, _)| *q != queue);
        }
        // The broker stops sending first; the channel closes once the deliveries still held
        // are settled (they can be, and a worker finishing one must not see it sent again to
        // another), or with the bus. Closing it hands back what was never settled.
        let channel = self.channel.clone();
        if !channel.status().connected() {
            return;
        }
        let (tag, stopped) = (self.consumer.tag(), self.stopped);
        let (held, closed) = (self.held.clone(), self.closed.clone());
        self.runtime.spawn(async move {
            if !stopped {
                let _ = channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await;
            }
            tokio::select! {
                () = held.drained() => {}
                () = closed.cancelled() => {}
            }
            let _ = channel.close(200, "subscription dropped".into()).await;
        });
    }
}

struct RabbitSettle {
    acker: lapin::Acker,
    runtime: tokio::runtime::Handle,
    held: Arc<Held>,
    refuse: Option<Refuse>,
}

/// What dead-lettering a refused message takes: the broker would dead-letter it without its
/// count of deliveries, so the consumer publishes it to the dead letters with the count, then
/// acks it.
struct Refuse {
    connection: Arc<Connection>,
    /// The dead-letter exchange and routing key.
    dead: Arc<(String, String)>,
    id: Uuid,
    payload: Bytes,
    attempt: u32,
}

impl Refuse {
    /// Whether the dead letters took it. On a channel of its own: an error (the dead-letter
    /// exchange gone) must not close the consumer's channel. Mandatory: with no dead queue
    /// bound, the broker would confirm it and drop it.
    async fn send(&self) -> lapin::Result<bool> {
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut headers = FieldTable::default();
        headers.insert(
            DELIVERIES_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(self.attempt)),
        );
        let confirm = channel
            .basic_publish(
                self.dead.0.as_str().into(),
                self.dead.1.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &self.payload,
                BasicProperties::default()
                    .with_message_id(ShortString::from(self.id.to_string()))
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await?;
        let taken = match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(confirm) => matches!(confirm?, lapin::Confirmation::Ack(None)),
            Err(_) => false,
        };
        close(&channel, "refused").await;
        Ok(taken)
    }
}

/// The deliveries of a message a consumer refused, on its dead letter.
const DELIVERIES_HEADER: &str = "x-pingtower-deliveries";

impl Settle for RabbitSettle {
    fn ack(&self) {
        let (acker, held) = (self.acker.clone(), self.held.clone());
        self.runtime.spawn(async move {
            // A channel gone since: the broker hands the message back; it comes again.
            match acker.ack(BasicAckOptions::default()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!("ack not sent (channel closed); the message will come again");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "ack not sent; the message will come again");
                }
            }
            held.release();
        });
    }

    fn nack(&self, requeue: bool) {
        let (acker, held) = (self.acker.clone(), self.held.clone());
        if !requeue && let Some(refuse) = &self.refuse {
            let refuse = Refuse {
                connection: refuse.connection.clone(),
                dead: refuse.dead.clone(),
                id: refuse.id,
                payload: refuse.payload.clone(),
                attempt: refuse.attempt,
            };
            self.runtime.spawn(async move {
                let sent = match refuse.send().await {
                    Ok(true) => acker.ack(BasicAckOptions::default()).await.map(|_| ()),
                    // Not taken (or it failed): the broker dead-letters it (without its count).
                    Ok(false) | Err(_) => acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: false,
                        })
                        .await
                        .map(|_| ()),
                };
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "refusal not sent; the message will come again");
                }
                held.release();
            });
            return;
        }
        self.runtime.spawn(async move {
            let options = BasicNackOptions {
                multiple: false,
                requeue,
            };
            if let Err(e) = acker.nack(options).await {
                tracing::debug!(error = %e, "nack not sent; the message will come again");
            }
            held.release();
        });
    }
}
