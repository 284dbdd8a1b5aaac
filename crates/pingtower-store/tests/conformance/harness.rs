//! Gives each case a store of its own on each backend, and removes it afterwards.

use pingtower_store::{Store, StoreOptions};
use std::future::Future;
use std::sync::Arc;

/// What a case gets: a way to open (and re-open) its own database.
pub struct Harness {
    url: String,
}

impl Harness {
    pub async fn open(&self) -> Arc<dyn Store> {
        pingtower_store::open(&self.url, &StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url))
    }
}

pub async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    crate::databases::with_sqlite("pingtower.db", |url| case(Harness { url })).await;
}

pub async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    crate::databases::with_postgres(|url| case(Harness { url })).await;
}
