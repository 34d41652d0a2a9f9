//! OpenAPI post-processing shared by the services: security requirements and
//! error media types come from the manifest's route table, so the documented
//! scope of an operation can never drift from the enforced one.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, PathItem, RefOr, path::Operation};

use crate::routes::{Access, Method, Route};
use crate::scope::ScopeRegistry;

/// Security scheme for a Cognito access token (`Authorization: Bearer <JWT>`).
pub const JWT_SCHEME: &str = "cognitoJwt";
/// Security scheme for a personal access token (`Authorization: Bearer agpat_…`).
pub const PAT_SCHEME: &str = "pat";

fn operation_mut(item: &mut PathItem, method: Method) -> Option<&mut Operation> {
    match method {
        Method::Get => item.get.as_mut(),
        Method::Post => item.post.as_mut(),
        Method::Put => item.put.as_mut(),
        Method::Patch => item.patch.as_mut(),
        Method::Delete => item.delete.as_mut(),
        Method::Head => item.head.as_mut(),
        Method::Options => item.options.as_mut(),
    }
}

/// The security requirements of a route: either credential, with the scope.
pub fn security_for(access: Access, scopes: &ScopeRegistry) -> Vec<SecurityRequirement> {
    match access {
        Access::Public => vec![SecurityRequirement::default()],
        Access::Authenticated => vec![
            SecurityRequirement::new(JWT_SCHEME, Vec::<String>::new()),
            SecurityRequirement::new(PAT_SCHEME, Vec::<String>::new()),
        ],
        Access::Scope(scope) => vec![
            SecurityRequirement::new(JWT_SCHEME, [scopes.name(scope)]),
            SecurityRequirement::new(PAT_SCHEME, [scopes.name(scope)]),
        ],
    }
}

/// Adds both security schemes, sets the security of each operation in `routes`
/// from its access rule, and serves 4xx/5xx bodies as `application/problem+json`.
pub fn apply_route_table<'a>(
    doc: &mut OpenApi,
    routes: impl IntoIterator<Item = &'a Route>,
    scopes: &ScopeRegistry,
) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        JWT_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("A Cognito access token"))
                .build(),
        ),
    );
    components.add_security_scheme(
        PAT_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("agpat")
                .description(Some("A personal access token from POST /tokens"))
                .build(),
        ),
    );
    for route in routes {
        let Some(op) = doc
            .paths
            .paths
            .get_mut(&route.path)
            .and_then(|item| operation_mut(item, route.method))
        else {
            continue;
        };
        for (status, response) in op.responses.responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if let (true, RefOr::T(response)) = (is_error, response)
                && let Some(content) = response.content.shift_remove("application/json")
            {
                response
                    .content
                    .insert("application/problem+json".to_owned(), content);
            }
        }
        op.security = Some(security_for(route.access, scopes));
    }
}

/// The `(METHOD, path, security)` triples a document declares, sorted (for drift tests).
pub fn declared_operations(doc: &OpenApi) -> Vec<(String, String, serde_json::Value)> {
    let value = serde_json::to_value(doc).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(paths) = value.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            for (method, op) in item.as_object().into_iter().flatten() {
                if Method::parse(&method.to_uppercase()).is_some() {
                    out.push((method.to_uppercase(), path.clone(), op["security"].clone()));
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// What [`declared_operations`] must return for `routes`.
pub fn expected_operations<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    scopes: &ScopeRegistry,
) -> Vec<(String, String, serde_json::Value)> {
    let mut out: Vec<_> = routes
        .into_iter()
        .map(|r| {
            let security = serde_json::to_value(security_for(r.access, scopes)).unwrap_or_default();
            (r.method.as_str().to_owned(), r.path.clone(), security)
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}
