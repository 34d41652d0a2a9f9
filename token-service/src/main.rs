//! Lambda entry point: configuration and clients once per cold start.

use std::sync::Arc;

use anyhow::Context;
use shared::SystemClock;
use shared::config::ProcessEnv;
use shared::store::TokenStore;
use token_service::{AppState, ServiceConfig, handle, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let cfg =
        ServiceConfig::from_env(&ProcessEnv).context("invalid token-service configuration")?;
    // A bad metrics namespace stops the cold start, as in the authorizer.
    token_service::audit::metrics_namespace().context("invalid AGPAT_METRICS_NAMESPACE")?;
    let hasher = cfg.hash.hasher().context("invalid argon2 parameters")?;
    // The adopter's scopes; any mistake stops the cold start with its line.
    let manifest = Arc::new(shared::Manifest::from_env().context("invalid agpat manifest")?);
    let store = TokenStore::from_env_config(cfg.store.clone()).await;
    let state = AppState::new(
        store,
        hasher,
        Arc::new(SystemClock),
        cfg.max_lifetime_days,
        manifest,
    )
    .and_then(|s| s.with_ip_allow_lists(cfg.ip_allow_lists))
    .and_then(|s| s.with_dpop(cfg.dpop))
    .and_then(|s| s.with_rate_tiers(cfg.rate_tiers.clone()))
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("cannot initialise the service state")?;
    let state = match &cfg.event_bus {
        Some(name) => {
            let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            state
                .with_event_bus(shared::bus::EventBus {
                    client: aws_sdk_eventbridge::Client::new(&sdk),
                    name: name.clone(),
                })
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("cannot attach the event bus")?
        }
        None => state,
    };
    let state = match &cfg.secret_scanning_keys_url {
        Some(url) => state
            .with_partner_keys(
                token_service::scanning::PartnerKeys::new(url.clone())
                    .context("secret-scanning key client")?,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot attach the secret-scanning keys")?,
        None => state,
    };
    let app = router(state);
    lambda_http::run(lambda_http::service_fn(move |request| {
        handle(app.clone(), request)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("lambda runtime stopped")
}
