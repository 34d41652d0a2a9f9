//! Store tests against a real DynamoDB API (moto by default, see `make test`).

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::hash::PhcHash;
use shared::store::{
    CreateOutcome, Cursor, RevokeOutcome, RotateOutcome, StoreError, TouchOutcome,
};
use shared::testing::{fresh_config, fresh_store, fresh_store_with};
use shared::{Clock, Pat, SystemClock, TokenMeta, TokenRecord, UserId};

pub(crate) const DAY: i64 = 86_400;

pub(crate) fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub(crate) fn now() -> i64 {
    SystemClock.now()
}

/// A fresh record. The hash is opaque to the store, so a placeholder suffices here;
/// the authorizer tests use real argon2id hashes.
pub(crate) fn record(owner: &UserId, created_at: i64, lifetime: i64) -> TokenRecord {
    let pat = Pat::generate().unwrap();
    TokenRecord {
        meta: TokenMeta::issued(
            pat.id().clone(),
            owner.clone(),
            "ci",
            shared::testing::names("tokens:read tokens:write docs:read docs:write"),
            created_at,
            created_at + lifetime,
        ),
        hash: PhcHash::from_stored("$argon2id$placeholder".into()),
    }
}

#[tokio::test]
async fn created_token_reads_back_identically() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let rec = record(&alice, now(), 30 * DAY);
    assert_eq!(
        store.create(&rec, now()).await.unwrap(),
        CreateOutcome::Created
    );
    let got = store.get(&rec.meta.id).await.unwrap().unwrap();
    assert_eq!(got.meta, rec.meta);
    assert_eq!(got.hash.expose(), rec.hash.expose());
    assert_eq!(
        store.get_owned(&alice, &rec.meta.id).await.unwrap(),
        Some(rec.meta.clone())
    );
    assert_eq!(
        store
            .get_owned(&user("mallory"), &rec.meta.id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn racing_creates_never_exceed_the_cap() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let store = store.clone();
            let rec = record(&alice, t, 30 * DAY);
            tokio::spawn(async move { store.create(&rec, t).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        if task.await.unwrap() == CreateOutcome::Created {
            created += 1;
        }
    }
    assert_eq!(created, 5);
    let page = store.list(&alice, 100, None).await.unwrap();
    assert_eq!(page.items.len(), 5);
}

#[tokio::test]
async fn revoking_frees_a_slot_under_the_cap() {
    let store = fresh_store(1).await;
    let alice = user("alice");
    let t = now();
    let a = record(&alice, t, DAY);
    let b = record(&alice, t, DAY);
    assert_eq!(store.create(&a, t).await.unwrap(), CreateOutcome::Created);
    assert_eq!(
        store.create(&b, t).await.unwrap(),
        CreateOutcome::CapReached
    );
    assert_eq!(store.get(&b.meta.id).await.unwrap().map(|r| r.meta), None);
    assert_eq!(
        store
            .revoke(&alice, &a.meta.id, t, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(store.create(&b, t).await.unwrap(), CreateOutcome::Created);
}

#[tokio::test]
async fn expired_tokens_stop_counting_against_the_cap() {
    let store = fresh_store(1).await;
    let alice = user("alice");
    let t = now();
    let short = record(&alice, t, 10);
    assert_eq!(
        store.create(&short, t).await.unwrap(),
        CreateOutcome::Created
    );
    let next = record(&alice, t + 5, DAY);
    assert_eq!(
        store.create(&next, t + 5).await.unwrap(),
        CreateOutcome::CapReached
    );
    assert_eq!(
        store.create(&next, t + 10).await.unwrap(),
        CreateOutcome::Created
    );
}

#[tokio::test]
async fn caps_are_per_user() {
    let store = fresh_store(1).await;
    let t = now();
    for name in ["alice", "bob"] {
        let rec = record(&user(name), t, DAY);
        assert_eq!(
            store.create(&rec, t).await.unwrap(),
            CreateOutcome::Created,
            "{name}"
        );
    }
}

#[tokio::test]
async fn revoke_is_idempotent_and_owner_scoped() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, DAY);
    store.create(&rec, t).await.unwrap();
    let id = &rec.meta.id;
    assert_eq!(
        store
            .revoke(&user("mallory"), id, t, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
    assert!(
        store
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .revoked_at
            .is_none()
    );
    assert_eq!(
        store
            .revoke(&alice, id, t, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        store
            .revoke(&alice, id, t + 60, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        stored.meta.revoked_at,
        Some(t),
        "a repeated revoke must not move revoked_at"
    );
    let missing = Pat::generate().unwrap();
    assert_eq!(
        store
            .revoke(&alice, missing.id(), t, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
}

#[tokio::test]
async fn concurrent_revokes_report_exactly_one_revocation() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, DAY);
    store.create(&rec, t).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, alice, id) = (store.clone(), alice.clone(), rec.meta.id.clone());
            tokio::spawn(async move {
                store
                    .revoke(&alice, &id, t, shared::history::RevokedBy::Owner)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == RevokeOutcome::Revoked)
            .count(),
        1
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RevokeOutcome::Revoked | RevokeOutcome::AlreadyRevoked))
    );
}

#[tokio::test]
async fn racing_rotations_leave_exactly_one_active_successor() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let old = record(&alice, t, 30 * DAY);
    store.create(&old, t).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, alice, old_id) = (store.clone(), alice.clone(), old.meta.id.clone());
            let mut new = record(&alice, t, 30 * DAY);
            new.meta.rotated_from = Some(old_id.clone());
            tokio::spawn(async move {
                let outcome = store.rotate(&alice, &old_id, &new, 0, t).await.unwrap();
                (outcome, new.meta.id)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        let (outcome, new_id) = task.await.unwrap();
        match outcome {
            RotateOutcome::Rotated => winners.push(new_id),
            RotateOutcome::AlreadyRotated(successor) => losers.push((new_id, successor)),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let winner = &winners[0];
    for (new_id, successor) in &losers {
        assert_eq!(successor, winner);
        assert!(
            store.get(new_id).await.unwrap().is_none(),
            "a losing successor was stored"
        );
    }
    let tokens = store.list(&alice, 100, None).await.unwrap().items;
    let active: Vec<_> = tokens.iter().filter(|m| m.is_active(t)).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(&active[0].id, winner);
    assert_eq!(active[0].rotated_from.as_ref(), Some(&old.meta.id));
    let old_now = store.get(&old.meta.id).await.unwrap().unwrap().meta;
    assert_eq!(old_now.revoked_at, Some(t));
    assert_eq!(old_now.rotated_to.as_ref(), Some(winner));
}

#[tokio::test]
async fn rotation_with_overlap_keeps_the_old_token_briefly() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let old = record(&alice, t, 30 * DAY);
    store.create(&old, t).await.unwrap();
    let new = record(&alice, t, 30 * DAY);
    assert_eq!(
        store
            .rotate(&alice, &old.meta.id, &new, 600, t)
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
    let retired = store.get(&old.meta.id).await.unwrap().unwrap().meta;
    assert_eq!(retired.expires_at, t + 600);
    assert!(retired.is_active(t + 599));
    assert!(!retired.is_active(t + 600));
    // A second rotation of the old token (GitLab #524639) must not touch the successor.
    let again = record(&alice, t, 30 * DAY);
    assert_eq!(
        store
            .rotate(&alice, &old.meta.id, &again, 0, t + 1)
            .await
            .unwrap(),
        RotateOutcome::AlreadyRotated(new.meta.id.clone())
    );
    assert!(
        store
            .get(&new.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .is_active(t + 1)
    );
}

#[tokio::test]
async fn rotation_refuses_revoked_expired_and_foreign_tokens() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let revoked = record(&alice, t, DAY);
    store.create(&revoked, t).await.unwrap();
    store
        .revoke(
            &alice,
            &revoked.meta.id,
            t,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    let expiring = record(&alice, t, 10);
    store.create(&expiring, t).await.unwrap();
    let fresh = record(&alice, t, DAY);
    assert_eq!(
        store
            .rotate(&alice, &revoked.meta.id, &fresh, 0, t)
            .await
            .unwrap(),
        RotateOutcome::NotActive
    );
    assert_eq!(
        store
            .rotate(&alice, &expiring.meta.id, &fresh, 0, t + 10)
            .await
            .unwrap(),
        RotateOutcome::NotActive
    );
    assert_eq!(
        store
            .rotate(&user("mallory"), &expiring.meta.id, &fresh, 0, t)
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
    assert!(store.get(&fresh.meta.id).await.unwrap().is_none());
}

#[tokio::test]
async fn paging_through_120_tokens_returns_each_exactly_once_newest_first() {
    let store = fresh_store(200).await;
    let alice = user("alice");
    let t = now();
    let mut created = HashSet::new();
    for i in 0..120 {
        let rec = record(&alice, t - 1000 + i, DAY * 2);
        store.create(&rec, t).await.unwrap();
        created.insert(rec.meta.id.clone());
    }
    // Someone else's tokens must never show up.
    store
        .create(&record(&user("bob"), t, DAY), t)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = store.list(&alice, 7, cursor.as_ref()).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 7);
        seen.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 100, "pagination does not terminate");
    }
    assert_eq!(seen.len(), 120);
    let ids: HashSet<_> = seen.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, created);
    assert!(seen.windows(2).all(|w| w[0].created_at >= w[1].created_at));
}

#[tokio::test]
async fn a_cursor_cannot_cross_users_and_junk_is_rejected() {
    let store = fresh_store(10).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let t = now();
    for i in 0..3 {
        store.create(&record(&alice, t + i, DAY), t).await.unwrap();
    }
    let bob_token = record(&bob, t, DAY);
    store.create(&bob_token, t).await.unwrap();
    let page = store.list(&alice, 1, None).await.unwrap();
    let cursor = page.next.unwrap();
    let bobs = store.list(&bob, 10, Some(&cursor)).await.unwrap();
    assert!(bobs.items.iter().all(|m| m.owner == bob));
    let junk = Cursor::from_client("not-a-cursor");
    assert!(matches!(
        store.list(&alice, 10, Some(&junk)).await,
        Err(StoreError::InvalidCursor)
    ));
}

#[tokio::test]
async fn touch_is_throttled_to_one_write_per_interval() {
    let (store, counter) = fresh_store_with(fresh_config(5)).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, DAY);
    store.create(&rec, t).await.unwrap();
    let id = &rec.meta.id;
    assert_eq!(
        store.touch(id, t, &[], &[], None).await.unwrap(),
        TouchOutcome::Written
    );
    let before = counter.get();
    assert_eq!(
        store.touch(id, t + 299, &[], &[], None).await.unwrap(),
        TouchOutcome::Skipped
    );
    assert_eq!(
        counter.get() - before,
        1,
        "a throttled touch is one conditional request"
    );
    assert_eq!(
        store.get(id).await.unwrap().unwrap().meta.last_used_at,
        Some(t)
    );
    assert_eq!(
        store.touch(id, t + 300, &[], &[], None).await.unwrap(),
        TouchOutcome::Written
    );
    assert_eq!(
        store.get(id).await.unwrap().unwrap().meta.last_used_at,
        Some(t + 300)
    );
    let missing = Pat::generate().unwrap();
    assert_eq!(
        store.touch(missing.id(), t, &[], &[], None).await.unwrap(),
        TouchOutcome::Skipped
    );
    assert!(
        store.get(missing.id()).await.unwrap().is_none(),
        "touch must not create items"
    );
}

#[tokio::test]
async fn revoke_all_revokes_every_live_token_of_one_owner_only() {
    let store = fresh_store(10).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let t = now();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let rec = record(&alice, t, DAY);
        store.create(&rec, t).await.unwrap();
        ids.push(rec.meta.id);
    }
    store
        .revoke(&alice, &ids[0], t, shared::history::RevokedBy::Owner)
        .await
        .unwrap();
    let bobs = record(&bob, t, DAY);
    store.create(&bobs, t).await.unwrap();
    assert_eq!(
        store
            .revoke_all(&alice, t + 1, None, shared::history::RevokedBy::RevokeAll)
            .await
            .unwrap()
            .revoked,
        2
    );
    for id in &ids {
        assert!(
            store
                .get(id)
                .await
                .unwrap()
                .unwrap()
                .meta
                .revoked_at
                .is_some()
        );
    }
    assert!(
        store
            .get(&bobs.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .revoked_at
            .is_none()
    );
    assert_eq!(
        store
            .revoke_all(&alice, t + 2, None, shared::history::RevokedBy::RevokeAll)
            .await
            .unwrap()
            .revoked,
        0
    );
}

#[tokio::test]
async fn expired_and_revoked_items_carry_a_ttl_for_cleanup() {
    let (store, _) = fresh_store_with(fresh_config(5)).await;
    let (client, _) = shared::testing::client(&shared::testing::endpoint());
    let table = store.config().table_name.clone();
    let retention = store.config().retention_secs;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, DAY);
    store.create(&rec, t).await.unwrap();
    let ttl_of = |item: Option<&std::collections::HashMap<String, AttributeValue>>| {
        item.unwrap()
            .get("ttl")
            .unwrap()
            .as_n()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let key = |id: &str| {
        std::collections::HashMap::from([
            ("PK".to_owned(), AttributeValue::S(format!("TOKEN#{id}"))),
            ("SK".to_owned(), AttributeValue::S("TOKEN".into())),
        ])
    };
    let item = client
        .get_item()
        .table_name(&table)
        .set_key(Some(key(rec.meta.id.as_str())))
        .send()
        .await
        .unwrap();
    assert_eq!(ttl_of(item.item()), t + DAY + retention);
    store
        .revoke(
            &alice,
            &rec.meta.id,
            t + 5,
            shared::history::RevokedBy::Owner,
        )
        .await
        .unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .set_key(Some(key(rec.meta.id.as_str())))
        .send()
        .await
        .unwrap();
    assert_eq!(ttl_of(item.item()), t + 5 + retention);
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let desc = ttl.time_to_live_description().unwrap();
    assert_eq!(desc.attribute_name(), Some("ttl"));
}

#[tokio::test]
async fn items_from_an_unknown_schema_version_are_refused_not_misread() {
    let (store, _) = fresh_store_with(fresh_config(5)).await;
    let (client, _) = shared::testing::client(&shared::testing::endpoint());
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, DAY);
    store.create(&rec, t).await.unwrap();
    client
        .update_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{}", rec.meta.id)))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", AttributeValue::N("99".into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        store.get(&rec.meta.id).await,
        Err(StoreError::UnsupportedSchema(99))
    ));
}

#[tokio::test]
async fn a_bound_token_is_its_own_schema_version_with_its_thumbprint_and_a_rotation_keeps_it() {
    use shared::dpop::{ProofAlgorithm, ProofKey};
    let store = fresh_store(5).await;
    let (client, _) = shared::testing::client(&shared::testing::endpoint());
    let alice = user("alice");
    let t = now();
    let mut rec = record(&alice, t, DAY);
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    rec.meta.dpop_jkt = Some(key.public_jwk().thumbprint());
    store.create(&rec, t).await.unwrap();
    let got = store.get(&rec.meta.id).await.unwrap().unwrap();
    assert_eq!(got.meta.dpop_jkt, rec.meta.dpop_jkt);
    // v5: releases that read only up to v4 refuse it (UnsupportedSchema)
    // instead of taking it for a bearer token.
    assert_eq!(
        got.meta.schema_version,
        shared::record::BOUND_SCHEMA_VERSION
    );
    assert_eq!(shared::record::BOUND_SCHEMA_VERSION, 5);
    // The listing's details show it too.
    let listed = store.list(&alice, 10, None).await.unwrap();
    let ids: Vec<_> = listed.items.iter().map(|m| m.id.clone()).collect();
    let details = store.details(&ids).await.unwrap();
    assert_eq!(details[&rec.meta.id].dpop_jkt, rec.meta.dpop_jkt);
    // A successor carries the binding.
    let mut next = record(&alice, t + 1, DAY);
    next.meta.rotated_from = Some(rec.meta.id.clone());
    next.meta.dpop_jkt = rec.meta.dpop_jkt.clone();
    store
        .rotate(&alice, &rec.meta.id, &next, 0, t + 1)
        .await
        .unwrap();
    let succ = store.get(&next.meta.id).await.unwrap().unwrap();
    assert_eq!(succ.meta.dpop_jkt, rec.meta.dpop_jkt);

    // A binding is read strictly: a v5 item without one, or with a
    // malformed one, is refused (Corrupt), never read as unbound.
    let pk = AttributeValue::S(format!("TOKEN#{}", rec.meta.id));
    for update in ["REMOVE jkt", "SET jkt = :junk"] {
        let mut call = client
            .update_item()
            .table_name(&store.config().table_name)
            .key("PK", pk.clone())
            .key("SK", AttributeValue::S("TOKEN".into()))
            .update_expression(update);
        if update.contains(":junk") {
            call = call.expression_attribute_values(":junk", AttributeValue::S("short".into()));
        }
        call.send().await.unwrap();
        assert!(
            matches!(store.get(&rec.meta.id).await, Err(StoreError::Corrupt(_))),
            "{update}"
        );
    }
    // An unbound token at an older version with a `jkt` planted is refused too.
    let plain = record(&alice, t, DAY);
    store.create(&plain, t).await.unwrap();
    client
        .update_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{}", plain.meta.id)))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET jkt = :j")
        .expression_attribute_values(
            ":j",
            AttributeValue::S(key.public_jwk().thumbprint().as_str().to_owned()),
        )
        .send()
        .await
        .unwrap();
    assert!(matches!(
        store.get(&plain.meta.id).await,
        Err(StoreError::Corrupt("jkt"))
    ));
}

#[tokio::test]
async fn a_proof_is_accepted_once_by_the_replay_store_even_under_a_race() {
    let store = fresh_store(5).await;
    let key = [7u8; 32];
    let t = now();
    assert!(store.first_use_of_proof(&key, t + 60).await.unwrap());
    assert!(!store.first_use_of_proof(&key, t + 60).await.unwrap());
    // Sixteen racers on one fresh key: exactly one wins.
    let fresh = [9u8; 32];
    let racers = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.first_use_of_proof(&fresh, t + 60).await.unwrap() })
    });
    let wins = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn revoke_all_leaves_expired_tokens_alone() {
    let store = fresh_store(10).await;
    let alice = user("alice");
    let t = now();
    let short = record(&alice, t, 10);
    store.create(&short, t).await.unwrap();
    let live = record(&alice, t, DAY);
    store.create(&live, t).await.unwrap();
    assert_eq!(
        store
            .revoke_all(&alice, t + 20, None, shared::history::RevokedBy::RevokeAll)
            .await
            .unwrap()
            .revoked,
        1
    );
    assert!(
        store
            .get(&short.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .revoked_at
            .is_none()
    );
    assert!(
        store
            .get(&live.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .revoked_at
            .is_some()
    );
}

mod history;
mod migration;
mod revocation;
