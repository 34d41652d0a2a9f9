//! The pre-traffic check CodeDeploy runs against a new authorizer version
//! (`infra/lib/hooks/pre-traffic`): the event it sends must get the answer
//! the hook expects from a healthy version, or every release would roll back.

use crate::support::*;

#[tokio::test]
async fn the_release_hooks_authorizer_event_is_refused_with_unauthorized() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/lib/hooks/pre-traffic/events/authorizer.json"
    ))
    .unwrap();
    let event: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest =
        serde_json::from_str(&text).unwrap();
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    // What the Lambda runtime reports as the error message: exactly this.
    let refused = h.authorizer.decide(&event).await.unwrap_err();
    assert_eq!(refused.to_string(), "Unauthorized");
    assert_eq!(
        lambda_runtime::Diagnostic::from(refused).error_message,
        "Unauthorized"
    );
}
