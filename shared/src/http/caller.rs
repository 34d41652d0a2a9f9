//! Who is calling, taken only from the authorizer context API Gateway forwards.
//! The service never looks at `Authorization` itself.

use crate::context::Refusal;
use crate::manifest::Manifest;
use crate::{Clock, Principal};
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

use crate::http::problem::ApiError;

/// The authenticated caller, plus request facts for the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal as the authorizer decided it.
    pub principal: Principal,
    /// Client IP as API Gateway saw it.
    pub source_ip: String,
    /// The `User-Agent` header, truncated.
    pub user_agent: String,
}

/// Request facts that exist on public routes too.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Client IP as API Gateway saw it.
    pub source_ip: String,
    /// The `User-Agent` header, truncated.
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let source_ip = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV1(ctx)) => {
                ctx.identity.source_ip.clone().unwrap_or_default()
            }
            _ => String::new(),
        };
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        Ok(Self {
            source_ip,
            user_agent,
        })
    }
}

/// Handler state that can tell the time. The [`Caller`] extractor needs it:
/// API Gateway may replay a cached Allow (and its context) for up to its TTL
/// after the credential's expiry, so the expiry is checked again here.
pub trait HasClock {
    /// The clock handlers use.
    fn clock(&self) -> &dyn Clock;
}

/// Handler state that holds the manifest: the [`Caller`] extractor names
/// scopes and re-checks each route's access from it.
pub trait HasManifest {
    /// The manifest this Lambda loaded at cold start.
    fn manifest(&self) -> &Manifest;
}

impl<S: Send + Sync + HasClock + HasManifest> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// Reads the principal, refuses it once its credential has expired, and
    /// re-checks the route's scope from the manifest (defence in depth: the
    /// authorizer's policy already did).
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(RequestContext::ApiGatewayV1(ctx)) = parts.extensions.get::<RequestContext>()
        else {
            return Err(ApiError::Unauthenticated);
        };
        let template = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| crate::http::template_of(m.as_str()))
            .ok_or(ApiError::NotFound)?;
        let principal = crate::context::authorize(
            &ctx.authorizer.fields,
            parts.method.as_str(),
            &template,
            state.manifest(),
            state.clock().now(),
        )
        .map_err(|refusal| match refusal {
            Refusal::Unauthenticated(e) => {
                tracing::warn!(error = %e, "request without a valid authorizer context");
                ApiError::Unauthenticated
            }
            Refusal::Expired => ApiError::CredentialExpired,
            Refusal::UnknownRoute => ApiError::NotFound,
            Refusal::InsufficientScope => ApiError::InsufficientScope,
        })?;
        let info = RequestInfo::from_request_parts(parts, state).await?;
        Ok(Self {
            principal,
            source_ip: info.source_ip,
            user_agent: info.user_agent,
        })
    }
}
