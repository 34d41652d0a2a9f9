//! A business Lambda on `lambda_http` + axum: `GET /docs/{docId}` of the
//! fixture manifest, with the `Caller` extractor (feature `axum`).

use std::sync::Arc;

use agpat_context::{Caller, Clock, HasClock, HasManifest, Manifest, SystemClock};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

/// Handler state: the manifest and a clock, as `Caller` needs them.
#[derive(Clone)]
pub struct AppState {
    /// Loaded once per cold start.
    pub manifest: Arc<Manifest>,
    /// The time, injectable for tests.
    pub clock: Arc<dyn Clock>,
}

impl HasClock for AppState {
    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
}

impl HasManifest for AppState {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

/// `GET /docs/{docId}`: the caller, already checked.
async fn read_doc(
    State(state): State<AppState>,
    caller: Caller,
    Path(doc_id): Path<String>,
) -> Json<serde_json::Value> {
    let p = caller.principal;
    Json(serde_json::json!({
        "doc": doc_id,
        "owner": p.sub.as_str(),
        "scopes": state.manifest.scopes().to_space_separated(p.scopes),
    }))
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/docs/{docId}", get(read_doc))
        .with_state(state)
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    agpat_context::init_lambda_logging_with(&["axum_handler"]);
    let state = AppState {
        manifest: Arc::new(Manifest::from_env()?),
        clock: Arc::new(SystemClock),
    };
    let app = router(state);
    lambda_http::run(lambda_http::service_fn(move |request| {
        agpat_context::handle(app.clone(), request)
    }))
    .await
}
