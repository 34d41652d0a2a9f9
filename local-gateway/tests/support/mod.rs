//! What the local gateway's end-to-end tests share: a Lambda invoke endpoint
//! on loopback standing in for the adopter's Lambda, the shipped in-process
//! cache settings, and a gateway served on a free loopback port.

#![allow(dead_code, reason = "each test binary uses part of the harness")]
#![expect(clippy::unwrap_used, reason = "test helpers")]

use axum::Json;
use serde_json::{Value, json};

/// The Cognito password of every test user.
pub const PASSWORD: &str = "Correct-horse-9!";

const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

/// Serves `handler` as a Lambda invoke endpoint (as `cargo lambda watch` or
/// the Runtime Interface Emulator would) on 127.0.0.1; returns its URL.
pub async fn lambda_endpoint<H, T>(handler: H) -> String
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{INVOKE_PATH}", listener.local_addr().unwrap());
    let router = axum::Router::new().route(INVOKE_PATH, axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A Lambda that answers every request `200 {}`.
pub async fn empty_lambda() -> String {
    lambda_endpoint(|Json(_event): Json<Value>| async {
        Json(json!({"statusCode": 200, "headers": {}, "body": "{}", "isBase64Encoded": false}))
    })
    .await
}

/// The authorizer's in-process caches as shipped (PAT 30 s).
pub fn shipped_pat_config() -> authorizer::config::PatConfig {
    authorizer::config::PatConfig {
        positive_ttl_secs: 30,
        negative_ttl_secs: 30,
        max_failures_per_source: 5,
    }
}

/// Serves `app` (a gateway) on a free loopback port; returns its base URL.
pub async fn serve_on_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(local_gateway::serve(listener, app, std::future::pending()));
    base
}

/// A fresh token table and a Cognito pool on moto with `users` (password
/// [`PASSWORD`]), and a gateway setup over them: the fixture manifest,
/// `upstream` as the adopter's Lambda, `gateway` settings, the shipped
/// in-process caches.
pub async fn fixture(
    pool_name: &str,
    users: &[&str],
    upstream: &str,
    gateway: local_gateway::GatewayConfig,
) -> local_gateway::LocalSetup {
    let endpoint = shared::testing::endpoint();
    let store = shared::testing::fresh_store(50).await;
    let pool = local_gateway::cognito::create_pool(&endpoint, "us-east-1", pool_name)
        .await
        .unwrap();
    for user in users {
        local_gateway::cognito::create_user(&pool, user, PASSWORD)
            .await
            .unwrap();
    }
    local_gateway::LocalSetup {
        manifest: shared::testing::manifest(),
        store,
        upstream: local_gateway::Upstream::lambda_invoke(upstream).unwrap(),
        pool,
        gateway,
        pat: shipped_pat_config(),
        max_lifetime_days: 90,
    }
}

/// `POST /tokens` on `base` as `jwt` with `body`: the issued token's JSON
/// (asserted `201`).
pub async fn issue(http: &reqwest::Client, base: &str, jwt: &str, body: Value) -> Value {
    let reply = http
        .post(format!("{base}/tokens"))
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), reqwest::StatusCode::CREATED, "{body}");
    reply.json().await.unwrap()
}
