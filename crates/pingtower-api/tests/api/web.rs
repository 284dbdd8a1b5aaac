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
    // The monitor page offers its badges to copy, linking to the page that publishes it; a
    // monitor no page publishes says how to get them.
    let page = api.get(&format!("/monitors/{shown}"), Some(&root)).await;
    let page = html(&page);
    for kind in ["status", "uptime", "latency"] {
        assert!(
            page.contains(&format!(
                "[![{}](http://localhost/badge/{shown}/{kind}.svg)](http://localhost/status/acme)",
                match kind {
                    "status" => "Status",
                    "uptime" => "Uptime, 30 days",
                    _ => "Median latency, 24 hours",
                }
            )),
            "{page}"
        );
    }
    assert!(
        page.contains("&#60;img src=&#34;http://localhost/badge/"),
        "HTML, escaped"
    );
    assert!(page.contains("<a href=\"http://localhost/status/acme\">Acme status</a>"));
    let page = api.get(&format!("/monitors/{secret}"), Some(&root)).await;
    assert!(html(&page).contains("data-no-badges"));
    // The list of status pages links to each.
    let list = api.get("/status-pages", Some(&root)).await;
    assert!(html(&list).contains("href=\"/status/acme\" data-view"));
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
async fn a_heartbeats_push_url_is_shown_whole_to_editors_only() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let r = api
        .post(
            "/api/v1/monitors",
            Some(&root),
            json!({"name": "nightly", "kind": "heartbeat", "interval_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (id, token) = (r.id(), r.body["push_token"].as_str().unwrap().to_owned());
    let page = format!("/monitors/{id}");
    let r = api.get(&page, Some(&root)).await;
    assert!(
        html(&r).contains(&format!("/api/v1/push/{token}")),
        "{}",
        html(&r)
    );
    assert!(html(&r).contains("curl -fsS"));
    // The token marks the monitor up or down: a viewer sees neither it nor the section.
    let viewer = api.member(&root, "viewer@example.test", "viewer").await;
    let r = api.get(&page, Some(&viewer)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!html(&r).contains(&token) && !html(&r).contains("push-url"));
}

#[tokio::test]
async fn a_monitor_is_cloned_through_the_new_monitor_form_without_its_credentials() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let r = api
        .post(
            "/api/v1/monitors",
            Some(&root),
            json!({"name": "Shop <API>", "kind": "http", "url": "https://shop.example.test/health",
                   "interval_seconds": 30, "tags": ["prod"], "assertions": ["status == 200"],
                   "headers": {"Authorization": "Bearer s3cret-token"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.id();
    let r = api.get(&format!("/monitors/{id}"), Some(&root)).await;
    assert!(html(&r).contains(&format!("href=\"/monitors/{id}/clone\"")));
    let r = api.get(&format!("/monitors/{id}/clone"), Some(&root)).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    // A new monitor's form (posting, not patching), filled with the original's settings.
    assert!(
        page.contains("data-api-form=\"POST /api/v1/monitors\""),
        "{page}"
    );
    assert!(!page.contains("data-api-form=\"PATCH"));
    assert!(
        page.contains("value=\"Shop &#60;API&#62; (copy)\""),
        "{page}"
    );
    assert!(page.contains("https://shop.example.test/health"));
    assert!(page.contains("value=\"30\"") && page.contains("status == 200"));
    // Its credentials are not in the page, and the form says they are not copied.
    assert!(!page.contains("s3cret-token"));
    assert!(
        page.contains("Credentials are not copied (headers)"),
        "{page}"
    );
    // Not from another tenant.
    let other = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await
        .id();
    let r = api
        .get_in(&format!("/monitors/{id}/clone"), &root, &other)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assets_are_served_from_the_binary() {
    let api = Api::new().await;
    for (path, kind) in [
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/status.js", "text/javascript; charset=utf-8"),
    ] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some(kind));
        assert!(matches!(&r.body, Value::String(s) if s.len() > 500));
    }
    // Browsers ask for /favicon.ico whatever the page says.
    for path in ["/favicon.ico", "/assets/favicon.svg"] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
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
    // Everyone with a password can change it and end their other sessions.
    assert!(html(&r).contains("data-api-form=\"POST /api/v1/auth/password\""));
    assert!(html(&r).contains("data-api=\"DELETE /api/v1/auth/sessions\""));
    // Invitations not accepted yet are listed for admins, with a way to withdraw them.
    let invited = api
        .post(
            "/api/v1/users",
            Some(&root),
            json!({"email": "later@example.test", "role": "editor"}),
        )
        .await;
    let r = api.get("/settings", Some(&root)).await;
    assert!(html(&r).contains("later@example.test"));
    assert!(html(&r).contains(&format!("DELETE /api/v1/invitations/{}", invited.id())));
    assert!(!html(&r).contains(invited.body["token"].as_str().unwrap()));

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

/// The fields a 422 names.
fn fields(r: &crate::harness::Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn status_pages_show_groups_and_public_names_and_forget_deleted_monitors() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let mut ids = Vec::new();
    for name in ["edge-lb-01", "pg-primary", "redis-cache"] {
        ids.push(
            api.post("/api/v1/monitors", Some(&root), http_monitor(name))
                .await
                .id(),
        );
    }
    let (edge, db, cache) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    // Bad input is named field by field, and nothing is created.
    let r = api
        .post(
            "/api/v1/status-pages",
            Some(&root),
            json!({"name": "Shop", "slug": "shop", "monitors": [edge],
                   "groups": [{"name": "Backend", "monitors": [db]}, {"name": "", "monitors": "x"}],
                   "public_names": {db.clone(): "Customer data"}}),
        )
        .await;
    let f = fields(&r);
    for want in [
        "groups[0].monitors[0]".to_owned(),
        "groups[1].name".to_owned(),
        "groups[1].monitors".to_owned(),
        format!("public_names.{db}"),
    ] {
        assert!(f.contains(&want), "{want} in {f:?}");
    }
    let r = api
        .post(
            "/api/v1/status-pages",
            Some(&root),
            json!({"name": "Shop", "slug": "shop",
                   "groups": [{"name": "A", "monitors": [db]}, {"name": "A", "monitors": [db]}]}),
        )
        .await;
    let f = fields(&r);
    assert!(
        f.contains(&"groups[1].name".to_owned()) && f.contains(&"groups[1].monitors[0]".to_owned()),
        "{f:?}"
    );
    assert_eq!(
        api.get("/api/v1/status-pages", Some(&root)).await.body["items"],
        json!([])
    );

    // Groups alone give the page its monitors.
    let r = api
        .post(
            "/api/v1/status-pages",
            Some(&root),
            json!({"name": "Shop", "slug": "shop",
                   "groups": [{"name": "Backend", "monitors": [db, cache]}],
                   "public_names": {db.clone(): "Customer data"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["monitors"], json!([db, cache]));
    let page = r.id();
    // A monitor added to the list without a group is shown first, outside the groups.
    let r = api
        .patch(
            &format!("/api/v1/status-pages/{page}"),
            Some(&root),
            json!({"monitors": [edge, db, cache]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["groups"][0]["monitors"], json!([db, cache]));

    let public = html(&api.get("/status/shop", None).await).to_owned();
    let at = |s: &str| public.find(s).unwrap_or_else(|| panic!("{s} in {public}"));
    assert!(at("edge-lb-01") < at("data-public-group>Backend</h3>"));
    assert!(at("data-public-group>Backend</h3>") < at("Customer data"));
    assert!(at("Customer data") < at("redis-cache"));
    assert!(
        !public.contains("pg-primary"),
        "the public name replaces the own"
    );
    let r = api.get(&format!("/badge/{db}/status.svg"), None).await;
    assert!(html(&r).contains("Customer data: no data"), "{}", html(&r));
    // An outage is told under the public name too.
    let m = api.monitor(&db).await;
    api.store
        .open_incident(
            m.tenant_id,
            m.id,
            1,
            Some("connection refused"),
            pingtower_core::Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        )
        .await
        .unwrap();
    let r = api.get("/status/shop", None).await;
    assert!(
        html(&r).contains("Customer data</strong>: Outage"),
        "{}",
        html(&r)
    );

    // The edit form shows each monitor's group and public name.
    let r = api
        .get(&format!("/status-pages/{page}/edit"), Some(&root))
        .await;
    let form = html(&r);
    assert!(
        form.contains(&format!(
            "name=\"groups\" data-type=\"page-group\" data-monitor=\"{db}\" value=\"Backend\""
        )),
        "{form}"
    );
    assert!(form.contains(&format!(
        "name=\"public_names\" data-type=\"public-name\" data-monitor=\"{db}\" value=\"Customer data\""
    )));

    // A deleted monitor leaves the page (and a rule naming it), which stay editable.
    let r = api
        .post(
            "/api/v1/rules",
            Some(&root),
            json!({"name": "db", "monitors": [db, cache], "events": ["down"],
                   "channels": [api.post("/api/v1/channels", Some(&root),
                        json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})).await.id()]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rule = r.id();
    let r = api
        .post(
            "/api/v1/maintenance",
            Some(&root),
            json!({"name": "db upgrade", "monitors": [db], "starts_at": "2099-01-01T02:00:00Z",
                   "ends_at": "2099-01-01T04:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let window = r.id();
    let r = api
        .delete(&format!("/api/v1/monitors/{db}"), Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .get(&format!("/api/v1/status-pages/{page}"), Some(&root))
        .await;
    assert_eq!(r.body["monitors"], json!([edge, cache]));
    assert_eq!(r.body["groups"][0]["monitors"], json!([cache]));
    assert_eq!(r.body["public_names"], json!({}));
    let r = api
        .patch(
            &format!("/api/v1/status-pages/{page}"),
            Some(&root),
            json!({"description": "Shop systems"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api.get(&format!("/api/v1/rules/{rule}"), Some(&root)).await;
    assert_eq!(r.body["monitors"], json!([cache]));
    // A window that named only it now names none, and its form keeps it that way (an empty
    // tags field would mean every monitor).
    let r = api
        .get(&format!("/api/v1/maintenance/{window}"), Some(&root))
        .await;
    assert_eq!(r.body["monitors"], json!([]));
    let r = api
        .get(&format!("/maintenance/{window}/edit"), Some(&root))
        .await;
    assert!(html(&r).contains("0 chosen by id"), "{}", html(&r));
    assert!(!html(&r).contains("data-type=\"selection\""));
}

#[tokio::test]
async fn channels_rules_and_windows_are_edited_in_forms_that_never_show_credentials() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let slack = api
        .post(
            "/api/v1/channels",
            Some(&root),
            json!({"name": "team chat", "kind": "slack", "url": "http://127.0.0.1:9/T0/s3cr3t-path"}),
        )
        .await
        .id();
    let hook = api
        .post(
            "/api/v1/channels",
            Some(&root),
            json!({"name": "ops hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook",
                   "hmac_secret": "hm4c-s3cr3t"}),
        )
        .await
        .id();
    let rule = api
        .post(
            "/api/v1/rules",
            Some(&root),
            json!({"name": "page ops", "monitors": {"tags": ["prod", "shop"]}, "events": ["down"],
                   "channels": [hook], "after_failures": 3}),
        )
        .await
        .id();
    let window = api
        .post(
            "/api/v1/maintenance",
            Some(&root),
            json!({"name": "patching", "monitors": "all", "cron": "0 3 * * SUN",
                   "duration_minutes": 60, "timezone": "Europe/Berlin"}),
        )
        .await
        .id();

    for (list, id) in [
        ("/channels", &slack),
        ("/rules", &rule),
        ("/maintenance", &window),
    ] {
        let r = api.get(list, Some(&root)).await;
        assert!(
            html(&r).contains(&format!("href=\"{list}/{id}/edit\"")),
            "{list}"
        );
    }

    let r = api
        .get(&format!("/channels/{slack}/edit"), Some(&root))
        .await;
    let form = html(&r);
    assert!(form.contains(&format!("PATCH /api/v1/channels/{slack}")));
    assert!(form.contains("value=\"team chat\""));
    assert!(form.contains("<option value=\"slack\" selected>"), "{form}");
    assert!(form.contains("data-kind-select aria-describedby=\"e-kind\" disabled"));
    assert!(form.contains("data-keep-blank placeholder=\"set: leave blank to keep\""));
    assert!(
        !form.contains("s3cr3t"),
        "a credential is in the page: {form}"
    );
    let r = api
        .get(&format!("/channels/{hook}/edit"), Some(&root))
        .await;
    let form = html(&r);
    assert!(form.contains("value=\"http://127.0.0.1:9/hook\""), "{form}");
    assert!(!form.contains("hm4c"), "a credential is in the page");
    assert!(
        form.contains("data-clear=\"hmac_secret\""),
        "a stored credential can be removed"
    );
    assert!(
        form.contains("data-list-in=\"email\""),
        "`to` is a list for email only"
    );

    let r = api.get(&format!("/rules/{rule}/edit"), Some(&root)).await;
    let form = html(&r);
    assert!(form.contains(&format!("PATCH /api/v1/rules/{rule}")));
    assert!(form.contains(&format!("value=\"{hook}\" data-type=\"checks\" checked")));
    assert!(form.contains("value=\"down\" data-type=\"checks\" checked"));
    assert!(
        form.contains("value=\"up\" data-type=\"checks\">"),
        "{form}"
    );
    assert!(form.contains("value=\"prod, shop\""));
    assert!(form.contains("value=\"3\""));

    let r = api
        .get(&format!("/maintenance/{window}/edit"), Some(&root))
        .await;
    let form = html(&r);
    assert!(form.contains(&format!("PATCH /api/v1/maintenance/{window}")));
    for v in ["0 3 * * SUN", "60", "Europe/Berlin", "patching"] {
        assert!(form.contains(&format!("value=\"{v}\"")), "{v}: {form}");
    }
    assert!(
        form.contains("data-type=\"selection\" aria-describedby=\"e-monitors\" placeholder=\"prod\" value=\"\""),
        "all monitors: no tags"
    );

    // What a form sends on edit (an empty credential left out) changes the named fields only
    // and keeps the stored credential.
    let r = api
        .patch(
            &format!("/api/v1/channels/{hook}"),
            Some(&root),
            json!({"name": "ops webhook", "url": "http://127.0.0.1:9/hook2", "body_template": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["secrets_set"], json!(["hmac_secret"]));

    // Monitors chosen by id are not offered as tags (and so not overwritten).
    let m = api
        .post("/api/v1/monitors", Some(&root), http_monitor("Public API"))
        .await
        .id();
    let r = api
        .patch(
            &format!("/api/v1/rules/{rule}"),
            Some(&root),
            json!({"monitors": [m]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api.get(&format!("/rules/{rule}/edit"), Some(&root)).await;
    assert!(html(&r).contains("1 chosen by id"));
    assert!(!html(&r).contains("data-type=\"selection\""));

    // Another tenant's objects are not found.
    let other = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await
        .id();
    for path in [
        format!("/channels/{slack}/edit"),
        format!("/rules/{rule}/edit"),
        format!("/maintenance/{window}/edit"),
    ] {
        let r = api.get_in(&path, &root, &other).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = api.get("/rules/not-an-id/edit", Some(&root)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_delivery_log_names_channels_and_shows_each_answer_to_the_tenant_only() {
    use pingtower_core::{Delivery, DeliveryId, DeliveryStatus, ResourceId, Timestamp};
    let api = Api::new().await;
    let owner = api.setup("owner@example.test").await;
    let channel = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "ops <hook>", "kind": "webhook", "url": "http://127.0.0.1:9/"}),
        )
        .await
        .id();
    let (tenant, other) = api.two_tenants().await;
    let delivery = |t, channel_id, key: &str, status, error: Option<&str>| Delivery {
        id: DeliveryId::new(),
        tenant_id: t,
        channel_id,
        incident_id: None,
        idempotency_key: key.into(),
        status,
        attempts: 3,
        last_error: error.map(str::to_owned),
        response: Some("HTTP 204".into()),
        latency_ms: Some(42),
        created_at: Timestamp::from_millis(1_795_000_000_000),
        updated_at: Timestamp::from_millis(1_795_000_000_000),
    };
    let ours: ResourceId = channel.parse().unwrap();
    for d in [
        delivery(tenant, ours, "k1", DeliveryStatus::Sent, None),
        delivery(
            tenant,
            ours,
            "k2",
            DeliveryStatus::Failed,
            Some("HTTP 500 from the receiver"),
        ),
        delivery(
            other,
            ResourceId::new(),
            "k3",
            DeliveryStatus::Sent,
            Some("theirs"),
        ),
    ] {
        assert!(api.store.record_delivery(&d).await.unwrap());
    }
    let r = api.get("/deliveries", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(
        page.contains("ops &#60;hook&#62;"),
        "named and escaped: {page}"
    );
    assert!(page.contains("HTTP 500 from the receiver") && page.contains("HTTP 204"));
    assert!(page.contains("d-sent") && page.contains("d-failed"));
    assert!(page.contains("42.0 ms"));
    assert!(page.contains(r#"<time datetime="2026-11-18T11:06:40Z""#));
    assert!(!page.contains("theirs"), "another tenant's delivery");
    // The channels page leads there.
    assert!(html(&api.get("/channels", Some(&owner)).await).contains("href=\"/deliveries\""));
    assert_eq!(
        api.get("/deliveries?cursor=bogus", Some(&owner))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn the_audit_log_names_its_objects_and_links_those_that_exist() {
    let api = Api::new().await;
    let owner = api.setup("owner@example.test").await;
    let m = api
        .post(
            "/api/v1/monitors",
            Some(&owner),
            http_monitor("checkout <api>"),
        )
        .await
        .id();
    let c = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "old pager", "kind": "webhook", "url": "http://127.0.0.1:9/"}),
        )
        .await
        .id();
    assert_eq!(
        api.delete(&format!("/api/v1/channels/{c}"), Some(&owner))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    api.member(&owner, "viewer@example.test", "viewer").await;
    let r = api.get("/settings", Some(&owner)).await;
    let page = html(&r);
    assert!(
        page.contains(&format!(
            "monitor <a href=\"/monitors/{m}\">checkout &#60;api&#62;</a>"
        )),
        "{page}"
    );
    // Deleted: named as it was, without a link.
    assert!(page.contains("channel old pager</td>"), "{page}");
    assert!(page.contains(&format!("title=\"channel:{c}\"")));
    // (The first-run owner is a platform administrator: the member is made at once.)
    assert!(
        page.contains("member viewer@example.test (viewer)"),
        "{page}"
    );
}

#[tokio::test]
async fn the_monitor_list_puts_what_needs_attention_first_on_request() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let mut ids = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        ids.push(
            api.post("/api/v1/monitors", Some(&root), http_monitor(name))
                .await
                .id(),
        );
    }
    let m = api.monitor(&ids[2]).await;
    api.store
        .set_monitor_status(
            m.tenant_id,
            m.id,
            pingtower_core::MonitorStatus::Down,
            m.created_at,
        )
        .await
        .unwrap();
    let names = |r: &crate::harness::Resp| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = api
        .get("/api/v1/monitors?order=attention&limit=2", Some(&root))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(names(&first), ["charlie", "alpha"]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = api
        .get(
            &format!(
                "/api/v1/monitors?order=attention&limit=2&cursor={}",
                form_urlencoded::byte_serialize(cursor.as_bytes()).collect::<String>()
            ),
            Some(&root),
        )
        .await;
    assert_eq!(names(&rest), ["bravo"]);
    let newest = api.get("/api/v1/monitors", Some(&root)).await;
    assert_eq!(names(&newest), ["charlie", "bravo", "alpha"]);
    let bad = api.get("/api/v1/monitors?order=loudest", Some(&root)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.error_fields(), ["order"]);
    // A newest-first cursor is no attention cursor.
    let bad = api
        .get(
            &format!("/api/v1/monitors?order=attention&cursor={}", ids[0]),
            Some(&root),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    // The overview shows the same order, and the reason of a down monitor's open incident.
    api.store
        .open_incident(
            m.tenant_id,
            m.id,
            1,
            Some("cannot connect <here>"),
            m.created_at,
        )
        .await
        .unwrap();
    let page = api.get("/", Some(&root)).await;
    let page = html(&page);
    let at = |id: &str| page.find(&format!("data-monitor=\"{id}\"")).unwrap();
    assert!(at(&ids[2]) < at(&ids[0]) && at(&ids[0]) < at(&ids[1]));
    assert!(
        page.contains("data-reason>cannot connect &#60;here&#62;</div>"),
        "{page}"
    );
    let page = api.get("/?order=newest", Some(&root)).await;
    let page = html(&page);
    let at = |id: &str| page.find(&format!("data-monitor=\"{id}\"")).unwrap();
    assert!(at(&ids[2]) < at(&ids[1]) && at(&ids[1]) < at(&ids[0]));
}

#[tokio::test]
async fn a_group_is_one_row_on_the_overview_with_its_worst_status_and_its_members_under_it() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let mut grouped = Vec::new();
    for name in ["pay-api", "pay-db"] {
        let mut m = http_monitor(name);
        m["group"] = json!("Payments <EU>");
        grouped.push(api.post("/api/v1/monitors", Some(&root), m).await.id());
    }
    let alone = api
        .post("/api/v1/monitors", Some(&root), http_monitor("aaa-alone"))
        .await
        .id();
    let m = api.monitor(&grouped[1]).await;
    api.store
        .set_monitor_status(
            m.tenant_id,
            m.id,
            pingtower_core::MonitorStatus::Down,
            m.created_at,
        )
        .await
        .unwrap();
    // Read back and kept by an edit that does not name it.
    let read = api
        .get(&format!("/api/v1/monitors/{}", grouped[0]), Some(&root))
        .await;
    assert_eq!(read.body["group"], "Payments <EU>", "{}", read.body);
    let r = api.get("/", Some(&root)).await;
    let page = html(&r);
    let head = page.find("data-group=\"g0\"").expect("a group row");
    assert_eq!(
        page.matches("class=\"group-row\"").count(),
        1,
        "one row per group"
    );
    // Its worst status, where its worst member would be: before the pending monitor alone.
    assert!(head < page.find(&format!("data-monitor=\"{alone}\"")).unwrap());
    let row = &page[head..];
    assert!(
        row.contains("<span class=\"status s-down\">down</span>"),
        "{row}"
    );
    assert!(row.contains("Payments &#60;EU&#62;"), "escaped: {row}");
    assert!(row.contains("2 monitors: 1 down, 1 pending"), "{row}");
    for id in &grouped {
        assert!(
            page.contains(&format!(
                "data-monitor=\"{id}\" data-in-group=\"g0\" class=\"in-group\" hidden"
            )),
            "{page}"
        );
    }
    assert!(page.contains(&format!("data-monitor=\"{alone}\">")));
    // Its worst status in any order: newest first, its newest member is pending.
    let r = api.get("/?order=newest", Some(&root)).await;
    let page = html(&r);
    let row = &page[page.find("class=\"group-row\"").unwrap()..];
    assert!(
        row.contains("<span class=\"status s-down\">down</span>"),
        "{row}"
    );
    // A viewer gets no bulk controls.
    let viewer = api.member(&root, "viewer@example.test", "viewer").await;
    let page = api.get("/", Some(&viewer)).await;
    assert!(!html(&page).contains("data-bulk") && !html(&page).contains("data-pick"));
    let page = api.get("/", Some(&root)).await;
    assert!(html(&page).contains("data-bulk") && html(&page).contains("data-pick-all"));
    // A bad group is refused on its field; an empty one on an edit removes it.
    let mut bad = http_monitor("bad");
    bad["group"] = json!(" spaced ");
    let r = api.post("/api/v1/monitors", Some(&root), bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["group"]);
    let r = api
        .patch(
            &format!("/api/v1/monitors/{}", grouped[0]),
            Some(&root),
            json!({"group": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.get("group").is_none_or(|g| g.is_null()),
        "{}",
        r.body
    );
    // The form shows and edits it.
    let form = api
        .get(&format!("/monitors/{}/edit", grouped[1]), Some(&root))
        .await;
    assert!(html(&form).contains("value=\"Payments &#60;EU&#62;\""));
}

#[tokio::test]
async fn a_monitors_own_rule_is_found_by_its_exact_name_and_goes_with_the_monitor() {
    let api = Api::new().await;
    let root = api.setup("owner@example.test").await;
    let channel = api
        .post(
            "/api/v1/channels",
            Some(&root),
            json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/"}),
        )
        .await
        .id();
    let id = api
        .post("/api/v1/monitors", Some(&root), http_monitor("billing"))
        .await
        .id();
    let rule = |name: &str| json!({"name": name, "monitors": [id], "events": ["down", "up"], "channels": [channel]});
    // A rule made by hand on the rules page is not the form's to change.
    let other = api
        .post(
            "/api/v1/rules",
            Some(&root),
            rule("Billing pager: notifications"),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let form = api.get(&format!("/monitors/{id}/edit"), Some(&root)).await;
    assert!(
        html(&form).contains("data-notify-rule=\"\""),
        "{}",
        html(&form)
    );
    assert!(
        !html(&form).contains(" checked> ops"),
        "not ticked by someone else's rule"
    );
    // Its own rule is, its channels ticked.
    let own = api
        .post("/api/v1/rules", Some(&root), rule("billing: notifications"))
        .await
        .id();
    let form = api.get(&format!("/monitors/{id}/edit"), Some(&root)).await;
    assert!(html(&form).contains(&format!("data-notify-rule=\"{own}\"")));
    assert!(html(&form).contains(&format!("value=\"{channel}\" checked")));
    // A clone starts without one.
    let form = api.get(&format!("/monitors/{id}/clone"), Some(&root)).await;
    assert!(html(&form).contains("data-notify-rule=\"\""));
    // Deleting the monitor deletes its own rule, and leaves the other (without the monitor).
    assert_eq!(
        api.delete(&format!("/api/v1/monitors/{id}"), Some(&root))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(&format!("/api/v1/rules/{own}"), Some(&root))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let left = api
        .get(&format!("/api/v1/rules/{}", other.id()), Some(&root))
        .await;
    assert_eq!(left.status, StatusCode::OK);
    assert_eq!(left.body["monitors"], json!([]));
}
