//! Lambda entry point: configuration and clients once per cold start; the
//! mode (`AGPAT_EXPIRY_MODE`: `sweep` or `notify`) picks the handler.

use anyhow::Context;
use expiry::{Notifier, Sweeper};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::config::{ProcessEnv, StoreConfig, required};
use shared::store::TokenStore;
use shared::{Clock, SystemClock};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let mode = required(&ProcessEnv, "AGPAT_EXPIRY_MODE", "sweep or notify")
        .context("invalid configuration")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    match mode.as_str() {
        "sweep" => {
            let store_cfg = StoreConfig::from_env(&ProcessEnv).context("invalid configuration")?;
            let bus = required(&ProcessEnv, "AGPAT_EVENT_BUS", "the agpat EventBridge bus")
                .context("invalid configuration")?;
            let sweeper = Sweeper {
                store: TokenStore::from_env_config(store_cfg).await,
                events: aws_sdk_eventbridge::Client::new(&sdk),
                bus,
            };
            let sweeper = &sweeper;
            lambda_runtime::run(service_fn(
                move |event: LambdaEvent<serde_json::Value>| async move {
                    // Stop claiming 20 s before the Lambda timeout.
                    let deadline = shared::deadline::before_lambda_deadline(
                        event.context.deadline,
                        std::time::Duration::from_secs(20),
                    );
                    let report = sweeper.sweep(SystemClock.now(), Some(deadline)).await;
                    match &report {
                        Ok(r) => tracing::info!(report = ?r, "expiry sweep done"),
                        Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
                    }
                    report
                        .map(|r| serde_json::to_value(r).unwrap_or_default())
                        .map_err(|e| lambda_runtime::Diagnostic {
                            error_type: "ExpirySweepError".into(),
                            error_message: e.to_string(),
                        })
                },
            ))
            .await
        }
        "notify" => {
            let notifier = Notifier {
                cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
                user_pool_id: required(&ProcessEnv, "USER_POOL_ID", "the owners' user pool")
                    .context("invalid configuration")?,
                ses: aws_sdk_sesv2::Client::new(&sdk),
                from: required(&ProcessEnv, "AGPAT_EMAIL_FROM", "a verified SES identity")
                    .context("invalid configuration")?,
            };
            let notifier = &notifier;
            lambda_runtime::run(service_fn(
                move |event: LambdaEvent<serde_json::Value>| async move {
                    let outcome = notifier.notify(&event.payload).await;
                    match &outcome {
                        Ok(o) => tracing::info!(outcome = ?o, "owner notice handled"),
                        Err(e) => {
                            tracing::error!(error = %e, "owner notice failed; will be retried")
                        }
                    }
                    outcome
                        .map(|o| serde_json::to_value(o).unwrap_or_default())
                        .map_err(|e| lambda_runtime::Diagnostic {
                            error_type: "OwnerNoticeError".into(),
                            error_message: e.to_string(),
                        })
                },
            ))
            .await
        }
        other => anyhow::bail!("AGPAT_EXPIRY_MODE must be sweep or notify, not {other:?}"),
    }
    .map_err(|e| anyhow::anyhow!(e))
    .context("lambda runtime stopped")
}
