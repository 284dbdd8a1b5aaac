//! Event analytics through the API: ingestion (an `ingest` key, or an editor), listing, names,
//! count queries, idempotency, limits, and tenant isolation.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

async fn ingest_key(api: &Api, owner: &str) -> String {
    let r = api
        .post(
            "/api/v1/api-keys",
            Some(owner),
            json!({"name": "app", "role": "ingest"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["key"].as_str().unwrap().to_owned()
}

fn now_ms() -> i64 {
    pingtower_engine::now().as_millis()
}

#[tokio::test]
async fn an_ingest_key_sends_events_and_reaches_nothing_else() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let key = ingest_key(&api, &owner).await;
    let r = api
        .post(
            "/api/v1/events",
            Some(&key),
            json!({"events": [
                {"name": "signup", "properties": {"plan": "pro"}, "distinct_id": "u1"},
                {"properties": {"plan": "free"}},
                {"name": "order_placed", "timestamp": now_ms() - 1_000, "properties": {"amount": 12.5}}
            ]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["rejected"][0]["index"], 1);
    assert!(
        r.body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    // One event alone is a body too.
    let r = api
        .post("/api/v1/events", Some(&key), json!({"name": "ping"}))
        .await;
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    // Every other operation refuses the key.
    let doc = api.get("/api/v1/openapi.json", None).await.body;
    let mut reached = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if public || (path == "/api/v1/events" && method == "post") {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        "0190a5b2-0000-7000-8000-000000000000"
                    } else {
                        s
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let m: Method = method.to_uppercase().parse().unwrap();
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            let r = api.request(m, &concrete, Some(&key), &[], body).await;
            if r.status != StatusCode::FORBIDDEN {
                reached.push(format!("{method} {path}: {}", r.status));
            }
        }
    }
    assert!(reached.is_empty(), "an ingest key reached: {reached:#?}");
    // Nor the dashboard.
    let page = api.get("/", Some(&key)).await;
    assert!(!page.status.is_success(), "{}", page.status);
    // And people cannot be given the role.
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "p@x.test", "role": "ingest"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["role"], "{}", r.body);
}

#[tokio::test]
async fn members_list_count_and_query_their_events_and_see_no_other_tenants() {
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    let owner = api.setup("owner@x.test").await;
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let minute = now_ms() - now_ms() % 60_000 - 10 * 60_000;
    let events: Vec<Value> = (0..30)
        .map(|i| {
            let name = if i % 3 == 0 { "payment_failed" } else { "order_placed" };
            json!({"name": name, "timestamp": minute + (i % 2) * 60_000 + i, "distinct_id": format!("u{i}")})
        })
        .collect();
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": events }))
        .await;
    assert_eq!(r.body["accepted"], 30, "{}", r.body);
    // A viewer reads but does not send.
    let r = api
        .post("/api/v1/events", Some(&viewer), json!({"name": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Newest first, page by page.
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    let mut last_t = i64::MAX;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/events?limit=7&cursor={c}"),
            None => "/api/v1/events?limit=7".into(),
        };
        let r = api.get(&path, Some(&viewer)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for e in r.body["items"].as_array().unwrap() {
            let t = chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            assert!(t <= last_t);
            last_t = t;
            seen += 1;
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 30);
    let r = api
        .get("/api/v1/events?name=payment_failed", Some(&viewer))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 10);
    let r = api.get("/api/v1/events/names", Some(&viewer)).await;
    assert_eq!(
        r.body["items"],
        json!([{"name": "order_placed", "count": 20}, {"name": "payment_failed", "count": 10}])
    );
    // Counted per minute, by name.
    let r = api
        .post(
            "/api/v1/events/query",
            Some(&viewer),
            json!({"metric": "count", "bucket": "minute", "range": "30m", "breakdown": "name",
                   "filters": [{"property": "name", "op": "in", "value": ["payment_failed", "order_placed"]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let series = r.body["series"].as_array().unwrap();
    let total = |key: &str| -> i64 {
        series.iter().find(|s| s["key"] == key).unwrap()["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_i64().unwrap())
            .sum()
    };
    assert_eq!((total("order_placed"), total("payment_failed")), (20, 10));
    // Invalid queries name their fields.
    let r = api
        .post(
            "/api/v1/events/query",
            Some(&viewer),
            json!({"bucket": "fortnight", "range": "soon"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["bucket", "range"], "{}", r.body);
    // Another tenant sees none of it.
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "other@y.test", "password": "other-password"}),
        )
        .await;
    let other = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get("/api/v1/events", Some(&other)).await.body["items"],
        json!([])
    );
    assert_eq!(
        api.get("/api/v1/events/names", Some(&other)).await.body["items"],
        json!([])
    );
    let r = api
        .post(
            "/api/v1/events/query",
            Some(&other),
            json!({"range": "1h", "bucket": "minute"}),
        )
        .await;
    assert!(
        r.body["series"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["value"] == 0),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_batch_sent_again_with_its_key_is_counted_once() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let key = ingest_key(&api, &owner).await;
    let batch = json!({"events": [{"name": "a"}, {"name": "b"}, {"nope": 1}]});
    let first = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&key),
            &[("idempotency-key", "retry-1")],
            Some(batch.clone()),
        )
        .await;
    let again = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&key),
            &[("idempotency-key", "retry-1")],
            Some(batch),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(first.body, again.body);
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    let listed = api.get("/api/v1/events", Some(&owner)).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    let r = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&key),
            &[("idempotency-key", &"k".repeat(201))],
            Some(json!({"name": "a"})),
        )
        .await;
    assert_eq!(r.error_fields(), ["Idempotency-Key"], "{}", r.body);
}

#[tokio::test]
async fn bad_bodies_are_problems_naming_what_is_wrong() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    for (body, status) in [
        (json!({"events": []}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"events": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"x": 1}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!([{"name": "a"}]), StatusCode::BAD_REQUEST),
    ] {
        let r = api.post("/api/v1/events", Some(&owner), body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body["type"].as_str().is_some(), "{}", r.body);
    }
    let too_many: Vec<Value> = (0..10_001).map(|_| json!({"name": "a"})).collect();
    let r = api
        .post(
            "/api/v1/events",
            Some(&owner),
            json!({ "events": too_many }),
        )
        .await;
    assert_eq!(r.error_fields(), ["events"], "{}", r.body);
    // Over 5 MB.
    let big = "x".repeat(1_000);
    let heavy: Vec<Value> = (0..6_000)
        .map(|_| json!({"name": "a", "properties": {"p": big}}))
        .collect();
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": heavy }))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(
        api.get("/api/v1/events", Some(&owner)).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_tenant_over_its_rate_is_told_when_to_retry() {
    let api = Api::with_events_rate(5).await;
    let owner = api.setup("owner@x.test").await;
    let five: Vec<Value> = (0..5).map(|_| json!({"name": "a"})).collect();
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": five }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = api
        .post("/api/v1/events", Some(&owner), json!({"name": "one more"}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        api.get("/api/v1/events", Some(&owner)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn deleting_a_tenant_deletes_its_events() {
    let api = Api::new().await;
    let root = api.setup("root@x.test").await;
    let t = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Doomed"}))
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
    let tenant = t.id();
    let r = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&root),
            &[("x-tenant-id", &tenant)],
            Some(json!({"name": "doomed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = pingtower_core::TenantId(tenant.parse().unwrap());
    assert_eq!(
        api.analytics.list(id, None, None, 10).await.unwrap().len(),
        1
    );
    let r = api
        .delete(&format!("/api/v1/tenants/{tenant}"), Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(
        api.analytics
            .list(id, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn queries_on_properties_count_users_sum_amounts_and_break_down() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let t = now_ms() - 60_000;
    let mut events = Vec::new();
    for (i, (user, plan, country, amount)) in [
        ("u1", "pro", "DE", 10.0),
        ("u1", "pro", "DE", 20.0),
        ("u2", "pro", "FR", 5.0),
        ("u3", "free", "DE", 1.5),
        ("u4", "team", "DE", 100.0),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(json!({"name": "order_placed", "timestamp": t + i as i64, "distinct_id": user,
                           "properties": {"plan": plan, "amount": amount, "geo": {"country": country}}}));
    }
    events.push(json!({"name": "signup", "timestamp": t, "distinct_id": "u9", "properties": {"plan": "pro"}}));
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": events }))
        .await;
    assert_eq!(r.body["accepted"], 6, "{}", r.body);
    let query = |body: Value| {
        let api = &api;
        let owner = owner.clone();
        async move {
            let r = api.post("/api/v1/events/query", Some(&owner), body).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let total: f64 = s["points"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|p| p["value"].as_f64())
                        .sum();
                    (s["key"].as_str().unwrap().to_owned(), total)
                })
                .collect::<Vec<_>>()
        }
    };
    // Unique users who ordered from Germany, by plan.
    let by_plan = query(
        json!({"metric": "unique", "bucket": "day", "range": "1d", "breakdown": "plan",
        "filters": [{"property": "name", "op": "eq", "value": "order_placed"},
                    {"property": "geo.country", "op": "eq", "value": "DE"}]}),
    )
    .await;
    // u1 ordered twice: counted once; the most frequent value first.
    assert_eq!(
        by_plan,
        [
            ("pro".to_owned(), 1.0),
            ("free".to_owned(), 1.0),
            ("team".to_owned(), 1.0)
        ]
    );
    // Revenue over 5, in Berlin's days.
    let revenue = query(
        json!({"metric": "sum", "property": "amount", "bucket": "day", "range": "1d",
        "time_zone": "Europe/Berlin",
        "filters": [{"property": "amount", "op": "gt", "value": 5}]}),
    )
    .await;
    assert_eq!(revenue, [("all".to_owned(), 130.0)]);
    // The 90th percentile of amounts, per plan, the top one and the rest.
    let r = api
        .post(
            "/api/v1/events/query",
            Some(&owner),
            json!({"metric": "p90", "property": "amount", "bucket": "day", "range": "1d",
                   "breakdown": "plan", "breakdown_limit": 1}),
        )
        .await;
    let keys: Vec<&str> = r.body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["pro", "other"], "{}", r.body);
    // A property that is not a number gives no figure rather than a wrong one.
    let r = api
        .post(
            "/api/v1/events/query",
            Some(&owner),
            json!({"metric": "avg", "property": "plan", "bucket": "day", "range": "1d"}),
        )
        .await;
    assert!(
        r.body["series"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["value"].is_null()),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_funnel_follows_people_through_its_steps() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let t = now_ms() - 3_600_000;
    let mut events = Vec::new();
    for (who, steps) in [
        ("a", vec!["signup", "checkout"]),
        ("b", vec!["signup"]),
        ("c", vec!["signup", "checkout"]),
        ("d", vec!["checkout"]),
    ] {
        for (i, name) in steps.into_iter().enumerate() {
            events.push(
                json!({"name": name, "timestamp": t + i as i64 * 60_000, "distinct_id": who,
                               "properties": {"plan": if who == "c" { "free" } else { "pro" }}}),
            );
        }
    }
    api.post("/api/v1/events", Some(&owner), json!({ "events": events }))
        .await;
    let r = api
        .post(
            "/api/v1/events/funnel",
            Some(&owner),
            json!({"steps": [{"name": "signup"}, {"name": "checkout"}], "window": "1h", "range": "7d", "breakdown": "plan"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["steps"],
        json!([{"name": "signup", "count": 3, "conversion": 1.0},
               {"name": "checkout", "count": 2, "conversion": 2.0 / 3.0}])
    );
    // The value with the most people first.
    assert_eq!(r.body["breakdown"][0]["key"], "pro");
    assert_eq!(r.body["breakdown"][0]["steps"][1]["count"], 1);
    assert_eq!(r.body["breakdown"][1]["key"], "free");
    assert_eq!(r.body["breakdown"][1]["steps"][1]["count"], 1);
    let r = api
        .post(
            "/api/v1/events/funnel",
            Some(&owner),
            json!({"steps": [{"name": "signup"}], "window": "soon"}),
        )
        .await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["steps", "window"], "{}", r.body);
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_sender_and_body() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let leaked = ingest_key(&api, &owner).await;
    let app = ingest_key(&api, &owner).await;
    // A leaked key claims the key the application will use, with a batch that is all invalid.
    let r = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&leaked),
            &[("idempotency-key", "batch-0001")],
            Some(json!({"events": [{"nope": 1}]})),
        )
        .await;
    assert_eq!(r.body["accepted"], 0, "{}", r.body);
    // The application's batch with that key is its own, and is stored.
    let r = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&app),
            &[("idempotency-key", "batch-0001")],
            Some(json!({"events": [{"name": "real"}]})),
        )
        .await;
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    assert!(r.header("idempotency-replayed").is_none());
    // Even the same sender's key names one body.
    let r = api
        .request(
            Method::POST,
            "/api/v1/events",
            Some(&app),
            &[("idempotency-key", "batch-0001")],
            Some(json!({"events": [{"name": "another"}]})),
        )
        .await;
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    let names = api.get("/api/v1/events/names", Some(&owner)).await;
    assert_eq!(
        names.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        names.body
    );
}

#[tokio::test]
async fn hostile_queries_are_refused_before_they_cost_anything() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let many: Vec<String> = (0..1_001).map(|i| format!("n{i}")).collect();
    for (body, field) in [
        (
            json!({"filters": [{"property": "name", "op": "in", "value": many}]}),
            "filters[0]",
        ),
        (
            json!({"bucket": "day", "from": 8_210_266_790_400_000i64, "to": 8_210_266_790_400_001i64}),
            "to",
        ),
        (
            json!({"bucket": "minute", "range": "6d", "breakdown": "name", "breakdown_limit": 100}),
            "bucket",
        ),
        (
            json!({"filters": (0..21).map(|_| json!({"property": "plan", "op": "exists"})).collect::<Vec<_>>()}),
            "filters",
        ),
    ] {
        let r = api.post("/api/v1/events/query", Some(&owner), body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.error_fields()[0], field, "{}", r.body);
    }
    let r = api
        .post(
            "/api/v1/events/funnel",
            Some(&owner),
            json!({"steps": [{"name": "a"}, {"name": "b"}], "window": "9223372036854775s"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["window"], "{}", r.body);
    // A NUL anywhere is one rejected event, not a failed batch.
    let r = api
        .post(
            "/api/v1/events",
            Some(&owner),
            json!({"events": [{"name": "ok"}, {"name": "bad", "properties": {"a": "x\u{0000}"}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["accepted"], 1);
    assert_eq!(r.body["rejected"][0]["index"], 1);
}

#[tokio::test]
async fn a_cached_answer_is_never_older_than_the_last_complete_minute() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let body = json!({"bucket": "minute", "range": "30m",
                      "filters": [{"property": "name", "op": "eq", "value": "late"}]});
    let first = api
        .post("/api/v1/events/query", Some(&owner), body.clone())
        .await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    let again = api
        .post("/api/v1/events/query", Some(&owner), body.clone())
        .await;
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.body, first.body);
    // A late event (a complete minute): the next answer is made again and counts it.
    let r = api
        .post(
            "/api/v1/events",
            Some(&owner),
            json!({"name": "late", "timestamp": now_ms() - 5 * 60_000}),
        )
        .await;
    assert_eq!(r.body["accepted"], 1);
    let after = api.post("/api/v1/events/query", Some(&owner), body).await;
    assert_eq!(after.header("x-cache"), Some("miss"));
    let total: i64 = after.body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 1);
}

#[tokio::test]
async fn the_live_stream_carries_per_second_totals_of_the_tenants_events_only() {
    use tower::ServiceExt;
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    let owner = api.setup("owner@x.test").await;
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let other = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "other@y.test", "password": "other-password"}),
        )
        .await;
    let other = other.body["token"].as_str().unwrap().to_owned();
    let open = |token: String| {
        let router = api.router.clone();
        async move {
            let req = axum::http::Request::get("/api/v1/events/stream")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap().into_body()
        }
    };
    let mut mine = open(viewer).await;
    let mut theirs = open(other.clone()).await;
    let events: Vec<Value> = (0..12)
        .map(|i| json!({"name": if i < 9 { "page_view" } else { "signup" }}))
        .collect();
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": events }))
        .await;
    assert_eq!(r.body["accepted"], 12);
    let seen = read_until(&mut mine, 5).await;
    assert!(seen.contains("event: events"), "{seen}");
    assert!(
        seen.contains("\"page_view\":9") && seen.contains("\"total\":12"),
        "{seen}"
    );
    // Another tenant hears nothing of them.
    let heard = read_until(&mut theirs, 2).await;
    assert!(!heard.contains("event: events"), "{heard}");
}

/// What a live stream sends within `within` seconds, or until an `events` message.
async fn read_until(body: &mut axum::body::Body, within: u64) -> String {
    use http_body_util::BodyExt;
    let mut text = String::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(within), async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
                if text.contains("event: events") {
                    return;
                }
            }
        }
    })
    .await;
    text
}

#[tokio::test]
async fn saved_charts_and_dashboards_draw_their_queries_for_their_tenant_only() {
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    let owner = api.setup("owner@x.test").await;
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let t = now_ms() - 5 * 60_000;
    let events: Vec<Value> = (0..8)
        .map(|i| {
            let name = if i < 6 { "signup" } else { "refund" };
            let plan = if i % 2 == 0 { "pro" } else { "free" };
            json!({"name": name, "timestamp": t + i, "properties": {"plan": plan}})
        })
        .collect();
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": events }))
        .await;
    assert_eq!(r.body["accepted"], 8, "{}", r.body);
    let query = json!({"metric": "count", "bucket": "minute", "range": "30m", "breakdown": "plan",
                       "filters": [{"property": "name", "op": "eq", "value": "signup"}]});
    // A viewer reads charts but does not save them.
    let r = api
        .post(
            "/api/v1/events/charts",
            Some(&viewer),
            json!({"name": "Signups", "query": query}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .post(
            "/api/v1/events/charts",
            Some(&owner),
            json!({"name": "Signups by plan", "style": "bar", "query": query}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let chart = r.id();
    assert_eq!(r.body["query"], query);
    // Its figures are the query's answer.
    let r = api
        .get(
            &format!("/api/v1/events/charts/{chart}/data"),
            Some(&viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let total = |body: &Value, key: &str| -> i64 {
        body["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .map(|s| {
                s["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap())
                    .sum()
            })
            .unwrap_or(0)
    };
    assert_eq!((total(&r.body, "pro"), total(&r.body, "free")), (3, 3));
    // Bad charts name their fields.
    let r = api
        .post(
            "/api/v1/events/charts",
            Some(&owner),
            json!({"name": "x", "query": {"bucket": "fortnight"}, "style": "pie", "colour": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = r.error_fields();
    for f in ["query.bucket", "style", "colour"] {
        assert!(fields.iter().any(|x| x == f), "{f}: {}", r.body);
    }
    let r = api
        .post("/api/v1/events/charts", Some(&owner), json!({"name": "x"}))
        .await;
    assert_eq!(r.error_fields(), ["query"], "{}", r.body);
    // A dashboard of it.
    let r = api
        .post(
            "/api/v1/events/dashboards",
            Some(&owner),
            json!({"name": "Growth", "charts": [chart], "columns": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let board = r.id();
    let r = api
        .post(
            "/api/v1/events/dashboards",
            Some(&owner),
            json!({"name": "Broken", "charts": [chart, chart, "nope", "0190a5b2-0000-7000-8000-000000000000"], "columns": 9}),
        )
        .await;
    assert_eq!(
        r.error_fields(),
        ["columns", "charts[1]", "charts[2]", "charts[3]"],
        "{}",
        r.body
    );
    // Its page draws the chart, as bars; a cell redraws from its own fragment.
    let r = api
        .get(&format!("/events/dashboards/{board}"), Some(&viewer))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.body.as_str().unwrap();
    assert!(page.contains(&format!("data-chart=\"{chart}\"")), "{page}");
    assert!(page.contains("data-names=\"signup\""), "{page}");
    assert!(page.contains("class=\"bars\"") && page.contains("Signups by plan"));
    assert!(page.contains("cols-3"));
    assert!(
        !page.contains("Change this dashboard"),
        "a viewer is offered no changes"
    );
    let r = api
        .get(&format!("/events/charts/{chart}/figure"), Some(&viewer))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.as_str().unwrap().contains("<svg class=\"chart\""));
    let r = api.get("/events/dashboards", Some(&owner)).await;
    let page = r.body.as_str().unwrap();
    assert!(
        page.contains(&format!("/events/dashboards/{board}")) && page.contains("New dashboard")
    );
    // The explorer's own queries open in it; its save form carries the query.
    assert!(
        page.contains("/events?name=signup&#38;metric=count"),
        "{page}"
    );
    let r = api
        .get(
            "/events?name=signup&breakdown=plan&bucket=minute&range=1h&style=bar",
            Some(&owner),
        )
        .await;
    let page = r.body.as_str().unwrap();
    assert!(page.contains("data-api-form=\"POST /api/v1/events/charts\""));
    assert!(page.contains("class=\"bars\""), "{page}");
    // Another tenant reaches none of it, not even by id.
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "other@y.test", "password": "other-password"}),
        )
        .await;
    let other = r.body["token"].as_str().unwrap().to_owned();
    for path in [
        format!("/api/v1/events/charts/{chart}"),
        format!("/api/v1/events/charts/{chart}/data"),
        format!("/api/v1/events/dashboards/{board}"),
        format!("/events/dashboards/{board}"),
        format!("/events/charts/{chart}/figure"),
    ] {
        assert_eq!(
            api.get(&path, Some(&other)).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        api.get("/api/v1/events/charts", Some(&other)).await.body["items"],
        json!([])
    );
    let r = api
        .post(
            "/api/v1/events/dashboards",
            Some(&other),
            json!({"name": "Theirs", "charts": [chart]}),
        )
        .await;
    assert_eq!(r.error_fields(), ["charts[0]"], "{}", r.body);
    // A deleted chart leaves its dashboards.
    let r = api
        .delete(&format!("/api/v1/events/charts/{chart}"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .get(&format!("/api/v1/events/dashboards/{board}"), Some(&owner))
        .await;
    assert_eq!(r.body["charts"], json!([]), "{}", r.body);
}

#[tokio::test]
async fn unique_users_merged_from_sketches_match_those_counted_from_events() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let hour = now_ms() - now_ms() % 3_600_000 - 2 * 3_600_000;
    let events: Vec<Value> = (0..300)
        .map(|i| {
            json!({"name": if i % 3 == 0 { "refund" } else { "signup" },
                   "timestamp": hour + (i % 3) * 3_600_000 / 2 + i,
                   "distinct_id": format!("u{}", i % 37), "properties": {"plan": "pro"}})
        })
        .collect();
    let r = api
        .post("/api/v1/events", Some(&owner), json!({ "events": events }))
        .await;
    assert_eq!(r.body["accepted"], 300, "{}", r.body);
    let ask = |filters: Value| json!({"metric": "unique", "bucket": "hour", "range": "6h", "breakdown": "name", "filters": filters});
    // From the hours' sketches (no property filter) and from the events (a filter every event
    // passes): the same figures.
    let merged = api
        .post("/api/v1/events/query", Some(&owner), ask(json!([])))
        .await;
    let counted = api
        .post(
            "/api/v1/events/query",
            Some(&owner),
            ask(json!([{"property": "plan", "op": "exists", "value": true}])),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    assert_eq!(merged.body, counted.body);
    let total: i64 = merged.body["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["points"].as_array().unwrap())
        .map(|p| p["value"].as_i64().unwrap())
        .sum();
    assert!(total > 37, "users per name and hour: {}", merged.body);
    // By day across names: each user once per day, whichever way it is counted.
    let day = |filters: Value| json!({"metric": "unique", "bucket": "day", "range": "7d", "filters": filters});
    let merged = api
        .post("/api/v1/events/query", Some(&owner), day(json!([])))
        .await;
    let counted = api
        .post(
            "/api/v1/events/query",
            Some(&owner),
            day(json!([{"property": "plan", "op": "exists", "value": true}])),
        )
        .await;
    assert_eq!(merged.body, counted.body);
    let days: Vec<i64> = merged.body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .filter(|v| *v > 0)
        .collect();
    assert!(
        days.iter().all(|v| *v <= 37) && days.iter().sum::<i64>() >= 37,
        "{days:?}"
    );
}
