//! Per-token IP allow-lists in the authorizer (issue #16 item 5): checked on
//! every decision, warm ones included and before any argon2 run, and
//! refused outright where the deployment cannot honour them.

use shared::Pat;

use crate::support::*;

async fn fenced_pat(h: &Harness, cidrs: &[&str]) -> Pat {
    let scopes = shared::testing::default_scopes();
    issue_pat_with(&h.store, "user-1", scopes, T0 + 600, |meta| {
        meta.allowed_cidrs = cidrs
            .iter()
            .map(|c| shared::record::parse_cidr(c).unwrap())
            .collect();
    })
    .await
}

#[tokio::test]
async fn an_allow_list_admits_its_networks_only_even_from_the_warm_cache() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.ip_allow_lists = true;
    let h = builder.build().await;
    let pat = fenced_pat(&h, &["198.51.100.0/24", "2001:db8::/32"]).await;
    let bearer = bearer(pat.expose());
    // Cold and outside: refused before any argon2 run.
    assert_unauthorized(h.decide_from(&bearer, "203.0.113.9").await, "cold, outside");
    assert_eq!(h.argon2_runs(), 0);
    for inside in ["198.51.100.7", "2001:db8::5", "::ffff:198.51.100.8"] {
        assert!(h.decide_from(&bearer, inside).await.is_ok(), "{inside}");
    }
    assert_eq!(h.argon2_runs(), 1, "verified once, then from memory");
    // Warm and outside: refused from memory, no read.
    let reads = h.dynamo_calls.get();
    for outside in ["203.0.113.9", "198.51.101.1", "", "not an address"] {
        assert_unauthorized(h.decide_from(&bearer, outside).await, outside);
    }
    assert_eq!(h.dynamo_calls.get(), reads);
    // An unfenced token is unaffected.
    let open = issue_pat(
        &h.store,
        "user-2",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    assert!(
        h.decide_from(&bearer_of(&open), "203.0.113.9")
            .await
            .is_ok()
    );
}

/// Review finding: refusals from outside count against the address's
/// wrong-secret budget, so a flood from outside stops costing reads.
#[tokio::test]
async fn refusals_from_outside_use_up_the_addresss_budget_and_then_cost_no_read() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.ip_allow_lists = true;
    let h = builder.build().await;
    let pat = fenced_pat(&h, &["198.51.100.0/24"]).await;
    let reads = h.dynamo_calls.get();
    for _ in 0..10 {
        assert_unauthorized(
            h.decide_from(&bearer(pat.expose()), "203.0.113.9").await,
            "outside",
        );
    }
    assert_eq!(
        h.dynamo_calls.get() - reads,
        3,
        "max_failures_per_source reads, then none"
    );
    assert_eq!(h.argon2_runs(), 0);
    // The holder inside is not locked out.
    assert!(
        h.decide_from(&bearer(pat.expose()), "198.51.100.7")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn where_allow_lists_are_off_a_fenced_token_is_refused_everywhere() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let pat = fenced_pat(&h, &["198.51.100.0/24"]).await;
    for from in ["198.51.100.7", "203.0.113.9"] {
        assert_unauthorized(h.decide_from(&bearer(pat.expose()), from).await, from);
    }
}

fn bearer_of(pat: &Pat) -> String {
    bearer(pat.expose())
}
