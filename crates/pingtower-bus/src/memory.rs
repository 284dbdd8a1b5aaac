//! The in-process bus: the embedded default. Nothing survives a restart, which is why the
//! all-in-one process keeps nothing in the bus that the store does not also hold.

use crate::{
    Bus, BusError, DeadLetter, Delivery, Message, Result, Settle, SubscribeOptions, Subscription,
    check_name,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Dead letters kept per group; beyond this the oldest go (memory is bounded).
const MAX_DEAD_LETTERS: usize = 10_000;

#[derive(Default)]
struct Registry {
    /// topic -> its groups
    topics: HashMap<String, Vec<Arc<Group>>>,
}

struct Pending {
    message: Message,
    deliveries: u32,
}

#[derive(Default)]
struct GroupState {
    ready: VecDeque<Pending>,
    in_flight: HashMap<u64, Pending>,
    dead: Vec<DeadLetter>,
    next_tag: u64,
}

struct Group {
    name: String,
    state: Mutex<GroupState>,
    notify: Notify,
    max_deliveries: u32,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // A poisoned lock means a panic while holding it; the queue itself is still consistent
        // (every mutation is a single push or pop), so keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, message: Message) {
        self.lock().ready.push_back(Pending {
            message,
            deliveries: 0,
        });
        self.notify.notify_one();
    }

    fn settle(&self, tag: u64, outcome: Outcome) {
        let mut state = self.lock();
        let Some(p) = state.in_flight.remove(&tag) else {
            return;
        };
        match outcome {
            Outcome::Ack => {}
            Outcome::Requeue if p.deliveries < self.max_deliveries => {
                // At the front, as a broker requeues at the message's original position.
                state.ready.push_front(p);
                drop(state);
                self.notify.notify_one();
            }
            Outcome::Requeue | Outcome::Dead => {
                tracing::warn!(group = %self.name, message = %p.message.id, deliveries = p.deliveries, "message dead-lettered");
                if state.dead.len() >= MAX_DEAD_LETTERS {
                    let dropped = state.dead.remove(0);
                    tracing::warn!(group = %self.name, message = %dropped.message.id, "dead-letter list full: the oldest is dropped");
                }
                state.dead.push(DeadLetter {
                    message: p.message,
                    deliveries: p.deliveries,
                });
            }
        }
    }
}

enum Outcome {
    Ack,
    Requeue,
    Dead,
}

/// An in-process [`Bus`].
#[derive(Clone, Default)]
pub struct MemoryBus {
    registry: Arc<Mutex<Registry>>,
    closed: CancellationToken,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn group(
        &self,
        topic: &str,
        group: &str,
        options: Option<SubscribeOptions>,
    ) -> Result<Arc<Group>> {
        check_name(topic)?;
        check_name(group)?;
        let mut registry = self.registry();
        let groups = registry.topics.entry(topic.to_owned()).or_default();
        if let Some(g) = groups.iter().find(|g| g.name == group) {
            return Ok(g.clone());
        }
        let options = options.unwrap_or_default();
        let g = Arc::new(Group {
            name: group.to_owned(),
            state: Mutex::new(GroupState::default()),
            notify: Notify::new(),
            max_deliveries: options.max_deliveries.max(1),
        });
        groups.push(g.clone());
        Ok(g)
    }

    fn existing_group(&self, topic: &str, group: &str) -> Result<Option<Arc<Group>>> {
        check_name(topic)?;
        check_name(group)?;
        Ok(self
            .registry()
            .topics
            .get(topic)
            .and_then(|gs| gs.iter().find(|g| g.name == group).cloned()))
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<Uuid> {
        check_name(topic)?;
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        let message = Message {
            id: Uuid::now_v7(),
            topic: topic.to_owned(),
            payload,
        };
        let groups = self
            .registry()
            .topics
            .get(topic)
            .cloned()
            .unwrap_or_default();
        for g in groups {
            g.push(message.clone());
        }
        Ok(message.id)
    }

    async fn declare(&self, topic: &str, group: &str, options: SubscribeOptions) -> Result<()> {
        self.group(topic, group, Some(options)).map(|_| ())
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>> {
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        let group = self.group(topic, group, Some(options))?;
        Ok(Box::new(MemorySubscription {
            group,
            credit: Arc::new(Semaphore::new(usize::from(options.prefetch.max(1)))),
            closed: self.closed.clone(),
            ephemeral: options
                .ephemeral
                .then(|| (self.registry.clone(), topic.to_owned())),
            stopped: false,
        }))
    }

    async fn depth(&self, topic: &str, group: &str) -> Result<u64> {
        Ok(self.existing_group(topic, group)?.map_or(0, |g| {
            let s = g.lock();
            (s.ready.len() + s.in_flight.len()) as u64
        }))
    }

    async fn dead_letters(&self, topic: &str, group: &str) -> Result<Vec<DeadLetter>> {
        Ok(self
            .existing_group(topic, group)?
            .map(|g| g.lock().dead.clone())
            .unwrap_or_default())
    }

    async fn replay_dead_letter(&self, topic: &str, group: &str, id: Uuid) -> Result<()> {
        let g = self
            .existing_group(topic, group)?
            .ok_or(BusError::NoSuchDeadLetter(id))?;
        let mut state = g.lock();
        let pos = state
            .dead
            .iter()
            .position(|d| d.message.id == id)
            .ok_or(BusError::NoSuchDeadLetter(id))?;
        let dead = state.dead.remove(pos);
        state.ready.push_back(Pending {
            message: dead.message,
            deliveries: 0,
        });
        drop(state);
        g.notify.notify_one();
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        if self.closed.is_cancelled() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    async fn close(&self) {
        self.closed.cancel();
    }
}

struct MemorySubscription {
    group: Arc<Group>,
    /// One permit per unsettled delivery: the prefetch window.
    credit: Arc<Semaphore>,
    closed: CancellationToken,
    /// An ephemeral group's registry and topic, to leave when the subscription goes.
    ephemeral: Option<(Arc<Mutex<Registry>>, String)>,
    stopped: bool,
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        if let Some((registry, topic)) = self.ephemeral.take() {
            let mut registry = registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(groups) = registry.topics.get_mut(&topic) {
                groups.retain(|g| !Arc::ptr_eq(g, &self.group));
            }
        }
    }
}

impl MemorySubscription {
    fn try_take(
        &self,
        permit: OwnedSemaphorePermit,
    ) -> std::result::Result<Delivery, OwnedSemaphorePermit> {
        let mut state = self.group.lock();
        let Some(mut p) = state.ready.pop_front() else {
            return Err(permit);
        };
        p.deliveries += 1;
        let tag = state.next_tag;
        state.next_tag += 1;
        let (message, attempt) = (p.message.clone(), p.deliveries);
        state.in_flight.insert(tag, p);
        drop(state);
        let settle = MemorySettle {
            group: self.group.clone(),
            tag,
            _permit: permit,
        };
        Ok(Delivery::new(message, attempt, Box::new(settle)))
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Delivery> {
        if self.stopped {
            return None;
        }
        let mut permit = tokio::select! {
            p = self.credit.clone().acquire_owned() => p.ok()?,
            () = self.closed.cancelled() => return None,
        };
        loop {
            let notified = self.group.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.is_cancelled() {
                return None;
            }
            match self.try_take(permit) {
                Ok(d) => {
                    // Others may be waiting and more may be ready: pass the baton on.
                    if !self.group.lock().ready.is_empty() {
                        self.group.notify.notify_one();
                    }
                    return Some(d);
                }
                Err(p) => permit = p,
            }
            tokio::select! {
                () = &mut notified => {}
                () = self.closed.cancelled() => return None,
            }
        }
    }

    async fn stop(&mut self) {
        self.stopped = true;
    }
}

struct MemorySettle {
    group: Arc<Group>,
    tag: u64,
    _permit: OwnedSemaphorePermit,
}

impl Settle for MemorySettle {
    fn ack(&self) {
        self.group.settle(self.tag, Outcome::Ack);
    }

    fn nack(&self, requeue: bool) {
        self.group.settle(
            self.tag,
            if requeue {
                Outcome::Requeue
            } else {
                Outcome::Dead
            },
        );
    }
}
