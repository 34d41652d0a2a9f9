//! Trusting a request behind the agpat authorizer, in a business Lambda.
//!
//! API Gateway forwards the authorizer's context in
//! `requestContext.authorizer`. [`authorize`] turns it into a [`Principal`]
//! and checks what the authorizer's cached policy cannot: that the
//! credential has not expired since the policy was cached, and (defence in
//! depth) that the route's access rule in the manifest permits the
//! principal's scopes. Use it from a plain `lambda_runtime` handler with
//! [`authorize_proxy_event`], or from axum through the `Caller` extractor
//! (feature `http`), which calls the same function.

use std::collections::HashMap;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use thiserror::Error;

use crate::manifest::Manifest;
use crate::principal::{ContextError, Principal};
use crate::routes::{Access, Method};

/// Why a request is refused. Map it to an answer with [`Refusal::status`]
/// and [`Refusal::problem_type`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// No context, or one that does not parse: the request did not come
    /// through the authorizer.
    #[error("no valid authorizer context: {0}")]
    Unauthenticated(ContextError),
    /// The credential expired after API Gateway cached its Allow.
    #[error("the credential has expired")]
    Expired,
    /// The method and resource are not a route of the manifest.
    #[error("not a route of the manifest")]
    UnknownRoute,
    /// The route needs a scope the principal does not hold.
    #[error("insufficient scope")]
    InsufficientScope,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthenticated(_) | Refusal::Expired => 401,
            Refusal::UnknownRoute => 404,
            Refusal::InsufficientScope => 403,
        }
    }

    /// The RFC 9457 problem type (`urn:agpat:problem:<slug>`), as the
    /// component's own services use them.
    pub fn problem_type(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated(_) => "urn:agpat:problem:unauthenticated",
            Refusal::Expired => "urn:agpat:problem:credential-expired",
            Refusal::UnknownRoute => "urn:agpat:problem:not-found",
            Refusal::InsufficientScope => "urn:agpat:problem:insufficient-scope",
        }
    }
}

/// The principal of a request that reached `method` `resource` (the route
/// template, e.g. `/docs/{docId}`, as API Gateway reports it in `resource`)
/// with `authorizer` as its forwarded context, at `now` (Unix seconds).
pub fn authorize(
    authorizer: &HashMap<String, serde_json::Value>,
    method: &str,
    resource: &str,
    manifest: &Manifest,
    now: i64,
) -> Result<Principal, Refusal> {
    let principal = Principal::from_forwarded_context(authorizer, manifest.scopes())
        .map_err(Refusal::Unauthenticated)?;
    // Expiry is exclusive, as in the authorizer: at `expires_at` it is over.
    if now >= principal.expires_at {
        return Err(Refusal::Expired);
    }
    let method = Method::parse(method).ok_or(Refusal::UnknownRoute)?;
    let route = manifest
        .routes()
        .routes()
        .iter()
        .find(|r| r.method == method && r.path == resource)
        .ok_or(Refusal::UnknownRoute)?;
    match route.access {
        Access::Public => Ok(principal),
        access if access.permits(principal.scopes) => Ok(principal),
        _ => Err(Refusal::InsufficientScope),
    }
}

/// [`authorize`] for a REST proxy-integration event (`lambda_runtime` with
/// `ApiGatewayProxyRequest`).
pub fn authorize_proxy_event(
    event: &ApiGatewayProxyRequest,
    manifest: &Manifest,
    now: i64,
) -> Result<Principal, Refusal> {
    authorize(
        &event.request_context.authorizer.fields,
        event.http_method.as_str(),
        event.resource.as_deref().unwrap_or_default(),
        manifest,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            "version = 1\n[[scope]]\nname = \"docs:read\"\ndescription = \"\"\n\
             [[scope]]\nname = \"docs:write\"\ndescription = \"\"\n\
             [[route]]\nmethod = \"GET\"\npath = \"/docs/{docId}\"\nscope = \"docs:read\"\n\
             [[route]]\nmethod = \"PUT\"\npath = \"/docs/{docId}\"\nscope = \"docs:write\"\n\
             [[route]]\nmethod = \"GET\"\npath = \"/health\"\naccess = \"public\"\n",
            "m",
        )
        .unwrap()
    }

    fn event(method: &str, resource: &str, scopes: &str) -> ApiGatewayProxyRequest {
        let mut sample = crate::principal::sample_forwarded_context();
        sample["scopes"] = scopes.into();
        serde_json::from_value(serde_json::json!({
            "resource": resource,
            "path": resource.replace("{docId}", "d1"),
            "httpMethod": method,
            "headers": {},
            "requestContext": {"httpMethod": method, "resourcePath": resource, "authorizer": sample}
        }))
        .unwrap()
    }

    const NOW: i64 = 1_899_999_999;

    #[test]
    fn a_proxy_event_yields_the_principal_when_the_route_permits_it() {
        let m = manifest();
        let p =
            authorize_proxy_event(&event("GET", "/docs/{docId}", "docs:read"), &m, NOW).unwrap();
        assert_eq!(m.scopes().to_space_separated(p.scopes), "docs:read");
        assert_eq!(p.token_id.unwrap().as_str(), "0123456789ABCDEFG");
    }

    #[test]
    fn scope_expiry_route_and_context_are_each_checked() {
        let m = manifest();
        let refused =
            |e: ApiGatewayProxyRequest, now| authorize_proxy_event(&e, &m, now).unwrap_err();
        let wrong = refused(event("PUT", "/docs/{docId}", "docs:read"), NOW);
        assert_eq!(
            (wrong.status(), wrong.problem_type()),
            (403, "urn:agpat:problem:insufficient-scope")
        );
        assert_eq!(
            refused(event("GET", "/docs/{docId}", "docs:read"), NOW + 1),
            Refusal::Expired
        );
        assert_eq!(
            refused(event("GET", "/nope", "docs:read"), NOW),
            Refusal::UnknownRoute
        );
        assert_eq!(
            refused(event("DELETE", "/docs/{docId}", "docs:read"), NOW),
            Refusal::UnknownRoute
        );
        let mut bare = event("GET", "/docs/{docId}", "docs:read");
        bare.request_context.authorizer.fields.clear();
        assert!(matches!(refused(bare, NOW), Refusal::Unauthenticated(_)));
        // A public route needs no scope, but a context still has to be valid.
        assert!(authorize_proxy_event(&event("GET", "/health", ""), &m, NOW).is_ok());
    }
}
