//! Lambda entry point: configuration and clients once per cold start.

use anyhow::Context;
use lambda_runtime::{LambdaEvent, service_fn};
use std::time::Duration;

use offboarding::Offboarding;
use shared::config::{ProcessEnv, StoreConfig, required};
use shared::store::TokenStore;
use shared::{Clock, SystemClock};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let store_cfg = StoreConfig::from_env(&ProcessEnv).context("invalid configuration")?;
    let user_pool_id = required(
        &ProcessEnv,
        "COGNITO_USER_POOL_ID",
        "the user pool whose users' tokens this handler revokes",
    )
    .context("invalid configuration")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = Offboarding {
        store: TokenStore::from_env_config(store_cfg).await,
        cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
        user_pool_id,
    };
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // Leave a margin before the Lambda timeout to answer.
            let deadline = shared::deadline::before_lambda_deadline(
                event.context.deadline,
                Duration::from_secs(5),
            );
            let outcome = handler
                .dispatch(event.payload, SystemClock.now(), Some(deadline))
                .await;
            match &outcome {
                Ok(summary) => tracing::info!(summary, "offboarding event handled"),
                Err(e) => tracing::error!(error = %e, "offboarding failed; will be retried"),
            }
            // Only the error's kind leaves the function (never event contents).
            outcome.map_err(|e| lambda_runtime::Diagnostic {
                error_type: "OffboardingError".into(),
                error_message: e.to_string(),
            })
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
    .context("lambda runtime stopped")
}
