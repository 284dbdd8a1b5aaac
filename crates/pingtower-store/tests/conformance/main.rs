//! The store conformance suite: every case is written once (in `cases.rs`) against the `Store`
//! trait and runs on every backend. SQLite gets a fresh file per case; PostgreSQL a fresh
//! database per case (from `PINGTOWER_TEST_POSTGRES_URL`), dropped afterwards, so cases run in
//! parallel and leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
#[path = "../support/databases.rs"]
mod databases;
mod harness;

macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::run_sqlite(|h| async move { crate::cases::$case(h).await }).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::run_postgres(|h| async move { crate::cases::$case(h).await }).await;
            })+
        }
    };
}

conformance!(
    reopening_keeps_data_and_migrations_are_idempotent,
    tenants_lifecycle,
    users_and_memberships,
    api_keys_lifecycle,
    monitor_crud_and_optimistic_concurrency,
    monitor_list_filters_and_pagination,
    monitors_created_in_bulk_are_all_or_nothing,
    monitor_global_lookups,
    schedule_entries_and_monitors_by_ids_are_global,
    results_are_batched_idempotent_and_paginated,
    results_are_pruned_by_age,
    concurrent_result_batches_all_land,
    incidents_open_once_per_transition,
    incident_acknowledge_and_resolve,
    resources_lifecycle,
    deliveries_are_idempotent,
    audit_log_is_scoped_and_newest_first,
    nothing_crosses_tenants,
    deleting_a_tenant_removes_what_it_owns,
    results_fold_into_rollups_exactly_once,
    old_results_are_compacted_and_still_read,
    rollups_are_pruned_per_level_and_with_their_monitor,
    incidents_between_a_window,
    compacted_results_of_several_regions_are_all_listed,
    compaction_covers_every_monitor_across_groups,
    a_long_compaction_backlog_is_moved_past_gaps_and_late_rows,
    owners_demoting_each_other_at_once_leave_one,
    sessions_and_invitations,
);
