//! Request bodies: size and media-type checks, then field-by-field validation
//! that reports every problem at once.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value};

use crate::http::problem::{ApiError, FieldError};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON object body. An absent body (no bytes, no content type) is `{}` so
/// that routes whose fields are all optional accept an empty POST.
#[derive(Debug, Clone, Default)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        if bytes.is_empty() && content_type.is_none() {
            return Ok(Self::default());
        }
        if content_type.as_deref() != Some("application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(ApiError::MalformedJson),
        }
    }
}

/// Validates the fields of one object, collecting every error.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// Errors found so far.
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    /// Starts validation; any key outside `known` is an error.
    pub fn new(map: &'a Map<String, Value>, known: &[&str]) -> Self {
        let mut errors: Vec<FieldError> = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| FieldError::new(&k.chars().take(64).collect::<String>(), "unknown field"))
            .collect();
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Self { map, errors }
    }

    /// Whether `key` is in the object at all (`null` included).
    pub fn present(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Whether `key` is present (and not `null`).
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// The raw value of `key`, if present and not `null` (for fields a
    /// dedicated parser validates, such as a JWK).
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.map.get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            None | Some(Value::Null) => {
                self.error(key, "is required");
                None
            }
            Some(_) => {
                self.error(key, "must be a string");
                None
            }
        }
    }

    /// An optional integer within `[min, max]`.
    pub fn int_in(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Some(v),
                _ => {
                    self.error(key, format!("must be an integer from {min} to {max}"));
                    None
                }
            },
            Some(_) => {
                self.error(key, format!("must be an integer from {min} to {max}"));
                None
            }
        }
    }

    /// A required array of strings.
    pub fn strings(&mut self, key: &str) -> Option<Vec<&'a str>> {
        match self.map.get(key) {
            Some(Value::Array(items)) => {
                let out: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                if out.is_none() {
                    self.error(key, "must be an array of strings");
                }
                out
            }
            None | Some(Value::Null) => {
                self.error(key, "is required");
                None
            }
            Some(_) => {
                self.error(key, "must be an array of strings");
                None
            }
        }
    }

    /// Records an error on `key`.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(key, message));
    }

    /// `Ok(())` if nothing was wrong, else the 400 listing every field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}
