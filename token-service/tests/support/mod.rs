//! Harness: the token service and the real authorizer over one moto table,
//! driven with API Gateway REST proxy events that carry the authorizer context.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use authorizer::Authorizer;
use authorizer::config::{AcceptedTokenUse, JwtConfig, PatConfig};
use authorizer::jwks::{JwksError, JwksSource, KeyCache};
use authorizer::jwt::JwtVerifier;
use authorizer::pat::PatVerifier;
use serde_json::{Value, json};
use shared::hash::{HashParams, SecretHasher};
use shared::store::TokenStore;
use shared::{AuthMethod, AuthorizerContext, Clock, ScopeSet};
use token_service::{AppState, handle, router};

pub const T0: i64 = 1_900_000_000;
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
        let clock = Arc::new(TestClock::default());
        clock.set(T0);
        let state = AppState::new(store.clone(), hasher(), clock.clone(), max_days).unwrap();
        let jwt = JwtConfig {
            issuer: "https://issuer.invalid".into(),
            jwks_url: "http://127.0.0.1:9/jwks.json".into(),
            client_ids: vec!["unused".into()],
            token_use: AcceptedTokenUse {
                access: true,
                id: false,
            },
            leeway_secs: 5,
            default_scopes: ScopeSet::all(),
            scope_claim_prefix: None,
        };
        // No positive or negative caching: every decision reflects the table now.
        let pat_cfg = PatConfig {
            positive_ttl_secs: 0,
            negative_ttl_secs: 0,
            max_failures_per_id: 5,
        };
        let authorizer = Authorizer::new(
            JwtVerifier::new(jwt, KeyCache::new(NoJwks)),
            PatVerifier::new(store.clone(), hasher(), pat_cfg, 300).unwrap(),
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
        let event: aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(json!({
                "type": "REQUEST",
                "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api1/test/GET/tokens",
                "headers": {"Authorization": format!("Bearer {token}")},
                "requestContext": {"requestId": "authz-1", "stage": "test"}
            }))
            .unwrap();
        self.authorizer.decide(&event).await.ok().map(|r| r.context)
    }

    /// Sends a request through the Lambda entry point.
    pub async fn call(&self, req: Req<'_>) -> Reply {
        let event = req.event();
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = handle(self.app.clone(), request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = match response.body() {
            lambda_http::Body::Text(t) => t.clone(),
            lambda_http::Body::Empty => String::new(),
            lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }
}

/// A Cognito session's context, as API Gateway forwards it (all strings).
pub fn session(sub: &str, scopes: &str) -> AuthorizerContext {
    AuthorizerContext {
        sub: sub.into(),
        username: "someone".into(),
        auth_method: AuthMethod::Jwt,
        scopes: scopes.into(),
        token_id: String::new(),
        expires_at: T0 + 3600,
    }
}

pub const ALL: &str = "tokens:read tokens:write items:read items:write";

pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub context: Option<AuthorizerContext>,
    pub body: Option<String>,
    pub content_type: Option<&'a str>,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: &'a str, context: Option<&AuthorizerContext>) -> Self {
        Self {
            method,
            path,
            query: None,
            context: context.cloned(),
            body: None,
            content_type: None,
        }
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self.content_type = Some("application/json");
        self
    }

    pub fn raw(mut self, body: &str, content_type: Option<&'a str>) -> Self {
        self.body = Some(body.to_owned());
        self.content_type = content_type;
        self
    }

    pub fn query(mut self, q: &'a str) -> Self {
        self.query = Some(q);
        self
    }

    fn event(&self) -> Value {
        let mut headers = serde_json::Map::new();
        headers.insert("User-Agent".into(), json!("token-tests/1.0"));
        if let Some(ct) = self.content_type {
            headers.insert("Content-Type".into(), json!(ct));
        }
        let query: Value = match self.query {
            None => Value::Null,
            Some(q) => Value::Object(
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), json!(v)))
                    .collect(),
            ),
        };
        // API Gateway forwards every context value as a string.
        let authorizer = self.context.as_ref().map(|c| {
            let mut map = serde_json::Map::new();
            for (k, v) in serde_json::to_value(c).unwrap().as_object().unwrap() {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                map.insert(k.clone(), json!(s));
            }
            map.insert("principalId".into(), json!(c.sub));
            Value::Object(map)
        });
        json!({
            "resource": self.path,
            "path": self.path,
            "httpMethod": self.method,
            "headers": headers,
            "queryStringParameters": query,
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "resourcePath": self.path,
                "httpMethod": self.method,
                "path": format!("/test{}", self.path),
                "stage": "test",
                "requestId": "req-1",
                "accountId": "123456789012",
                "apiId": "api1",
                "identity": {"sourceIp": "198.51.100.7", "userAgent": "token-tests/1.0"},
                "authorizer": authorizer
            },
            "body": self.body,
            "isBase64Encoded": false
        })
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn problem_type(&self) -> &str {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        self.json["type"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.problem_type(),
            format!("urn:agpat:problem:{slug}"),
            "{}",
            self.text
        );
        assert_eq!(self.json["status"], status);
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
