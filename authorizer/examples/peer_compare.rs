//! Peer comparison, Rust side: signs `N` Cognito-style access tokens with the
//! test key, writes them and the JWKS to `OUT_DIR` for the aws-jwt-verify
//! script, and measures our own decisions per second on one core for the same
//! tokens: first seen (full verification) and seen again (verified cache).
//!
//! Usage: `cargo run --release -p authorizer --example peer_compare -- OUT_DIR N`

use std::time::Instant;

use anyhow::anyhow;
use authorizer::config::JwtConfig;
use authorizer::jwks::{JwksError, JwksSource, KeyCache};
use authorizer::jwt::JwtVerifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared::{Clock, SystemClock};

const POOL: &str = "us-east-1_BenchPool";
const CLIENT: &str = "benchclient";
const JWKS: &[u8] = include_bytes!("../tests/fixtures/jwks.json");

struct StaticJwks;

impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<Vec<u8>, JwksError> {
        Ok(JWKS.to_vec())
    }
}

fn verifier(cache_ttl_secs: i64) -> anyhow::Result<JwtVerifier<StaticJwks>> {
    let cfg = JwtConfig {
        cache_ttl_secs,
        ..JwtConfig::for_issuer(
            format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}"),
            "memory://",
            CLIENT,
        )
    };
    Ok(JwtVerifier::new(
        cfg,
        KeyCache::new(StaticJwks),
        shared::testing::manifest(),
    )?)
}

async fn rate(
    v: &JwtVerifier<StaticJwks>,
    tokens: &[String],
    rounds: usize,
    now: i64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..rounds {
        for t in tokens {
            v.verify(t, now).await.map_err(|e| anyhow!("{e:?}"))?;
        }
    }
    Ok((rounds * tokens.len()) as f64 / started.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/bench-peer".into());
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(2000);
    std::fs::create_dir_all(&out)?;
    let now = SystemClock.now();
    let key = EncodingKey::from_rsa_der(include_bytes!("../tests/fixtures/signing.pkcs1.der"));
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let issuer = format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}");
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let claims = serde_json::json!({
                "sub": "8c1d5a2e-1111-4000-8000-000000000001", "iss": issuer, "client_id": CLIENT,
                "token_use": "access", "scope": "aws.cognito.signin.user.admin", "auth_time": now,
                "iat": now, "exp": now + 3600, "jti": format!("bench-{i}"), "username": "bench"
            });
            jsonwebtoken::encode(&header, &claims, &key)
        })
        .collect::<Result<_, _>>()?;
    std::fs::write(format!("{out}/tokens.json"), serde_json::to_vec(&tokens)?)?;
    std::fs::write(format!("{out}/jwks.json"), JWKS)?;
    let config = serde_json::json!({"userPoolId": POOL, "clientId": CLIENT});
    std::fs::write(format!("{out}/config.json"), serde_json::to_vec(&config)?)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cold = verifier(0)?;
        let warm = verifier(3600)?;
        rate(&cold, &tokens, 1, now).await?; // warm-up: JWKS, allocator, branch predictors
        rate(&warm, &tokens, 1, now).await?; // fills the verified cache
        let first_seen = rate(&cold, &tokens, 3, now).await?;
        let seen = rate(&warm, &tokens, 50, now).await?;
        let report = serde_json::json!({
            "implementation": "agpat (Rust)",
            "first_seen_per_s": first_seen.round(),
            "seen_per_s": seen.round()
        });
        println!("{report}");
        Ok(())
    })
}
