//! HTTP conventions shared by every resource: 201 with `Location`, `ETag` / `If-Match`, ids in
//! paths, list pages, and the audit trail of writes.

use crate::auth::Principal;
use crate::{AppState, Problem};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `201 Created` with `Location` and `ETag`.
pub struct Created<T> {
    location: String,
    version: i64,
    body: T,
}

impl<T> Created<T> {
    pub fn new(location: String, version: i64, body: T) -> Self {
        Self {
            location,
            version,
            body,
        }
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let mut r = (StatusCode::CREATED, Json(self.body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r.headers_mut().insert(header::ETAG, etag(self.version));
        r
    }
}

/// `200 OK` with the `ETag` of a versioned resource.
pub struct Tagged<T>(pub i64, pub T);

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut r = Json(self.1).into_response();
        r.headers_mut().insert(header::ETAG, etag(self.0));
        r
    }
}

pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version `If-Match` names: `None` without the header or with `*`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            Problem::new(StatusCode::BAD_REQUEST, "bad-header", "Bad header")
                .with_detail("`If-Match` must be an ETag this server gave (e.g. \"3\") or `*`")
        })
}

/// An id from a path; anything that is not one is a 404 like a missing one.
pub fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, Problem> {
    text.parse().map_err(|_| Problem::not_found(what))
}

/// A store error, with its 404 naming `what`.
pub fn not_found_as(e: pingtower_store::StoreError, what: &str) -> Problem {
    match e {
        pingtower_store::StoreError::NotFound => Problem::not_found(what),
        other => other.into(),
    }
}

/// Records a change in the tenant's audit log. The change is already committed: a failure
/// here is logged loudly rather than reported as a failed request.
pub async fn audit(
    state: &AppState,
    p: &Principal,
    action: &str,
    target: &str,
    detail: Option<&str>,
) {
    let entry = pingtower_core::AuditEntry {
        id: pingtower_core::AuditId::new(),
        tenant_id: p.tenant,
        actor: p.actor(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.map(str::to_owned),
        at: pingtower_engine::now(),
    };
    if let Err(e) = state.store.append_audit(&entry).await {
        tracing::error!(error = %e, action, target, "writing the audit log failed");
    }
}

/// One page of a list held in memory (lists that are small by nature: keys, members, tenants,
/// channels, rules, …), in `key` order, after `page.cursor`.
pub fn page_of<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    page: &pingtower_store::PageRequest,
) -> pingtower_core::Page<T> {
    items.sort_by_key(|i| key(i));
    let mut rest: Vec<T> = match &page.cursor {
        Some(c) => items
            .into_iter()
            .filter(|i| key(i).as_str() > c.as_str())
            .collect(),
        None => items,
    };
    let limit = page.limit as usize;
    let next_cursor = (rest.len() > limit).then(|| {
        rest.truncate(limit);
        rest.last().map(|i| pingtower_core::Cursor(key(i)))
    });
    pingtower_core::Page {
        items: rest,
        next_cursor: next_cursor.flatten(),
    }
}

/// Declares a page type `{items, next_cursor}` of `$item` for a list answer.
macro_rules! list_type {
    ($name:ident, $item:ty) => {
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }

        impl $name {
            #[allow(dead_code, reason = "not every list comes from a store page")]
            pub fn new<T>(page: pingtower_core::Page<T>, f: impl FnMut(T) -> $item) -> Self {
                Self {
                    items: page.items.into_iter().map(f).collect(),
                    next_cursor: page.next_cursor.map(|c| c.0),
                }
            }
        }
    };
}
pub(crate) use list_type;
