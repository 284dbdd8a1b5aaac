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
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pingtower.db").display());
    case(Harness { url }).await;
}

pub fn postgres_base_url() -> String {
    std::env::var("PINGTOWER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    use sqlx::Connection;
    let base = postgres_base_url();
    let name = format!("pingtower_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} (PINGTOWER_TEST_POSTGRES_URL): {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);
    // Run the case as its own task so that a failing assertion still lets us drop the database.
    let outcome = tokio::spawn(case(Harness {
        url: url.to_string(),
    }))
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
