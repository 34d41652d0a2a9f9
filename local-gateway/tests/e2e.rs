//! End-to-end over real HTTP on loopback: moto Cognito login, the local
//! gateway, the real authorizer and both services on a moto table.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use local_gateway::{Gateway, GatewayConfig, LocalSetup, app, build, cognito, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::Clock;

const PASSWORD: &str = "Correct-horse-9!";

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
    gateway: Arc<LocalGateway>,
    clock: Arc<ShiftedClock>,
    pool: cognito::Pool,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(cache_ttl_secs: i64) -> Running {
    let endpoint = shared::testing::endpoint();
    let store = shared::testing::fresh_store(20).await;
    let pool = cognito::create_pool(&endpoint, "us-east-1", "e2e")
        .await
        .unwrap();
    for user in ["alice", "bob"] {
        cognito::create_user(&pool, user, PASSWORD).await.unwrap();
    }
    let setup = LocalSetup {
        store,
        pool: pool.clone(),
        gateway: GatewayConfig {
            cache_ttl_secs,
            ..GatewayConfig::default()
        },
        pat: authorizer::config::PatConfig {
            positive_ttl_secs: 10,
            negative_ttl_secs: 30,
            max_failures_per_id: 5,
        },
        max_lifetime_days: 90,
    };
    let clock = Arc::new(ShiftedClock::default());
    let gateway = build(&setup, clock.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, app(gateway.clone()), async {
        let _ = stopped.await;
    }));
    Running {
        base,
        http: reqwest::Client::new(),
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
    assert_eq!(
        body["message"],
        "User is not authorized to access this resource"
    );

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
    assert_eq!(body, json!({"message": "Unauthorized"}));
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
        assert_eq!(body, json!({"message": "Unauthorized"}));
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
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Missing Authentication Token");
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
        serde_json::to_value(local_gateway::docs::openapi()).unwrap()
    );
}
