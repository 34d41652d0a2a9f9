//! Per-token rate limits as usage plans (issue #16 item 3), end to end
//! through the local gateway: the authorizer names each token's tier key
//! (`usageIdentifierKey`), and the gateway throttles and meters per key as
//! API Gateway does with the API key source `AUTHORIZER`, cached decisions
//! included. The gateway's clock is frozen, so buckets refill only when the
//! test says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use local_gateway::usage::UsagePlan;
use local_gateway::{GatewayConfig, app, build, cognito};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod support;

use support::{PASSWORD, empty_lambda, fixture, serve_on_loopback};

#[derive(Debug)]
struct Frozen(AtomicI64);

impl shared::Clock for Frozen {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn plan(name: &str, rate_per_sec: u32, burst: u32, quota: Option<u64>) -> UsagePlan {
    UsagePlan {
        name: name.into(),
        rate_per_sec,
        burst,
        quota,
        quota_period_secs: 86_400,
        keys: vec![format!("test-{name}-key-000000000")],
    }
}

#[tokio::test]
async fn a_token_that_exhausts_its_tier_leaves_every_other_tier_alone() {
    let gateway = GatewayConfig {
        usage_plans: vec![
            plan("standard", 1000, 2000, None),
            plan("slow", 1, 2, None),
            plan("metered", 1000, 1000, Some(3)),
        ],
        default_rate_tier: Some("standard".into()),
        ..GatewayConfig::default()
    };
    let setup = fixture("tiers", &["carol"], &empty_lambda().await, gateway).await;
    let pool = setup.pool.clone();
    let clock = Arc::new(Frozen(AtomicI64::new(shared::Clock::now(
        &shared::SystemClock,
    ))));
    let gateway = build(&setup, Arc::clone(&clock)).unwrap();
    let base = serve_on_loopback(app(gateway)).await;
    let http = reqwest::Client::new();
    let jwt = cognito::login(&pool, "carol", PASSWORD).await.unwrap();
    let issue = |tier: Option<&str>| {
        let mut body = json!({"name": "t", "scopes": ["docs:read"], "expiresInDays": 7});
        if let Some(tier) = tier {
            body["rateTier"] = json!(tier);
        }
        let request = http
            .post(format!("{base}/tokens"))
            .bearer_auth(&jwt)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let mut tokens = Vec::new();
    for tier in [Some("slow"), Some("slow"), None, Some("metered")] {
        let reply = issue(tier).await;
        assert_eq!(reply.status(), StatusCode::CREATED);
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["rateTier"].as_str(), tier);
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let refused = issue(Some("platinum")).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let [slow_a, slow_b, standard, metered] = [0, 1, 2, 3].map(|i| tokens[i].clone());
    let url = format!("{base}/docs/readme");
    let get = |token: String| {
        let request = http.get(&url).bearer_auth(token);
        async move {
            let reply = request.send().await.unwrap();
            let status = reply.status();
            let kind = reply
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                status,
                kind,
                reply.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    // The slow tier's key: a burst of 2, then 429 with the gateway's
    // problem+json, however the decisions were served.
    assert_eq!(get(slow_a.clone()).await.0, StatusCode::OK);
    assert_eq!(get(slow_a.clone()).await.0, StatusCode::OK);
    let (status, kind, body) = get(slow_a.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(kind.as_deref(), Some("application/problem+json"));
    assert_eq!(body["type"], "urn:agpat:problem:throttled");
    // Per tier, not per token: the other slow token shares the key.
    assert_eq!(get(slow_b.clone()).await.0, StatusCode::TOO_MANY_REQUESTS);
    // Every other tier is untouched: tokens and sessions alike.
    for _ in 0..20 {
        assert_eq!(get(standard.clone()).await.0, StatusCode::OK);
    }
    assert_eq!(
        get(jwt.clone()).await.0,
        StatusCode::OK,
        "a session: the default tier"
    );
    // One second later the slow key has one request again.
    clock.0.fetch_add(1, Ordering::SeqCst);
    assert_eq!(get(slow_b.clone()).await.0, StatusCode::OK);
    assert_eq!(get(slow_a).await.0, StatusCode::TOO_MANY_REQUESTS);

    // A quota: three requests per period, then 429 naming QUOTA_EXCEEDED.
    for _ in 0..3 {
        assert_eq!(get(metered.clone()).await.0, StatusCode::OK);
    }
    let (status, _, body) = get(metered).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "QUOTA_EXCEEDED");
}
