//! Revoke-all is final: racing rotations and creates cannot leave a token from
//! before it alive, and a revoke-all cut short is finished by a retry.

use std::time::{Duration, Instant};

use shared::store::{CreateOutcome, RotateOutcome};
use shared::testing::fresh_store;

use crate::{DAY, now, record, user};

/// Every token of `owner` that is live at `t`, by strongly consistent reads.
async fn live_tokens(
    store: &shared::store::TokenStore,
    ids: &[shared::TokenId],
    t: i64,
) -> Vec<shared::TokenMeta> {
    let mut live = Vec::new();
    for id in ids {
        if let Some(r) = store.get(id).await.unwrap()
            && r.meta.is_active(t)
        {
            live.push(r.meta);
        }
    }
    live
}

#[tokio::test]
async fn revoke_all_racing_a_rotation_never_leaves_a_live_successor() {
    let store = fresh_store(10).await;
    let t = now();
    for round in 0..24u64 {
        let owner = user(&format!("racer-{round}"));
        let old = record(&owner, t, DAY);
        store.create(&old, t).await.unwrap();
        let successor = record(&owner, t, DAY);
        let overlap = if round % 2 == 0 { 0 } else { 300 };
        let (a, b) = (store.clone(), store.clone());
        let (o1, o2) = (owner.clone(), owner.clone());
        let old_id = old.meta.id.clone();
        let succ = successor.clone();
        let revoke = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(round % 4)).await;
            a.revoke_all(&o1, t, None, shared::history::RevokedBy::RevokeAll)
                .await
                .unwrap()
        });
        let rotate = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((round / 4) % 4)).await;
            b.rotate(&o2, &old_id, &succ, overlap, t).await.unwrap()
        });
        let outcome = revoke.await.unwrap();
        assert!(outcome.complete());
        let rotated = rotate.await.unwrap();
        assert!(
            matches!(rotated, RotateOutcome::Rotated | RotateOutcome::NotActive),
            "round {round}: {rotated:?}"
        );
        let live = live_tokens(&store, &[old.meta.id.clone(), successor.meta.id.clone()], t).await;
        assert!(
            live.is_empty(),
            "round {round} ({rotated:?}): {} token(s) outlived revoke-all",
            live.len()
        );
    }
}

#[tokio::test]
async fn a_create_racing_revoke_all_never_leaves_a_token_from_before_it() {
    let store = fresh_store(50).await;
    let t = now();
    for round in 0..16u64 {
        let owner = user(&format!("creator-{round}"));
        store.create(&record(&owner, t, DAY), t).await.unwrap();
        let fresh = record(&owner, t, DAY);
        let (a, b) = (store.clone(), store.clone());
        let o1 = owner.clone();
        let rec = fresh.clone();
        let revoke = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(round % 3)).await;
            a.revoke_all(&o1, t, None, shared::history::RevokedBy::RevokeAll)
                .await
                .unwrap()
        });
        let create = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((round / 3) % 3)).await;
            b.create(&rec, t).await.unwrap()
        });
        let revoked = revoke.await.unwrap();
        assert_eq!(create.await.unwrap(), CreateOutcome::Created);
        let current = store.current_epoch(&owner).await.unwrap();
        assert_eq!(current, revoked.epoch);
        // The new token survives only if it was committed under the new epoch,
        // i.e. it was created after the revoke-all began.
        if let Some(r) = store.get(&fresh.meta.id).await.unwrap()
            && r.meta.is_active(t)
        {
            assert_eq!(
                r.meta.epoch, current,
                "round {round}: a pre-revoke-all create survived"
            );
        }
    }
}

#[tokio::test]
async fn revoke_all_cut_short_by_its_deadline_is_finished_by_a_retry() {
    let store = fresh_store(50).await;
    let owner = user("many");
    let t = now();
    let mut ids = Vec::new();
    for _ in 0..12 {
        let rec = record(&owner, t, DAY);
        store.create(&rec, t).await.unwrap();
        ids.push(rec.meta.id);
    }
    let cut = store
        .revoke_all(
            &owner,
            t,
            Some(Instant::now()),
            shared::history::RevokedBy::RevokeAll,
        )
        .await
        .unwrap();
    assert!(!cut.complete(), "{cut:?}");
    assert_eq!(cut.revoked + cut.remaining, 12, "{cut:?}");
    // What the deadline left behind can no longer rotate.
    let survivors = live_tokens(&store, &ids, t).await;
    assert!(!survivors.is_empty());
    let next = record(&owner, t, DAY);
    assert_eq!(
        store
            .rotate(&owner, &survivors[0].id, &next, 0, t)
            .await
            .unwrap(),
        RotateOutcome::NotActive
    );
    // A retry completes the job; a third call has nothing left to do.
    let retry = store
        .revoke_all(&owner, t + 1, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    assert!(retry.complete());
    assert_eq!(retry.revoked as usize, survivors.len());
    assert!(live_tokens(&store, &ids, t + 1).await.is_empty());
    assert_eq!(
        store
            .revoke_all(&owner, t + 2, None, shared::history::RevokedBy::RevokeAll)
            .await
            .unwrap()
            .revoked,
        0
    );
}

#[tokio::test]
async fn tokens_created_after_a_revoke_all_are_left_alone_by_it() {
    let store = fresh_store(10).await;
    let owner = user("after");
    let t = now();
    store.create(&record(&owner, t, DAY), t).await.unwrap();
    let first = store
        .revoke_all(&owner, t, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    assert_eq!(first.revoked, 1);
    let later = record(&owner, t + 1, DAY);
    store.create(&later, t + 1).await.unwrap();
    let stored = store.get(&later.meta.id).await.unwrap().unwrap();
    assert_eq!(stored.meta.epoch, first.epoch);
    assert!(stored.meta.is_active(t + 1));
}

#[tokio::test]
async fn an_overlapping_rotation_at_the_cap_is_refused_and_changes_nothing() {
    let store = fresh_store(1).await;
    let owner = user("capped");
    let t = now();
    let old = record(&owner, t, DAY);
    store.create(&old, t).await.unwrap();
    let next = record(&owner, t, DAY);
    assert_eq!(
        store
            .rotate(&owner, &old.meta.id, &next, 600, t)
            .await
            .unwrap(),
        RotateOutcome::CapReached
    );
    let kept = store.get(&old.meta.id).await.unwrap().unwrap();
    assert!(kept.meta.rotated_to.is_none() && kept.meta.is_active(t));
    assert!(store.get(&next.meta.id).await.unwrap().is_none());
    assert_eq!(
        store
            .rotate(&owner, &old.meta.id, &next, 0, t)
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
}

#[tokio::test]
async fn a_second_revoke_all_also_revokes_tokens_created_since_the_first() {
    let store = fresh_store(10).await;
    let owner = user("twice");
    let t = now();
    store.create(&record(&owner, t, DAY), t).await.unwrap();
    assert_eq!(
        store
            .revoke_all(&owner, t, None, shared::history::RevokedBy::RevokeAll)
            .await
            .unwrap()
            .revoked,
        1
    );
    let between = record(&owner, t + 1, DAY);
    store.create(&between, t + 1).await.unwrap();
    let second = store
        .revoke_all(&owner, t + 2, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    assert_eq!(second.revoked, 1);
    assert!(
        !store
            .get(&between.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .is_active(t + 2)
    );
}

#[tokio::test]
async fn only_sessions_signed_in_after_the_last_revoke_all_may_create() {
    let store = fresh_store(10).await;
    let owner = user("signed-in");
    let t = now();
    // No revoke-all yet: any session may create.
    assert_eq!(
        store
            .create_for_session(&record(&owner, t, DAY), t, t - 3600)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    store
        .revoke_all(&owner, t, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    for issued_at in [t - 3600, t] {
        assert_eq!(
            store
                .create_for_session(&record(&owner, t + 1, DAY), t + 1, issued_at)
                .await
                .unwrap(),
            CreateOutcome::SessionPredatesRevocation,
            "issued at {issued_at}"
        );
    }
    assert_eq!(
        store
            .create_for_session(&record(&owner, t + 2, DAY), t + 2, t + 1)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
    // Other owners are unaffected.
    assert_eq!(
        store
            .create_for_session(&record(&user("other"), t, DAY), t, t - 3600)
            .await
            .unwrap(),
        CreateOutcome::Created
    );
}

#[tokio::test]
async fn revoke_all_finds_tokens_written_before_active_sets_existed_once_then_stops_listing() {
    let (store, calls) = shared::testing::fresh_store_with(shared::testing::fresh_config(10)).await;
    let owner = user("legacy");
    let t = now();
    // A token as the first schema wrote it: no slot in any active set.
    let legacy = record(&owner, t, DAY);
    shared::testing::put_v1_token(&store, &legacy).await;
    let first = store
        .revoke_all(&owner, t, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    assert!(first.complete(), "{first:?}");
    assert_eq!(first.revoked, 1);
    assert!(
        !store
            .get(&legacy.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .is_active(t)
    );

    // Later calls revoke from the active set alone: a long history of
    // revoked tokens cannot make them slow.
    for _ in 0..3 {
        let r = record(&owner, t, DAY);
        store.create(&r, t).await.unwrap();
        store
            .revoke(&owner, &r.meta.id, t, shared::history::RevokedBy::Owner)
            .await
            .unwrap();
    }
    let live = record(&owner, t, DAY);
    store.create(&live, t).await.unwrap();
    let before = calls.get();
    let second = store
        .revoke_all(&owner, t + 1, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    assert!(second.complete() && second.revoked == 1, "{second:?}");
    // The revoke-all time, the epoch bump, the active-set read, and one read
    // plus one transaction to revoke: no listing.
    assert_eq!(
        calls.get() - before,
        5,
        "revoke-all listed the history again"
    );
}

#[tokio::test]
async fn the_last_revoke_all_time_never_moves_backwards() {
    let store = fresh_store(10).await;
    let owner = user("monotonic");
    let t = now();
    store
        .revoke_all(&owner, t + 100, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    // A late caller with an older clock (say a long sweep) must not reopen
    // the window for sessions issued between the two.
    store
        .revoke_all(&owner, t, None, shared::history::RevokedBy::RevokeAll)
        .await
        .unwrap();
    assert_eq!(
        store
            .create_for_session(&record(&owner, t + 101, DAY), t + 101, t + 50)
            .await
            .unwrap(),
        CreateOutcome::SessionPredatesRevocation
    );
}
