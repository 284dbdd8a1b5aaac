//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error answer. Every error the API gives is one of these.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every invalid field, for invalid input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds for a `Retry-After` header (rate limits).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// Adds `WWW-Authenticate: Bearer` (401).
    #[serde(skip)]
    pub challenge: bool,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str) -> Self {
        Self {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            retry_after: None,
            challenge: false,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found")
            .with_detail(format!("no such {what}"))
    }

    /// 422 naming every invalid field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("invalid: {}", fields.join(", "));
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-input",
                "Invalid input",
            )
        }
        .with_detail(detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .with_detail(detail)
    }

    /// A 500. Its cause is logged here (the request's span carries its request id), so an
    /// internal error without a logged cause cannot be made.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
        .with_detail("the error was logged; see the server's log for its request id")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if self.challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"pingtower\""),
            );
        }
        response
    }
}

impl From<pingtower_store::StoreError> for Problem {
    fn from(e: pingtower_store::StoreError) -> Self {
        use pingtower_store::StoreError as E;
        match e {
            E::NotFound => Self::not_found("resource"),
            E::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict")
                .with_detail(format!("already exists: {what}")),
            E::LastOwner => Self::new(StatusCode::CONFLICT, "conflict", "Conflict")
                .with_detail("a tenant keeps at least one owner"),
            E::VersionMismatch { current } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "version-mismatch",
                "Changed meanwhile",
            )
            .with_detail(format!(
                "the resource changed; its current version is {current}"
            )),
            E::InvalidInput(detail) => Self::invalid(vec![FieldError {
                field: "cursor".to_owned(),
                message: detail,
            }]),
            other => Self::internal(format_args!("store: {other}")),
        }
    }
}

pub(crate) async fn not_found() -> Problem {
    Problem::not_found("path")
}

pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    Problem::internal(format_args!("a request handler panicked: {what}")).into_response()
}

pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
    .with_detail("this path does not take this method")
}
