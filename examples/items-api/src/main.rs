//! Lambda entry point: configuration and clients once per cold start.

use std::sync::Arc;

use agpat_context::{Manifest, SystemClock};
use anyhow::Context;
use items_api::items::ItemStore;
use items_api::{AppState, handle, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    agpat_context::init_lambda_logging_with(items_api::LOG_TARGETS);
    // The business API knows only its items table: it has no access to the
    // token table at all (IAM), so it reads no token setting either.
    let table = std::env::var("ITEMS_TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .context("ITEMS_TABLE_NAME must name the items table")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut dynamo = aws_sdk_dynamodb::config::Builder::from(&sdk);
    // Local runs (make dev, tests) point at moto.
    if let Ok(endpoint) = std::env::var("DYNAMODB_ENDPOINT") {
        dynamo = dynamo.endpoint_url(endpoint);
    }
    let client = aws_sdk_dynamodb::Client::from_conf(dynamo.build());
    let manifest = Arc::new(Manifest::from_env().context("invalid agpat manifest")?);
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
