//! The OpenAPI document of `/items` and `/me`, generated from code.

use agpat_context::http::{FieldError, Problem, apply_route_table};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agpat business API",
        description = "Items and the caller's identity."
    ),
    paths(
        crate::me,
        crate::create_item,
        crate::list_items,
        crate::get_item,
        crate::update_item,
        crate::delete_item
    ),
    components(schemas(
        crate::Me,
        crate::ItemBody,
        crate::CreateItemBody,
        crate::UpdateItemBody,
        crate::ItemList,
        Problem,
        FieldError
    ))
)]
struct Generated;

/// The document of the business API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Generated::openapi();
    // The manifest is compiled in and parsed by the tests, so it is valid.
    if let Ok(manifest) = crate::committed_manifest() {
        let declared = manifest.routes().routes().iter().filter(|r| !r.built_in);
        apply_route_table(&mut doc, declared, manifest.scopes());
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use agpat_context::http::{declared_operations, expected_operations};

    #[test]
    fn the_document_matches_the_route_table() {
        assert_eq!(
            declared_operations(&openapi()),
            expected_operations(
                crate::committed_manifest()
                    .unwrap()
                    .routes()
                    .routes()
                    .iter()
                    .filter(|r| !r.built_in),
                crate::committed_manifest().unwrap().scopes(),
            )
        );
    }
}
