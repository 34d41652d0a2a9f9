//! Criterion benchmarks of the authorizer's hot paths: `make bench`.
//!
//! The JWKS and the token store are in-memory answers here so the numbers
//! measure our code and the crypto, not the network. Figures go to BENCHMARKS.md.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark set-up"
)]

use std::collections::HashMap;
use std::sync::Arc;

use authorizer::Authorizer;
use authorizer::config::{JwtConfig, PatConfig};
use authorizer::event::AuthorizerEvent;
use authorizer::jwks::{JwksError, JwksSource, KeyCache};
use authorizer::jwt::JwtVerifier;
use authorizer::pat::{PatVerifier, TokenLookup};
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared::hash::{HashParams, PhcHash, SecretHasher};
use shared::store::{StoreError, TouchOutcome};
use shared::{Pat, SystemClock, TokenId, TokenMeta, TokenRecord, UserId};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Bench";
const EVENT: &str = include_str!("../tests/fixtures/request-event.json");
const DER: &[u8] = include_bytes!("../tests/fixtures/signing.pkcs1.der");

struct StaticJwks;

impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<Vec<u8>, JwksError> {
        Ok(include_bytes!("../tests/fixtures/jwks.json").to_vec())
    }
}

/// In-memory answers standing in for DynamoDB in this micro-benchmark only.
/// The DPoP replay store is a set of spent proof keys.
#[derive(Clone, Default)]
struct InMemory(
    Arc<HashMap<TokenId, TokenRecord>>,
    Arc<std::sync::Mutex<std::collections::HashSet<[u8; 32]>>>,
);

impl TokenLookup for InMemory {
    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.0.get(id).cloned())
    }
    async fn first_use_of_proof(&self, key: &[u8; 32], _until: i64) -> Result<bool, StoreError> {
        Ok(self.1.lock().unwrap().insert(*key))
    }
    async fn touch(
        &self,
        _id: &TokenId,
        _now: i64,
        _sites: &[shared::UseSite],
        _new_ips: &[shared::UseSite],
        _token_expires_at: Option<i64>,
    ) -> Result<TouchOutcome, StoreError> {
        Ok(TouchOutcome::Skipped)
    }
    async fn replace_hash(
        &self,
        _id: &TokenId,
        _old: &PhcHash,
        _new: &PhcHash,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
}

type BenchAuthorizer = Authorizer<StaticJwks, InMemory, SystemClock>;

fn build(store: &InMemory, jwt_cache_ttl_secs: i64, pat_cache_ttl_secs: i64) -> BenchAuthorizer {
    let jwt_cfg = JwtConfig {
        cache_ttl_secs: jwt_cache_ttl_secs,
        ..JwtConfig::for_issuer(ISSUER, "memory://", "bench-client")
    };
    let pat_cfg = PatConfig {
        positive_ttl_secs: pat_cache_ttl_secs,
        negative_ttl_secs: 0,
        max_failures_per_source: 5,
    };
    let hasher = SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN).unwrap();
    Authorizer::new(
        JwtVerifier::new(
            jwt_cfg,
            KeyCache::new(StaticJwks),
            shared::testing::manifest(),
        )
        .unwrap(),
        PatVerifier::new(
            store.clone(),
            hasher,
            pat_cfg,
            300,
            shared::testing::manifest(),
        )
        .unwrap(),
        Arc::new(SystemClock),
        8192,
    )
}

fn event_json(authorization: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    value["headers"]["Authorization"] = serde_json::Value::String(authorization.to_owned());
    value.to_string()
}

fn event(authorization: &str) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    serde_json::from_str(&event_json(authorization)).unwrap()
}

fn jwt(now: i64, jti: usize) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = serde_json::json!({
        "sub": "8c1d5a2e-1111-4000-8000-000000000001", "iss": ISSUER, "client_id": "bench-client",
        "token_use": "access", "iat": now, "exp": now + 3600, "username": "bench", "jti": jti
    });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(DER)).unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = shared::Clock::now(&SystemClock);
    let hasher = SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN).unwrap();
    let pat = Pat::generate().unwrap();
    let record = TokenRecord {
        meta: TokenMeta::issued(
            pat.id().clone(),
            UserId::parse("bench-user").unwrap(),
            "bench",
            shared::testing::manifest()
                .scopes()
                .names(shared::testing::default_scopes()),
            now,
            now + 86_400,
        ),
        hash: hasher.hash(pat.secret()).unwrap(),
    };
    // A second token, bound to a DPoP key.
    let proof_key = shared::dpop::ProofKey::generate(shared::dpop::ProofAlgorithm::Es256).unwrap();
    let bound_pat = Pat::generate().unwrap();
    let mut bound_record = record.clone();
    bound_record.meta.id = bound_pat.id().clone();
    bound_record.meta.dpop_jkt = Some(proof_key.public_jwk().thumbprint());
    bound_record.hash = hasher.hash(bound_pat.secret()).unwrap();
    let store = InMemory(
        Arc::new(HashMap::from([
            (pat.id().clone(), record),
            (bound_pat.id().clone(), bound_record),
        ])),
        Arc::default(),
    );
    let cached = build(&store, 3600, 300);
    let dpop =
        build(&store, 3600, 300).with_dpop(Some(authorizer::dpop::DpopSettings::new(Vec::new())));
    // The fixture event's URL (its method ARN's stage on the default domain).
    let url = "https://abcdef123.execute-api.us-east-1.amazonaws.com/test/docs";
    let dpop_event = |iat: i64| {
        let mut value: serde_json::Value = serde_json::from_str(EVENT).unwrap();
        value["headers"]["Authorization"] =
            serde_json::Value::String(format!("DPoP {}", bound_pat.expose()));
        value["headers"]["DPoP"] = serde_json::Value::String(
            proof_key
                .proof("GET", url, bound_pat.expose(), iat)
                .unwrap(),
        );
        value.to_string()
    };
    let uncached = build(&store, 0, 0);

    let token = jwt(now, 0);
    let jwt_event = event(&format!("Bearer {token}"));
    let pat_event = event(&format!("Bearer {}", pat.expose()));
    let mut junk = pat.expose().to_owned();
    junk.pop();
    junk.push('!');
    let junk_event = event(&format!("Bearer {junk}"));
    // Warm the JWKS of both authorizers and the caches of `cached`.
    assert!(rt.block_on(cached.decide(&jwt_event)).is_ok());
    assert!(rt.block_on(uncached.decide(&jwt_event)).is_ok());
    assert!(rt.block_on(cached.decide(&pat_event)).is_ok());

    // The decision as the Lambda makes it (`Authorizer::decision`), from a
    // parsed event to the shared answer it serialises.
    c.bench_function("jwt_first_seen_decision", |b| {
        b.iter(|| rt.block_on(uncached.decision(&jwt_event)).unwrap())
    });
    c.bench_function("jwt_seen_decision", |b| {
        b.iter(|| rt.block_on(cached.decision(&jwt_event)).unwrap())
    });
    c.bench_function("pat_warm_decision", |b| {
        b.iter(|| rt.block_on(cached.decision(&pat_event)).unwrap())
    });
    // What an IP allow-list adds to every PAT decision, warm ones included:
    // the worst case, 16 networks and an address in the last one.
    let networks: Vec<ipnet::IpNet> = (0..16)
        .map(|i| shared::record::parse_cidr(&format!("10.{i}.0.0/16")).unwrap())
        .collect();
    c.bench_function("allow_list_check_16_networks", |b| {
        b.iter(|| shared::record::allows_address(&networks, std::hint::black_box("10.15.7.9")))
    });
    c.bench_function("pat_junk_rejection", |b| {
        b.iter(|| rt.block_on(cached.decision(&junk_event)).unwrap_err())
    });
    let arn =
        authorizer::policy::MethodArn::parse(jwt_event.method_arn.as_deref().unwrap()).unwrap();
    let manifest = shared::testing::manifest();
    // Part of every cold start: parsing and validating the manifest,
    // including the wildcard analysis that keeps policies exact.
    let fixture_text = std::fs::read_to_string(shared::testing::MANIFEST_PATH).unwrap();
    c.bench_function("manifest_load_fixture_47_routes", |b| {
        b.iter(|| shared::Manifest::parse(&fixture_text, "adopter.toml").unwrap())
    });
    let large_text = shared::testing::synthetic_manifest(100);
    c.bench_function("manifest_load_synthetic_500_routes", |b| {
        b.iter(|| shared::Manifest::parse(&large_text, "synthetic.toml").unwrap())
    });
    c.bench_function("policy_build_fixture_all_scopes", |b| {
        b.iter(|| {
            authorizer::policy::build(&arn, manifest.routes(), shared::testing::default_scopes())
        })
    });
    let policies = authorizer::policy::PolicyCache::new(Arc::clone(&manifest));
    c.bench_function("policy_cached_fixture_all_scopes", |b| {
        b.iter(|| {
            policies
                .get(&arn, shared::testing::default_scopes())
                .unwrap()
        })
    });
    let keys = authorizer::jwks::parse_jwks(include_bytes!("../tests/fixtures/jwks.json")).unwrap();
    let decoding = keys.get("test-key-1").unwrap().clone();
    let mut bare = jsonwebtoken::Validation::new(Algorithm::RS256);
    bare.validate_exp = false;
    bare.required_spec_claims.clear();
    // What a seen JWT's decision cannot avoid: its cache key, a keyed hash
    // of the whole token (a per-process random key, as the verifier's).
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7u8; 32]);
    c.bench_function("jwt_cache_key_hmac_sha256", |b| {
        b.iter(|| aws_lc_rs::hmac::sign(&hmac_key, std::hint::black_box(token.as_bytes())))
    });
    c.bench_function("bare_rs256_verify_floor", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &bare).unwrap())
    });

    // What the Lambda does with each invocation's bytes: the lean event,
    // the decision, the response JSON.
    let decide_json = |a: &BenchAuthorizer, json: &str| {
        let event: AuthorizerEvent = serde_json::from_str(json).unwrap();
        match rt.block_on(a.decision(&event)) {
            Ok(d) => serde_json::to_vec(&d).unwrap(),
            Err(e) => e.to_string().into_bytes(),
        }
    };
    let jwt_json = event_json(&format!("Bearer {token}"));
    let pat_json = event_json(&format!("Bearer {}", pat.expose()));
    c.bench_function("jwt_decision_warm_jwks_event_to_json", |b| {
        b.iter(|| decide_json(&uncached, &jwt_json))
    });
    c.bench_function("jwt_seen_decision_event_to_json", |b| {
        b.iter(|| decide_json(&cached, &jwt_json))
    });
    c.bench_function("pat_decision_warm_cache_event_to_json", |b| {
        b.iter(|| decide_json(&cached, &pat_json))
    });
    // A bound token's warm decision: the same, plus the proof's checks (its
    // ES256 signature above all) and the replay store's answer (here an
    // in-memory set; deployed, a DynamoDB conditional write, see
    // BENCHMARKS.md). Each iteration a fresh proof, made outside the timing.
    // Now, not the set-up's `now`: the benchmarks above took minutes, and a
    // proof is good for 60 s.
    let first: AuthorizerEvent =
        serde_json::from_str(&dpop_event(shared::Clock::now(&SystemClock))).unwrap();
    assert!(rt.block_on(dpop.decision(&first)).is_ok());
    c.bench_function("pat_dpop_decision_warm_cache_event_to_json", |b| {
        b.iter_batched(
            || dpop_event(shared::Clock::now(&SystemClock)),
            |json| {
                let out = decide_json(&dpop, &json);
                assert!(out.starts_with(b"{"), "allowed");
                out
            },
            BatchSize::SmallInput,
        )
    });
    let proof_only = proof_key
        .proof("GET", url, bound_pat.expose(), now)
        .unwrap();
    let urls = [shared::dpop::normalise_url(url).unwrap()];
    c.bench_function("dpop_proof_check_es256", |b| {
        b.iter(|| {
            shared::dpop::check_proof(
                std::hint::black_box(&proof_only),
                &shared::dpop::ProofRequirements {
                    method: "GET",
                    urls: &urls,
                    access_token: bound_pat.expose(),
                    now,
                    max_age_secs: 3600,
                    max_skew_secs: 5,
                },
            )
            .unwrap()
        })
    });

    let mut slow = c.benchmark_group("argon2");
    slow.sample_size(10);
    // A fresh instance each time: an instance remembers a token it verified,
    // so only a new one pays for argon2 (a cold start, or the fleet herd).
    slow.bench_function("pat_cold_decision_argon2", |b| {
        b.iter_batched(
            || build(&store, 0, 0),
            |fresh| rt.block_on(fresh.decision(&pat_event)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    slow.finish();
}

/// The cost of the decision metrics on the hot path: the hand-off of one
/// record to the EMF writer thread (accepted, and refused on a full channel),
/// a whole warm decision with metrics on, and, for scale, what the writer
/// thread spends rendering one line off the hot path.
fn metrics_benches(c: &mut Criterion) {
    use std::time::{Duration, Instant};

    use authorizer::metrics::{CacheUse, Decision, DecisionMetrics, Method, Outcome};
    use shared::emf::{EmfRecord, Namespace};

    let record = |m: &DecisionMetrics| {
        m.record(
            Method::Jwt,
            Outcome::Allow,
            Duration::from_micros(20),
            CacheUse::Hit,
            0,
            0,
        )
    };
    // Timed in chunks below the channel's capacity, waiting (untimed) for the
    // writer between chunks, so every timed hand-off is accepted.
    let accepting =
        DecisionMetrics::to_writer(Namespace::default(), 1024, std::io::sink()).unwrap();
    c.bench_function("metrics_record_handoff", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(512);
                assert!(accepting.sink().settle(Duration::from_secs(10)));
                let started = Instant::now();
                for _ in 0..chunk {
                    assert!(record(&accepting));
                }
                total += started.elapsed();
                left -= chunk;
            }
            total
        })
    });
    // One record at a time to a writer that is idle (blocked on the channel),
    // as in Lambda, where one invocation makes one decision: the hand-off
    // then includes waking the writer thread.
    c.bench_function("metrics_record_handoff_idle_writer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                assert!(accepting.sink().settle(Duration::from_secs(10)));
                let started = Instant::now();
                assert!(record(&accepting));
                total += started.elapsed();
            }
            total
        })
    });
    // A writer that never writes: the channel stays full, every hand-off is
    // a counted drop. What a decision pays when stdout is stuck.
    struct Stuck;
    impl std::io::Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            loop {
                std::thread::park();
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let full = DecisionMetrics::to_writer(Namespace::default(), 1, Stuck).unwrap();
    // Fill until refused, give the writer time to take one record and block
    // on it, and fill the freed slot again: from then on the channel stays full.
    for _ in 0..3 {
        while record(&full) {}
        std::thread::sleep(Duration::from_millis(50));
    }
    c.bench_function("metrics_record_dropped_full_channel", |b| {
        b.iter(|| assert!(!record(&full)))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = shared::Clock::now(&SystemClock);
    let store = InMemory::default();
    let plain = build(&store, 3600, 300);
    let metered = build(&store, 3600, 300).with_metrics(
        DecisionMetrics::to_writer(Namespace::default(), 1024, std::io::sink()).unwrap(),
    );
    let jwt_event = event(&format!("Bearer {}", jwt(now, 1)));
    assert!(rt.block_on(plain.decide(&jwt_event)).is_ok());
    assert!(rt.block_on(metered.decide(&jwt_event)).is_ok());
    // Side by side: the difference is the whole per-decision metrics cost
    // (two clock reads, two atomics, the hand-off).
    c.bench_function("jwt_seen_decision_metrics_off", |b| {
        b.iter(|| rt.block_on(plain.decision(&jwt_event)).unwrap())
    });
    c.bench_function("jwt_seen_decision_metrics_on", |b| {
        b.iter(|| rt.block_on(metered.decision(&jwt_event)).unwrap())
    });

    let decision = Decision {
        timestamp_ms: 1_900_000_000_000,
        method: Method::Pat,
        outcome: Outcome::Unauthorized,
        latency: Duration::from_micros(1234),
        cache: CacheUse::Miss,
        argon2_evaluations: 1,
        jwks_fetches: 0,
    };
    let namespace = Namespace::parse("agpat/prod").unwrap();
    c.bench_function("metrics_render_line_writer_thread", |b| {
        b.iter(|| decision.to_line(&namespace))
    });
}

/// `criterion_group!` generates an undocumented public function.
mod group {
    use super::{Criterion, benches, criterion_group, metrics_benches};
    criterion_group! {
        name = decision;
        config = Criterion::default();
        targets = benches, metrics_benches
    }
}
criterion_main!(group::decision);
