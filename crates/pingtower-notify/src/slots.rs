//! Send slots shared fairly: at most `total` sends at once, at most `per_tenant` of them for one
//! tenant and `per_channel` for one channel; when slots are short, waiting tenants take turns
//! (round robin), so a tenant with a burst of notifications, or a channel that times out, cannot
//! keep another tenant's notification waiting for more than a send or two.
//!
//! A slot is held only while a request is on the wire: a delivery that backs off or waits for
//! its channel's breaker gives its slot back first.

use pingtower_core::{ResourceId, TenantId};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    pub total: usize,
    pub per_tenant: usize,
    pub per_channel: usize,
}

impl SlotLimits {
    /// `total` slots, a quarter of them (at least one) per tenant, half of that per channel.
    pub fn fair(total: usize) -> Self {
        let total = total.max(1);
        let per_tenant = (total / 4).max(1);
        Self {
            total,
            per_tenant,
            per_channel: (per_tenant / 2).max(1),
        }
    }
}

struct Waiter {
    channel: ResourceId,
    grant: oneshot::Sender<Slot>,
}

#[derive(Default)]
struct State {
    used: usize,
    by_tenant: HashMap<TenantId, usize>,
    by_channel: HashMap<ResourceId, usize>,
    /// Tenants with waiters, in the order they get their next turn.
    turns: VecDeque<TenantId>,
    waiting: HashMap<TenantId, VecDeque<Waiter>>,
}

impl State {
    fn fits(&self, limits: &SlotLimits, tenant: TenantId, channel: ResourceId) -> bool {
        self.used < limits.total
            && self.by_tenant.get(&tenant).copied().unwrap_or(0) < limits.per_tenant
            && self.by_channel.get(&channel).copied().unwrap_or(0) < limits.per_channel
    }

    fn take(&mut self, tenant: TenantId, channel: ResourceId) {
        self.used += 1;
        *self.by_tenant.entry(tenant).or_default() += 1;
        *self.by_channel.entry(channel).or_default() += 1;
    }

    fn give_back(&mut self, tenant: TenantId, channel: ResourceId) {
        self.used = self.used.saturating_sub(1);
        if let Some(n) = self.by_tenant.get_mut(&tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_tenant.remove(&tenant);
            }
        }
        if let Some(n) = self.by_channel.get_mut(&channel) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_channel.remove(&channel);
            }
        }
    }
}

/// The pool of send slots.
pub struct Slots {
    limits: SlotLimits,
    state: Mutex<State>,
}

/// A send slot; given back when dropped.
pub struct Slot {
    pool: Arc<Slots>,
    tenant: TenantId,
    channel: ResourceId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.lock().give_back(self.tenant, self.channel);
        self.pool.dispatch();
    }
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot for a send of `tenant` through `channel`. Cancel-safe: a waiter that
    /// goes away takes no slot with it.
    pub async fn acquire(self: &Arc<Self>, tenant: TenantId, channel: ResourceId) -> Slot {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.lock();
            if !s.waiting.contains_key(&tenant) {
                s.turns.push_back(tenant);
            }
            s.waiting
                .entry(tenant)
                .or_default()
                .push_back(Waiter { channel, grant: tx });
        }
        self.dispatch();
        // A slot sent to a waiter that went away meanwhile is dropped with the channel, which
        // gives it back.
        match rx.await {
            Ok(slot) => slot,
            // The pool drops a waiter's sender only once its receiver is gone; should that ever
            // change, queueing again keeps the caller correct.
            Err(_) => Box::pin(self.acquire(tenant, channel)).await,
        }
    }

    /// Hands free slots to waiters, a tenant at a time in turn (within a tenant, the oldest
    /// waiter whose channel has room).
    fn dispatch(self: &Arc<Self>) {
        let mut grants = Vec::new();
        {
            let mut guard = self.lock();
            let s = &mut *guard;
            // Forget waiters that went away.
            for q in s.waiting.values_mut() {
                q.retain(|w| !w.grant.is_closed());
            }
            s.waiting.retain(|_, q| !q.is_empty());
            let waiting = &s.waiting;
            s.turns.retain(|t| waiting.contains_key(t));
            let mut idle = 0;
            while s.used < self.limits.total && idle < s.turns.len() {
                let Some(tenant) = s.turns.pop_front() else {
                    break;
                };
                let pick = s.waiting.get(&tenant).and_then(|q| {
                    q.iter()
                        .position(|w| s.fits(&self.limits, tenant, w.channel))
                });
                let waiter =
                    pick.and_then(|i| s.waiting.get_mut(&tenant).and_then(|q| q.remove(i)));
                match waiter {
                    Some(w) => {
                        s.take(tenant, w.channel);
                        grants.push((w, tenant));
                        idle = 0;
                        if s.waiting.get(&tenant).is_some_and(|q| !q.is_empty()) {
                            s.turns.push_back(tenant);
                        } else {
                            s.waiting.remove(&tenant);
                        }
                    }
                    None => {
                        s.turns.push_back(tenant);
                        idle += 1;
                    }
                }
            }
        }
        // Outside the lock: a slot that cannot be handed over is dropped, and gives itself back.
        for (w, tenant) in grants {
            let _ = w.grant.send(Slot {
                pool: self.clone(),
                tenant,
                channel: w.channel,
            });
        }
    }

    /// Sends in progress, and deliveries waiting for a slot.
    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let s = self.lock();
        let waiting = s
            .waiting
            .values()
            .flatten()
            .filter(|w| !w.grant.is_closed())
            .count();
        (s.used, waiting)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ids(n: usize) -> Vec<(TenantId, ResourceId)> {
        (0..n)
            .map(|_| (TenantId::new(), ResourceId::new()))
            .collect()
    }

    #[tokio::test]
    async fn limits_hold_and_slots_come_back() {
        let pool = Slots::new(SlotLimits {
            total: 4,
            per_tenant: 2,
            per_channel: 1,
        });
        let t = ids(1)[0].0;
        let (c1, c2, c3) = (ResourceId::new(), ResourceId::new(), ResourceId::new());
        let a = pool.acquire(t, c1).await;
        let _b = pool.acquire(t, c2).await;
        // A third send of the tenant waits, and so does a second on a busy channel.
        let third = tokio::time::timeout(Duration::from_millis(50), pool.acquire(t, c3)).await;
        assert!(third.is_err());
        assert_eq!(
            pool.usage(),
            (2, 0),
            "a cancelled waiter leaves nothing behind"
        );
        let other = TenantId::new();
        let same_channel =
            tokio::time::timeout(Duration::from_millis(50), pool.acquire(other, c1)).await;
        assert!(same_channel.is_err());
        let pool2 = pool.clone();
        let waiting = tokio::spawn(async move { pool2.acquire(t, c3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.usage(), (2, 1));
        drop(a);
        let got = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(got.is_ok(), "a freed slot goes to the waiter");
        drop(got);
        assert_eq!(pool.usage(), (1, 0));
    }

    #[tokio::test]
    async fn a_busy_tenant_does_not_starve_another() {
        // One slot in all: a tenant with 50 queued sends, then another tenant's one send; the
        // second gets the next free slot, not the 51st.
        let pool = Slots::new(SlotLimits {
            total: 1,
            per_tenant: 1,
            per_channel: 1,
        });
        let busy = TenantId::new();
        let chan = ResourceId::new();
        let first = pool.acquire(busy, chan).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..50 {
            let (pool, order) = (pool.clone(), order.clone());
            tokio::spawn(async move {
                let _s = pool.acquire(busy, chan).await;
                order.lock().unwrap().push(format!("busy{i}"));
                tokio::time::sleep(Duration::from_millis(2)).await;
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (p, o) = (pool.clone(), order.clone());
        let quiet = tokio::spawn(async move {
            let _s = p.acquire(TenantId::new(), ResourceId::new()).await;
            o.lock().unwrap().push("quiet".into());
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        quiet.await.unwrap();
        let order = order.lock().unwrap().clone();
        let at = order.iter().position(|x| x == "quiet").unwrap();
        assert!(
            at <= 1,
            "the quiet tenant waited behind {at} sends: {order:?}"
        );
    }
}
