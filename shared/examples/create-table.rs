//! Creates the token table described by the environment (`TABLE_NAME`,
//! `DYNAMODB_ENDPOINT`, standard AWS variables). Used by `make dev`.

use anyhow::Context;
use shared::config::{ProcessEnv, StoreConfig};
use shared::store::TokenStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = StoreConfig::from_env(&ProcessEnv).context("invalid configuration")?;
    let table = cfg.table_name.clone();
    let store = TokenStore::from_env_config(cfg).await;
    store
        .create_table()
        .await
        .with_context(|| format!("failed to create table {table}"))?;
    println!("created table {table}");
    Ok(())
}
