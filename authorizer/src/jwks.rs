//! Cognito signing keys: fetched lazily from the configured JWKS URL, cached,
//! and refreshed at most once per [`REFRESH_INTERVAL`] however many unknown
//! `kid`s arrive. Concurrent callers share one fetch.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use shared::fetch::{BoundedGet, FetchError};
use thiserror::Error;

/// Minimum time between two JWKS fetches (aws-jwt-verify's "penalty box").
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Whole-request timeout of a JWKS fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1500);
/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Why keys could not be fetched.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum JwksError {
    /// Network failure, timeout or non-200 status.
    #[error("JWKS endpoint unavailable: {0}")]
    Unavailable(String),
    /// The body exceeded [`MAX_JWKS_BYTES`].
    #[error("JWKS document too large")]
    TooLarge,
    /// The body is not a JWKS document.
    #[error("JWKS document malformed")]
    Malformed,
}

/// Where raw JWKS documents come from.
pub trait JwksSource: Send + Sync + 'static {
    /// Fetches the JWKS document body.
    fn fetch(&self) -> impl Future<Output = Result<Vec<u8>, JwksError>> + Send;
}

/// Fetches the JWKS over HTTP(S) with a timeout, a size cap and no redirects
/// (the bounded GET of [`shared::fetch`]).
#[derive(Debug, Clone)]
pub struct HttpJwks(BoundedGet);

impl HttpJwks {
    /// A fetcher for `url`.
    pub fn new(url: String) -> Result<Self, JwksError> {
        Self::trusting(url, shared::tls::TrustRoots::System)
    }

    /// A fetcher for `url` trusting `roots`.
    pub fn trusting(url: String, roots: shared::tls::TrustRoots) -> Result<Self, JwksError> {
        let pem = match roots {
            shared::tls::TrustRoots::Amazon => Some(shared::tls::AMAZON_TRUST_SERVICES_PEM),
            shared::tls::TrustRoots::System => None,
        };
        BoundedGet::trusting(url, FETCH_TIMEOUT, MAX_JWKS_BYTES, pem)
            .map(Self)
            .map_err(JwksError::from)
    }
}

impl From<FetchError> for JwksError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Unavailable(cause) => JwksError::Unavailable(cause),
            FetchError::TooLarge => JwksError::TooLarge,
        }
    }
}

impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<Vec<u8>, JwksError> {
        self.0.fetch().await.map_err(JwksError::from)
    }
}

type KeyMap = Arc<HashMap<String, Arc<DecodingKey>>>;

/// Why no key is available for a `kid`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The JWKS was reachable but has no usable key with this id.
    #[error("unknown key id")]
    UnknownKid,
    /// No cached key and the JWKS endpoint could not be read.
    #[error("signing keys unavailable: {0}")]
    Unavailable(JwksError),
}

/// The key cache.
pub struct KeyCache<S> {
    source: Arc<S>,
    current: RwLock<KeyMap>,
    /// One entry, living [`REFRESH_INTERVAL`]: its presence is the penalty box,
    /// and moka's `get_with` makes concurrent callers share one fetch.
    refresh: moka::future::Cache<(), Arc<Result<KeyMap, JwksError>>>,
    fetches: AtomicUsize,
}

impl<S: JwksSource> KeyCache<S> {
    /// An empty cache over `source`; the first lookup fetches.
    pub fn new(source: S) -> Self {
        Self::with_refresh_interval(source, REFRESH_INTERVAL)
    }

    /// As [`KeyCache::new`] with another refresh interval (tests).
    pub fn with_refresh_interval(source: S, interval: Duration) -> Self {
        Self {
            source: Arc::new(source),
            current: RwLock::new(Arc::new(HashMap::new())),
            refresh: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(interval)
                .build(),
            fetches: AtomicUsize::new(0),
        }
    }

    /// How many times the JWKS has been fetched.
    pub fn fetch_count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// The key for `kid`, fetching the JWKS if the id is unknown and the
    /// penalty box allows it.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let source = Arc::clone(&self.source);
        let fetches = &self.fetches;
        let outcome = self
            .refresh
            .get_with((), async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let result = match source.fetch().await {
                    Ok(body) => parse_jwks(&body).map(Arc::new),
                    Err(e) => Err(e),
                };
                Arc::new(result)
            })
            .await;
        match outcome.as_ref() {
            Ok(keys) => {
                if let Ok(mut current) = self.current.write()
                    && !Arc::ptr_eq(&current, keys)
                {
                    *current = Arc::clone(keys);
                }
                keys.get(kid).cloned().ok_or(KeyError::UnknownKid)
            }
            // Keep serving what we had: a later known kid still works.
            Err(e) => match self.cached(kid) {
                Some(key) => Ok(key),
                None => Err(KeyError::Unavailable(e.clone())),
            },
        }
    }

    fn cached(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.current.read().ok()?.get(kid).cloned()
    }
}

/// Keeps only RSA signature keys usable with RS256 and with a `kid`. Malformed
/// or foreign entries are skipped, not fatal, so one odd key cannot take the
/// others down.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, JwksError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(|_| JwksError::Malformed)?;
    let mut keys = HashMap::new();
    for value in raw.keys.into_iter().take(100) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
            continue;
        }
        if jwk
            .common
            .key_algorithm
            .is_some_and(|alg| alg != KeyAlgorithm::RS256)
        {
            continue;
        }
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(key));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_JWK: &str = r#"{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}"#;

    #[test]
    fn keeps_rsa_signature_keys_and_skips_everything_else() {
        let body = format!(
            r#"{{"keys":[{RSA_JWK},
            {{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}},
            {{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}},
            {{"kty":"RSA","kid":"ps","alg":"PS256","n":"AQAB","e":"AQAB"}},
            {{"kty":"RSA","n":"AQAB","e":"AQAB"}},
            {{"nonsense":true}}]}}"#
        );
        let keys = parse_jwks(body.as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["k1"]);
    }

    #[test]
    fn non_jwks_bodies_are_malformed() {
        for body in ["", "null", "{}", "[]", "<html>"] {
            assert_eq!(
                parse_jwks(body.as_bytes()).unwrap_err(),
                JwksError::Malformed,
                "{body}"
            );
        }
    }
}
