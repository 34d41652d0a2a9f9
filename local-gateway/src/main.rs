//! `local-gateway dev`: bootstrap moto (table, user pool, demo user) and serve
//! the API named by `AGPAT_MANIFEST` on 127.0.0.1:3000 with REST API
//! semantics and `/docs`, sending its own routes to the Lambda invoke
//! endpoint `AGPAT_UPSTREAM`.
//! `local-gateway token [LOGIN [PASSWORD]]`: print a fresh Cognito access token.

use anyhow::{Context, bail};
use local_gateway::Upstream;
use local_gateway::dev::{DevOptions, dev, generic_walkthrough, token};
use shared::config::{ProcessEnv, optional};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dev") => {
            let options = DevOptions {
                default_manifest: None,
                walkthrough: generic_walkthrough,
            };
            dev(&options, async |_| {
                let url = optional(&ProcessEnv, "AGPAT_UPSTREAM").context(
                    "AGPAT_UPSTREAM must be the Lambda invoke URL of the API on loopback \
                     (e.g. cargo lambda watch: http://127.0.0.1:9000/2015-03-31/functions/<name>/invocations)",
                )?;
                Ok((Upstream::lambda_invoke(&url)?, None))
            })
            .await
        }
        Some("token") => token(args.get(1), args.get(2)).await,
        _ => bail!("usage: local-gateway dev | local-gateway token [LOGIN [PASSWORD]]"),
    }
}
