//! `local-gateway dev`: bootstrap moto (table, user pool, demo user) and serve
//! the whole component on 127.0.0.1:3000 with REST API semantics and `/docs`.
//! `local-gateway token [LOGIN [PASSWORD]]`: print a fresh Cognito access token.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use local_gateway::{GatewayConfig, LocalSetup, app_with_openapi, build, cognito, serve};
use shared::config::{Env, ProcessEnv, StoreConfig, number_in, optional};
use shared::store::TokenStore;

const DEMO_LOGIN: &str = "demo";
const DEMO_PASSWORD: &str = "Demo-passw0rd!";

#[derive(serde::Serialize, serde::Deserialize)]
struct DevState {
    pool: cognito::Pool,
    login: String,
    password: String,
}

fn state_path() -> PathBuf {
    PathBuf::from(".dev/state.json")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::logging::init_lambda_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dev") => dev().await,
        Some("token") => token(args.get(1), args.get(2)).await,
        _ => bail!("usage: local-gateway dev | local-gateway token [LOGIN [PASSWORD]]"),
    }
}

async fn token(login: Option<&String>, password: Option<&String>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(state_path())
        .context("no .dev/state.json: run `make dev` first")?;
    let state: DevState = serde_json::from_str(&text).context(".dev/state.json is malformed")?;
    let login = login.cloned().unwrap_or(state.login);
    let password = password.cloned().unwrap_or(state.password);
    println!("{}", cognito::login(&state.pool, &login, &password).await?);
    Ok(())
}

async fn dev() -> anyhow::Result<()> {
    let env = ProcessEnv;
    let store_cfg = StoreConfig::from_env(&env).context("invalid store configuration")?;
    let endpoint = store_cfg
        .endpoint
        .clone()
        .context("DYNAMODB_ENDPOINT must point at the local moto server")?;
    let cognito_endpoint = optional(&env, "COGNITO_ENDPOINT").unwrap_or_else(|| endpoint.clone());
    let region = env.get("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    let addr = optional(&env, "GATEWAY_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
    let gateway = GatewayConfig {
        cache_ttl_secs: number_in(
            &env,
            "AUTHORIZER_CACHE_TTL_SECONDS",
            60,
            0,
            3600,
            "an integer from 0 to 3600",
        )?,
        ..GatewayConfig::default()
    };
    let pat = authorizer::config::PatConfig {
        positive_ttl_secs: number_in(
            &env,
            "PAT_CACHE_TTL_SECONDS",
            30,
            0,
            300,
            "an integer from 0 to 300",
        )?,
        negative_ttl_secs: 30,
        max_failures_per_source: 5,
    };

    let store = TokenStore::from_env_config(store_cfg).await;
    if let Err(e) = store.create_table().await
        && !e.to_string().contains("ResourceInUse")
    {
        return Err(e).context("cannot create the table");
    }
    let items_table =
        std::env::var("ITEMS_TABLE_NAME").unwrap_or_else(|_| "agpat-local-items".into());
    let items = shared::items::ItemStore::new(store.client().clone(), items_table);
    if let Err(e) = items.create_table().await
        && !e.to_string().contains("ResourceInUse")
    {
        return Err(e).context("cannot create the items table");
    }
    let pool = cognito::create_pool(&cognito_endpoint, &region, "agpat-local").await?;
    cognito::create_user(&pool, DEMO_LOGIN, DEMO_PASSWORD).await?;
    let jwt = cognito::login(&pool, DEMO_LOGIN, DEMO_PASSWORD).await?;
    std::fs::create_dir_all(".dev").context("cannot create .dev/")?;
    let state = DevState {
        pool: pool.clone(),
        login: DEMO_LOGIN.into(),
        password: DEMO_PASSWORD.into(),
    };
    std::fs::write(state_path(), serde_json::to_vec_pretty(&state)?)
        .context("cannot write .dev/state.json")?;

    // The API's manifest: AGPAT_MANIFEST, else the items example's.
    let manifest_path = std::env::var("AGPAT_MANIFEST").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/items-api/agpat.toml"
        )
        .to_owned()
    });
    let manifest = Arc::new(
        shared::Manifest::load(std::path::Path::new(&manifest_path))
            .context("invalid agpat manifest")?,
    );
    // The API's own routes: AGPAT_UPSTREAM (a Lambda invoke URL on loopback),
    // else the items example in-process.
    let (upstream, default_doc) = match optional(&env, "AGPAT_UPSTREAM") {
        Some(url) => (
            local_gateway::Upstream::lambda_invoke(&url).context("invalid AGPAT_UPSTREAM")?,
            None,
        ),
        None => (
            local_gateway::Upstream::InProcess(api::router(api::AppState {
                items,
                clock: Arc::new(shared::SystemClock),
                manifest: Arc::clone(&manifest),
            })),
            Some(api::openapi::openapi()),
        ),
    };
    // The API's own OpenAPI document, merged into /docs: AGPAT_OPENAPI.
    let adopter_doc = match optional(&env, "AGPAT_OPENAPI") {
        Some(path) => Some(
            serde_json::from_slice::<utoipa::openapi::OpenApi>(
                &std::fs::read(&path).with_context(|| format!("cannot read {path}"))?,
            )
            .with_context(|| format!("{path} is not an OpenAPI 3.1 JSON document"))?,
        ),
        None => default_doc,
    };
    let setup = LocalSetup {
        manifest,
        store,
        upstream,
        pool,
        gateway,
        pat,
        max_lifetime_days: 90,
    };
    let gw = build(&setup, Arc::new(shared::SystemClock))?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if !listener.local_addr()?.ip().is_loopback() {
        bail!("GATEWAY_ADDR must be a loopback address");
    }
    let base = format!("http://{}", listener.local_addr()?);
    print_walkthrough(&base, &jwt);
    serve(listener, app_with_openapi(gw, adopter_doc), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("server failed")
}

fn print_walkthrough(base: &str, jwt: &str) {
    println!(
        r#"
agpat is running at {base}  (Ctrl-C stops everything)

  API explorer:   {base}/docs      OpenAPI: {base}/openapi.json
  Demo user:      {DEMO_LOGIN} / {DEMO_PASSWORD}   (fresh token any time: make token)

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
"#
    );
}
