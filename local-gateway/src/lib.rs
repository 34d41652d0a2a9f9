//! A local API Gateway with REST API semantics, for `make dev` and end-to-end
//! tests. It runs the real authorizer and the real service routers in-process:
//!
//! 1. the route comes from the shared route table (unknown: 403 "Missing
//!    Authentication Token", as API Gateway answers);
//! 2. public routes skip the authorizer;
//! 3. with the authorizer cache on (TTL > 0), a missing or empty
//!    `Authorization` is a 401 **without** calling the authorizer; with the
//!    cache off (TTL 0) identity sources are not validated, so the authorizer
//!    is invoked without the header (and refuses it);
//! 4. the authorizer's result is cached by identity source for the configured
//!    TTL (0 = off), and its IAM policy is evaluated against the request's
//!    method ARN (explicit Deny wins, wildcards honoured);
//! 5. the service handler gets the same REST proxy event API Gateway sends,
//!    with `requestContext.authorizer` set to the returned context.
//!
//! The [`control`] plane (loopback only) speaks the AWS calls of the
//! emergency revocation lever: flush the stage's authorizer cache, and start
//! fresh authorizer instances (new configuration, new version, alias moved).

pub mod cognito;
pub mod control;
pub mod dev;
pub mod docs;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use authorizer::jwks::JwksSource;
use authorizer::pat::TokenLookup;
use authorizer::{AuthError, Authorizer, AuthorizerResponse};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use shared::Clock;
use shared::policy::{PolicyDecision, evaluate};
use shared::routes::{Access, Method, Route, Segment};

/// Largest request body accepted (API Gateway's payload limit).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Where the emulated API lives, for method ARNs and `requestContext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Region in method ARNs.
    pub region: String,
    /// Account id in method ARNs.
    pub account: String,
    /// API id in method ARNs.
    pub api_id: String,
    /// Stage name.
    pub stage: String,
    /// Authorizer result cache TTL in seconds; 0 turns caching off.
    pub cache_ttl_secs: i64,
    /// The authorizer function the gateway invokes (for the [`control`] plane).
    pub function: control::AuthorizerFunction,
    /// API Gateway's own answers (401, 403, 404, 429, failed integrations)
    /// as problem+json, as the construct installs them by default
    /// (`problemGatewayResponses`); off, API Gateway's `{"message": …}`.
    pub problem_responses: bool,
    /// Tokens' IP allow-lists are honoured: the authorizer's identity
    /// sources are `Authorization` and `context.identity.sourceIp`, so its
    /// result cache is keyed by both (the construct's `ipAllowLists`), and
    /// the authorizer and token service run with `AGPAT_IP_ALLOW_LISTS=on`.
    pub ip_allow_lists: bool,
    /// Tokens may be bound to a DPoP key (RFC 9449), as the construct's
    /// `dpop` sets it up: the authorizer's result cache is off (TTL 0: a
    /// cached Allow would serve a request without its proof), and the
    /// authorizer and token service run with `AGPAT_DPOP=on`. A bound
    /// token's proofs name the gateway's own URL ([`Self::dpop_origins`]).
    pub dpop: bool,
    /// The origins clients reach this gateway at (e.g.
    /// `http://127.0.0.1:3000`), the authorizer's `DPOP_ORIGINS`.
    pub dpop_origins: Vec<String>,
    /// Usage plans, one per rate tier, with their API keys, as the
    /// construct's `rateTiers` creates them; empty, none (no method requires
    /// a key). The authorizer names each principal's key, the token service
    /// accepts the tiers' names.
    pub usage_plans: Vec<usage::UsagePlan>,
    /// The tier of principals without one (sessions, services, tokens issued
    /// without `rateTier`); unset, the first plan's.
    pub default_rate_tier: Option<String>,
    /// Where the secret-scanning partner's public keys are (the token
    /// service's `SECRET_SCANNING_KEYS_URL`; loopback `http://` allowed);
    /// unset, `POST /tokens/secret-scanning` answers 404 as if absent.
    pub secret_scanning_keys_url: Option<String>,
}

impl GatewayConfig {
    /// The authorizer's DPoP settings: `None` unless [`Self::dpop`].
    pub fn dpop_settings(&self) -> Option<authorizer::dpop::DpopSettings> {
        self.dpop.then(|| {
            authorizer::dpop::DpopSettings::new(
                self.dpop_origins
                    .iter()
                    .filter_map(|o| authorizer::dpop::DpopSettings::origin(o))
                    .collect(),
            )
        })
    }

    /// The authorizer's view of the usage plans: tier names to key values.
    pub fn rate_tiers(&self) -> Option<authorizer::tiers::RateTiers> {
        let first = self.usage_plans.first()?;
        let keys = self
            .usage_plans
            .iter()
            .map(|p| (p.name.clone(), p.keys.clone()))
            .collect();
        authorizer::tiers::RateTiers::new(
            keys,
            self.default_rate_tier.as_deref().unwrap_or(&first.name),
        )
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            api_id: "local".into(),
            stage: "dev".into(),
            cache_ttl_secs: 60,
            function: control::AuthorizerFunction::default(),
            problem_responses: true,
            ip_allow_lists: false,
            dpop: false,
            dpop_origins: Vec::new(),
            usage_plans: Vec::new(),
            default_rate_tier: None,
            secret_scanning_keys_url: None,
        }
    }
}

#[derive(Clone)]
struct Cached {
    response: Arc<AuthorizerResponse>,
    at: i64,
}

/// Where the gateway sends requests for the API's own (non-token) routes.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// A router run in this process through the Lambda HTTP adapter, as the
    /// deployed Lambda would run it.
    InProcess(axum::Router),
    /// A Lambda invoke endpoint on loopback, in any language: `cargo lambda
    /// watch`, the AWS Lambda Runtime Interface Emulator, `sam local
    /// start-lambda`. The REST proxy event (with `requestContext.authorizer`)
    /// is POSTed as JSON; the proxy response it returns is the answer.
    LambdaInvoke {
        /// The invoke URL, e.g.
        /// `http://127.0.0.1:9000/2015-03-31/functions/function/invocations`.
        url: String,
        /// HTTP client (timeout: API Gateway's 29 s integration limit).
        http: reqwest::Client,
    },
}

impl Upstream {
    /// An invoke endpoint; only plain HTTP on a loopback address is accepted.
    pub fn lambda_invoke(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("the upstream must be an http:// URL on loopback"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            anyhow::bail!("the upstream must be on a loopback address, not `{host}`");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(29))
            .build()?;
        Ok(Self::LambdaInvoke {
            url: url.to_owned(),
            http,
        })
    }
}

/// The gateway: authorizer, service routers, authorizer cache.
pub struct Gateway<K, L, C> {
    cfg: GatewayConfig,
    /// Starts authorizer instances (cold starts) for the [`control`] plane.
    factory: control::AuthorizerFactory<K, L, C>,
    /// The authorizer function: its instances, versions and alias.
    function: Mutex<control::FunctionState<K, L, C>>,
    clock: Arc<C>,
    token_service: axum::Router,
    upstream: Upstream,
    cache: moka::sync::Cache<String, Cached>,
    authorizer_calls: AtomicUsize,
    plans: usage::UsagePlans,
}

impl<K: JwksSource, L: TokenLookup, C: Clock + 'static> Gateway<K, L, C> {
    /// Assembles a gateway; `factory` starts its first authorizer instance
    /// now, and a fresh one whenever the [`control`] plane asks for one.
    pub fn new(
        cfg: GatewayConfig,
        factory: control::AuthorizerFactory<K, L, C>,
        clock: Arc<C>,
        token_service: axum::Router,
        upstream: Upstream,
    ) -> anyhow::Result<Self> {
        if cfg.dpop && cfg.cache_ttl_secs > 0 {
            anyhow::bail!(
                "dpop needs the authorizer cache off (TTL 0, as the construct sets it): a cached Allow would serve a request without its proof"
            );
        }
        let ttl = u64::try_from(cfg.cache_ttl_secs.max(1)).unwrap_or(1);
        let function = Mutex::new(control::FunctionState::new(
            &cfg.function,
            factory()?,
            clock.now(),
        ));
        Ok(Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(ttl))
                .build(),
            plans: usage::UsagePlans::new(&cfg.usage_plans),
            cfg,
            factory,
            function,
            clock,
            token_service,
            upstream,
            authorizer_calls: AtomicUsize::new(0),
        })
    }

    /// How many times the authorizer has been invoked.
    pub fn authorizer_calls(&self) -> usize {
        self.authorizer_calls.load(Ordering::SeqCst)
    }

    /// The authorizer instance that decides requests now: `$LATEST`'s, or
    /// that of the version the invoked alias points to.
    pub fn authorizer(&self) -> Arc<Authorizer<K, L, C>> {
        self.function_state().serving()
    }

    /// Empties the authorizer result cache (`FlushStageAuthorizersCache`).
    pub fn flush_authorizer_cache(&self) {
        self.cache.invalidate_all();
    }

    fn function_state(&self) -> MutexGuard<'_, control::FunctionState<K, L, C>> {
        // The state stays consistent even if a holder panicked: every
        // change is a single assignment.
        self.function.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn method_arn(&self, method: Method, path: &str) -> String {
        let c = &self.cfg;
        format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{}/{}",
            c.region,
            c.account,
            c.api_id,
            c.stage,
            method,
            path.strip_prefix('/').unwrap_or(path)
        )
    }

    async fn authorize(
        &self,
        identity: Option<&str>,
        credentials: &Credentials,
        method_arn: &str,
        request_id: &str,
        source_ip: &str,
    ) -> Result<(Arc<AuthorizerResponse>, bool), AuthError> {
        let now = self.clock.now();
        // The cache key is the identity sources' values, as API Gateway's.
        let key = identity.map(|identity| {
            if self.cfg.ip_allow_lists {
                format!("{identity}\n{source_ip}")
            } else {
                identity.to_owned()
            }
        });
        if self.cfg.cache_ttl_secs > 0
            && let Some(key) = &key
            && let Some(hit) = self.cache.get(key)
        {
            if now - hit.at < self.cfg.cache_ttl_secs {
                return Ok((hit.response, true));
            }
            self.cache.invalidate(key);
        }
        // As API Gateway sends them: each credential header's last value in
        // `headers`, every value in `multiValueHeaders`.
        let mut headers = serde_json::Map::new();
        let mut multi = serde_json::Map::new();
        for (name, values) in [
            ("Authorization", &credentials.authorization),
            ("DPoP", &credentials.dpop),
        ] {
            if let Some(last) = values.last() {
                headers.insert(name.into(), json!(last));
                multi.insert(name.into(), json!(values));
            }
        }
        // The event as the deployed Lambda reads it (the lean event), and the
        // answer as API Gateway reads it: the JSON the Lambda serialises.
        let event: authorizer::event::AuthorizerEvent = serde_json::from_value(json!({
            "type": "REQUEST",
            "methodArn": method_arn,
            "headers": headers,
            "multiValueHeaders": multi,
            "requestContext": {
                "requestId": request_id,
                "stage": self.cfg.stage,
                "accountId": self.cfg.account,
                "apiId": self.cfg.api_id,
                "identity": {"sourceIp": source_ip}
            }
        }))
        .map_err(|_| AuthError::Internal)?;
        self.authorizer_calls.fetch_add(1, Ordering::SeqCst);
        let authorizer = self.authorizer();
        let decision = authorizer.decision(&event).await?;
        let response: AuthorizerResponse = serde_json::to_vec(&decision)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(AuthError::Internal)?;
        let response = Arc::new(response);
        if self.cfg.cache_ttl_secs > 0
            && let Some(key) = key
        {
            self.cache.insert(
                key,
                Cached {
                    response: Arc::clone(&response),
                    at: now,
                },
            );
        }
        Ok((response, false))
    }
}

/// The credential headers of a request, every value of each (text only).
#[derive(Debug, Default)]
struct Credentials {
    authorization: Vec<String>,
    dpop: Vec<String>,
}

impl Credentials {
    fn of(headers: &HeaderMap) -> Self {
        let all = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect()
        };
        Self {
            authorization: all("authorization"),
            dpop: all("dpop"),
        }
    }
}

/// Marks an answer API Gateway gives itself (no Lambda involved), with its
/// gateway response type, so that the problem+json gateway responses can
/// replace it as the construct's do.
#[derive(Debug, Clone, Copy)]
struct GatewayGenerated(&'static str);

/// API Gateway's own answer, in its default form (`{"message": …}`).
fn gateway_message(
    status: StatusCode,
    message: Option<&str>,
    response_type: &'static str,
) -> Response {
    let mut response = (status, json!({ "message": message }).to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
        .extensions_mut()
        .insert(GatewayGenerated(response_type));
    response
}

/// `response` as the construct's problem+json gateway responses render it
/// (`shared::gateway`), when it is one of API Gateway's own answers.
fn with_problem_body(response: Response, request_id: &str, dpop: bool) -> Response {
    let Some(GatewayGenerated(response_type)) = response.extensions().get().copied() else {
        return response;
    };
    let problem = shared::gateway::problem_for(response_type, response.status().as_u16());
    let status = problem
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(response.status());
    let body = shared::gateway::problem_body(problem, response_type, request_id);
    let mut replaced = (status, body.to_string()).into_response();
    replaced.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    if let Some(challenge) = problem
        .challenge(dpop)
        .and_then(|c| header::HeaderValue::from_str(c).ok())
    {
        replaced
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    replaced
}

fn path_parameters(route: &Route, path: &str) -> HashMap<String, String> {
    let have: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = HashMap::new();
    for (i, segment) in route.segments.iter().enumerate() {
        match segment {
            Segment::Literal(_) => {}
            Segment::Param(name) => {
                if let Some(v) = have.get(i) {
                    out.insert(name.clone(), (*v).to_owned());
                }
            }
            // API Gateway hands a greedy parameter the rest of the path.
            Segment::Greedy(name) => {
                if let Some(rest) = have.get(i..) {
                    out.insert(name.clone(), rest.join("/"));
                }
            }
        }
    }
    out
}

/// Serves one request with REST API semantics.
pub async fn serve_request<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: Request,
) -> Response
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method_name = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let (response, authorizer_cache) = route_request(&gw, peer, request, &request_id).await;
    tracing::info!(
        target: "local_gateway::access",
        request_id,
        method = method_name,
        path,
        status = response.status().as_u16(),
        authorizer_cache,
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "access"
    );
    let mut response = if gw.cfg.problem_responses {
        with_problem_body(response, &request_id, gw.cfg.dpop)
    } else {
        response
    };
    if let Ok(v) = header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn route_request<K, L, C>(
    gw: &Gateway<K, L, C>,
    peer: std::net::SocketAddr,
    request: Request,
    request_id: &str,
) -> (Response, &'static str)
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    let path = request.uri().path().to_owned();
    let manifest = Arc::clone(gw.authorizer().jwt().manifest());
    let Some(route) =
        Method::parse(request.method().as_str()).and_then(|m| manifest.routes().find(m, &path))
    else {
        return (
            gateway_message(
                StatusCode::FORBIDDEN,
                Some("Missing Authentication Token"),
                "MISSING_AUTHENTICATION_TOKEN",
            ),
            "-",
        );
    };
    let mut context = None;
    let mut cache = "-";
    if route.access != Access::Public {
        let identity = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned);
        if identity.is_none() && gw.cfg.cache_ttl_secs > 0 {
            // With its cache on, API Gateway answers this itself: the
            // authorizer is never invoked.
            return (
                gateway_message(
                    StatusCode::UNAUTHORIZED,
                    Some("Unauthorized"),
                    "UNAUTHORIZED",
                ),
                "-",
            );
        }
        let method_arn = gw.method_arn(route.method, &path);
        let credentials = Credentials::of(request.headers());
        let (decision, hit) = match gw
            .authorize(
                identity.as_deref(),
                &credentials,
                &method_arn,
                request_id,
                &peer.ip().to_string(),
            )
            .await
        {
            Ok(d) => d,
            Err(AuthError::Unauthorized) => {
                return (
                    gateway_message(
                        StatusCode::UNAUTHORIZED,
                        Some("Unauthorized"),
                        "UNAUTHORIZED",
                    ),
                    "miss",
                );
            }
            Err(AuthError::Internal) => {
                return (
                    gateway_message(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        None,
                        "AUTHORIZER_FAILURE",
                    ),
                    "miss",
                );
            }
        };
        cache = if hit { "hit" } else { "miss" };
        match evaluate(&decision.policy_document, &method_arn) {
            PolicyDecision::Allow => {}
            PolicyDecision::ExplicitDeny => {
                let msg = "User is not authorized to access this resource with an explicit deny";
                return (
                    gateway_message(StatusCode::FORBIDDEN, Some(msg), "ACCESS_DENIED"),
                    cache,
                );
            }
            PolicyDecision::ImplicitDeny => {
                let msg = "User is not authorized to access this resource";
                return (
                    gateway_message(StatusCode::FORBIDDEN, Some(msg), "ACCESS_DENIED"),
                    cache,
                );
            }
        }
        // Usage plans apply to every request the authorizer let through,
        // cached decisions included, by the key it named.
        if !gw.plans.is_empty() {
            let verdict = match decision.usage_identifier_key.as_deref() {
                Some(key) => gw.plans.admit(key, gw.clock.now()),
                None => usage::Verdict::UnknownKey,
            };
            let refused = match verdict {
                usage::Verdict::Pass => None,
                usage::Verdict::Throttled => Some((
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests",
                    "THROTTLED",
                )),
                usage::Verdict::QuotaExceeded => Some((
                    StatusCode::TOO_MANY_REQUESTS,
                    "Limit Exceeded",
                    "QUOTA_EXCEEDED",
                )),
                usage::Verdict::UnknownKey => {
                    Some((StatusCode::FORBIDDEN, "Forbidden", "INVALID_API_KEY"))
                }
            };
            if let Some((status, message, response_type)) = refused {
                return (gateway_message(status, Some(message), response_type), cache);
            }
        }
        context = Some(decision);
    }
    let router = if route.built_in {
        gw.token_service.clone()
    } else {
        match &gw.upstream {
            Upstream::InProcess(router) => router.clone(),
            Upstream::LambdaInvoke { url, http } => {
                let event =
                    match proxy_event(gw, route, peer, request, request_id, context.as_deref())
                        .await
                    {
                        Ok(e) => e,
                        Err(status) => return (bad_request(status), cache),
                    };
                return (invoke(http, url, &event).await, cache);
            }
        }
    };
    let event = match proxy_event(gw, route, peer, request, request_id, context.as_deref()).await {
        Ok(e) => e,
        Err(status) => return (bad_request(status), cache),
    };
    let Ok(lambda_request) = lambda_http::request::from_str(&event.to_string()) else {
        return (
            gateway_message(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("Internal server error"),
                "INTEGRATION_FAILURE",
            ),
            cache,
        );
    };
    let Ok(lambda_response) = shared::http::handle(router, lambda_request).await;
    let (parts, body) = lambda_response.into_parts();
    let body = match body {
        lambda_http::Body::Text(t) => Body::from(t),
        lambda_http::Body::Binary(b) => Body::from(b),
        _ => Body::empty(),
    };
    (Response::from_parts(parts, body), cache)
}

fn bad_request(status: StatusCode) -> Response {
    let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "Request Too Long"
    } else {
        "Bad Request"
    };
    let response_type = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "REQUEST_TOO_LARGE"
    } else {
        "BAD_REQUEST_BODY"
    };
    gateway_message(status, Some(msg), response_type)
}

/// Invokes a Lambda invoke endpoint with `event` and turns its proxy response
/// into the HTTP answer, as API Gateway does: a malformed response or a
/// function error is a 502, a timeout a 504.
async fn invoke(http: &reqwest::Client, url: &str, event: &Value) -> Response {
    let reply = match http.post(url).json(event).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return gateway_message(
                StatusCode::GATEWAY_TIMEOUT,
                Some("Endpoint request timed out"),
                "INTEGRATION_TIMEOUT",
            );
        }
        Err(_) => {
            return gateway_message(
                StatusCode::BAD_GATEWAY,
                Some("Internal server error"),
                "INTEGRATION_FAILURE",
            );
        }
    };
    let parsed = match reply.json::<Value>().await {
        Ok(v) => proxy_response(&v),
        Err(_) => None,
    };
    parsed.unwrap_or_else(|| {
        gateway_message(
            StatusCode::BAD_GATEWAY,
            Some("Internal server error"),
            "INTEGRATION_FAILURE",
        )
    })
}

/// A Lambda proxy-integration response (`statusCode`, `headers`,
/// `multiValueHeaders`, `body`, `isBase64Encoded`) as an HTTP response;
/// `None` when it is not one.
fn proxy_response(v: &Value) -> Option<Response> {
    let status = v
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())?;
    let body = match (
        v.get("body"),
        v.get("isBase64Encoded").and_then(Value::as_bool),
    ) {
        (None | Some(Value::Null), _) => Vec::new(),
        (Some(Value::String(b)), Some(true)) => {
            base64::engine::general_purpose::STANDARD.decode(b).ok()?
        }
        (Some(Value::String(b)), _) => b.clone().into_bytes(),
        _ => return None,
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(Value::Object(map)) = v.get("headers") {
        for (k, value) in map {
            let (Ok(name), Some(value)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                value
                    .as_str()
                    .and_then(|s| header::HeaderValue::from_str(s).ok()),
            ) else {
                return None;
            };
            headers.insert(name, value);
        }
    }
    if let Some(Value::Object(map)) = v.get("multiValueHeaders") {
        for (k, values) in map {
            let name = header::HeaderName::from_bytes(k.as_bytes()).ok()?;
            headers.remove(&name);
            for value in values.as_array()? {
                let value = value
                    .as_str()
                    .and_then(|s| header::HeaderValue::from_str(s).ok())?;
                headers.append(name.clone(), value);
            }
        }
    }
    Some(response)
}

/// The REST proxy-integration event API Gateway would send.
async fn proxy_event<K, L, C>(
    gw: &Gateway<K, L, C>,
    route: &Route,
    peer: std::net::SocketAddr,
    request: Request,
    request_id: &str,
    decision: Option<&AuthorizerResponse>,
) -> Result<Value, StatusCode> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let path = parts.uri.path().to_owned();
    let headers = single_headers(&parts.headers);
    let multi: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    let query: Option<serde_json::Map<String, Value>> = parts.uri.query().map(|q| {
        q.split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), json!(v))
            })
            .collect()
    });
    let authorizer = decision.map(|d| {
        let mut map = serde_json::Map::new();
        if let Ok(Value::Object(ctx)) = serde_json::to_value(&d.context) {
            for (k, v) in ctx {
                // API Gateway forwards every context value as a string.
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(k, json!(text));
            }
        }
        map.insert("principalId".into(), json!(d.principal_id));
        Value::Object(map)
    });
    let (body, is_base64) = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if text.is_empty() => (Value::Null, false),
        Ok(text) => (json!(text), false),
        Err(e) => (
            json!(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            true,
        ),
    };
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    Ok(json!({
        "resource": route.path,
        "path": path,
        "httpMethod": route.method.as_str(),
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": query,
        "pathParameters": path_parameters(route, &path),
        "stageVariables": null,
        "requestContext": {
            "resourcePath": route.path,
            "httpMethod": route.method.as_str(),
            "path": format!("/{}{}", gw.cfg.stage, path),
            "stage": gw.cfg.stage,
            "requestId": request_id,
            "accountId": gw.cfg.account,
            "apiId": gw.cfg.api_id,
            "identity": {"sourceIp": peer.ip().to_string(), "userAgent": user_agent},
            "authorizer": authorizer
        },
        "body": body,
        "isBase64Encoded": is_base64
    }))
}

fn single_headers(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// The whole local server: the explorer (see [`docs`]) over the token routes
/// and the manifest's, the loopback [`control`] plane under `/_aws/`, and
/// everything else through the gateway.
pub fn app<K, L, C>(gw: Arc<Gateway<K, L, C>>) -> axum::Router
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    app_with_openapi(gw, None)
}

/// [`app`], documenting the API with the adopter's own OpenAPI document.
pub fn app_with_openapi<K, L, C>(
    gw: Arc<Gateway<K, L, C>>,
    adopter: Option<utoipa::openapi::OpenApi>,
) -> axum::Router
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    let manifest = Arc::clone(gw.authorizer().jwt().manifest());
    let explorer = match docs::explorer_base(&manifest) {
        Some(base) => docs::router(base, docs::document(&manifest, adopter)),
        None => axum::Router::new(),
    };
    explorer
        .merge(control::router::<K, L, C>())
        .fallback(serve_request::<K, L, C>)
        .with_state(gw)
}

/// Everything a local gateway needs to know.
#[derive(Debug, Clone)]
pub struct LocalSetup {
    /// The token table.
    pub store: shared::store::TokenStore,
    /// The API's manifest (scopes and routes).
    pub manifest: Arc<shared::Manifest>,
    /// Where the API's own routes go.
    pub upstream: Upstream,
    /// The Cognito pool whose tokens are accepted.
    pub pool: cognito::Pool,
    /// The emulated API.
    pub gateway: GatewayConfig,
    /// The authorizer's PAT caches.
    pub pat: authorizer::config::PatConfig,
    /// `TOKEN_MAX_LIFETIME_DAYS` of the token service.
    pub max_lifetime_days: i64,
}

/// Builds the gateway over real components: the authorizer (JWKS over HTTP)
/// and the token service on `setup.store`, and `setup.upstream`.
pub fn build<C: Clock + 'static>(
    setup: &LocalSetup,
    clock: Arc<C>,
) -> anyhow::Result<Arc<Gateway<authorizer::jwks::HttpJwks, shared::store::TokenStore, C>>> {
    use anyhow::Context;
    use authorizer::config::JwtConfig;
    use authorizer::jwks::{HttpJwks, KeyCache};
    use shared::hash::{HashParams, SecretHasher};

    let hasher = || SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN);
    // Each call is a cold start: new JWKS, PAT and policy caches.
    let factory: control::AuthorizerFactory<_, _, C> = {
        let setup = setup.clone();
        let clock = Arc::clone(&clock);
        Arc::new(move || {
            let jwt = JwtConfig::for_issuer(
                setup.pool.issuer(),
                setup.pool.jwks_url(),
                setup.pool.client_id.clone(),
            );
            let keys = KeyCache::new(HttpJwks::new(jwt.jwks_url.clone()).context("JWKS client")?);
            let pat = authorizer::pat::PatVerifier::new(
                setup.store.clone(),
                hasher().context("argon2 parameters")?,
                setup.pat.clone(),
                setup.store.config().touch_interval_secs,
                Arc::clone(&setup.manifest),
            )
            .context("PAT cache key")?
            .with_ip_allow_lists(setup.gateway.ip_allow_lists);
            let tiers = setup.gateway.rate_tiers();
            let dpop = setup.gateway.dpop_settings();
            Ok(Authorizer::new(
                authorizer::jwt::JwtVerifier::new(jwt, keys, Arc::clone(&setup.manifest))
                    .context("JWT cache key")?,
                pat,
                Arc::clone(&clock),
                8192,
            )
            .with_rate_tiers(tiers)
            .with_dpop(dpop))
        })
    };
    let tokens = token_service::AppState::new(
        setup.store.clone(),
        hasher().context("argon2 parameters")?,
        clock.clone(),
        setup.max_lifetime_days,
        Arc::clone(&setup.manifest),
    )
    .and_then(|s| s.with_ip_allow_lists(setup.gateway.ip_allow_lists))
    .and_then(|s| s.with_dpop(setup.gateway.dpop))
    .and_then(|s| {
        s.with_rate_tiers(
            setup
                .gateway
                .usage_plans
                .iter()
                .map(|p| p.name.clone())
                .collect(),
        )
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tokens = match &setup.gateway.secret_scanning_keys_url {
        Some(url) => tokens
            .with_partner_keys(
                token_service::scanning::PartnerKeys::new(url.clone())
                    .context("secret-scanning key client")?,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        None => tokens,
    };
    let mut cfg = setup.gateway.clone();
    if cfg.function.environment.is_empty() {
        cfg.function.environment = function_environment(setup);
    }
    Ok(Arc::new(Gateway::new(
        cfg,
        factory,
        clock,
        token_service::router(tokens),
        setup.upstream.clone(),
    )?))
}

/// The authorizer function's environment as the stack would set it (what
/// the control plane reports, and what an update must keep).
fn function_environment(setup: &LocalSetup) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::from([
        ("TABLE_NAME".into(), setup.store.config().table_name.clone()),
        ("COGNITO_USER_POOL_ID".into(), setup.pool.pool_id.clone()),
        ("COGNITO_CLIENT_IDS".into(), setup.pool.client_id.clone()),
        (
            "PAT_CACHE_TTL_SECONDS".into(),
            setup.pat.positive_ttl_secs.to_string(),
        ),
    ]);
    if setup.gateway.ip_allow_lists {
        environment.insert("AGPAT_IP_ALLOW_LISTS".into(), "on".into());
    }
    if setup.gateway.dpop {
        environment.insert("AGPAT_DPOP".into(), "on".into());
        if !setup.gateway.dpop_origins.is_empty() {
            environment.insert("DPOP_ORIGINS".into(), setup.gateway.dpop_origins.join(","));
        }
    }
    if let Some(tiers) = setup.gateway.rate_tiers() {
        let keys: Vec<String> = setup
            .gateway
            .usage_plans
            .iter()
            .map(|p| format!("{}={}", p.name, p.keys.join("|")))
            .collect();
        environment.insert("RATE_TIER_KEYS".into(), keys.join(","));
        environment.insert("RATE_TIER_DEFAULT".into(), tiers.default_tier().to_owned());
    }
    environment
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
