//! `dev` and `token`, the local-development commands: moto bootstrap, the
//! gateway on loopback, and fresh Cognito tokens for the demo user.
//!
//! The component's binary (`local-gateway dev`) serves the API named by
//! `AGPAT_MANIFEST` with its routes sent to `AGPAT_UPSTREAM`; an example can
//! run the same with its API in-process (`examples/items-api`'s `items-dev`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use shared::config::{Env, ProcessEnv, StoreConfig, number_in, optional};
use shared::store::TokenStore;
use utoipa::openapi::OpenApi;

use crate::{GatewayConfig, LocalSetup, Upstream, app_with_openapi, build, cognito, docs, serve};

/// The demo user `dev` creates.
pub const DEMO_LOGIN: &str = "demo";
/// The demo user's password (local moto only).
pub const DEMO_PASSWORD: &str = "Demo-passw0rd!";
/// The demo administrator `dev` creates, in [`ADMIN_GROUP`] (same password).
pub const DEMO_ADMIN_LOGIN: &str = "admin";
/// The Cognito group the example manifests map to `admin:tokens`.
pub const ADMIN_GROUP: &str = "agpat-admins";

/// What `dev` hands the upstream builder.
pub struct DevContext {
    /// A DynamoDB client on the local endpoint (for the API's own tables).
    pub client: aws_sdk_dynamodb::Client,
    /// The API's manifest.
    pub manifest: Arc<shared::Manifest>,
}

/// What the walkthrough printed at start-up may mention.
pub struct Walkthrough<'a> {
    /// `http://127.0.0.1:<port>`.
    pub base: &'a str,
    /// Where the explorer lives (`/`, `/_agpat/`, or `(none)`).
    pub explorer: &'a str,
    /// A fresh access token of the demo user.
    pub jwt: &'a str,
    /// The demo user.
    pub login: &'a str,
    /// The demo user's password.
    pub password: &'a str,
}

/// How a binary runs `dev`.
pub struct DevOptions {
    /// The manifest when `AGPAT_MANIFEST` is unset (none: it is required).
    pub default_manifest: Option<PathBuf>,
    /// The text printed once the gateway listens.
    pub walkthrough: fn(&Walkthrough<'_>) -> String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DevState {
    pool: cognito::Pool,
    login: String,
    password: String,
}

fn state_path() -> PathBuf {
    PathBuf::from(".dev/state.json")
}

/// `token [LOGIN [PASSWORD]]`: prints a fresh Cognito access token from the
/// pool the running `dev` created.
pub async fn token(login: Option<&String>, password: Option<&String>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(state_path())
        .context("no .dev/state.json: run `make dev` first")?;
    let state: DevState = serde_json::from_str(&text).context(".dev/state.json is malformed")?;
    let login = login.cloned().unwrap_or(state.login);
    let password = password.cloned().unwrap_or(state.password);
    println!("{}", cognito::login(&state.pool, &login, &password).await?);
    Ok(())
}

/// Bootstraps moto (token table, user pool, demo user) and serves the
/// gateway on loopback until Ctrl-C. `upstream` builds where the API's own
/// routes go, given the token store's client and the manifest; it also
/// returns the API's own OpenAPI document, if any (else `AGPAT_OPENAPI`).
pub async fn dev<F>(options: &DevOptions, upstream: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&DevContext) -> anyhow::Result<(Upstream, Option<OpenApi>)>,
{
    let env = ProcessEnv;
    let store_cfg = StoreConfig::from_env(&env).context("invalid store configuration")?;
    let endpoint = store_cfg
        .endpoint
        .clone()
        .context("DYNAMODB_ENDPOINT must point at the local moto server")?;
    let cognito_endpoint = optional(&env, "COGNITO_ENDPOINT").unwrap_or_else(|| endpoint.clone());
    let region = env.get("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    let addr = optional(&env, "GATEWAY_ADDR").unwrap_or_else(|| "127.0.0.1:3000".into());
    let (usage_plans, default_rate_tier) = dev_usage_plans(&env);
    // AGPAT_DPOP=on: tokens may be bound to a DPoP key; the authorizer
    // cache is then off (TTL 0), as the construct's `dpop` sets it.
    let dpop = shared::config::on_off(&env, "AGPAT_DPOP")?;
    let gateway = GatewayConfig {
        cache_ttl_secs: number_in(
            &env,
            "AUTHORIZER_CACHE_TTL_SECONDS",
            if dpop { 0 } else { 60 },
            0,
            3600,
            "an integer from 0 to 3600",
        )?,
        dpop,
        dpop_origins: vec![format!("http://{addr}")],
        function: crate::control::AuthorizerFunction {
            // AGPAT_AUTHORIZER_ALIAS=live: the gateway invokes that alias, as
            // API Gateway does with provisioned concurrency.
            alias: optional(&env, "AGPAT_AUTHORIZER_ALIAS"),
            provisioned_concurrency: number_in(
                &env,
                "AGPAT_AUTHORIZER_PROVISIONED_CONCURRENCY",
                0,
                0,
                100,
                "an integer from 0 to 100",
            )?,
            ..crate::control::AuthorizerFunction::default()
        },
        // AGPAT_IP_ALLOW_LISTS=on: tokens may carry allow-lists, and the
        // authorizer cache is keyed by client address too.
        ip_allow_lists: shared::config::on_off(&env, "AGPAT_IP_ALLOW_LISTS")?,
        // Two rate tiers, as the construct's rateTiers would make them:
        // everyone is in `standard` unless a token is issued in `demo-slow`
        // (1 request per second, bursts of 2), which shows a 429 at once.
        // `AGPAT_USAGE_PLANS=off`: no demo tiers (the throughput benchmark
        // measures the gateway, not the demo's 1,000 req/s throttle).
        usage_plans,
        default_rate_tier,
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

    // Steps 1-3 (venv, build, moto) are scripts/dev.sh's; these follow them.
    eprintln!(
        "[4/6] creating the token table {} on {endpoint}",
        store_cfg.table_name
    );
    let store = TokenStore::from_env_config(store_cfg).await;
    if let Err(e) = store.create_table().await
        && !e.to_string().contains("ResourceInUse")
    {
        return Err(e).context("cannot create the table");
    }
    eprintln!("[5/6] creating the Cognito user pool and its app client");
    let pool = cognito::create_pool(&cognito_endpoint, &region, "agpat-local").await?;
    eprintln!(
        "[6/6] creating the demo user `{DEMO_LOGIN}` and administrator `{DEMO_ADMIN_LOGIN}`, and signing in"
    );
    cognito::create_user(&pool, DEMO_LOGIN, DEMO_PASSWORD).await?;
    cognito::create_user(&pool, DEMO_ADMIN_LOGIN, DEMO_PASSWORD).await?;
    cognito::add_to_group(&pool, DEMO_ADMIN_LOGIN, ADMIN_GROUP).await?;
    let jwt = cognito::login(&pool, DEMO_LOGIN, DEMO_PASSWORD).await?;
    std::fs::create_dir_all(".dev").context("cannot create .dev/")?;
    let state = DevState {
        pool: pool.clone(),
        login: DEMO_LOGIN.into(),
        password: DEMO_PASSWORD.into(),
    };
    std::fs::write(state_path(), serde_json::to_vec_pretty(&state)?)
        .context("cannot write .dev/state.json")?;

    // The API's manifest: AGPAT_MANIFEST, else the caller's default.
    let manifest_path = optional(&env, "AGPAT_MANIFEST")
        .map(PathBuf::from)
        .or_else(|| options.default_manifest.clone())
        .context("AGPAT_MANIFEST must name the API's manifest (agpat.toml)")?;
    let manifest =
        Arc::new(shared::Manifest::load(&manifest_path).context("invalid agpat manifest")?);
    let context = DevContext {
        client: store.client().clone(),
        manifest: Arc::clone(&manifest),
    };
    let explorer = docs::explorer_base(&manifest).unwrap_or("(none)");
    let (upstream, default_doc) = upstream(&context).await?;
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
    println!(
        "{}{}",
        (options.walkthrough)(&Walkthrough {
            base: &base,
            explorer,
            jwt: &jwt,
            login: DEMO_LOGIN,
            password: DEMO_PASSWORD,
        }),
        cli_walkthrough(&base, &setup.pool)
    );
    serve(listener, app_with_openapi(gw, adopter_doc), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("server failed")
}

/// The demo's usage plans and default tier, or none with
/// `AGPAT_USAGE_PLANS=off`.
fn dev_usage_plans(env: &dyn Env) -> (Vec<crate::usage::UsagePlan>, Option<String>) {
    if optional(env, "AGPAT_USAGE_PLANS").as_deref() == Some("off") {
        (Vec::new(), None)
    } else {
        (demo_usage_plans(), Some("standard".into()))
    }
}

/// The usage plans `make dev` runs with: `standard` (1000 requests per
/// second, bursts of 2000, two keys) and `demo-slow` (1 per second, bursts
/// of 2, one key).
pub fn demo_usage_plans() -> Vec<crate::usage::UsagePlan> {
    let plan = |name: &str, rate_per_sec, burst, keys: usize| crate::usage::UsagePlan {
        name: name.into(),
        rate_per_sec,
        burst,
        quota: None,
        quota_period_secs: 86_400,
        keys: (0..keys)
            .map(|i| format!("local-{name}-key-{i:04}"))
            .collect(),
    };
    vec![plan("standard", 1000, 2000, 2), plan("demo-slow", 1, 2, 1)]
}

/// How to use the `agpat` CLI against this gateway and pool (appended to
/// every walkthrough).
pub fn cli_walkthrough(base: &str, pool: &cognito::Pool) -> String {
    format!(
        r#"
# The agpat CLI (agpat-cli/README.md): sign in once, then manage tokens.
export AGPAT_API_URL={base} AGPAT_CLIENT_ID={client_id} AGPAT_COGNITO_ENDPOINT={endpoint} AGPAT_REGION={region}
alias agpat='cargo run -q -p agpat-cli --'
agpat login --username {login}          # password: {password}
agpat whoami
agpat tokens create --name laptop --scope tokens:read --expires-in-days 30   # prints the secret once
agpat tokens list
agpat tokens revoke <id>

# Rate tiers: a token issued in `demo-slow` (1 request/s, bursts of 2) is
# throttled by its usage plan, and no other tier notices:
#   curl -s -X POST {base}/tokens -H "Authorization: Bearer $JWT" -H 'content-type: application/json' \
#     -d '{{"name":"slow","scopes":["tokens:read"],"expiresInDays":1,"rateTier":"demo-slow"}}'
#   for i in 1 2 3; do curl -s -o /dev/null -w '%{{http_code}}\n' {base}/tokens/self -H "Authorization: Bearer $SLOW_PAT"; done   # 200 200 429

# An administrator ({admin}, same password, in the Cognito group {group}, which
# the manifest maps to admin:tokens) acts on anyone's tokens; the owner sees it:
export ADMIN_JWT=$(make -s token LOGIN={admin})
curl -s "{base}/admin/tokens?owner=<sub>&status=active" -H "Authorization: Bearer $ADMIN_JWT"
curl -s -X DELETE {base}/admin/tokens/<id> -H "Authorization: Bearer $ADMIN_JWT"
"#,
        admin = DEMO_ADMIN_LOGIN,
        group = ADMIN_GROUP,
        client_id = pool.client_id,
        endpoint = pool.endpoint,
        region = pool.region,
        login = DEMO_LOGIN,
        password = DEMO_PASSWORD,
    )
}

/// The emergency revocation lever, run against this gateway's control plane.
pub fn emergency_command(base: &str) -> String {
    format!(
        ".venv/bin/python scripts/emergency-revoke.py --rest-api-id local --stage dev \\\n  \
         --function-name agpat-authorizer --region us-east-1 \\\n  \
         --apigateway-endpoint-url {base}/_aws/apigateway --lambda-endpoint-url {base}/_aws/lambda"
    )
}

/// The generic walkthrough: a session, a PAT with the default session
/// scopes, and where the explorer is.
pub fn generic_walkthrough(w: &Walkthrough<'_>) -> String {
    let base = w.base;
    format!(
        r#"
agpat is running at {base}  (Ctrl-C stops everything)

  API explorer:   {base}{explorer}docs
  Demo user:      {login} / {password}   (fresh token any time: make token)

export JWT='{jwt}'
curl -s -X POST {base}/tokens -H "Authorization: Bearer $JWT" -H 'content-type: application/json' \
  -d '{{"name":"laptop","scopes":["tokens:read"],"expiresInDays":30}}'

# Emergency revocation lever (clears both authorizer caches):
{lever}
"#,
        lever = emergency_command(base),
        explorer = w.explorer,
        login = w.login,
        password = w.password,
        jwt = w.jwt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_tiers_are_on_unless_switched_off() {
        let env = |v: Option<&str>| {
            let mut map = std::collections::HashMap::new();
            if let Some(v) = v {
                map.insert("AGPAT_USAGE_PLANS".to_owned(), v.to_owned());
            }
            map
        };
        let (plans, tier) = dev_usage_plans(&env(None));
        assert_eq!(plans, demo_usage_plans());
        assert_eq!(tier.as_deref(), Some("standard"));
        let (plans, tier) = dev_usage_plans(&env(Some("off")));
        assert!(plans.is_empty());
        assert_eq!(tier, None);
        assert_eq!(dev_usage_plans(&env(Some("on"))).0, demo_usage_plans());
    }
}
