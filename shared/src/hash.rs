//! argon2id hashing of PAT secrets, stored as PHC strings.
//!
//! The PHC string names its algorithm (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! so a future scheme can be added beside it and told apart on read.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::pat::{PatSecret, os_random};

/// OWASP's minimum argon2id memory cost, in KiB.
pub const OWASP_MIN_M_KIB: u32 = 19_456;
/// OWASP's minimum argon2id iterations.
pub const OWASP_MIN_T: u32 = 2;
/// OWASP's minimum argon2id parallelism.
pub const OWASP_MIN_P: u32 = 1;
/// Hash output length in bytes.
pub const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl HashParams {
    /// The OWASP minimum: m=19456 KiB, t=2, p=1.
    pub const OWASP_MIN: HashParams = HashParams {
        m_kib: OWASP_MIN_M_KIB,
        t: OWASP_MIN_T,
        p: OWASP_MIN_P,
    };

    /// The default ceiling on stored parameters: 64 MiB, 10 iterations,
    /// 4 lanes. Far above anything we write, far below what would exhaust
    /// the authorizer (256 MB, one request at a time per instance).
    pub const DEFAULT_MAXIMUM: HashParams = HashParams {
        m_kib: 65_536,
        t: 10,
        p: 4,
    };

    /// Whether every parameter is at least the one in `min`.
    pub fn at_least(&self, min: &HashParams) -> bool {
        self.m_kib >= min.m_kib && self.t >= min.t && self.p >= min.p
    }

    /// Whether every parameter is at most the one in `max`.
    pub fn at_most(&self, max: &HashParams) -> bool {
        self.m_kib <= max.m_kib && self.t <= max.t && self.p <= max.p
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP_MIN
    }
}

/// A stored hash in PHC string form. Treated as a secret: never logged or shown.
#[derive(Clone)]
pub struct PhcHash(SecretString);

impl PhcHash {
    /// Wraps a PHC string read from storage. Validation happens at verify time.
    pub fn from_stored(s: String) -> Self {
        Self(SecretString::from(s))
    }

    /// The PHC string, for writing to storage only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhcHash([REDACTED])")
    }
}

/// Errors at the hashing boundary.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HashError {
    /// The configured parameters are rejected by argon2, or below the minimum.
    #[error("invalid argon2 parameters")]
    InvalidParams,
    /// The stored string is not a PHC string we can read.
    #[error("stored hash is malformed")]
    Malformed,
    /// The stored hash uses an algorithm or version other than argon2id v19.
    #[error("stored hash uses an unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The stored hash's parameters are below the configured minimum.
    #[error("stored hash parameters are below the configured minimum")]
    BelowMinimum,
    /// The stored hash's parameters are above the configured ceiling: a
    /// planted record must not make one verification exhaust memory or CPU.
    #[error("stored hash parameters are above the configured maximum")]
    AboveMaximum,
    /// The OS CSPRNG failed.
    #[error("randomness unavailable")]
    Randomness,
}

/// Hashes and verifies PAT secrets with argon2id.
#[derive(Debug, Clone)]
pub struct SecretHasher {
    params: HashParams,
    minimum: HashParams,
    maximum: HashParams,
}

impl SecretHasher {
    /// A hasher that writes with `params` and refuses stored hashes below `minimum`.
    ///
    /// `params` must itself meet `minimum`. Stored hashes above
    /// [`HashParams::DEFAULT_MAXIMUM`] are refused unless [`Self::with_maximum`]
    /// says otherwise.
    pub fn new(params: HashParams, minimum: HashParams) -> Result<Self, HashError> {
        if !params.at_least(&minimum) {
            return Err(HashError::InvalidParams);
        }
        argon2_params(&params)?;
        Ok(Self {
            params,
            minimum,
            maximum: HashParams::DEFAULT_MAXIMUM.max(params),
        })
    }

    /// The same hasher with another ceiling on stored parameters. The
    /// parameters it writes with must be within it.
    pub fn with_maximum(self, maximum: HashParams) -> Result<Self, HashError> {
        if !self.params.at_most(&maximum) {
            return Err(HashError::InvalidParams);
        }
        Ok(Self { maximum, ..self })
    }

    /// Whether a stored hash was written with weaker parameters than this
    /// hasher writes (and so should be replaced after its next successful
    /// verification): ours must be at least as strong in every dimension and
    /// differ. With two incomparable settings (more memory here, more
    /// iterations there, during a rollout) neither rewrites the other's
    /// hashes back and forth. Unreadable hashes are never "upgraded".
    pub fn needs_rehash(&self, stored: &PhcHash) -> bool {
        stored_params(stored)
            .is_some_and(|found| found != self.params && self.params.at_least(&found))
    }

    /// The parameters new hashes are written with.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes a secret with a fresh 128-bit salt from the OS CSPRNG.
    pub fn hash(&self, secret: PatSecret<'_>) -> Result<PhcHash, HashError> {
        let salt_bytes = os_random::<SALT_LEN>().map_err(|_| HashError::Randomness)?;
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| HashError::Randomness)?;
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            argon2_params(&self.params)?,
        );
        let phc = argon
            .hash_password(secret.expose_bytes(), &salt)
            .map_err(|_| HashError::InvalidParams)?;
        Ok(PhcHash(SecretString::from(phc.to_string())))
    }

    /// Verifies `secret` against a stored hash.
    ///
    /// Returns `Ok(true)` on a match and `Ok(false)` on a mismatch. The final
    /// comparison is constant-time (`subtle`). A stored hash that is malformed,
    /// not argon2id v19, or below the minimum parameters is an error and is never
    /// evaluated, so a downgraded record cannot make verification cheap.
    pub fn verify(&self, secret: PatSecret<'_>, stored: &PhcHash) -> Result<bool, HashError> {
        let parsed = PasswordHash::new(stored.expose()).map_err(|_| HashError::Malformed)?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return Err(HashError::UnsupportedAlgorithm);
        }
        if parsed.version != Some(Version::V0x13.into()) {
            return Err(HashError::UnsupportedAlgorithm);
        }
        let params = Params::try_from(&parsed).map_err(|_| HashError::Malformed)?;
        let found = HashParams {
            m_kib: params.m_cost(),
            t: params.t_cost(),
            p: params.p_cost(),
        };
        if !found.at_least(&self.minimum) {
            return Err(HashError::BelowMinimum);
        }
        if !found.at_most(&self.maximum) {
            return Err(HashError::AboveMaximum);
        }
        let expected = parsed.hash.ok_or(HashError::Malformed)?;
        if expected.len() != OUTPUT_LEN {
            return Err(HashError::Malformed);
        }
        let salt = parsed.salt.ok_or(HashError::Malformed)?;
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_buf)
            .map_err(|_| HashError::Malformed)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut computed = [0u8; OUTPUT_LEN];
        argon
            .hash_password_into(secret.expose_bytes(), salt_bytes, &mut computed)
            .map_err(|_| HashError::Malformed)?;
        Ok(bool::from(computed.ct_eq(expected.as_bytes())))
    }
}

impl HashParams {
    /// The larger of each parameter.
    #[must_use]
    pub fn max(self, other: HashParams) -> HashParams {
        HashParams {
            m_kib: self.m_kib.max(other.m_kib),
            t: self.t.max(other.t),
            p: self.p.max(other.p),
        }
    }
}

/// The parameters of a stored argon2id v19 hash, if it is one.
fn stored_params(stored: &PhcHash) -> Option<HashParams> {
    let parsed = PasswordHash::new(stored.expose()).ok()?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    Some(HashParams {
        m_kib: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
    })
}

fn argon2_params(p: &HashParams) -> Result<Params, HashError> {
    Params::new(p.m_kib, p.t, p.p, Some(OUTPUT_LEN)).map_err(|_| HashError::InvalidParams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pat::Pat;

    fn hasher() -> SecretHasher {
        SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN).unwrap()
    }

    #[test]
    fn hash_is_argon2id_phc_with_configured_params() {
        let pat = Pat::generate().unwrap();
        let phc = hasher().hash(pat.secret()).unwrap();
        assert!(
            phc.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            phc.expose()
        );
    }

    #[test]
    fn verify_accepts_the_right_secret_and_rejects_another() {
        let h = hasher();
        let pat = Pat::generate().unwrap();
        let other = Pat::generate().unwrap();
        let phc = h.hash(pat.secret()).unwrap();
        assert_eq!(h.verify(pat.secret(), &phc), Ok(true));
        assert_eq!(h.verify(other.secret(), &phc), Ok(false));
    }

    #[test]
    fn salts_differ_between_hashes_of_the_same_secret() {
        let h = hasher();
        let pat = Pat::generate().unwrap();
        let a = h.hash(pat.secret()).unwrap();
        let b = h.hash(pat.secret()).unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn below_minimum_stored_hash_is_refused_even_if_the_secret_matches() {
        let weak_params = HashParams {
            m_kib: 8,
            t: 1,
            p: 1,
        };
        let weak = SecretHasher::new(weak_params, weak_params).unwrap();
        let pat = Pat::generate().unwrap();
        let phc = weak.hash(pat.secret()).unwrap();
        assert_eq!(weak.verify(pat.secret(), &phc), Ok(true));
        assert_eq!(
            hasher().verify(pat.secret(), &phc),
            Err(HashError::BelowMinimum)
        );
    }

    #[test]
    fn configuring_params_below_the_minimum_is_an_error() {
        let weak = HashParams {
            m_kib: 1024,
            t: 2,
            p: 1,
        };
        assert_eq!(
            SecretHasher::new(weak, HashParams::OWASP_MIN).err(),
            Some(HashError::InvalidParams)
        );
    }

    #[test]
    fn other_algorithms_and_junk_are_refused() {
        let h = hasher();
        let pat = Pat::generate().unwrap();
        let phc = h.hash(pat.secret()).unwrap();
        let as_argon2i = phc.expose().replacen("$argon2id$", "$argon2i$", 1);
        assert_eq!(
            h.verify(pat.secret(), &PhcHash::from_stored(as_argon2i)),
            Err(HashError::UnsupportedAlgorithm)
        );
        let old_version = phc.expose().replacen("v=19", "v=16", 1);
        assert_eq!(
            h.verify(pat.secret(), &PhcHash::from_stored(old_version)),
            Err(HashError::UnsupportedAlgorithm)
        );
        for junk in [
            "",
            "$",
            "plaintext",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
            "$sha256$abc",
        ] {
            assert!(
                h.verify(pat.secret(), &PhcHash::from_stored(junk.into()))
                    .is_err(),
                "{junk}"
            );
        }
    }

    #[test]
    fn stored_parameters_above_the_ceiling_are_refused_unevaluated() {
        let h = hasher();
        let pat = Pat::generate().unwrap();
        let phc = h.hash(pat.secret()).unwrap();
        // 4 GiB: evaluating it would take seconds and exhaust the instance.
        let planted = phc.expose().replacen("m=19456", "m=4194304", 1);
        let started = std::time::Instant::now();
        assert_eq!(
            h.verify(pat.secret(), &PhcHash::from_stored(planted)),
            Err(HashError::AboveMaximum)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let more_lanes = phc.expose().replacen("p=1", "p=64", 1);
        assert_eq!(
            h.verify(pat.secret(), &PhcHash::from_stored(more_lanes)),
            Err(HashError::AboveMaximum)
        );
    }

    #[test]
    fn a_ceiling_below_the_write_parameters_is_a_configuration_error() {
        let low = HashParams {
            m_kib: 8_192,
            ..HashParams::OWASP_MIN
        };
        assert_eq!(
            hasher().with_maximum(low).err(),
            Some(HashError::InvalidParams)
        );
    }

    #[test]
    fn only_hashes_weaker_than_the_write_parameters_need_a_rehash() {
        let old = hasher();
        let pat = Pat::generate().unwrap();
        let phc = old.hash(pat.secret()).unwrap();
        assert!(!old.needs_rehash(&phc));
        let stronger = HashParams {
            t: 3,
            ..HashParams::OWASP_MIN
        };
        let new = SecretHasher::new(stronger, HashParams::OWASP_MIN).unwrap();
        assert!(new.needs_rehash(&phc));
        let rehashed = new.hash(pat.secret()).unwrap();
        assert!(!new.needs_rehash(&rehashed));
        // A hash stronger than what we write is left alone.
        assert!(!old.needs_rehash(&rehashed));
        // Incomparable settings (more memory vs more iterations) never
        // rewrite each other's hashes.
        let more_memory = SecretHasher::new(
            HashParams {
                m_kib: 32_768,
                ..HashParams::OWASP_MIN
            },
            HashParams::OWASP_MIN,
        )
        .unwrap();
        let by_memory = more_memory.hash(pat.secret()).unwrap();
        assert!(!new.needs_rehash(&by_memory));
        assert!(!more_memory.needs_rehash(&rehashed));
        assert!(!new.needs_rehash(&PhcHash::from_stored("junk".into())));
    }

    #[test]
    fn phc_hash_debug_is_redacted() {
        let pat = Pat::generate().unwrap();
        let phc = hasher().hash(pat.secret()).unwrap();
        let dbg = format!("{phc:?}");
        assert_eq!(dbg, "PhcHash([REDACTED])");
    }
}
