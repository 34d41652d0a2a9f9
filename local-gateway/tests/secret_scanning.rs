//! The secret-scanning partner route (issue #16 item 4) end to end through
//! the local gateway, with the shipped caches on: a report signed with a
//! locally generated P-256 key, whose public key a local endpoint publishes
//! as GitHub's meta API does, revokes the reported token; a tampered report
//! is refused and revokes nothing. The route is public: no authorizer.

#![expect(clippy::unwrap_used, reason = "test helpers")]

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Json;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use local_gateway::{GatewayConfig, app, build, cognito};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;

use support::{PASSWORD, empty_lambda, fixture, issue, serve_on_loopback};
const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

/// Serves the partner's key endpoint on 127.0.0.1.
async fn serve_keys(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

#[tokio::test]
async fn a_signed_report_through_the_gateway_revokes_the_token_and_a_tampered_one_nothing() {
    // The partner: a key pair, and its public key where GitHub's meta API
    // would publish it.
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        STANDARD.encode(pair.public_key().as_der().unwrap().as_ref())
    );
    let document =
        json!({"public_keys": [{"key_identifier": KEY_ID, "key": pem, "is_current": true}]});
    let keys = serve_keys(axum::Router::new().route(
        "/meta/public_keys/secret_scanning",
        axum::routing::get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    ))
    .await;

    let gateway = GatewayConfig {
        secret_scanning_keys_url: Some(format!("{keys}/meta/public_keys/secret_scanning")),
        ..GatewayConfig::default()
    };
    let setup = fixture("scanning", &["carol"], &empty_lambda().await, gateway).await;
    let pool = setup.pool.clone();
    let gateway = build(&setup, Arc::new(shared::SystemClock)).unwrap();
    let base = serve_on_loopback(app(gateway)).await;
    let http = reqwest::Client::new();
    let jwt = cognito::login(&pool, "carol", PASSWORD).await.unwrap();
    let body = json!({"name": "leaked", "scopes": ["docs:read"], "expiresInDays": 7});
    let token = issue(&http, &base, &jwt, body).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let report = |body: String, signature: String| {
        http.post(format!("{base}/tokens/secret-scanning"))
            .header("content-type", "application/json")
            .header("Github-Public-Key-Identifier", KEY_ID)
            .header("Github-Public-Key-Signature", signature)
            .body(body)
            .send()
    };
    let body = json!([{"token": token, "type": "agpat_personal_access_token",
        "url": "https://github.com/octo/repo/blob/abc/ci.yml#L3", "source": "content"}])
    .to_string();
    let signature = STANDARD.encode(
        pair.sign(&SystemRandom::new(), body.as_bytes())
            .unwrap()
            .as_ref(),
    );

    // Tampered (the body changed after signing): refused, nothing revoked.
    let tampered = body.replace("ci.yml", "cd.yml");
    let reply = report(tampered, signature.clone()).await.unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    let url = format!("{base}/docs/readme");
    assert_eq!(
        http.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "still live (and now cached as allowed)"
    );

    // Genuine: labelled true_positive, the token revoked.
    let reply = report(body, signature).await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let labels: Value = reply.json().await.unwrap();
    assert_eq!(labels[0]["label"], "true_positive");
    assert_eq!(labels[0]["token_raw"], token.as_str());
    let history = http
        .get(format!("{base}/tokens?status=revoked"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
}
