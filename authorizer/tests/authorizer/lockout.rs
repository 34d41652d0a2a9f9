//! Nobody who only knows a token's id can lock its holder out, argon2 runs
//! once per genuine token per instance, hashes move with the configured
//! parameters, and a PAT never out-scopes its owner's session policy.

use shared::Pat;
use shared::hash::{HashParams, SecretHasher};

use crate::support::*;

const OWNER: &str = "8c1d5a2e-3333-4000-8000-000000000003";
const ATTACKER_IP: &str = "203.0.113.66";
const HOLDER_IP: &str = "198.51.100.20";

fn forged(real: &Pat) -> String {
    shared::testing::token_with_secret_of(real.id(), &Pat::generate().unwrap())
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_never_locks_out_the_genuine_holder() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;

    // On this instance: the flood and the holder interleave.
    for round in 0..40 {
        assert_unauthorized(
            h.decide_from(&bearer(&forged(&real)), ATTACKER_IP).await,
            "wrong secret",
        );
        if round % 10 == 9 {
            // Past the in-process cache, so every check is a cold decision.
            h.clock.set(T0 + 31 * (round + 1));
            assert!(
                h.decide_from(&bearer(real.expose()), HOLDER_IP)
                    .await
                    .is_ok(),
                "the holder was locked out at round {round}"
            );
        }
    }
    // On fresh instances, flooded before the holder ever shows up.
    for instance in 0..3 {
        let fresh = HarnessBuilder::sharing(&jwks.url, &h).build().await;
        fresh.clock.set(T0 + 5_000 + instance);
        for _ in 0..20 {
            assert_unauthorized(
                fresh
                    .decide_from(&bearer(&forged(&real)), ATTACKER_IP)
                    .await,
                "wrong secret on a fresh instance",
            );
        }
        assert!(
            fresh
                .decide_from(&bearer(real.expose()), HOLDER_IP)
                .await
                .is_ok(),
            "the holder was refused on fresh instance {instance}"
        );
    }
}

#[tokio::test]
async fn an_attackers_argon2_and_dynamodb_cost_per_id_and_address_is_bounded() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let budget = pat_config().max_failures_per_source;
    for _ in 0..budget {
        assert_unauthorized(
            h.decide_from(&bearer(&forged(&real)), ATTACKER_IP).await,
            "budget",
        );
    }
    let (runs, reads) = (h.argon2_runs(), h.dynamo_calls.get());
    assert_eq!(runs, u64::from(budget));
    for _ in 0..50 {
        assert_unauthorized(
            h.decide_from(&bearer(&forged(&real)), ATTACKER_IP).await,
            "flood",
        );
    }
    assert_eq!(
        h.argon2_runs(),
        runs,
        "past its budget an address costs no argon2"
    );
    assert_eq!(h.dynamo_calls.get(), reads, "nor a DynamoDB read");
    // The budget is a window: it refills once the window has passed.
    h.clock.set(T0 + pat_config().negative_ttl_secs);
    assert_unauthorized(
        h.decide_from(&bearer(&forged(&real)), ATTACKER_IP).await,
        "refill",
    );
    assert_eq!(h.argon2_runs(), runs + 1);
}

#[tokio::test]
async fn a_token_verified_on_this_instance_passes_even_from_a_flooding_address() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    // The holder shares the attacker's address (a NAT), but was verified first.
    assert!(
        h.decide_from(&bearer(real.expose()), ATTACKER_IP)
            .await
            .is_ok()
    );
    for _ in 0..20 {
        assert_unauthorized(
            h.decide_from(&bearer(&forged(&real)), ATTACKER_IP).await,
            "flood",
        );
    }
    h.clock.set(T0 + 60);
    assert!(
        h.decide_from(&bearer(real.expose()), ATTACKER_IP)
            .await
            .is_ok(),
        "a remembered verification is not subject to the address's budget"
    );
}

#[tokio::test]
async fn argon2_runs_once_per_genuine_token_per_instance_and_status_is_still_checked() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    for step in 0..6 {
        // Each step is past the 30 s decision cache: a cold decision.
        h.clock.set(T0 + step * 31);
        let before = h.dynamo_calls.get();
        assert!(h.decide(Some(&bearer(real.expose()))).await.is_ok());
        assert!(
            h.dynamo_calls.get() > before,
            "step {step}: the record was read"
        );
    }
    assert_eq!(h.argon2_runs(), 1);
    // The remembered verification never outlives the record's status.
    h.store
        .revoke(
            &shared::UserId::parse(OWNER).unwrap(),
            real.id(),
            T0 + 200,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    h.clock.set(T0 + 240);
    assert_unauthorized(h.decide(Some(&bearer(real.expose()))).await, "revoked");
}

/// The fleet model (issue #17) found an instance meeting about 6·10^4
/// distinct tokens in its life with 10^5 active, six times its decision
/// cache: argon2 must still run once per token per instance, and the memory
/// that makes it so must stay bounded.
#[tokio::test]
async fn argon2_runs_once_per_token_per_instance_beyond_the_decision_cache_and_memory_is_bounded() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.decision_cache_capacity = Some(1);
    builder.verified_capacity = Some(16);
    let h = builder.build().await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let scopes = shared::testing::default_scopes();
        tokens.push(issue_pat(&h.store, OWNER, scopes, T0 + 86_400).await);
    }
    // Three rounds, each past the decision cache's TTL: every decision is
    // a cold one (one read), none but the first of each token runs argon2.
    for round in 0..3 {
        h.clock.set(T0 + round * 31);
        for token in &tokens {
            assert!(h.decide(Some(&bearer(token.expose()))).await.is_ok());
        }
    }
    assert_eq!(h.argon2_runs(), 5);

    // Room for two pairs: five tokens in turn are each forgotten before
    // they come back, so each cold decision verifies again.
    let mut builder = HarnessBuilder::sharing(&jwks.url, &h);
    builder.decision_cache_capacity = Some(1);
    builder.verified_capacity = Some(2);
    let small = builder.build().await;
    for round in 0..3 {
        small.clock.set(T0 + round * 31);
        for token in &tokens {
            assert!(small.decide(Some(&bearer(token.expose()))).await.is_ok());
        }
    }
    assert_eq!(small.argon2_runs(), 15);
}

fn stronger() -> HashParams {
    HashParams {
        t: HashParams::OWASP_MIN.t + 1,
        ..HashParams::OWASP_MIN
    }
}

#[tokio::test]
async fn a_hash_below_the_configured_parameters_is_upgraded_after_a_successful_verification() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    // Issued under the old parameters (the harness's hasher writes OWASP_MIN).
    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let old = h.store.get(real.id()).await.unwrap().unwrap().hash;
    assert!(old.expose().contains("t=2,"));

    // A wrong secret never rewrites anything.
    let mut upgraded = HarnessBuilder::sharing(&jwks.url, &h);
    upgraded.hasher = SecretHasher::new(stronger(), HashParams::OWASP_MIN).unwrap();
    let upgraded = upgraded.build().await;
    assert_unauthorized(
        upgraded.decide(Some(&bearer(&forged(&real)))).await,
        "wrong",
    );
    upgraded.authorizer.pat().settle().await;
    assert_eq!(
        h.store.get(real.id()).await.unwrap().unwrap().hash.expose(),
        old.expose()
    );

    assert!(upgraded.decide(Some(&bearer(real.expose()))).await.is_ok());
    upgraded.authorizer.pat().settle().await;
    let new = h.store.get(real.id()).await.unwrap().unwrap().hash;
    assert!(new.expose().contains("t=3,"), "not rehashed");
    assert_ne!(new.expose(), old.expose());

    // The token still works everywhere: under the new and the old parameters.
    let again = HarnessBuilder::sharing(&jwks.url, &h).build().await;
    assert!(again.decide(Some(&bearer(real.expose()))).await.is_ok());
}

#[tokio::test]
async fn a_stored_hash_above_the_ceiling_is_refused_without_being_evaluated() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    // A planted record asking for 4 GiB of memory per verification.
    let stored = h.store.get(real.id()).await.unwrap().unwrap().hash;
    let planted = stored.expose().replacen("m=19456", "m=4194304", 1);
    shared::testing::overwrite_hash(&h.store, real.id(), &planted).await;
    assert_unauthorized(
        h.decide(Some(&bearer(real.expose()))).await,
        "above ceiling",
    );
    assert_eq!(h.argon2_runs(), 0);
}

#[tokio::test]
async fn a_pats_scopes_never_exceed_what_its_owners_session_may_hold_now() {
    let jwks = JwksServer::start(JWKS).await;
    let mut narrowed = HarnessBuilder::new(&jwks.url);
    // The session policy was tightened after the tokens were issued.
    narrowed.manifest =
        fixture_with_sessions("[sessions]\ndefault_scopes = [\"docs:read\", \"tokens:read\"]\n");
    let h = narrowed.build().await;
    let broad = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let response = h.decide(Some(&bearer(broad.expose()))).await.unwrap();
    let kept = shared::testing::scopes("docs:read tokens:read");
    assert_eq!(allowed_resources(&response), expected_resources(kept));
    assert_eq!(response.context.scopes, "tokens:read docs:read");
    // Nothing left: refused.
    let write_only = issue_pat(
        &h.store,
        OWNER,
        shared::testing::scopes("docs:write"),
        T0 + 86_400,
    )
    .await;
    assert_unauthorized(
        h.decide(Some(&bearer(write_only.expose()))).await,
        "no scope left",
    );
}

#[tokio::test]
async fn the_in_process_cache_never_serves_a_token_past_its_expiry() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let short = issue_pat(&h.store, OWNER, shared::testing::default_scopes(), T0 + 20).await;
    assert!(h.decide(Some(&bearer(short.expose()))).await.is_ok());
    let reads = h.dynamo_calls.get();
    // Still inside the 30 s cache window, but past the token's expiry.
    h.clock.set(T0 + 20);
    assert_unauthorized(h.decide(Some(&bearer(short.expose()))).await, "expired");
    assert!(
        h.dynamo_calls.get() > reads,
        "the expired entry was not served"
    );
}
