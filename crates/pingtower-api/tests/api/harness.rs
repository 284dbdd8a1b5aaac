//! A router over a real SQLite store in a temporary folder, the in-process bus and a running
//! result writer; requests go through the whole middleware stack.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use pingtower_api::{AppState, AuthState, MetricsAccess};
use pingtower_bus::{Bus, MemoryBus};
use pingtower_engine::{Metrics, ResultWriter, WriterConfig};
use pingtower_store::{Store, StoreOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub struct Api {
    pub router: axum::Router,
    pub store: Arc<dyn Store>,
    /// The tenants' analytics events.
    pub analytics: Arc<dyn pingtower_analytics::EventStore>,
    pub bus: Arc<dyn Bus>,
    /// The figures `/metrics` shows.
    pub metrics: Metrics,
    _dir: tempfile::TempDir,
    _stop: tokio_util::sync::DropGuard,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The fields a problem answer names.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_owned()
    }
}

impl Api {
    pub async fn new() -> Self {
        Self::with_auth(|a| a).await
    }

    /// With authentication set up by `f` (an OIDC provider, say).
    pub async fn with_auth(f: impl FnOnce(AuthState) -> AuthState) -> Self {
        Self::build(
            f,
            "",
            MetricsAccess::default(),
            pingtower_api::Quotas::default(),
        )
        .await
    }

    /// With the operator's blocklist of networks (`PINGTOWER_BLOCKED_NETWORKS`).
    pub async fn with_blocklist(blocked: &str) -> Self {
        Self::build(
            |a| a,
            blocked,
            MetricsAccess::default(),
            pingtower_api::Quotas::default(),
        )
        .await
    }

    /// With the operator's `/metrics` settings (`PINGTOWER_METRICS_TOKEN`, `_MONITORS`).
    /// With the operator's per-tenant limits.
    pub async fn with_quotas(quotas: pingtower_api::Quotas) -> Self {
        Self::build(|a| a, "", MetricsAccess::default(), quotas).await
    }

    pub async fn with_metrics(access: MetricsAccess) -> Self {
        Self::build(|a| a, "", access, pingtower_api::Quotas::default()).await
    }

    /// With a limit on the events a tenant may send per minute.
    pub async fn with_events_rate(per_minute: u64) -> Self {
        Self::build_with(
            |a| a,
            "",
            MetricsAccess::default(),
            pingtower_api::Quotas::default(),
            per_minute,
        )
        .await
    }

    async fn build(
        f: impl FnOnce(AuthState) -> AuthState,
        blocked: &str,
        metrics_access: MetricsAccess,
        quotas: pingtower_api::Quotas,
    ) -> Self {
        Self::build_with(f, blocked, metrics_access, quotas, 0).await
    }

    async fn build_with(
        f: impl FnOnce(AuthState) -> AuthState,
        blocked: &str,
        metrics_access: MetricsAccess,
        quotas: pingtower_api::Quotas,
        events_per_minute: u64,
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let store = pingtower_store::open(&url, &StoreOptions::default())
            .await
            .unwrap();
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        let stop = tokio_util::sync::CancellationToken::new();
        let metrics = Metrics::new();
        let (writer, _task) = ResultWriter::spawn(
            store.clone(),
            bus.clone(),
            WriterConfig::default(),
            metrics.clone(),
            stop.clone(),
        );
        let keys = pingtower_engine::secrets::Keys::new(&[9u8; 32]).unwrap();
        let analytics = pingtower_analytics::store::open(&format!(
            "sqlite://{}",
            dir.path().join("events.db").display()
        ))
        .await
        .unwrap();
        let events = pingtower_api::events::EventHub::default();
        tokio::spawn(events.clone().run(bus.clone(), stop.clone()));
        let state = AppState {
            store: store.clone(),
            bus: bus.clone(),
            writer,
            metrics: metrics.clone(),
            region: Arc::from("test"),
            push_clock: Arc::default(),
            auth: Arc::new(f(AuthState::new(keys))),
            notify_http: pingtower_notify::channels::Outbound::new(
                pingtower_core::net::Blocklist::parse(blocked).unwrap(),
            )
            .unwrap(),
            events: events.clone(),
            metrics_access,
            quotas,
            analytics: pingtower_api::analytics::Analytics::new(
                analytics.clone(),
                Some(30 * 86_400_000),
                events_per_minute,
            ),
        };
        tokio::spawn(pingtower_api::analytics::publish_live(
            state.analytics.clone(),
            bus.clone(),
            stop.clone(),
        ));
        Self {
            router: pingtower_api::router(state),
            analytics,
            store,
            bus,
            metrics,
            _dir: dir,
            _stop: stop.drop_guard(),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).unwrap())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/problem+json"),
                "{path}: an error answer is a problem: {body}"
            );
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, &[], None).await
    }

    /// The first tenant (made by setup) and a second one, `other`, made in the store.
    pub async fn two_tenants(&self) -> (pingtower_core::TenantId, pingtower_core::TenantId) {
        let first = self.store.list_tenants().await.unwrap()[0].id;
        let other = self
            .store
            .create_tenant("other", pingtower_engine::now())
            .await
            .unwrap()
            .id;
        (first, other)
    }

    /// The stored monitor with the API id `id`.
    pub async fn monitor(&self, id: &str) -> pingtower_core::Monitor {
        self.store
            .all_monitors()
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.id.to_string() == id)
            .expect("a monitor with this id")
    }

    /// A GET acting in `tenant` (`X-Tenant-Id`).
    pub async fn get_in(&self, path: &str, token: &str, tenant: &str) -> Resp {
        self.request(
            Method::GET,
            path,
            Some(token),
            &[("x-tenant-id", tenant)],
            None,
        )
        .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, &[], Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PATCH, path, token, &[], Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, &[], None).await
    }

    /// First-run setup; returns the owner's token.
    pub async fn setup(&self, email: &str) -> String {
        let r = self
            .post(
                "/api/v1/setup",
                None,
                json!({"email": email, "password": "owner-password", "tenant_name": "Acme"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Adds a member with `role` to the caller's tenant and returns their token: a platform
    /// administrator makes the account with a password; anyone else invites, and the invitation
    /// is accepted with that password.
    pub async fn member(&self, owner: &str, email: &str, role: &str) -> String {
        let r = self
            .post(
                "/api/v1/users",
                Some(owner),
                json!({"email": email, "role": role, "password": "member-password"}),
            )
            .await;
        if r.status == StatusCode::UNPROCESSABLE_ENTITY && r.error_fields() == ["password"] {
            let r = self
                .post(
                    "/api/v1/users",
                    Some(owner),
                    json!({"email": email, "role": role}),
                )
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            let r = self
                .post(
                    "/api/v1/invitations/accept",
                    None,
                    json!({"token": r.body["token"], "password": "member-password"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            return r.body["token"].as_str().unwrap().to_owned();
        }
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = self.login(email, "member-password").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }
}

/// An HTTP monitor body aimed at loopback (nothing is checked in these tests).
pub fn http_monitor(name: &str) -> Value {
    json!({"name": name, "kind": "http", "url": "http://127.0.0.1:9/health",
           "interval_seconds": 30, "timeout_seconds": 5, "assertions": ["status == 200"], "tags": ["prod"]})
}
