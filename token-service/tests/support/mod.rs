//! Harness: the token service and the real authorizer over one moto table,
//! driven with API Gateway REST proxy events that carry the authorizer context.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use authorizer::Authorizer;
use authorizer::config::{JwtConfig, PatConfig};
use authorizer::jwks::{JwksError, JwksSource, KeyCache};
use authorizer::jwt::JwtVerifier;
use authorizer::pat::PatVerifier;
use serde_json::json;
use shared::hash::{HashParams, SecretHasher};
use shared::store::TokenStore;
pub use shared::testing::http::{ALL, Reply, Req, T0, call, session};
use shared::{AuthorizerContext, Clock};
use token_service::{AppState, router};

pub const DAY: i64 = 86_400;
pub const USER_A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
pub const USER_B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";

#[derive(Debug, Default)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The JWT path is tested in the authorizer crate; here it is never used.
pub struct NoJwks;

impl JwksSource for NoJwks {
    async fn fetch(&self) -> Result<Vec<u8>, JwksError> {
        Err(JwksError::Unavailable(
            "not used in token-service tests".into(),
        ))
    }
}

pub struct Harness {
    pub store: TokenStore,
    pub clock: Arc<TestClock>,
    pub app: axum::Router,
    pub authorizer: Authorizer<NoJwks, TokenStore, TestClock>,
}

pub fn hasher() -> SecretHasher {
    SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN).unwrap()
}

impl Harness {
    pub async fn new(cap: u32) -> Self {
        Self::with_max_lifetime(cap, 90).await
    }

    pub async fn with_max_lifetime(cap: u32, max_days: i64) -> Self {
        let store = shared::testing::fresh_store(cap).await;
        Self::over(store, max_days)
    }

    /// Another service over the same table (e.g. with another lifetime policy).
    pub fn over(store: TokenStore, max_days: i64) -> Self {
        Self::over_hashing(store, max_days, hasher())
    }

    /// Another service and authorizer over the same table, hashing (and
    /// enforcing a floor) with `hasher`.
    pub fn over_hashing(store: TokenStore, max_days: i64, hasher: SecretHasher) -> Self {
        Self::over_with(store, max_days, hasher, None)
    }

    /// A fresh service state over this harness's table and clock (90-day
    /// policy, the fixture manifest), for a test to switch options on.
    pub fn state(&self) -> AppState {
        AppState::new(
            self.store.clone(),
            hasher(),
            self.clock.clone(),
            90,
            shared::testing::manifest(),
        )
        .unwrap()
    }

    /// A service on a fresh table that publishes owner events to `bus`.
    pub async fn with_event_bus(cap: u32, bus: shared::bus::EventBus) -> Self {
        let store = shared::testing::fresh_store(cap).await;
        Self::over_with(store, 90, hasher(), Some(bus))
    }

    fn over_with(
        store: TokenStore,
        max_days: i64,
        hasher: SecretHasher,
        bus: Option<shared::bus::EventBus>,
    ) -> Self {
        let clock = Arc::new(TestClock::default());
        clock.set(T0);
        let manifest = shared::testing::manifest();
        let state = AppState::new(
            store.clone(),
            hasher.clone(),
            clock.clone(),
            max_days,
            manifest.clone(),
        )
        .unwrap();
        let state = match bus {
            Some(bus) => state.with_event_bus(bus).unwrap(),
            None => state,
        };
        let jwt = JwtConfig::for_issuer(
            "https://issuer.invalid",
            "http://127.0.0.1:9/jwks.json",
            "unused",
        );
        // No positive or negative caching: every decision reflects the table now.
        let pat_cfg = PatConfig {
            positive_ttl_secs: 0,
            negative_ttl_secs: 0,
            max_failures_per_source: 5,
        };
        let authorizer = Authorizer::new(
            JwtVerifier::new(jwt, KeyCache::new(NoJwks), manifest.clone()).unwrap(),
            PatVerifier::new(store.clone(), hasher, pat_cfg, 300, manifest).unwrap(),
            clock.clone(),
            8192,
        );
        Self {
            store,
            clock,
            app: router(state),
            authorizer,
        }
    }

    /// The authorizer's decision for `token`: the forwarded context if allowed.
    pub async fn authorize(&self, token: &str) -> Option<AuthorizerContext> {
        let event: authorizer::event::AuthorizerEvent = serde_json::from_value(json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api1/test/GET/tokens",
            "headers": {"Authorization": format!("Bearer {token}")},
            "requestContext": {"requestId": "authz-1", "stage": "test"}
        }))
        .unwrap();
        self.authorizer
            .decision(&event)
            .await
            .ok()
            .map(|d| d.context().clone())
    }

    /// As [`Self::authorize`], for a request from `ip` with `user_agent`;
    /// waits for the background last-use write.
    pub async fn authorize_from(
        &self,
        token: &str,
        ip: &str,
        user_agent: &str,
    ) -> Option<AuthorizerContext> {
        let event: authorizer::event::AuthorizerEvent =
            serde_json::from_value(json!({
                "type": "REQUEST",
                "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api1/test/GET/tokens",
                "headers": {"Authorization": format!("Bearer {token}"), "User-Agent": user_agent},
                "requestContext": {"requestId": "authz-1", "stage": "test", "identity": {"sourceIp": ip}}
            }))
            .unwrap();
        let decided = self
            .authorizer
            .decision(&event)
            .await
            .ok()
            .map(|d| d.context().clone());
        self.authorizer.pat().settle().await;
        decided
    }

    /// `POST /tokens/{id}/rotate` as `ctx`, with `overlapSeconds` when given.
    pub async fn rotate(&self, id: &str, ctx: &AuthorizerContext, overlap: Option<i64>) -> Reply {
        let path = format!("/tokens/{id}/rotate");
        let req = Req::new("POST", &path, Some(ctx));
        let req = match overlap {
            Some(secs) => req.json(json!({"overlapSeconds": secs})),
            None => req,
        };
        self.call(req).await
    }

    /// Sends a request through the Lambda entry point.
    pub async fn call(&self, req: Req<'_>) -> Reply {
        call(&self.app, req).await
    }
}

/// Issues a token through the API as a Cognito session; returns (token, id).
pub async fn issue(h: &Harness, sub: &str, scopes: &[&str], days: i64) -> (String, String) {
    let reply = h
        .call(
            Req::new("POST", "/tokens", Some(&session(sub, ALL))).json(json!({
                "name": "ci token", "scopes": scopes, "expiresInDays": days
            })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    (
        reply.json["token"].as_str().unwrap().to_owned(),
        reply.json["id"].as_str().unwrap().to_owned(),
    )
}
