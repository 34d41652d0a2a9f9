//! The API Gateway REQUEST authorizer: one function that turns a request's
//! `Authorization` header into an IAM policy plus a typed context.
//!
//! Reviewers: the decision is [`Authorizer::decide`]. Everything that can say
//! "allow" is reachable from there: [`jwt::JwtVerifier::verify`],
//! [`pat::PatVerifier::verify`] and [`policy::build`]; for a token bound to
//! a key, [`dpop::Dpop`] must also accept the request's proof.

pub mod config;
pub mod decision;
pub mod dpop;
pub mod event;
pub mod jwks;
pub mod jwt;
pub mod memo;
pub mod metrics;
pub mod pat;
pub mod policy;
pub mod tiers;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use lambda_runtime::Diagnostic;
use shared::{AuthorizerContext, Clock, Pat};
use thiserror::Error;

use crate::decision::{Decision, Grant};
use crate::event::{AuthorizerRequest, Header};
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
    /// The request's DPoP proof failed a check (RFC 9449 §4.3).
    Dpop(shared::dpop::ProofError),
    /// A bound token without the `DPoP` scheme (as a bearer token).
    DpopRequired,
    /// The `DPoP` scheme with a credential that is not a bound token.
    DpopUnbound,
    /// The proof was signed by another key than the token's.
    DpopKeyMismatch,
    /// The proof's `jti` was already used (on any instance).
    DpopReplay,
    /// A bound token or the `DPoP` scheme where this deployment cannot
    /// honour proofs (`AGPAT_DPOP` off: its gateway cache would serve a
    /// cached Allow without one).
    DpopOff,
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
    dpop: Option<dpop::Dpop>,
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
            dpop: None,
        }
    }

    /// Accepts tokens bound to a key (DPoP, RFC 9449) as [`dpop`] says.
    /// Only where API Gateway caches no authorizer answer (TTL 0); without
    /// it (the default), every bound token and every `DPoP` credential is
    /// refused.
    #[must_use]
    pub fn with_dpop(mut self, settings: Option<dpop::DpopSettings>) -> Self {
        self.dpop = settings.map(dpop::Dpop::new);
        self
    }

    /// Names the usage-plan key of each principal's rate tier in every
    /// decision (`usageIdentifierKey`); without tiers, none. Set it before
    /// the first decision: answers already rendered keep the key they named
    /// until their credential is verified again.
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

    /// Decides one request, answering with `aws_lambda_events`' response
    /// type (tests, the local gateway). The same decision as
    /// [`Authorizer::decision`], which the Lambda serves.
    pub async fn decide(
        &self,
        event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<AuthorizerResponse, AuthError> {
        self.decision(event).await.map(|d| d.to_response())
    }

    /// Decides one request.
    pub async fn decision<R: AuthorizerRequest + ?Sized>(
        &self,
        request: &R,
    ) -> Result<Decision, AuthError> {
        // Timed only for the metrics record.
        let started = self.metrics.as_ref().map(|_| Instant::now());
        let mut trace = Trace {
            method: Method::None,
            cache: CacheUse::NotConsulted,
        };
        let request_id = request.request_id().unwrap_or("-");
        let outcome = self.authenticate(request, &mut trace).await;
        let mut refusal = Outcome::Unauthorized;
        let result = match outcome {
            Ok(decision) => {
                let ctx = decision.context();
                let verdict = if decision.policy().allows_anything() {
                    Outcome::Allow
                } else {
                    Outcome::Deny
                };
                tracing::info!(
                    request_id,
                    decision = verdict.as_str(),
                    auth_method = ctx.auth_method.as_str(),
                    sub = %ctx.sub,
                    token_id = %ctx.token_id,
                    scopes = %ctx.scopes,
                    "authorizer decision"
                );
                Ok((decision, verdict))
            }
            Err(reject) => {
                // Refusals are investigable: the source address, and for a
                // well-formed PAT its public id (never the secret), so
                // credential stuffing and lock-out attempts can be traced.
                let source_ip = request.source_ip();
                let token_id = refused_token_id(request, self.max_credential_bytes);
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
        if let (Some(metrics), Some(started)) = (&self.metrics, started) {
            let outcome = match &result {
                Ok((_, verdict)) => *verdict,
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
        result.map(|(decision, _)| decision)
    }

    async fn authenticate<R: AuthorizerRequest + ?Sized>(
        &self,
        request: &R,
        trace: &mut Trace,
    ) -> Result<Decision, Reject> {
        let method_arn = request.method_arn().ok_or(Reject::MethodArn)?;
        let arn = policy::MethodArn::parse(method_arn).ok_or(Reject::MethodArn)?;
        let (scheme, credential) = presented_credential(request, self.max_credential_bytes)?;
        let now = self.clock.now();
        let (vouched, scopes) = if Pat::looks_like_pat(credential) {
            trace.method = Method::Pat;
            // The proof's stateless checks come before the token's lookup:
            // they need no I/O, and a request that fails them costs no read.
            let proof = match (scheme, &self.dpop) {
                (dpop::Scheme::Bearer, _) => None,
                (dpop::Scheme::Dpop, None) => return Err(Reject::DpopOff),
                (dpop::Scheme::Dpop, Some(d)) => Some(d.check(request, &arn, credential, now)?),
            };
            let vouched = self
                .pat
                .verify_observed(
                    credential,
                    now,
                    request.source_ip(),
                    request.user_agent(),
                    &mut trace.cache,
                )
                .await?;
            // A PAT never holds more than its owner's session could now; a
            // service token never more than the manifest's [services] allow.
            let principal = vouched.principal();
            let ceiling = self.jwt.manifest().token_ceiling(principal.kind);
            let scopes = principal.scopes.intersection(ceiling);
            if scopes.is_empty() {
                return Err(Reject::NoScopes);
            }
            // A bound token only with its proof, a proof only with a bound
            // token: checked on every decision, the cached ones included.
            match (vouched.principal().dpop_jkt.as_deref(), proof, &self.dpop) {
                (None, None, _) => {}
                (None, Some(_), _) => return Err(Reject::DpopUnbound),
                (Some(_), None, _) => return Err(Reject::DpopRequired),
                (Some(_), Some(_), None) => return Err(Reject::DpopOff),
                (Some(jkt), Some(proof), Some(d)) => d.bind(jkt, &proof, self.pat.lookup()).await?,
            }
            (vouched, scopes)
        } else {
            // Session tokens are never bound.
            if scheme == dpop::Scheme::Dpop {
                return Err(Reject::DpopUnbound);
            }
            // For the metrics only: junk that is not even JWT-shaped is no
            // JWT. The JWT verifier refuses it either way.
            let mut not_noted = CacheUse::NotConsulted;
            let dots = credential
                .bytes()
                .fold(0usize, |n, b| n + usize::from(b == b'.'));
            let cache = if dots == 2 {
                trace.method = Method::Jwt;
                &mut trace.cache
            } else {
                &mut not_noted
            };
            let vouched = self.jwt.verify_observed(credential, now, cache).await?;
            let scopes = vouched.principal().scopes;
            (vouched, scopes)
        };
        // What this principal answers, rendered on its first decision and
        // shared by the later ones; the policy is the cached one for
        // exactly these scopes on this stage.
        let grant = vouched.grant(scopes, || {
            let mut principal = vouched.principal().clone();
            principal.scopes = scopes;
            self.grant_for(&principal)
        })?;
        let policy = grant.policy_for(&arn, || {
            self.policies
                .get(&arn, grant.scopes())
                .map_err(|_| Reject::Internal("policy cannot be rendered"))
        })?;
        Ok(Decision::new(grant, policy))
    }

    /// Renders what `principal` answers: its context, and the usage-plan key
    /// of its tier (a token's own tier, else the default; picked within the
    /// tier by its id, else the sub).
    fn grant_for(&self, principal: &shared::Principal) -> Result<Grant, Reject> {
        let context = AuthorizerContext::new(principal, self.jwt.manifest().scopes());
        let usage_identifier_key = self.tiers.as_ref().map(|tiers| {
            let who = principal
                .token_id
                .as_ref()
                .map_or(principal.sub.as_str(), shared::TokenId::as_str);
            tiers
                .key_for(principal.rate_tier.as_deref(), who)
                .to_owned()
        });
        Grant::new(principal.scopes, context, usage_identifier_key)
            .map_err(|_| Reject::Internal("context cannot be rendered"))
    }
}

/// For the refusal log line: the public id of a well-formed PAT (checksum
/// valid), else empty. Only ever computed on the refusal path.
fn refused_token_id<R: AuthorizerRequest + ?Sized>(request: &R, max_bytes: usize) -> String {
    presented_credential(request, max_bytes)
        .ok()
        .map(|(_, c)| c)
        .filter(|c| Pat::looks_like_pat(c))
        .and_then(|c| Pat::parse(c).ok())
        .map(|p| p.id().as_str().to_owned())
        .unwrap_or_default()
}

/// Extracts the credential from `Authorization: Bearer <credential>` (RFC 6750)
/// or `Authorization: DPoP <credential>` (RFC 9449 §7.1): the scheme,
/// case-insensitive, then exactly one space; no other whitespace is
/// tolerated. The size cap applies before any decoding. A header sent twice
/// (two spellings of its name, or two values) is no credential.
fn presented_credential<R: AuthorizerRequest + ?Sized>(
    request: &R,
    max_bytes: usize,
) -> Result<(dpop::Scheme, &str), Reject> {
    let value = match request.authorization() {
        Header::One(value) => value,
        Header::Absent | Header::Ambiguous => return Err(Reject::NoCredential),
    };
    if value.len() > max_bytes + "Bearer ".len() {
        return Err(Reject::TooLarge);
    }
    let value = event::visible_ascii(value).ok_or(Reject::Malformed)?;
    let (scheme, credential) = value.split_once(' ').ok_or(Reject::NoCredential)?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        dpop::Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        dpop::Scheme::Dpop
    } else {
        return Err(Reject::NoCredential);
    };
    // Visible ASCII by now: a space and a tab are its only whitespace.
    let spaced = credential
        .bytes()
        .fold(false, |found, b| found | (b == b' ') | (b == b'\t'));
    if credential.is_empty() || spaced {
        return Err(Reject::NoCredential);
    }
    if credential.len() > max_bytes {
        return Err(Reject::TooLarge);
    }
    Ok((scheme, credential))
}
