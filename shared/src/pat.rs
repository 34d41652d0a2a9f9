//! The Personal Access Token (PAT) wire format.
//!
//! ```text
//! agpat_<id: 17 base62><secret: 43 base62><checksum: 6 base62>
//! ```
//!
//! * `agpat_` is the fixed prefix that secret scanners match on.
//! * The id (the *selector*) is public, random, ~101 bits, and is the DynamoDB key.
//! * The secret (the *verifier*) is ~256 bits from the OS CSPRNG. Only its
//!   argon2id hash is stored.
//! * The checksum is CRC32 (IEEE) of everything before it, as a fixed-width,
//!   zero-padded base62 number, so typos and junk are rejected without any I/O.
//!
//! Total length is always [`PAT_LEN`] = 72 characters, from `[0-9A-Za-z_]`, which
//! needs no escaping in URLs, HTTP headers or shells.
//!
//! Secret-scanner regex: `\bagpat_[0-9A-Za-z]{66}\b`.

use std::fmt;
use std::str::FromStr;

use rand::TryRng;
use rand::rngs::SysRng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The token prefix.
///
/// NEVER CHANGE THIS. Secret scanners, leaked-token revocation and the
/// authorizer's PAT-vs-JWT routing all key on it; changing it would orphan
/// every token ever issued and blind every scanner rule ever published.
pub const PAT_PREFIX: &str = "agpat_";

/// The base62 alphabet, in ascending value order.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters in the public token id (17 × log2(62) ≈ 101.2 bits).
pub const ID_LEN: usize = 17;
/// Characters in the secret (43 × log2(62) ≈ 256.0 bits).
pub const SECRET_LEN: usize = 43;
/// Characters in the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Total length of a PAT.
pub const PAT_LEN: usize = PAT_PREFIX.len() + ID_LEN + SECRET_LEN + CHECKSUM_LEN;

/// The regex secret scanners can use to find our tokens.
pub const SCANNER_REGEX: &str = r"\bagpat_[0-9A-Za-z]{66}\b";

/// Why a string is not a well-formed PAT. Every variant is decided with zero I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PatParseError {
    /// The string does not start with [`PAT_PREFIX`].
    #[error("token does not start with the expected prefix")]
    MissingPrefix,
    /// The string is not exactly [`PAT_LEN`] bytes long.
    #[error("token has the wrong length")]
    InvalidLength,
    /// A character outside base62 appears after the prefix.
    #[error("token contains an invalid character")]
    InvalidCharacter,
    /// The checksum does not match the body.
    #[error("token checksum does not match")]
    InvalidChecksum,
}

/// Failure to obtain randomness from the operating system.
#[derive(Debug, Error)]
#[error("the operating system random number generator failed")]
pub struct RandomnessError;

/// The public identifier of a token (the selector). Safe to log and to show.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

impl TokenId {
    /// Parses a token id: exactly [`ID_LEN`] base62 characters.
    pub fn parse(s: &str) -> Result<Self, PatParseError> {
        if s.len() != ID_LEN {
            return Err(PatParseError::InvalidLength);
        }
        if !s.bytes().all(is_base62) {
            return Err(PatParseError::InvalidCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.0)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TokenId {
    type Error = PatParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TokenId> for String {
    fn from(value: TokenId) -> Self {
        value.0
    }
}

impl FromStr for TokenId {
    type Err = PatParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A complete, well-formed PAT. The whole string is secret.
///
/// `Debug` and `Display` print only the public id; the secret is reachable only
/// through [`Pat::secret`] and [`Pat::expose`], which return redacting types or
/// need an explicit call.
pub struct Pat {
    id: TokenId,
    full: SecretString,
}

impl Pat {
    /// Generates a new token with an id and secret from the OS CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        let id = random_base62(ID_LEN)?;
        let secret = random_base62(SECRET_LEN)?;
        let mut body = String::with_capacity(PAT_LEN);
        body.push_str(PAT_PREFIX);
        body.push_str(&id);
        body.push_str(&secret);
        let checksum = encode_checksum(crc32fast::hash(body.as_bytes()));
        body.push_str(&checksum);
        Ok(Self {
            id: TokenId(id),
            full: SecretString::from(body),
        })
    }

    /// Strictly parses a presented token. Never panics, never does I/O.
    pub fn parse(s: &str) -> Result<Self, PatParseError> {
        let bytes = s.as_bytes();
        if !bytes.starts_with(PAT_PREFIX.as_bytes()) {
            return Err(PatParseError::MissingPrefix);
        }
        if bytes.len() != PAT_LEN {
            return Err(PatParseError::InvalidLength);
        }
        let rest = bytes
            .get(PAT_PREFIX.len()..)
            .ok_or(PatParseError::InvalidLength)?;
        if !rest.iter().copied().all(is_base62) {
            return Err(PatParseError::InvalidCharacter);
        }
        // All bytes are ASCII from here on, so byte offsets are char boundaries.
        let body_len = PAT_LEN - CHECKSUM_LEN;
        let (body, checksum) = s
            .split_at_checked(body_len)
            .ok_or(PatParseError::InvalidLength)?;
        let expected = crc32fast::hash(body.as_bytes());
        match decode_checksum(checksum) {
            Some(found) if found == expected => {}
            _ => return Err(PatParseError::InvalidChecksum),
        }
        let id = s
            .get(PAT_PREFIX.len()..PAT_PREFIX.len() + ID_LEN)
            .ok_or(PatParseError::InvalidLength)?;
        Ok(Self {
            id: TokenId(id.to_owned()),
            full: SecretString::from(s.to_owned()),
        })
    }

    /// Cheap test used to route a credential to the PAT path rather than the JWT path.
    pub fn looks_like_pat(s: &str) -> bool {
        s.starts_with(PAT_PREFIX)
    }

    /// The public id (selector).
    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// The secret part (verifier), the input to argon2id.
    pub fn secret(&self) -> PatSecret<'_> {
        let start = PAT_PREFIX.len() + ID_LEN;
        // parse/generate guarantee the layout, so the range is always in bounds.
        let s = self
            .full
            .expose_secret()
            .get(start..start + SECRET_LEN)
            .unwrap_or("");
        PatSecret(s)
    }

    /// The full token string. Only for returning it once to its owner.
    pub fn expose(&self) -> &str {
        self.full.expose_secret()
    }
}

impl fmt::Debug for Pat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pat({}, secret: [REDACTED])", self.id)
    }
}

impl fmt::Display for Pat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PAT_PREFIX}{}…[REDACTED]", self.id)
    }
}

/// A borrowed view of a token's secret part. Redacted in `Debug`; has no `Display`.
#[derive(Clone, Copy)]
pub struct PatSecret<'a>(&'a str);

impl<'a> PatSecret<'a> {
    /// The raw secret bytes, for hashing only.
    pub fn expose_bytes(&self) -> &'a [u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for PatSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatSecret([REDACTED])")
    }
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn base62_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'A'..=b'Z' => Some(u64::from(b - b'A') + 10),
        b'a'..=b'z' => Some(u64::from(b - b'a') + 36),
        _ => None,
    }
}

pub(crate) fn encode_checksum(mut value: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        let digit = (value % 62) as usize;
        *slot = BASE62.get(digit).copied().unwrap_or(b'0');
        value /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_checksum(s: &str) -> Option<u32> {
    let mut value: u64 = 0;
    for b in s.bytes() {
        value = value * 62 + base62_value(b)?;
    }
    u32::try_from(value).ok()
}

/// `len` uniformly random base62 characters from the OS CSPRNG.
///
/// Rejection sampling on bytes < 248 (= 4 × 62) keeps every character uniform.
fn random_base62(len: usize) -> Result<String, RandomnessError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        SysRng
            .try_fill_bytes(&mut buf)
            .map_err(|_| RandomnessError)?;
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if b < 248 {
                let c = BASE62.get(usize::from(b % 62)).copied().unwrap_or(b'0');
                out.push(char::from(c));
            }
        }
    }
    Ok(out)
}

/// Random bytes from the OS CSPRNG (used for salts and keys elsewhere in the crate).
pub fn os_random<const N: usize>() -> Result<[u8; N], RandomnessError> {
    let mut bytes = [0u8; N];
    SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| RandomnessError)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_has_documented_layout() {
        let pat = Pat::generate().unwrap();
        let s = pat.expose();
        assert_eq!(s.len(), PAT_LEN);
        assert_eq!(PAT_LEN, 72);
        assert!(s.starts_with(PAT_PREFIX));
        assert_eq!(&s[6..23], pat.id().as_str());
        assert_eq!(pat.secret().expose_bytes(), &s.as_bytes()[23..66]);
    }

    #[test]
    fn checksum_round_trips_for_extremes() {
        for v in [0, 1, 61, 62, u32::MAX, u32::MAX - 1] {
            assert_eq!(decode_checksum(&encode_checksum(v)), Some(v));
        }
    }

    #[test]
    fn checksum_above_u32_is_rejected() {
        assert_eq!(decode_checksum("zzzzzz"), None);
    }

    #[test]
    fn each_error_kind_is_reported() {
        let good = Pat::generate().unwrap().expose().to_owned();
        assert_eq!(
            Pat::parse("ghp_abc").err(),
            Some(PatParseError::MissingPrefix)
        );
        assert_eq!(
            Pat::parse("agpat_abc").err(),
            Some(PatParseError::InvalidLength)
        );
        let mut bad_char = good.clone();
        bad_char.replace_range(10..11, "-");
        assert_eq!(
            Pat::parse(&bad_char).err(),
            Some(PatParseError::InvalidCharacter)
        );
        let mut bad_sum = good.clone();
        let last = bad_sum.pop().unwrap();
        bad_sum.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(
            Pat::parse(&bad_sum).err(),
            Some(PatParseError::InvalidChecksum)
        );
        assert!(Pat::parse(&good).is_ok());
    }

    #[test]
    fn multibyte_input_does_not_panic() {
        let s = format!("{PAT_PREFIX}{}", "é".repeat(33));
        assert_eq!(s.len(), PAT_LEN);
        assert_eq!(Pat::parse(&s).err(), Some(PatParseError::InvalidCharacter));
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let pat = Pat::generate().unwrap();
        let secret = std::str::from_utf8(pat.secret().expose_bytes())
            .unwrap()
            .to_owned();
        for rendered in [
            format!("{pat:?}"),
            format!("{pat}"),
            format!("{:?}", pat.secret()),
        ] {
            assert!(!rendered.contains(&secret), "{rendered}");
            assert!(!rendered.contains(pat.expose()), "{rendered}");
        }
        assert!(format!("{pat:?}").contains(pat.id().as_str()));
    }

    #[test]
    fn token_id_parse_is_strict() {
        assert!(TokenId::parse("0123456789ABCDEFG").is_ok());
        assert_eq!(
            TokenId::parse("short").err(),
            Some(PatParseError::InvalidLength)
        );
        assert_eq!(
            TokenId::parse("0123456789ABCDEF/").err(),
            Some(PatParseError::InvalidCharacter)
        );
    }
}
