//! The emergency revocation lever (`scripts/emergency-revoke.py`), run as an
//! operator would, against the local gateway's AWS control plane: real
//! Cognito JWTs (moto), PATs from the token service, the shipped cache TTLs
//! (gateway 60 s, in-process 30 s), both caches on.
//!
//! A revoked PAT is still accepted while the caches are warm (so each test
//! can fail); the script makes the very next call a 401. Either half of the
//! lever alone is not enough, and with an alias (provisioned concurrency)
//! changing `$LATEST` is not enough either.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers"
)]

use std::process::Output;
use std::sync::Arc;

use axum::Json;
use local_gateway::control::AuthorizerFunction;
use local_gateway::{GatewayConfig, LocalSetup, Upstream, app, build, cognito, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::routes::Method;

const PASSWORD: &str = "Correct-horse-9!";
const FUNCTION: &str = "agpat-authorizer";

type LocalGateway = local_gateway::Gateway<
    authorizer::jwks::HttpJwks,
    shared::store::TokenStore,
    shared::SystemClock,
>;

async fn echo(Json(_event): Json<Value>) -> Json<Value> {
    Json(json!({"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": false}))
}

async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/2015-03-31/functions/function/invocations",
        listener.local_addr().unwrap()
    );
    let router = axum::Router::new().route(
        "/2015-03-31/functions/function/invocations",
        axum::routing::post(echo),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

struct Running {
    base: String,
    gateway: Arc<LocalGateway>,
    http: reqwest::Client,
    jwt: String,
    /// A GET the PATs' scope permits, and that scope's name.
    path: String,
    scope: String,
}

async fn start(function: AuthorizerFunction) -> Running {
    let endpoint = shared::testing::endpoint();
    let store = shared::testing::fresh_store(50).await;
    let pool = cognito::create_pool(&endpoint, "us-east-1", "emergency")
        .await
        .unwrap();
    cognito::create_user(&pool, "erin", PASSWORD).await.unwrap();
    let manifest = shared::testing::manifest();
    let setup = LocalSetup {
        manifest: Arc::clone(&manifest),
        store,
        upstream: Upstream::lambda_invoke(&start_upstream().await).unwrap(),
        pool: pool.clone(),
        gateway: GatewayConfig {
            function,
            ..GatewayConfig::default()
        },
        pat: authorizer::config::PatConfig {
            positive_ttl_secs: 30,
            negative_ttl_secs: 30,
            max_failures_per_source: 5,
        },
        max_lifetime_days: 90,
    };
    // The shipped defaults: both caches on, long enough to outlast a test.
    assert_eq!(setup.gateway.cache_ttl_secs, 60);
    let gateway = build(&setup, Arc::new(shared::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        app(gateway.clone()),
        std::future::pending(),
    ));
    let jwt = cognito::login(&pool, "erin", PASSWORD).await.unwrap();

    // A protected GET of the adopter's API that one delegable scope permits.
    let table = manifest.routes();
    let registry = manifest.scopes();
    let (path, scope) = manifest
        .sessions()
        .pat_ceiling()
        .iter()
        .find_map(|scope| {
            let held = shared::ScopeSet::EMPTY.with(scope);
            table
                .routes()
                .iter()
                .filter(|r| !r.built_in && r.method == Method::Get && r.access.is_protected())
                .filter(|r| r.access.permits(held))
                .find_map(|r| {
                    shared::testing::sample_paths(table, r)
                        .into_iter()
                        .find(|p| table.find(Method::Get, p).is_some_and(|f| f.path == r.path))
                })
                .map(|p| (p, registry.name(scope).to_owned()))
        })
        .expect("the fixture has a protected GET");
    Running {
        base,
        gateway,
        http: reqwest::Client::new(),
        jwt,
        path,
        scope,
    }
}

impl Running {
    /// A new PAT with the test's scope: (id, secret).
    async fn issue(&self, name: &str) -> (String, String) {
        let created = self
            .http
            .post(format!("{}/tokens", self.base))
            .bearer_auth(&self.jwt)
            .json(&json!({"name": name, "scopes": [self.scope], "expiresInDays": 7}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let body: Value = created.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn revoke(&self, id: &str) {
        let reply = self
            .http
            .delete(format!("{}/tokens/{id}", self.base))
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    }

    async fn call(&self, pat: &str) -> StatusCode {
        self.http
            .get(format!("{}{}", self.base, self.path))
            .bearer_auth(pat)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A PAT that is used (both caches warm), then revoked: still accepted.
    async fn warm_revoked_pat(&self) -> String {
        let (id, pat) = self.issue("to revoke").await;
        assert_eq!(self.call(&pat).await, StatusCode::OK);
        self.revoke(&id).await;
        assert_eq!(
            self.call(&pat).await,
            StatusCode::OK,
            "the caches must be warm, or this test proves nothing"
        );
        pat
    }

    fn endpoints(&self) -> [String; 4] {
        [
            "--apigateway-endpoint-url".into(),
            format!("{}/_aws/apigateway", self.base),
            "--lambda-endpoint-url".into(),
            format!("{}/_aws/lambda", self.base),
        ]
    }

    /// Runs the real script with the project's venv Python.
    async fn lever(&self, extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec![
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/emergency-revoke.py"
            )
            .into(),
            "--rest-api-id".into(),
            "local".into(),
            "--stage".into(),
            "dev".into(),
            "--function-name".into(),
            FUNCTION.into(),
            "--region".into(),
            "us-east-1".into(),
            "--poll-seconds".into(),
            "0.1".into(),
            "--timeout-seconds".into(),
            "20".into(),
        ];
        args.extend(self.endpoints());
        // Later flags win (argparse), so a test can override the ids.
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        python(args).await
    }

    /// One boto3 call against the control plane; its JSON answer.
    /// Sets one variable on `$LATEST` through boto3, keeping the others
    /// (UpdateFunctionConfiguration replaces the whole environment).
    async fn set_variable(&self, name: &str, value: &str) {
        let config = self
            .boto(
                "lambda",
                &format!("get_function_configuration(FunctionName={FUNCTION:?})"),
            )
            .await;
        let mut vars = config["Environment"]["Variables"].clone();
        vars[name] = json!(value);
        self.boto(
            "lambda",
            &format!(
                "update_function_configuration(FunctionName={FUNCTION:?}, Environment={{'Variables': json.loads({:?})}})",
                vars.to_string()
            ),
        )
        .await;
    }

    async fn boto(&self, service: &str, call: &str) -> Value {
        let endpoint = match service {
            "lambda" => format!("{}/_aws/lambda", self.base),
            _ => format!("{}/_aws/apigateway", self.base),
        };
        let code = format!(
            "import boto3, json, sys\n\
             c = boto3.client({service:?}, region_name='us-east-1', endpoint_url={endpoint:?})\n\
             r = c.{call}\n\
             r.pop('ResponseMetadata', None)\n\
             print(json.dumps(r, default=str))\n"
        );
        let out = python(vec!["-c".into(), code]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

async fn python(args: Vec<String>) -> Output {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("the venv's python (run scripts/ensure-venv.sh)")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emergency_script_refuses_a_revoked_pat_at_the_very_next_call() {
    let gw = start(AuthorizerFunction::default()).await;
    let revoked = gw.warm_revoked_pat().await;
    let (_, live) = gw.issue("still valid").await;
    assert_eq!(gw.call(&live).await, StatusCode::OK);

    let out = gw.lever(&[]).await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");

    assert_eq!(gw.call(&revoked).await, StatusCode::UNAUTHORIZED, "{log}");
    assert_eq!(
        gw.call(&live).await,
        StatusCode::OK,
        "valid tokens keep working"
    );
    // Instances first, then the flush.
    let updated = log.find("updated agpat-authorizer $LATEST").expect(&log);
    let flushed = log.find("flushed the authorizer cache").expect(&log);
    assert!(updated < flushed, "{log}");
    // The function kept its environment; only the epoch was added.
    let config = gw
        .boto(
            "lambda",
            &format!("get_function_configuration(FunctionName={FUNCTION:?})"),
        )
        .await;
    let vars = &config["Environment"]["Variables"];
    assert!(
        vars["TABLE_NAME"].as_str().is_some_and(|t| !t.is_empty()),
        "{config}"
    );
    assert!(vars["COGNITO_USER_POOL_ID"].is_string(), "{config}");
    assert!(
        vars["AGPAT_CACHE_EPOCH"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z')),
        "{config}"
    );
    assert_eq!(config["LastUpdateStatus"], "Successful");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushing_the_stage_cache_alone_leaves_the_in_process_cache_allowing() {
    let gw = start(AuthorizerFunction::default()).await;
    let revoked = gw.warm_revoked_pat().await;
    gw.boto(
        "apigateway",
        "flush_stage_authorizers_cache(restApiId='local', stageName='dev')",
    )
    .await;
    let calls = gw.gateway.authorizer_calls();
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
    // The gateway cache was empty: the authorizer decided, from its cache.
    assert_eq!(gw.gateway.authorizer_calls(), calls + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_instances_alone_leaves_the_gateway_cache_allowing() {
    let gw = start(AuthorizerFunction::default()).await;
    let revoked = gw.warm_revoked_pat().await;
    gw.set_variable("AGPAT_CACHE_EPOCH", "1").await;
    let calls = gw.gateway.authorizer_calls();
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
    // The fresh instance was never asked: the gateway's cached Allow answered.
    assert_eq!(gw.gateway.authorizer_calls(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_alias_the_script_moves_it_to_a_fresh_version_and_waits_for_it() {
    let gw = start(AuthorizerFunction {
        alias: Some("live".into()),
        provisioned_concurrency: 2,
        ..AuthorizerFunction::default()
    })
    .await;
    let revoked = gw.warm_revoked_pat().await;

    // Changing $LATEST and flushing, as the lever without --alias does, does
    // not reach the alias's instance.
    let without_alias = gw.lever(&[]).await;
    assert!(without_alias.status.success(), "{}", text(&without_alias));
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);

    let out = gw.lever(&["--alias", "live"]).await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(gw.call(&revoked).await, StatusCode::UNAUTHORIZED, "{log}");
    assert!(log.contains("published version 2"), "{log}");
    assert!(log.contains("alias live now points to version 2"), "{log}");
    let ready = log
        .find("provisioned concurrency on live READY")
        .expect(&log);
    let flushed = log.find("flushed the authorizer cache").expect(&log);
    assert!(ready < flushed, "{log}");
    let alias = gw
        .boto(
            "lambda",
            &format!("get_alias(FunctionName={FUNCTION:?}, Name='live')"),
        )
        .await;
    assert_eq!(alias["FunctionVersion"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lever_refuses_to_touch_an_alias_while_a_release_shifts_its_traffic() {
    let gw = start(AuthorizerFunction {
        alias: Some("live".into()),
        provisioned_concurrency: 1,
        ..AuthorizerFunction::default()
    })
    .await;
    let revoked = gw.warm_revoked_pat().await;
    // A canary in progress: version 2 published, 10 % of the alias on it.
    gw.set_variable("RELEASE", "2").await;
    // As the lever does: read the configuration (the update completes) first.
    gw.boto(
        "lambda",
        &format!("get_function_configuration(FunctionName={FUNCTION:?})"),
    )
    .await;
    gw.boto(
        "lambda",
        &format!("publish_version(FunctionName={FUNCTION:?})"),
    )
    .await;
    gw.boto(
        "lambda",
        &format!(
            "update_alias(FunctionName={FUNCTION:?}, Name='live', FunctionVersion='1', \
             RoutingConfig={{'AdditionalVersionWeights': {{'2': 0.1}}}})"
        ),
    )
    .await;

    let out = gw.lever(&["--alias", "live"]).await;
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("is shifting traffic"), "{log}");
    // Nothing moved: no version published by the lever, the alias where the
    // release left it, and (the lever having stopped) the cache untouched.
    assert!(!log.contains("published version"), "{log}");
    let alias = gw
        .boto(
            "lambda",
            &format!("get_alias(FunctionName={FUNCTION:?}, Name='live')"),
        )
        .await;
    assert_eq!(alias["FunctionVersion"], "1");
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_fails_loudly_on_unknown_ids() {
    let gw = start(AuthorizerFunction::default()).await;
    let revoked = gw.warm_revoked_pat().await;
    for (flags, error) in [
        (
            &["--function-name", "no-such-function"][..],
            "ResourceNotFoundException",
        ),
        (&["--rest-api-id", "nope"][..], "NotFoundException"),
        (&["--stage", "prod"][..], "NotFoundException"),
        (&["--alias", "live"][..], "ResourceNotFoundException"),
    ] {
        let out = gw.lever(flags).await;
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {log}");
        assert!(
            log.contains(error) && log.contains("FAILED"),
            "{flags:?}: {log}"
        );
    }
    // The last run replaced the instances but failed at the alias, so it
    // never flushed: the gateway cache still answers.
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_refuses_a_page_that_rebinds_its_own_name_to_loopback() {
    // A web page whose DNS name now resolves to 127.0.0.1 reaches the
    // gateway from a loopback peer, but its requests carry the page's Host.
    let gw = start(AuthorizerFunction::default()).await;
    let revoked = gw.warm_revoked_pat().await;
    let flush = "/_aws/apigateway/restapis/local/stages/dev/cache/authorizers";
    let rebound = gw
        .http
        .delete(format!("{}{flush}", gw.base))
        .header("host", "attacker.example:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let calls = gw.gateway.authorizer_calls();
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
    assert_eq!(gw.gateway.authorizer_calls(), calls, "nothing was flushed");
    // boto3's own Host (the loopback address and port) is accepted.
    let own = gw
        .http
        .delete(format!("{}{flush}", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_answers_loopback_peers_only() {
    let gw = start(AuthorizerFunction::default()).await;
    let revoked = gw.warm_revoked_pat().await;
    // The same gateway, seen by a peer that is not on loopback.
    let remote = axum::extract::connect_info::MockConnectInfo(std::net::SocketAddr::from((
        [192, 0, 2, 7],
        40000,
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = format!("http://{}", listener.local_addr().unwrap());
    let remote_app = app(gw.gateway.clone()).layer(remote);
    tokio::spawn(async move { axum::serve(listener, remote_app).await });
    let flush = "/_aws/apigateway/restapis/local/stages/dev/cache/authorizers";
    let refused = gw
        .http
        .delete(format!("{elsewhere}{flush}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.headers()["x-amzn-errortype"],
        "AccessDeniedException"
    );
    let calls = gw.gateway.authorizer_calls();
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
    assert_eq!(gw.gateway.authorizer_calls(), calls, "nothing was flushed");

    // On loopback: an unknown operation is an AWS-style 404, the flush a 202.
    let unknown = gw
        .http
        .get(format!("{}/_aws/lambda/2015-03-31/functions", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
    let flushed = gw
        .http
        .delete(format!("{}{flush}", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(flushed.status(), StatusCode::ACCEPTED);
    assert_eq!(gw.call(&revoked).await, StatusCode::OK);
    assert_eq!(gw.gateway.authorizer_calls(), calls + 1, "flushed");
}
