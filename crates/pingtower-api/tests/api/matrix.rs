//! Every endpoint, called as every role of tenant A, as the owner of another tenant (with A's
//! ids), and without credentials; each must get the status its role allows, and nothing of A
//! may reach the other tenant.

use crate::harness::*;
use axum::http::{Method, StatusCode};
use pingtower_core::{MonitorId, Role, TenantId};
use pingtower_store::NewUser;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

/// What tenant A holds; a fresh set for every call, so deletes do not disturb other cases.
#[derive(Debug, Clone)]
struct Fixture {
    tenant: TenantId,
    monitor: String,
    channel: String,
    rule: String,
    maintenance: String,
    page: String,
    incident: String,
    key: String,
    member: String,
    chart: String,
    dashboard: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn n() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

async fn fixture(api: &Api, owner: &str, tenant: TenantId) -> Fixture {
    let i = n();
    let monitor = api
        .post(
            "/api/v1/monitors",
            Some(owner),
            http_monitor(&format!("fx-{i}")),
        )
        .await;
    assert_eq!(monitor.status, StatusCode::CREATED, "{}", monitor.body);
    let channel = api
        .post(
            "/api/v1/channels",
            Some(owner),
            json!({"name": format!("ch-{i}"), "kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(channel.status, StatusCode::CREATED, "{}", channel.body);
    let rule = api
        .post(
            "/api/v1/rules",
            Some(owner),
            json!({"name": format!("rule-{i}"), "monitors": "all", "events": ["down", "up"], "channels": [channel.id()]}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    let maintenance = api
        .post(
            "/api/v1/maintenance",
            Some(owner),
            json!({"name": format!("mw-{i}"), "monitors": [monitor.id()],
                   "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T02:00:00Z"}),
        )
        .await;
    assert_eq!(
        maintenance.status,
        StatusCode::CREATED,
        "{}",
        maintenance.body
    );
    let page = api
        .post(
            "/api/v1/status-pages",
            Some(owner),
            json!({"name": format!("page-{i}"), "slug": format!("fx-{i}"), "monitors": [monitor.id()]}),
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let mid: MonitorId = monitor.id().parse().unwrap();
    let incident = api
        .store
        .open_incident(tenant, mid, 1, Some("down"), pingtower_engine::now())
        .await
        .unwrap()
        .unwrap();
    let key = api
        .post(
            "/api/v1/api-keys",
            Some(owner),
            json!({"name": format!("key-{i}"), "role": "viewer"}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let user = api
        .store
        .create_user(
            &NewUser {
                email: format!("fx-{i}@a.test"),
                display_name: None,
                password_hash: None,
                platform_admin: false,
            },
            pingtower_engine::now(),
        )
        .await
        .unwrap();
    api.store
        .set_membership(tenant, user.id, Role::Viewer, pingtower_engine::now())
        .await
        .unwrap();
    let chart = api
        .post(
            "/api/v1/events/charts",
            Some(owner),
            json!({"name": format!("chart-{i}"), "query": {"range": "1h", "bucket": "minute"}}),
        )
        .await;
    assert_eq!(chart.status, StatusCode::CREATED, "{}", chart.body);
    let dashboard = api
        .post(
            "/api/v1/events/dashboards",
            Some(owner),
            json!({"name": format!("board-{i}"), "charts": [chart.id()]}),
        )
        .await;
    assert_eq!(dashboard.status, StatusCode::CREATED, "{}", dashboard.body);
    Fixture {
        chart: chart.id(),
        dashboard: dashboard.id(),
        tenant,
        monitor: monitor.id(),
        channel: channel.id(),
        rule: rule.id(),
        maintenance: maintenance.id(),
        page: page.id(),
        incident: incident.id.to_string(),
        key: key.id(),
        member: user.id.to_string(),
    }
}

/// How the other tenant's owner fares.
#[derive(Debug, Clone, Copy)]
enum Outsider {
    /// A list of their own tenant: 200, none of A's ids in it.
    OwnList,
    /// A's object by id: 404.
    NotFound,
    /// Creates in their own tenant: the success status.
    Own,
    /// Refers to A's objects: 422.
    Invalid,
    /// Platform-level: 403.
    Forbidden,
}

struct Case {
    method: Method,
    path: &'static str,
    body: fn(&Fixture) -> Option<Value>,
    /// The least role that may do it (`None`: platform administrators only).
    min: Option<Role>,
    ok: StatusCode,
    outsider: Outsider,
}

fn none(_: &Fixture) -> Option<Value> {
    None
}

fn cases() -> Vec<Case> {
    use Outsider::*;
    let c = |method: Method,
             path: &'static str,
             body: fn(&Fixture) -> Option<Value>,
             min: Option<Role>,
             ok: u16,
             outsider: Outsider| Case {
        method,
        path,
        body,
        min,
        ok: StatusCode::from_u16(ok).unwrap(),
        outsider,
    };
    let v = Some(Role::Viewer);
    let e = Some(Role::Editor);
    let a = Some(Role::Admin);
    vec![
        c(Method::GET, "/api/v1/monitors", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/monitors",
            |_| Some(http_monitor(&format!("m-{}", n()))),
            e,
            201,
            Own,
        ),
        c(
            Method::GET,
            "/api/v1/monitors/{monitor}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::PATCH,
            "/api/v1/monitors/{monitor}",
            |_| Some(json!({"interval_seconds": 45})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/monitors/{monitor}",
            none,
            e,
            204,
            NotFound,
        ),
        c(
            Method::POST,
            "/api/v1/monitors/{monitor}/pause",
            none,
            e,
            200,
            NotFound,
        ),
        c(
            Method::POST,
            "/api/v1/monitors/{monitor}/resume",
            none,
            e,
            200,
            NotFound,
        ),
        c(
            Method::GET,
            "/api/v1/monitors/{monitor}/results",
            none,
            v,
            200,
            NotFound,
        ),
        c(Method::GET, "/api/v1/incidents", none, v, 200, OwnList),
        c(
            Method::GET,
            "/api/v1/incidents/{incident}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::POST,
            "/api/v1/incidents/{incident}/ack",
            none,
            e,
            200,
            NotFound,
        ),
        c(
            Method::POST,
            "/api/v1/incidents/{incident}/comments",
            |_| Some(json!({"message": "looking"})),
            e,
            201,
            NotFound,
        ),
        c(Method::GET, "/api/v1/deliveries", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/events",
            |_| Some(json!({"name": "matrix"})),
            e,
            202,
            Own,
        ),
        c(Method::GET, "/api/v1/events", none, v, 200, OwnList),
        c(Method::GET, "/api/v1/events/names", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/events/funnel",
            |_| Some(json!({"steps": [{"name": "a"}, {"name": "b"}]})),
            v,
            200,
            OwnList,
        ),
        c(
            Method::POST,
            "/api/v1/events/query",
            |_| Some(json!({"range": "1h"})),
            v,
            200,
            OwnList,
        ),
        c(Method::GET, "/api/v1/events/charts", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/events/charts",
            |_| Some(json!({"name": format!("chart-{}", n()), "query": {"range": "24h"}})),
            e,
            201,
            Own,
        ),
        c(
            Method::GET,
            "/api/v1/events/charts/{chart}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::GET,
            "/api/v1/events/charts/{chart}/data",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::PATCH,
            "/api/v1/events/charts/{chart}",
            |_| Some(json!({"style": "bar"})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/events/charts/{chart}",
            none,
            e,
            204,
            NotFound,
        ),
        c(
            Method::GET,
            "/api/v1/events/dashboards",
            none,
            v,
            200,
            OwnList,
        ),
        c(
            Method::POST,
            "/api/v1/events/dashboards",
            |f| Some(json!({"name": format!("board-{}", n()), "charts": [f.chart]})),
            e,
            201,
            Invalid,
        ),
        c(
            Method::GET,
            "/api/v1/events/dashboards/{dashboard}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::PATCH,
            "/api/v1/events/dashboards/{dashboard}",
            |_| Some(json!({"columns": 3})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/events/dashboards/{dashboard}",
            none,
            e,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/dead-letters", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/channels/{channel}/test",
            |_| Some(json!({})),
            e,
            200,
            NotFound,
        ),
        c(Method::GET, "/api/v1/channels", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/channels",
            |_| {
                Some(
                    json!({"name": format!("c-{}", n()), "kind": "slack", "url": "http://127.0.0.1:9/slack"}),
                )
            },
            e,
            201,
            Own,
        ),
        c(
            Method::GET,
            "/api/v1/channels/{channel}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::PATCH,
            "/api/v1/channels/{channel}",
            |_| Some(json!({"url": "http://127.0.0.1:9/other"})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/channels/{channel}",
            none,
            e,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/rules", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/rules",
            |f| {
                Some(
                    json!({"name": format!("r-{}", n()), "monitors": "all", "events": ["down"], "channels": [f.channel]}),
                )
            },
            e,
            201,
            Invalid,
        ),
        c(Method::GET, "/api/v1/rules/{rule}", none, v, 200, NotFound),
        c(
            Method::PATCH,
            "/api/v1/rules/{rule}",
            |_| Some(json!({"events": ["down", "up", "degraded"]})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/rules/{rule}",
            none,
            e,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/maintenance", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/maintenance",
            |f| {
                Some(
                    json!({"name": format!("w-{}", n()), "monitors": [f.monitor], "cron": "0 3 * * SUN", "duration_minutes": 60, "timezone": "Europe/Berlin"}),
                )
            },
            e,
            201,
            Invalid,
        ),
        c(
            Method::GET,
            "/api/v1/maintenance/{maintenance}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::PATCH,
            "/api/v1/maintenance/{maintenance}",
            |_| Some(json!({"description": "patching"})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/maintenance/{maintenance}",
            none,
            e,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/status-pages", none, v, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/status-pages",
            |f| {
                Some(
                    json!({"name": format!("p-{}", n()), "slug": format!("p-{}", n()), "monitors": [f.monitor]}),
                )
            },
            e,
            201,
            Invalid,
        ),
        c(
            Method::GET,
            "/api/v1/status-pages/{page}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::PATCH,
            "/api/v1/status-pages/{page}",
            |_| Some(json!({"description": "ours"})),
            e,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/status-pages/{page}",
            none,
            e,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/api-keys", none, a, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/api-keys",
            |_| Some(json!({"name": format!("k-{}", n()), "role": "viewer"})),
            a,
            201,
            Own,
        ),
        c(
            Method::DELETE,
            "/api/v1/api-keys/{key}",
            none,
            a,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/users", none, a, 200, OwnList),
        c(
            Method::POST,
            "/api/v1/users",
            |_| Some(json!({"email": format!("new-{}@c.test", n()), "role": "viewer"})),
            a,
            202,
            Own,
        ),
        c(
            Method::PATCH,
            "/api/v1/users/{member}",
            |_| Some(json!({"role": "editor"})),
            a,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/users/{member}",
            none,
            a,
            204,
            NotFound,
        ),
        c(Method::GET, "/api/v1/audit", none, a, 200, OwnList),
        c(Method::GET, "/api/v1/tenants", none, v, 200, OwnList),
        c(
            Method::GET,
            "/api/v1/tenants/{tenant}",
            none,
            v,
            200,
            NotFound,
        ),
        c(
            Method::DELETE,
            "/api/v1/tenants/{tenant}",
            none,
            None,
            204,
            Forbidden,
        ),
        c(Method::GET, "/api/v1/auth/me", none, v, 200, OwnList),
    ]
}

fn fill(path: &str, f: &Fixture) -> String {
    path.replace("{monitor}", &f.monitor)
        .replace("{channel}", &f.channel)
        .replace("{rule}", &f.rule)
        .replace("{maintenance}", &f.maintenance)
        .replace("{page}", &f.page)
        .replace("{incident}", &f.incident)
        .replace("{key}", &f.key)
        .replace("{chart}", &f.chart)
        .replace("{dashboard}", &f.dashboard)
        .replace("{member}", &f.member)
        .replace("{tenant}", &f.tenant.to_string())
}

fn ids_of(f: &Fixture) -> Vec<String> {
    vec![
        f.monitor.clone(),
        f.channel.clone(),
        f.rule.clone(),
        f.maintenance.clone(),
        f.page.clone(),
        f.incident.clone(),
        f.key.clone(),
        f.member.clone(),
        f.chart.clone(),
        f.dashboard.clone(),
        f.tenant.to_string(),
    ]
}

#[tokio::test]
async fn every_endpoint_as_every_role_and_from_another_tenant() {
    let api = Api::new().await;
    // The setup account owns tenant A and is a platform administrator: the platform-level
    // case is checked for the others with their tenant role, and for it separately below.
    let root = api.setup("root@a.test").await;
    let me = api.get("/api/v1/auth/me", Some(&root)).await;
    let tenant_a: TenantId = me.body["tenants"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let owner = api.member(&root, "owner@a.test", "owner").await;
    let admin = api.member(&root, "admin@a.test", "admin").await;
    let editor = api.member(&root, "editor@a.test", "editor").await;
    let viewer = api.member(&root, "viewer@a.test", "viewer").await;
    // The other tenant's owner.
    let hash = pingtower_api::auth::hash_password("outsider-password".into())
        .await
        .unwrap();
    api.store
        .create_user(
            &NewUser {
                email: "owner@b.test".into(),
                display_name: None,
                password_hash: Some(hash),
                platform_admin: false,
            },
            pingtower_engine::now(),
        )
        .await
        .unwrap();
    let b = api
        .post(
            "/api/v1/tenants",
            Some(&root),
            json!({"name": "B", "owner_email": "owner@b.test"}),
        )
        .await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    let outsider = api.login("owner@b.test", "outsider-password").await;
    let outsider = outsider.body["token"].as_str().unwrap().to_owned();

    let roles = [
        (Role::Owner, owner.as_str()),
        (Role::Admin, admin.as_str()),
        (Role::Editor, editor.as_str()),
        (Role::Viewer, viewer.as_str()),
    ];
    let mut failures = Vec::new();
    for case in cases() {
        for (role, token) in roles {
            let f = fixture(&api, &root, tenant_a).await;
            let path = fill(case.path, &f);
            let r = api
                .request(
                    case.method.clone(),
                    &path,
                    Some(token),
                    &[],
                    (case.body)(&f),
                )
                .await;
            let want = match case.min {
                Some(min) if role.at_least(min) => case.ok,
                _ => StatusCode::FORBIDDEN,
            };
            if r.status != want {
                failures.push(format!(
                    "{} {} as {role}: {} (wanted {want}) {}",
                    case.method, case.path, r.status, r.body
                ));
            }
        }
        // Another tenant's owner, with tenant A's ids.
        let f = fixture(&api, &root, tenant_a).await;
        let path = fill(case.path, &f);
        let r = api
            .request(
                case.method.clone(),
                &path,
                Some(&outsider),
                &[],
                (case.body)(&f),
            )
            .await;
        let (want, leak_check) = match case.outsider {
            Outsider::OwnList => (StatusCode::OK, true),
            Outsider::NotFound => (StatusCode::NOT_FOUND, false),
            Outsider::Own => (case.ok, true),
            Outsider::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, false),
            Outsider::Forbidden => (StatusCode::FORBIDDEN, false),
        };
        if r.status != want {
            failures.push(format!(
                "{} {} from tenant B: {} (wanted {want}) {}",
                case.method, case.path, r.status, r.body
            ));
        }
        if leak_check {
            let text = r.body.to_string();
            for id in ids_of(&f) {
                if text.contains(&id) {
                    failures.push(format!(
                        "{} {} from tenant B shows {id}",
                        case.method, case.path
                    ));
                }
            }
            if text.contains("@a.test") {
                failures.push(format!(
                    "{} {} from tenant B shows a member of A",
                    case.method, case.path
                ));
            }
        }
        // Without credentials.
        let r = api
            .request(case.method.clone(), &path, None, &[], (case.body)(&f))
            .await;
        if r.status != StatusCode::UNAUTHORIZED {
            failures.push(format!(
                "{} {} anonymous: {}",
                case.method, case.path, r.status
            ));
        }
        // Picking tenant A by header does not help the outsider.
        let tenant_header = f.tenant.to_string();
        let r = api
            .request(
                case.method.clone(),
                &path,
                Some(&outsider),
                &[("x-tenant-id", tenant_header.as_str())],
                (case.body)(&f),
            )
            .await;
        let allowed = [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND];
        if !allowed.contains(&r.status)
            && !case.path.starts_with("/api/v1/tenants")
            && case.path != "/api/v1/auth/me"
        {
            failures.push(format!(
                "{} {} from tenant B naming tenant A: {}",
                case.method, case.path, r.status
            ));
        }
    }
    // The platform administrator may delete a tenant.
    let r = api
        .delete(&format!("/api/v1/tenants/{}", b.id()), Some(&root))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
