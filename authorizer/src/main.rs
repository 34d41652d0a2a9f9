//! Lambda entry point: build everything once at cold start, then serve events.

use std::sync::Arc;

use anyhow::Context;
use authorizer::Authorizer;
use authorizer::config::AuthorizerConfig;
use authorizer::event::AuthorizerEvent;
use authorizer::jwks::{HttpJwks, KeyCache};
use authorizer::jwt::JwtVerifier;
use authorizer::metrics::DecisionMetrics;
use authorizer::pat::PatVerifier;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::SystemClock;
use shared::config::ProcessEnv;
use shared::store::TokenStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();

    let cfg =
        AuthorizerConfig::from_env(&ProcessEnv).context("invalid authorizer configuration")?;
    // The adopter's scopes and routes; any mistake in it stops the cold start
    // with the line that caused it.
    let manifest = Arc::new(shared::Manifest::from_env().context("invalid agpat manifest")?);
    // Amazon's roots only (for a Cognito pool): no certificate store read
    // at cold start (authorizer::tls).
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(http) = authorizer::tls::sdk_http_client(cfg.tls_roots)? {
        loader = loader.http_client(http);
    }
    let sdk = loader.load().await;
    let mut dynamo = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .timeout_config(authorizer::dynamodb_timeouts())
        .retry_config(authorizer::dynamodb_retries());
    if let Some(endpoint) = &cfg.store.endpoint {
        dynamo = dynamo.endpoint_url(endpoint);
    }
    let store = TokenStore::new(
        aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
        cfg.store.clone(),
    );
    let hasher = cfg.hash.hasher().context("invalid argon2 parameters")?;
    let keys = KeyCache::new(
        HttpJwks::trusting(cfg.jwt.jwks_url.clone(), cfg.tls_roots)
            .context("cannot build JWKS client")?,
    );
    let pat = PatVerifier::new(
        store,
        hasher,
        cfg.pat.clone(),
        cfg.store.touch_interval_secs,
        Arc::clone(&manifest),
    )
    .context("cannot initialise the PAT cache key")?
    .with_ip_allow_lists(cfg.ip_allow_lists)
    .with_verified_capacity(cfg.verified_capacity);
    let authorizer = Arc::new(
        Authorizer::new(
            JwtVerifier::new(cfg.jwt.clone(), keys, manifest)
                .context("cannot initialise the JWT cache key")?,
            pat,
            Arc::new(SystemClock),
            cfg.max_credential_bytes,
        )
        // One EMF line per decision, written to stdout (CloudWatch Logs) by a
        // thread of its own: the decision only queues it.
        .with_metrics(
            DecisionMetrics::stdout(cfg.metrics_namespace.clone())
                .context("cannot start the metrics writer")?,
        )
        .with_rate_tiers(cfg.rate_tiers.clone())
        .with_dpop(cfg.dpop.clone()),
    );

    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| {
        let authorizer = Arc::clone(&authorizer);
        // The decision serialises from its shared renderings.
        async move { authorizer.decision(&event.payload).await }
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("lambda runtime stopped")?;
    Ok(())
}
