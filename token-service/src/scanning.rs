//! GitHub's secret-scanning partner programme: the signature on a report and
//! the keys that check it.
//!
//! GitHub signs the raw body of each report with ECDSA P-256 / SHA-256 and
//! names the key in `Github-Public-Key-Identifier`; the DER signature, in
//! base64, is in `Github-Public-Key-Signature`. Its public keys are a JSON
//! document at a configured URL (`SECRET_SCANNING_KEYS_URL`), fetched lazily
//! with a timeout and a size cap, cached for [`KEYS_TTL_SECS`], and fetched
//! again at most once per [`REFRESH_INTERVAL_SECS`] however many unknown key
//! ids arrive (the JWKS's penalty box), so a flood of forged reports cannot
//! turn into a flood of fetches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shared::fetch::{BoundedGet, FetchError};
use thiserror::Error;

/// Header naming the key that signed the report.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// Header carrying the base64 DER ECDSA signature of the raw body.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// Largest report accepted, in bytes (GitHub batches; the shared 16 KiB body
/// limit of the other routes is too small for a batch of 100).
pub const MAX_REPORT_BYTES: usize = 64 * 1024;
/// Most entries in one report.
pub const MAX_REPORT_ENTRIES: usize = 100;
/// Whole-request timeout of a key fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest key document accepted.
pub const MAX_KEYS_BYTES: usize = 64 * 1024;
/// How long fetched keys are used before they are fetched again (a key the
/// programme withdraws stops being accepted within this time).
pub const KEYS_TTL_SECS: i64 = 3600;
/// Minimum time between two key fetches. Unsigned callers can ask for a
/// fetch (an unknown key id), and the keys URL may be rate-limited per
/// address (GitHub's unauthenticated API: 60 an hour), so at most one a
/// minute.
pub const REFRESH_INTERVAL_SECS: i64 = 60;
/// Keys older than this that cannot be fetched again are dropped: the
/// endpoint then fails closed (500, the partner retries) rather than trust a
/// key that may have been withdrawn long ago.
pub const KEYS_MAX_AGE_SECS: i64 = 24 * 3600;
/// Keys kept from one document (GitHub publishes a handful).
const MAX_KEYS: usize = 20;

/// Why a report's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// A header is absent, empty, too long or not base64.
    #[error("signature headers missing or malformed")]
    MissingHeaders,
    /// No key with this id, even after a fetch.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify over the body.
    #[error("signature does not verify")]
    BadSignature,
    /// No keys could be fetched, and none are cached: the report cannot be
    /// checked now (the partner should retry).
    #[error("partner keys unavailable: {0}")]
    KeysUnavailable(FetchError),
}

/// The partner's public keys, fetched on demand and cached.
pub struct PartnerKeys {
    source: BoundedGet,
    state: tokio::sync::Mutex<KeyState>,
    fetches: AtomicUsize,
}

#[derive(Default)]
struct KeyState {
    keys: HashMap<String, ParsedPublicKey>,
    /// When the keys were last fetched successfully (Unix seconds).
    fetched_at: Option<i64>,
    /// When a fetch was last attempted, successful or not.
    attempted_at: Option<i64>,
}

impl PartnerKeys {
    /// Keys from `url` (see [`keys_url`] for what is accepted); nothing is
    /// fetched until the first report.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(url: String) -> Result<Self, FetchError> {
        Ok(Self {
            source: BoundedGet::new(url, FETCH_TIMEOUT, MAX_KEYS_BYTES)?,
            state: tokio::sync::Mutex::new(KeyState::default()),
            fetches: AtomicUsize::new(0),
        })
    }

    /// How many times the key document was fetched (attempts included).
    pub fn fetch_count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Checks the signature headers over the raw `body`, at Unix time `now`.
    ///
    /// Fetches the keys when there are none, when they are older than
    /// [`KEYS_TTL_SECS`], or when `key_id` is unknown, but never twice within
    /// [`REFRESH_INTERVAL_SECS`]. A failed fetch keeps the keys already held.
    ///
    /// # Errors
    /// [`SignatureError`]: why the report is refused.
    pub async fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let key_id = key_id
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(SignatureError::MissingHeaders)?;
        let signature = signature
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .and_then(|s| STANDARD.decode(s.trim()).ok())
            .ok_or(SignatureError::MissingHeaders)?;
        // One lock: concurrent reports share one fetch.
        let mut state = self.state.lock().await;
        let stale = state
            .fetched_at
            .is_none_or(|t| now.saturating_sub(t) >= KEYS_TTL_SECS);
        // Only an id of the partner's form (GitHub: SHA-256 in hex) is worth
        // a fetch; any other unknown id is refused on the keys held.
        let known = state.keys.contains_key(key_id) || !is_key_id(key_id);
        let may_fetch = state
            .attempted_at
            .is_none_or(|t| now < t || now - t >= REFRESH_INTERVAL_SECS);
        let mut failure = None;
        if (stale || !known) && may_fetch {
            state.attempted_at = Some(now);
            self.fetches.fetch_add(1, Ordering::SeqCst);
            match self.source.fetch().await.map(|b| parse_keys(&b)) {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched_at = Some(now);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "secret-scanning keys could not be fetched");
                    failure = Some(e);
                }
            }
        }
        if state
            .fetched_at
            .is_some_and(|t| now.saturating_sub(t) >= KEYS_MAX_AGE_SECS)
        {
            state.keys.clear();
        }
        match state.keys.get(key_id) {
            Some(key) => key
                .verify_sig(body, &signature)
                .map_err(|_| SignatureError::BadSignature),
            // No key at all (never fetched, dropped as too old, or an empty
            // document): nothing can be checked now, the partner retries.
            None if state.keys.is_empty() => Err(SignatureError::KeysUnavailable(
                failure.unwrap_or_else(|| FetchError::Unavailable("no current keys".into())),
            )),
            None => Err(SignatureError::UnknownKey),
        }
    }
}

/// Whether `key_id` has the form of the partner's key ids: 64 hex digits
/// (GitHub's are the SHA-256 of the key).
fn is_key_id(key_id: &str) -> bool {
    key_id.len() == 64 && key_id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads GitHub's key document, `{"public_keys": [{"key_identifier",
/// "key" (PEM SubjectPublicKeyInfo), "is_current"}]}`. Every listed key is
/// kept, current or not (reports signed just before a rotation still
/// verify); entries that are not P-256 keys are skipped, not fatal. A
/// document of another shape yields no keys.
pub fn parse_keys(body: &[u8]) -> HashMap<String, ParsedPublicKey> {
    #[derive(serde::Deserialize)]
    struct Document {
        public_keys: Vec<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        key_identifier: String,
        key: String,
    }
    let Ok(doc) = serde_json::from_slice::<Document>(body) else {
        return HashMap::new();
    };
    doc.public_keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Entry>(v).ok())
        .filter(|e| !e.key_identifier.is_empty() && e.key_identifier.len() <= 256)
        .filter_map(|e| {
            let der = pem_body(&e.key)?;
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).ok()?;
            Some((e.key_identifier, key))
        })
        .take(MAX_KEYS)
        .collect()
}

/// The DER inside a `PUBLIC KEY` PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let inner = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok()
}

/// Validates `SECRET_SCANNING_KEYS_URL`: `https://`, or `http://` to a
/// loopback host (tests, a local stand-in). Anything else could let a
/// network attacker serve their own keys.
pub fn keys_url(url: &str) -> Option<&str> {
    if url.contains(char::is_whitespace) {
        return None;
    }
    if url
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty())
    {
        return Some(url);
    }
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then_some(url)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    fn pem_of(pair: &EcdsaKeyPair) -> String {
        let der = pair.public_key().as_der().unwrap();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
            STANDARD.encode(der.as_ref())
        )
    }

    #[test]
    fn github_key_documents_yield_p256_keys_that_verify_their_signatures() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let doc = serde_json::json!({"public_keys": [
            {"key_identifier": "abc123", "key": pem_of(&pair), "is_current": true},
            {"key_identifier": "junk", "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
            {"key_identifier": "no-pem", "key": "hello"},
            {"nonsense": true}
        ]});
        let keys = parse_keys(doc.to_string().as_bytes());
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["abc123"]);
        let sig = pair.sign(&SystemRandom::new(), b"[]").unwrap();
        assert!(keys["abc123"].verify_sig(b"[]", sig.as_ref()).is_ok());
        assert!(keys["abc123"].verify_sig(b"[ ]", sig.as_ref()).is_err());
        for other in ["", "null", "{}", "[]", r#"{"public_keys": 3}"#] {
            assert!(parse_keys(other.as_bytes()).is_empty(), "{other}");
        }
    }

    #[test]
    fn the_too_large_problem_states_these_limits() {
        let (status, _, title) = shared::http::problem::ApiError::ReportTooLarge.parts();
        assert_eq!(status, 413);
        assert!(
            title.contains(&format!("{} KiB", MAX_REPORT_BYTES / 1024)),
            "{title}"
        );
        assert!(
            title.contains(&format!("{MAX_REPORT_ENTRIES} entries")),
            "{title}"
        );
    }

    #[test]
    fn the_keys_url_is_https_or_loopback_http() {
        for ok in [
            "https://api.github.com/meta/public_keys/secret_scanning",
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
            "http://[::1]:9/keys",
        ] {
            assert_eq!(keys_url(ok), Some(ok));
        }
        for bad in [
            "http://api.github.com/meta",
            "http://127.0.0.1.evil.example/keys",
            "ftp://127.0.0.1/keys",
            "https://",
            "https://a b",
            "",
        ] {
            assert_eq!(keys_url(bad), None, "{bad}");
        }
    }
}
