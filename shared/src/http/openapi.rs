//! OpenAPI post-processing shared by the services: security requirements and
//! error media types come from the manifest's route table, so the documented
//! scope of an operation can never drift from the enforced one.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi, PathItem, RefOr, path::Operation};

use crate::routes::{Access, Method, Route};
use crate::scope::ScopeRegistry;

/// Security scheme for a Cognito access token (`Authorization: Bearer <JWT>`).
pub const JWT_SCHEME: &str = "cognitoJwt";
/// Security scheme for a personal access token (`Authorization: Bearer agpat_…`).
pub const PAT_SCHEME: &str = "pat";
/// Security scheme for a PAT bound to a key (`Authorization: DPoP agpat_…`,
/// RFC 9449 §7.1). OpenAPI has no `DPoP` HTTP scheme, so it is declared as
/// the `Authorization` header, always together with [`DPOP_PROOF_SCHEME`].
pub const PAT_DPOP_SCHEME: &str = "patDpop";
/// Security scheme for the `DPoP` proof header that goes with [`PAT_DPOP_SCHEME`].
pub const DPOP_PROOF_SCHEME: &str = "dpopProof";

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
            SecurityRequirement::new(PAT_DPOP_SCHEME, Vec::<String>::new())
                .add(DPOP_PROOF_SCHEME, Vec::<String>::new()),
        ],
        Access::Scope(scope) => vec![
            SecurityRequirement::new(JWT_SCHEME, [scopes.name(scope)]),
            SecurityRequirement::new(PAT_SCHEME, [scopes.name(scope)]),
            SecurityRequirement::new(PAT_DPOP_SCHEME, [scopes.name(scope)])
                .add(DPOP_PROOF_SCHEME, Vec::<String>::new()),
        ],
    }
}

/// Adds both security schemes, sets the security and summary of each
/// operation in `routes` from the route table, and serves 4xx/5xx bodies as
/// `application/problem+json`.
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
    components.add_security_scheme(
        PAT_DPOP_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Authorization",
            "A personal access token bound to a key (DPoP, RFC 9449), as `DPoP agpat_…`: \
             on deployments with `dpop` on, and only with a `DPoP` proof header (`dpopProof`). \
             A bound token sent as `Bearer` is refused.",
        ))),
    );
    components.add_security_scheme(
        DPOP_PROOF_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "DPoP",
            "A fresh DPoP proof (RFC 9449 §4.2) per request: a compact JWS with header `typ` \
             `dpop+jwt`, `alg` ES256 or EdDSA and the public `jwk` the token is bound to; claims \
             `jti` (unique, 16–128 characters), `htm` (the method), `htu` (the URL without query), \
             `iat` (now; at most 60 s old by default) and `ath` (base64url SHA-256 of the token). \
             Exactly one per request; each is accepted once.",
        ))),
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
        // The summary is the route table's one plain line (Swagger UI shows
        // it raw); what the code's doc comment said first leads the
        // description, which is rendered as Markdown.
        if let Some(summary) = &route.summary {
            if let Some(first) = op.summary.take().filter(|f| f != summary) {
                op.description = Some(match op.description.take() {
                    Some(rest) => format!("{first}\n\n{rest}"),
                    None => first,
                });
            }
            op.summary = Some(summary.clone());
        }
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

/// An OpenAPI document of `manifest`'s declared routes, for an adopter that
/// has no document of its own (or leaves routes out of it): each operation
/// with its summary, path parameters (`{name+}` kept as API Gateway writes
/// it), a generic 200, and its security from the manifest.
pub fn manifest_document(manifest: &crate::Manifest) -> OpenApi {
    use crate::routes::Segment;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, ResponseBuilder, Type};

    let mut doc = OpenApi::new(
        utoipa::openapi::Info::new("API", "manifest"),
        utoipa::openapi::Paths::new(),
    );
    for route in manifest.routes().routes().iter().filter(|r| !r.built_in) {
        let mut op = OperationBuilder::new()
            .summary(route.summary.clone())
            .response(
                "200",
                ResponseBuilder::new().description("Served by the API"),
            );
        for segment in &route.segments {
            let name = match segment {
                Segment::Literal(_) => continue,
                Segment::Param(n) => n.clone(),
                Segment::Greedy(n) => format!("{n}+"),
            };
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(utoipa::openapi::Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        let method = match route.method {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Put => HttpMethod::Put,
            Method::Patch => HttpMethod::Patch,
            Method::Delete => HttpMethod::Delete,
            Method::Head => HttpMethod::Head,
            Method::Options => HttpMethod::Options,
        };
        doc.paths
            .add_path_operation(route.path.clone(), vec![method], op.build());
    }
    let declared = manifest.routes().routes().iter().filter(|r| !r.built_in);
    apply_route_table(&mut doc, declared, manifest.scopes());
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared route of the fixture is documented, with the security
    /// the manifest gives it and its path parameters.
    #[test]
    fn a_manifest_alone_documents_every_declared_route() {
        let manifest = crate::testing::manifest();
        let doc = manifest_document(&manifest);
        let declared = manifest.routes().routes().iter().filter(|r| !r.built_in);
        assert_eq!(
            declared_operations(&doc),
            expected_operations(declared, manifest.scopes())
        );
        let json = serde_json::to_value(&doc).unwrap();
        let greedy = &json["paths"]["/files/{path+}"]["get"]["parameters"][0];
        assert_eq!(greedy["name"], "path+");
        assert_eq!(greedy["in"], "path");
    }
}
