//! Test harness: real RS256 keys, an in-test JWKS HTTP server, a movable clock,
//! event fixtures, and authorizers over a real DynamoDB API (moto).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use authorizer::config::{JwtConfig, PatConfig};
use authorizer::jwks::{HttpJwks, KeyCache};
use authorizer::jwt::JwtVerifier;
use authorizer::pat::PatVerifier;
use authorizer::{AuthError, Authorizer, AuthorizerResponse};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::hash::{HashParams, SecretHasher};
use shared::store::TokenStore;
use shared::testing::RequestCounter;
use shared::{Clock, Pat, ScopeSet, TokenMeta, TokenRecord, UserId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool";
pub const CLIENT_ID: &str = "test-client-id";
pub const KID: &str = "test-key-1";
pub const METHOD_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/docs";
pub const STAGE_PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/";
pub const T0: i64 = 1_900_000_000;

pub const JWKS: &str = include_str!("../fixtures/jwks.json");
pub const SIGNING_DER: &[u8] = include_bytes!("../fixtures/signing.pkcs1.der");
pub const OTHER_DER: &[u8] = include_bytes!("../fixtures/other.pkcs1.der");
pub const SIGNING_PUB_PEM: &str = include_str!("../fixtures/signing.pub.pem");
pub const EVENT: &str = include_str!("../fixtures/request-event.json");

/// A clock tests can move.
#[derive(Debug, Default)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(t: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t)))
    }
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A tiny HTTP server on loopback that serves one body and counts requests.
pub struct JwksServer {
    pub url: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(body: &str) -> Self {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            body.len(),
            body
        );
        Self::start_raw(response, false).await
    }

    /// Serves `response` verbatim to every connection; with `hang`, accepts
    /// and reads but never answers (to exercise the fetch timeout).
    pub async fn start_raw(response: String, hang: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    if hang {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/us-east-1_TestPool/.well-known/jwks.json"),
            hits,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting: later fetches fail with connection refused.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

pub fn jwt_config(jwks_url: &str) -> JwtConfig {
    JwtConfig::for_issuer(ISSUER, jwks_url, CLIENT_ID)
}

pub fn pat_config() -> PatConfig {
    PatConfig {
        positive_ttl_secs: 30,
        negative_ttl_secs: 30,
        max_failures_per_source: 3,
    }
}

pub fn hasher() -> SecretHasher {
    SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN).unwrap()
}

pub type TestAuthorizer = Authorizer<HttpJwks, TokenStore, TestClock>;

/// Everything a test needs: the authorizer, its clock, store and counters.
pub struct Harness {
    pub authorizer: TestAuthorizer,
    pub clock: Arc<TestClock>,
    pub store: TokenStore,
    pub dynamo_calls: RequestCounter,
}

pub struct HarnessBuilder {
    pub manifest: Arc<shared::Manifest>,
    pub jwt: JwtConfig,
    pub pat: PatConfig,
    pub store: Option<(TokenStore, RequestCounter)>,
    pub refresh_interval: Duration,
    pub hasher: SecretHasher,
    pub ip_allow_lists: bool,
    pub rate_tiers: Option<authorizer::tiers::RateTiers>,
    /// Verified (token, hash) pairs remembered; `None`: the default.
    pub verified_capacity: Option<usize>,
    /// Tokens in the decision cache; `None`: the default.
    pub decision_cache_capacity: Option<u64>,
    /// DPoP (`AGPAT_DPOP`); `None`: off.
    pub dpop: Option<authorizer::dpop::DpopSettings>,
}

impl HarnessBuilder {
    pub fn new(jwks_url: &str) -> Self {
        Self {
            manifest: shared::testing::manifest(),
            jwt: jwt_config(jwks_url),
            pat: pat_config(),
            store: None,
            refresh_interval: authorizer::jwks::REFRESH_INTERVAL,
            hasher: hasher(),
            ip_allow_lists: false,
            rate_tiers: None,
            verified_capacity: None,
            decision_cache_capacity: None,
            dpop: None,
        }
    }

    /// Another instance (fresh caches) over the same table as `h`.
    pub fn sharing(jwks_url: &str, h: &Harness) -> Self {
        Self {
            store: Some((h.store.clone(), h.dynamo_calls.clone())),
            ..Self::new(jwks_url)
        }
    }

    pub async fn build(self) -> Harness {
        let (store, dynamo_calls) = match self.store {
            Some(s) => s,
            None => shared::testing::fresh_store_with(shared::testing::fresh_config(50)).await,
        };
        let clock = TestClock::at(T0);
        let keys = KeyCache::with_refresh_interval(
            HttpJwks::new(self.jwt.jwks_url.clone()).unwrap(),
            self.refresh_interval,
        );
        let mut pat = PatVerifier::new(
            store.clone(),
            self.hasher,
            self.pat,
            300,
            Arc::clone(&self.manifest),
        )
        .unwrap()
        .with_ip_allow_lists(self.ip_allow_lists);
        if let Some(capacity) = self.verified_capacity {
            pat = pat.with_verified_capacity(capacity);
        }
        if let Some(capacity) = self.decision_cache_capacity {
            pat = pat.with_decision_cache_capacity(capacity);
        }
        let authorizer = Authorizer::new(
            JwtVerifier::new(self.jwt, keys, self.manifest).unwrap(),
            pat,
            Arc::clone(&clock),
            8192,
        )
        .with_rate_tiers(self.rate_tiers)
        .with_dpop(self.dpop);
        Harness {
            authorizer,
            clock,
            store,
            dynamo_calls,
        }
    }
}

impl Harness {
    /// Decides the fixture event with this `Authorization` header (or none)
    /// the way the Lambda does: see [`Harness::decide_json`].
    pub async fn decide(
        &self,
        authorization: Option<&str>,
    ) -> Result<AuthorizerResponse, AuthError> {
        self.decide_json(event_json(authorization).unwrap()).await
    }

    /// As `decide`, for a request from `source_ip`.
    pub async fn decide_from(
        &self,
        authorization: &str,
        source_ip: &str,
    ) -> Result<AuthorizerResponse, AuthError> {
        let mut event = event_json(Some(authorization)).unwrap();
        event["requestContext"]["identity"]["sourceIp"] = Value::String(source_ip.to_owned());
        self.decide_json(event).await
    }

    /// Decides an event as the deployed Lambda does: the lean event parsed
    /// from the event's JSON, the decision serialised to the JSON API
    /// Gateway reads, and that JSON read back as the response type.
    pub async fn decide_json(&self, event: Value) -> Result<AuthorizerResponse, AuthError> {
        let lean: authorizer::event::AuthorizerEvent = serde_json::from_value(event).unwrap();
        let decision = self.authorizer.decision(&lean).await?;
        Ok(serde_json::from_slice(&serde_json::to_vec(&decision).unwrap()).unwrap())
    }

    /// argon2id evaluations this instance has run.
    pub fn argon2_runs(&self) -> u64 {
        self.authorizer.pat().argon2_evaluations()
    }

    /// As `decide`, for credentials an HTTP header may not even carry (control
    /// bytes): `None` when no API Gateway event can hold the value, in which
    /// case the request never reaches the authorizer.
    pub async fn decide_raw(
        &self,
        authorization: &str,
    ) -> Option<Result<AuthorizerResponse, AuthError>> {
        try_event(Some(authorization))?;
        Some(self.decide_json(event_json(Some(authorization))?).await)
    }
}

/// Asserts a credential is refused: `Unauthorized`, or not representable as a header at all.
pub async fn assert_refused(h: &Harness, authorization: &str, case: &str) {
    if let Some(result) = h.decide_raw(authorization).await {
        assert_unauthorized(result, case);
    }
}

/// The fixture event with the given `Authorization` header (or none).
pub fn event(authorization: Option<&str>) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    try_event(authorization).unwrap()
}

/// The fixture event, or `None` if the header value is not a valid HTTP header.
pub fn try_event(
    authorization: Option<&str>,
) -> Option<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    serde_json::from_value(event_json(authorization)?).ok()
}

/// The fixture event's JSON with this `Authorization` header (or none), or
/// `None` if the header value is not a valid HTTP header (API Gateway could
/// not send it).
pub fn event_json(authorization: Option<&str>) -> Option<Value> {
    if authorization.is_some_and(|a| aws_lambda_events::http::HeaderValue::from_str(a).is_err()) {
        return None;
    }
    let mut value: Value = serde_json::from_str(EVENT).unwrap();
    let headers = value["headers"].as_object_mut().unwrap();
    match authorization {
        Some(a) => {
            headers.insert("Authorization".into(), Value::String(a.to_owned()));
        }
        None => {
            headers.remove("Authorization");
        }
    }
    value["multiValueHeaders"]
        .as_object_mut()
        .unwrap()
        .remove("Authorization");
    Some(value)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Claims of a valid Cognito access token at `T0`.
pub fn access_claims() -> Value {
    json!({
        "sub": "8c1d5a2e-1111-4000-8000-000000000001",
        "iss": ISSUER,
        "client_id": CLIENT_ID,
        "token_use": "access",
        "scope": "aws.cognito.signin.user.admin",
        "auth_time": T0 - 60,
        "iat": T0 - 60,
        "exp": T0 + 3600,
        "jti": "3f1e",
        "username": "alice"
    })
}

pub fn sign_with(der: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(der)).unwrap()
}

pub fn sign(claims: &Value) -> String {
    sign_with(SIGNING_DER, Some(KID), claims)
}

pub fn sign_header(header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_rsa_der(SIGNING_DER)).unwrap()
}

/// Issues a real PAT: argon2id hash, stored in the harness's table.
pub async fn issue_pat(store: &TokenStore, owner: &str, scopes: ScopeSet, expires_at: i64) -> Pat {
    issue_pat_with(store, owner, scopes, expires_at, |_| {}).await
}

/// [`issue_pat`], with `edit` applied to the metadata before it is stored
/// (an allow-list, a rate tier…).
pub async fn issue_pat_with(
    store: &TokenStore,
    owner: &str,
    scopes: ScopeSet,
    expires_at: i64,
    edit: impl FnOnce(&mut TokenMeta),
) -> Pat {
    let pat = Pat::generate().unwrap();
    let hash = hasher().hash(pat.secret()).unwrap();
    let mut meta = TokenMeta::issued(
        pat.id().clone(),
        UserId::parse(owner).unwrap(),
        "test",
        shared::testing::manifest().scopes().names(scopes),
        T0 - 10,
        expires_at,
    );
    edit(&mut meta);
    let record = TokenRecord { meta, hash };
    assert_eq!(
        store.create(&record, T0 - 10).await.unwrap(),
        shared::store::CreateOutcome::Created
    );
    pat
}

/// The Allow resources of a response, sorted.
pub fn allowed_resources(response: &AuthorizerResponse) -> Vec<String> {
    let mut out: Vec<String> = response
        .policy_document
        .statement
        .iter()
        .filter(|s| s.effect == aws_lambda_events::iam::IamPolicyEffect::Allow)
        .flat_map(|s| s.resource.clone())
        .collect();
    out.sort();
    out
}

/// What the Allow list must be for `scopes`, from the fixture manifest's routes.
pub fn expected_resources(scopes: ScopeSet) -> Vec<String> {
    let mut out: Vec<String> = shared::testing::manifest()
        .routes()
        .permitted(scopes)
        .map(|r| format!("{STAGE_PREFIX}{}", r.arn_resource()))
        .collect();
    out.dedup();
    out.sort();
    out
}

pub fn assert_unauthorized(result: Result<AuthorizerResponse, AuthError>, case: &str) {
    match result {
        Err(e) => {
            assert_eq!(e, AuthError::Unauthorized, "{case}");
            assert_eq!(e.to_string(), "Unauthorized", "{case}");
            let diag = lambda_runtime::Diagnostic::from(e);
            assert_eq!(diag.error_message, "Unauthorized", "{case}");
            assert_eq!(diag.error_type, "Unauthorized", "{case}");
        }
        Ok(r) => panic!("{case}: expected Unauthorized, got {:?}", r.policy_document),
    }
}

/// The fixture manifest with its `[sessions]` table replaced by `sessions`
/// (same scopes and routes).
pub fn fixture_with_sessions(sessions: &str) -> Arc<shared::Manifest> {
    let text = std::fs::read_to_string(shared::testing::MANIFEST_PATH).unwrap();
    let start = text.find("[sessions]").unwrap();
    let end = text.find("[[scope]]").unwrap();
    let edited = format!("{}{sessions}\n{}", &text[..start], &text[end..]);
    Arc::new(shared::Manifest::parse(&edited, "fixture-with-sessions").unwrap())
}
