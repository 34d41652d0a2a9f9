//! Cognito JWT verification.
//!
//! Order matters: structure, header (algorithm allow-list, forbidden key
//! headers, `kid` shape) are checked before any key lookup, so junk never
//! triggers a JWKS fetch. Time claims are checked against the injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, decode_header};
use serde::Deserialize;
use shared::{AuthMethod, Manifest, Principal, PrincipalKind, ScopeSet, UserId};

use crate::Reject;
use crate::config::JwtConfig;
use crate::decision::Vouched;
use crate::jwks::{JwksSource, KeyCache, KeyError};
use crate::memo::Generations;
use crate::metrics::CacheUse;

/// Longest `kid` accepted.
const MAX_KID_LEN: usize = 128;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The Cognito claims we read. Typed: a claim of the wrong JSON type fails
/// deserialization and so rejects the token.
#[derive(Debug, Deserialize)]
struct CognitoClaims {
    sub: String,
    iss: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    /// When the user signed in; a refresh keeps it (a new `iat` does not).
    #[serde(default)]
    auth_time: Option<i64>,
    token_use: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default, rename = "cognito:username")]
    cognito_username: Option<String>,
    /// The user's Cognito groups; the manifest maps some to extra scopes.
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
}

#[derive(Clone)]
struct Verified {
    vouched: Arc<Vouched>,
    cached_at: i64,
}

/// Verifies Cognito JWTs.
pub struct JwtVerifier<S> {
    cfg: JwtConfig,
    manifest: Arc<Manifest>,
    keys: KeyCache<S>,
    /// Per-process random key: cache entries are keyed by an HMAC of the whole
    /// token, never by the token itself.
    cache_key: hmac::Key,
    verified: Generations<[u8; 32], Verified>,
    signature_checks: AtomicUsize,
}

impl<S: JwksSource> JwtVerifier<S> {
    /// A verifier using `keys` for signatures and `manifest` for what a
    /// session may hold.
    ///
    /// # Errors
    /// If the OS CSPRNG cannot provide the cache key.
    pub fn new(
        cfg: JwtConfig,
        keys: KeyCache<S>,
        manifest: Arc<Manifest>,
    ) -> Result<Self, shared::pat::RandomnessError> {
        // jsonwebtoken checks only the signature (see `verify_uncached`);
        // every claim rule is ours, below, against the injected clock.
        let key_bytes = shared::pat::os_random::<32>()?;
        Ok(Self {
            cfg,
            manifest,
            keys,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key_bytes),
            verified: Generations::new(10_000),
            signature_checks: AtomicUsize::new(0),
        })
    }

    /// The most a PAT may hold: the manifest's default session scopes (group
    /// scopes are session-only). A PAT never out-scopes its owner, so the
    /// authorizer intersects every PAT's scopes with this.
    pub fn session_ceiling(&self) -> ScopeSet {
        self.manifest.sessions().pat_ceiling()
    }

    /// The manifest this verifier serves.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// How many tokens went through full signature verification (tests, metrics).
    pub fn signature_checks(&self) -> usize {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// The key cache (for metrics and tests).
    pub fn keys(&self) -> &KeyCache<S> {
        &self.keys
    }

    /// Verifies `token` at time `now` (Unix seconds).
    ///
    /// A token verified before is served from the verified-token cache (keyed
    /// by an HMAC of the whole token) for `cache_ttl_secs`, and never after its
    /// `exp`.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Principal, Reject> {
        self.verify_observed(token, now, &mut CacheUse::NotConsulted)
            .await
            .map(|v| v.principal().clone())
    }

    /// As [`JwtVerifier::verify`], also noting in `cache` whether the
    /// verified-token cache answered: `Hit`, or `Miss` when it was consulted
    /// and did not. Left alone when caching is off.
    pub async fn verify_observed(
        &self,
        token: &str,
        now: i64,
        cache: &mut CacheUse,
    ) -> Result<Arc<Vouched>, Reject> {
        let caching = self.cfg.cache_ttl_secs > 0;
        let mut cache_key = [0u8; 32];
        if caching {
            cache_key = hmac::sign(&self.cache_key, token.as_bytes())
                .as_ref()
                .try_into()
                .map_err(|_| Reject::Internal("HMAC-SHA256 tag is not 32 bytes"))?;
            *cache = CacheUse::Miss;
            if let Some(hit) = self.verified.get(&cache_key) {
                if now - hit.cached_at < self.cfg.cache_ttl_secs
                    && now < hit.vouched.principal().expires_at
                {
                    *cache = CacheUse::Hit;
                    return Ok(hit.vouched);
                }
                self.verified.remove(&cache_key);
            }
        }
        let vouched = Vouched::new(self.verify_uncached(token, now).await?);
        if caching && now < vouched.principal().expires_at {
            self.verified.insert(
                cache_key,
                Verified {
                    vouched: Arc::clone(&vouched),
                    cached_at: now,
                },
            );
        }
        Ok(vouched)
    }

    async fn verify_uncached(&self, token: &str, now: i64) -> Result<Principal, Reject> {
        let kid = pre_parse(token)?;
        let key = self.keys.key(&kid).await.map_err(|e| match e {
            KeyError::UnknownKid => Reject::UnknownKey,
            KeyError::Unavailable(e) => Reject::KeysUnavailable(e.to_string()),
        })?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        // `pre_parse` decoded the header once and pinned RS256;
        // jsonwebtoken's `crypto::verify` checks the signature over exactly
        // `header.payload`, and only then are the claims decoded, once.
        // (`decode` would decode the header twice and the claims twice.)
        let (message, signature) = token.rsplit_once('.').ok_or(Reject::Malformed)?;
        let payload = message.split_once('.').ok_or(Reject::Malformed)?.1;
        let genuine =
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::RS256)
                .map_err(|_| Reject::Malformed)?;
        if !genuine {
            return Err(Reject::Signature);
        }
        let claims = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Reject::Malformed)?;
        let claims: CognitoClaims = serde_json::from_slice(&claims).map_err(|_| Reject::Claims)?;
        self.check_claims(claims, now)
    }

    fn check_claims(&self, c: CognitoClaims, now: i64) -> Result<Principal, Reject> {
        let leeway = self.cfg.leeway_secs;
        if now >= c.exp.saturating_add(leeway) {
            return Err(Reject::Expired);
        }
        if c.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
            return Err(Reject::NotYetValid);
        }
        if c.iat.is_some_and(|iat| now.saturating_add(leeway) < iat) {
            return Err(Reject::NotYetValid);
        }
        if c.iss != self.cfg.issuer {
            return Err(Reject::Issuer);
        }
        let client = match c.token_use.as_str() {
            "access" if self.cfg.token_use.access => c.client_id.as_deref(),
            "id" if self.cfg.token_use.id => match &c.aud {
                Some(Audience::One(a)) => Some(a.as_str()),
                // Cognito ID tokens carry exactly one audience.
                Some(Audience::Many(list)) if list.len() == 1 => list.first().map(String::as_str),
                _ => None,
            },
            _ => return Err(Reject::TokenUse),
        };
        if c.token_use == "access"
            && client.is_some_and(|id| self.cfg.service_client_ids.iter().any(|s| s == id))
        {
            return self.service_principal(c);
        }
        let client_ok = client.is_some_and(|id| self.cfg.client_ids.iter().any(|c| c == id));
        if !client_ok {
            return Err(Reject::Client);
        }
        // A person's access token always names them; one that does not, or
        // whose subject is the client itself, is a machine's token from a
        // client not configured as a service: never a person.
        if c.token_use == "access"
            && (c.username.as_deref().is_none_or(str::is_empty)
                || c.client_id.as_deref() == Some(c.sub.as_str()))
        {
            return Err(Reject::Claims);
        }
        // A person is never named like a service: tokens they minted would
        // be the service's, and their revoke-all the service's too.
        let sub = UserId::parse(&c.sub)
            .ok()
            .filter(|s| !s.is_service())
            .ok_or(Reject::Claims)?;
        let scopes = self.manifest.sessions().session_scopes(
            self.manifest.scopes(),
            c.token_use.as_str(),
            c.scope.as_deref(),
            c.groups.iter().map(String::as_str),
        );
        if scopes.is_empty() {
            return Err(Reject::NoScopes);
        }
        let username = if c.token_use == "id" {
            c.cognito_username
        } else {
            c.username
        };
        Ok(Principal {
            sub,
            username: username.filter(|u| u.len() <= 128),
            method: AuthMethod::Jwt,
            kind: PrincipalKind::User,
            scopes,
            token_id: None,
            expires_at: c.exp,
            // The sign-in, not this token: a refreshed access token has a new
            // `iat` but the same `auth_time`, and a session older than the
            // owner's revoke-all must stay older however often it refreshes.
            issued_at: c.auth_time.or(c.iat).unwrap_or(0),
            rate_tier: None,
            dpop_jkt: None,
        })
    }
}

impl<S: JwksSource> JwtVerifier<S> {
    /// A client-credentials access token of a configured service client
    /// (issuer, `token_use` and signature already checked): `sub` must be the
    /// client itself, and nothing may name a person (no `username`, no
    /// groups). Its scopes are the resource-server scopes the manifest's
    /// `[services]` allows; none (or no `[services]`) refuses it.
    fn service_principal(&self, c: CognitoClaims) -> Result<Principal, Reject> {
        let person = c.username.is_some() || c.cognito_username.is_some() || !c.groups.is_empty();
        if person || c.client_id.as_deref() != Some(c.sub.as_str()) {
            return Err(Reject::Claims);
        }
        let sub = UserId::parse(&c.sub)
            .ok()
            .filter(|s| !s.is_service())
            .ok_or(Reject::Claims)?;
        let scopes = self.manifest.services().map_or(ScopeSet::EMPTY, |s| {
            s.service_scopes(self.manifest.scopes(), c.scope.as_deref())
        });
        if scopes.is_empty() {
            return Err(Reject::NoScopes);
        }
        Ok(Principal {
            sub,
            username: None,
            method: AuthMethod::Jwt,
            kind: PrincipalKind::Service,
            scopes,
            token_id: None,
            expires_at: c.exp,
            issued_at: c.iat.unwrap_or(0),
            rate_tier: None,
            dpop_jkt: None,
        })
    }
}

/// Everything decided before any key lookup: three clean segments, a header
/// with `alg` exactly RS256, no key-source headers, and a well-formed `kid`,
/// which it returns. Total on any input (fuzzed).
pub fn pre_parse(token: &str) -> Result<String, Reject> {
    check_structure(token)?;
    let header = decode_header(token).map_err(|_| Reject::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(Reject::Algorithm);
    }
    if header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some()
    {
        return Err(Reject::ForbiddenHeader);
    }
    let kid = header.kid.ok_or(Reject::KeyId)?;
    let kid_ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=' | b'.')
        });
    if !kid_ok {
        return Err(Reject::KeyId);
    }
    Ok(kid)
}

/// Three non-empty base64url segments, nothing else.
fn check_structure(token: &str) -> Result<(), Reject> {
    let mut segments = 0;
    for segment in token.split('.') {
        segments += 1;
        if segments > 3 {
            return Err(Reject::Malformed);
        }
        if segment.is_empty()
            || !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Reject::Malformed);
        }
    }
    if segments == 3 {
        Ok(())
    } else {
        Err(Reject::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_needs_three_clean_segments() {
        assert!(check_structure("a.b.c").is_ok());
        for bad in [
            "", "a.b", "a.b.c.d", "a..c", "a.b.", "a.b.c=", "a b.c.d", "é.b.c",
        ] {
            assert_eq!(check_structure(bad), Err(Reject::Malformed), "{bad}");
        }
    }
}
