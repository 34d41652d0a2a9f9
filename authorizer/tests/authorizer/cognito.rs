//! Real tokens from moto's Cognito (InitiateAuth), verified through moto's JWKS.

use serde_json::{Value, json};

use crate::support::*;

async fn cognito(endpoint: &str, target: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{target}"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/cognito-idp/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

struct Pool {
    id: String,
    client_id: String,
    access: String,
    id_token: String,
}

async fn moto_pool_with_user() -> Pool {
    let endpoint = shared::testing::endpoint();
    let pool = cognito(
        &endpoint,
        "CreateUserPool",
        json!({"PoolName": "agpat-test"}),
    )
    .await;
    let pool_id = pool["UserPool"]["Id"].as_str().unwrap().to_owned();
    let client = cognito(
        &endpoint,
        "CreateUserPoolClient",
        json!({"UserPoolId": pool_id, "ClientName": "cli", "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    let client_id = client["UserPoolClient"]["ClientId"]
        .as_str()
        .unwrap()
        .to_owned();
    cognito(
        &endpoint,
        "AdminCreateUser",
        json!({"UserPoolId": pool_id, "Username": "alice", "MessageAction": "SUPPRESS"}),
    )
    .await;
    cognito(
        &endpoint,
        "AdminSetUserPassword",
        json!({"UserPoolId": pool_id, "Username": "alice", "Password": "Correct-horse-9!", "Permanent": true}),
    )
    .await;
    let auth = cognito(
        &endpoint,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id, "AuthParameters": {"USERNAME": "alice", "PASSWORD": "Correct-horse-9!"}}),
    )
    .await;
    Pool {
        id: pool_id,
        client_id,
        access: auth["AuthenticationResult"]["AccessToken"]
            .as_str()
            .unwrap()
            .to_owned(),
        id_token: auth["AuthenticationResult"]["IdToken"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

/// An authorizer trusting moto's pool, allowing app client `client_id`.
async fn harness_for(pool: &Pool, client_id: &str, accept_id: bool) -> Harness {
    let endpoint = shared::testing::endpoint();
    let mut builder = HarnessBuilder::new(&format!("{endpoint}/{}/.well-known/jwks.json", pool.id));
    builder.jwt.issuer = format!("https://cognito-idp.us-east-1.amazonaws.com/{}", pool.id);
    builder.jwt.client_ids = vec![client_id.to_owned()];
    builder.jwt.token_use.id = accept_id;
    let h = builder.build().await;
    h.clock.set(shared::Clock::now(&shared::SystemClock));
    h
}

#[tokio::test]
async fn a_real_cognito_access_token_from_moto_is_allowed() {
    let pool = moto_pool_with_user().await;
    let h = harness_for(&pool, &pool.client_id, false).await;
    let response = h.decide(Some(&bearer(&pool.access))).await.unwrap();
    assert_eq!(response.context.username, "alice");
    assert_eq!(
        allowed_resources(&response),
        expected_resources(shared::testing::default_scopes())
    );
    assert_unauthorized(
        h.decide(Some(&bearer(&pool.id_token))).await,
        "id token refused by default",
    );
}

#[tokio::test]
async fn a_real_cognito_id_token_is_allowed_only_when_configured() {
    let pool = moto_pool_with_user().await;
    let h = harness_for(&pool, &pool.client_id, true).await;
    let response = h.decide(Some(&bearer(&pool.id_token))).await.unwrap();
    assert_eq!(response.context.username, "alice");
}

#[tokio::test]
async fn a_cognito_token_for_another_client_is_refused() {
    let pool = moto_pool_with_user().await;
    let h = harness_for(&pool, "some-other-client", false).await;
    assert_unauthorized(h.decide(Some(&bearer(&pool.access))).await, "other client");
}
