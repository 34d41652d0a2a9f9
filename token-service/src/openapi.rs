//! The OpenAPI document of `/tokens`, generated from code: handlers carry
//! `#[utoipa::path]`, and security comes from the route table.

use shared::ScopeRegistry;
use shared::http::openapi::apply_route_table;
use shared::http::problem::{FieldError, Problem};
use shared::routes::built_in_routes;
use utoipa::OpenApi;

use crate::{admin, handlers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agpat token service",
        description = "Issue, list, inspect, rotate and revoke personal access tokens; administrators act on anyone's."
    ),
    paths(
        handlers::create,
        handlers::list,
        handlers::delete_all,
        handlers::get_self,
        handlers::delete_self,
        handlers::revoke_presented,
        handlers::secret_scanning_report,
        handlers::get_one,
        handlers::delete_one,
        handlers::rotate,
        handlers::patch,
        handlers::events,
        admin::list,
        admin::delete_all,
        admin::create_service_token,
        admin::get_one,
        admin::delete_one,
        admin::events
    ),
    components(schemas(
        handlers::TokenView,
        handlers::CreateTokenBody,
        handlers::RotateBody,
        handlers::RevokePresentedBody,
        handlers::SecretScanningFinding,
        handlers::SecretScanningLabel,
        handlers::IssuedTokenBody,
        handlers::TokenListBody,
        handlers::UseSiteView,
        handlers::TokenEventView,
        handlers::TokenEventsBody,
        handlers::PatchTokenBody,
        handlers::AdminActorView,
        admin::AdminTokenView,
        admin::AdminTokenListBody,
        admin::ServiceTokenBody,
        Problem,
        FieldError
    ))
)]
struct Generated;

/// The document of the token service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Generated::openapi();
    apply_route_table(&mut doc, &built_in_routes(), &ScopeRegistry::built_in());
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::http::openapi::{declared_operations, expected_operations};

    /// The document and the route table list exactly the same operations, and
    /// each operation states the scope the table requires.
    #[test]
    fn the_document_matches_the_route_table() {
        assert_eq!(
            declared_operations(&openapi()),
            expected_operations(&built_in_routes(), &ScopeRegistry::built_in())
        );
    }

    /// Swagger UI renders a summary as plain text, so a backtick would show
    /// raw; the summary is the route table's one line, the same words the
    /// infrastructure and the manifest documents use.
    #[test]
    fn summaries_are_the_route_tables_plain_text() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for route in built_in_routes() {
            let op = &doc["paths"][&route.path][route.method.as_str().to_lowercase()];
            let summary = op["summary"].as_str().unwrap_or_default();
            assert_eq!(Some(summary), route.summary.as_deref(), "{}", route.label());
            assert!(!summary.contains('`'), "{summary}");
        }
    }

    #[test]
    fn error_responses_are_problems_and_no_schema_carries_a_hash() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        assert!(
            doc["components"]["schemas"]["TokenView"]["properties"]
                .get("token")
                .is_none()
        );
        assert!(!doc.to_string().contains("\"hash\""));
        let not_found = &doc["paths"]["/tokens/{id}"]["get"]["responses"]["404"]["content"];
        assert!(
            not_found["application/problem+json"].is_object(),
            "{not_found}"
        );
    }
}
