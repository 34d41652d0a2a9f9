//! The OpenAPI document of `/tokens`, generated from code.
//!
//! Handlers carry `#[utoipa::path]`; the security requirement of every
//! operation is then filled in from the shared route table, so the documented
//! scope can never drift from the enforced one.

use shared::routes::{Access, Method, ROUTES, Service};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{PathItem, path::Operation};

use crate::handlers;
use shared::http::problem::{FieldError, Problem};

/// Name of the security scheme (a bearer Cognito JWT or PAT).
pub const SECURITY_SCHEME: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agpat token service",
        description = "Issue, list, inspect, rotate and revoke personal access tokens."
    ),
    paths(
        handlers::create,
        handlers::list,
        handlers::delete_all,
        handlers::get_self,
        handlers::delete_self,
        handlers::revoke_presented,
        handlers::get_one,
        handlers::delete_one,
        handlers::rotate
    ),
    components(schemas(
        handlers::TokenView,
        handlers::CreateTokenBody,
        handlers::RotateBody,
        handlers::RevokePresentedBody,
        handlers::IssuedTokenBody,
        handlers::TokenListBody,
        Problem,
        FieldError
    ))
)]
struct Generated;

fn operation_mut(item: &mut PathItem, method: Method) -> Option<&mut Operation> {
    match method {
        Method::Get => item.get.as_mut(),
        Method::Post => item.post.as_mut(),
        Method::Put => item.put.as_mut(),
        Method::Delete => item.delete.as_mut(),
    }
}

/// The document, with each operation's security taken from the route table.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Generated::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for route in ROUTES.iter().filter(|r| r.service == Service::TokenService) {
        let Some(item) = doc.paths.paths.get_mut(route.path) else {
            continue;
        };
        let Some(op) = operation_mut(item, route.method) else {
            continue;
        };
        for (status, response) in op.responses.responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if let (true, utoipa::openapi::RefOr::T(response)) = (is_error, response)
                && let Some(content) = response.content.shift_remove("application/json")
            {
                response
                    .content
                    .insert("application/problem+json".to_owned(), content);
            }
        }
        op.security = Some(match route.access {
            Access::Public => vec![SecurityRequirement::default()],
            Access::Authenticated => vec![SecurityRequirement::new(
                SECURITY_SCHEME,
                Vec::<String>::new(),
            )],
            Access::Scope(scope) => {
                vec![SecurityRequirement::new(SECURITY_SCHEME, [scope.as_str()])]
            }
        });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document and the route table list exactly the same operations, and
    /// each operation states the scope the table requires.
    #[test]
    fn the_document_matches_the_route_table() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                if ["get", "post", "put", "delete"].contains(&method.as_str()) {
                    documented.push((method.to_uppercase(), path.clone(), op["security"].clone()));
                }
            }
        }
        let mut expected: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.service == Service::TokenService)
            .map(|r| {
                let security = match r.access {
                    Access::Public => serde_json::json!([{}]),
                    Access::Authenticated => serde_json::json!([{"bearer": []}]),
                    Access::Scope(s) => serde_json::json!([{"bearer": [s.as_str()]}]),
                };
                (r.method.as_str().to_owned(), r.path.to_owned(), security)
            })
            .collect();
        documented.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        expected.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(documented, expected);
    }

    #[test]
    fn every_operation_documents_its_error_responses_as_problems() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert!(
            doc["components"]["schemas"]["TokenView"]["properties"]
                .get("token")
                .is_none()
        );
        assert!(doc["components"]["schemas"]["IssuedTokenBody"].is_object());
        let not_found = &doc["paths"]["/tokens/{id}"]["get"]["responses"]["404"]["content"];
        assert!(
            not_found["application/problem+json"].is_object(),
            "{not_found}"
        );
    }
}
