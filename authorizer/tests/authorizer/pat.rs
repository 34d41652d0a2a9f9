//! The PAT suite against a real DynamoDB API (moto).

use shared::pat::PAT_LEN;
use shared::{AuthMethod, Pat, UserId};

use crate::support::*;

const OWNER: &str = "8c1d5a2e-2222-4000-8000-000000000002";

async fn harness() -> (Harness, JwksServer) {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    (h, jwks)
}

#[tokio::test]
async fn a_valid_pat_is_allowed_with_exactly_its_scopes_routes() {
    let (h, _jwks) = harness().await;
    let scopes = shared::testing::scopes("docs:read tokens:read");
    let pat = issue_pat(&h.store, OWNER, scopes, T0 + 86_400).await;
    let response = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(response.principal_id.as_deref(), Some(OWNER));
    assert_eq!(allowed_resources(&response), expected_resources(scopes));
    assert_eq!(response.context.auth_method, AuthMethod::Pat);
    assert_eq!(response.context.token_id, pat.id().as_str());
    assert_eq!(response.context.scopes, "tokens:read docs:read");
    assert_eq!(response.context.expires_at, T0 + 86_400);
}

#[tokio::test]
async fn malformed_and_bad_checksum_tokens_cost_no_dynamodb_call() {
    let (h, _jwks) = harness().await;
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let before = h.dynamo_calls.get();
    let good = pat.expose().to_owned();
    let mut bad_checksum = good.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == '0' { '1' } else { '0' });
    let mut wrong_secret_same_checksum = good.clone();
    wrong_secret_same_checksum.replace_range(30..31, if &good[30..31] == "a" { "b" } else { "a" });
    let cases = [
        ("bad checksum", bad_checksum),
        ("edited body", wrong_secret_same_checksum),
        ("truncated", good[..PAT_LEN - 1].to_owned()),
        ("too long", format!("{good}0")),
        ("bad character", format!("{}-{}", &good[..20], &good[21..])),
        ("prefix only", "agpat_".to_owned()),
    ];
    for (name, token) in &cases {
        assert_unauthorized(h.decide(Some(&bearer(token))).await, name);
    }
    assert_eq!(h.dynamo_calls.get(), before, "junk reached DynamoDB");
}

#[tokio::test]
async fn unknown_wrong_secret_expired_and_revoked_tokens_are_unauthorized() {
    let (h, _jwks) = harness().await;
    let unknown = Pat::generate().unwrap();
    assert_unauthorized(
        h.decide(Some(&bearer(unknown.expose()))).await,
        "unknown id",
    );

    let real = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let forged = forge_with_secret_of(&real, &Pat::generate().unwrap());
    assert_unauthorized(h.decide(Some(&bearer(&forged))).await, "wrong secret");

    let expired = issue_pat(&h.store, OWNER, shared::testing::default_scopes(), T0).await;
    assert_unauthorized(h.decide(Some(&bearer(expired.expose()))).await, "expired");

    let revoked = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    h.store
        .revoke(
            &UserId::parse(OWNER).unwrap(),
            revoked.id(),
            T0 - 1,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    assert_unauthorized(h.decide(Some(&bearer(revoked.expose()))).await, "revoked");

    // The genuine token is unaffected by a wrong-secret attempt on its id.
    assert!(h.decide(Some(&bearer(real.expose()))).await.is_ok());
}

/// A well-formed token with `real`'s id and another secret.
fn forge_with_secret_of(real: &Pat, donor: &Pat) -> String {
    let forged = shared::testing::token_with_secret_of(real.id(), donor);
    assert!(Pat::parse(&forged).is_ok());
    forged
}

#[tokio::test]
async fn a_second_decision_is_served_from_cache_with_no_dynamodb_call() {
    let (h, _jwks) = harness().await;
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    h.authorizer.pat().settle().await;
    let before = h.dynamo_calls.get();
    h.clock.set(T0 + 5);
    h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    h.authorizer.pat().settle().await;
    assert_eq!(h.dynamo_calls.get(), before);
}

#[tokio::test]
async fn a_cold_pat_decision_is_one_read_and_last_used_is_written_once_per_interval() {
    let (h, _jwks) = harness().await;
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let before = h.dynamo_calls.get();
    h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(
        h.dynamo_calls.get() - before,
        1,
        "exactly one GetItem on the decision path"
    );
    h.authorizer.pat().settle().await;
    assert_eq!(
        h.dynamo_calls.get() - before,
        2,
        "plus one background touch"
    );
    let stored = h.store.get(pat.id()).await.unwrap().unwrap();
    assert_eq!(stored.meta.last_used_at, Some(T0));
    let before = h.dynamo_calls.get();
    for t in 1..20 {
        h.clock.set(T0 + t);
        h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    }
    h.authorizer.pat().settle().await;
    assert_eq!(
        h.dynamo_calls.get(),
        before,
        "touches are throttled in-process too"
    );
}

/// The fleet model (issue #17) found nearly every PAT invocation sending a
/// conditional `last_used` write that the store then refused: each new
/// instance touched a token another had just touched. A cold decision now
/// reads `last_used_at` first and sends nothing the store would refuse.
#[tokio::test]
async fn a_cold_decision_for_a_token_another_instance_just_touched_sends_no_write() {
    let (a, jwks) = harness().await;
    let pat = issue_pat(
        &a.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    a.decide(Some(&bearer(pat.expose()))).await.unwrap();
    a.authorizer.pat().settle().await;
    let used = |h: &Harness| {
        let store = h.store.clone();
        let id = pat.id().clone();
        async move { store.get(&id).await.unwrap().unwrap().meta.last_used_at }
    };
    assert_eq!(used(&a).await, Some(T0));

    // Another instance, a minute later: one read, no write.
    let b = HarnessBuilder::sharing(&jwks.url, &a).build().await;
    b.clock.set(T0 + 60);
    let before = b.dynamo_calls.get();
    b.decide(Some(&bearer(pat.expose()))).await.unwrap();
    b.authorizer.pat().settle().await;
    assert_eq!(b.dynamo_calls.get() - before, 1, "the GetItem only");
    // Its warm decisions within the interval send nothing either.
    b.clock.set(T0 + 70);
    b.decide(Some(&bearer(pat.expose()))).await.unwrap();
    b.authorizer.pat().settle().await;
    assert_eq!(b.dynamo_calls.get() - before, 1);

    // Once the interval has passed since the recorded use, it writes.
    b.clock.set(T0 + 301);
    let before = b.dynamo_calls.get();
    b.decide(Some(&bearer(pat.expose()))).await.unwrap();
    b.authorizer.pat().settle().await;
    assert_eq!(b.dynamo_calls.get() - before, 2, "a read and the touch");
    assert_eq!(used(&b).await, Some(T0 + 301));
}

#[tokio::test]
async fn a_revoked_token_is_refused_once_the_cache_ttl_has_passed() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.pat.positive_ttl_secs = 2;
    let h = builder.build().await;
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    h.store
        .revoke(
            &UserId::parse(OWNER).unwrap(),
            pat.id(),
            T0,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    h.clock.set(T0 + 1);
    assert!(
        h.decide(Some(&bearer(pat.expose()))).await.is_ok(),
        "within the in-process TTL the cached decision stands (the documented bound)"
    );
    h.clock.set(T0 + 2);
    assert_unauthorized(
        h.decide(Some(&bearer(pat.expose()))).await,
        "revoked after TTL",
    );
}

#[tokio::test]
async fn unknown_ids_are_remembered_so_repeats_cost_nothing() {
    let (h, _jwks) = harness().await;
    let unknown = Pat::generate().unwrap();
    assert_unauthorized(h.decide(Some(&bearer(unknown.expose()))).await, "first");
    let before = h.dynamo_calls.get();
    for _ in 0..10 {
        assert_unauthorized(h.decide(Some(&bearer(unknown.expose()))).await, "repeat");
    }
    assert_eq!(h.dynamo_calls.get(), before);
}

#[tokio::test]
async fn with_dynamodb_unreachable_a_pat_is_never_allowed() {
    let jwks = JwksServer::start(JWKS).await;
    // A real store for issuing, and an authorizer whose store points at a closed port.
    let (live, _) = shared::testing::fresh_store_with(shared::testing::fresh_config(5)).await;
    let pat = issue_pat(&live, OWNER, shared::testing::default_scopes(), T0 + 86_400).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (client, counter) = shared::testing::client(&closed);
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.store = Some((
        shared::store::TokenStore::new(client, live.config().clone()),
        counter,
    ));
    let h = builder.build().await;
    for _ in 0..3 {
        let result = h.decide(Some(&bearer(pat.expose()))).await;
        assert_eq!(result.err(), Some(authorizer::AuthError::Internal));
    }
}

#[tokio::test]
async fn the_authorizer_decides_for_v1_and_v2_tokens() {
    let (h, _jwks) = harness().await;
    let scopes = shared::testing::scopes("docs:read");
    let v2 = issue_pat(&h.store, OWNER, scopes, T0 + 86_400).await;
    let v1 = Pat::generate().unwrap();
    let record = shared::TokenRecord {
        meta: shared::TokenMeta {
            schema_version: 1,
            ..shared::TokenMeta::issued(
                v1.id().clone(),
                UserId::parse(OWNER).unwrap(),
                "legacy",
                shared::testing::names("docs:read"),
                T0 - 10,
                T0 + 86_400,
            )
        },
        hash: hasher().hash(v1.secret()).unwrap(),
    };
    shared::testing::put_v1_token(&h.store, &record).await;
    for (version, pat) in [("v1", &v1), ("v2", &v2)] {
        let response = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
        assert_eq!(
            allowed_resources(&response),
            expected_resources(scopes),
            "{version}"
        );
        assert_eq!(response.context.scopes, "docs:read", "{version}");
    }
    h.store
        .revoke(
            &UserId::parse(OWNER).unwrap(),
            v1.id(),
            T0,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    h.clock.set(T0 + pat_config().positive_ttl_secs);
    assert_unauthorized(h.decide(Some(&bearer(v1.expose()))).await, "revoked v1");
}

/// A manifest changes under stored tokens: scopes are stored by name, so a
/// token keeps the scopes the new manifest still declares and never gains
/// the one that now sits at the index its old scope had.
#[tokio::test]
async fn stored_tokens_keep_remaining_scopes_and_never_gain_new_ones() {
    let (before, jwks) = harness().await;
    // Under the fixture, docs:read is index 2 and docs:write index 3.
    let pat = issue_pat(
        &before.store,
        OWNER,
        shared::testing::scopes("docs:read docs:write"),
        T0 + 86_400,
    )
    .await;
    let next = std::sync::Arc::new(
        shared::Manifest::parse(
            "version = 1\n\
             [[scope]]\nname = \"billing:admin\"\ndescription = \"new, now index 2\"\n\
             [[scope]]\nname = \"docs:write\"\ndescription = \"kept, now index 3\"\n\
             [[route]]\nmethod = \"GET\"\npath = \"/billing\"\nscope = \"billing:admin\"\n\
             [[route]]\nmethod = \"PUT\"\npath = \"/docs/{docId}\"\nscope = \"docs:write\"\n",
            "next.toml",
        )
        .unwrap(),
    );
    let mut builder = HarnessBuilder::sharing(&jwks.url, &before);
    builder.manifest = next;
    let after = builder.build().await;
    let response = after.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(response.context.scopes, "docs:write");
    let allowed = allowed_resources(&response);
    assert_eq!(allowed, vec![format!("{STAGE_PREFIX}PUT/docs/*")]);

    // A token left with no declared scope is refused outright.
    let read_only = issue_pat(
        &before.store,
        OWNER,
        shared::testing::scopes("docs:read"),
        T0 + 86_400,
    )
    .await;
    assert_unauthorized(
        after.decide(Some(&bearer(read_only.expose()))).await,
        "no scope left",
    );
}

/// Use sites ride on the throttled last-use write: the decisions cost exactly
/// the requests they cost before (cold: one read, then one background write;
/// warm: none), a new address waits in memory for the next write, and each
/// address new to the record gets one `new_ip` event in that same write.
#[tokio::test]
async fn use_sites_add_no_dynamodb_request_to_warm_or_cold_decisions() {
    use shared::history::EventKind;
    let (h, _jwks) = harness().await;
    let pat = issue_pat(
        &h.store,
        OWNER,
        shared::testing::default_scopes(),
        T0 + 86_400,
    )
    .await;
    let credential = bearer(pat.expose());

    // Cold: one GetItem on the path, one write behind it, as without sites.
    let before = h.dynamo_calls.get();
    h.decide_from(&credential, "198.51.100.7").await.unwrap();
    assert_eq!(h.dynamo_calls.get() - before, 1);
    h.authorizer.pat().settle().await;
    assert_eq!(h.dynamo_calls.get() - before, 2);
    let stored = h.store.get(pat.id()).await.unwrap().unwrap().meta;
    assert_eq!(stored.recent_uses.len(), 1);
    assert_eq!(stored.recent_uses[0].ip, "198.51.100.7");
    assert_eq!(
        stored.recent_uses[0].user_agent.as_deref(),
        Some("curl/8.5.0")
    );

    // Warm, from a new address, inside the interval: no request at all.
    let before = h.dynamo_calls.get();
    for t in 1..20 {
        h.clock.set(T0 + t);
        h.decide_from(&credential, "203.0.113.9").await.unwrap();
    }
    h.authorizer.pat().settle().await;
    assert_eq!(h.dynamo_calls.get(), before, "warm decisions stay I/O-free");

    // The next throttled write (a cold decision after the interval) carries
    // the waiting address: still one read and one write.
    h.clock.set(T0 + 301);
    let before = h.dynamo_calls.get();
    h.decide_from(&credential, "198.51.100.7").await.unwrap();
    h.authorizer.pat().settle().await;
    assert_eq!(h.dynamo_calls.get() - before, 2);
    let stored = h.store.get(pat.id()).await.unwrap().unwrap().meta;
    let sites: Vec<(&str, i64)> = stored
        .recent_uses
        .iter()
        .map(|s| (s.ip.as_str(), s.at))
        .collect();
    assert_eq!(
        sites,
        [("198.51.100.7", T0 + 301), ("203.0.113.9", T0 + 19)]
    );
    let events = h.store.events(pat.id(), 10, None).await.unwrap();
    let new_ips: Vec<String> = events
        .items
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::NewIp { ip, .. } => Some(ip.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        new_ips,
        ["203.0.113.9", "198.51.100.7"],
        "one event per new address"
    );
}
