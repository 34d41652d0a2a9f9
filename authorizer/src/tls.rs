//! The roots the authorizer's HTTPS clients trust (`AGPAT_TLS_ROOTS`).
//!
//! With [`TrustRoots::Amazon`] (the default for a Cognito user pool in the
//! commercial partition) the DynamoDB client and the JWKS fetch trust only
//! Amazon Trust Services' roots, compiled in: no certificate store is read
//! from disk at cold start (about 5 ms of it, measured in BENCHMARKS.md), and
//! no other authority can vouch for DynamoDB or Cognito.

use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// The SDK's shared HTTP client type.
pub type SharedHttpClient = aws_sdk_dynamodb::config::SharedHttpClient;
use shared::tls::AMAZON_TRUST_SERVICES_PEM;
pub use shared::tls::TrustRoots;

/// The HTTP client the AWS SDK should use for `roots`: `None` for the
/// system's store (the SDK's default client), else one trusting only
/// Amazon's roots.
///
/// # Errors
/// If the TLS context cannot be built. (The bundle itself is parsed when a
/// client is built from this: a test builds one.)
pub fn sdk_http_client(roots: TrustRoots) -> anyhow::Result<Option<SharedHttpClient>> {
    match roots {
        TrustRoots::System => Ok(None),
        TrustRoots::Amazon => {
            let context = TlsContext::builder()
                .with_trust_store(
                    TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM),
                )
                .build()?;
            Ok(Some(
                Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::AwsLc,
                    ))
                    .tls_context(context)
                    .build_https(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Amazon Trust Services' published SHA-256 fingerprints (Amazon Root
    /// CA 1 to 4, Starfield Services Root G2): a bundle that changes
    /// without this list changing fails here.
    const FINGERPRINTS: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
    ];

    #[test]
    fn the_amazon_bundle_holds_exactly_the_five_published_roots() {
        let mut found = Vec::new();
        let mut body = String::new();
        let mut inside = false;
        for line in AMAZON_TRUST_SERVICES_PEM.lines() {
            match line {
                "-----BEGIN CERTIFICATE-----" => inside = true,
                "-----END CERTIFICATE-----" => {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(&body)
                        .unwrap();
                    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
                    found.push(
                        digest
                            .as_ref()
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                    );
                    body.clear();
                    inside = false;
                }
                l if inside => body.push_str(l),
                _ => {}
            }
        }
        assert_eq!(found, FINGERPRINTS);
    }

    #[test]
    fn both_clients_build_with_amazons_roots() {
        let http = sdk_http_client(TrustRoots::Amazon).unwrap().unwrap();
        // Building a client parses the bundle (a bad one would panic here).
        let conf = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .http_client(http)
            .build();
        let _client = aws_sdk_dynamodb::Client::from_conf(conf);
        assert!(sdk_http_client(TrustRoots::System).unwrap().is_none());
        assert!(
            crate::jwks::HttpJwks::trusting(
                "https://cognito-idp.us-east-1.amazonaws.com/p/.well-known/jwks.json".into(),
                TrustRoots::Amazon
            )
            .is_ok()
        );
    }
}
