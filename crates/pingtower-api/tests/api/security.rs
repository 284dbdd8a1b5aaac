//! The findings of the attack in issue 15, each kept closed by a test that failed before its fix.

use crate::harness::*;
use axum::http::StatusCode;
use serde_json::json;

/// A server on `ip` answering every request with a body that must not leak.
async fn secret_server(ip: &str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "instance-secret-token" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_channel_test_does_not_reach_a_blocked_network_or_show_what_it_read() {
    // 127.0.0.1 stands in for a cloud metadata service; 127.0.0.2 is an allowed server that
    // redirects there.
    let api = Api::with_blocklist("127.0.0.1/32, ::1/128").await;
    let owner = api.setup("owner@x.test").await;
    let secret = secret_server("127.0.0.1").await;
    let redirector = {
        let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let to = format!("http://{secret}/latest");
        let app = axum::Router::new().fallback(move || {
            let to = to.clone();
            async move { (StatusCode::FOUND, [("location", to)], "") }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    };
    for (name, channel) in [
        (
            "direct",
            json!({"kind": "webhook", "url": format!("http://{secret}/")}),
        ),
        (
            "by name",
            json!({"kind": "webhook", "url": format!("http://localhost:{}/", secret.port())}),
        ),
        (
            "redirect",
            json!({"kind": "webhook", "url": format!("http://{redirector}/")}),
        ),
        (
            "slack",
            json!({"kind": "slack", "url": format!("http://{secret}/services/x")}),
        ),
        (
            "pagerduty",
            json!({"kind": "pagerduty", "routing_key": "k", "base_url": format!("http://{secret}")}),
        ),
    ] {
        let mut body = channel.clone();
        body["name"] = json!(name);
        let ch = api.post("/api/v1/channels", Some(&owner), body).await;
        assert_eq!(ch.status, StatusCode::CREATED, "{}", ch.body);
        let r = api
            .post(
                &format!("/api/v1/channels/{}/test", ch.id()),
                Some(&owner),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
        assert_eq!(r.body["ok"], false, "{name}: {}", r.body);
        let answer = r.body["answer"].as_str().unwrap();
        assert!(
            !answer.contains("instance-secret-token"),
            "{name}: {answer}"
        );
        assert!(
            answer.contains("blocked: ") || answer.contains("do not follow redirects"),
            "{name}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_null_anywhere_in_a_body_is_invalid_input_never_a_500() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let member = api.member(&owner, "m@x.test", "viewer").await;
    drop(member);
    let me = api.get("/api/v1/auth/me", Some(&owner)).await;
    let members = api.get("/api/v1/users", Some(&owner)).await;
    let member_id = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "m@x.test")
        .map(|m| {
            m["user_id"]
                .as_str()
                .or(m["id"].as_str())
                .unwrap()
                .to_owned()
        })
        .unwrap();
    drop(me);
    // The three seen in the attack, by name.
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/users/{member_id}"),
            json!({"role": null}),
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            json!({"email": "n@x.test", "role": null, "password": "long-enough-1"}),
        ),
        (
            "POST",
            "/api/v1/api-keys".to_owned(),
            json!({"name": "k", "role": null}),
        ),
    ] {
        let method = method.parse().unwrap();
        let r = api
            .request(method, &path, Some(&owner), &[], Some(body))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.body
        );
        assert_eq!(r.error_fields(), ["role"], "{path}");
    }
    // Their siblings: every field of every create body, one at a time set to null.
    let channel = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "c0", "kind": "webhook", "url": "http://127.0.0.1:9/"}),
        )
        .await
        .id();
    let monitor = api
        .post("/api/v1/monitors", Some(&owner), http_monitor("m0"))
        .await
        .id();
    let bodies = [
        ("/api/v1/monitors", http_monitor("m1")),
        (
            "/api/v1/channels",
            json!({"name": "c1", "kind": "webhook", "url": "http://127.0.0.1:9/", "headers": {"x": "y"}}),
        ),
        (
            "/api/v1/rules",
            json!({"name": "r1", "monitors": "all", "events": ["down"], "channels": [channel], "after_failures": 2}),
        ),
        (
            "/api/v1/maintenance",
            json!({"name": "w1", "monitors": [monitor], "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T02:00:00Z"}),
        ),
        (
            "/api/v1/status-pages",
            json!({"name": "p1", "slug": "p-one", "monitors": [monitor], "description": "d"}),
        ),
        (
            "/api/v1/api-keys",
            json!({"name": "k1", "role": "viewer", "expires_at": "2031-01-01T00:00:00Z"}),
        ),
        (
            "/api/v1/users",
            json!({"email": "x1@x.test", "role": "viewer", "display_name": "X"}),
        ),
        ("/api/v1/tenants", json!({"name": "T1"})),
    ];
    for (path, body) in bodies {
        for field in body.as_object().unwrap().keys() {
            let mut b = body.clone();
            b[field] = serde_json::Value::Null;
            let r = api.post(path, Some(&owner), b).await;
            assert!(
                r.status.is_client_error() || r.status.is_success(),
                "{path} with {field}: null gave {}: {}",
                r.status,
                r.body
            );
        }
    }
}

/// The user id of the member with `email` in a `GET /users` answer.
fn member_id(members: &Resp, email: &str) -> String {
    members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email)
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .unwrap()
}

#[tokio::test]
async fn an_api_key_acts_with_at_most_its_creators_current_role() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let admin = api.member(&owner, "admin@x.test", "admin").await;
    let k1 = api
        .post(
            "/api/v1/api-keys",
            Some(&admin),
            json!({"name": "k1", "role": "admin"}),
        )
        .await;
    assert_eq!(k1.status, StatusCode::CREATED, "{}", k1.body);
    let k1 = k1.body["key"].as_str().unwrap().to_owned();
    // A key made by that key belongs to the same person.
    let k2 = api
        .post(
            "/api/v1/api-keys",
            Some(&k1),
            json!({"name": "k2", "role": "admin"}),
        )
        .await;
    assert_eq!(k2.status, StatusCode::CREATED, "{}", k2.body);
    let k2 = k2.body["key"].as_str().unwrap().to_owned();
    // Demoted to viewer: both keys act as viewers at most.
    let admin_id = set_role(&api, &owner, "admin@x.test", "viewer").await;
    for key in [&k1, &k2] {
        let r = api
            .post(
                "/api/v1/api-keys",
                Some(key),
                json!({"name": "k3", "role": "viewer"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api
            .post(
                "/api/v1/users",
                Some(key),
                json!({"email": "evil@x.test", "role": "viewer"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(
            api.get("/api/v1/monitors", Some(key)).await.status,
            StatusCode::OK
        );
    }
    // Removed: the keys stop working.
    let r = api
        .delete(&format!("/api/v1/users/{admin_id}"), Some(&owner))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    for key in [&k1, &k2] {
        let r = api.get("/api/v1/monitors", Some(key)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
}

#[tokio::test]
async fn parallel_logins_cannot_race_past_the_limit() {
    let api = std::sync::Arc::new(Api::new().await);
    api.setup("owner@x.test").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let password = if i == 20 {
                "owner-password"
            } else {
                "wrong-password"
            };
            api.login("owner@x.test", password).await.status
        }));
    }
    let mut verified = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(
            [
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS
            ]
            .contains(&status),
            "{status}"
        );
        if status != StatusCode::TOO_MANY_REQUESTS {
            verified += 1;
        }
    }
    // Five attempts per account and source in 15 minutes: no more were verified.
    assert!(verified <= 5, "{verified} attempts were verified");
}

#[tokio::test]
async fn moving_a_channel_needs_its_credentials_given_again() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let editor = api.member(&owner, "ed@x.test", "editor").await;
    let pd = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "pd", "kind": "pagerduty", "routing_key": "R0UT1NG", "base_url": "http://127.0.0.1:8"}),
        )
        .await;
    assert_eq!(pd.status, StatusCode::CREATED, "{}", pd.body);
    let mail = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "mail", "kind": "email", "to": ["ops@x.test"], "smtp_host": "smtp.x.test", "username": "u", "password": "p4ss"}),
        )
        .await;
    assert_eq!(mail.status, StatusCode::CREATED, "{}", mail.body);
    for (id, change, secret) in [
        (
            pd.id(),
            json!({"base_url": "http://127.0.0.1:9"}),
            "routing_key",
        ),
        (mail.id(), json!({"smtp_host": "127.0.0.1"}), "password"),
        (mail.id(), json!({"smtp_tls": "none"}), "password"),
    ] {
        let path = format!("/api/v1/channels/{id}");
        let r = api.patch(&path, Some(&editor), change.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{change}: {}",
            r.body
        );
        assert_eq!(r.error_fields(), [secret], "{change}");
        // Nothing changed.
        let now = api.get(&path, Some(&owner)).await;
        for (k, v) in change.as_object().unwrap() {
            assert_ne!(&now.body[k], v, "{k} changed");
        }
        // Given again, the change is taken.
        let mut with = change.clone();
        with[secret] = json!("new-secret");
        let r = api.patch(&path, Some(&editor), with).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Changing something else keeps the credentials without giving them.
    let r = api
        .patch(
            &format!("/api/v1/channels/{}", pd.id()),
            Some(&editor),
            json!({"severity": "warning"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The same through `apply`.
    let r = api
        .post(
            "/api/v1/config/apply",
            Some(&editor),
            json!({"channels": [{"name": "pd", "kind": "pagerduty", "base_url": "http://127.0.0.2:9", "severity": "warning"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.error_fields().iter().any(|f| f.ends_with("routing_key")),
        "{:?}",
        r.error_fields()
    );
}

#[tokio::test]
async fn viewers_never_read_monitor_credentials_or_push_tokens() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let editor = api.member(&owner, "e@x.test", "editor").await;
    let mut body = http_monitor("private api");
    body["bearer_token"] = json!("t0k3n-secret");
    body["basic_auth_user"] = json!("bob");
    body["basic_auth_password"] = json!("b4sic-secret");
    body["headers"] = json!({"X-Api-Key": "h3ader-secret"});
    body["proxy"] = json!("http://px:pr0xy-secret@127.0.0.1:3128");
    let created = api.post("/api/v1/monitors", Some(&editor), body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    let beat = api
        .post(
            "/api/v1/monitors",
            Some(&owner),
            json!({"name": "cron", "kind": "heartbeat", "interval_seconds": 60}),
        )
        .await;
    assert_eq!(beat.status, StatusCode::CREATED, "{}", beat.body);
    assert!(beat.body["push_token"].is_string(), "the creator sees it");
    let secrets = [
        "t0k3n-secret",
        "b4sic-secret",
        "h3ader-secret",
        "pr0xy-secret",
    ];
    let no_secret = |what: &str, text: String| {
        for s in secrets {
            assert!(!text.contains(s), "{what} shows {s}: {text}");
        }
    };
    no_secret("the create answer", created.body.to_string());
    for token in [&viewer, &editor, &owner] {
        let one = api
            .get(&format!("/api/v1/monitors/{id}"), Some(token))
            .await;
        no_secret("a monitor", one.body.to_string());
        assert_eq!(
            one.body["secrets_set"],
            json!(["basic_auth_password", "bearer_token", "headers", "proxy"])
        );
        assert_eq!(one.body["basic_auth_user"], "bob");
        no_secret(
            "the list",
            api.get("/api/v1/monitors", Some(token))
                .await
                .body
                .to_string(),
        );
        no_secret(
            "the export",
            api.get("/api/v1/config", Some(token))
                .await
                .body
                .to_string(),
        );
    }
    // A webhook channel's custom headers are credentials too.
    let hook = api
        .post(
            "/api/v1/channels",
            Some(&owner),
            json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/", "headers": {"Authorization": "Bearer h3ader-secret"}}),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    let seen = api
        .get(&format!("/api/v1/channels/{}", hook.id()), Some(&viewer))
        .await;
    no_secret("a channel", seen.body.to_string());
    assert_eq!(seen.body["secrets_set"], json!(["headers"]));
    no_secret(
        "the export",
        api.get("/api/v1/config", Some(&viewer))
            .await
            .body
            .to_string(),
    );
    // Push tokens: editors and above only.
    let list = api
        .get("/api/v1/monitors", Some(&viewer))
        .await
        .body
        .to_string();
    assert!(
        !list.contains("push_token") && !list.contains("/api/v1/push/"),
        "{list}"
    );
    let one = api
        .get(&format!("/api/v1/monitors/{}", beat.id()), Some(&viewer))
        .await;
    assert!(one.body.get("push_token").is_none() && one.body.get("push_url").is_none());
    let one = api
        .get(&format!("/api/v1/monitors/{}", beat.id()), Some(&editor))
        .await;
    assert!(one.body["push_token"].is_string());
    // Sealed at rest: the stored settings do not hold them.
    let stored = api.monitor(&id).await;
    no_secret(
        "the stored row",
        serde_json::to_string(&stored.settings).unwrap(),
    );
    // A change elsewhere keeps them, and the worker opens them to run the check.
    let r = api
        .patch(
            &format!("/api/v1/monitors/{id}"),
            Some(&editor),
            json!({"url": "http://127.0.0.1:9/other-path"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let keys = pingtower_engine::secrets::Keys::new(&[9u8; 32]).unwrap();
    let prepared = pingtower_engine::worker::Prepared::new(api.monitor(&id).await, Some(&keys));
    let Ok(pingtower_core::check::CheckSpec {
        kind: pingtower_core::check::CheckKindSpec::Http(h),
        ..
    }) = prepared.spec.as_ref()
    else {
        panic!("{:?}", prepared.spec.as_ref().as_ref().err());
    };
    assert_eq!(h.bearer_token.as_deref(), Some("t0k3n-secret"));
    assert_eq!(
        h.headers,
        [("X-Api-Key".to_owned(), "h3ader-secret".to_owned())]
    );
    // Sending them to another server needs them given again.
    let r = api
        .patch(
            &format!("/api/v1/monitors/{id}"),
            Some(&editor),
            json!({"url": "http://127.0.0.2:9/"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["basic_auth_password", "bearer_token", "headers", "proxy"]
    );
    // Nor through a proxy of one's own, or with TLS verification turned off.
    for change in [
        json!({"proxy": "http://127.0.0.2:3128"}),
        json!({"tls_verify": false}),
    ] {
        let r = api
            .patch(
                &format!("/api/v1/monitors/{id}"),
                Some(&editor),
                change.clone(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{change}: {}",
            r.body
        );
    }
    // Credentials stored before sealing (plain in the settings) are not shown either.
    let tenant = api.store.list_tenants().await.unwrap()[0].id;
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), json!("http://127.0.0.1:9/"));
    settings.insert("bearer_token".into(), json!("t0k3n-secret"));
    let legacy = api
        .store
        .create_monitor(
            tenant,
            &pingtower_core::NewMonitor {
                name: "legacy".into(),
                kind: pingtower_core::MonitorKind::Http,
                settings,
                interval_ms: 60_000,
                timeout_ms: 10_000,
                down_after: 1,
                up_after: 1,
                tags: vec![],
                enabled: true,
                push_token: None,
            },
            pingtower_engine::now(),
        )
        .await
        .unwrap();
    let seen = api
        .get(&format!("/api/v1/monitors/{}", legacy.id), Some(&viewer))
        .await;
    no_secret("an old monitor", seen.body.to_string());
    assert_eq!(seen.body["secrets_set"], json!(["bearer_token"]));
    no_secret(
        "the export",
        api.get("/api/v1/config", Some(&viewer))
            .await
            .body
            .to_string(),
    );
    let r = api
        .patch(
            &format!("/api/v1/monitors/{}", legacy.id),
            Some(&editor),
            json!({"url": "http://127.0.0.2:9/"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["bearer_token"], "{}", r.body);
    // A viewer cannot pause it to learn anything either; an editor can.
    let r = api
        .post(
            &format!("/api/v1/monitors/{id}/pause"),
            Some(&viewer),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .post(
            &format!("/api/v1/monitors/{id}/pause"),
            Some(&editor),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    no_secret("a pause", r.body.to_string());
}

#[tokio::test]
async fn logging_out_ends_the_token_and_a_password_change_ends_the_other_sessions() {
    let api = Api::new().await;
    let first = api.setup("owner@x.test").await;
    let second = api.login("owner@x.test", "owner-password").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let third = api.login("owner@x.test", "owner-password").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&first)).await.status,
        StatusCode::OK
    );
    // Logging out ends that token at once, and only that one.
    let r = api.delete("/api/v1/auth/session", Some(&first)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.get("/api/v1/auth/me", Some(&first)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&second)).await.status,
        StatusCode::OK
    );
    // A password change needs the current password and ends every other session.
    let r = api
        .post(
            "/api/v1/auth/password",
            Some(&second),
            json!({"current_password": "wrong-password", "new_password": "new-password-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = api
        .post(
            "/api/v1/auth/password",
            Some(&second),
            json!({"current_password": "owner-password", "new_password": "short"}),
        )
        .await;
    assert_eq!(r.error_fields(), ["new_password"]);
    let r = api
        .post(
            "/api/v1/auth/password",
            Some(&second),
            json!({"current_password": "owner-password", "new_password": "new-password-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&second)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&third)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("owner@x.test", "owner-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let fourth = api.login("owner@x.test", "new-password-1").await;
    assert_eq!(fourth.status, StatusCode::OK);
    let fourth = fourth.body["token"].as_str().unwrap().to_owned();
    // "End my other sessions".
    let r = api.delete("/api/v1/auth/sessions", Some(&second)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["ended"], 1);
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&fourth)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&second)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cookies_are_secure_behind_https_and_pages_cannot_be_framed() {
    let api = Api::with_auth(|mut a| {
        a.secure_cookies = true;
        a
    })
    .await;
    api.setup("owner@x.test").await;
    let r = api
        .post(
            "/api/v1/auth/session",
            None,
            json!({"email": "owner@x.test", "password": "owner-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    for path in ["/login", "/api/v1/docs", "/api/v1/monitors"] {
        let r = api.get(path, None).await;
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}

fn token_of(r: &Resp) -> String {
    r.body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_account_registered_in_advance_cannot_take_over_a_membership() {
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    let owner = api.setup("owner@company.test").await;
    let company = api.get("/api/v1/auth/me", Some(&owner)).await.body["tenants"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The attacker registers the new hire's email before the company adds it.
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "newhire@company.test", "password": "attacker-pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let attacker = token_of(&r);
    // The owner adds the email with a password of its own: no account is attached; an
    // invitation is made instead.
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "newhire@company.test", "role": "editor", "password": "company-pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let invite = r.body["token"].as_str().unwrap().to_owned();
    assert_eq!(r.body["invite_path"], format!("/invite/{invite}"));
    for password in ["attacker-pass", "company-pass"] {
        let r = api.login("newhire@company.test", password).await;
        if r.status == StatusCode::OK {
            let t = token_of(&r);
            let seen = api.get_in("/api/v1/monitors", &t, &company).await;
            assert_eq!(
                seen.status,
                StatusCode::FORBIDDEN,
                "{password} reached the company"
            );
        }
    }
    // Without the link, the attacker's account cannot accept.
    let r = api
        .post(
            "/api/v1/invitations/accept",
            Some(&attacker),
            json!({"token": "guessed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // Nor can the link, used without logging in, set the existing account's password (whoever
    // made the invitation holds the link too).
    let page = api.get(&format!("/invite/{invite}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": invite, "password": "newhire-pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        api.login("newhire@company.test", "newhire-pass")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("newhire@company.test", "attacker-pass")
            .await
            .status,
        StatusCode::OK
    );
    let members = api
        .get("/api/v1/users", Some(&owner))
        .await
        .body
        .to_string();
    assert!(!members.contains("newhire@company.test"), "{members}");
}

#[tokio::test]
async fn an_inviter_cannot_take_over_the_account_it_invites() {
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    api.setup("root@x.test").await;
    let victim = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "victim@x.test", "password": "victim-pass"}),
        )
        .await;
    assert_eq!(victim.status, StatusCode::CREATED, "{}", victim.body);
    let hostile = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "evil@y.test", "password": "evil-password"}),
        )
        .await;
    let hostile = token_of(&hostile);
    let r = api
        .post(
            "/api/v1/users",
            Some(&hostile),
            json!({"email": "victim@x.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": r.body["token"], "password": "stolen-pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        api.login("victim@x.test", "stolen-pass").await.status,
        StatusCode::UNAUTHORIZED
    );
    let still = token_of(&victim);
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&still)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_invitation_grants_no_more_than_its_sender_still_may() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let admin = api.member(&owner, "admin@x.test", "admin").await;
    let r = api
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"email": "friend@x.test", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let invite = r.body["token"].as_str().unwrap().to_owned();
    // The admin who sent it is demoted before it is accepted.
    set_role(&api, &owner, "admin@x.test", "viewer").await;
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": invite, "password": "friend-pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.body);
    assert_eq!(
        api.login("friend@x.test", "friend-pass").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_existing_account_joins_only_by_accepting_while_logged_in() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    // Someone with an account (made by an admin in another tenant).
    let r = api
        .post("/api/v1/tenants", Some(&owner), json!({"name": "Other"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let other = r.id();
    let in_other = api
        .request(
            axum::http::Method::POST,
            "/api/v1/users",
            Some(&owner),
            &[("x-tenant-id", other.as_str())],
            Some(json!({"email": "ann@x.test", "role": "viewer", "password": "ann-password"})),
        )
        .await;
    assert_eq!(in_other.status, StatusCode::CREATED, "{}", in_other.body);
    // Added to this tenant: an invitation, not a membership.
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "ann@x.test", "role": "editor"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let invite = r.body["token"].as_str().unwrap().to_owned();
    let members = api
        .get("/api/v1/users", Some(&owner))
        .await
        .body
        .to_string();
    assert!(!members.contains("ann@x.test"), "{members}");
    // The link alone cannot set a proven account's password.
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": invite, "password": "taken-over"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        api.login("ann@x.test", "taken-over").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Logged in as ann, accepting needs nothing more.
    let ann = token_of(&api.login("ann@x.test", "ann-password").await);
    let r = api
        .post(
            "/api/v1/invitations/accept",
            Some(&ann),
            json!({"token": invite}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let members = api
        .get("/api/v1/users", Some(&owner))
        .await
        .body
        .to_string();
    assert!(members.contains("ann@x.test"), "{members}");
    // A new email without a password: an invitation whose link makes the account.
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "bo@x.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": r.body["token"], "password": "bo-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        api.login("bo@x.test", "bo-password").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_live_stream_ends_when_its_member_is_removed_or_its_key_revoked() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let key = api
        .post(
            "/api/v1/api-keys",
            Some(&owner),
            json!({"name": "live", "role": "viewer"}),
        )
        .await;
    let (key_id, key) = (key.id(), key.body["key"].as_str().unwrap().to_owned());
    let open = |token: String| {
        let router = api.router.clone();
        async move {
            let req = axum::http::Request::get("/api/v1/events/stream")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.into_body()
        }
    };
    let mut by_member = open(viewer.clone()).await;
    let mut by_key = open(key.clone()).await;
    let viewer_id = member_id(&api.get("/api/v1/users", Some(&owner)).await, "v@x.test");
    assert!(
        api.delete(&format!("/api/v1/users/{viewer_id}"), Some(&owner))
            .await
            .status
            .is_success()
    );
    assert!(
        api.delete(&format!("/api/v1/api-keys/{key_id}"), Some(&owner))
            .await
            .status
            .is_success()
    );
    for (who, body) in [
        ("the removed member", &mut by_member),
        ("the revoked key", &mut by_key),
    ] {
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match body.frame().await {
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => {} // keep-alives
                }
            }
        })
        .await;
        assert!(end.is_ok(), "{who}'s stream is still open");
    }
}

#[tokio::test]
async fn an_operator_limits_what_a_tenant_may_have() {
    let api = Api::with_quotas(pingtower_api::Quotas {
        max_monitors: Some(2),
        min_interval_ms: 30_000,
    })
    .await;
    let owner = api.setup("owner@x.test").await;
    let mut fast = http_monitor("fast");
    fast["interval_seconds"] = json!(10);
    let r = api.post("/api/v1/monitors", Some(&owner), fast).await;
    assert_eq!(r.error_fields(), ["interval_seconds"], "{}", r.body);
    for name in ["one", "two"] {
        let r = api
            .post("/api/v1/monitors", Some(&owner), http_monitor(name))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let r = api
        .post("/api/v1/monitors", Some(&owner), http_monitor("three"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["type"], "/problems/quota-exceeded");
    // Through apply too: nothing is written.
    let r = api
        .post(
            "/api/v1/config/apply",
            Some(&owner),
            json!({"monitors": [http_monitor("one"), http_monitor("two"), http_monitor("three")]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let list = api.get("/api/v1/monitors", Some(&owner)).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    // Limits on what one monitor holds.
    let mut big = http_monitor("big");
    big["url"] = json!(format!("http://127.0.0.1:9/{}", "x".repeat(3000)));
    big["tags"] = json!((0..60).map(|i| format!("t{i}")).collect::<Vec<_>>());
    let r = api
        .patch(
            &format!(
                "/api/v1/monitors/{}",
                list.body["items"][0]["id"].as_str().unwrap()
            ),
            Some(&owner),
            json!({"url": big["url"], "tags": big["tags"]}),
        )
        .await;
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["tags", "url"], "{}", r.body);
}

#[tokio::test]
async fn pending_invitations_are_listed_and_can_be_withdrawn() {
    let api = Api::new().await;
    let owner = api.setup("owner@x.test").await;
    let viewer = api.member(&owner, "v@x.test", "viewer").await;
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "sent@x.test", "role": "editor"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let (id, token) = (r.id(), r.body["token"].as_str().unwrap().to_owned());
    let list = api.get("/api/v1/invitations", Some(&owner)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["items"][0]["email"], "sent@x.test");
    assert!(
        !list.body.to_string().contains(&token),
        "links are shown once only"
    );
    assert_eq!(
        api.get("/api/v1/invitations", Some(&viewer)).await.status,
        StatusCode::FORBIDDEN
    );
    let r = api
        .delete(&format!("/api/v1/invitations/{id}"), Some(&viewer))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .delete(&format!("/api/v1/invitations/{id}"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": token, "password": "sent-password"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a withdrawn link does not work"
    );
    let list = api.get("/api/v1/invitations", Some(&owner)).await;
    assert_eq!(list.body["items"], json!([]));
}

/// Changes the role of the member with `email` as `owner`; answers the member's id.
async fn set_role(api: &Api, owner: &str, email: &str, role: &str) -> String {
    let id = member_id(&api.get("/api/v1/users", Some(owner)).await, email);
    let r = api
        .patch(
            &format!("/api/v1/users/{id}"),
            Some(owner),
            json!({"role": role}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    id
}

/// The installation's mail through a real SMTP server on loopback; links point at a public
/// URL that is not the address requests come to.
fn account_mail(server: &crate::smtp_server::Smtp) -> pingtower_api::account_mail::AccountMail {
    let mailer = pingtower_notify::mail::Mailer::new(
        &format!("smtp://127.0.0.1:{}", server.port),
        "PingTower <pingtower@x.test>",
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    pingtower_api::account_mail::AccountMail {
        mailer,
        public_url: "https://pingtower.example.test".into(),
    }
}

/// The next `n` messages the server received, decoded from quoted-printable line wrapping.
fn messages(server: &crate::smtp_server::Smtp, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| server.message().replace("=\n", "").replace("=3D", "="))
        .collect()
}

/// The link in `message` that starts with `prefix`, up to the end of its line.
fn link_in(message: &str, prefix: &str) -> String {
    let start = message
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in {message}"));
    message[start..].lines().next().unwrap().trim().to_owned()
}

#[tokio::test]
async fn registering_with_the_installations_mail_tells_nothing_and_proves_the_email() {
    let server = crate::smtp_server::smtp(&[]);
    let mail = account_mail(&server);
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a.mail = Some(mail);
        a
    })
    .await;
    api.setup("root@x.test").await;
    // The same answer for an email with an account and one without.
    let taken = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "root@x.test", "password": "guess-password"}),
        )
        .await;
    let free = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "new@x.test", "password": "new-password", "tenant_name": "New Co"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::ACCEPTED, "{}", taken.body);
    assert_eq!(free.status, StatusCode::ACCEPTED, "{}", free.body);
    assert_eq!(taken.body["detail"], free.body["detail"]);
    let keys = |r: &Resp| {
        let mut k: Vec<String> = r.body.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&taken), keys(&free));
    assert!(free.body.get("token").is_none(), "{}", free.body);
    // Nothing exists before the link is used.
    assert_eq!(
        api.login("new@x.test", "new-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mails = messages(&server, 2);
    let to_new = mails.iter().find(|m| m.contains("new@x.test")).unwrap();
    let to_root = mails.iter().find(|m| m.contains("root@x.test")).unwrap();
    assert!(to_root.contains("already has an account"), "{to_root}");
    assert!(!to_root.contains("/confirm/"), "{to_root}");
    // The link is on the public URL, whatever Host the request came with.
    let link = link_in(to_new, "https://pingtower.example.test/confirm/");
    let token = link.rsplit('/').next().unwrap().to_owned();
    let page = api.get(&format!("/confirm/{token}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    // Someone who did not choose the password (the mailbox's owner, when a stranger
    // registered it) cannot make the account with the link.
    let r = api
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({"token": token, "password": "another-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // Its last character changed (to one it is not: a token ending in `A` stayed valid when
    // this always wrote `A`, one run in 64).
    let swap = if token.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{swap}", &token[..token.len() - 1]);
    assert_ne!(forged, token);
    let r = api
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({"token": forged, "password": "new-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = api
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({"token": token, "password": "new-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["tenants"][0]["name"], "New Co");
    assert_eq!(r.body["tenants"][0]["role"], "owner");
    assert_eq!(
        api.login("new@x.test", "new-password").await.status,
        StatusCode::OK
    );
    // A link makes one account.
    let r = api
        .post(
            "/api/v1/auth/register/confirm",
            None,
            json!({"token": token, "password": "new-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // The account that existed is untouched.
    assert_eq!(
        api.login("root@x.test", "guess-password").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_tenant_admin_invites_and_cannot_tell_whether_an_email_has_an_account() {
    let api = Api::with_auth(|mut a| {
        a.registration_open = true;
        a
    })
    .await;
    let root = api.setup("root@x.test").await;
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "hostile@y.test", "password": "hostile-password"}),
        )
        .await;
    let hostile = token_of(&r);
    let mut answers = Vec::new();
    for email in ["root@x.test", "nobody@x.test"] {
        // A password is refused for every email alike.
        let r = api
            .post(
                "/api/v1/users",
                Some(&hostile),
                json!({"email": email, "role": "viewer", "password": "chosen-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(r.error_fields(), ["password"]);
        let r = api
            .post(
                "/api/v1/users",
                Some(&hostile),
                json!({"email": email, "role": "viewer"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{email}: {}", r.body);
        let mut keys: Vec<String> = r.body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        answers.push(keys);
    }
    assert_eq!(answers[0], answers[1]);
    // A platform administrator still makes accounts with a password.
    let r = api
        .post(
            "/api/v1/users",
            Some(&root),
            json!({"email": "made@x.test", "role": "viewer", "password": "made-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn with_the_installations_mail_an_invitation_goes_only_to_its_email() {
    let server = crate::smtp_server::smtp(&[]);
    let mail = account_mail(&server);
    let api = Api::with_auth(|mut a| {
        a.mail = Some(mail);
        a
    })
    .await;
    let owner = api.setup("owner@x.test").await;
    let r = api
        .post(
            "/api/v1/users",
            Some(&owner),
            json!({"email": "invitee@x.test", "role": "editor"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["emailed"], true);
    assert!(r.body.get("token").is_none() && r.body.get("invite_path").is_none());
    let mail = messages(&server, 1).remove(0);
    assert!(mail.contains("invitee@x.test"), "{mail}");
    let link = link_in(&mail, "https://pingtower.example.test/invite/");
    let token = link.rsplit('/').next().unwrap();
    let r = api
        .post(
            "/api/v1/invitations/accept",
            None,
            json!({"token": token, "password": "invitee-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["tenants"][0]["role"], "editor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_requests_cannot_both_take_the_last_place_in_a_quota() {
    let api = Api::with_quotas(pingtower_api::Quotas {
        max_monitors: Some(3),
        min_interval_ms: 30_000,
    })
    .await;
    let owner = api.setup("owner@x.test").await;
    let made = futures::future::join_all((0..12).map(|i| {
        let (api, owner) = (&api, &owner);
        async move {
            api.post(
                "/api/v1/monitors",
                Some(owner),
                http_monitor(&format!("m{i}")),
            )
            .await
            .status
        }
    }))
    .await;
    let created = made.iter().filter(|s| **s == StatusCode::CREATED).count();
    assert_eq!(created, 3, "{made:?}");
    assert!(
        made.iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::FORBIDDEN)
    );
}

/// Sets a new password with a reset link's token.
async fn use_reset(api: &Api, token: &str, password: &str) -> Resp {
    api.post(
        "/api/v1/auth/password-reset/confirm",
        None,
        json!({"token": token, "new_password": password}),
    )
    .await
}

// Several threads: the mail leaves from a task of its own while the test waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_from_a_mailed_link_once_and_ends_every_session() {
    let server = crate::smtp_server::smtp(&[]);
    let mail = account_mail(&server);
    let api = Api::with_auth(|mut a| {
        a.mail = Some(mail);
        a
    })
    .await;
    let root = api.setup("root@x.test").await;
    let member = api.member(&root, "m@x.test", "editor").await;
    // The same answer whether the email has an account or not; one mail, to the account.
    let known = api
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "m@x.test"}),
        )
        .await;
    let unknown = api
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "nobody@x.test"}),
        )
        .await;
    assert_eq!(known.status, StatusCode::ACCEPTED, "{}", known.body);
    assert_eq!(unknown.status, StatusCode::ACCEPTED);
    assert_eq!(known.body, unknown.body);
    let bad = api
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "not an email"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error_fields(), ["email"]);
    let mails = messages(&server, 1);
    assert!(mails[0].contains("m@x.test"), "{}", mails[0]);
    let link = link_in(&mails[0], "https://pingtower.example.test/reset/");
    let token = link.rsplit('/').next().unwrap().to_owned();
    let page = api.get(&format!("/reset/{token}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .as_str()
            .unwrap()
            .contains("password-reset/confirm")
    );
    assert!(
        api.get("/reset/forged", None)
            .await
            .body
            .as_str()
            .unwrap()
            .contains("not valid")
    );
    // Too short: said on its field, and nothing changes.
    let r = use_reset(&api, &token, "short").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["new_password"]);
    assert_eq!(
        api.login("m@x.test", "member-password").await.status,
        StatusCode::OK
    );
    let r = use_reset(&api, &token, "brand-new-password").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // Every session of the account ended; the new password works, the old one does not.
    assert_eq!(
        api.get("/api/v1/auth/me", Some(&member)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("m@x.test", "member-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("m@x.test", "brand-new-password").await.status,
        StatusCode::OK
    );
    // The link works once.
    let again = use_reset(&api, &token, "third-password-x").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);

    // An admin has the link sent to the member: to the member's mailbox, not to the admin.
    let id = member_id(&api.get("/api/v1/users", Some(&root)).await, "m@x.test");
    let r = api
        .post(
            &format!("/api/v1/users/{id}/password-reset"),
            Some(&root),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(r.body.get("link").is_none() && !r.body.to_string().contains("/reset/"));
    let mails = messages(&server, 1);
    assert!(mails[0].contains("m@x.test") && mails[0].contains("root@x.test, an administrator"));
    link_in(&mails[0], "https://pingtower.example.test/reset/");
    // Not by a member who is no admin, nor for someone of another tenant.
    let editor = api.login("m@x.test", "brand-new-password").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let root_id = member_id(&api.get("/api/v1/users", Some(&root)).await, "root@x.test");
    let r = api
        .post(
            &format!("/api/v1/users/{root_id}/password-reset"),
            Some(&editor),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // An admin does not reset an owner's password.
    let admin = api.member(&root, "admin@x.test", "admin").await;
    let r = api
        .post(
            &format!("/api/v1/users/{root_id}/password-reset"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("owner"),
        "{}",
        r.body
    );
    let other = api
        .post("/api/v1/tenants", Some(&root), json!({"name": "Other"}))
        .await
        .id();
    let r = api
        .request(
            axum::http::Method::POST,
            &format!("/api/v1/users/{id}/password-reset"),
            Some(&root),
            &[("x-tenant-id", other.as_str())],
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[tokio::test]
async fn without_mail_only_a_platform_administrator_resets_a_password_and_is_given_the_link() {
    let api = Api::new().await;
    let root = api.setup("root@x.test").await;
    let r = api
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "root@x.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        api.get("/forgot", None)
            .await
            .body
            .as_str()
            .unwrap()
            .contains("sends no mail")
    );
    api.member(&root, "admin@x.test", "admin").await;
    api.member(&root, "m@x.test", "viewer").await;
    let admin = api.login("admin@x.test", "member-password").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = member_id(&api.get("/api/v1/users", Some(&root)).await, "m@x.test");
    // A tenant's admin, who might also reach accounts of other tenants this way: no.
    let r = api
        .post(
            &format!("/api/v1/users/{id}/password-reset"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = api
        .post(
            &format!("/api/v1/users/{id}/password-reset"),
            Some(&root),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let link = r.body["link"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap();
    let r = use_reset(&api, token, "chosen-by-member").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        api.login("m@x.test", "chosen-by-member").await.status,
        StatusCode::OK
    );
    // A link passed on by an administrator proves nothing about the email.
    let m = api
        .store
        .find_user_by_email("m@x.test")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !m.email_verified,
        "an administrator's link marked the email proven"
    );
    // A link ends when the password changes otherwise too.
    let r = api
        .post(
            &format!("/api/v1/users/{id}/password-reset"),
            Some(&root),
            json!({}),
        )
        .await;
    let token = r.body["link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let member = api.login("m@x.test", "chosen-by-member").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .post(
            "/api/v1/auth/password",
            Some(&member),
            json!({"current_password": "chosen-by-member", "new_password": "changed-myself"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = use_reset(&api, &token, "taken-over-now").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // Logged in the audit log.
    let audit = api.get("/api/v1/audit", Some(&root)).await;
    assert!(
        audit.body.to_string().contains("member.password_reset"),
        "{}",
        audit.body
    );
}
