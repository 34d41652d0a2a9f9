//! An adopter's API through the local gateway, end to end over loopback
//! HTTP: the fixture manifest (12 scopes, 47 routes, greedy paths), a real
//! Cognito login on moto, PATs issued by the token service, and the
//! adopter's Lambda behind a Lambda invoke endpoint (here a small echo server
//! standing in for `cargo lambda watch` or the Runtime Interface Emulator).
//!
//! With the shipped caches on (gateway 60 s, PAT 30 s), a PAT holding one
//! scope reaches exactly the routes that scope permits, whichever route was
//! cached first: each scope's walk starts at another route.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

use std::sync::Arc;

use axum::Json;
use local_gateway::{GatewayConfig, LocalSetup, Upstream, app, build, cognito, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::routes::Method;

const PASSWORD: &str = "Correct-horse-9!";

/// The adopter's Lambda: echoes what API Gateway told it.
async fn echo(Json(event): Json<Value>) -> Json<Value> {
    let seen = json!({
        "resource": event["resource"],
        "httpMethod": event["httpMethod"],
        "pathParameters": event["pathParameters"],
        "scopes": event["requestContext"]["authorizer"]["scopes"],
    });
    Json(json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {"x-echo": ["1", "2"]},
        "body": seen.to_string(),
        "isBase64Encoded": false
    }))
}

async fn start_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/2015-03-31/functions/function/invocations",
        listener.local_addr().unwrap()
    );
    let router = axum::Router::new().route(
        "/2015-03-31/functions/function/invocations",
        axum::routing::post(echo),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

#[tokio::test]
async fn a_one_scope_pat_reaches_exactly_its_routes_whatever_was_cached_first() {
    let endpoint = shared::testing::endpoint();
    let store = shared::testing::fresh_store(50).await;
    let pool = cognito::create_pool(&endpoint, "us-east-1", "adopter")
        .await
        .unwrap();
    cognito::create_user(&pool, "carol", PASSWORD)
        .await
        .unwrap();
    let manifest = shared::testing::manifest();
    let setup = LocalSetup {
        manifest: Arc::clone(&manifest),
        store,
        upstream: Upstream::lambda_invoke(&start_upstream().await).unwrap(),
        pool: pool.clone(),
        // The shipped defaults: both caches on.
        gateway: GatewayConfig::default(),
        pat: authorizer::config::PatConfig {
            positive_ttl_secs: 30,
            negative_ttl_secs: 30,
            max_failures_per_source: 5,
        },
        max_lifetime_days: 90,
    };
    assert_eq!(setup.gateway.cache_ttl_secs, 60);
    let gateway = build(&setup, Arc::new(shared::SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        app(gateway.clone()),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let jwt = cognito::login(&pool, "carol", PASSWORD).await.unwrap();

    // Every request that reaches one of the adopter's routes.
    let table = manifest.routes();
    let mut requests: Vec<(Method, String, &shared::routes::Route)> = Vec::new();
    for route in table.routes().iter().filter(|r| !r.built_in) {
        for path in shared::testing::sample_paths(table, route) {
            if let Some(served) = table.find(route.method, &path) {
                requests.push((route.method, path, served));
            }
        }
    }
    requests.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    requests.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    assert!(requests.len() > 500, "{}", requests.len());

    let delegable = manifest.sessions().pat_ceiling();
    let registry = manifest.scopes();
    let mut walked = 0;
    for (n, scope) in delegable.iter().enumerate() {
        let name = registry.name(scope);
        let created = http
            .post(format!("{base}/tokens"))
            .bearer_auth(&jwt)
            .json(&json!({"name": name, "scopes": [name], "expiresInDays": 7}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let pat = created.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let held = shared::ScopeSet::EMPTY.with(scope);
        let calls_before = gateway.authorizer_calls();
        // Start the walk somewhere else for each scope.
        let start = (n * 97) % requests.len();
        let mut protected_seen = 0;
        for i in 0..requests.len() {
            let (method, path, served) = &requests[(start + i) % requests.len()];
            let reply = http
                .request(method.as_str().parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(&pat)
                .send()
                .await
                .unwrap();
            let status = reply.status();
            let permitted = !served.access.is_protected() || served.access.permits(held);
            let case = format!("{name}: {method} {path} ({})", served.label());
            if !permitted {
                assert_eq!(status, StatusCode::FORBIDDEN, "{case}");
                protected_seen += 1;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "{case}");
            if served.access.is_protected() {
                protected_seen += 1;
            }
            if *method == Method::Head {
                continue;
            }
            assert_eq!(
                reply.headers().get_all("x-echo").iter().count(),
                2,
                "{case}"
            );
            let echoed: Value = reply.json().await.unwrap();
            assert_eq!(echoed["resource"], served.path.as_str(), "{case}");
            if served.access.is_protected() {
                assert_eq!(echoed["scopes"], name, "{case}");
            } else {
                assert_eq!(echoed["scopes"], Value::Null, "{case}");
            }
            walked += 1;
        }
        assert!(protected_seen > 0);
        // The same requests with a trailing slash (API Gateway serves them
        // with the same route) are refused, even where the scope fits.
        for (method, path, served) in requests
            .iter()
            .filter(|r| r.2.access.is_protected())
            .take(25)
        {
            let reply = http
                .request(method.as_str().parse().unwrap(), format!("{base}{path}/"))
                .bearer_auth(&pat)
                .send()
                .await
                .unwrap();
            assert_eq!(
                reply.status(),
                StatusCode::FORBIDDEN,
                "{name}: {method} {path}/ ({})",
                served.label()
            );
        }
        // One authorizer call for the whole walk: every other decision was
        // the cached policy, applied to routes other than the first one.
        assert_eq!(gateway.authorizer_calls() - calls_before, 1, "{name}");
    }
    assert!(walked > 100, "{walked}");
}

#[tokio::test]
async fn only_a_loopback_upstream_is_accepted() {
    for bad in [
        "https://127.0.0.1:9000/x",
        "http://10.0.0.1:9000/x",
        "http://example.com/x",
        "ftp://localhost/x",
    ] {
        assert!(Upstream::lambda_invoke(bad).is_err(), "{bad}");
    }
    for good in [
        "http://127.0.0.1:9000/2015-03-31/functions/function/invocations",
        "http://localhost:9000/x",
        "http://[::1]:9000/x",
    ] {
        assert!(Upstream::lambda_invoke(good).is_ok(), "{good}");
    }
}
