//! Per-token IP allow-lists (issue #16 item 5) end to end through the local
//! gateway, with the shipped caches on (gateway 60 s, in-process 30 s):
//! requests from 127.0.0.1 and 127.0.0.2, a real Cognito login on moto, PATs
//! from the token service.
//!
//! With `ip_allow_lists` the authorizer's identity sources are
//! `Authorization` and `context.identity.sourceIp`, as the construct sets
//! them, so an Allow cached for one address is never served to another; the
//! price is one authorizer call per (token, address) instead of per token,
//! which the test counts. Without it, a token that carries an allow-list is
//! refused everywhere (fail closed) and none can be issued.

#![expect(clippy::unwrap_used, reason = "test helpers")]

use std::net::IpAddr;
use std::sync::Arc;

use local_gateway::{GatewayConfig, LocalSetup, app, build, cognito};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;

use support::{PASSWORD, empty_lambda, fixture, issue, serve_on_loopback};

fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, last]))
        .build()
        .unwrap()
}

struct Running {
    base: String,
    gateway: Arc<
        local_gateway::Gateway<
            authorizer::jwks::HttpJwks,
            shared::store::TokenStore,
            shared::SystemClock,
        >,
    >,
}

async fn start(setup: &LocalSetup) -> Running {
    let gateway = build(setup, Arc::new(shared::SystemClock)).unwrap();
    let base = serve_on_loopback(app(gateway.clone())).await;
    Running { base, gateway }
}

async fn status(client: &reqwest::Client, url: &str, token: &str) -> StatusCode {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_token_works_only_from_its_networks_and_no_cached_allow_crosses_addresses() {
    let gateway = GatewayConfig {
        ip_allow_lists: true,
        ..GatewayConfig::default()
    };
    let mut setup = fixture("allow-lists", &["carol"], &empty_lambda().await, gateway).await;
    let pool = setup.pool.clone();
    assert_eq!(setup.gateway.cache_ttl_secs, 60);
    let on = start(&setup).await;
    let jwt = cognito::login(&pool, "carol", PASSWORD).await.unwrap();
    let (near, far) = (client_from(1), client_from(2));

    let created = near
        .post(format!("{}/tokens", on.base))
        .bearer_auth(&jwt)
        .json(
            &json!({"name": "office", "scopes": ["docs:read", "tokens:write"], "expiresInDays": 7,
            "allowedCidrs": ["127.0.0.1", "10.9.8.7/8"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["allowedCidrs"],
        json!(["10.0.0.0/8", "127.0.0.1/32"])
    );
    let fenced = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let body = json!({"name": "laptop", "scopes": ["docs:read"], "expiresInDays": 7});
    let open = issue(&near, &on.base, &jwt, body).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let url = format!("{}/docs/readme", on.base);
    // From inside its network, then (with its Allow cached) from outside.
    let calls = on.gateway.authorizer_calls();
    assert_eq!(status(&near, &url, &fenced).await, StatusCode::OK);
    assert_eq!(status(&far, &url, &fenced).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&near, &url, &fenced).await, StatusCode::OK);
    assert_eq!(status(&far, &url, &fenced).await, StatusCode::UNAUTHORIZED);
    // The Allow for 127.0.0.1 is cached and reused; a refusal is not
    // cached by the gateway, so each request from outside reaches the
    // authorizer (which refuses it from memory, without I/O).
    assert_eq!(on.gateway.authorizer_calls() - calls, 3);

    // The cache-hit cost for every token, fenced or not: one decision per
    // address a token is used from, where a deployment without allow-lists
    // makes one per token.
    let calls = on.gateway.authorizer_calls();
    for _ in 0..3 {
        assert_eq!(status(&near, &url, &open).await, StatusCode::OK);
        assert_eq!(status(&far, &url, &open).await, StatusCode::OK);
    }
    assert_eq!(on.gateway.authorizer_calls() - calls, 2);

    // The successor of a rotation keeps the networks.
    let rotated: Value = near
        .post(format!("{}/tokens/{id}/rotate", on.base))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rotated["allowedCidrs"],
        json!(["10.0.0.0/8", "127.0.0.1/32"])
    );
    let successor = rotated["token"].as_str().unwrap();
    assert_eq!(
        status(&far, &url, successor).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&near, &url, successor).await, StatusCode::OK);

    // A deployment that does not key its cache by address honours no
    // allow-list: the fenced token is refused everywhere, and none is issued.
    setup.gateway.ip_allow_lists = false;
    let off = start(&setup).await;
    let url = format!("{}/docs/readme", off.base);
    assert_eq!(
        status(&near, &url, successor).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&far, &url, successor).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&far, &url, &open).await, StatusCode::OK);
    let refused = near
        .post(format!("{}/tokens", off.base))
        .bearer_auth(&jwt)
        .json(
            &json!({"name": "x", "scopes": ["docs:read"], "expiresInDays": 7,
            "allowedCidrs": ["127.0.0.1"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = refused.text().await.unwrap();
    assert!(body.contains("IP allow-lists are off"), "{body}");
}
