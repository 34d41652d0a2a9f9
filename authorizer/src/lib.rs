//! The API Gateway REQUEST authorizer: one function that turns a request's
//! `Authorization` header into an IAM policy plus a typed context.
//!
//! Reviewers: the decision is [`Authorizer::decide`]. Everything that can say
//! "allow" is reachable from there: [`jwt::JwtVerifier::verify`],
//! [`pat::PatVerifier::verify`] and [`policy::build`].

pub mod config;
pub mod jwks;
pub mod jwt;
pub mod metrics;
pub mod pat;
pub mod policy;
pub mod tiers;

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use lambda_runtime::Diagnostic;
use shared::{AuthorizerContext, Clock, Pat};
use thiserror::Error;

use crate::jwks::JwksSource;
use crate::jwt::JwtVerifier;
use crate::metrics::{CacheUse, DecisionMetrics, Method, Outcome};
use crate::pat::{PatVerifier, TokenLookup};

/// DynamoDB timeouts of the authorizer: with [`dynamodb_retries`], a decision
/// fails closed in at most about two seconds when DynamoDB is slow or down.
pub fn dynamodb_timeouts() -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_millis(500))
        .operation_attempt_timeout(std::time::Duration::from_millis(800))
        .operation_timeout(std::time::Duration::from_millis(2000))
        .build()
}

/// DynamoDB retries of the authorizer: one retry at most.
pub fn dynamodb_retries() -> aws_sdk_dynamodb::config::retry::RetryConfig {
    aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2)
}

/// The authorizer's response type.
pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<AuthorizerContext>;

/// What the authorizer returns to API Gateway when it does not allow.
///
/// `Unauthorized`'s message is exactly `Unauthorized`, which API Gateway turns
/// into a 401. It is the same for every credential problem, so the response is
/// no oracle. `Internal` (any other message) becomes a 500 and is never cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Missing, malformed, unknown, expired, revoked or wrong credential.
    #[error("Unauthorized")]
    Unauthorized,
    /// A dependency failed (DynamoDB, JWKS with no cached key). Fails closed.
    #[error("Internal server error")]
    Internal,
}

impl From<AuthError> for Diagnostic {
    fn from(e: AuthError) -> Self {
        let error_type = match e {
            AuthError::Unauthorized => "Unauthorized",
            AuthError::Internal => "InternalError",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// Why a credential was refused. Logged, never returned: callers only ever
/// see [`AuthError`]. Variants carry no secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// No `Authorization` header, wrong scheme or empty credential.
    NoCredential,
    /// Credential over the size cap.
    TooLarge,
    /// Not a well-formed token.
    Malformed,
    /// JWT algorithm other than RS256.
    Algorithm,
    /// JWT header names a key source (`jku`, `jwk`, `x5u`, `x5c`) or `crit`.
    ForbiddenHeader,
    /// JWT `kid` missing or malformed.
    KeyId,
    /// JWT `kid` not in the JWKS.
    UnknownKey,
    /// JWT signature invalid.
    Signature,
    /// A claim is missing or has the wrong type or value.
    Claims,
    /// Past `exp`.
    Expired,
    /// Before `nbf` or `iat`.
    NotYetValid,
    /// Wrong `iss`.
    Issuer,
    /// `token_use` not accepted.
    TokenUse,
    /// Client id / audience not allowed.
    Client,
    /// The principal would hold no scope.
    NoScopes,
    /// PAT id not found.
    UnknownToken,
    /// PAT revoked.
    Revoked,
    /// PAT secret does not match.
    WrongSecret,
    /// PAT id is known (in-process) to be unknown, revoked or expired.
    Refused,
    /// Too many wrong secrets for this PAT id from this source address in
    /// the window: refused without a read or a hash.
    SourceThrottled,
    /// The stored hash is malformed or below the minimum parameters.
    BadStoredHash,
    /// The token has an IP allow-list and the request's address is outside
    /// it, or this deployment cannot honour allow-lists
    /// (`AGPAT_IP_ALLOW_LISTS` off: its gateway cache is not keyed by address).
    AddressNotAllowed,
    /// `methodArn` missing or not an execute-api ARN.
    MethodArn,
    /// DynamoDB failed (fail closed).
    StoreUnavailable(String),
    /// JWKS unreachable and no cached key (fail closed).
    KeysUnavailable(String),
    /// Another internal failure (fail closed).
    Internal(&'static str),
}

impl Reject {
    /// Refusals that say more about us than about the caller: a stored hash
    /// that is malformed or beyond the parameters, or an event without a
    /// usable `methodArn`. The caller gets the usual 401; the metrics count
    /// them with the fail-closed errors, which alarm.
    fn is_operational_fault(&self) -> bool {
        matches!(self, Reject::BadStoredHash | Reject::MethodArn)
    }

    fn to_error(&self) -> AuthError {
        match self {
            Reject::StoreUnavailable(_) | Reject::KeysUnavailable(_) | Reject::Internal(_) => {
                AuthError::Internal
            }
            _ => AuthError::Unauthorized,
        }
    }
}

/// The authorizer: configuration, verifiers and clock, built once per cold start.
pub struct Authorizer<K, L, C> {
    jwt: JwtVerifier<K>,
    pat: PatVerifier<L>,
    policies: policy::PolicyCache,
    clock: Arc<C>,
    max_credential_bytes: usize,
    metrics: Option<DecisionMetrics>,
    tiers: Option<tiers::RateTiers>,
}

/// What a decision learnt about itself, for its metrics record.
#[derive(Debug, Clone, Copy)]
struct Trace {
    method: Method,
    cache: CacheUse,
}

impl<K: JwksSource, L: TokenLookup, C: Clock> Authorizer<K, L, C> {
    /// Assembles an authorizer. Policies come from the JWT verifier's manifest.
    pub fn new(
        jwt: JwtVerifier<K>,
        pat: PatVerifier<L>,
        clock: Arc<C>,
        max_credential_bytes: usize,
    ) -> Self {
        Self {
            policies: policy::PolicyCache::new(Arc::clone(jwt.manifest())),
            jwt,
            pat,
            clock,
            max_credential_bytes,
            metrics: None,
            tiers: None,
        }
    }

    /// Names the usage-plan key of each principal's rate tier in every
    /// decision (`usageIdentifierKey`); without tiers, none.
    #[must_use]
    pub fn with_rate_tiers(mut self, tiers: Option<tiers::RateTiers>) -> Self {
        self.tiers = tiers;
        self
    }

    /// Emits one EMF record per decision to `metrics` (see [`metrics`]).
    /// Without it, an authorizer emits none.
    #[must_use]
    pub fn with_metrics(mut self, metrics: DecisionMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The metrics this authorizer emits to, if any (tests, benchmarks).
    pub fn metrics(&self) -> Option<&DecisionMetrics> {
        self.metrics.as_ref()
    }

    /// The JWT verifier (metrics, tests).
    pub fn jwt(&self) -> &JwtVerifier<K> {
        &self.jwt
    }

    /// The PAT verifier (metrics, tests).
    pub fn pat(&self) -> &PatVerifier<L> {
        &self.pat
    }

    /// Decides one request.
    pub async fn decide(
        &self,
        event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<AuthorizerResponse, AuthError> {
        let started = Instant::now();
        let mut trace = Trace {
            method: Method::None,
            cache: CacheUse::NotConsulted,
        };
        let request_id = event.request_context.request_id.as_deref().unwrap_or("-");
        let outcome = self.authenticate(event, &mut trace).await;
        let mut refusal = Outcome::Unauthorized;
        let result = match outcome {
            Ok(response) => {
                let ctx = &response.context;
                let decision = if policy::allows_anything(&response.policy_document) {
                    Outcome::Allow
                } else {
                    Outcome::Deny
                };
                tracing::info!(
                    request_id,
                    decision = decision.as_str(),
                    auth_method = ctx.auth_method.as_str(),
                    sub = %ctx.sub,
                    token_id = %ctx.token_id,
                    scopes = %ctx.scopes,
                    "authorizer decision"
                );
                Ok((response, decision))
            }
            Err(reject) => {
                // Refusals are investigable: the source address, and for a
                // well-formed PAT its public id (never the secret), so
                // credential stuffing and lock-out attempts can be traced.
                let source_ip = source_ip(event);
                let token_id = refused_token_id(event, self.max_credential_bytes);
                let error = reject.to_error();
                if error == AuthError::Internal || reject.is_operational_fault() {
                    refusal = Outcome::Error;
                }
                if error == AuthError::Internal {
                    tracing::error!(request_id, decision = "error", reason = ?reject, source_ip, token_id, "authorizer failed closed");
                } else {
                    tracing::info!(request_id, decision = "unauthorized", reason = ?reject, source_ip, token_id, "authorizer decision");
                }
                Err(error)
            }
        };
        if let Some(metrics) = &self.metrics {
            let outcome = match &result {
                Ok((_, decision)) => *decision,
                Err(_) => refusal,
            };
            metrics.record(
                trace.method,
                outcome,
                started.elapsed(),
                trace.cache,
                self.pat.argon2_evaluations(),
                u64::try_from(self.jwt.keys().fetch_count()).unwrap_or(u64::MAX),
            );
        }
        result.map(|(response, _)| response)
    }

    async fn authenticate(
        &self,
        event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
        trace: &mut Trace,
    ) -> Result<AuthorizerResponse, Reject> {
        let method_arn = event.method_arn.as_deref().ok_or(Reject::MethodArn)?;
        let arn = policy::MethodArn::parse(method_arn).ok_or(Reject::MethodArn)?;
        let credential = bearer_credential(event, self.max_credential_bytes)?;
        let now = self.clock.now();
        let principal = if Pat::looks_like_pat(credential) {
            trace.method = Method::Pat;
            let mut principal = self
                .pat
                .verify_observed(
                    credential,
                    now,
                    source_ip(event),
                    user_agent(event),
                    &mut trace.cache,
                )
                .await?;
            // A PAT never holds more than its owner's session could now; a
            // service token never more than the manifest's [services] allow.
            let ceiling = self.jwt.manifest().token_ceiling(principal.kind);
            principal.scopes = principal.scopes.intersection(ceiling);
            if principal.scopes.is_empty() {
                return Err(Reject::NoScopes);
            }
            principal
        } else {
            // For the metrics only: junk that is not even JWT-shaped is no
            // JWT. The JWT verifier refuses it either way.
            if credential.bytes().filter(|&b| b == b'.').count() == 2 {
                trace.method = Method::Jwt;
                self.jwt
                    .verify_observed(credential, now, &mut trace.cache)
                    .await?
            } else {
                self.jwt.verify(credential, now).await?
            }
        };
        let mut response = AuthorizerResponse::default();
        response.principal_id = Some(principal.sub.as_str().to_owned());
        response.policy_document = (*self.policies.get(&arn, principal.scopes)).clone();
        response.context = AuthorizerContext::new(&principal, self.jwt.manifest().scopes());
        // The usage-plan key of the principal's tier: a token's own tier,
        // else the default; picked within the tier by its id, else the sub.
        if let Some(tiers) = &self.tiers {
            let who = principal
                .token_id
                .as_ref()
                .map_or(principal.sub.as_str(), shared::TokenId::as_str);
            response.usage_identifier_key = Some(
                tiers
                    .key_for(principal.rate_tier.as_deref(), who)
                    .to_owned(),
            );
        }
        Ok(response)
    }
}

/// The client address API Gateway reports (empty if absent).
fn source_ip(event: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> &str {
    event
        .request_context
        .identity
        .as_ref()
        .and_then(|i| i.source_ip.as_deref())
        .unwrap_or("")
}

/// The client's user agent as API Gateway reports it (for use sites).
fn user_agent(event: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Option<&str> {
    event
        .headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
}

/// For the refusal log line: the public id of a well-formed PAT (checksum
/// valid), else empty. Only ever computed on the refusal path.
fn refused_token_id(
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    max_bytes: usize,
) -> String {
    bearer_credential(event, max_bytes)
        .ok()
        .filter(|c| Pat::looks_like_pat(c))
        .and_then(|c| Pat::parse(c).ok())
        .map(|p| p.id().as_str().to_owned())
        .unwrap_or_default()
}

/// Extracts the credential from `Authorization: Bearer <credential>` (RFC 6750:
/// the scheme, case-insensitive, then exactly one space; no other whitespace
/// is tolerated). The size cap applies before any decoding.
fn bearer_credential(
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    max_bytes: usize,
) -> Result<&str, Reject> {
    let value = event
        .headers
        .get("authorization")
        .ok_or(Reject::NoCredential)?;
    if value.len() > max_bytes + "Bearer ".len() {
        return Err(Reject::TooLarge);
    }
    let value = value.to_str().map_err(|_| Reject::Malformed)?;
    let (scheme, credential) = value.split_once(' ').ok_or(Reject::NoCredential)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Reject::NoCredential);
    }
    if credential.is_empty() || credential.contains(char::is_whitespace) {
        return Err(Reject::NoCredential);
    }
    if credential.len() > max_bytes {
        return Err(Reject::TooLarge);
    }
    Ok(credential)
}
