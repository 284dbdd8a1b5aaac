//! Tokens of an OIDC provider that the test starts on loopback: its own RSA keys, discovery
//! document and JWKS, and a key rotation.

use crate::harness::*;
use axum::http::StatusCode;
use base64::Engine;
use pingtower_api::oidc::{Oidc, OidcConfig};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

struct Key {
    kid: &'static str,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

fn key(kid: &'static str) -> Key {
    let mut rng = rsa::rand_core::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let der = private.to_pkcs1_der().unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    Key {
        kid,
        encoding: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": b64(private.n().to_bytes_be()), "e": b64(private.e().to_bytes_be())}),
    }
}

struct Provider {
    issuer: String,
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn provider(keys: &[&Key]) -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/realms/test", listener.local_addr().unwrap());
    let jwks = Arc::new(RwLock::new(
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let discovery =
        json!({"issuer": issuer, "jwks_uri": format!("{issuer}/protocol/openid-connect/certs")});
    let (j, f) = (jwks.clone(), fetches.clone());
    let app = axum::Router::new()
        .route(
            "/realms/test/.well-known/openid-configuration",
            axum::routing::get(move || {
                let d = discovery.clone();
                async move { axum::Json(d) }
            }),
        )
        .route(
            "/realms/test/protocol/openid-connect/certs",
            axum::routing::get(move || {
                let (j, f) = (j.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(j.read().unwrap().clone())
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Provider {
        issuer,
        jwks,
        fetches,
    }
}

fn token(key: &Key, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.into());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

fn claims(issuer: &str, email: &str, roles: &[&str]) -> Value {
    let now = pingtower_engine::now().as_millis() / 1000;
    json!({"iss": issuer, "aud": "pingtower", "sub": email, "email": email, "iat": now, "exp": now + 300,
           "realm_access": {"roles": roles}})
}

#[tokio::test]
async fn provider_tokens_are_checked_mapped_to_roles_and_follow_key_rotation() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (k1, k2) = (key("k1"), key("k2"));
    let idp = provider(&[&k1]).await;
    let mut config = OidcConfig::new(&idp.issuer, "pingtower", "realm_access.roles");
    config.refresh_interval = Duration::from_millis(300);
    let oidc = Oidc::new(config).unwrap();
    let api = Api::with_auth(|a| a.with_oidc(oidc)).await;
    let owner = api.setup("owner@x.test").await;

    // An editor from the provider: account made on first use, in the first tenant.
    let editor = token(
        &k1,
        claims(
            &idp.issuer,
            "ed@idp.test",
            &["offline_access", "pingtower-editor"],
        ),
    );
    let me = api.get("/api/v1/auth/me", Some(&editor)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"]["email"], "ed@idp.test");
    assert_eq!(me.body["tenants"][0]["role"], "editor");
    assert_eq!(
        api.post("/api/v1/monitors", Some(&editor), http_monitor("from-idp"))
            .await
            .status,
        StatusCode::CREATED
    );
    // A viewer reads but cannot write; no PingTower role at all: refused.
    let viewer = token(&k1, claims(&idp.issuer, "vi@idp.test", &["viewer"]));
    assert_eq!(
        api.get("/api/v1/monitors", Some(&viewer)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.post("/api/v1/monitors", Some(&viewer), http_monitor("no"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let nobody = token(&k1, claims(&idp.issuer, "no@idp.test", &["offline_access"]));
    assert_eq!(
        api.get("/api/v1/monitors", Some(&nobody)).await.status,
        StatusCode::FORBIDDEN
    );
    // The role follows the token: promoted to admin, the same account sees the members.
    let admin = token(&k1, claims(&idp.issuer, "ed@idp.test", &["admin"]));
    assert_eq!(
        api.get("/api/v1/users", Some(&admin)).await.status,
        StatusCode::OK
    );

    // Expired, another issuer, another audience, a forged signature, no key id.
    let mut expired = claims(&idp.issuer, "ed@idp.test", &["editor"]);
    expired["exp"] = json!(expired["iat"].as_i64().unwrap() - 3600);
    let mut other_issuer = claims("http://127.0.0.1:9/realms/evil", "ed@idp.test", &["editor"]);
    other_issuer["aud"] = json!("pingtower");
    let mut other_audience = claims(&idp.issuer, "ed@idp.test", &["editor"]);
    other_audience["aud"] = json!("grafana");
    let forged = {
        let t = token(&k1, claims(&idp.issuer, "ed@idp.test", &["owner"]));
        let (head, _) = t.rsplit_once('.').unwrap();
        let other = token(&k2, claims(&idp.issuer, "ed@idp.test", &["owner"]));
        format!("{head}.{}", other.rsplit_once('.').unwrap().1)
    };
    let no_kid = {
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(
            &header,
            &claims(&idp.issuer, "ed@idp.test", &["editor"]),
            &k1.encoding,
        )
        .unwrap()
    };
    for (what, t, detail) in [
        ("expired", token(&k1, expired), "expired"),
        ("other issuer", token(&k1, other_issuer), "issuer"),
        ("other audience", token(&k1, other_audience), "audience"),
        ("forged", forged, ""),
        ("no kid", no_kid, ""),
    ] {
        let r = api.get("/api/v1/monitors", Some(&t)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.body);
        assert!(
            r.body["detail"].as_str().unwrap().contains(detail),
            "{what}: {}",
            r.body
        );
    }

    // Rotation: the provider now signs with k2 only. The first k2 token makes PingTower fetch
    // the JWKS again; k1 tokens stop working; unknown keys do not hammer the provider.
    *idp.jwks.write().unwrap() = json!({"keys": [k2.jwk.clone()]});
    tokio::time::sleep(Duration::from_millis(350)).await;
    let rotated = token(&k2, claims(&idp.issuer, "ed@idp.test", &["editor"]));
    assert_eq!(
        api.get("/api/v1/monitors", Some(&rotated)).await.status,
        StatusCode::OK
    );
    let old = token(&k1, claims(&idp.issuer, "ed@idp.test", &["editor"]));
    assert_eq!(
        api.get("/api/v1/monitors", Some(&old)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let fetched = idp.fetches.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(
            api.get("/api/v1/monitors", Some(&old)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        fetched,
        "unknown keys refetched the JWKS"
    );

    // Local tokens still work beside the provider's.
    assert_eq!(
        api.get("/api/v1/monitors", Some(&owner)).await.status,
        StatusCode::OK
    );
}

/// A provider that also runs the authorization-code flow: `authorize` stands for the user
/// logging in there, and the token endpoint checks the PKCE verifier.
#[tokio::test]
async fn browser_login_runs_the_code_flow_with_pkce() {
    use std::collections::HashMap;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let k1 = Arc::new(key("k1"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    // code -> (challenge, nonce, redirect_uri)
    type Codes = RwLock<HashMap<String, (String, String, String)>>;
    let codes: Arc<Codes> = Arc::default();
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"), "token_endpoint": format!("{issuer}/token")});
    let jwks = json!({"keys": [k1.jwk.clone()]});
    let (c, k, iss) = (codes.clone(), k1.clone(), issuer.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let d = discovery.clone();
                async move { axum::Json(d) }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                let j = jwks.clone();
                async move { axum::Json(j) }
            }),
        )
        .route(
            "/token",
            axum::routing::post(move |body: String| {
                let (c, k, iss) = (c.clone(), k.clone(), iss.clone());
                async move {
                    let form: HashMap<String, String> =
                        url::form_urlencoded::parse(body.as_bytes())
                            .into_owned()
                            .collect();
                    let Some((challenge, nonce, redirect)) =
                        c.write().unwrap().remove(&form["code"])
                    else {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant"})),
                        );
                    };
                    let digest = ring::digest::digest(
                        &ring::digest::SHA256,
                        form["code_verifier"].as_bytes(),
                    );
                    let computed =
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
                    if computed != challenge
                        || form["redirect_uri"] != redirect
                        || form["client_id"] != "pingtower-ui"
                    {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(
                                json!({"error": "invalid_grant", "error_description": "PKCE"}),
                            ),
                        );
                    }
                    let mut id = claims(&iss, "browser@idp.test", &["editor"]);
                    id["aud"] = json!("pingtower-ui");
                    id["nonce"] = json!(nonce);
                    (
                        StatusCode::OK,
                        axum::Json(json!({"id_token": token(&k, id), "token_type": "Bearer"})),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = OidcConfig::new(&issuer, "pingtower", "realm_access.roles")
        .with_client("pingtower-ui", None);
    let api = Api::with_auth(|a| a.with_oidc(Oidc::new(config).unwrap())).await;
    api.setup("owner@x.test").await;

    let start = api
        .request(
            axum::http::Method::GET,
            "/api/v1/auth/oidc/login?return_to=/monitors",
            None,
            &[("host", "pingtower.test")],
            None,
        )
        .await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
    let location = url::Url::parse(start.header("location").unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{issuer}/authorize"))
    );
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        "http://pingtower.test/api/v1/auth/oidc/callback"
    );
    let flow_cookie = start
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The user logs in at the provider, which redirects back with a code.
    codes.write().unwrap().insert(
        "code-1".into(),
        (
            q["code_challenge"].clone(),
            q["nonce"].clone(),
            q["redirect_uri"].clone(),
        ),
    );
    let back = format!(
        "/api/v1/auth/oidc/callback?code=code-1&state={}",
        q["state"]
    );

    // Without the flow cookie (another browser), or with a wrong state: refused.
    let r = api
        .request(
            axum::http::Method::GET,
            &back,
            None,
            &[("host", "pingtower.test")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .request(
            axum::http::Method::GET,
            "/api/v1/auth/oidc/callback?code=code-1&state=forged",
            None,
            &[("host", "pingtower.test"), ("cookie", &flow_cookie)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let done = api
        .request(
            axum::http::Method::GET,
            &back,
            None,
            &[("host", "pingtower.test"), ("cookie", &flow_cookie)],
            None,
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), Some("/monitors"));
    let session = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("pingtower_session="))
        .unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    let me = api
        .request(
            axum::http::Method::GET,
            "/api/v1/auth/me",
            None,
            &[("cookie", &session)],
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"]["email"], "browser@idp.test");
    assert_eq!(me.body["tenants"][0]["role"], "editor");
    assert!(me.body["csrf_token"].is_string());
    // The code is used up: replaying the callback fails.
    let replay = api
        .request(
            axum::http::Method::GET,
            &back,
            None,
            &[("host", "pingtower.test"), ("cookie", &flow_cookie)],
            None,
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    // An open redirect is not possible.
    let evil = api
        .request(
            axum::http::Method::GET,
            "/api/v1/auth/oidc/login?return_to=//evil.test/",
            None,
            &[("host", "pingtower.test")],
            None,
        )
        .await;
    assert_eq!(evil.status, StatusCode::FOUND);
}

#[tokio::test]
async fn a_live_stream_opened_with_a_provider_token_ends_when_the_token_expires() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let k1 = key("k1");
    let idp = provider(&[&k1]).await;
    let oidc = Oidc::new(OidcConfig::new(
        &idp.issuer,
        "pingtower",
        "realm_access.roles",
    ))
    .unwrap();
    let api = Api::with_auth(|a| a.with_oidc(oidc)).await;
    api.setup("owner@x.test").await;
    let mut short = claims(&idp.issuer, "vi@idp.test", &["viewer"]);
    short["exp"] = json!(short["iat"].as_i64().unwrap() + 3);
    let req = axum::http::Request::get("/api/v1/events/stream")
        .header("authorization", format!("Bearer {}", token(&k1, short)))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = api.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let end = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match body.frame().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // keep-alives
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream outlived its token");
}
