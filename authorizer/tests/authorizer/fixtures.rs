//! Event and response shapes.

use serde_json::json;

use crate::support::*;

#[test]
fn the_sample_request_event_deserializes() {
    let event = event(Some("Bearer abc"));
    assert_eq!(event.method_arn.as_deref(), Some(METHOD_ARN));
    assert_eq!(event.headers.get("authorization").unwrap(), "Bearer abc");
    assert_eq!(
        event.request_context.request_id.as_deref(),
        Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    );
}

#[tokio::test]
async fn an_allow_response_serializes_to_the_documented_shape() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let pat = issue_pat(
        &h.store,
        "user-1",
        shared::testing::scopes("files:read"),
        T0 + 60,
    )
    .await;
    let response = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    let actual = serde_json::to_value(&response).unwrap();
    // files:read: its routes plus the authenticated ones, and explicit
    // Denies: malformed paths, and /files/shared/{path+} (docs:read), which
    // GET/files/* reaches.
    let expected = json!({
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": ["execute-api:Invoke"],
                "Effect": "Allow",
                "Resource": [
                    format!("{STAGE_PREFIX}GET/"),
                    format!("{STAGE_PREFIX}GET/docs/recent"),
                    format!("{STAGE_PREFIX}GET/files/*"),
                    format!("{STAGE_PREFIX}GET/me"),
                    format!("{STAGE_PREFIX}HEAD/files/*")
                ]
            }, {
                "Action": ["execute-api:Invoke"],
                "Effect": "Deny",
                // Trailing slashes and empty segments, refused for
                // everyone, then the over-reached route.
                "Resource": [
                    format!("{STAGE_PREFIX}*/*/"),
                    format!("{STAGE_PREFIX}*//*"),
                    format!("{STAGE_PREFIX}GET/files/shared/*")
                ]
            }]
        },
        "context": {
            "sub": "user-1",
            "username": "",
            "authMethod": "pat",
            "principalKind": "user_token",
            "scopes": "files:read",
            "tokenId": pat.id().as_str(),
            "expiresAt": T0 + 60,
            // A PAT's issue time: its creation (issue_pat creates at T0 - 10).
            "issuedAt": T0 - 10
        },
        "usageIdentifierKey": null
    });
    assert_eq!(actual, expected);
}
