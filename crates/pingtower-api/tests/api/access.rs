//! Setup, login, tokens, API keys, members, tenants and the OpenAPI document.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn setup_runs_once_and_login_gives_a_working_token() {
    let api = Api::new().await;
    assert_eq!(
        api.get("/api/v1/setup", None).await.body["setup_needed"],
        true
    );
    let bad = api
        .post(
            "/api/v1/setup",
            None,
            json!({"email": "nope", "password": "short", "x": 1}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["email", "password", "x"]);
    let token = api.setup("Owner@X.test").await;
    assert_eq!(
        api.get("/api/v1/setup", None).await.body["setup_needed"],
        false
    );
    let again = api
        .post(
            "/api/v1/setup",
            None,
            json!({"email": "evil@x.test", "password": "12345678"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let me = api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["email"], "owner@x.test");
    assert_eq!(me.body["tenants"][0]["role"], "owner");
    assert_eq!(me.body["tenants"][0]["name"], "Acme");

    // Email is case-insensitive; the password is not.
    let ok = api.login("OWNER@x.test", "owner-password").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.body["expires_at"].is_string());
    let wrong = api.login("owner@x.test", "Owner-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.header("www-authenticate").is_some());
    let nobody = api.login("nobody@x.test", "owner-password").await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body["detail"], nobody.body["detail"],
        "no hint which was wrong"
    );

    // Tampered and foreign tokens are refused.
    // Change one character in the middle of the signature.
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "x" { "y" } else { "x" };
    let tampered = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    for t in [tampered.as_str(), "garbage", "ptk_abc_def"] {
        let r = api.get("/api/v1/monitors", Some(t)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{t}");
    }
    let r = api
        .request(
            axum::http::Method::GET,
            "/api/v1/monitors",
            None,
            &[("authorization", "Basic b3duZXI6cHc=")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_but_other_accounts_are_not() {
    let api = Api::new().await;
    api.setup("o@x.test").await;
    let mut limited = None;
    for i in 0..8 {
        let r = api.login("o@x.test", "wrong-password").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let (attempt, r) = limited.expect("failures were never rate-limited");
    assert!(attempt >= 4, "limited too early, after {attempt} failures");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 0);
    // Even the right password waits now: the attacker cannot keep guessing.
    assert_eq!(
        api.login("o@x.test", "owner-password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_work_with_their_role_and_stop_when_revoked() {
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    let r = api
        .post(
            "/api/v1/api-keys",
            Some(&owner),
            json!({"name": "ci", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ptk_"));
    let id = r.id();
    // Listed without the secret.
    let list = api.get("/api/v1/api-keys", Some(&owner)).await;
    assert!(list.body["items"][0].get("key").is_none());
    assert!(!list.body.to_string().contains(&key));
    assert!(key.starts_with(list.body["items"][0]["prefix"].as_str().unwrap()));

    // The key reads, but a viewer key cannot write.
    assert_eq!(
        api.get("/api/v1/monitors", Some(&key)).await.status,
        StatusCode::OK
    );
    let r = api
        .post("/api/v1/monitors", Some(&key), http_monitor("x"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let me = api.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(me.body["api_key"], "ci");
    // Last use is recorded.
    let list = api.get("/api/v1/api-keys", Some(&owner)).await;
    assert!(list.body["items"][0]["last_used_at"].is_string());

    // An editor cannot mint an admin key.
    let editor = api.member(&owner, "e@x.test", "editor").await;
    let r = api
        .post(
            "/api/v1/api-keys",
            Some(&editor),
            json!({"name": "esc", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let admin = api.member(&owner, "a@x.test", "admin").await;
    let r = api
        .post(
            "/api/v1/api-keys",
            Some(&admin),
            json!({"name": "esc", "role": "owner"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["role"]);
    let r = api
        .post(
            "/api/v1/api-keys",
            Some(&admin),
            json!({"name": "old", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["expires_at"]);

    // Revoked: refused at once.
    let r = api
        .delete(&format!("/api/v1/api-keys/{id}"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/api/v1/monitors", Some(&key)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn roles_change_at_once_and_a_tenant_keeps_an_owner() {
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    let admin = api.member(&owner, "a@x.test", "admin").await;
    let editor = api.member(&owner, "e@x.test", "editor").await;
    let users = api.get("/api/v1/users", Some(&owner)).await;
    let id_of = |email: &str| {
        users.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (owner_id, editor_id) = (id_of("o@x.test"), id_of("e@x.test"));
    assert_eq!(
        api.post("/api/v1/monitors", Some(&editor), http_monitor("a"))
            .await
            .status,
        StatusCode::CREATED
    );
    // Demoted: the same token loses the right immediately.
    let r = api
        .patch(
            &format!("/api/v1/users/{editor_id}"),
            Some(&admin),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        api.post("/api/v1/monitors", Some(&editor), http_monitor("b"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // An admin cannot make owners or touch the owner.
    let r = api
        .patch(
            &format!("/api/v1/users/{editor_id}"),
            Some(&admin),
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .delete(&format!("/api/v1/users/{owner_id}"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The last owner cannot leave or step down.
    let r = api
        .delete(&format!("/api/v1/users/{owner_id}"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = api
        .patch(
            &format!("/api/v1/users/{owner_id}"),
            Some(&owner),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Removed: the token no longer reaches the tenant.
    let r = api
        .delete(&format!("/api/v1/users/{editor_id}"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/api/v1/monitors", Some(&editor)).await.status,
        StatusCode::FORBIDDEN
    );
    // Adding an existing member again is a conflict; a new email without a password gets an
    // invitation, whose link makes the account.
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "a@x.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "new@x.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["email"], "new@x.test");
    assert!(
        r.body["invite_path"]
            .as_str()
            .unwrap()
            .starts_with("/invite/")
    );
}

#[tokio::test]
async fn a_user_in_two_tenants_picks_one_per_request() {
    let api = Api::new().await;
    let root = api.setup("root@x.test").await;
    let b = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Second"}))
        .await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    let tenant_b = b.id();
    let in_a = api
        .post("/api/v1/monitors", Some(&root), http_monitor("in-a"))
        .await;
    assert_eq!(in_a.status, StatusCode::CREATED);
    let in_b = api
        .request(
            axum::http::Method::POST,
            "/api/v1/monitors",
            Some(&root),
            &[("x-tenant-id", tenant_b.as_str())],
            Some(http_monitor("in-b")),
        )
        .await;
    assert_eq!(in_b.status, StatusCode::CREATED);
    let list_b = api
        .request(
            axum::http::Method::GET,
            "/api/v1/monitors",
            Some(&root),
            &[("x-tenant-id", tenant_b.as_str())],
            None,
        )
        .await;
    let names: Vec<_> = list_b.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, [json!("in-b")]);
    // The monitor of B is not reachable in A.
    let r = api
        .get(&format!("/api/v1/monitors/{}", in_b.id()), Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let tenants = api.get("/api/v1/tenants", Some(&root)).await;
    assert_eq!(tenants.body["items"].as_array().unwrap().len(), 2);
    // Non-administrators cannot create tenants.
    let viewer = api.member(&root, "v@x.test", "viewer").await;
    let r = api
        .post("/api/v1/tenants", Some(&viewer), json!({"name": "Mine"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn channel_credentials_are_sealed_and_never_shown() {
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    let r = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "pd", "kind": "pagerduty", "routing_key": "R0UT1NG-S3CRET", "base_url": "http://127.0.0.1:9/"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(!r.body.to_string().contains("R0UT1NG-S3CRET"));
    assert_eq!(r.body["secrets_set"], json!(["routing_key"]));
    let stored = api
        .store
        .list_resources(
            api.store.list_tenants().await.unwrap()[0].id,
            pingtower_core::ResourceKind::Channel,
        )
        .await
        .unwrap();
    assert!(!stored[0].spec.to_string().contains("R0UT1NG"));
    let sealed = stored[0].secret.clone().unwrap();
    assert!(!sealed.windows(7).any(|w| w == b"R0UT1NG"));
    // A patch that leaves the credential out keeps it.
    let path = format!("/api/v1/channels/{}", r.id());
    let r = api
        .patch(&path, Some(&owner), json!({"severity": "critical"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["secrets_set"], json!(["routing_key"]));
    // Validation names every field.
    let r = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "", "kind": "webhook", "url": "gopher://x", "headers": {"a": 1}, "extra": true}),
        )
        .await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["extra", "headers", "name", "url"], "{}", r.body);
    // Telegram chat ids are numbers; anything else but a name is refused.
    let r = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "tg", "kind": "telegram", "chat_id": -100_123, "bot_token": "1:x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "tg2", "kind": "telegram", "chat_id": true, "bot_token": "1:x"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["chat_id"]);
    let r = api
        .post("/api/v1/rules", Some(&owner), json!({"name": "r", "monitors": "some", "events": ["sideways"], "channels": ["00000000-0000-0000-0000-000000000000"]}))
        .await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["channels[0]", "events[0]", "monitors"],
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_need_no_login() {
    let api = Api::new().await;
    let r = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/monitors",
        "/api/v1/monitors/{id}",
        "/api/v1/monitors/{id}/results",
        "/api/v1/auth/login",
        "/api/v1/incidents/{id}/ack",
        "/api/v1/channels",
        "/api/v1/rules",
        "/api/v1/maintenance",
        "/api/v1/status-pages",
        "/api/v1/api-keys",
        "/api/v1/users",
        "/api/v1/tenants",
    ] {
        assert!(paths.contains_key(p), "{p} not documented");
    }
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
    // A create links to the operations on what it made, a list to those on its first item.
    let made = &r.body["paths"]["/api/v1/monitors"]["post"]["responses"]["201"]["links"]["get /api/v1/monitors/{id}"];
    assert_eq!(
        made["operationRef"],
        "#/paths/~1api~1v1~1monitors~1%7Bid%7D/get"
    );
    assert_eq!(made["parameters"]["id"], "$response.body#/id");
    let listed = &r.body["paths"]["/api/v1/dead-letters"]["get"]["responses"]["200"]["links"]["post /api/v1/dead-letters/{id}/replay"];
    assert_eq!(listed["parameters"]["id"], "$response.body#/items/0/id");
    // Enums are documented by their wire names.
    assert_eq!(
        r.body["components"]["schemas"]["Role"]["enum"],
        json!(["owner", "admin", "editor", "viewer", "ingest"])
    );
    assert_eq!(
        r.body["components"]["schemas"]["MonitorStatus"]["enum"][0],
        "pending"
    );
    let docs = api.get("/api/v1/docs", None).await;
    assert_eq!(docs.status, StatusCode::OK);
    let html = docs.body.as_str().unwrap();
    assert!(html.contains("/api/v1/monitors/{id}/pause"));
    // A way back, a table of contents by tag, and Markdown rendered.
    assert!(html.contains("<a href=\"/\">← Back to the dashboard</a>"));
    assert!(html.contains("<nav class=\"toc\""));
    assert!(
        html.contains("<a href=\"#tag-monitors\">monitors</a>"),
        "{html}"
    );
    assert!(html.contains("<h2 id=\"tag-monitors\">monitors</h2>"));
    assert!(
        html.contains("<a href=\"#get--api-v1-monitors\">GET <code>/api/v1/monitors</code></a>"),
        "{html}"
    );
    assert!(
        html.contains("<code>attention</code>"),
        "Markdown in a parameter's meaning"
    );
    assert!(
        !html.contains("<script"),
        "the docs page loads nothing from elsewhere"
    );
    // Unknown paths and methods are problems too.
    assert_eq!(
        api.get("/api/v1/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = api.delete("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn self_registration_is_closed_unless_turned_on_and_gives_a_tenant_of_ones_own() {
    let closed = Api::new().await;
    closed.setup("o@x.test").await;
    let r = closed
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "new@x.test", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    let owner = api.setup("o@x.test").await;
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "new@x.test", "password": "a-long-password", "tenant_name": "Mine"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(r.body["tenants"][0]["name"], "Mine");
    assert_eq!(r.body["tenants"][0]["role"], "owner");
    assert_eq!(r.body["user"]["platform_admin"], false);
    // Their own tenant: they do not see the first tenant's monitors, nor it theirs.
    api.post("/api/v1/monitors", Some(&owner), http_monitor("first"))
        .await;
    let list = api.get("/api/v1/monitors", Some(&token)).await;
    assert_eq!(list.body["items"], json!([]));
    let again = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "NEW@x.test", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let bad = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "x", "password": "short"}),
        )
        .await;
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["email", "password"]);
}

#[tokio::test]
async fn browser_sessions_use_an_httponly_cookie_and_need_the_csrf_token_to_change_things() {
    use axum::http::Method;
    let api = Api::new().await;
    api.setup("o@x.test").await;
    let r = api
        .post(
            "/api/v1/auth/session",
            None,
            json!({"email": "o@x.test", "password": "owner-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let set_cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(
        r.body.get("token").is_none(),
        "the token stays in the cookie"
    );
    let csrf = r.body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // Reading needs only the cookie.
    let read = api
        .request(
            Method::GET,
            "/api/v1/monitors",
            None,
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    // A change without the CSRF token (what another site could make a browser send): refused.
    let forged = api
        .request(
            Method::POST,
            "/api/v1/monitors",
            None,
            &[("cookie", &cookie)],
            Some(http_monitor("x")),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = api
        .request(
            Method::POST,
            "/api/v1/monitors",
            None,
            &[("cookie", &cookie), ("x-csrf-token", "00")],
            Some(http_monitor("x")),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let ok = api
        .request(
            Method::POST,
            "/api/v1/monitors",
            None,
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
            Some(http_monitor("x")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    // Logging out clears the cookie.
    let out = api.delete("/api/v1/auth/session", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // A wrong password sets no cookie.
    let bad = api
        .post(
            "/api/v1/auth/session",
            None,
            json!({"email": "o@x.test", "password": "nope-nope"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.header("set-cookie").is_none());
}

#[tokio::test]
async fn a_channel_test_reports_the_providers_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    // A webhook endpoint on loopback that answers 202 "queued".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 6\r\nconnection: close\r\n\r\nqueued")
                    .await;
            });
        }
    });
    let ch = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "ops", "kind": "webhook", "url": url}),
        )
        .await;
    let r = api
        .post(
            &format!("/api/v1/channels/{}/test", ch.id()),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["answer"], "HTTP 202: queued");
    // An endpoint that is not there: reported, not an error of the API.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "gone", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/")}),
        )
        .await;
    let r = api
        .post(
            &format!("/api/v1/channels/{}/test", gone.id()),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ok"], false);
    // Nothing is dead-lettered for this tenant yet.
    let dl = api.get("/api/v1/dead-letters", Some(&owner)).await;
    assert_eq!(dl.body["items"], json!([]));
}

#[tokio::test]
async fn dead_letters_are_listed_per_tenant_and_replayed() {
    use pingtower_bus::topics;
    use pingtower_notify::delivery::{DELIVERERS_GROUP, subscribe_options};
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    let (tenant, other) = api.two_tenants().await;
    let mut sub = api
        .bus
        .subscribe(
            topics::NOTIFICATIONS_SEND,
            DELIVERERS_GROUP,
            subscribe_options(),
        )
        .await
        .unwrap();
    for t in [tenant, other] {
        let n = pingtower_notify::Notification {
            delivery_id: pingtower_core::DeliveryId::new(),
            tenant_id: t,
            channel_id: pingtower_core::ResourceId::new(),
            event: pingtower_notify::Event::Down,
            monitor_id: pingtower_core::MonitorId::new(),
            monitor_name: format!("m-{t}"),
            status: pingtower_core::MonitorStatus::Down,
            reason: None,
            at: pingtower_engine::now(),
            incident_id: None,
            down_for_ms: None,
            idempotency_key: format!("k-{t}"),
            link: None,
        };
        pingtower_bus::publish_json(api.bus.as_ref(), topics::NOTIFICATIONS_SEND, &n)
            .await
            .unwrap();
        sub.next().await.unwrap().nack(false);
    }
    let dl = api.get("/api/v1/dead-letters", Some(&owner)).await;
    let items = dl.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only this tenant's: {}", dl.body);
    assert_eq!(items[0]["monitor_name"], format!("m-{tenant}"));
    let id = items[0]["id"].as_str().unwrap().to_owned();
    // The dashboard's delivery page lists it, with a Replay button for editors only.
    let page = api.get("/deliveries", Some(&owner)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().unwrap_or_default();
    assert!(html.contains(&format!("m-{tenant}")), "{html}");
    assert!(!html.contains(&format!("m-{other}")), "another tenant's");
    assert!(html.contains(&format!("POST /api/v1/dead-letters/{id}/replay")));
    assert!(html.contains("(deleted channel)"), "its channel is gone");
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let html = api.get("/deliveries", Some(&viewer)).await.body;
    let html = html.as_str().unwrap_or_default();
    assert!(html.contains(&format!("m-{tenant}")) && !html.contains("/replay"));
    let r = api
        .post(
            &format!("/api/v1/dead-letters/{id}/replay"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let again = sub.next().await.unwrap();
    assert!(String::from_utf8_lossy(&again.message.payload).contains(&tenant.to_string()));
    again.ack();
    assert_eq!(
        api.get("/api/v1/dead-letters", Some(&owner)).await.body["items"],
        json!([])
    );
    let page = api.get("/deliveries", Some(&owner)).await;
    assert!(
        page.body
            .as_str()
            .is_some_and(|h| h.contains("data-no-dead-letters"))
    );
    // Another tenant's dead letter cannot be replayed from here.
    let theirs = api
        .bus
        .dead_letters(topics::NOTIFICATIONS_SEND, DELIVERERS_GROUP)
        .await
        .unwrap()[0]
        .message
        .id;
    let r = api
        .post(
            &format!("/api/v1/dead-letters/{theirs}/replay"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn configuration_lists_page_with_a_cursor_too() {
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    for i in 0..3 {
        let r = api
            .post(
                "/api/v1/channels",
                Some(&owner),
                json!({"name": format!("c{i}"), "kind": "webhook", "url": "http://127.0.0.1:9/"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut path = "/api/v1/channels?limit=2".to_owned();
    loop {
        let r = api.get(&path, Some(&owner)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body["items"].as_array().unwrap().len() <= 2);
        names.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/channels?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(names, ["c0", "c1", "c2"]);
    assert_eq!(
        api.get("/api/v1/users?limit=0", Some(&owner)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

/// The live event stream, opened with a token (a 200 with the stream).
async fn open_stream(api: &Api, token: &str) -> axum::response::Response {
    use tower::ServiceExt;
    let req = axum::http::Request::get("/api/v1/events/stream")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res
}

#[tokio::test]
async fn the_live_stream_carries_the_callers_tenant_only() {
    use http_body_util::BodyExt;
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    let (mine, other) = api.two_tenants().await;
    let res = open_stream(&api, &owner).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    // Give the hub its subscription, then publish one change for each tenant.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for (tenant, name) in [(other, "theirs"), (mine, "mine")] {
        pingtower_bus::publish_json(
            api.bus.as_ref(),
            pingtower_bus::topics::MONITOR_STATE,
            &json!({"tenant_id": tenant, "monitor_id": pingtower_core::MonitorId::new(), "from": "up", "to": "down", "reason": name}),
        )
        .await
        .unwrap();
    }
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: state\n"), "{text}");
    assert!(text.contains("\"reason\":\"mine\""), "{text}");
    assert!(!text.contains("theirs"), "{text}");
    // Without credentials: refused.
    let r = api.get("/api/v1/events/stream", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn incident_and_monitor_changes_reach_the_changed_tenants_stream_only() {
    use http_body_util::BodyExt;
    let api = Api::new().await;
    let owner = api.setup("o@x.test").await;
    let (mine, other) = api.two_tenants().await;
    let res = open_stream(&api, &owner).await;
    let mut body = res.into_body();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (their_incident, my_incident) = (
        pingtower_core::IncidentId::new(),
        pingtower_core::IncidentId::new(),
    );
    let (their_monitor, my_monitor) = (
        pingtower_core::MonitorId::new(),
        pingtower_core::MonitorId::new(),
    );
    for (tenant, incident, monitor) in [
        (other, their_incident, their_monitor),
        (mine, my_incident, my_monitor),
    ] {
        pingtower_bus::publish_json(
            api.bus.as_ref(),
            pingtower_bus::topics::LIVE_CHANGES,
            &json!({"tenant_id": tenant, "incident_id": incident}),
        )
        .await
        .unwrap();
        pingtower_bus::publish_json(
            api.bus.as_ref(),
            pingtower_bus::topics::CONFIG_CHANGED,
            &json!({"tenant_id": tenant, "monitor_id": monitor}),
        )
        .await
        .unwrap();
    }
    // Both of mine arrive (in whatever frames), and nothing of the other tenant's.
    let mut text = String::new();
    while !(text.contains(&my_incident.to_string()) && text.contains(&my_monitor.to_string())) {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .unwrap_or_else(|_| panic!("no more events after {text}"))
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
    }
    assert!(
        text.contains("event: incident\n") && text.contains("event: monitor\n"),
        "{text}"
    );
    assert!(
        !text.contains(&their_incident.to_string()) && !text.contains(&their_monitor.to_string()),
        "{text}"
    );
}
