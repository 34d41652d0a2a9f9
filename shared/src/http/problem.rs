//! RFC 9457 problem details: every error response of the token service.
//!
//! Each variant has a stable `type` URI. Nothing internal (store errors,
//! stack traces, parser messages) ever reaches the body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[cfg(feature = "store")]
use crate::store::StoreError;

/// Prefix of every problem `type`. Stable: clients may match on it.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:agpat:problem:";

/// One invalid field in a 400 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON field (or query parameter) name.
    pub field: String,
    /// What is wrong, in words safe to show.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Every error the token service answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: one or more fields are invalid; all are listed.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 400: the body is not a JSON object.
    #[error("malformed JSON")]
    MalformedJson,
    /// 400: `/tokens/self` was called without a PAT.
    #[error("self requires a PAT")]
    SelfRequiresPat,
    /// 401: no usable authorizer context (never happens behind API Gateway).
    #[error("unauthenticated")]
    Unauthenticated,
    /// 401: the credential behind the (possibly cached) authorizer context
    /// has passed its expiry.
    #[error("credential expired")]
    CredentialExpired,
    /// 401: the calling PAT was revoked or expired since the authorizer
    /// decided (found by the strongly consistent read before a write).
    #[error("credential revoked")]
    CredentialRevoked,
    /// 401: a signed report (the secret-scanning partner route) has no
    /// signature, names an unknown key, or does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// 403: the caller lacks the route's scope.
    #[error("insufficient scope")]
    InsufficientScope,
    /// 403: this action needs a Cognito session, not a PAT.
    #[error("session required")]
    SessionRequired,
    /// 403: the requested scopes exceed the caller's.
    #[error("scope escalation")]
    ScopeEscalation,
    /// 404: no such token for this caller (missing and foreign look the same).
    #[error("token not found")]
    TokenNotFound,
    /// 404: no such item for this caller (missing and foreign look the same).
    #[error("item not found")]
    ItemNotFound,
    /// 404: an administrator named an owner who never held a token (a
    /// username or a typo instead of a Cognito `sub`).
    #[error("owner not found")]
    OwnerNotFound,
    /// 404: no such route.
    #[error("not found")]
    NotFound,
    /// 405: the route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 403: the session began before the owner's last revoke-all (or
    /// offboarding); it must sign in again to create or rotate tokens.
    #[error("session predates revocation")]
    SessionPredatesRevocation,
    /// 409: the caller already has the maximum number of active tokens.
    #[error("token limit reached")]
    TokenLimitReached,
    /// 409: the token is revoked or expired.
    #[error("token not active")]
    TokenNotActive,
    /// 409: the token was already rotated.
    #[error("token already rotated")]
    TokenAlreadyRotated,
    /// 409: the item changed since the version the client sent.
    #[error("version conflict")]
    VersionConflict,
    /// 413: body over the size limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 413: a signed report over its size or entry limit.
    #[error("report too large")]
    ReportTooLarge,
    /// 415: body is not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 500: something failed on our side; the cause is logged, not shown.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// HTTP status, stable `type` slug and title.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Validation(_) => (
                StatusCode::BAD_REQUEST,
                "validation-failed",
                "The request has invalid fields",
            ),
            MalformedJson => (
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "The body is not a JSON object",
            ),
            SelfRequiresPat => (
                StatusCode::BAD_REQUEST,
                "self-requires-pat",
                "Only a personal access token has a 'self'",
            ),
            Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            ),
            CredentialExpired => (
                StatusCode::UNAUTHORIZED,
                "credential-expired",
                "The credential used for this request has expired",
            ),
            CredentialRevoked => (
                StatusCode::UNAUTHORIZED,
                "credential-revoked",
                "The personal access token used for this request is no longer active",
            ),
            InvalidSignature => (
                StatusCode::UNAUTHORIZED,
                "invalid-signature",
                "The report's signature is missing, names an unknown key, or does not verify",
            ),
            InsufficientScope => (
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "The credential lacks the scope this route requires",
            ),
            SessionRequired => (
                StatusCode::FORBIDDEN,
                "session-required",
                "This action requires a Cognito session, not a personal access token",
            ),
            ScopeEscalation => (
                StatusCode::FORBIDDEN,
                "scope-escalation",
                "A token cannot hold scopes its creator does not have",
            ),
            SessionPredatesRevocation => (
                StatusCode::FORBIDDEN,
                "session-predates-revocation",
                "This session began before all tokens were revoked; sign in again to manage tokens",
            ),
            TokenNotFound => (StatusCode::NOT_FOUND, "token-not-found", "No such token"),
            ItemNotFound => (StatusCode::NOT_FOUND, "item-not-found", "No such item"),
            OwnerNotFound => (
                StatusCode::NOT_FOUND,
                "owner-not-found",
                "No token was ever issued to this owner; owners are named by their Cognito sub",
            ),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "No such route"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed on this route",
            ),
            TokenLimitReached => (
                StatusCode::CONFLICT,
                "token-limit-reached",
                "The maximum number of active tokens is reached",
            ),
            TokenNotActive => (
                StatusCode::CONFLICT,
                "token-not-active",
                "The token is revoked or expired",
            ),
            TokenAlreadyRotated => (
                StatusCode::CONFLICT,
                "token-already-rotated",
                "The token was already rotated",
            ),
            VersionConflict => (
                StatusCode::CONFLICT,
                "version-conflict",
                "The item changed since the version you sent",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The body exceeds 16 KiB",
            ),
            ReportTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The report exceeds 64 KiB or 100 entries",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be application/json",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
            ),
        }
    }
}

/// The RFC 9457 body (documentation schema).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "schema only")]
pub struct Problem {
    /// Stable type URI, `urn:agpat:problem:<slug>`.
    #[schema(rename = "type", example = "urn:agpat:problem:validation-failed")]
    kind: String,
    /// Human summary.
    title: String,
    /// HTTP status.
    status: u16,
    /// Every invalid field (400 only).
    errors: Option<Vec<FieldError>>,
}

#[cfg(feature = "store")]
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => ApiError::Validation(vec![FieldError::new(
                "cursor",
                "is not a cursor from this API",
            )]),
            other => {
                tracing::error!(error = %other, "token store failure");
                ApiError::Internal
            }
        }
    }
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let errors = match &self {
            ApiError::Validation(list) => Some(list.as_slice()),
            _ => None,
        };
        let body = ProblemBody {
            kind: format!("{PROBLEM_TYPE_PREFIX}{slug}"),
            title,
            status: status.as_u16(),
            errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn validation_problems_list_every_field() {
        let err = ApiError::Validation(vec![
            FieldError::new("name", "required"),
            FieldError::new("scopes", "empty"),
        ]);
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:agpat:problem:validation-failed",
                "title": "The request has invalid fields",
                "status": 400,
                "errors": [{"field": "name", "message": "required"}, {"field": "scopes", "message": "empty"}]
            })
        );
    }
}
