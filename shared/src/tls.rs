//! Which certificate authorities a Lambda trusts for its own HTTPS calls.
//!
//! Reading the platform's certificate store costs about 5 ms of every cold
//! start (one file per root, parsed, once per HTTPS client: BENCHMARKS.md).
//! An authorizer talking only to AWS (DynamoDB, a Cognito user pool's JWKS)
//! needs only Amazon Trust Services' roots, compiled in: faster, and a
//! narrower trust than every root the host carries.

use crate::config::{ConfigError, Env, optional};

/// Amazon Trust Services' root certificates (Amazon Root CA 1 to 4 and
/// Starfield Services Root G2), the roots AWS endpoints chain to in the
/// `aws` partition.
pub const AMAZON_TRUST_SERVICES_PEM: &str = include_str!("../certs/amazon-trust-services.pem");

/// The roots an HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The platform's certificate store, read when the client is built.
    System,
    /// Only [`AMAZON_TRUST_SERVICES_PEM`], compiled in.
    Amazon,
}

impl TrustRoots {
    /// `AGPAT_TLS_ROOTS` (`amazon` or `system`); unset, `default`.
    ///
    /// # Errors
    /// Any other value.
    pub fn from_env(env: &dyn Env, default: TrustRoots) -> Result<Self, ConfigError> {
        match optional(env, "AGPAT_TLS_ROOTS").as_deref().map(str::trim) {
            None => Ok(default),
            Some("amazon") => Ok(Self::Amazon),
            Some("system") => Ok(Self::System),
            Some(_) => Err(ConfigError {
                var: "AGPAT_TLS_ROOTS",
                expected: "amazon or system",
            }),
        }
    }

    /// The default for a service whose only non-AWS endpoint is `jwks_url`:
    /// Amazon's roots for a Cognito user pool in the commercial partition
    /// (`https://cognito-idp.<region>.amazonaws.com/…`, GovCloud and ISO
    /// regions excluded), else the system's (another issuer's JWKS, or a
    /// partition whose endpoints may chain elsewhere).
    pub fn default_for_jwks(jwks_url: &str) -> Self {
        let host = jwks_url
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or_default();
        let region = host
            .strip_prefix("cognito-idp.")
            .and_then(|h| h.strip_suffix(".amazonaws.com"));
        match region {
            Some(r)
                if !r.is_empty()
                    && !r.starts_with("us-gov-")
                    && !r.starts_with("us-iso")
                    && !r.starts_with("cn-")
                    && !r.starts_with("eusc-")
                    && r.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Self::Amazon
            }
            _ => Self::System,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_in_the_commercial_partition_defaults_to_amazons_roots() {
        for url in [
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC/.well-known/jwks.json",
            "https://cognito-idp.eu-west-3.amazonaws.com/eu-west-3_x/.well-known/jwks.json",
        ] {
            assert_eq!(
                TrustRoots::default_for_jwks(url),
                TrustRoots::Amazon,
                "{url}"
            );
        }
        for url in [
            "https://cognito-idp.us-gov-west-1.amazonaws.com/p/.well-known/jwks.json",
            "https://cognito-idp.cn-north-1.amazonaws.com/p/.well-known/jwks.json",
            "https://a@cognito-idp.us-east-1.amazonaws.com/p/jwks.json",
            "https://COGNITO-IDP.us-east-1.amazonaws.com/p/jwks.json",
            "https://cognito-idp.cn-north-1.amazonaws.com.cn/p/.well-known/jwks.json",
            "https://cognito-idp.us-east-1.amazonaws.com.evil.example/jwks.json",
            "https://login.example.com/.well-known/jwks.json",
            "http://cognito-idp.us-east-1.amazonaws.com/p/jwks.json",
            "http://127.0.0.1:9000/jwks.json",
            "",
        ] {
            assert_eq!(
                TrustRoots::default_for_jwks(url),
                TrustRoots::System,
                "{url}"
            );
        }
    }

    #[test]
    fn the_setting_overrides_the_default_and_refuses_anything_else() {
        let env = |v: &str| {
            std::collections::HashMap::from([("AGPAT_TLS_ROOTS".to_owned(), v.to_owned())])
        };
        let none: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        assert_eq!(
            TrustRoots::from_env(&none, TrustRoots::Amazon),
            Ok(TrustRoots::Amazon)
        );
        assert_eq!(
            TrustRoots::from_env(&env("system"), TrustRoots::Amazon),
            Ok(TrustRoots::System)
        );
        assert_eq!(
            TrustRoots::from_env(&env("amazon"), TrustRoots::System),
            Ok(TrustRoots::Amazon)
        );
        assert_eq!(
            TrustRoots::from_env(&env("all"), TrustRoots::System)
                .unwrap_err()
                .var,
            "AGPAT_TLS_ROOTS"
        );
    }
}
