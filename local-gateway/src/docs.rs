//! The API explorer: Swagger UI (assets vendored into the binary, no CDN)
//! over one OpenAPI 3.1 document: the token service's routes merged with the
//! adopter's. The adopter's part is their own document when they give one
//! (`AGPAT_OPENAPI`), completed from the manifest for any route it leaves
//! out; every declared operation's security comes from the manifest.
//!
//! The explorer lives at `/docs` and `/openapi.json`, unless the manifest
//! declares routes there: then at `/_agpat/docs` and `/_agpat/openapi.json`,
//! and nowhere if those are declared too. The API's own routes always win.

use shared::Manifest;
use shared::http::openapi::{apply_route_table, manifest_document};
use utoipa::openapi::OpenApi;
use utoipa::openapi::server::Server;
use utoipa_swagger_ui::SwaggerUi;

/// Path of the committed copy of the token service's document (a test fails
/// when it drifts).
pub const COMMITTED_OPENAPI: &str = "docs/openapi.json";

fn titled(mut doc: OpenApi, title: &str, description: &str) -> OpenApi {
    doc.info.title = title.into();
    doc.info.description = Some(description.into());
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.servers = Some(vec![Server::new("/")]);
    doc
}

/// The component's own document: the `/tokens` routes.
pub fn token_document() -> OpenApi {
    titled(
        token_service::openapi::openapi(),
        "agpat",
        "Personal access tokens for API Gateway REST APIs. Every protected operation \
         accepts a Cognito JWT or a PAT as a bearer credential and names the scope it needs.",
    )
}

/// The whole API's document: the token routes, then the adopter's own
/// document (if any), then the manifest for whatever it left out; the
/// security of every declared operation is the manifest's.
pub fn document(manifest: &Manifest, adopter: Option<OpenApi>) -> OpenApi {
    let mut doc = token_document();
    if let Some(own) = adopter {
        doc.merge(own);
    }
    doc.merge(manifest_document(manifest));
    let declared = manifest.routes().routes().iter().filter(|r| !r.built_in);
    apply_route_table(&mut doc, declared, manifest.scopes());
    doc
}

/// The committed token document: pretty JSON with a trailing newline.
pub fn openapi_json() -> String {
    let mut text = token_document().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// Where the explorer can live without shadowing a declared route: `/` or
/// `/_agpat/`, or nowhere.
pub fn explorer_base(manifest: &Manifest) -> Option<&'static str> {
    let taken = |prefix: &str| {
        manifest.routes().routes().iter().any(|r| {
            r.path == format!("{prefix}openapi.json")
                || r.path == format!("{prefix}docs")
                || r.path.starts_with(&format!("{prefix}docs/"))
                || r.path.starts_with(&format!("{prefix}{{"))
        })
    };
    ["/", "/_agpat/"].into_iter().find(|base| !taken(base))
}

/// Swagger UI at `{base}docs` over `doc` at `{base}openapi.json`.
pub fn router<S: Clone + Send + Sync + 'static>(base: &str, doc: OpenApi) -> axum::Router<S> {
    SwaggerUi::new(format!("{base}docs"))
        .url(format!("{base}openapi.json"), doc)
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

    /// Token routes and every declared route, both security schemes, and the
    /// adopter's own operations kept where they exist.
    #[test]
    fn the_document_covers_every_route_with_both_security_schemes() {
        let manifest = shared::testing::manifest();
        let mut own = OpenApi::new(
            utoipa::openapi::Info::new("docs", "1"),
            utoipa::openapi::Paths::new(),
        );
        own.paths.add_path_operation(
            "/docs",
            vec![utoipa::openapi::HttpMethod::Get],
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("The adopter's own words"))
                .build(),
        );
        let doc = serde_json::to_value(document(&manifest, Some(own))).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["cognitoJwt"]["bearerFormat"], "JWT");
        assert_eq!(schemes["pat"]["bearerFormat"], "agpat");
        // Bound tokens (RFC 9449): the DPoP credential and its proof header,
        // required together.
        assert_eq!(schemes["patDpop"]["in"], "header");
        assert_eq!(schemes["patDpop"]["name"], "Authorization");
        assert_eq!(schemes["dpopProof"]["name"], "DPoP");
        let token_op = &doc["paths"]["/tokens"]["get"]["security"];
        assert_eq!(token_op[2]["patDpop"][0], "tokens:read");
        assert_eq!(token_op[2]["dpopProof"], serde_json::json!([]));
        for route in manifest.routes().routes() {
            let op = &doc["paths"][&route.path][route.method.as_str().to_lowercase()];
            assert!(op.is_object(), "{} undocumented", route.label());
        }
        let own_op = &doc["paths"]["/docs"]["get"];
        assert_eq!(own_op["summary"], "The adopter's own words");
        assert_eq!(own_op["security"][0]["cognitoJwt"][0], "docs:read");
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }

    #[test]
    fn the_explorer_never_shadows_a_declared_route() {
        // The fixture declares /docs: the explorer moves aside.
        assert_eq!(
            explorer_base(&shared::testing::manifest()),
            Some("/_agpat/")
        );
        let plain = Manifest::parse("version = 1\n", "m").unwrap();
        assert_eq!(explorer_base(&plain), Some("/"));
        let both = Manifest::parse(
            "version = 1\n[[route]]\nmethod = \"GET\"\npath = \"/docs\"\naccess = \"public\"\n\
             [[route]]\nmethod = \"GET\"\npath = \"/_agpat/{x+}\"\naccess = \"public\"\n",
            "m",
        )
        .unwrap();
        assert_eq!(explorer_base(&both), None);
    }
}
