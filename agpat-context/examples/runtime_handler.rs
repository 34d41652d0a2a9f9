//! A business Lambda on plain `lambda_runtime`: `GET /docs/{docId}` of the
//! fixture manifest. Run it under `cargo lambda watch` (or the Runtime
//! Interface Emulator) with `AGPAT_MANIFEST` set, and point the local
//! gateway's `AGPAT_UPSTREAM` at it.

use std::sync::Arc;

use agpat_context::{Clock, Manifest, SystemClock, authorize_proxy_event, refusal_response};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use lambda_runtime::{LambdaEvent, service_fn};

/// Answers one event: the caller's identity, or the refusal.
pub fn handle(
    event: &ApiGatewayProxyRequest,
    manifest: &Manifest,
    now: i64,
) -> ApiGatewayProxyResponse {
    let principal = match authorize_proxy_event(event, manifest, now) {
        Ok(p) => p,
        Err(refusal) => return refusal_response(&refusal),
    };
    let body = serde_json::json!({
        "owner": principal.sub.as_str(),
        "via": principal.method.as_str(),
        "scopes": manifest.scopes().to_space_separated(principal.scopes),
    });
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response.body = Some(Body::Text(body.to_string()));
    response
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    agpat_context::init_lambda_logging_with(&["runtime_handler"]);
    let manifest = Arc::new(Manifest::from_env()?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| {
            let manifest = Arc::clone(&manifest);
            async move {
                Ok::<_, lambda_runtime::Error>(handle(&event.payload, &manifest, SystemClock.now()))
            }
        },
    ))
    .await
}
