//! `make dev`: the component's local gateway serving this example with its
//! API in-process, on moto, with the walkthrough of the demo.
//! `items-dev token [LOGIN [PASSWORD]]`: a fresh Cognito access token.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use items_api::items::ItemStore;
use local_gateway::Upstream;
use local_gateway::dev::{DevOptions, Walkthrough, dev, token};

/// The local gateway allocates per request (the proxy event, the answer):
/// mimalloc serves that faster than the system allocator (BENCHMARKS.md,
/// local gateway throughput). A development binary only: no Lambda uses it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    agpat_context::init_lambda_logging_with(items_api::LOG_TARGETS);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dev") => {
            let options = DevOptions {
                default_manifest: Some(PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/agpat.toml"
                ))),
                walkthrough,
            };
            dev(&options, async |ctx| {
                let table = std::env::var("ITEMS_TABLE_NAME")
                    .unwrap_or_else(|_| "agpat-local-items".into());
                let items = ItemStore::new(ctx.client.clone(), table);
                if let Err(e) = items.create_table().await
                    && !e.to_string().contains("ResourceInUse")
                {
                    return Err(e).context("cannot create the items table");
                }
                let router = items_api::router(items_api::AppState {
                    items,
                    clock: Arc::new(agpat_context::SystemClock),
                    manifest: Arc::clone(&ctx.manifest),
                });
                Ok((
                    Upstream::InProcess(router),
                    Some(items_api::openapi::openapi()),
                ))
            })
            .await
        }
        Some("token") => token(args.get(1), args.get(2)).await,
        _ => bail!("usage: items-dev dev | items-dev token [LOGIN [PASSWORD]]"),
    }
}

fn walkthrough(w: &Walkthrough<'_>) -> String {
    let base = w.base;
    format!(
        r#"
agpat is running at {base}  (Ctrl-C stops everything)

  API explorer:   {base}{explorer}docs      OpenAPI: {base}{explorer}openapi.json
  Demo user:      {login} / {password}   (fresh token any time: make token)

# 1. A Cognito access token for the demo user (valid one hour):
export JWT='{jwt}'

# 2. Create a personal access token (the secret is shown once):
curl -s -X POST {base}/tokens -H "Authorization: Bearer $JWT" -H 'content-type: application/json' \
  -d '{{"name":"laptop","scopes":["items:read","items:write"],"expiresInDays":30}}'

# 3. Use it (copy "token" from the answer above):
export PAT='agpat_...'
curl -s -X POST {base}/items -H "Authorization: Bearer $PAT" -H 'content-type: application/json' -d '{{"name":"first item"}}'
curl -s {base}/items -H "Authorization: Bearer $PAT"

# 4. Out of scope is 403; revoked is 401 once the cache window passes:
curl -s {base}/tokens -H "Authorization: Bearer $PAT"
curl -s -X POST {base}/tokens/revoke -H 'content-type: application/json' -d "{{\"token\":\"$PAT\"}}"
"#,
        explorer = w.explorer,
        login = w.login,
        password = w.password,
        jwt = w.jwt,
    )
}
