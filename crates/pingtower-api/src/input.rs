//! Reading request input so that every invalid field is reported at once, as problem details.
//!
//! Bodies are read as JSON objects and their fields taken one by one ([`Fields`]), rather than
//! deserialized into a struct that would stop at the first bad field. Rejections of axum's own
//! extractors become problem details too ([`Body`], [`Params`]).

use crate::{FieldError, Problem};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A JSON object body. Anything else (no body, not JSON, not an object) is a 400 or 415 problem.
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = axum::Json::<Value>::from_request(req, state)
            .await
            .map_err(|e| {
                let status = e.status();
                let kind = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    "unsupported-media-type"
                } else {
                    "malformed-body"
                };
                Problem::new(status, kind, "Unreadable request body").with_detail(e.body_text())
            })?;
        match json.0 {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Unreadable request body",
            )
            .with_detail("the body must be a JSON object")),
        }
    }
}

/// Query parameters; a bad one is a 422 naming it.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let field = e.path().to_string();
            Problem::invalid(vec![FieldError {
                field: if field == "." { "query".into() } else { field },
                message: e.into_inner().to_string(),
            }])
        })
    }
}

/// Takes typed fields out of a JSON object, collecting every problem.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    pub fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field)
    }

    pub fn str(&mut self, field: &str) -> Option<String> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    pub fn required_str(&mut self, field: &str) -> Option<String> {
        let present = self.map.get(field).is_some_and(|v| !v.is_null());
        match self.str(field) {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.err(field, "must not be empty");
                None
            }
            None if !present => {
                self.err(field, "is required");
                None
            }
            None => None,
        }
    }

    pub fn bool(&mut self, field: &str) -> Option<bool> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.err(field, "must be true or false");
                None
            }
        }
    }

    pub fn int(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    self.err(field, format!("must be a whole number from {min} to {max}"));
                    None
                }
            },
        }
    }

    /// A duration in seconds (a number, fractions allowed), as milliseconds.
    pub fn seconds(&mut self, field: &str, min_ms: i64, max_ms: i64) -> Option<i64> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64().map(|s| (s * 1000.0).round()) {
                Some(ms) if ms >= min_ms as f64 && ms <= max_ms as f64 => Some(ms as i64),
                _ => {
                    self.err(
                        field,
                        format!(
                            "must be a number of seconds from {} to {}",
                            min_ms as f64 / 1000.0,
                            max_ms as f64 / 1000.0
                        ),
                    );
                    None
                }
            },
        }
    }

    pub fn strings(&mut self, field: &str) -> Option<Vec<String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s),
                        _ => self.err(&format!("{field}[{i}]"), "must be a string"),
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.err(field, "must be a list of strings");
                None
            }
        }
    }

    pub fn parsed<T: std::str::FromStr>(&mut self, field: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let s = self.str(field)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(field, e.to_string());
                None
            }
        }
    }

    /// A field that must be there and not null, parsed from a string.
    pub fn required_parsed<T: std::str::FromStr>(&mut self, field: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        if self.map.get(field).is_none_or(Value::is_null) {
            self.map.remove(field);
            self.err(field, "is required");
            return None;
        }
        self.parsed(field)
    }

    /// Refuses the fields not taken yet, with `what` naming the object.
    pub fn reject_rest(&mut self, what: &str) {
        let rest: Vec<String> = self.map.keys().cloned().collect();
        for key in rest {
            self.err(&key, format!("is not a field of {what}"));
        }
        self.map.clear();
    }

    /// The fields not taken yet.
    pub fn rest(&mut self) -> Map<String, Value> {
        std::mem::take(&mut self.map)
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn push_errors(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.errors.extend(errors);
    }

    /// `Ok` when no field was invalid; otherwise the 422 naming each.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid(self.errors))
        }
    }
}

/// The `limit` and `cursor` of a list.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page: 1 to 1000, 50 by default.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn request(&self) -> Result<pingtower_store::PageRequest, Problem> {
        let limit = self.limit.unwrap_or(pingtower_core::page::DEFAULT_LIMIT);
        if limit == 0 || limit > pingtower_core::page::MAX_LIMIT {
            return Err(Problem::invalid(vec![FieldError {
                field: "limit".into(),
                message: format!("must be from 1 to {}", pingtower_core::page::MAX_LIMIT),
            }]));
        }
        Ok(pingtower_store::PageRequest {
            limit,
            cursor: self.cursor.clone(),
        })
    }
}
