//! Both examples, driven with REST proxy events as API Gateway sends them
//! behind the authorizer (the committed sample context, under the fixture
//! manifest).

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

#[path = "../examples/runtime_handler.rs"]
#[expect(dead_code, reason = "the example's main is not called here")]
mod runtime_handler;

#[path = "../examples/axum_handler.rs"]
#[expect(dead_code, reason = "the example's main is not called here")]
mod axum_handler;

use std::sync::Arc;

use agpat_context::{Clock, Manifest};
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use serde_json::{Value, json};

const NOW: i64 = 1_899_999_000;

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> i64 {
        NOW
    }
}

fn manifest() -> Manifest {
    Manifest::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/manifests/adopter.toml"
    )))
    .unwrap()
}

/// The sample context of `docs/examples/authorizer-context.json`, holding `scopes`.
fn event(method: &str, resource: &str, path: &str, scopes: &str) -> Value {
    let sample: Value =
        serde_json::from_str(include_str!("../../docs/examples/authorizer-context.json")).unwrap();
    let mut authorizer = sample;
    authorizer["scopes"] = scopes.into();
    json!({
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {},
        "multiValueHeaders": {},
        "pathParameters": {"docId": "d1"},
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": format!("/prod{path}"),
            "stage": "prod",
            "requestId": "r1",
            "accountId": "123456789012",
            "apiId": "api",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": authorizer
        },
        "body": null,
        "isBase64Encoded": false
    })
}

#[test]
fn the_runtime_example_answers_with_the_principal_or_a_problem() {
    let m = manifest();
    let ok: ApiGatewayProxyRequest =
        serde_json::from_value(event("GET", "/docs/{docId}", "/docs/d1", "docs:read")).unwrap();
    let response = runtime_handler::handle(&ok, &m, NOW);
    assert_eq!(response.status_code, 200);
    let body = serde_json::to_value(&response).unwrap()["body"].clone();
    let body: Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
    assert_eq!(body["scopes"], "docs:read");
    assert_eq!(body["via"], "pat");

    let wrong: ApiGatewayProxyRequest =
        serde_json::from_value(event("GET", "/docs/{docId}", "/docs/d1", "files:read")).unwrap();
    let refused = serde_json::to_value(runtime_handler::handle(&wrong, &m, NOW)).unwrap();
    assert_eq!(refused["statusCode"], 403);
    assert_eq!(
        refused["headers"]["content-type"],
        "application/problem+json"
    );
    let problem: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(problem["type"], "urn:agpat:problem:insufficient-scope");

    // A cached Allow replayed after the credential expired.
    let late = serde_json::to_value(runtime_handler::handle(&ok, &m, 1_900_000_000)).unwrap();
    assert_eq!(late["statusCode"], 401);
}

async fn call_axum(scopes: &str) -> (u16, Value) {
    let state = axum_handler::AppState {
        manifest: Arc::new(manifest()),
        clock: Arc::new(Fixed),
    };
    let event = event("GET", "/docs/{docId}", "/docs/d1", scopes).to_string();
    let request = lambda_http::request::from_str(&event).unwrap();
    let Ok(response) = agpat_context::handle(axum_handler::router(state), request).await;
    let status = response.status().as_u16();
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_axum_example_checks_the_route_scope_with_the_caller_extractor() {
    let (status, body) = call_axum("docs:read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["doc"], "d1");
    assert_eq!(body["scopes"], "docs:read");
    let (status, body) = call_axum("files:read").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:agpat:problem:insufficient-scope");
}
