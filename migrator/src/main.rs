//! `migrator`: runs the v1 → v2 token migration.
//!
//! As a Lambda (when `AWS_LAMBDA_RUNTIME_API` is set): the event is a
//! `MigrationRequest` (`{"dryRun": true}`…); the answer is the report, and EMF
//! metrics go to stdout. Invoke it again to resume an interrupted run.
//!
//! Locally: `migrator [--dry-run] [--segments N] [--rate N]` with the usual
//! `TABLE_NAME`, `DYNAMODB_ENDPOINT` and AWS variables; progress and ETA on stderr.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use migrator::{MigrationRequest, emf_lines, migrate, progress_line};
use shared::config::{ProcessEnv, StoreConfig};
use shared::store::TokenStore;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let cfg = StoreConfig::from_env(&ProcessEnv).context("invalid store configuration")?;
    let namespace =
        shared::emf::Namespace::from_process_env().context("invalid AGPAT_METRICS_NAMESPACE")?;
    let store = TokenStore::from_env_config(cfg).await;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_runtime::run(lambda_runtime::service_fn(
            |event: lambda_runtime::LambdaEvent<MigrationRequest>| {
                let store = store.clone();
                let namespace = namespace.clone();
                async move {
                    let report = migrate(&store, &event.payload.config(), Duration::from_secs(10), |p, t| {
                        tracing::info!(progress = %progress_line(p, t, None), "migration progress");
                    })
                    .await
                    .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
                        .unwrap_or(0);
                    let mut out = std::io::stdout().lock();
                    for line in emf_lines(&namespace, &report, now_ms) {
                        let _ = writeln!(out, "{line}");
                    }
                    Ok::<_, lambda_runtime::Error>(report)
                }
            },
        ))
        .await
        .map_err(|e| anyhow::anyhow!(e));
    }

    let mut request = MigrationRequest::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dry-run" => request.dry_run = true,
            "--segments" => request.segments = Some(args.next().context("--segments N")?.parse()?),
            "--rate" => {
                request.max_writes_per_sec = Some(args.next().context("--rate N")?.parse()?)
            }
            other => {
                bail!("unknown argument {other}: migrator [--dry-run] [--segments N] [--rate N]")
            }
        }
    }
    let approx = store
        .client()
        .describe_table()
        .table_name(&store.config().table_name)
        .send()
        .await
        .ok()
        .and_then(|t| t.table().and_then(|t| t.item_count()))
        .and_then(|n| u64::try_from(n).ok());
    let report = migrate(
        &store,
        &request.config(),
        Duration::from_millis(500),
        |p, t| {
            eprint!("\r{}   ", progress_line(p, t, approx));
        },
    )
    .await
    .context("migration failed")?;
    eprintln!();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
