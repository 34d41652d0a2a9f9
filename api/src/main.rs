//! Lambda entry point: configuration and clients once per cold start.

use std::sync::Arc;

use anyhow::Context;
use api::{AppState, handle, router};
use shared::SystemClock;
use shared::config::{ProcessEnv, StoreConfig};
use shared::items::ItemStore;
use shared::store::TokenStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let cfg = StoreConfig::from_env(&ProcessEnv).context("invalid api configuration")?;
    let table = cfg.table_name.clone();
    let client = TokenStore::from_env_config(cfg).await.client().clone();
    let app = router(AppState {
        items: ItemStore::new(client, table),
        clock: Arc::new(SystemClock),
    });
    lambda_http::run(lambda_http::service_fn(move |request| {
        handle(app.clone(), request)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("lambda runtime stopped")
}
