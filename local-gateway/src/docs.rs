//! The API explorer: Swagger UI (assets vendored into the binary, no CDN) at
//! `/docs`, over the OpenAPI 3.1 document generated from code at `/openapi.json`.

use utoipa::openapi::OpenApi;
use utoipa::openapi::server::Server;
use utoipa_swagger_ui::SwaggerUi;

/// Path of the committed copy of the document (a test fails when it drifts).
pub const COMMITTED_OPENAPI: &str = "docs/openapi.json";

/// The whole API's document: token service and business API, merged.
pub fn openapi() -> OpenApi {
    let mut doc = token_service::openapi::openapi();
    doc.merge(api::openapi::openapi());
    doc.info.title = "agpat".into();
    doc.info.description = Some(
        "Cognito JWT and personal access token authentication for API Gateway REST APIs. \
         Every protected operation accepts either bearer credential and names the scope it needs."
            .into(),
    );
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.servers = Some(vec![Server::new("/")]);
    doc
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// `/docs` (Swagger UI) and `/openapi.json`.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", openapi())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == openapi_json(),
            "docs/openapi.json is stale: run `make generated` and commit the result"
        );
    }

    #[test]
    fn the_document_covers_every_route_with_both_security_schemes() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["cognitoJwt"]["bearerFormat"], "JWT");
        assert_eq!(schemes["pat"]["bearerFormat"], "agpat");
        let manifest = api::committed_manifest().unwrap();
        for route in manifest.routes().routes() {
            let op = &doc["paths"][&route.path][route.method.as_str().to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} undocumented",
                route.method,
                route.path
            );
        }
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
