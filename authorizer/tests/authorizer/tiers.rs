//! Rate tiers (issue #16 item 3): each decision names the usage-plan key of
//! the principal's tier, so API Gateway throttles per tier.

use std::collections::BTreeMap;

use authorizer::tiers::RateTiers;
use shared::Pat;

use crate::support::*;

const SLOW: &str = "slow-key-0000000000000";
const STANDARD: &str = "standard-key-000000000";

async fn pat_in(h: &Harness, tier: Option<&str>) -> Pat {
    let scopes = shared::testing::default_scopes();
    issue_pat_with(&h.store, "user-1", scopes, T0 + 600, |meta| {
        meta.rate_tier = tier.map(str::to_owned);
    })
    .await
}

#[tokio::test]
async fn every_decision_names_its_tiers_key_cached_or_not() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.rate_tiers = RateTiers::new(
        BTreeMap::from([
            ("slow".to_owned(), vec![SLOW.to_owned()]),
            ("standard".to_owned(), vec![STANDARD.to_owned()]),
        ]),
        "standard",
    );
    let h = builder.build().await;
    let slow = pat_in(&h, Some("slow")).await;
    let plain = pat_in(&h, None).await;
    let retired = pat_in(&h, Some("retired-tier")).await;
    for _ in 0..2 {
        for (credential, expected) in [
            (slow.expose().to_owned(), SLOW),
            (plain.expose().to_owned(), STANDARD),
            (retired.expose().to_owned(), STANDARD),
            (sign(&access_claims()), STANDARD),
        ] {
            let response = h.decide(Some(&bearer(&credential))).await.unwrap();
            assert_eq!(response.usage_identifier_key.as_deref(), Some(expected));
        }
    }
    // Without tiers (the fixture response test): no key at all.
    let plain_harness = HarnessBuilder::new(&jwks.url).build().await;
    let pat = issue_pat(
        &plain_harness.store,
        "user-3",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let response = plain_harness
        .decide(Some(&bearer(pat.expose())))
        .await
        .unwrap();
    assert_eq!(response.usage_identifier_key, None);
}
