//! The business API: `/items` (CRUD with optimistic concurrency) and `/me`.
//!
//! It trusts only the authorizer context, re-checks each route's scope from
//! the route table (via the `Caller` extractor), and stores items under the
//! caller's own partition, so another user's item is simply not addressable.

pub mod items;
pub mod openapi;

/// This example's crates, which may log below `WARN`
/// (`agpat_context::init_lambda_logging_with`).
pub const LOG_TARGETS: &[&str] = &["items_api", "api", "items_dev"];

use std::collections::HashMap;
use std::sync::Arc;

use crate::items::{Item, ItemStore, ItemWrite};
use agpat_context::http::{ApiError, FieldError, Fields, JsonObject, Problem};
use agpat_context::{Caller, Clock, Manifest, Method, Route};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use serde::Serialize;

pub use agpat_context::handle;

/// Longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    /// Item persistence.
    pub items: ItemStore,
    /// Source of time.
    pub clock: Arc<dyn Clock>,
    /// This API's manifest: the `Caller` extractor re-checks each route's
    /// scope from it.
    pub manifest: Arc<Manifest>,
}

impl agpat_context::HasClock for AppState {
    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
}

impl agpat_context::HasManifest for AppState {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// This example's manifest as committed (`examples/items-api/agpat.toml`),
/// for its OpenAPI document and tests. The Lambda loads the deployed copy
/// from `AGPAT_MANIFEST`.
pub fn committed_manifest() -> Result<Manifest, agpat_context::ManifestError> {
    Manifest::parse(
        include_str!("../agpat.toml"),
        "examples/items-api/agpat.toml",
    )
}

fn validate_text(f: &mut Fields<'_>, key: &str, max: usize, required: bool) -> Option<String> {
    if !required && !f.has(key) {
        return Some(String::new());
    }
    let raw = f.string(key)?;
    let value = raw.trim();
    let chars = value.chars().count();
    let min = usize::from(required);
    if chars < min || chars > max {
        f.error(
            key,
            format!("must be {min} to {max} characters after trimming"),
        );
        return None;
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        f.error(key, "must not contain control characters");
        return None;
    }
    Some(value.to_owned())
}

/// `GET /me` response.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The user's Cognito `sub`.
    sub: String,
    /// Username, when the credential carries one.
    username: Option<String>,
    /// `jwt` or `pat`.
    auth_method: String,
    /// `user`, `user_token`, `service` or `service_token`.
    principal_kind: String,
    /// Scopes of this credential.
    scopes: Vec<String>,
    /// The PAT id, for PAT callers.
    token_id: Option<String>,
    /// Credential expiry, Unix seconds.
    expires_at: i64,
    /// Present when the credential is a token bound to a key (DPoP) and the
    /// request proved possession of it: the key's RFC 7638 thumbprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
}

/// An item as the API shows it (documentation schema mirrors [`Item`]).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct ItemBody {
    /// Time-ordered id (28 lower-case hex characters).
    id: String,
    /// 1–200 characters.
    name: String,
    /// Up to 4000 characters.
    description: String,
    /// Optimistic-concurrency version: send it back with `PUT`.
    version: i64,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
}

/// `POST /items` body.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "schema only")]
pub struct CreateItemBody {
    /// 1–200 characters.
    name: String,
    /// Optional, up to 4000 characters.
    description: Option<String>,
}

/// `PUT /items/{id}` body.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "schema only")]
pub struct UpdateItemBody {
    /// 1–200 characters.
    name: String,
    /// Optional, up to 4000 characters.
    description: Option<String>,
    /// The version you read; a different stored version is a 409.
    version: i64,
}

/// `GET /items` body.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemList {
    /// Newest first.
    #[schema(value_type = Vec<ItemBody>)]
    items: Vec<Item>,
    /// Pass as `cursor` for the next page.
    next_cursor: Option<String>,
}

/// `GET /me`: the principal as the authorizer saw it.
#[utoipa::path(get, path = "/me", tag = "me", responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Json<Me> {
    let p = caller.principal;
    Json(Me {
        sub: p.sub.to_string(),
        username: p.username,
        auth_method: p.method.as_str().to_owned(),
        principal_kind: p.kind.as_str().to_owned(),
        scopes: p
            .scopes
            .iter()
            .map(|s| state.manifest.scopes().name(s).to_owned())
            .collect(),
        token_id: p.token_id.map(|t| t.to_string()),
        expires_at: p.expires_at,
        dpop_jkt: p.dpop_jkt,
    })
}

/// `POST /items`.
#[utoipa::path(post, path = "/items", tag = "items", request_body = CreateItemBody,
    responses((status = 201, body = ItemBody), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_item(
    State(app): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let mut f = Fields::new(&body, &["name", "description"]);
    let name = validate_text(&mut f, "name", MAX_NAME_CHARS, true);
    let description = validate_text(&mut f, "description", MAX_DESCRIPTION_CHARS, false);
    f.finish()?;
    let (Some(name), Some(description)) = (name, description) else {
        return Err(ApiError::Internal);
    };
    let item = app
        .items
        .create(&caller.principal.sub, &name, &description, app.clock.now())
        .await?;
    let location = format!("/items/{}", item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(item),
    )
        .into_response())
}

/// `GET /items?limit=&cursor=`.
#[utoipa::path(get, path = "/items", tag = "items",
    params(("limit" = Option<i32>, Query, description = "1-100, default 20"), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ItemList), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_items(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ItemList>, ApiError> {
    let mut errors: Vec<FieldError> = query
        .keys()
        .filter(|k| !["limit", "cursor"].contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                &k.chars().take(64).collect::<String>(),
                "unknown query parameter",
            )
        })
        .collect();
    let limit = match query.get("limit").map(|l| l.parse::<i32>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            errors.push(FieldError::new("limit", "must be an integer from 1 to 100"));
            20
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let page = app
        .items
        .list(
            &caller.principal.sub,
            limit,
            query.get("cursor").map(String::as_str),
        )
        .await?;
    Ok(Json(ItemList {
        items: page.items,
        next_cursor: page.next,
    }))
}

/// `GET /items/{id}`.
#[utoipa::path(get, path = "/items/{id}", tag = "items", params(("id" = String, Path)),
    responses((status = 200, body = ItemBody), (status = 404, body = Problem)))]
pub async fn get_item(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Item>, ApiError> {
    app.items
        .get(&caller.principal.sub, &id)
        .await?
        .map(Json)
        .ok_or(ApiError::ItemNotFound)
}

/// `PUT /items/{id}` with the `version` last read (optimistic concurrency).
#[utoipa::path(put, path = "/items/{id}", tag = "items", params(("id" = String, Path)), request_body = UpdateItemBody,
    responses((status = 200, body = ItemBody), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update_item(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Item>, ApiError> {
    let mut f = Fields::new(&body, &["name", "description", "version"]);
    let name = validate_text(&mut f, "name", MAX_NAME_CHARS, true);
    let description = validate_text(&mut f, "description", MAX_DESCRIPTION_CHARS, false);
    let version = f.int_in("version", 1, i64::MAX);
    if !f.has("version") {
        f.error("version", "is required");
    }
    f.finish()?;
    let (Some(name), Some(description), Some(version)) = (name, description, version) else {
        return Err(ApiError::Internal);
    };
    match app
        .items
        .update(
            &caller.principal.sub,
            &id,
            &name,
            &description,
            version,
            app.clock.now(),
        )
        .await?
    {
        ItemWrite::Done(item) => Ok(Json(item)),
        ItemWrite::NotFound => Err(ApiError::ItemNotFound),
        ItemWrite::VersionConflict => Err(ApiError::VersionConflict),
    }
}

/// `DELETE /items/{id}`.
#[utoipa::path(delete, path = "/items/{id}", tag = "items", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
pub async fn delete_item(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.items.delete(&caller.principal.sub, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::ItemNotFound)
    }
}

/// The handler serving a route of the table, if this service serves it.
pub fn handler_for(route: &Route) -> Option<MethodRouter<AppState>> {
    use Method::{Delete, Get, Post, Put};
    if route.built_in {
        return None;
    }
    Some(match (route.method, route.path.as_str()) {
        (Get, "/items") => get(list_items),
        (Post, "/items") => post(create_item),
        (Get, "/items/{id}") => get(get_item),
        (Put, "/items/{id}") => put(update_item),
        (Delete, "/items/{id}") => delete(delete_item),
        (Get, "/me") => get(me),
        _ => return None,
    })
}

/// The router, generated from the manifest's declared routes.
pub fn router(state: AppState) -> Router {
    let manifest = Arc::clone(&state.manifest);
    let routes = manifest.routes().routes().iter().filter(|r| !r.built_in);
    agpat_context::http::service_router(routes, handler_for, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_in_the_table_has_a_handler() {
        let manifest = committed_manifest().unwrap();
        for route in manifest.routes().routes() {
            assert_eq!(
                handler_for(route).is_some(),
                !route.built_in,
                "{} {}",
                route.method,
                route.path
            );
        }
    }
}
