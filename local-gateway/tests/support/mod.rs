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
