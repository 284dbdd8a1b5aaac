//! The analytics store's conformance suite: every case is written once (in `cases.rs`) against
//! the `EventStore` trait and runs on every backend, SQLite (a fresh file per case) and
//! PostgreSQL (a fresh database per case, from `PINGTOWER_TEST_POSTGRES_URL`, dropped after).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod packing;

use packing::Packing;
use pingtower_analytics::EventStore;
use std::sync::Arc;
#[path = "../../../pingtower-store/tests/support/databases.rs"]
mod databases;

/// What a case gets: a way to open (and re-open) its own events database.
pub struct Harness {
    url: String,
    /// Pack most of each batch into blocks right after it is appended (see [`Packing`]).
    packed: bool,
}

impl Harness {
    pub async fn open(&self) -> Arc<dyn EventStore> {
        let store = pingtower_analytics::store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.url));
        if self.packed {
            Arc::new(Packing(store))
        } else {
            store
        }
    }

    /// Runs `sql` on the case's database directly (to damage what a store wrote).
    pub async fn execute(&self, sql: &'static str) {
        use sqlx::Connection;
        if self.is_postgres() {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        /// Every case on each backend, with events as appended (rows) and mostly packed.
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::databases::with_sqlite("events.db", |url| crate::cases::$case(crate::Harness { url, packed: false })).await;
            })+
        }
        mod sqlite_packed {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::databases::with_sqlite("events.db", |url| crate::cases::$case(crate::Harness { url, packed: true })).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::databases::with_postgres(|url| crate::cases::$case(crate::Harness { url, packed: false })).await;
            })+
        }
        mod postgres_packed {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::databases::with_postgres(|url| crate::cases::$case(crate::Harness { url, packed: true })).await;
            })+
        }
    };
}

conformance!(
    a_batch_is_stored_whole_and_listed_newest_first,
    the_cursor_neither_skips_nor_repeats,
    a_key_counts_a_batch_once_within_its_window,
    racing_batches_with_one_key_are_stored_once,
    counts_per_minute_and_names_follow_the_events,
    nothing_crosses_tenants,
    deleting_a_tenant_removes_its_events,
    old_events_are_pruned_by_whole_minutes,
    events_survive_reopening,
    a_scan_reads_a_window_oldest_first_page_by_page,
    minutes_and_hours_count_and_sketch_their_users,
    packing_moves_every_event_into_blocks_once,
    packing_never_brings_back_what_a_deletion_removed,
    a_query_reads_every_event_of_its_range_once,
    busy_hours_and_single_events_share_one_id_space,
    racing_busy_batches_of_one_hour_keep_every_event_once,
    a_damaged_block_never_stops_ingestion,
    racing_batches_of_many_names_count_every_minute_once,
);
