//! PostgreSQL's time partitions: rows that landed in the default partition move into the day's
//! partition when it is made, compaction truncates the partitions it emptied, and pruning
//! drops partitions wholly past the cutoff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pingtower_core::*;
use pingtower_store::{PageRequest, PostgresStore, Store, StoreOptions};
use sqlx::Connection;

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_move_out_of_the_default_partition_and_old_partitions_are_dropped() {
    let base = std::env::var("PINGTOWER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("pingtower_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&name);

    let outcome = tokio::spawn(async move {
        let s = PostgresStore::open(url.as_str(), &StoreOptions::default())
            .await
            .unwrap();
        let t = s
            .create_tenant("acme", Timestamp::from_millis(0))
            .await
            .unwrap()
            .id;
        let new = NewMonitor {
            name: "api".into(),
            kind: MonitorKind::Tcp,
            settings: Default::default(),
            interval_ms: 60_000,
            timeout_ms: 1_000,
            down_after: 1,
            up_after: 1,
            tags: vec![],
            enabled: true,
            push_token: None,
        };
        let m = s
            .create_monitor(t, &new, Timestamp::from_millis(0))
            .await
            .unwrap();
        // Thirty days from now: no partition yet, so the rows land in the default partition.
        let day = (chrono::Utc::now().timestamp_millis() / DAY + 30) * DAY;
        let results: Vec<_> = (0..5)
            .map(|i| CheckResult {
                monitor_id: m.id,
                monitor_seq: m.seq,
                tenant_id: t,
                region: "default".into(),
                checked_at: Timestamp::from_millis(day + i * 60_000),
                status: CheckStatus::Up,
                latency_us: 1,
                reason: None,
                details: None,
            })
            .collect();
        assert_eq!(s.insert_results(&results).await.unwrap(), 5);
        let in_default: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM check_results_default")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(in_default, 5);

        s.prepare_result_storage(Timestamp::from_millis(day))
            .await
            .unwrap();
        let partition = format!(
            "check_results_p{}",
            chrono::DateTime::from_timestamp_millis(day)
                .unwrap()
                .format("%Y%m%d")
        );
        let moved: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {partition}"
        )))
        .fetch_one(s.pool())
        .await
        .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM check_results_default")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(
            (moved, left),
            (5, 0),
            "the day's rows moved into its partition"
        );
        assert_eq!(
            s.list_results(t, m.id, &PageRequest::default())
                .await
                .unwrap()
                .items
                .len(),
            5
        );

        // Once compaction has moved the day's rows into chunks, the emptied partition gives
        // its space back at once rather than at the end of raw retention.
        let later = Timestamp::from_millis(day + DAY + 3 * 3_600_000);
        s.fold_results(later, i64::MAX, &pingtower_core::stats::NoMaintenance)
            .await
            .unwrap();
        let size = |p: String| {
            let pool = s.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT pg_relation_size($1::regclass)")
                    .bind(p)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert!(size(partition.clone()).await > 0);
        assert_eq!(s.compact_results(later).await.unwrap(), 5);
        assert_eq!(
            size(partition.clone()).await,
            0,
            "the emptied partition is truncated"
        );
        assert_eq!(
            s.list_results(t, m.id, &PageRequest::default())
                .await
                .unwrap()
                .items
                .len(),
            5,
            "the compacted results are still listed"
        );
        // A straggler for that day still lands in its partition, and is kept.
        let mut late = results[0].clone();
        late.checked_at = Timestamp::from_millis(day + 30 * 60_000);
        assert_eq!(s.insert_results(&[late]).await.unwrap(), 1);
        assert_eq!(s.compact_results(later).await.unwrap(), 0, "not folded yet");
        assert!(
            size(partition.clone()).await > 0,
            "a partition holding a row stays"
        );
        assert_eq!(
            s.list_results(t, m.id, &PageRequest::default())
                .await
                .unwrap()
                .items
                .len(),
            6
        );

        s.prune_results(Timestamp::from_millis(day + DAY))
            .await
            .unwrap();
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1)")
                .bind(&partition)
                .fetch_one(s.pool())
                .await
                .unwrap();
        assert!(!exists, "a partition wholly before the cutoff is dropped");
        assert!(
            s.list_results(t, m.id, &PageRequest::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        s.close().await;
    })
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
