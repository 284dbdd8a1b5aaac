//! The dashboard's pages and the public pages through the router: where a visitor without a
//! session is sent, what the pages show, what they escape, what another tenant sees, and what
//! status pages and badges answer and let caches keep. (The browser journey is in the
//! `pingtower` crate's `tests/browser.rs`.)

use crate::harness::{Api, http_monitor};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

fn html(r: &crate::harness::Resp) -> &str {
    r.body.as_str().unwrap_or_default()
}

#[tokio::test]
async fn without_a_session_pages_send_to_setup_then_to_login() {
    let api = Api::new().await;
    let r = api.get("/", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/setup"));
    let r = api.get("/setup", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("data-api-form=\"POST /api/v1/setup\""));

    api.setup("owner@example.test").await;
    let r = api.get("/setup", None).await;
    assert_eq!(r.header("location"), Some("/login"), "setup is closed");
    let r = api.get("/monitors/new?x=1", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Fmonitors%2Fnew%3Fx%3D1")
    );
    let r = api.get("/login?next=//evil.example/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains("data-then=\"/\""), "no open redirect");
    // A session cookie that is not valid is no session.
    let r = api
        .request(
            Method::GET,
            "/incidents",
            None,
            &[("cookie", "pingtower_session=forged")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_show_the_tenants_monitors_escaped_and_nothing_of_another_tenant() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let mut m = http_monitor("<script>alert(1)</script>");
    m["tags"] = json!(["edge"]);
    let a = api.post("/api/v1/monitors", Some(&root), m).await.id();
    let b = api
        .post("/api/v1/monitors", Some(&root), http_monitor("billing"))
        .await
        .id();
    let r = api.get("/", Some(&root)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let page = html(&r);
    assert!(page.contains(&format!("data-monitor=\"{a}\"")));
    assert!(page.contains(&format!("data-monitor=\"{b}\"")));
    assert!(!page.contains("<script>alert"), "names are escaped");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"n\">2</span> pending"),
        "counts"
    );

    // Filters: by tag, by search, by status.
    let r = api.get("/?tag=edge", Some(&root)).await;
    assert!(html(&r).contains(&a) && !html(&r).contains(&b));
    let r = api.get("/?q=BILL", Some(&root)).await;
    assert!(!html(&r).contains(&format!("data-monitor=\"{a}\"")) && html(&r).contains(&b));
    let r = api.get("/?status=up", Some(&root)).await;
    assert!(html(&r).contains("No monitors here yet"));

    let r = api.get(&format!("/monitors/{b}"), Some(&root)).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("billing") && page.contains("data-live-monitor"));
    assert!(page.contains(&format!("POST /api/v1/monitors/{b}/pause")));
    let r = api.get(&format!("/monitors/{a}/edit"), Some(&root)).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains(&format!("data-api-form=\"PATCH /api/v1/monitors/{a}\"")));
    assert!(
        page.contains("value=\"http://127.0.0.1:9/health\""),
        "{page}"
    );
    assert!(
        page.contains(">status == 200</textarea>"),
        "assertions one per line"
    );
    let r = api.get("/monitors/not-an-id", Some(&root)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Another tenant: its overview is empty and the monitor page is not found.
    let other = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await
        .id();
    let r = api.get_in("/", &root, &other).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!html(&r).contains(&b) && html(&r).contains("No monitors here yet"));
    let r = api.get_in(&format!("/monitors/{b}"), &root, &other).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get_in(&format!("/monitors/{b}/edit"), &root, &other)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get_in("/incidents", &root, &other).await;
    assert!(html(&r).contains("No incidents"));
}

#[tokio::test]
async fn status_pages_and_badges_are_public_cacheable_and_show_only_what_was_published() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let shown = api
        .post("/api/v1/monitors", Some(&root), http_monitor("Public API"))
        .await
        .id();
    let secret = api
        .post("/api/v1/monitors", Some(&root), http_monitor("Secret DB"))
        .await
        .id();
    let r = api
        .post(
            "/api/v1/status-pages",
            Some(&root),
            json!({"name": "Acme status", "slug": "acme", "monitors": [shown],
                   "description": "Our <b>public</b> services"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let r = api.get("/status/acme", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    let page = html(&r);
    assert!(page.contains("Acme status") && page.contains("Public API"));
    assert!(!page.contains("Secret DB"), "only the published monitors");
    assert!(
        page.contains("Our &#60;b&#62;public&#60;/b&#62; services"),
        "{page}"
    );
    assert!(page.contains("All systems operational"));
    // An incident is shown as an outage with its times, never with the check's reason.
    let m = api.monitor(&shown).await;
    api.store
        .open_incident(
            m.tenant_id,
            m.id,
            1,
            Some("cannot connect to 10.1.2.3:5432"),
            pingtower_core::Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        )
        .await
        .unwrap();
    let r = api.get("/status/acme", None).await;
    let page = html(&r);
    assert!(
        page.contains("Ongoing incidents") && page.contains("Public API</strong>: Outage <"),
        "{page}"
    );
    assert!(!page.contains("10.1.2.3"), "reasons stay private");
    let r = api.get("/status/nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for kind in ["status", "uptime", "latency"] {
        let r = api.get(&format!("/badge/{shown}/{kind}.svg"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{kind}");
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
        assert!(html(&r).starts_with("<svg"), "{kind}");
    }
    let r = api.get(&format!("/badge/{shown}/status.svg"), None).await;
    assert!(html(&r).contains("Public API: no data"), "{}", html(&r));
    // A monitor on no status page has no badge, even to someone who knows its id.
    let r = api.get(&format!("/badge/{secret}/status.svg"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get(&format!("/badge/{shown}/size.svg"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get(
            "/badge/0190a5c4-0000-7000-8000-000000000000/status.svg",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assets_are_served_from_the_binary() {
    let api = Api::new().await;
    for (path, kind) in [
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
    ] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some(kind));
        assert!(matches!(&r.body, Value::String(s) if s.len() > 1000));
    }
}

#[tokio::test]
async fn configuration_pages_list_the_tenants_own_and_settings_are_for_admins() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let m = api
        .post("/api/v1/monitors", Some(&root), http_monitor("Public API"))
        .await
        .id();
    let r = api
        .post(
            "/api/v1/channels",
            Some(&root),
            json!({"name": "ops hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let channel = r.id();
    let r = api
        .post(
            "/api/v1/status-pages",
            Some(&root),
            json!({"name": "Acme status", "slug": "acme", "monitors": [m]}),
        )
        .await;
    let page_id = r.id();

    let r = api.get("/channels", Some(&root)).await;
    assert!(html(&r).contains("ops hook"));
    assert!(html(&r).contains(&format!("POST /api/v1/channels/{channel}/test")));
    let r = api.get("/status-pages", Some(&root)).await;
    assert!(html(&r).contains("/status/acme"));
    let r = api
        .get(&format!("/status-pages/{page_id}/edit"), Some(&root))
        .await;
    let page = html(&r);
    assert!(page.contains(&format!("PATCH /api/v1/status-pages/{page_id}")));
    assert!(
        page.contains(&format!("value=\"{m}\" data-type=\"checks\" checked")),
        "the page's monitors are ticked: {page}"
    );
    let r = api.get("/channels/new", Some(&root)).await;
    let page = html(&r);
    assert!(page.contains("<option value=\"telegram\">"));
    assert!(
        page.contains("data-kinds=\"telegram\" data-required-in=\"telegram\">"),
        "a field shown for the kinds that have it: {page}"
    );
    assert!(page.contains("name=\"bot_token\" aria-describedby=\"e-bot_token\" type=\"password\""));
    let r = api.get("/rules/new", Some(&root)).await;
    assert!(html(&r).contains(&format!("value=\"{channel}\" data-type=\"checks\"")));
    assert!(html(&r).contains("value=\"down\" data-type=\"checks\" checked"));
    for path in [
        "/rules",
        "/maintenance",
        "/maintenance/new",
        "/status-pages/new",
    ] {
        assert_eq!(
            api.get(path, Some(&root)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }

    // An incident's page and its timeline.
    let monitor = api.monitor(&m).await;
    let incident = api
        .store
        .open_incident(
            monitor.tenant_id,
            monitor.id,
            1,
            Some("HTTP 503"),
            pingtower_core::Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        )
        .await
        .unwrap()
        .unwrap();
    let r = api
        .post(
            &format!("/api/v1/incidents/{}/comments", incident.id),
            Some(&root),
            json!({"message": "looking <into> it"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = api
        .get(&format!("/incidents/{}", incident.id), Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        html(&r).contains("looking &#60;into&#62; it"),
        "{}",
        html(&r)
    );
    assert!(html(&r).contains(&format!("data-ack=\"{}\"", incident.id)));

    // Settings: an owner sees keys, members and the audit log; a viewer is told they cannot.
    let r = api.get("/settings", Some(&root)).await;
    assert!(html(&r).contains("owner@example.test") && html(&r).contains("Audit log"));
    let viewer = api.member(&root, "viewer@example.test", "viewer").await;
    let r = api.get("/settings", Some(&root)).await;
    assert_eq!(
        html(&r).matches("data-member-role=").count(),
        1,
        "others' roles can be changed, not one's own"
    );
    assert!(html(&r).contains("data-was=\"viewer\""));
    let r = api.get("/settings", Some(&viewer)).await;
    assert!(html(&r).contains("are for owners and admins"));
    assert!(!html(&r).contains("Audit log"));

    // Another tenant sees none of it.
    let other = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await
        .id();
    assert!(!html(&api.get_in("/channels", &root, &other).await).contains("ops hook"));
    assert!(!html(&api.get_in("/status-pages", &root, &other).await).contains("acme"));
    let r = api
        .get_in(&format!("/status-pages/{page_id}/edit"), &root, &other)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get_in(&format!("/incidents/{}", incident.id), &root, &other)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_switches_tenants_by_cookie_and_only_to_the_callers_own() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let a = api
        .post("/api/v1/monitors", Some(&root), http_monitor("in-acme"))
        .await
        .id();
    let second = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await
        .id();
    let r = api
        .post(
            "/api/v1/auth/session",
            None,
            json!({"email": "owner@example.test", "password": "owner-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let session = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with = |cookies: String, path: &'static str| {
        let api = &api;
        async move {
            api.request(
                Method::GET,
                path,
                None,
                &[("cookie", cookies.as_str())],
                None,
            )
            .await
        }
    };

    let r = with(session.clone(), "/").await;
    assert!(html(&r).contains(&a) && html(&r).contains(">Acme</a>"));
    let r = with(session.clone(), "/settings").await;
    assert!(html(&r).contains(&format!("data-switch-tenant=\"{second}\"")));

    let switched = format!("{session}; pingtower_tenant={second}");
    let r = with(switched.clone(), "/").await;
    assert!(!html(&r).contains(&a), "the other tenant's monitors");
    assert!(html(&r).contains(">Second</a>"));
    assert!(html(&r).contains(&format!("name=\"tenant-id\" content=\"{second}\"")));
    // The API and the live stream, which a browser calls with the cookie alone, act there too.
    let r = with(switched, "/api/v1/monitors").await;
    assert!(r.body["items"].as_array().unwrap().is_empty());

    // A tenant the person is not a member of is ignored: the default one is shown.
    let stranger = format!("{session}; pingtower_tenant=0190a5c4-0000-7000-8000-000000000000");
    let r = with(stranger, "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(html(&r).contains(&a));
}
