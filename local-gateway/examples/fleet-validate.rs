//! The fleet model's validation driver (issue #17): replays a request trace
//! written by `bench/fleet.py trace` through the real local gateway, in
//! process, and prints what it counted as JSON.
//!
//! Everything on the decision path is the production code: the gateway's
//! authorizer result cache, the authorizer (argon2id, the PAT and JWT
//! caches, the throttled `last_used` touch), DynamoDB on moto through the
//! AWS SDK, RS256 access tokens from a Cognito pool on moto. Only the clock
//! is ours: a manual one, set to each request's trace time, so that half an
//! hour of traffic replays in seconds.
//!
//! Each scenario of the trace gets a fresh table, pool and gateway, issues
//! its PATs through `POST /tokens`, then starts a fresh authorizer instance
//! and empties the gateway cache so the replay starts cold, and replays the
//! same requests with the scenario's events: authorizer cache flushes
//! (`flush_authorizer_cache`) and deploys (a configuration change through
//! the Lambda control plane, which starts a new instance with empty caches).
//!
//! ```text
//! python3 bench/fleet.py trace --out target/bench/fleet-trace.json
//! scripts/with-moto.sh cargo run -q -p local-gateway --example fleet-validate -- \
//!     target/bench/fleet-trace.json --out target/bench/fleet-measured.json
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_dynamodb::error::BoxError;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode, header};
use local_gateway::{GatewayConfig, LocalSetup, cognito, serve_request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::Clock;

/// The Cognito password of the replay's users.
const PASSWORD: &str = "Correct-horse-9!";
/// The route every replayed request calls (scope `docs:read`).
const PATH: &str = "/docs/readme";
/// Seconds between issuing the tokens and the trace's time 0.
const REPLAY_OFFSET: i64 = 10;
/// The JWT verified-cache TTL the local gateway's authorizer runs with
/// (`JwtConfig::for_issuer`); the trace must assume the same.
const JWT_TTL_SECS: i64 = 60;

/// A clock the replay sets: Unix seconds.
#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Counts the DynamoDB requests a client transmits, by operation
/// (`X-Amz-Target`), retries included.
#[derive(Debug, Clone, Default)]
struct OperationCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl OperationCounter {
    fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Intercept for OperationCounter {
    fn name(&self) -> &'static str {
        "OperationCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned();
        if let Ok(mut m) = self.0.lock() {
            *m.entry(target).or_default() += 1;
        }
        Ok(())
    }
}

/// The trace `bench/fleet.py trace` writes (the fields the driver uses).
#[derive(Debug, Deserialize)]
struct Trace {
    settings: Settings,
    /// Credential kinds by index: `pat` or `jwt`.
    credentials: Vec<String>,
    /// Client addresses by index.
    addresses: Vec<IpAddr>,
    /// `[time, credential, address]`, time in seconds from the start, sorted.
    requests: Vec<(i64, usize, usize)>,
    scenarios: Vec<Scenario>,
}

#[derive(Debug, Deserialize)]
struct Settings {
    gateway_ttl_secs: i64,
    pat_ttl_secs: i64,
    jwt_ttl_secs: i64,
    touch_interval_secs: i64,
}

#[derive(Debug, Deserialize)]
struct Scenario {
    name: String,
    ip_allow_lists: bool,
    /// Times at which the stage's authorizer cache is flushed (before the
    /// requests of that second).
    flushes: Vec<i64>,
    /// Times at which a new authorizer instance replaces the serving one.
    deploys: Vec<i64>,
}

/// What one scenario's replay counted.
#[derive(Debug, Serialize)]
struct Counted {
    name: String,
    requests: usize,
    authorizer_calls: usize,
    argon2_evaluations: u64,
    jwt_signature_checks: usize,
    jwks_fetches: usize,
    instances: usize,
    dynamodb: BTreeMap<String, usize>,
    statuses: BTreeMap<u16, usize>,
    replay_wall_secs: f64,
}

type Gw =
    local_gateway::Gateway<authorizer::jwks::HttpJwks, shared::store::TokenStore, ManualClock>;
type Instance =
    authorizer::Authorizer<authorizer::jwks::HttpJwks, shared::store::TokenStore, ManualClock>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut trace_path = None;
    let mut out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = Some(args.next().context("--out needs a path")?),
            _ if trace_path.is_none() => trace_path = Some(arg),
            _ => bail!("usage: fleet-validate <trace.json> [--out <measured.json>]"),
        }
    }
    let trace_path = trace_path.context("usage: fleet-validate <trace.json> [--out <file>]")?;
    let trace: Trace = serde_json::from_str(
        &std::fs::read_to_string(&trace_path).with_context(|| format!("read {trace_path}"))?,
    )
    .context("parse the trace")?;
    if trace.settings.jwt_ttl_secs != JWT_TTL_SECS {
        bail!(
            "the local gateway's JWT cache TTL is {JWT_TTL_SECS} s; the trace assumes {}",
            trace.settings.jwt_ttl_secs
        );
    }
    for address in &trace.addresses {
        if !address.is_loopback() {
            bail!("trace address {address} is not a loopback address");
        }
    }
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .context("DYNAMODB_ENDPOINT is not set: run under scripts/with-moto.sh")?;

    let started = Instant::now();
    let mut scenarios = Vec::new();
    for scenario in &trace.scenarios {
        let counted = replay(&trace, scenario, &endpoint).await?;
        eprintln!(
            "fleet-validate: {}: {} requests, {} authorizer calls, {} argon2, DynamoDB {:?} ({:.1} s)",
            counted.name,
            counted.requests,
            counted.authorizer_calls,
            counted.argon2_evaluations,
            counted.dynamodb,
            counted.replay_wall_secs
        );
        scenarios.push(counted);
    }
    let report = json!({
        "trace": trace_path,
        "driver": "local-gateway/examples/fleet-validate.rs",
        "total_wall_secs": started.elapsed().as_secs_f64(),
        "scenarios": scenarios,
    });
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(out) = out {
        std::fs::write(&out, format!("{text}\n")).with_context(|| format!("write {out}"))?;
    }
    println!("{text}");
    Ok(())
}

async fn replay(trace: &Trace, scenario: &Scenario, endpoint: &str) -> anyhow::Result<Counted> {
    let s = &trace.settings;
    // A fresh table behind a client that counts requests by operation.
    let ops = OperationCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "fleet"))
            .endpoint_url(endpoint)
            .interceptor(ops.clone())
            .build(),
    );
    let mut store_cfg = shared::testing::fresh_config(1000);
    store_cfg.touch_interval_secs = s.touch_interval_secs;
    let store = shared::store::TokenStore::new(client, store_cfg);
    store
        .create_table()
        .await
        .context("create the token table")?;

    // Users: one per JWT credential (at least one, to own the PATs).
    let jwt_count = trace.credentials.iter().filter(|k| *k == "jwt").count();
    let users: Vec<String> = (0..jwt_count.max(1)).map(|i| format!("user{i}")).collect();
    let pool_name = format!("fleet-{}", scenario.name);
    let pool = cognito::create_pool(endpoint, "us-east-1", &pool_name).await?;
    let mut sessions = Vec::new();
    for user in &users {
        cognito::create_user(&pool, user, PASSWORD).await?;
        sessions.push(cognito::login(&pool, user, PASSWORD).await?);
    }

    let setup = LocalSetup {
        store,
        manifest: shared::testing::manifest(),
        upstream: local_gateway::Upstream::InProcess(
            axum::Router::new().fallback(|| async { axum::Json(json!({})) }),
        ),
        pool,
        gateway: GatewayConfig {
            cache_ttl_secs: s.gateway_ttl_secs,
            ip_allow_lists: scenario.ip_allow_lists,
            ..GatewayConfig::default()
        },
        pat: authorizer::config::PatConfig {
            positive_ttl_secs: s.pat_ttl_secs,
            negative_ttl_secs: 30,
            max_failures_per_source: 5,
        },
        max_lifetime_days: 90,
    };
    let t0 = shared::SystemClock.now();
    let clock = Arc::new(ManualClock(AtomicI64::new(t0)));
    let gw = local_gateway::build(&setup, Arc::clone(&clock))?;
    // The control plane (loopback only) starts fresh authorizer instances.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let control = format!("http://{}", listener.local_addr()?);
    tokio::spawn(local_gateway::serve(
        listener,
        local_gateway::app(Arc::clone(&gw)),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();

    // Credentials: JWT j is user j's session; PAT p is issued by user p mod n.
    let home: SocketAddr = (IpAddr::from([127, 0, 0, 1]), 40_000).into();
    let mut secrets = Vec::with_capacity(trace.credentials.len());
    let (mut jwt_index, mut pat_index) = (0usize, 0usize);
    for kind in &trace.credentials {
        match kind.as_str() {
            "jwt" => {
                secrets.push(sessions.get(jwt_index).context("session")?.clone());
                jwt_index += 1;
            }
            "pat" => {
                let owner = sessions
                    .get(pat_index % sessions.len())
                    .context("owner session")?;
                let body = json!({"name": format!("fleet-{pat_index}"), "scopes": ["docs:read"], "expiresInDays": 7});
                let request = Request::post("/tokens")
                    .header(header::AUTHORIZATION, format!("Bearer {owner}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))?;
                let response =
                    serve_request(State(Arc::clone(&gw)), ConnectInfo(home), request).await;
                if response.status() != StatusCode::CREATED {
                    bail!("issuing PAT {pat_index}: {}", response.status());
                }
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
                let issued: Value = serde_json::from_slice(&bytes)?;
                secrets.push(
                    issued
                        .get("token")
                        .and_then(Value::as_str)
                        .context("issued token")?
                        .to_owned(),
                );
                pat_index += 1;
            }
            other => bail!("unknown credential kind `{other}`"),
        }
    }

    // Start cold: issuing went through the gateway and warmed its cache and
    // an instance's JWT cache.
    let mut retired: Vec<Arc<Instance>> = Vec::new();
    retired.push(deploy(&gw, &http, &control).await?);
    gw.flush_authorizer_cache();
    let base = t0 + REPLAY_OFFSET;
    clock.0.store(base, Ordering::SeqCst);
    let calls_before = gw.authorizer_calls();
    let ops_before = ops.snapshot();
    let retired_before = retired.len();

    let mut flushes = scenario.flushes.iter().copied().peekable();
    let mut deploys = scenario.deploys.iter().copied().peekable();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let replay_started = Instant::now();
    for &(t, credential, address) in &trace.requests {
        while let Some(at) = deploys.next_if(|&at| at <= t) {
            clock.0.store(base + at, Ordering::SeqCst);
            retired.push(deploy(&gw, &http, &control).await?);
        }
        while flushes.next_if(|&at| at <= t).is_some() {
            gw.flush_authorizer_cache();
        }
        clock.0.store(base + t, Ordering::SeqCst);
        let secret = secrets.get(credential).context("credential index")?;
        let ip = *trace.addresses.get(address).context("address index")?;
        let request = Request::get(PATH)
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())?;
        let response = serve_request(
            State(Arc::clone(&gw)),
            ConnectInfo((ip, 40_000).into()),
            request,
        )
        .await;
        *statuses.entry(response.status().as_u16()).or_default() += 1;
    }
    let replay_wall_secs = replay_started.elapsed().as_secs_f64();

    // Wait for every instance's background writes, then count.
    let current = gw.authorizer();
    let instances: Vec<&Arc<Instance>> = retired
        .get(retired_before..)
        .unwrap_or_default()
        .iter()
        .chain(std::iter::once(&current))
        .collect();
    let mut argon2 = 0;
    let mut signatures = 0;
    let mut fetches = 0;
    for instance in &instances {
        instance.pat().settle().await;
        argon2 += instance.pat().argon2_evaluations();
        signatures += instance.jwt().signature_checks();
        fetches += instance.jwt().keys().fetch_count();
    }
    // The first retired instance issued the tokens: it is not the replay's.
    let after = ops.snapshot();
    let dynamodb = after
        .iter()
        .map(|(op, n)| (op.clone(), n - ops_before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    if replay_wall_secs >= s.gateway_ttl_secs.min(JWT_TTL_SECS) as f64 {
        eprintln!(
            "fleet-validate: warning: the replay took {replay_wall_secs:.0} s of wall time; the caches' own (moka) expiry runs on wall time and may have evicted entries early"
        );
    }
    Ok(Counted {
        name: scenario.name.clone(),
        requests: trace.requests.len(),
        authorizer_calls: gw.authorizer_calls() - calls_before,
        argon2_evaluations: argon2,
        jwt_signature_checks: signatures,
        jwks_fetches: fetches,
        instances: instances.len(),
        dynamodb,
        statuses,
        replay_wall_secs,
    })
}

/// Starts a fresh authorizer instance (`UpdateFunctionConfiguration`, then
/// the read that ends the update), as a deploy does; returns the one it
/// replaced, whose counters the caller still needs.
async fn deploy(
    gw: &Arc<Gw>,
    http: &reqwest::Client,
    control: &str,
) -> anyhow::Result<Arc<Instance>> {
    static DEPLOYS: AtomicUsize = AtomicUsize::new(0);
    let old = gw.authorizer();
    let n = DEPLOYS.fetch_add(1, Ordering::SeqCst);
    let url = format!(
        "{control}{}/2015-03-31/functions/agpat-authorizer/configuration",
        local_gateway::control::LAMBDA_PREFIX
    );
    let current: Value = http
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut variables = current
        .pointer("/Environment/Variables")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(map) = variables.as_object_mut() {
        map.insert("FLEET_DEPLOY".into(), json!(n.to_string()));
    }
    http.put(&url)
        .json(&json!({"Environment": {"Variables": variables}}))
        .send()
        .await?
        .error_for_status()
        .context("UpdateFunctionConfiguration")?;
    http.get(&url).send().await?.error_for_status()?;
    if Arc::ptr_eq(&old, &gw.authorizer()) {
        bail!("the deploy did not start a new authorizer instance");
    }
    Ok(old)
}
