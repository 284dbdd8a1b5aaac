//! A store that packs most of each batch into blocks as soon as it is appended, so that every
//! case also runs over events split between rows and blocks, with blocks merged often.

use pingtower_analytics::EventStore;
use pingtower_analytics::NewEvent;
use pingtower_analytics::packed::Columns;
use pingtower_analytics::store::{
    Appended, Cursor, Grain, Idempotency, NameCount, Piece, Result, Rollup, StoredEvent, Totals,
};
use pingtower_core::{TenantId, Timestamp};
use std::sync::Arc;

pub struct Packing(pub Arc<dyn EventStore>);

#[async_trait::async_trait]
impl EventStore for Packing {
    async fn append(
        &self,
        tenant: TenantId,
        events: &[NewEvent],
        idempotency: Option<Idempotency<'_>>,
        now: Timestamp,
    ) -> Result<Appended> {
        let appended = self.0.append(tenant, events, idempotency, now).await?;
        // Three quarters of the batch, seven at a time (so that small blocks merge); the
        // rest stays as rows.
        let mut left = events.len() - events.len() / 4;
        while left > 0 {
            let n = self.0.pack(7.min(left as u32)).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n as usize);
        }
        Ok(appended)
    }

    async fn list(
        &self,
        tenant: TenantId,
        name: Option<&str>,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        self.0.list(tenant, name, cursor, limit).await
    }

    async fn scan(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        range: (Timestamp, Timestamp),
        after: Option<Cursor>,
        limit: u32,
        want: &Columns,
    ) -> Result<Vec<StoredEvent>> {
        self.0.scan(tenant, names, range, after, limit, want).await
    }

    async fn pieces(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        range: (Timestamp, Timestamp),
        want: &Columns,
        out: &tokio::sync::mpsc::Sender<Piece>,
    ) -> Result<()> {
        self.0.pieces(tenant, names, range, want, out).await
    }

    async fn names(&self, tenant: TenantId) -> Result<Vec<NameCount>> {
        self.0.names(tenant).await
    }

    async fn rollups(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        grain: Grain,
        range: (Timestamp, Timestamp),
        users: bool,
    ) -> Result<Vec<Rollup>> {
        self.0.rollups(tenant, names, grain, range, users).await
    }

    fn sketches_since(&self) -> Timestamp {
        self.0.sketches_since()
    }

    async fn totals(
        &self,
        tenant: TenantId,
        names: Option<&[String]>,
        grain: Grain,
        range: (Timestamp, Timestamp),
    ) -> Result<Totals> {
        self.0.totals(tenant, names, grain, range).await
    }

    async fn delete_tenant(&self, tenant: TenantId) -> Result<u64> {
        self.0.delete_tenant(tenant).await
    }

    async fn prune(&self, before: Timestamp, now: Timestamp) -> Result<u64> {
        self.0.prune(before, now).await
    }

    async fn maintain(&self, now: Timestamp) -> Result<()> {
        self.0.maintain(now).await
    }

    async fn pack(&self, limit: u32) -> Result<u64> {
        self.0.pack(limit).await
    }

    async fn reclaim(&self) -> Result<()> {
        self.0.reclaim().await
    }
}
