//! agpat for business Lambdas: trust the caller in one line.
//!
//! Behind the agpat authorizer, API Gateway forwards the decision in
//! `requestContext.authorizer`. This crate turns it into a typed
//! [`Principal`] and re-checks what a cached Allow cannot: the credential's
//! expiry, and the route's access rule in the same manifest the authorizer
//! runs (defence in depth). It carries no token store, no hashing and no AWS
//! SDK.
//!
//! - plain `lambda_runtime` with `ApiGatewayProxyRequest`:
//!   [`authorize_proxy_event`] (example `runtime_handler`);
//! - `lambda_http` + axum (feature `axum`): the [`Caller`] extractor, with
//!   handler state implementing [`HasClock`] and [`HasManifest`], served
//!   through [`handle`] (example `axum_handler`).
//!
//! Load the manifest once per cold start with [`Manifest::from_env`]
//! (`AGPAT_MANIFEST`; the CDK construct ships it in a layer).

pub use shared::context::{Refusal, authorize, authorize_proxy_event};
pub use shared::logging::init_lambda_logging_with;
pub use shared::manifest::{MANIFEST_ENV, Manifest, ManifestError};
pub use shared::principal::{AuthMethod, ContextError, Principal, PrincipalKind, UserId};
pub use shared::routes::{Access, Method, Route};
pub use shared::{Clock, Scope, ScopeRegistry, ScopeSet, SystemClock, TokenId};

/// The HTTP layer agpat's own services use, for axum business Lambdas: RFC
/// 9457 problems, strict JSON bodies, a router generated from the manifest's
/// routes, and OpenAPI security from the manifest.
#[cfg(feature = "axum")]
pub mod http {
    pub use shared::http::body::{Fields, JsonObject};
    pub use shared::http::openapi::{
        apply_route_table, declared_operations, expected_operations, manifest_document,
    };
    pub use shared::http::problem::{ApiError, FieldError, Problem};
    pub use shared::http::service_router;
}

#[cfg(feature = "axum")]
pub use shared::http::caller::{Caller, HasClock, HasManifest};
/// Serves one API Gateway request with an axum router: use it as the
/// `lambda_http` service (it routes on the path without the stage prefix).
#[cfg(feature = "axum")]
pub use shared::http::handle;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue};

/// The proxy response for a refused request: an RFC 9457 problem with the
/// status and type of the component's own services, and no detail about
/// the credential.
pub fn refusal_response(refusal: &Refusal) -> ApiGatewayProxyResponse {
    let status = refusal.status();
    let body = serde_json::json!({
        "type": refusal.problem_type(),
        "title": match refusal {
            Refusal::Unauthenticated(_) => "Authentication required",
            Refusal::Expired => "The credential has expired",
            Refusal::UnknownRoute => "No such route",
            Refusal::InsufficientScope => "The credential lacks the scope this route requires",
        },
        "status": status,
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/problem+json"),
    );
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}
