//! Structured JSON logging shared by every Lambda.
//!
//! Whatever `RUST_LOG` says, every crate except our own is capped at `WARN`:
//! at `DEBUG`/`TRACE` the AWS SDK, its signer, hyper, h2, rustls and reqwest
//! print requests, canonical requests and bodies, which would include token
//! hashes read from DynamoDB. An allow-list, so a new dependency is capped too.

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, fmt};

/// Crates allowed to log below `WARN`: the component's, which never log
/// secrets. A business Lambda adds its own with [`init_lambda_logging_with`].
pub const OWN_TARGETS: &[&str] = &[
    "authorizer",
    "token_service",
    "shared",
    "agpat_manifest",
    "agpat_context",
    "local_gateway",
    "migrator",
    "offboarding",
    "agpat_cli",
    "expiry",
];

fn allowed(meta: &Metadata<'_>, extra: &[&str]) -> bool {
    let target = meta.target();
    let own = OWN_TARGETS.iter().chain(extra).any(|t| {
        target == *t
            || target
                .strip_prefix(t)
                .is_some_and(|rest| rest.starts_with("::"))
    });
    own || *meta.level() <= Level::WARN
}

/// A JSON subscriber writing to `writer`, filtered by `directives` (the
/// `RUST_LOG` syntax; invalid directives fall back to `info`) and the hard cap.
pub fn json_subscriber<W>(writer: W, directives: &str) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    json_subscriber_with(writer, directives, &[])
}

/// [`json_subscriber`], also letting the crates `extra` log below `WARN`.
pub fn json_subscriber_with<W>(
    writer: W,
    directives: &str,
    extra: &'static [&'static str],
) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry().with(
        fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter)
            .with_filter(filter_fn(move |meta| allowed(meta, extra))),
    )
}

/// Installs the JSON subscriber on stdout for a Lambda, reading `RUST_LOG`.
pub fn init_lambda_logging() {
    init_lambda_logging_with(&[]);
}

/// [`init_lambda_logging`] for a business Lambda: its own crates (`extra`,
/// e.g. `&["my_api"]`) may log below `WARN` too; every dependency stays capped.
pub fn init_lambda_logging_with(extra: &'static [&'static str]) {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(json_subscriber_with(
        std::io::stdout,
        &directives,
        extra,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate missing here would have its info lines (audit events
    /// included) silently dropped in production.
    #[test]
    fn every_workspace_crate_may_log_below_warn() {
        let manifest = include_str!("../../Cargo.toml");
        let members = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("members = ["))
            .unwrap_or_default();
        let names: Vec<String> = members
            .split(',')
            .map(|m| {
                m.trim()
                    .trim_end_matches(']')
                    .trim_matches('"')
                    .replace('-', "_")
            })
            // Examples declare their own targets (init_lambda_logging_with).
            .filter(|m| !m.is_empty() && !m.starts_with("examples/"))
            .collect();
        assert!(names.len() >= 7, "{names:?}");
        for name in names {
            assert!(
                OWN_TARGETS.contains(&name.as_str()),
                "{name} cannot log info lines"
            );
        }
    }
}
