//! The PAT negative corpus, bit-flip properties, arbitrary events, the fuzz
//! smoke, revoke racing use, and failure timings.

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use shared::pat::PAT_LEN;
use shared::{Pat, UserId};

use crate::support::*;

const OWNER: &str = "8c1d5a2e-3333-4000-8000-000000000003";

fn owner() -> UserId {
    UserId::parse(OWNER).unwrap()
}

#[tokio::test]
async fn every_pat_negative_vector_is_unauthorized() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.pat.negative_ttl_secs = 0; // every vector reaches the full check
    builder.pat.positive_ttl_secs = 0;
    let h = builder.build().await;
    let live = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let good = live.expose().to_owned();
    let expired_by_one =
        issue_pat(&h.store, OWNER, shared::testing::default_scopes(), T0 - 1).await;
    let expiring_now = issue_pat(&h.store, OWNER, shared::testing::default_scopes(), T0).await;
    let revoked = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    h.store
        .revoke(
            &owner(),
            revoked.id(),
            T0 - 5,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    let unknown = Pat::generate().unwrap();
    let wrong_secret = shared::testing::token_with_secret_of(live.id(), &Pat::generate().unwrap());

    let replace = |at: usize, with: &str| format!("{}{with}{}", &good[..at], &good[at + 1..]);
    let other = |c: &str| if c == "a" { "b" } else { "a" };
    let vectors: Vec<(&str, String)> = vec![
        ("prefix character changed", replace(0, "b")),
        ("prefix separator changed", replace(5, "-")),
        ("upper-case prefix", good.replacen("agpat_", "AGPAT_", 1)),
        ("id character changed", replace(10, other(&good[10..11]))),
        (
            "secret character changed",
            replace(40, other(&good[40..41])),
        ),
        (
            "checksum character changed",
            replace(PAT_LEN - 1, other(&good[PAT_LEN - 1..])),
        ),
        ("truncated by one", good[..PAT_LEN - 1].to_owned()),
        ("truncated to the prefix", "agpat_".to_owned()),
        ("extended by one", format!("{good}a")),
        ("doubled", format!("{good}{good}")),
        (
            "another prefix (GitHub)",
            good.replacen("agpat_", "ghp_", 1),
        ),
        (
            "another prefix (GitLab)",
            good.replacen("agpat_", "glpat-", 1),
        ),
        ("whitespace inside", replace(30, " ")),
        ("homoglyph", replace(20, "а")),
        ("NUL byte", replace(25, "\u{0}")),
        ("percent-encoded character", replace(15, "%")),
        ("unknown id", unknown.expose().to_owned()),
        ("right id, wrong secret", wrong_secret),
        ("expired by one second", expired_by_one.expose().to_owned()),
        ("expiring this second", expiring_now.expose().to_owned()),
        ("revoked", revoked.expose().to_owned()),
    ];
    for (name, token) in &vectors {
        assert_refused(&h, &bearer(token), name).await;
    }

    // Rotation: the rotated-out token works during its overlap, never after.
    let rotated = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let successor = issue_record(OWNER, T0 + 86_400);
    let outcome = h
        .store
        .rotate(&owner(), rotated.id(), &successor, 60, T0 - 10)
        .await
        .unwrap();
    assert_eq!(outcome, shared::store::RotateOutcome::Rotated);
    assert!(
        h.decide(Some(&bearer(rotated.expose()))).await.is_ok(),
        "during overlap"
    );
    h.clock.set(T0 + 50);
    assert_unauthorized(
        h.decide(Some(&bearer(rotated.expose()))).await,
        "rotated out after overlap",
    );
    assert!(
        h.decide(Some(&bearer(&good))).await.is_ok(),
        "the genuine token still works"
    );

    let total = vectors.len() + 1;
    assert!(total >= 20);
    println!("PAT negative corpus: {total} vectors, all Unauthorized (plus 1 overlap allow)");
}

fn issue_record(owner_id: &str, expires_at: i64) -> shared::TokenRecord {
    let pat = Pat::generate().unwrap();
    shared::TokenRecord {
        meta: shared::TokenMeta::issued(
            pat.id().clone(),
            UserId::parse(owner_id).unwrap(),
            "successor",
            shared::testing::manifest()
                .scopes()
                .names(shared::testing::default_scopes()),
            T0 - 10,
            expires_at,
        ),
        hash: hasher().hash(pat.secret()).unwrap(),
    }
}

/// Deterministic pseudo-random sequence for sampling bit positions.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

fn flip(token: &str, bit: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[bit / 8] ^= 1 << (bit % 8);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn a_single_bit_flip_never_authorizes_a_jwt() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let token = sign(&access_claims());
    assert!(h.decide(Some(&bearer(&token))).await.is_ok());
    let cases = shared::testing::scale(2_000, 100_000);
    let bits = token.len() * 8;
    let mut seed = 0x5eed_u64;
    for i in 0..cases {
        let bit = if cases >= bits {
            i % bits
        } else {
            usize::try_from(lcg(&mut seed)).unwrap() % bits
        };
        let flipped = flip(&token, bit);
        if flipped == token {
            continue;
        }
        let allowed = matches!(h.decide_raw(&bearer(&flipped)).await, Some(Ok(_)));
        assert!(!allowed, "bit {bit} flipped still authorized");
    }
    println!("JWT bit flips: {cases} cases, none authorized");
}

#[tokio::test]
async fn a_single_bit_flip_never_authorizes_a_pat() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    assert!(h.decide(Some(&bearer(pat.expose()))).await.is_ok());
    let before = h.dynamo_calls.get();
    let cases = shared::testing::scale(2_000, 100_000);
    let bits = PAT_LEN * 8;
    for i in 0..cases {
        let flipped = flip(pat.expose(), i % bits);
        let allowed = matches!(h.decide_raw(&bearer(&flipped)).await, Some(Ok(_)));
        assert!(!allowed, "bit {} flipped still authorized", i % bits);
    }
    assert_eq!(
        h.dynamo_calls.get(),
        before,
        "no flipped token reached DynamoDB"
    );
    println!("PAT bit flips: {cases} cases, none authorized, 0 DynamoDB calls");
}

#[test]
fn arbitrary_authorizer_events_never_panic_and_never_allow() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (h, _jwks) = rt.block_on(async {
        let jwks = JwksServer::start(JWKS).await;
        (HarnessBuilder::new(&jwks.url).build().await, jwks)
    });
    let cases = u32::try_from(shared::testing::scale(1_000, 10_000)).unwrap();
    let credential = prop_oneof![
        any::<String>(),
        "[ -~]{0,200}",
        "agpat_[0-9A-Za-z]{66}",
        "eyJ[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,80}",
    ];
    let scheme = prop_oneof![
        Just("Bearer ".to_owned()),
        Just("bearer ".to_owned()),
        Just("".to_owned()),
        Just("Basic ".to_owned()),
        "[ -~]{0,10}"
    ];
    let method_arn = prop_oneof![
        Just(METHOD_ARN.to_owned()),
        any::<String>(),
        "arn:aws:execute-api:[ -~]{0,60}"
    ];
    let extra = proptest::collection::hash_map("[a-zA-Z-]{1,20}", "[ -~]{0,40}", 0..5);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(scheme, credential, method_arn, extra), |(scheme, credential, arn, extra)| {
            let mut headers = serde_json::Map::new();
            for (k, v) in extra {
                headers.insert(k, json!(v));
            }
            headers.insert("Authorization".into(), json!(format!("{scheme}{credential}")));
            let event = json!({"type": "REQUEST", "methodArn": arn, "headers": headers, "requestContext": {}});
            // The Lambda's lean event accepts more than the full type (it
            // skips headers it does not read): every event it accepts too.
            if let Ok(lean) = serde_json::from_value::<authorizer::event::AuthorizerEvent>(event.clone()) {
                let result = rt.block_on(h.authorizer.decision(&lean));
                prop_assert!(result.is_err(), "allowed without a valid credential (lean event)");
            }
            let Ok(event) = serde_json::from_value::<aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest>(event) else {
                return Ok(()); // not even an API Gateway event
            };
            let result = rt.block_on(h.authorizer.decide(&event));
            prop_assert!(result.is_err(), "allowed without a valid credential");
            Ok(())
        })
        .unwrap();
    println!("arbitrary authorizer events: {cases} cases, none allowed, no panic");
}

/// Stable-toolchain fuzz smoke for the two pre-parsers (cargo-fuzz targets in
/// `fuzz/` run the same functions for as long as you like).
#[test]
fn fuzz_smoke_pat_parser_and_jwt_pre_parser() {
    let cases = u32::try_from(shared::testing::scale(10_000, 1_000_000)).unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let input = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "agpat_[ -~]{0,80}",
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_.=+/-]{0,60}\\.[A-Za-z0-9_-]{0,60}",
    ];
    runner
        .run(&input, |s| {
            let _ = Pat::parse(&s);
            let _ = authorizer::jwt::pre_parse(&s);
            Ok(())
        })
        .unwrap();
    println!("fuzz smoke: {cases} inputs through Pat::parse and jwt::pre_parse");
}

#[tokio::test]
async fn revoke_racing_use_never_outlives_the_bound() {
    let jwks = JwksServer::start(JWKS).await;
    let h = std::sync::Arc::new(HarnessBuilder::new(&jwks.url).build().await);
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let token = bearer(pat.expose());
    let users: Vec<_> = (0..40)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.decide(Some(&token)).await.map(|_| ()) })
        })
        .collect();
    assert_eq!(
        h.store
            .revoke(&owner(), pat.id(), T0, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        shared::store::RevokeOutcome::Revoked
    );
    for user in users {
        // Before the revocation is visible either answer is legitimate; never an error.
        let result = user.await.unwrap();
        assert!(matches!(
            result,
            Ok(()) | Err(authorizer::AuthError::Unauthorized)
        ));
    }
    h.clock.set(T0 + pat_config().positive_ttl_secs);
    for _ in 0..20 {
        assert_unauthorized(h.decide(Some(&token)).await, "after the bound");
    }
    let stored = h.store.get(pat.id()).await.unwrap().unwrap();
    assert_eq!(
        stored.meta.revoked_at,
        Some(T0),
        "the revocation was not lost"
    );
}

fn stats(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = stats(a);
    let (mb, vb) = stats(b);
    (ma - mb) / (va / a.len() as f64 + vb / b.len() as f64).sqrt()
}

/// Failure answers are byte-identical; their timings are measured and reported
/// (see threat-model.md, "Measured failure timings").
#[tokio::test]
async fn failure_timings_are_measured_with_a_welch_t_statistic() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.pat.negative_ttl_secs = 0;
    builder.pat.positive_ttl_secs = 0;
    let h = builder.build().await;
    let n = shared::testing::scale(30, 300);
    let live = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let expired = issue_pat(&h.store, OWNER, shared::testing::default_scopes(), T0 - 1).await;
    let revoked = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    h.store
        .revoke(
            &owner(),
            revoked.id(),
            T0 - 1,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    let mut cases: Vec<(&str, Vec<String>)> = vec![
        (
            "unknown id",
            (0..n)
                .map(|_| Pat::generate().unwrap().expose().to_owned())
                .collect(),
        ),
        (
            "wrong secret",
            (0..n)
                .map(|_| {
                    shared::testing::token_with_secret_of(live.id(), &Pat::generate().unwrap())
                })
                .collect(),
        ),
        ("expired", vec![expired.expose().to_owned(); n]),
        ("revoked", vec![revoked.expose().to_owned(); n]),
    ];
    let mut timings: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut answers = std::collections::HashSet::new();
    for (name, tokens) in cases.drain(..) {
        let mut samples = Vec::with_capacity(n);
        for token in tokens {
            let started = Instant::now();
            let result = h.decide(Some(&bearer(&token))).await;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            let err = result.err().unwrap();
            answers.insert(format!(
                "{err}|{}",
                lambda_runtime::Diagnostic::from(err).error_type
            ));
        }
        timings.push((name, samples));
    }
    assert_eq!(answers.len(), 1, "failure answers differ: {answers:?}");
    println!("failure timings over {n} decisions each (ms, debug build, moto):");
    for (name, samples) in &timings {
        let (mean, var) = stats(samples);
        println!("  {name:<13} mean {mean:8.3}  sd {:8.3}", var.sqrt());
    }
    let base = &timings[0].1;
    for (name, samples) in &timings[1..] {
        println!(
            "  Welch t (unknown id vs {name}): {:8.2}",
            welch_t(base, samples)
        );
    }
}
