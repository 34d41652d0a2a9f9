//! Sender-constrained PATs (DPoP, RFC 9449; issue #18) in the authorizer,
//! on moto: a bound token is accepted only with a fresh proof from its key,
//! on every decision including the in-process cache's; a `jti` is spent
//! once across instances; the replay store failing fails closed.

use authorizer::dpop::DpopSettings;
use authorizer::{AuthError, AuthorizerResponse};
use serde_json::{Value, json};
use shared::Pat;
use shared::dpop::{ProofAlgorithm, ProofKey, access_token_hash};

use crate::support::*;

/// The fixture event's URL: its method ARN's stage on the default domain.
const URL: &str = "https://abcdef123.execute-api.us-east-1.amazonaws.com/test/docs";

fn dpop_on() -> Option<DpopSettings> {
    Some(DpopSettings::new(vec!["https://api.example.com/v1".into()]))
}

async fn harness() -> (Harness, JwksServer) {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.dpop = dpop_on();
    (builder.build().await, jwks)
}

async fn bound_pat(h: &Harness, key: &ProofKey) -> Pat {
    let jkt = key.public_jwk().thumbprint();
    issue_pat_with(
        &h.store,
        "user-1",
        shared::testing::default_scopes(),
        T0 + 600,
        |m| {
            m.dpop_jkt = Some(jkt);
        },
    )
    .await
}

/// The fixture event with this `Authorization` and these `DPoP` values, as
/// API Gateway sends them (last value in `headers`, all in `multiValueHeaders`).
fn dpop_event(authorization: &str, proofs: &[&str]) -> Value {
    let mut event = event_json(Some(authorization)).unwrap();
    if let Some(last) = proofs.last() {
        event["headers"]["DPoP"] = json!(last);
        event["multiValueHeaders"]["DPoP"] = json!(proofs);
    }
    event
}

async fn decide(
    h: &Harness,
    authorization: &str,
    proofs: &[&str],
) -> Result<AuthorizerResponse, AuthError> {
    h.decide_json(dpop_event(authorization, proofs)).await
}

fn scheme(token: &Pat) -> String {
    format!("DPoP {}", token.expose())
}

#[tokio::test]
async fn a_bound_token_needs_a_fresh_proof_from_its_key_on_every_decision() {
    let (h, _jwks) = harness().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&h, &key).await;
    let proof = || key.proof("GET", URL, pat.expose(), T0).unwrap();
    // Cold, then warm (the decision cache): each with its own proof, and
    // the context names the key the request proved possession of.
    for case in ["cold", "warm", "warm again"] {
        let allowed = decide(&h, &scheme(&pat), &[&proof()]).await;
        let context = allowed.unwrap_or_else(|e| panic!("{case}: {e:?}")).context;
        assert_eq!(
            context.dpop_jkt,
            key.public_jwk().thumbprint().as_str(),
            "{case}"
        );
    }
    assert_eq!(h.argon2_runs(), 1);
    // Warm and without a proof, or as a bearer token, or replayed.
    assert_unauthorized(decide(&h, &scheme(&pat), &[]).await, "no proof");
    assert_unauthorized(decide(&h, &bearer(pat.expose()), &[]).await, "as Bearer");
    assert_unauthorized(
        decide(&h, &bearer(pat.expose()), &[&proof()]).await,
        "as Bearer with a proof",
    );
    let once = proof();
    assert!(decide(&h, &scheme(&pat), &[&once]).await.is_ok());
    // A replay to the instance that spent the proof costs no request.
    let calls = h.dynamo_calls.get();
    assert_unauthorized(decide(&h, &scheme(&pat), &[&once]).await, "replayed");
    assert_eq!(
        h.dynamo_calls.get(),
        calls,
        "refused from this instance's memory"
    );
    // The custom domain's URL works too; another is refused.
    let custom = key
        .proof("GET", "https://api.example.com/v1/docs", pat.expose(), T0)
        .unwrap();
    assert!(decide(&h, &scheme(&pat), &[&custom]).await.is_ok());
    let other = key
        .proof("GET", "https://evil.example/v1/docs", pat.expose(), T0)
        .unwrap();
    assert_unauthorized(decide(&h, &scheme(&pat), &[&other]).await, "another origin");
    // EdDSA keys bind too.
    let ed = ProofKey::generate(ProofAlgorithm::EdDsa).unwrap();
    let ed_pat = bound_pat(&h, &ed).await;
    let ed_proof = ed.proof("GET", URL, ed_pat.expose(), T0).unwrap();
    assert!(decide(&h, &scheme(&ed_pat), &[&ed_proof]).await.is_ok());
}

#[tokio::test]
async fn the_attack_corpus_is_refused_and_refusals_are_identical() {
    let (h, _jwks) = harness().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let thief = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&h, &key).await;
    let header = || json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk().to_value()});
    let claims = |n: u32| {
        json!({"jti": format!("corpus-jti-{n:08}"), "htm": "GET", "htu": URL, "iat": T0,
            "ath": access_token_hash(pat.expose())})
    };
    let signed = |h: Value, c: Value| key.sign_parts(&h, &c).unwrap();
    let with = |mut v: Value, k: &str, x: Value| {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x;
        }
        v
    };
    let mut private = key.public_jwk().to_value();
    private["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "another method",
            vec![signed(header(), with(claims(1), "htm", json!("POST")))],
        ),
        (
            "another URL",
            vec![signed(
                header(),
                with(claims(2), "htu", json!(format!("{URL}/x"))),
            )],
        ),
        (
            "stale iat",
            vec![signed(header(), with(claims(3), "iat", json!(T0 - 61)))],
        ),
        (
            "future iat",
            vec![signed(header(), with(claims(4), "iat", json!(T0 + 6)))],
        ),
        (
            "wrong ath",
            vec![signed(
                header(),
                with(claims(5), "ath", json!(access_token_hash("x"))),
            )],
        ),
        (
            "another key",
            vec![thief.proof("GET", URL, pat.expose(), T0).unwrap()],
        ),
        (
            "private jwk",
            vec![signed(with(header(), "jwk", private), claims(6))],
        ),
        (
            "alg none",
            vec![format!(
                "{}.",
                signed(with(header(), "alg", json!("none")), claims(7))
                    .rsplit_once('.')
                    .unwrap()
                    .0
            )],
        ),
        (
            "alg HS256",
            vec![signed(with(header(), "alg", json!("HS256")), claims(8))],
        ),
        (
            "no typ",
            vec![signed(with(header(), "typ", json!(null)), claims(9))],
        ),
        (
            "two DPoP headers",
            vec![
                key.proof("GET", URL, pat.expose(), T0).unwrap(),
                key.proof("GET", URL, pat.expose(), T0).unwrap(),
            ],
        ),
        (
            "two proofs in one header",
            vec![format!(
                "{},{}",
                key.proof("GET", URL, pat.expose(), T0).unwrap(),
                key.proof("GET", URL, pat.expose(), T0).unwrap()
            )],
        ),
        (
            "oversize",
            vec![signed(
                header(),
                with(claims(10), "pad", json!("p".repeat(4096))),
            )],
        ),
        ("not a JWS", vec!["not.a.proof".into()]),
    ];
    let reads = h.dynamo_calls.get();
    for (case, proofs) in &cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        assert_unauthorized(decide(&h, &scheme(&pat), &proofs).await, case);
    }
    // Every refusal above came before the token was read, except the
    // other key's: its proof is sound, and only the record names the key.
    assert_eq!(h.dynamo_calls.get() - reads, 1);
    assert_eq!(h.argon2_runs(), 1);
    // A genuine proof still works: nothing above spent or locked anything.
    let good = key.proof("GET", URL, pat.expose(), T0).unwrap();
    assert!(decide(&h, &scheme(&pat), &[&good]).await.is_ok());
}

#[tokio::test]
async fn an_unbound_token_works_as_bearer_and_is_refused_under_the_dpop_scheme() {
    let (h, _jwks) = harness().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = issue_pat(
        &h.store,
        "user-2",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
    let plain = decide(&h, &bearer(pat.expose()), &[]).await.unwrap();
    assert_eq!(
        plain.context.dpop_jkt, "",
        "a bearer token's context names no key"
    );
    // A stray proof beside a bearer token is ignored (RFC 9449 §7.2 lets a
    // resource server accept it; nothing is spent).
    assert!(decide(&h, &bearer(pat.expose()), &[&proof]).await.is_ok());
    // The DPoP scheme claims a binding the token does not have: refused, so
    // a client that believes its token is bound learns that it is not.
    assert_unauthorized(
        decide(&h, &scheme(&pat), &[&proof]).await,
        "unbound under DPoP",
    );
    // Session tokens are never bound.
    let jwt = sign(&access_claims());
    let jwt_proof = key.proof("GET", URL, &jwt, T0).unwrap();
    assert_unauthorized(
        decide(&h, &format!("DPoP {jwt}"), &[&jwt_proof]).await,
        "JWT under DPoP",
    );
}

#[tokio::test]
async fn two_instances_racing_on_one_proof_accept_it_once() {
    let (a, jwks) = harness().await;
    let mut builder = HarnessBuilder::sharing(&jwks.url, &a);
    builder.dpop = dpop_on();
    let b = builder.build().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&a, &key).await;
    // Both instances know the token already (warm), so only the replay
    // store stands between them.
    for h in [&a, &b] {
        let warm = key.proof("GET", URL, pat.expose(), T0).unwrap();
        assert!(decide(h, &scheme(&pat), &[&warm]).await.is_ok());
    }
    for round in 0..8 {
        let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
        let auth = scheme(&pat);
        let proofs = [proof.as_str()];
        let (ra, rb) = tokio::join!(decide(&a, &auth, &proofs), decide(&b, &auth, &proofs));
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {round}: exactly one instance accepts"
        );
    }
}

#[tokio::test]
async fn with_the_replay_store_down_a_bound_token_fails_closed() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.dpop = dpop_on();
    let h = builder.build().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&h, &key).await;
    let warm = key.proof("GET", URL, pat.expose(), T0).unwrap();
    assert!(decide(&h, &scheme(&pat), &[&warm]).await.is_ok());
    // The same instance, warm (its next decision reads nothing), once the
    // table is gone: only the replay store's write is left, and it fails.
    let (client, _) = shared::testing::client(&shared::testing::endpoint());
    client
        .delete_table()
        .table_name(&h.store.config().table_name)
        .send()
        .await
        .unwrap();
    let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
    assert_eq!(
        decide(&h, &scheme(&pat), &[&proof]).await.unwrap_err(),
        AuthError::Internal,
        "a 500, never an Allow"
    );
    // Once the store is back, the same proof is still good once: a failure
    // spends nothing (review finding: no genuine first use refused as a
    // replay after an error).
    h.store.create_table().await.unwrap();
    assert!(decide(&h, &scheme(&pat), &[&proof]).await.is_ok());
    assert_unauthorized(decide(&h, &scheme(&pat), &[&proof]).await, "then spent");
}

/// Review finding: `htu` is rebuilt from the method ARN's path; a path a URL
/// parser would rewrite (a query mark, a dot segment, a backslash, an
/// escape) matches no proof, rather than the proof of another path.
#[tokio::test]
async fn a_method_arn_path_a_url_parser_would_rewrite_matches_no_proof() {
    let (h, _jwks) = harness().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&h, &key).await;
    let prefix = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/";
    for odd in [
        "docs?x",
        "docs#x",
        "a/../docs",
        "./docs",
        "docs%3Fx",
        "do\\cs",
        "do cs",
    ] {
        let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
        let mut event = dpop_event(&scheme(&pat), &[&proof]);
        event["methodArn"] = json!(format!("{prefix}{odd}"));
        assert_unauthorized(h.decide_json(event).await, odd);
    }
    let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
    let mut event = dpop_event(&scheme(&pat), &[&proof]);
    event["methodArn"] = json!(format!("{prefix}docs"));
    assert!(h.decide_json(event).await.is_ok());
}

/// The full event type (tests, the local gateway's `decide`) reads the same
/// headers as the Lambda's lean event.
#[tokio::test]
async fn the_full_event_type_carries_the_proof_too() {
    let (h, _jwks) = harness().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&h, &key).await;
    let full = |proofs: &[&str]| {
        serde_json::from_value::<
            aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest,
        >(dpop_event(&scheme(&pat), proofs))
        .unwrap()
    };
    let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
    assert!(h.authorizer.decide(&full(&[&proof])).await.is_ok());
    assert_unauthorized(h.authorizer.decide(&full(&[&proof])).await, "replayed");
    let (a, b) = (
        key.proof("GET", URL, pat.expose(), T0).unwrap(),
        key.proof("GET", URL, pat.expose(), T0).unwrap(),
    );
    assert_unauthorized(h.authorizer.decide(&full(&[&a, &b])).await, "two");
    assert_unauthorized(h.authorizer.decide(&full(&[])).await, "none");
}

#[tokio::test]
async fn where_dpop_is_off_a_bound_token_is_refused_however_it_comes() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let pat = bound_pat(&h, &key).await;
    let proof = key.proof("GET", URL, pat.expose(), T0).unwrap();
    assert_unauthorized(decide(&h, &scheme(&pat), &[&proof]).await, "DPoP, off");
    assert_unauthorized(
        decide(&h, &bearer(pat.expose()), &[&proof]).await,
        "Bearer, off",
    );
    assert_unauthorized(
        decide(&h, &bearer(pat.expose()), &[]).await,
        "Bearer alone, off",
    );
}
