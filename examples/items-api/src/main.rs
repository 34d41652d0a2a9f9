//! Lambda entry point: configuration and clients once per cold start.

use std::sync::Arc;

use anyhow::Context;
use items_api::items::ItemStore;
use items_api::{AppState, handle, router};
use shared::SystemClock;
use shared::config::{ProcessEnv, optional_url, required};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging_with(items_api::LOG_TARGETS);
    // The business API knows only its items table: it has no access to the
    // token table at all (IAM), so it reads no token setting either.
    let table = required(&ProcessEnv, "ITEMS_TABLE_NAME", "the items table's name")
        .context("invalid api configuration")?;
    let endpoint =
        optional_url(&ProcessEnv, "DYNAMODB_ENDPOINT").context("invalid api configuration")?;
    let client = shared::store::dynamodb_client(endpoint.as_deref()).await;
    let manifest = Arc::new(shared::Manifest::from_env().context("invalid agpat manifest")?);
    let app = router(AppState {
        items: ItemStore::new(client, table),
        clock: Arc::new(SystemClock),
        manifest,
    });
    lambda_http::run(lambda_http::service_fn(move |request| {
        handle(app.clone(), request)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("lambda runtime stopped")
}
