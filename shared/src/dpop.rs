//! DPoP (RFC 9449): tokens bound to a key the client holds.
//!
//! A bound PAT's record keeps the RFC 7638 thumbprint ([`Jkt`]) of the
//! owner's public key ([`PublicJwk`]). Every request then carries a fresh
//! proof, a JWS the client signs with the private key; [`check_proof`]
//! applies RFC 9449 §4.3's checks a resource server makes, except the two
//! that need state or the token record: that the proof's `jti` was not used
//! before (the caller asks the replay store with [`CheckedProof::replay_key`])
//! and that its key is the token's (the caller compares [`CheckedProof::jkt`]).
//!
//! Only ES256 (P-256) and EdDSA (Ed25519) are accepted: asymmetric, fixed
//! key sizes, and the algorithms the issue of bound tokens names. [`ProofKey`]
//! is the client side (the CLI, tests, benchmarks).

use std::borrow::Cow;
use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The proof algorithms accepted, as the `WWW-Authenticate` challenge's
/// `algs` parameter and the OpenAPI document name them.
pub const ALGORITHMS: &str = "ES256 EdDSA";

/// Largest `DPoP` header accepted, in bytes: a proof for a URL of about
/// 3 KB. Larger ones are refused before any decoding.
pub const MAX_PROOF_BYTES: usize = 4096;

/// Longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 128;

/// The longest `iat` window a deployment may configure, in seconds
/// (`DPOP_PROOF_MAX_AGE_SECONDS`'s maximum).
pub const MAX_PROOF_AGE_LIMIT_SECS: i64 = 300;

/// The most clock skew a deployment may allow, in seconds
/// (`DPOP_CLOCK_SKEW_SECONDS`'s maximum).
pub const MAX_CLOCK_SKEW_LIMIT_SECS: i64 = 60;

/// Shortest `jti` accepted, in bytes: 96 bits of randomness in base64url,
/// RFC 9449 §4.2's recommendation.
pub const MIN_JTI_BYTES: usize = 16;

/// Why a JWK cannot bind a token. No variant carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum JwkError {
    /// Not a JSON object with `kty`, `crv` and the public coordinates.
    #[error("must be a JSON Web Key object")]
    Malformed,
    /// It holds a private part (`d`, or RSA's or a symmetric key's).
    #[error("must hold only the public key: remove \"d\"")]
    Private,
    /// Another key type or curve than EC P-256 or OKP Ed25519.
    #[error("must be an EC P-256 or an OKP Ed25519 key")]
    Unsupported,
    /// A coordinate that is not base64url of the curve's size, or a point
    /// that is not on the curve.
    #[error("is not a valid public key")]
    Invalid,
}

/// A public key a token can be bound to: EC P-256 or Ed25519.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// `{"kty":"EC","crv":"P-256","x":…,"y":…}`, for ES256.
    P256 {
        /// The x coordinate, big-endian.
        x: [u8; 32],
        /// The y coordinate, big-endian.
        y: [u8; 32],
    },
    /// `{"kty":"OKP","crv":"Ed25519","x":…}`, for EdDSA.
    Ed25519 {
        /// The public key.
        x: [u8; 32],
    },
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicJwk({})", self.thumbprint())
    }
}

/// A JWK as sent: the members we read, and the private ones we refuse.
#[derive(Deserialize)]
struct RawJwk<'a> {
    #[serde(borrow)]
    kty: Option<Cow<'a, str>>,
    #[serde(borrow)]
    crv: Option<Cow<'a, str>>,
    #[serde(borrow)]
    x: Option<Cow<'a, str>>,
    #[serde(borrow)]
    y: Option<Cow<'a, str>>,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

fn coordinate(text: Option<&str>) -> Result<[u8; 32], JwkError> {
    let text = text.ok_or(JwkError::Malformed)?;
    // 32 bytes are exactly 43 base64url characters without padding.
    if text.len() != 43 {
        return Err(JwkError::Invalid);
    }
    let bytes = B64.decode(text).map_err(|_| JwkError::Invalid)?;
    bytes.try_into().map_err(|_| JwkError::Invalid)
}

impl PublicJwk {
    /// Reads a public JWK from a JSON value (the token service's request
    /// body). Refuses private members, other key types and curves, and
    /// points that are not on the curve.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, JwkError> {
        if !value.is_object() {
            return Err(JwkError::Malformed);
        }
        let raw = RawJwk::deserialize(value).map_err(|_| JwkError::Malformed)?;
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &RawJwk<'_>) -> Result<Self, JwkError> {
        let private = [
            &raw.d, &raw.p, &raw.q, &raw.dp, &raw.dq, &raw.qi, &raw.oth, &raw.k,
        ]
        .iter()
        .any(|m| m.is_some());
        if private {
            return Err(JwkError::Private);
        }
        let key = match (raw.kty.as_deref(), raw.crv.as_deref()) {
            (Some("EC"), Some("P-256")) => PublicJwk::P256 {
                x: coordinate(raw.x.as_deref())?,
                y: coordinate(raw.y.as_deref())?,
            },
            (Some("OKP"), Some("Ed25519")) => {
                if raw.y.is_some() {
                    return Err(JwkError::Invalid);
                }
                let x = coordinate(raw.x.as_deref())?;
                if !strong_ed25519(&x) {
                    return Err(JwkError::Invalid);
                }
                PublicJwk::Ed25519 { x }
            }
            (None, _) | (_, None) => return Err(JwkError::Malformed),
            _ => return Err(JwkError::Unsupported),
        };
        key.parsed().map(|_| key).map_err(|_| JwkError::Invalid)
    }

    /// The key as aws-lc-rs verifies with it; checks the point.
    fn parsed(&self) -> Result<ParsedPublicKey, JwkError> {
        match self {
            PublicJwk::P256 { x, y } => {
                // SEC 1 uncompressed: 0x04, then x and y.
                let point: Vec<u8> = std::iter::once(0x04)
                    .chain(x.iter().copied())
                    .chain(y.iter().copied())
                    .collect();
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            }
            PublicJwk::Ed25519 { x } => ParsedPublicKey::new(&signature::ED25519, x),
        }
        .map_err(|_| JwkError::Invalid)
    }

    /// The proof algorithm this key signs with.
    pub fn algorithm(&self) -> ProofAlgorithm {
        match self {
            PublicJwk::P256 { .. } => ProofAlgorithm::Es256,
            PublicJwk::Ed25519 { .. } => ProofAlgorithm::EdDsa,
        }
    }

    /// The key as a JWK (public members only).
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            PublicJwk::P256 { x, y } => {
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)})
            }
            PublicJwk::Ed25519 { x } => json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(x)}),
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in
    /// lexicographic order, without whitespace, base64url.
    pub fn thumbprint(&self) -> Jkt {
        let canonical = match self {
            PublicJwk::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                B64.encode(x),
                B64.encode(y)
            ),
            PublicJwk::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(x))
            }
        };
        Jkt(B64.encode(digest::digest(&digest::SHA256, canonical.as_bytes())))
    }
}

/// The y coordinates (little-endian, the sign bit of x cleared) of the
/// Ed25519 points of small order: 0 (order 4), 1 (the identity), p - 1
/// (order 2) and the two of order 8. These are the values of libsodium's
/// well-known blocklist, its non-canonical entries left to the canonical
/// check.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// Whether an Ed25519 public key can bind a token: its encoding is
/// canonical (y < p = 2^255 - 19) and it is not of small order, where
/// signatures can be forged without a private key.
fn strong_ed25519(encoded: &[u8; 32]) -> bool {
    let mut y = *encoded;
    if let Some(last) = y.last_mut() {
        *last &= 0x7f;
    }
    // y >= p: every byte but the first at its maximum, the first >= 0xed.
    let high = y.iter().skip(1).take(30).all(|&b| b == 0xff) && y.last() == Some(&0x7f);
    let canonical = !(high && y.first().is_some_and(|&b| b >= 0xed));
    canonical && !SMALL_ORDER_Y.contains(&y)
}

/// A JWK SHA-256 thumbprint (RFC 7638), base64url: what a bound token's
/// record keeps (`jkt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jkt(String);

impl Jkt {
    /// Parses a stored thumbprint: 43 base64url characters (32 bytes).
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 43 && B64.decode(text).is_ok_and(|b| b.len() == 32))
            .then(|| Jkt(text.to_owned()))
    }

    /// The thumbprint's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` is this thumbprint, in constant time.
    pub fn is(&self, text: &str) -> bool {
        self.0.as_bytes().ct_eq(text.as_bytes()).into()
    }
}

impl fmt::Display for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A proof algorithm: the only two accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofAlgorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl ProofAlgorithm {
    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            ProofAlgorithm::Es256 => "ES256",
            ProofAlgorithm::EdDsa => "EdDSA",
        }
    }
}

/// Why a proof was refused. Logged as the refusal's reason, never returned
/// to the caller; no variant carries proof or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProofError {
    /// No `DPoP` header, or more than one.
    #[error("not exactly one DPoP header")]
    Count,
    /// Over [`MAX_PROOF_BYTES`].
    #[error("proof too large")]
    TooLarge,
    /// Not a compact JWS with a JSON header and claims.
    #[error("malformed proof")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("typ is not dpop+jwt")]
    Type,
    /// `alg` is not ES256 or EdDSA, or does not fit the key.
    #[error("algorithm not allowed")]
    Algorithm,
    /// The header has `crit`.
    #[error("critical header parameters")]
    Critical,
    /// No `jwk`, or one that is private, unsupported or invalid.
    #[error("proof key: {0}")]
    Key(JwkError),
    /// The signature does not verify with the embedded key.
    #[error("signature")]
    Signature,
    /// A claim is missing or has the wrong type.
    #[error("claims")]
    Claims,
    /// `jti` shorter than [`MIN_JTI_BYTES`] or longer than [`MAX_JTI_BYTES`].
    #[error("jti")]
    Jti,
    /// `htm` is not the request's method.
    #[error("htm does not match the request")]
    Method,
    /// `htu` is not the request's URL.
    #[error("htu does not match the request")]
    Url,
    /// `iat` outside the accepted window.
    #[error("iat outside the window")]
    Time,
    /// `ath` is not the SHA-256 of the presented token.
    #[error("ath does not match the token")]
    AccessTokenHash,
}

/// What a proof must match: the request, the token it came with and the
/// time window. Its `Debug` never shows the token.
#[derive(Clone, Copy)]
pub struct ProofRequirements<'a> {
    /// The request's HTTP method, upper case.
    pub method: &'a str,
    /// The request's URL, each spelling it may have been sent to
    /// (normalised by [`normalise_url`]); the proof's `htu` must be one.
    pub urls: &'a [String],
    /// The token presented with the proof (the `ath` is its SHA-256).
    pub access_token: &'a str,
    /// Now, Unix seconds.
    pub now: i64,
    /// How old a proof's `iat` may be, in seconds.
    pub max_age_secs: i64,
    /// How far in the future a proof's `iat` may be (client clock skew).
    pub max_skew_secs: i64,
}

impl fmt::Debug for ProofRequirements<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofRequirements")
            .field("method", &self.method)
            .field("urls", &self.urls)
            .field("access_token", &"<redacted>")
            .field("now", &self.now)
            .field("max_age_secs", &self.max_age_secs)
            .field("max_skew_secs", &self.max_skew_secs)
            .finish()
    }
}

/// A proof that passed every stateless check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// The thumbprint of the key that signed it: must be the token's.
    pub jkt: Jkt,
    /// SHA-256 of the thumbprint and the `jti`: the replay store's key, so a
    /// `jti` is used once per key and no client can spend another's.
    pub replay_key: [u8; 32],
    /// The proof's `iat`.
    pub iat: i64,
}

impl CheckedProof {
    /// Until when the replay store must remember this proof: past it, its
    /// `iat` is outside every window a deployment may configure, so a
    /// change of the setting (or instances with different ones) never
    /// reopens a replay.
    pub fn remember_until(&self) -> i64 {
        self.iat
            .saturating_add(MAX_PROOF_AGE_LIMIT_SECS)
            .saturating_add(1)
    }
}

#[derive(Deserialize)]
struct ProofHeader<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    jwk: Option<RawJwk<'a>>,
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProofClaims<'a> {
    #[serde(borrow)]
    jti: Cow<'a, str>,
    #[serde(borrow)]
    htm: Cow<'a, str>,
    #[serde(borrow)]
    htu: Cow<'a, str>,
    iat: i64,
    #[serde(borrow)]
    ath: Cow<'a, str>,
}

/// A URL as RFC 9449 §4.3 compares `htu`: scheme and host lower case,
/// default port dropped, path normalised, without query and fragment. Only
/// `http` and `https` URLs without credentials; `None` otherwise.
pub fn normalise_url(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// The `ath` of a token: base64url of its SHA-256.
pub fn access_token_hash(token: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Checks a proof against the request and token (RFC 9449 §4.3, steps 1–10
/// and 12, without the replay check and the key binding: see the module).
/// Cheap checks come first; the signature is verified before any claim is
/// trusted.
pub fn check_proof(proof: &str, req: &ProofRequirements<'_>) -> Result<CheckedProof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLarge);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let header_json = B64.decode(header_b64).map_err(|_| ProofError::Malformed)?;
    let header: ProofHeader<'_> =
        serde_json::from_slice(&header_json).map_err(|_| ProofError::Malformed)?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(ProofError::Type);
    }
    let alg = match header.alg.as_deref() {
        Some("ES256") => ProofAlgorithm::Es256,
        Some("EdDSA") => ProofAlgorithm::EdDsa,
        _ => return Err(ProofError::Algorithm),
    };
    if header.crit.is_some() {
        return Err(ProofError::Critical);
    }
    let raw = header
        .jwk
        .as_ref()
        .ok_or(ProofError::Key(JwkError::Malformed))?;
    let key = PublicJwk::from_raw(raw).map_err(ProofError::Key)?;
    if key.algorithm() != alg {
        return Err(ProofError::Algorithm);
    }
    let signature = B64
        .decode(signature_b64)
        .map_err(|_| ProofError::Malformed)?;
    let signed = proof
        .get(..header_b64.len() + 1 + claims_b64.len())
        .ok_or(ProofError::Malformed)?;
    key.parsed()
        .map_err(ProofError::Key)?
        .verify_sig(signed.as_bytes(), &signature)
        .map_err(|_| ProofError::Signature)?;

    let claims_json = B64.decode(claims_b64).map_err(|_| ProofError::Malformed)?;
    let claims: ProofClaims<'_> =
        serde_json::from_slice(&claims_json).map_err(|_| ProofError::Claims)?;
    if !(MIN_JTI_BYTES..=MAX_JTI_BYTES).contains(&claims.jti.len()) {
        return Err(ProofError::Jti);
    }
    if claims.htm != req.method {
        return Err(ProofError::Method);
    }
    let htu = normalise_url(&claims.htu).ok_or(ProofError::Url)?;
    if !req.urls.contains(&htu) {
        return Err(ProofError::Url);
    }
    if claims.iat < req.now.saturating_sub(req.max_age_secs)
        || claims.iat > req.now.saturating_add(req.max_skew_secs)
    {
        return Err(ProofError::Time);
    }
    let ath = access_token_hash(req.access_token);
    if !bool::from(ath.as_bytes().ct_eq(claims.ath.as_bytes())) {
        return Err(ProofError::AccessTokenHash);
    }
    let jkt = key.thumbprint();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(jkt.as_str().as_bytes());
    ctx.update(b"\0");
    ctx.update(claims.jti.as_bytes());
    let replay_key: [u8; 32] = ctx
        .finish()
        .as_ref()
        .try_into()
        .map_err(|_| ProofError::Malformed)?;
    Ok(CheckedProof {
        jkt,
        replay_key,
        iat: claims.iat,
    })
}

/// Why a proof key could not be made or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProofKeyError {
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random,
    /// Stored key bytes that are not a PKCS#8 key of the algorithm.
    #[error("not a PKCS#8 {0} key")]
    Key(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

enum KeyPairKind {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A client's proof key: the private key, its PKCS#8 form for storage, and
/// the proofs it signs. `Debug` shows only the public thumbprint.
pub struct ProofKey {
    pair: KeyPairKind,
    pkcs8: SecretBox<Vec<u8>>,
    public: PublicJwk,
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProofKey({:?}, <private>)", self.public)
    }
}

impl ProofKey {
    /// A new key from the OS CSPRNG.
    pub fn generate(alg: ProofAlgorithm) -> Result<Self, ProofKeyError> {
        let rng = SystemRandom::new();
        let document = match alg {
            ProofAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            ProofAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| ProofKeyError::Random)?;
        Self::from_pkcs8(alg, document.as_ref())
    }

    /// A stored key (PKCS#8 DER).
    pub fn from_pkcs8(alg: ProofAlgorithm, der: &[u8]) -> Result<Self, ProofKeyError> {
        let (pair, public) = match alg {
            ProofAlgorithm::Es256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(|_| ProofKeyError::Key("ES256"))?;
                let point = pair.public_key().as_ref();
                let coordinates = (
                    point.get(1..33).and_then(|c| c.try_into().ok()),
                    point.get(33..65).and_then(|c| c.try_into().ok()),
                );
                let (Some(x), Some(y)) = coordinates else {
                    return Err(ProofKeyError::Key("ES256"));
                };
                (KeyPairKind::P256(pair), PublicJwk::P256 { x, y })
            }
            ProofAlgorithm::EdDsa => {
                let pair =
                    Ed25519KeyPair::from_pkcs8(der).map_err(|_| ProofKeyError::Key("EdDSA"))?;
                let x = pair
                    .public_key()
                    .as_ref()
                    .try_into()
                    .map_err(|_| ProofKeyError::Key("EdDSA"))?;
                (KeyPairKind::Ed25519(pair), PublicJwk::Ed25519 { x })
            }
        };
        Ok(Self {
            pair,
            pkcs8: SecretBox::new(Box::new(der.to_vec())),
            public,
        })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> ProofAlgorithm {
        self.public.algorithm()
    }

    /// The private key as PKCS#8 DER, to store it (a secret).
    pub fn pkcs8(&self) -> &[u8] {
        self.pkcs8.expose_secret()
    }

    /// The public key, to bind a token to.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// A proof for one request: `method` and `url` as sent, `access_token`
    /// the token it accompanies, `iat` now, and a fresh random `jti`.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: &str,
        iat: i64,
    ) -> Result<String, ProofKeyError> {
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| ProofKeyError::Random)?;
        let header = json!({"typ": "dpop+jwt", "alg": self.algorithm().name(), "jwk": self.public.to_value()});
        let claims = json!({
            "jti": B64.encode(jti),
            "htm": method,
            "htu": url,
            "iat": iat,
            "ath": access_token_hash(access_token),
        });
        self.sign_parts(&header, &claims)
    }

    /// Signs any header and claims as a compact JWS with this key (tests
    /// use it to build proofs that must be refused).
    pub fn sign_parts(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, ProofKeyError> {
        self.sign_json(&header.to_string(), &claims.to_string())
    }

    /// Signs a header and claims given as JSON text, byte for byte (tests
    /// use it for JSON no `serde_json::Value` can hold, such as duplicate
    /// members).
    pub fn sign_json(&self, header: &str, claims: &str) -> Result<String, ProofKeyError> {
        let mut text = B64.encode(header);
        text.push('.');
        text.push_str(&B64.encode(claims));
        let signature = match &self.pair {
            KeyPairKind::P256(pair) => pair
                .sign(&SystemRandom::new(), text.as_bytes())
                .map_err(|_| ProofKeyError::Sign)?
                .as_ref()
                .to_vec(),
            KeyPairKind::Ed25519(pair) => pair.sign(text.as_bytes()).as_ref().to_vec(),
        };
        text.push('.');
        text.push_str(&B64.encode(signature));
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirements<'a>(urls: &'a [String], token: &'a str, now: i64) -> ProofRequirements<'a> {
        ProofRequirements {
            method: "GET",
            urls,
            access_token: token,
            now,
            max_age_secs: 60,
            max_skew_secs: 5,
        }
    }

    #[test]
    fn the_ed25519_thumbprint_is_rfc_8037s_example() {
        // RFC 8037 Appendix A.3.
        let jwk = PublicJwk::from_value(&json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint().as_str(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn the_p256_thumbprint_is_rfc_9449s_example() {
        // RFC 9449 §4.1's example proof key; its thumbprint is §6.1's `jkt`.
        let jwk = PublicJwk::from_value(&json!({
            "kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint().as_str(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn a_jwk_with_a_private_part_another_curve_or_a_point_off_the_curve_binds_nothing() {
        let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
        let mut public = key.public_jwk().to_value();
        assert_eq!(
            PublicJwk::from_value(&public).as_ref(),
            Ok(key.public_jwk())
        );
        public["d"] = json!("AAAA");
        assert_eq!(PublicJwk::from_value(&public), Err(JwkError::Private));
        let mut other = key.public_jwk().to_value();
        other["crv"] = json!("P-384");
        assert_eq!(PublicJwk::from_value(&other), Err(JwkError::Unsupported));
        let rsa = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        assert_eq!(PublicJwk::from_value(&rsa), Err(JwkError::Malformed));
        let mut off = key.public_jwk().to_value();
        off["y"] = json!(B64.encode([7u8; 32]));
        assert_eq!(PublicJwk::from_value(&off), Err(JwkError::Invalid));
        assert_eq!(
            PublicJwk::from_value(&json!("EC")),
            Err(JwkError::Malformed)
        );
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(PublicJwk::from_value(&oct), Err(JwkError::Private));
    }

    #[test]
    fn a_fresh_proof_passes_for_both_algorithms_and_yields_its_keys_thumbprint() {
        let urls = vec![normalise_url("https://api.example.com/v1/items").unwrap()];
        for alg in [ProofAlgorithm::Es256, ProofAlgorithm::EdDsa] {
            let key = ProofKey::generate(alg).unwrap();
            let proof = key
                .proof(
                    "GET",
                    "https://API.example.com:443/v1/items?x=1#f",
                    "tok",
                    1000,
                )
                .unwrap();
            let checked = check_proof(&proof, &requirements(&urls, "tok", 1010)).unwrap();
            assert_eq!(checked.jkt, key.public_jwk().thumbprint());
            let again = key
                .proof("GET", "https://api.example.com/v1/items", "tok", 1000)
                .unwrap();
            let other = check_proof(&again, &requirements(&urls, "tok", 1010)).unwrap();
            assert_ne!(
                checked.replay_key, other.replay_key,
                "a fresh jti each time"
            );
        }
    }

    #[test]
    fn each_stateless_check_refuses_its_own_defect() {
        let urls = vec![normalise_url("https://api.example.com/v1/items").unwrap()];
        let req = requirements(&urls, "tok", 1000);
        assert!(!format!("{req:?}").contains("tok\""), "{req:?}");
        let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
        let other = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
        let header =
            || json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk().to_value()});
        let claims = || {
            json!({"jti": "0123456789abcdefXYZ", "htm": "GET",
                "htu": "https://api.example.com/v1/items", "iat": 1000,
                "ath": access_token_hash("tok")})
        };
        let check = |h: serde_json::Value, c: serde_json::Value| {
            check_proof(&key.sign_parts(&h, &c).unwrap(), &req).map(|_| ())
        };
        assert_eq!(check(header(), claims()), Ok(()));
        let with = |mut v: serde_json::Value, k: &str, x: serde_json::Value| {
            if x.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = x;
            }
            v
        };
        assert_eq!(
            check(with(header(), "typ", json!(null)), claims()),
            Err(ProofError::Type)
        );
        assert_eq!(
            check(with(header(), "typ", json!("JWT")), claims()),
            Err(ProofError::Type)
        );
        assert_eq!(
            check(with(header(), "alg", json!("none")), claims()),
            Err(ProofError::Algorithm)
        );
        assert_eq!(
            check(with(header(), "alg", json!("HS256")), claims()),
            Err(ProofError::Algorithm)
        );
        assert_eq!(
            check(with(header(), "alg", json!("EdDSA")), claims()),
            Err(ProofError::Algorithm)
        );
        assert_eq!(
            check(with(header(), "crit", json!(["exp"])), claims()),
            Err(ProofError::Critical)
        );
        let mut private = key.public_jwk().to_value();
        private["d"] = json!(B64.encode([1u8; 32]));
        assert_eq!(
            check(with(header(), "jwk", private), claims()),
            Err(ProofError::Key(JwkError::Private))
        );
        // Another key in the header than the one that signed.
        assert_eq!(
            check(
                with(header(), "jwk", other.public_jwk().to_value()),
                claims()
            ),
            Err(ProofError::Signature)
        );
        assert_eq!(
            check(header(), with(claims(), "htm", json!("POST"))),
            Err(ProofError::Method)
        );
        assert_eq!(
            check(
                header(),
                with(claims(), "htu", json!("https://api.example.com/v1/other"))
            ),
            Err(ProofError::Url)
        );
        assert_eq!(
            check(
                header(),
                with(claims(), "htu", json!("https://evil.example/v1/items"))
            ),
            Err(ProofError::Url)
        );
        assert_eq!(
            check(header(), with(claims(), "iat", json!(939))),
            Err(ProofError::Time)
        );
        assert_eq!(
            check(header(), with(claims(), "iat", json!(1006))),
            Err(ProofError::Time)
        );
        assert_eq!(check(header(), with(claims(), "iat", json!(940))), Ok(()));
        assert_eq!(check(header(), with(claims(), "iat", json!(1005))), Ok(()));
        assert_eq!(
            check(header(), with(claims(), "iat", json!("1000"))),
            Err(ProofError::Claims)
        );
        assert_eq!(
            check(
                header(),
                with(claims(), "ath", json!(access_token_hash("other")))
            ),
            Err(ProofError::AccessTokenHash)
        );
        assert_eq!(
            check(header(), with(claims(), "ath", json!(null))),
            Err(ProofError::Claims)
        );
        assert_eq!(
            check(header(), with(claims(), "jti", json!("short"))),
            Err(ProofError::Jti)
        );
        assert_eq!(
            check(header(), with(claims(), "jti", json!("j".repeat(129)))),
            Err(ProofError::Jti)
        );
        // Duplicate members: the JSON parser refuses them, so no check can
        // read one value while the signature covered another.
        let jwk = key.public_jwk().to_value().to_string();
        let dup_header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":{jwk}}}"#);
        let proof = key.sign_json(&dup_header, &claims().to_string()).unwrap();
        assert_eq!(
            check_proof(&proof, &req).map(|_| ()),
            Err(ProofError::Malformed)
        );
        let one_header = header().to_string();
        let dup_claims = claims().to_string().replacen('{', r#"{"htm":"POST","#, 1);
        let proof = key.sign_json(&one_header, &dup_claims).unwrap();
        assert_eq!(
            check_proof(&proof, &req).map(|_| ()),
            Err(ProofError::Claims)
        );
        // A signature over other bytes; junk; oversize.
        let good = key.sign_parts(&header(), &claims()).unwrap();
        let (signed, _) = good.rsplit_once('.').unwrap();
        let forged = format!("{signed}.{}", B64.encode([0u8; 64]));
        assert_eq!(
            check_proof(&forged, &req).map(|_| ()),
            Err(ProofError::Signature)
        );
        assert_eq!(
            check_proof("a.b", &req).map(|_| ()),
            Err(ProofError::Malformed)
        );
        assert_eq!(
            check_proof("a.b.c.d", &req).map(|_| ()),
            Err(ProofError::Malformed)
        );
        let huge = "a".repeat(MAX_PROOF_BYTES + 1);
        assert_eq!(
            check_proof(&huge, &req).map(|_| ()),
            Err(ProofError::TooLarge)
        );
    }

    /// Review finding: an Ed25519 key of small order verifies a signature
    /// anyone can make (R = the base point, S = 1 for the identity), so it
    /// must never bind a token; nor may a non-canonical encoding (y >= p).
    #[test]
    fn weak_and_non_canonical_ed25519_keys_bind_nothing() {
        let okp = |x: [u8; 32]| json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(x)});
        // The identity: the forgery verifies for any message with aws-lc-rs.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0x66u8; 64];
        forged[0] = 0x58;
        forged[32..].fill(0);
        forged[32] = 1;
        let weak = ParsedPublicKey::new(&signature::ED25519, identity).unwrap();
        assert!(
            weak.verify_sig(b"any message", &forged).is_ok(),
            "the forgery this guards against"
        );
        for y in SMALL_ORDER_Y {
            for sign in [0u8, 0x80] {
                let mut x = y;
                x[31] |= sign;
                assert_eq!(
                    PublicJwk::from_value(&okp(x)),
                    Err(JwkError::Invalid),
                    "{x:?}"
                );
            }
        }
        // y = p, p + 1, and the largest 255-bit value: not canonical.
        for low in [0xed, 0xee, 0xff] {
            let mut x = [0xffu8; 32];
            x[0] = low;
            x[31] = 0x7f;
            assert_eq!(PublicJwk::from_value(&okp(x)), Err(JwkError::Invalid));
        }
        let good = ProofKey::generate(ProofAlgorithm::EdDsa).unwrap();
        assert!(PublicJwk::from_value(&good.public_jwk().to_value()).is_ok());
    }

    #[test]
    fn a_stored_key_signs_proofs_that_its_public_key_verifies() {
        let key = ProofKey::generate(ProofAlgorithm::EdDsa).unwrap();
        let again = ProofKey::from_pkcs8(ProofAlgorithm::EdDsa, key.pkcs8()).unwrap();
        assert_eq!(again.public_jwk(), key.public_jwk());
        assert!(!format!("{again:?}").contains(&B64.encode(key.pkcs8())));
        assert!(ProofKey::from_pkcs8(ProofAlgorithm::Es256, key.pkcs8()).is_err());
    }

    #[test]
    fn urls_compare_after_normalisation_and_only_http_urls_count() {
        assert_eq!(
            normalise_url("HTTPS://Api.Example.com:443/a/b?q=1#x").as_deref(),
            Some("https://api.example.com/a/b")
        );
        assert_eq!(
            normalise_url("https://api.example.com").as_deref(),
            Some("https://api.example.com/")
        );
        assert_eq!(
            normalise_url("http://127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080/x")
        );
        assert_eq!(normalise_url("ftp://example.com/x"), None);
        assert_eq!(normalise_url("https://user:pw@example.com/x"), None);
        assert_eq!(normalise_url("/relative"), None);
    }
}
