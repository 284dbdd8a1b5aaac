//! The HTTP side of event analytics (`pingtower-analytics`): a tenant's applications send
//! their events to `POST /api/v1/events`; members list, count and query them.
//!
//! Not the dashboard's live stream (`events.rs`, `/api/v1/events/stream`), which carries the
//! server's own messages.
//!
//! Invariants: the tenant comes from the credential, never from the body; a `202` means the
//! accepted events are committed (durable); a key with the `ingest` role reaches only
//! `POST /api/v1/events`; ingestion is bounded (a per-tenant rate and a limit on writes in
//! flight) and answers `429`/`503` with `Retry-After` rather than dropping what it acknowledged.

use crate::auth::{Caller, Principal, forbidden};
use crate::http::list_type;
use crate::input::{Body, Params};
use crate::{AppState, FieldError, Problem};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pingtower_analytics::store::{Appended, Cursor, Grain, Idempotency, MAX_IDEMPOTENCY_KEY};
use pingtower_analytics::{Clock, EventStore, EventStoreError};
use pingtower_core::{Role, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utoipa::{IntoParams, ToSchema};

/// Largest body `POST /api/v1/events` reads.
pub const MAX_INGEST_BYTES: usize = 5 * 1024 * 1024;
/// Batches written at once; more wait up to [`QUEUE_WAIT`], then get a 503.
const WRITES_IN_FLIGHT: usize = 8;
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Queries that read events at once (each may read up to `query::MAX_SCAN`).
const READS_IN_FLIGHT: usize = 2;
/// How long a query waits for its turn before a 503.
const READ_WAIT: Duration = Duration::from_secs(10);

/// A turn to read events, or a 503 when the turns stay taken.
async fn read_turn(a: &Analytics) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
    match tokio::time::timeout(READ_WAIT, a.reads.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            let mut p = Problem::unavailable("queries are busy; retry shortly");
            p.retry_after = Some(2);
            Err(p)
        }
    }
}

fn too_large(errors: Vec<pingtower_analytics::query::QueryError>) -> Problem {
    Problem::invalid(
        errors
            .into_iter()
            .map(|e| FieldError {
                field: e.field,
                message: e.message,
            })
            .collect(),
    )
}

/// What the API needs for analytics.
#[derive(Clone)]
pub struct Analytics {
    pub store: Arc<dyn EventStore>,
    /// How long events are kept (`PINGTOWER_EVENTS_RETENTION_DAYS`); older ones are refused.
    pub retention_ms: Option<i64>,
    rate: Arc<TenantRate>,
    writes: Arc<tokio::sync::Semaphore>,
    /// Queries and funnels that read events run a few at a time.
    reads: Arc<tokio::sync::Semaphore>,
    /// Answers of `POST /api/v1/events/query` (in memory, or in Redis for several processes).
    cache: Arc<dyn pingtower_analytics::cache::QueryCache>,
    /// Events accepted since the last live total, per tenant and name.
    live: Arc<Mutex<HashMap<TenantId, std::collections::BTreeMap<String, u64>>>>,
}

impl Analytics {
    /// `per_minute`: the events one tenant may send per minute (0: no limit).
    pub fn new(store: Arc<dyn EventStore>, retention_ms: Option<i64>, per_minute: u64) -> Self {
        Self {
            store,
            retention_ms,
            rate: Arc::new(TenantRate {
                per_minute,
                windows: Mutex::new(HashMap::new()),
            }),
            writes: Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT)),
            reads: Arc::new(tokio::sync::Semaphore::new(READS_IN_FLIGHT)),
            cache: Arc::new(pingtower_analytics::cache::MemoryCache::default()),
            live: Arc::default(),
        }
    }

    /// Keeps query answers in `cache` (Redis, shared by several API processes).
    pub fn with_cache(mut self, cache: Arc<dyn pingtower_analytics::cache::QueryCache>) -> Self {
        self.cache = cache;
        self
    }
}

/// Events per tenant per minute, in fixed windows.
struct TenantRate {
    per_minute: u64,
    windows: Mutex<HashMap<TenantId, (Instant, u64)>>,
}

impl TenantRate {
    /// Counts `n` events for `tenant`; `Err(wait)` (counting nothing) when they do not fit.
    fn take(&self, tenant: TenantId, n: u64) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let (start, used) = windows.entry(tenant).or_insert((now, 0));
        if now.duration_since(*start) >= window {
            *start = now;
            *used = 0;
        }
        if *used + n > self.per_minute && *used > 0 {
            return Err(window.saturating_sub(now.duration_since(*start)));
        }
        *used += n;
        Ok(())
    }
}

fn store_failed(e: EventStoreError) -> Problem {
    if e.is_busy() {
        let mut p = Problem::unavailable("the events database is busy; retry shortly");
        p.retry_after = Some(1);
        return p;
    }
    Problem::internal(e)
}

/// Who may send events: a key with the `ingest` role, or a member (user or key) who is an
/// editor or above. The tenant is the credential's.
pub struct Ingestor {
    pub tenant: TenantId,
    /// Who sends (an API key or a person): idempotency keys are theirs alone.
    pub credential: String,
}

impl FromRequestParts<AppState> for Ingestor {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if let Caller::Key(key) = Caller::authenticate(parts, state).await?
            && key.role == Role::Ingest
        {
            return Ok(Self {
                tenant: key.tenant_id,
                credential: format!("key:{}", key.id),
            });
        }
        let p = Principal::from_request_parts(parts, state).await?;
        p.require(Role::Editor)?;
        let credential = match &p.caller {
            Caller::Key(k) => format!("key:{}", k.id),
            Caller::User { user, .. } => format!("user:{}", user.id),
        };
        Ok(Self {
            tenant: p.tenant,
            credential,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rejected {
    /// The event's place in `events` (0 for a single event).
    pub index: usize,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestOut {
    /// Events kept (durable when this answer is sent).
    pub accepted: usize,
    /// Events not kept, each with why.
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct EventIn {
    /// Required, at most 200 characters.
    name: String,
    /// RFC 3339 or epoch milliseconds; default: when received. At most an hour ahead.
    timestamp: Option<Value>,
    /// Strings, numbers and booleans, flat or one object deep; at most 8 KiB as JSON.
    #[schema(value_type = Option<Object>)]
    properties: Option<Map<String, Value>>,
    /// The user the event is about.
    distinct_id: Option<String>,
    session_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct EventsIn {
    /// Up to 10,000 events (and 5 MB).
    events: Vec<EventIn>,
}

/// Send events: one (`{"name": ...}`) or a batch (`{"events": [...]}`). Valid events are kept
/// (durably, once this answers) and invalid ones named with their reason. With an
/// `Idempotency-Key` header, a batch sent again within 24 hours is counted once (the first
/// answer is given again).
#[utoipa::path(post, path = "/api/v1/events", tag = "analytics",
    request_body(content = EventsIn, description = "a batch, or one event (EventIn)"),
    params(("Idempotency-Key" = Option<String>, Header, description = "up to 200 visible characters")),
    responses((status = 202, body = IngestOut), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn ingest(
    State(state): State<AppState>,
    who: Ingestor,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k)
                if !k.is_empty()
                    && k.len() <= MAX_IDEMPOTENCY_KEY
                    && k.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(k.to_owned())
            }
            _ => {
                return Err(Problem::invalid(vec![FieldError {
                    field: "Idempotency-Key".into(),
                    message: format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
                }]));
            }
        },
    };
    // A key is the sender's own and names one body: another credential's key, or the same
    // key with another body, is another batch (a leaked key cannot claim batches in advance).
    let key = key.map(|k| {
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        format!(
            "{}:{}:{k}",
            who.credential,
            hex::encode(&digest.as_ref()[..16])
        )
    });
    let a = &state.analytics;
    let now = pingtower_engine::now();
    let clock = Clock {
        now,
        retention_ms: a.retention_ms,
    };
    let (events, rejected) = pingtower_analytics::event::read_batch(Value::Object(body), clock)
        .map_err(|e| {
            Problem::invalid(vec![FieldError {
                field: "events".into(),
                message: e.to_string(),
            }])
        })?;
    a.rate
        .take(who.tenant, events.len() as u64)
        .map_err(|wait| {
            let mut p = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            )
            .with_detail(format!(
                "this tenant may send {} events a minute on this server",
                a.rate.per_minute
            ));
            p.retry_after = Some(wait.as_secs().max(1));
            p
        })?;
    let out = IngestOut {
        accepted: events.len(),
        rejected: rejected
            .into_iter()
            .map(|r| Rejected {
                index: r.index,
                reason: r.reason,
            })
            .collect(),
    };
    let Some(key) = key else {
        if events.is_empty() {
            return Ok((StatusCode::ACCEPTED, Json(out)).into_response());
        }
        return store_batch(&state, &who, &events, None, now, out).await;
    };
    // The first answer is kept with the key, for a retry.
    let answer = serde_json::to_string(&out)
        .map_err(|e| Problem::internal(format_args!("encoding an answer failed: {e}")))?;
    store_batch(
        &state,
        &who,
        &events,
        Some(Idempotency {
            key: &key,
            answer: &answer,
        }),
        now,
        out,
    )
    .await
}

/// Writes a batch (bounded writes in flight) and answers `out`, or the first answer of a key
/// seen before.
async fn store_batch(
    state: &AppState,
    who: &Ingestor,
    events: &[pingtower_analytics::NewEvent],
    idempotency: Option<Idempotency<'_>>,
    now: Timestamp,
    out: IngestOut,
) -> Result<Response, Problem> {
    let a = &state.analytics;
    // Bounded writes in flight: past them a batch waits a little, then is refused (its sender
    // retries; nothing it was told is kept is lost).
    let _permit = match tokio::time::timeout(QUEUE_WAIT, a.writes.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            let mut p = Problem::unavailable("ingestion is behind; retry shortly");
            p.retry_after = Some(1);
            return Err(p);
        }
    };
    match a
        .store
        .append(who.tenant, events, idempotency, now)
        .await
        .map_err(store_failed)?
    {
        Appended::Stored(_) => {
            if !events.is_empty() {
                let mut live = a
                    .live
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let counts = live.entry(who.tenant).or_default();
                for e in events {
                    // Names are bounded per second by the batch size; a tenant's many names
                    // are still one message.
                    *counts.entry(e.name.clone()).or_default() += 1;
                }
            }
            // Events in a minute already complete: cached answers of the tenant are stale.
            let minute = pingtower_analytics::store::minute_of(now);
            if events.iter().any(|e| e.timestamp.as_millis() < minute) {
                a.cache.bump(who.tenant).await;
            }
            Ok((StatusCode::ACCEPTED, Json(out)).into_response())
        }
        Appended::Replayed(first) => {
            let first: Value = serde_json::from_str(&first)
                .map_err(|e| Problem::internal(format_args!("a stored answer is damaged: {e}")))?;
            Ok((
                StatusCode::ACCEPTED,
                [("idempotency-replayed", "true")],
                Json(first),
            )
                .into_response())
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: i64,
    pub name: String,
    pub timestamp: Timestamp,
    pub distinct_id: Option<String>,
    pub session_id: Option<String>,
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
}

list_type!(EventList, EventOut);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this name.
    name: Option<String>,
    /// At most 1000; default 50.
    limit: Option<u32>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
}

/// The tenant's events, newest first.
#[utoipa::path(get, path = "/api/v1/events", tag = "analytics",
    params(EventQuery),
    responses((status = 200, body = EventList), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    p: Principal,
    Params(q): Params<EventQuery>,
) -> Result<Json<EventList>, Problem> {
    p.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(50);
    let mut errors = Vec::new();
    if !(1..=1000).contains(&limit) {
        errors.push(FieldError {
            field: "limit".into(),
            message: "1 to 1000".into(),
        });
    }
    let cursor = match q.cursor.as_deref() {
        None => None,
        Some(c) => {
            let decoded = Cursor::decode(c);
            if decoded.is_none() {
                errors.push(FieldError {
                    field: "cursor".into(),
                    message: "is not a cursor this API gave".into(),
                });
            }
            decoded
        }
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let mut items = state
        .analytics
        .store
        .list(p.tenant, q.name.as_deref(), cursor, limit + 1)
        .await
        .map_err(store_failed)?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        items.last().map(|e| Cursor::of(e).encode())
    });
    Ok(Json(EventList {
        items: items
            .into_iter()
            .map(|e| EventOut {
                id: e.id,
                name: e.name,
                timestamp: e.timestamp,
                distinct_id: e.distinct_id,
                session_id: e.session_id,
                properties: e.properties,
            })
            .collect(),
        next_cursor: next_cursor.flatten(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NameOut {
    pub name: String,
    /// Events of this name kept.
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NameList {
    pub items: Vec<NameOut>,
}

/// The tenant's event names with their counts, most frequent first.
#[utoipa::path(get, path = "/api/v1/events/names", tag = "analytics",
    responses((status = 200, body = NameList), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn names(State(state): State<AppState>, p: Principal) -> Result<Json<NameList>, Problem> {
    p.require(Role::Viewer)?;
    let names = state
        .analytics
        .store
        .names(p.tenant)
        .await
        .map_err(store_failed)?;
    Ok(Json(NameList {
        items: names
            .into_iter()
            .map(|n| NameOut {
                name: n.name,
                count: n.count,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct QueryIn {
    /// `count` (the default), `unique` (of `property`, default `distinct_id`), or `sum`, `avg`,
    /// `min`, `max`, `p50`, `p90`, `p95`, `p99` of a numeric `property`.
    metric: Option<String>,
    /// What `unique` and the numeric metrics read: `distinct_id`, `session_id`, a property or
    /// `property.key`.
    property: Option<String>,
    /// `{"property": "name" | a property, "op": "eq" | "neq" | "contains" | "gt" | "lt" |
    /// "exists" | "in", "value": ...}`, all of them must hold.
    #[schema(value_type = Option<Vec<Object>>)]
    filters: Option<Vec<Value>>,
    /// One series per value of this field (`name`, a property), the most frequent first.
    breakdown: Option<String>,
    /// Breakdown values shown (1 to 100, default 10); the rest are summed into `other`.
    breakdown_limit: Option<u32>,
    /// `minute`, `hour` (the default), `day`, `week` or `month`.
    bucket: Option<String>,
    /// `30m`, `24h` (the default), `7d`; or `from` and `to`.
    range: Option<String>,
    #[schema(value_type = Option<String>)]
    from: Option<Value>,
    #[schema(value_type = Option<String>)]
    to: Option<Value>,
    /// An IANA time zone (default `UTC`): days, weeks and months are its own.
    time_zone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointOut {
    /// The bucket's start.
    pub t: Timestamp,
    /// `null` for a bucket without a figure (the average of no events).
    #[schema(value_type = Option<f64>)]
    pub value: Option<serde_json::Number>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesOut {
    /// The breakdown's value (`other` for the rest, `(none)` for events without it), or `all`.
    pub key: String,
    pub points: Vec<PointOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryOut {
    pub series: Vec<SeriesOut>,
}

/// Events read per page when a query reads events.
const SCAN_PAGE: u32 = 10_000;
/// Most rollup rows a query answered from them reads (sketches merge at about a microsecond
/// a row).
const MAX_ROLLUP_ROWS: i64 = 2_000_000;

/// Query the tenant's events: a metric in buckets over a range, filtered and broken down.
/// Counts by name come from per-minute counts; the rest reads the range's events (at most
/// 20,000,000; 5,000,000 for unique counts and percentiles).
#[utoipa::path(post, path = "/api/v1/events/query", tag = "analytics",
    request_body = QueryIn,
    responses((status = 200, body = QueryOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn query(
    State(state): State<AppState>,
    p: Principal,
    Body(body): Body,
) -> Result<Response, Problem> {
    p.require(Role::Viewer)?;
    answer_query(&state, p.tenant, body).await
}

/// The figures of a saved chart: its query's answer, as `POST /api/v1/events/query` gives it.
#[utoipa::path(get, path = "/api/v1/events/charts/{id}/data", tag = "analytics",
    params(("id" = String, Path)),
    responses((status = 200, body = QueryOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn chart_data(
    State(state): State<AppState>,
    p: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, Problem> {
    p.require(Role::Viewer)?;
    let chart = saved_chart(&state, p.tenant, &id).await?;
    answer_query(&state, p.tenant, chart_query(&chart)).await
}

/// The tenant's saved chart `id` (404 for another tenant's, as for one that does not exist).
pub(crate) async fn saved_chart(
    state: &AppState,
    tenant: TenantId,
    id: &str,
) -> Result<pingtower_core::Resource, Problem> {
    let id: pingtower_core::ResourceId = crate::http::parse_id(id, "chart")?;
    state
        .store
        .get_resource(tenant, pingtower_core::ResourceKind::Chart, id)
        .await
        .map_err(|e| crate::http::not_found_as(e, "chart"))
}

/// A saved chart's query body.
pub(crate) fn chart_query(chart: &pingtower_core::Resource) -> Map<String, Value> {
    chart
        .spec
        .get("query")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Answers a query body from the cache, or runs it and caches the answer.
async fn answer_query(
    state: &AppState,
    tenant: TenantId,
    body: Map<String, Value>,
) -> Result<Response, Problem> {
    let cache = &state.analytics.cache;
    let now = pingtower_engine::now();
    // Keyed by the current minute and the tenant's generation: never older than the newest
    // complete bucket (see pingtower_analytics::cache).
    let key = match cache.generation(tenant).await {
        Some(g) => serde_json::to_string(&body).ok().map(|text| {
            pingtower_analytics::cache::key(
                tenant,
                g,
                pingtower_analytics::store::minute_of(now),
                "query",
                &text,
            )
        }),
        None => None,
    };
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    if let Some(key) = &key
        && let Some(hit) = cache.get(key).await
    {
        return Ok((json, [("x-cache", "hit")], hit).into_response());
    }
    let series = run_query(state, tenant, body).await?;
    let out = QueryOut {
        series: series
            .into_iter()
            .map(|s| SeriesOut {
                key: s.key,
                points: s
                    .points
                    .into_iter()
                    .map(|p| PointOut {
                        t: p.t,
                        value: p.value,
                    })
                    .collect(),
            })
            .collect(),
    };
    let text = serde_json::to_string(&out)
        .map_err(|e| Problem::internal(format_args!("encoding an answer failed: {e}")))?;
    if let Some(key) = &key {
        cache.put(key, &text).await;
    }
    Ok((json, [("x-cache", "miss")], text).into_response())
}

/// Answers a query body for `tenant` (the API's and the Events page's).
pub(crate) async fn run_query(
    state: &AppState,
    tenant: TenantId,
    body: Map<String, Value>,
) -> Result<Vec<pingtower_analytics::query::Series>, Problem> {
    use pingtower_analytics::query::Aggregator;
    let q = Arc::new(
        pingtower_analytics::query::read_query(body, pingtower_engine::now()).map_err(too_large)?,
    );
    let store = &state.analytics.store;
    let plan = q.rollup_plan(store.sketches_since());
    // What the answer reads, from the rollups of the grain it reads (events: counted by the
    // hours that cover the range, a few more than the range may hold; never a scan of a month
    // of per-minute rows just to bound it).
    let grain = match plan {
        Some((Grain::Minute, _)) => Grain::Minute,
        _ => Grain::Hour,
    };
    let totals = store
        .totals(tenant, q.names_to_read(), grain, (q.from(), q.to()))
        .await
        .map_err(store_failed)?;
    let read = if plan.is_none() {
        totals.events
    } else {
        totals.rows
    };
    let max = if plan.is_none() {
        q.max_scan()
    } else {
        MAX_ROLLUP_ROWS
    };
    if read > max {
        return Err(too_large(vec![pingtower_analytics::query::QueryError {
            field: "range".into(),
            message: format!(
                "this query reads {read} rows; at most {max}: narrow the range or the names"
            ),
        }]));
    }
    let _turn = read_turn(&state.analytics).await?;
    let mut agg = Aggregator::new(q.clone());
    if let Some((grain, users)) = plan {
        let rows = store
            .rollups(tenant, q.names_to_read(), grain, (q.from(), q.to()), users)
            .await
            .map_err(store_failed)?;
        // Merging sketches is CPU work: off the async threads.
        agg = tokio::task::spawn_blocking(move || {
            agg.add_rollups(&rows);
            agg
        })
        .await
        .map_err(|e| Problem::internal(format_args!("aggregating events failed: {e}")))?;
    } else {
        agg = pingtower_analytics::query::aggregate(store.as_ref(), tenant, agg)
            .await
            .map_err(store_failed)?;
    }
    agg.finish().map_err(|t| too_large(vec![t.error()]))
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documents the request body; bodies are read field by field"
)]
pub struct FunnelIn {
    /// 2 to 10 steps, each `{"name": ..., "filters": [...]}` (filters on properties).
    #[schema(value_type = Vec<Object>)]
    steps: Vec<Value>,
    /// How long after the first step a person has to do the others (default `1d`).
    window: Option<String>,
    /// How far back first steps count (default `7d`).
    range: Option<String>,
    /// Counted separately per value of this property of the first step.
    breakdown: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepOut {
    pub name: String,
    /// People who got this far.
    pub count: u64,
    /// Of those who did the first step, the share who got here.
    pub conversion: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelBreakdownOut {
    pub key: String,
    pub steps: Vec<StepOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelOut {
    pub steps: Vec<StepOut>,
    /// With `breakdown`: the steps per value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<FunnelBreakdownOut>,
}

fn steps_out(steps: Vec<pingtower_analytics::funnel::StepCount>) -> Vec<StepOut> {
    steps
        .into_iter()
        .map(|s| StepOut {
            name: s.name,
            count: s.count,
            conversion: s.conversion,
        })
        .collect()
}

/// A funnel: of the people (`distinct_id`) who did the first step in the range, how many did
/// each next step in order within the window of their first step.
#[utoipa::path(post, path = "/api/v1/events/funnel", tag = "analytics",
    request_body = FunnelIn,
    responses((status = 200, body = FunnelOut), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
pub async fn funnel(
    State(state): State<AppState>,
    p: Principal,
    Body(body): Body,
) -> Result<Json<FunnelOut>, Problem> {
    use pingtower_analytics::funnel::{FunnelCounter, read_funnel};
    use pingtower_analytics::query::MAX_FUNNEL_SCAN;
    p.require(Role::Viewer)?;
    let f = Arc::new(read_funnel(body, pingtower_engine::now()).map_err(too_large)?);
    let store = &state.analytics.store;
    let names = FunnelCounter::names(&f);
    // People who start at the range's end still have their window to convert in.
    let to = Timestamp::from_millis(f.to.as_millis().saturating_add(f.window_ms));
    let totals = store
        .totals(p.tenant, Some(&names), Grain::Hour, (f.from, to))
        .await
        .map_err(store_failed)?;
    if totals.events > MAX_FUNNEL_SCAN {
        return Err(too_large(vec![pingtower_analytics::query::QueryError {
            field: "range".into(),
            message: format!(
                "this funnel reads {} events; at most {MAX_FUNNEL_SCAN}: narrow the range",
                totals.events
            ),
        }]));
    }
    let _turn = read_turn(&state.analytics).await?;
    let mut counter = FunnelCounter::new(f.clone());
    let mut after = None;
    let want = f.columns();
    loop {
        let page = store
            .scan(
                p.tenant,
                Some(&names),
                (f.from, to),
                after,
                SCAN_PAGE,
                &want,
            )
            .await
            .map_err(store_failed)?;
        let last = page.last().map(Cursor::of);
        let full = page.len() == SCAN_PAGE as usize;
        let first = f.steps[0].name.clone();
        let end = f.to;
        counter = tokio::task::spawn_blocking(move || {
            page.iter()
                .filter(|e| e.timestamp < end || e.name != first)
                .for_each(|e| counter.add(e));
            counter
        })
        .await
        .map_err(|e| Problem::internal(format_args!("following a funnel failed: {e}")))?;
        if !full || counter.refused() {
            break;
        }
        after = last;
    }
    let (steps, by_key) = counter.finish().map_err(|t| too_large(vec![t.error()]))?;
    Ok(Json(FunnelOut {
        steps: steps_out(steps),
        breakdown: by_key
            .into_iter()
            .map(|(key, steps)| FunnelBreakdownOut {
                key,
                steps: steps_out(steps),
            })
            .collect(),
    }))
}

/// Once a second, publishes the events this process accepted in that second, per tenant and
/// name, on `analytics.totals` (the live view shows them: per-second totals, not a message per
/// event), until `shutdown`.
pub async fn publish_live(
    analytics: Analytics,
    bus: Arc<dyn pingtower_bus::Bus>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let drained = std::mem::take(
            &mut *analytics
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let at = pingtower_engine::now();
        for (tenant, counts) in drained {
            let total: u64 = counts.values().sum();
            let message = serde_json::json!({
                "tenant_id": tenant, "at": at, "total": total, "counts": counts,
            });
            if let Err(e) = pingtower_bus::publish_json(
                bus.as_ref(),
                pingtower_bus::topics::ANALYTICS_TOTALS,
                &message,
            )
            .await
            {
                tracing::debug!(error = %e, "publishing live event totals failed");
            }
        }
    }
}

/// A key with the `ingest` role reaches nothing but ingestion.
pub(crate) fn refuse_ingest_only(role: Role) -> Result<(), Problem> {
    if role == Role::Ingest {
        return Err(forbidden(
            "a key with the ingest role may only send events (POST /api/v1/events)",
        ));
    }
    Ok(())
}

pub fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(ingest, list))
        .routes(routes!(names))
        .routes(routes!(query))
        .routes(routes!(funnel))
        .routes(routes!(chart_data))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_INGEST_BYTES))
}
