//! PingTower's store: the one place that knows SQL.
//!
//! [`Store`] is the trait every role talks to; [`open`] picks a backend from a URL:
//! `sqlite://PATH` (the embedded default) or `postgres://…`. Both backends share their query
//! text (written once in `sql.rs`, with `$N` placeholders that both drivers bind by number) and
//! differ only where the engines do: migrations, batch inserts of results, and time partitions.
//!
//! Invariants:
//! - Every method that reads or changes tenant data takes the [`TenantId`] and puts it in the
//!   query's `WHERE`: a row of another tenant is indistinguishable from a missing one
//!   ([`StoreError::NotFound`]). The few lookups that are global by nature (API key by prefix,
//!   monitor by push token, status page by slug, the scheduler's list of all monitors) say so.
//! - Writes that consumers may repeat are idempotent: a check result has a natural key, an
//!   incident is unique per (monitor, transition), a delivery per idempotency key.
//! - Times are integer milliseconds since the epoch, UTC.

mod backend;
mod error;
mod migrations;
mod postgres;
mod sql;
mod sqlite;
mod stats;

pub use stats::FoldReport;

use async_trait::async_trait;
use pingtower_core::{
    ApiKey, ApiKeyId, AuditEntry, CheckResult, Delivery, DeliveryId, DeliveryStatus, Incident,
    IncidentEvent, IncidentEventKind, IncidentId, IncidentStatus, Invitation, InvitationId,
    Membership, Monitor, MonitorId, MonitorStatus, NewMonitor, NewResource, Page, Resource,
    ResourceId, ResourceKind, Role, Session, SessionId, Tenant, TenantId, Timestamp, User, UserId,
};
use std::sync::Arc;

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A new user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    pub display_name: Option<String>,
    pub password_hash: Option<String>,
    pub platform_admin: bool,
}

/// What the scheduler needs of a monitor: small, so a million of them fit in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleEntry {
    pub id: MonitorId,
    pub tenant_id: TenantId,
    pub seq: i64,
    pub kind: pingtower_core::MonitorKind,
    pub interval_ms: i64,
    pub enabled: bool,
    pub version: i64,
}

/// Filters of the monitor list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorFilter {
    pub status: Option<MonitorStatus>,
    pub tag: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub order: MonitorOrder,
}

/// The order of the monitor list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MonitorOrder {
    /// Newest first (the cursor is the last item's id).
    #[default]
    Newest,
    /// What needs attention first: down, degraded, pending, maintenance, up, paused; by name
    /// within each (the cursor is `RANK~NAME` of the last item).
    Attention,
}

impl MonitorOrder {
    /// The rank of a status in [`MonitorOrder::Attention`]; the SQL's `CASE` is the same.
    pub fn rank(status: MonitorStatus) -> i64 {
        match status {
            MonitorStatus::Down => 0,
            MonitorStatus::Degraded => 1,
            MonitorStatus::Pending => 2,
            MonitorStatus::Maintenance => 3,
            MonitorStatus::Up => 4,
            MonitorStatus::Paused => 5,
        }
    }
}

/// Filters of the incident list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub monitor_id: Option<MonitorId>,
    pub status: Option<IncidentStatus>,
}

/// What one delivery attempt changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub response: Option<String>,
    pub latency_ms: Option<i64>,
}

/// The page request of a list: at most `limit` items after `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: pingtower_core::page::DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
        }
    }
}

/// The store. Object-safe so that roles hold an `Arc<dyn Store>` whatever the backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Answers when the database does (readiness).
    async fn ping(&self) -> Result<()>;

    /// Closes every connection after in-flight queries finish.
    async fn close(&self);

    // ---- tenants ---------------------------------------------------------------------------
    async fn create_tenant(&self, name: &str, now: Timestamp) -> Result<Tenant>;
    async fn get_tenant(&self, id: TenantId) -> Result<Tenant>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// Deletes the tenant and everything it owns.
    async fn delete_tenant(&self, id: TenantId) -> Result<()>;

    // ---- users and memberships -------------------------------------------------------------
    /// Fails with [`StoreError::Conflict`] when the email (case-insensitive) is taken.
    async fn create_user(&self, user: &NewUser, now: Timestamp) -> Result<User>;
    async fn get_user(&self, id: UserId) -> Result<User>;
    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn count_users(&self) -> Result<i64>;
    /// Sets (or, with `None`, removes) an account's password hash, and whether its email is
    /// proven.
    async fn set_password(
        &self,
        user: UserId,
        hash: Option<&str>,
        email_verified: bool,
    ) -> Result<()>;
    /// Sets a new password hash only if the stored one is still `old` (a reset link works
    /// once, even when two uses race). Returns whether it was replaced.
    async fn replace_password(
        &self,
        user: UserId,
        old: &str,
        new: &str,
        email_verified: bool,
    ) -> Result<bool>;
    async fn set_email_verified(&self, user: UserId, verified: bool) -> Result<()>;

    // ---- login sessions --------------------------------------------------------------------
    /// Also forgets the user's sessions that expired long ago.
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// Global by nature: a login token names its session.
    async fn get_session(&self, id: SessionId) -> Result<Option<Session>>;
    /// Revokes one of the user's sessions; `false` when it was not active.
    async fn revoke_session(&self, user: UserId, id: SessionId, now: Timestamp) -> Result<bool>;
    /// Revokes every session of the user but `keep` (all of them with `None`); answers how many.
    async fn revoke_sessions_of_user(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<u64>;

    // ---- invitations -----------------------------------------------------------------------
    async fn create_invitation(&self, invitation: &Invitation) -> Result<()>;
    /// Global by nature: the token names the invitation (and so its tenant).
    async fn find_invitation(&self, token_hash: &[u8]) -> Result<Option<Invitation>>;
    /// Marks it accepted; `false` when it already was (a second acceptance does nothing).
    async fn accept_invitation(&self, id: InvitationId, now: Timestamp) -> Result<bool>;
    /// The tenant's invitations neither accepted nor expired at `now`, oldest first.
    async fn pending_invitations(
        &self,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Vec<Invitation>>;
    /// Withdraws a pending invitation (`NotFound` when there is none of this tenant).
    async fn delete_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<()>;
    /// Adds the user to the tenant, or changes their role there.
    async fn set_membership(
        &self,
        tenant: TenantId,
        user: UserId,
        role: Role,
        now: Timestamp,
    ) -> Result<Membership>;
    async fn remove_membership(&self, tenant: TenantId, user: UserId) -> Result<()>;
    async fn memberships_of_user(&self, user: UserId) -> Result<Vec<Membership>>;
    async fn members_of_tenant(&self, tenant: TenantId) -> Result<Vec<Membership>>;

    // ---- API keys --------------------------------------------------------------------------
    async fn create_api_key(&self, key: &ApiKey) -> Result<()>;
    /// Global by nature: the key's prefix is what identifies its tenant.
    async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>>;
    async fn revoke_api_key(&self, tenant: TenantId, id: ApiKeyId, now: Timestamp) -> Result<()>;
    async fn touch_api_key(&self, id: ApiKeyId, now: Timestamp) -> Result<()>;

    // ---- monitors --------------------------------------------------------------------------
    /// Fails with [`StoreError::Conflict`] when the tenant has a monitor of that name, or the
    /// push token is taken.
    async fn create_monitor(
        &self,
        tenant: TenantId,
        monitor: &NewMonitor,
        now: Timestamp,
    ) -> Result<Monitor>;
    /// Creates many monitors in one transaction: all of them, or none (configuration as code,
    /// imports, benchmarks).
    async fn create_monitors(
        &self,
        tenant: TenantId,
        monitors: &[NewMonitor],
        now: Timestamp,
    ) -> Result<Vec<Monitor>>;
    async fn get_monitor(&self, tenant: TenantId, id: MonitorId) -> Result<Monitor>;
    /// How many of the tenant's monitors are in each status (statuses with none left out).
    async fn count_monitors(&self, tenant: TenantId) -> Result<Vec<(MonitorStatus, i64)>>;
    /// In `filter.order`.
    async fn list_monitors(
        &self,
        tenant: TenantId,
        filter: &MonitorFilter,
        page: &PageRequest,
    ) -> Result<Page<Monitor>>;
    /// Replaces the writable fields. With `expected_version`, fails with
    /// [`StoreError::VersionMismatch`] unless the stored version is that one.
    async fn update_monitor(
        &self,
        tenant: TenantId,
        id: MonitorId,
        expected_version: Option<i64>,
        monitor: &NewMonitor,
        now: Timestamp,
    ) -> Result<Monitor>;
    /// The evaluator's write: the monitor's evaluated state (does not bump the version).
    async fn set_monitor_status(
        &self,
        tenant: TenantId,
        id: MonitorId,
        status: MonitorStatus,
        now: Timestamp,
    ) -> Result<()>;
    async fn delete_monitor(&self, tenant: TenantId, id: MonitorId) -> Result<()>;
    /// Every monitor of every tenant: the scheduler's load at start. Global by nature.
    async fn all_monitors(&self) -> Result<Vec<Monitor>>;
    /// The scheduling fields of every monitor of every tenant, in `seq` order: the scheduler's
    /// load. Global by nature; no settings are read.
    async fn schedule_entries(&self) -> Result<Vec<ScheduleEntry>>;
    /// The monitors with these ids, whichever their tenant (a worker fetching the monitors of
    /// due checks). Global by nature; missing ids are left out.
    async fn monitors_by_ids(&self, ids: &[MonitorId]) -> Result<Vec<Monitor>>;
    /// Global by nature: the token is the secret of a push URL.
    async fn find_monitor_by_push_token(&self, token: &str) -> Result<Option<Monitor>>;

    // ---- check results ---------------------------------------------------------------------
    /// Writes a batch in one transaction. A result whose (monitor, time, region) is already
    /// stored is skipped, so a redelivered batch does not double count. Returns rows written.
    async fn insert_results(&self, results: &[CheckResult]) -> Result<u64>;
    /// Newest first. The cursor is the `checked_at` of the last item.
    async fn list_results(
        &self,
        tenant: TenantId,
        monitor: MonitorId,
        page: &PageRequest,
    ) -> Result<Page<CheckResult>>;
    /// Makes sure results at `now` and in the next days have somewhere cheap to go (time
    /// partitions on PostgreSQL; nothing to do on SQLite).
    async fn prepare_result_storage(&self, now: Timestamp) -> Result<()>;
    /// Removes results that started before `cutoff`, in steps short enough not to hold
    /// writers up. Returns rows (or an estimate, for dropped partitions) removed.
    async fn prune_results(&self, cutoff: Timestamp) -> Result<u64>;

    // ---- statistics ------------------------------------------------------------------------
    // Rollups and result points are keyed by monitor seq: callers pass the seqs of monitors
    // they read under the tenant (see `pingtower_api`), never seqs from input.
    /// Folds the results checked in `[watermark, until)` (at most `max_ms` of them, whole
    /// minutes) and the late results into the rollups, and advances the watermark; see
    /// `stats.rs` for why every result counts once.
    async fn fold_results(
        &self,
        until: Timestamp,
        max_ms: i64,
        attribution: &dyn pingtower_core::stats::Attribution,
    ) -> Result<FoldReport>;
    /// Everything checked before this is in the rollups (`None` before the first fold).
    async fn fold_watermark(&self) -> Result<Option<Timestamp>>;
    /// The rollups of `level` of the given monitors whose bucket starts in `[from, to)`.
    async fn rollups(
        &self,
        seqs: &[i64],
        level: pingtower_core::stats::RollupLevel,
        from: i64,
        to: i64,
    ) -> Result<Vec<pingtower_core::stats::RollupRow>>;
    /// The raw results (recent and compacted) of the given monitors checked in `[from, to)`.
    async fn result_points(
        &self,
        seqs: &[i64],
        from: i64,
        to: i64,
    ) -> Result<Vec<pingtower_core::stats::ResultPoint>>;
    /// Moves folded raw results of the whole hours before `before` into hourly chunks.
    /// Returns the results moved.
    async fn compact_results(&self, before: Timestamp) -> Result<u64>;
    /// Deletes the rollups of `level` before `cutoff`, and every rollup of monitors that no
    /// longer exist.
    async fn prune_rollups(
        &self,
        level: pingtower_core::stats::RollupLevel,
        cutoff: Timestamp,
    ) -> Result<u64>;
    /// The incidents of the tenant (of `monitors`, or all) that were open at some time in
    /// `[from, to)`.
    async fn incidents_between(
        &self,
        tenant: TenantId,
        monitors: Option<&[MonitorId]>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Incident>>;

    // ---- incidents -------------------------------------------------------------------------
    /// Opens the incident of a monitor's DOWN transition number `transition`, with its
    /// `opened` event. Returns `None` when that transition already has its incident.
    async fn open_incident(
        &self,
        tenant: TenantId,
        monitor: MonitorId,
        transition: i64,
        reason: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<Incident>>;
    async fn get_incident(&self, tenant: TenantId, id: IncidentId) -> Result<Incident>;
    /// Newest first.
    async fn list_incidents(
        &self,
        tenant: TenantId,
        filter: &IncidentFilter,
        page: &PageRequest,
    ) -> Result<Page<Incident>>;
    /// Fails with [`StoreError::Conflict`] when the incident is resolved.
    async fn acknowledge_incident(
        &self,
        tenant: TenantId,
        id: IncidentId,
        by: &str,
        at: Timestamp,
    ) -> Result<Incident>;
    /// Returns `None` when it was already resolved (resolving is idempotent).
    async fn resolve_incident(
        &self,
        tenant: TenantId,
        id: IncidentId,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<Incident>>;
    async fn add_incident_event(
        &self,
        tenant: TenantId,
        id: IncidentId,
        kind: IncidentEventKind,
        actor: Option<&str>,
        message: Option<&str>,
        at: Timestamp,
    ) -> Result<IncidentEvent>;
    /// Oldest first.
    async fn incident_events(&self, tenant: TenantId, id: IncidentId)
    -> Result<Vec<IncidentEvent>>;

    // ---- channels, rules, maintenance windows, status pages --------------------------------
    async fn create_resource(
        &self,
        tenant: TenantId,
        resource: &NewResource,
        now: Timestamp,
    ) -> Result<Resource>;
    async fn get_resource(
        &self,
        tenant: TenantId,
        kind: ResourceKind,
        id: ResourceId,
    ) -> Result<Resource>;
    /// Oldest first.
    async fn list_resources(&self, tenant: TenantId, kind: ResourceKind) -> Result<Vec<Resource>>;
    async fn update_resource(
        &self,
        tenant: TenantId,
        id: ResourceId,
        expected_version: Option<i64>,
        resource: &NewResource,
        now: Timestamp,
    ) -> Result<Resource>;
    async fn delete_resource(
        &self,
        tenant: TenantId,
        kind: ResourceKind,
        id: ResourceId,
    ) -> Result<()>;
    /// Global by nature: status pages are public at `/status/{slug}`.
    async fn find_status_page(&self, slug: &str) -> Result<Option<Resource>>;

    // ---- deliveries ------------------------------------------------------------------------
    /// Returns `false` (and writes nothing) when the idempotency key is already recorded.
    async fn record_delivery(&self, delivery: &Delivery) -> Result<bool>;
    async fn update_delivery(
        &self,
        tenant: TenantId,
        id: DeliveryId,
        update: &DeliveryUpdate,
        now: Timestamp,
    ) -> Result<Delivery>;
    /// The tenant's delivery with this idempotency key, if recorded.
    async fn find_delivery_by_key(&self, tenant: TenantId, key: &str) -> Result<Option<Delivery>>;
    /// Newest first.
    async fn list_deliveries(&self, tenant: TenantId, page: &PageRequest)
    -> Result<Page<Delivery>>;

    // ---- audit log -------------------------------------------------------------------------
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Newest first.
    async fn list_audit(&self, tenant: TenantId, page: &PageRequest) -> Result<Page<AuditEntry>>;
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for the database before giving up at start.
    pub connect_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`) and applies pending
/// migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    match scheme_of(url)? {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::open(url, options).await?)),
        Backend::Postgres => Ok(Arc::new(PostgresStore::open(url, options).await?)),
    }
}

/// The backend a URL names, or [`StoreError::Config`] for any other scheme.
pub fn scheme_of(url: &str) -> Result<Backend> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        _ => Err(StoreError::Config(format!(
            "unsupported database URL scheme `{scheme}`; expected `sqlite://` or `postgres://`"
        ))),
    }
}

/// Hides a URL's password for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
