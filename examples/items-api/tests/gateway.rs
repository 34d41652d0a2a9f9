//! End-to-end over real HTTP on loopback: moto Cognito login, the local
//! gateway, the real authorizer and both services on a moto table.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use local_gateway::{Gateway, GatewayConfig, LocalSetup, app_with_openapi, build, cognito, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::Clock;

const PASSWORD: &str = "Correct-horse-9!";

/// Every log line of this test binary, through the production subscriber at trace.
fn capture_logs() -> shared::testing::LogCapture {
    shared::testing::LogCapture::global()
}

/// Starts at the real time (moto signs tokens with real `iat`/`exp`) and can
/// be moved forward to pass cache windows without sleeping.
#[derive(Default)]
struct ShiftedClock(AtomicI64);

impl ShiftedClock {
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> i64 {
        shared::SystemClock.now() + self.0.load(Ordering::SeqCst)
    }
}

type LocalGateway = Gateway<authorizer::jwks::HttpJwks, shared::store::TokenStore, ShiftedClock>;

struct Running {
    base: String,
    http: reqwest::Client,
    /// A second client whose requests come from another loopback address
    /// (127.0.0.2): an attacker elsewhere on the network.
    other_address: reqwest::Client,
    gateway: Arc<LocalGateway>,
    clock: Arc<ShiftedClock>,
    pool: cognito::Pool,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(cache_ttl_secs: i64) -> Running {
    start_with(cache_ttl_secs, 10).await
}

async fn start_with(cache_ttl_secs: i64, pat_ttl_secs: i64) -> Running {
    start_configured(cache_ttl_secs, pat_ttl_secs, |_| {}).await
}

async fn start_configured(
    cache_ttl_secs: i64,
    pat_ttl_secs: i64,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> Running {
    capture_logs();
    let endpoint = shared::testing::endpoint();
    let store = shared::testing::fresh_store(20).await;
    let pool = cognito::create_pool(&endpoint, "us-east-1", "e2e")
        .await
        .unwrap();
    for user in ["alice", "bob"] {
        cognito::create_user(&pool, user, PASSWORD).await.unwrap();
    }
    let items = support::fresh_items(store.client()).await;
    let manifest = Arc::new(items_api::committed_manifest().unwrap());
    let clock = Arc::new(ShiftedClock::default());
    let upstream = local_gateway::Upstream::InProcess(items_api::router(items_api::AppState {
        items,
        clock: clock.clone(),
        manifest: Arc::clone(&manifest),
    }));
    let mut gateway = GatewayConfig {
        cache_ttl_secs,
        ..GatewayConfig::default()
    };
    tweak(&mut gateway);
    let setup = LocalSetup {
        manifest,
        upstream,
        store,
        pool: pool.clone(),
        gateway,
        pat: authorizer::config::PatConfig {
            positive_ttl_secs: pat_ttl_secs,
            negative_ttl_secs: 30,
            max_failures_per_source: 5,
        },
        max_lifetime_days: 90,
    };
    let gateway = build(&setup, clock.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = app_with_openapi(gateway.clone(), Some(items_api::openapi::openapi()));
    tokio::spawn(serve(listener, served, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        http: reqwest::Client::new(),
        other_address: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap(),
        gateway,
        clock,
        pool,
        _stop: stop,
    }
}

impl Running {
    async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = req.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn login(&self, user: &str) -> String {
        cognito::login(&self.pool, user, PASSWORD).await.unwrap()
    }

    async fn issue_pat(&self, jwt: &str, scopes: &[&str]) -> String {
        let (status, body) = self
            .send(
                "POST",
                "/tokens",
                Some(jwt),
                Some(json!({"name": "e2e", "scopes": scopes, "expiresInDays": 7})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn login_issue_use_forbid_revoke_and_expire_from_the_cache() {
    let gw = start(30).await;
    let jwt = gw.login("alice").await;
    let pat = gw.issue_pat(&jwt, &["items:read", "items:write"]).await;

    let (status, item) = gw
        .send(
            "POST",
            "/items",
            Some(&pat),
            Some(json!({"name": "widget"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let (status, list) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["name"], "widget");

    let (status, body) = gw.send("GET", "/tokens", Some(&pat), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "out of scope: {body}");
    assert_eq!(body["type"], "urn:agpat:problem:insufficient-scope");
    assert_eq!(body["status"], 403);

    let (status, _) = gw
        .send("POST", "/tokens/revoke", None, Some(json!({"token": pat})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "inside the gateway cache window the cached policy stands"
    );
    gw.clock.advance(31);
    let (status, body) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_unauthenticated(&body);
}

#[tokio::test]
async fn a_cached_policy_authorizes_exactly_the_in_scope_routes() {
    let gw = start(300).await;
    let jwt = gw.login("alice").await;
    let pat = gw.issue_pat(&jwt, &["items:read"]).await;
    let calls = gw.gateway.authorizer_calls();
    let (status, _) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gw.gateway.authorizer_calls(), calls + 1);
    // Every later request reuses the cached policy: no authorizer call.
    let expectations = [
        (
            "GET",
            "/items/0000000000000000000000000000",
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/me", StatusCode::OK),
        ("POST", "/items", StatusCode::FORBIDDEN),
        (
            "PUT",
            "/items/0000000000000000000000000000",
            StatusCode::FORBIDDEN,
        ),
        (
            "DELETE",
            "/items/0000000000000000000000000000",
            StatusCode::FORBIDDEN,
        ),
        ("GET", "/tokens", StatusCode::FORBIDDEN),
        ("POST", "/tokens", StatusCode::FORBIDDEN),
        ("DELETE", "/tokens/self", StatusCode::FORBIDDEN),
    ];
    for (method, path, expected) in expectations {
        let body =
            (method == "POST" || method == "PUT").then(|| json!({"name": "x", "version": 1}));
        let (status, reply) = gw.send(method, path, Some(&pat), body).await;
        assert_eq!(status, expected, "{method} {path}: {reply}");
    }
    assert_eq!(
        gw.gateway.authorizer_calls(),
        calls + 1,
        "the cache must serve every route"
    );
}

#[tokio::test]
async fn users_cannot_reach_each_others_items_or_tokens() {
    let gw = start(60).await;
    let alice = gw.login("alice").await;
    let bob = gw.login("bob").await;
    let (_, item) = gw
        .send(
            "POST",
            "/items",
            Some(&alice),
            Some(json!({"name": "alice's"})),
        )
        .await;
    let id = item["id"].as_str().unwrap();
    let (_, token) = gw
        .send(
            "POST",
            "/tokens",
            Some(&alice),
            Some(json!({"name": "a", "scopes": ["items:read"], "expiresInDays": 1})),
        )
        .await;
    let token_id = token["id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/items/{id}")),
        ("DELETE", format!("/items/{id}")),
        ("GET", format!("/tokens/{token_id}")),
        ("DELETE", format!("/tokens/{token_id}")),
    ] {
        let (status, body) = gw.send(method, &path, Some(&bob), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    let (_, mine) = gw.send("GET", "/items", Some(&bob), None).await;
    assert_eq!(mine["items"], json!([]));
    let (status, _) = gw
        .send("GET", &format!("/items/{id}"), Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_missing_authorization_header_is_401_without_calling_the_authorizer() {
    let gw = start(60).await;
    let before = gw.gateway.authorizer_calls();
    for path in ["/items", "/tokens", "/me"] {
        let (status, body) = gw.send("GET", path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_unauthenticated(&body);
    }
    let response = gw
        .http
        .get(format!("{}/items", gw.base))
        .header("authorization", "")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(gw.gateway.authorizer_calls(), before);
    // Unknown routes: API Gateway's own answer, no authorizer either.
    let (status, body) = gw.send("GET", "/admin", Some("whatever"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "urn:agpat:problem:not-found");
    assert_eq!(gw.gateway.authorizer_calls(), before);
    // Public routes skip the authorizer.
    let (status, _) = gw
        .send(
            "POST",
            "/tokens/revoke",
            None,
            Some(json!({"token": "junk"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(gw.gateway.authorizer_calls(), before);
}

#[tokio::test]
async fn docs_and_the_openapi_document_are_served() {
    let gw = start(60).await;
    let response = gw
        .http
        .get(format!("{}/docs/", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("swagger-ui"));
    let doc: Value = gw
        .http
        .get(format!("{}/openapi.json", gw.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc,
        serde_json::to_value(local_gateway::docs::document(
            &items_api::committed_manifest().unwrap(),
            Some(items_api::openapi::openapi())
        ))
        .unwrap()
    );
}

/// Revocation bound end to end, in real time, with both caches on (1 s each):
/// time from the revoke response to the first 401, for several tokens.
#[tokio::test]
async fn the_revocation_bound_holds_end_to_end_for_many_tokens() {
    let gw = start_with(1, 1).await;
    let jwt = gw.login("alice").await;
    let n = shared::testing::scale(5, 50);
    let mut pats = Vec::new();
    for _ in 0..n {
        let pat = gw.issue_pat(&jwt, &["items:read"]).await;
        let (status, _) = gw.send("GET", "/items", Some(&pat), None).await;
        assert_eq!(status, StatusCode::OK);
        pats.push(pat);
    }
    // Documented bound: gateway TTL + PAT cache TTL. Whole-second timestamps
    // can only shorten a cache entry's life, never extend it.
    let bound = std::time::Duration::from_secs(1 + 1);
    let mut worst = std::time::Duration::ZERO;
    for pat in &pats {
        let (status, _) = gw
            .send("POST", "/tokens/revoke", None, Some(json!({"token": pat})))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let revoked_at = std::time::Instant::now();
        loop {
            let (status, _) = gw.send("GET", "/items", Some(pat), None).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(
                revoked_at.elapsed() <= bound,
                "still accepted after {:?}",
                revoked_at.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        worst = worst.max(revoked_at.elapsed());
    }
    println!(
        "revocation bound: {n} tokens, worst {worst:?} from revoke to first 401 (bound {bound:?})"
    );
}

/// A bounded mixed load on loopback: valid JWTs and PATs, out-of-scope and
/// invalid credentials, and a revocation mid-run. No 5xx, no wrong decision.
#[tokio::test]
async fn bounded_mixed_load_has_no_5xx_and_no_wrong_decision() {
    let gw = Arc::new(start_with(1, 1).await);
    let jwt = gw.login("alice").await;
    let reader = gw.issue_pat(&jwt, &["items:read"]).await;
    let doomed = gw.issue_pat(&jwt, &["items:read"]).await;
    let duration =
        std::time::Duration::from_secs(u64::try_from(shared::testing::scale(5, 60)).unwrap());
    let started = std::time::Instant::now();
    let revoked_at: Arc<std::sync::Mutex<Option<std::time::Instant>>> = Arc::default();
    let bound = std::time::Duration::from_secs(2);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (gw, jwt, reader, doomed, revoked_at) = (
                gw.clone(),
                jwt.clone(),
                reader.clone(),
                doomed.clone(),
                revoked_at.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut server_errors, mut wrong) = (0u32, Vec::new());
                let mut i = w;
                while started.elapsed() < duration {
                    i += 1;
                    let t = std::time::Instant::now();
                    let (kind, status) = match i % 5 {
                        0 => ("jwt", gw.send("GET", "/items", Some(&jwt), None).await.0),
                        1 => ("pat", gw.send("GET", "/items", Some(&reader), None).await.0),
                        2 => (
                            "out-of-scope",
                            gw.send("GET", "/tokens", Some(&reader), None).await.0,
                        ),
                        3 => (
                            "invalid",
                            gw.send("GET", "/items", Some(&format!("agpat_{i:066}")), None)
                                .await
                                .0,
                        ),
                        _ => (
                            "revoked",
                            gw.send("GET", "/items", Some(&doomed), None).await.0,
                        ),
                    };
                    latencies.push(t.elapsed());
                    if status.is_server_error() {
                        server_errors += 1;
                    }
                    let revoked_for = revoked_at.lock().unwrap().map(|r| r.elapsed());
                    let ok = match kind {
                        "jwt" | "pat" => status == StatusCode::OK,
                        "out-of-scope" => status == StatusCode::FORBIDDEN,
                        "invalid" => status == StatusCode::UNAUTHORIZED,
                        _ => match revoked_for {
                            Some(d) if d > bound => status == StatusCode::UNAUTHORIZED,
                            _ => status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                        },
                    };
                    if !ok {
                        wrong.push(format!("{kind}: {status}"));
                    }
                }
                (latencies, server_errors, wrong)
            })
        })
        .collect();
    tokio::time::sleep(duration / 3).await;
    let (status, _) = gw
        .send(
            "POST",
            "/tokens/revoke",
            None,
            Some(json!({"token": doomed})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    *revoked_at.lock().unwrap() = Some(std::time::Instant::now());
    let mut latencies = Vec::new();
    let (mut server_errors, mut wrong) = (0, Vec::new());
    for worker in workers {
        let (l, s, w) = worker.await.unwrap();
        latencies.extend(l);
        server_errors += s;
        wrong.extend(w);
    }
    latencies.sort();
    let total = latencies.len();
    let pct = |p: f64| latencies[((total as f64 * p) as usize).min(total - 1)];
    let report = format!(
        "# Local gateway load test\n\nDuration {:?}, 8 loopback workers, debug build, moto.\n\n| requests | req/s | p50 | p99 | 5xx | wrong decisions |\n|---|---|---|---|---|---|\n| {total} | {:.0} | {:?} | {:?} | {server_errors} | {} |\n",
        duration,
        total as f64 / duration.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        wrong.len()
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/e2e-artifacts");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/load-report.md"), &report).unwrap();
    println!("{report}");
    assert_eq!(server_errors, 0);
    assert!(wrong.is_empty(), "wrong decisions: {wrong:?}");
    assert!(total > 50, "the load test barely ran");
}

/// Every e2e flow above runs with its logs captured; this one runs a full
/// lifecycle and checks that no secret, JWT signature or hash was ever logged.
#[tokio::test]
async fn e2e_logs_never_contain_secrets_jwts_or_hashes() {
    let logs = capture_logs();
    let gw = start(60).await;
    let jwt = gw.login("alice").await;
    let pat = gw
        .issue_pat(
            &jwt,
            &["items:read", "items:write", "tokens:read", "tokens:write"],
        )
        .await;
    gw.send(
        "POST",
        "/items",
        Some(&pat),
        Some(json!({"name": "logged?"})),
    )
    .await;
    gw.send("GET", "/tokens/self", Some(&pat), None).await;
    let (_, rotated) = gw
        .send(
            "POST",
            &format!("/tokens/{}/rotate", &pat[6..23]),
            Some(&jwt),
            None,
        )
        .await;
    let successor = rotated["token"].as_str().unwrap().to_owned();
    gw.send("GET", "/items", Some(&successor), None).await;
    gw.send(
        "POST",
        "/tokens/revoke",
        None,
        Some(json!({"token": successor})),
    )
    .await;
    gw.send("GET", "/items", Some("agpat_junk"), None).await;
    let text = logs.text();
    assert!(
        text.contains("local_gateway::access"),
        "access lines are captured"
    );
    assert!(
        text.contains("authorizer decision"),
        "authorizer decisions are captured"
    );
    let secret_of = |t: &str| t[23..66].to_owned();
    for (what, needle) in [
        ("PAT secret", secret_of(&pat)),
        ("successor secret", secret_of(&successor)),
        ("JWT signature", jwt.rsplit('.').next().unwrap().to_owned()),
        ("argon2 hash marker", "$argon2".to_owned()),
    ] {
        assert!(!text.contains(&needle), "{what} reached the logs");
    }
}

/// The shipped defaults: API Gateway's authorizer cache 60 s (cdk.json), the
/// in-process PAT cache 30 s, 5 wrong secrets per id and address per 30 s.
async fn start_as_shipped() -> Running {
    start_with(60, 30).await
}

fn id_of(pat: &str) -> &str {
    &pat[shared::pat::PAT_PREFIX.len()..shared::pat::PAT_PREFIX.len() + 17]
}

#[tokio::test]
async fn a_leaked_pat_cannot_rotate_or_revoke_its_siblings_end_to_end() {
    let gw = start_as_shipped().await;
    let jwt = gw.login("alice").await;
    let leaked = gw
        .issue_pat(&jwt, &["tokens:write", "tokens:read", "items:read"])
        .await;
    let sibling = gw.issue_pat(&jwt, &["items:read"]).await;
    let sibling_id = id_of(&sibling);

    let (status, body) = gw
        .send(
            "POST",
            &format!("/tokens/{sibling_id}/rotate"),
            Some(&leaked),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "urn:agpat:problem:session-required");
    let (status, body) = gw
        .send(
            "DELETE",
            &format!("/tokens/{sibling_id}"),
            Some(&leaked),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = gw.send("GET", "/items", Some(&sibling), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sibling's holder is not locked out"
    );

    // Rotating itself is allowed, and never extends the chain.
    let (_, before) = gw.send("GET", "/tokens/self", Some(&leaked), None).await;
    let own = id_of(&leaked).to_owned();
    let (status, rotated) = gw
        .send(
            "POST",
            &format!("/tokens/{own}/rotate"),
            Some(&leaked),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(rotated["expiresAt"], before["expiresAt"]);
}

#[tokio::test]
async fn a_cached_allow_past_the_credentials_expiry_is_refused_by_the_service() {
    let gw = start_as_shipped().await;
    let jwt = gw.login("alice").await;
    let (status, body) = gw
        .send(
            "POST",
            "/tokens",
            Some(&jwt),
            Some(json!({"name": "short", "scopes": ["items:read"], "expiresInDays": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pat = body["token"].as_str().unwrap().to_owned();
    // Ten seconds before expiry: allowed, and the Allow enters the gateway cache.
    gw.clock.advance(86_400 - 10);
    let (status, _) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(status, StatusCode::OK);
    let calls = gw.gateway.authorizer_calls();
    // Ten seconds after: API Gateway still serves its cached Allow...
    gw.clock.advance(20);
    let (status, body) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(
        gw.gateway.authorizer_calls(),
        calls,
        "served from the gateway cache"
    );
    // ...and the service refuses the expired context.
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["type"], "urn:agpat:problem:credential-expired");
    // Once the gateway cache expires, the authorizer refuses it itself.
    gw.clock.advance(61);
    let (status, body) = gw.send("GET", "/items", Some(&pat), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_unauthenticated(&body);
}

#[tokio::test]
async fn a_flood_from_another_address_never_locks_out_the_holder_end_to_end() {
    let gw = start_as_shipped().await;
    let jwt = gw.login("alice").await;
    let pat = gw.issue_pat(&jwt, &["items:read"]).await;
    let id = shared::TokenId::parse(id_of(&pat)).unwrap();
    let forged = || shared::testing::token_with_secret_of(&id, &shared::Pat::generate().unwrap());
    for round in 0..4 {
        // Past both caches, so the holder's request after the flood reaches
        // the authorizer cold, inside the flood's failure window.
        gw.clock.advance(61);
        for _ in 0..10 {
            let response = gw
                .other_address
                .get(format!("{}/items", gw.base))
                .header("authorization", format!("Bearer {}", forged()))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        let calls = gw.gateway.authorizer_calls();
        let (status, body) = gw.send("GET", "/items", Some(&pat), None).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
        assert_eq!(gw.gateway.authorizer_calls(), calls + 1, "a cold decision");
    }
}

#[tokio::test]
async fn with_cache_ttl_zero_a_request_without_authorization_reaches_the_authorizer_and_is_refused()
{
    // With its cache off, API Gateway does not validate identity sources: the
    // request reaches our code, and the authorizer must refuse it itself.
    let gw = start(0).await;
    let before = gw.gateway.authorizer_calls();
    for path in ["/items", "/tokens", "/me"] {
        let (status, body) = gw.send("GET", path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_unauthenticated(&body);
    }
    assert_eq!(gw.gateway.authorizer_calls(), before + 3);
}

/// API Gateway's own answers as the construct installs them by default
/// (problem+json gateway responses from `shared::gateway`), with the request
/// id and the 401 challenge; with `problemGatewayResponses: false` the
/// gateway answers as API Gateway does out of the box.
fn assert_unauthenticated(body: &Value) {
    assert_eq!(body["type"], "urn:agpat:problem:unauthenticated", "{body}");
    assert_eq!(body["status"], 401);
    assert!(body["requestId"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn the_gateways_own_answers_are_problem_json_as_deployed_or_api_gateways_when_turned_off() {
    let gw = start(60).await;
    let reply = gw
        .http
        .get(format!("{}/items", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    assert_eq!(reply.headers()["www-authenticate"], "Bearer");
    let request_id = reply.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["requestId"], request_id.as_str());
    assert_eq!(body["title"], "Authentication required");

    let legacy = start_configured(60, 10, |g| g.problem_responses = false).await;
    let reply = legacy
        .http
        .get(format!("{}/items", legacy.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers()["content-type"], "application/json");
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"message": "Unauthorized"})
    );
    let (status, body) = legacy.send("GET", "/nowhere", Some("x"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Missing Authentication Token");
}
