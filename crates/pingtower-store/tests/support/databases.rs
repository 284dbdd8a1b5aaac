//! A database of its own for each test case, on each engine, removed afterwards: a SQLite file
//! in a temporary folder, or a fresh PostgreSQL database (on the server of
//! `PINGTOWER_TEST_POSTGRES_URL`), dropped even when the case fails. Shared by the store's and
//! the analytics store's conformance suites (included with `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

/// Runs `case` with the URL of a fresh SQLite database (`file` in a temporary folder).
pub async fn with_sqlite<F, Fut>(file: &str, case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join(file).display());
    case(url).await;
}

pub fn postgres_base_url() -> String {
    std::env::var("PINGTOWER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Runs `case` with the URL of a fresh PostgreSQL database, dropped afterwards.
pub async fn with_postgres<F, Fut>(case: F)
where
    F: FnOnce(String) -> Fut,
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
    let outcome = tokio::spawn(case(url.to_string())).await;
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
