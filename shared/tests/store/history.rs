//! A token's history, metadata edits and use sites, on the real DynamoDB API.

use shared::history::{EditedField, EventKind, RevokedBy};
use shared::store::{EditOutcome, RotateOutcome, TokenEdit, TouchOutcome};
use shared::testing::{fresh_config, fresh_store, fresh_store_with};
use shared::{Pat, UseSite};

use crate::{DAY, now, record, user};

fn kinds(page: &shared::store::EventPage) -> Vec<EventKind> {
    page.items.iter().map(|e| e.kind.clone()).collect()
}

#[tokio::test]
async fn create_rotate_edit_and_revoke_each_leave_one_event_newest_first() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let old = record(&alice, t, 30 * DAY);
    store.create(&old, t).await.unwrap();
    let edit = TokenEdit {
        name: Some("deploy".into()),
        description: Some(Some("used by the deploy job".into())),
        ..TokenEdit::default()
    };
    assert_eq!(
        store.edit(&old.meta, &edit, t + 1).await.unwrap(),
        EditOutcome::Edited
    );
    let mut new = record(&alice, t + 2, 30 * DAY);
    new.meta.rotated_from = Some(old.meta.id.clone());
    store
        .rotate(&alice, &old.meta.id, &new, 0, t + 2)
        .await
        .unwrap();
    store
        .revoke(&alice, &new.meta.id, t + 3, RevokedBy::Owner)
        .await
        .unwrap();

    let history = store.events(&old.meta.id, 10, None).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            EventKind::Rotated {
                from: None,
                to: Some(new.meta.id.clone())
            },
            EventKind::Updated {
                changes: vec![EditedField::Name, EditedField::Description]
            },
            EventKind::Created,
        ]
    );
    assert_eq!(history.items[0].at, t + 2);
    let history = store.events(&new.meta.id, 10, None).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            EventKind::Revoked {
                by: RevokedBy::Owner
            },
            EventKind::Rotated {
                from: Some(old.meta.id.clone()),
                to: None
            },
        ]
    );
    // The edit is on the record too.
    let edited = store.get(&old.meta.id).await.unwrap().unwrap().meta;
    assert_eq!(edited.name, "deploy");
    assert_eq!(
        edited.description.as_deref(),
        Some("used by the deploy job")
    );
}

#[tokio::test]
async fn events_of_the_same_second_list_in_the_order_they_happened() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    let edit = TokenEdit {
        name: Some("x".into()),
        ..TokenEdit::default()
    };
    store.edit(&rec.meta, &edit, t).await.unwrap();
    store
        .revoke(&alice, &rec.meta.id, t, RevokedBy::Owner)
        .await
        .unwrap();
    let names: Vec<&str> = store
        .events(&rec.meta.id, 10, None)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(names, ["revoked", "updated", "created"]);
}

#[tokio::test]
async fn history_pages_continue_where_they_stopped_and_junk_cursors_are_refused() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    let mut seen = rec.meta.clone();
    for i in 0..4 {
        let edit = TokenEdit {
            name: Some(format!("n{i}")),
            ..TokenEdit::default()
        };
        store.edit(&seen, &edit, t + 1 + i).await.unwrap();
        seen.name = format!("n{i}");
    }
    let first = store.events(&rec.meta.id, 2, None).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let second = store
        .events(&rec.meta.id, 2, first.next.as_ref())
        .await
        .unwrap();
    let third = store
        .events(&rec.meta.id, 2, second.next.as_ref())
        .await
        .unwrap();
    let times: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|p| p.items.iter().map(|e| e.at))
        .collect();
    assert_eq!(times, [t + 4, t + 3, t + 2, t + 1, t]);
    assert!(
        third.next.is_none()
            || store
                .events(&rec.meta.id, 2, third.next.as_ref())
                .await
                .unwrap()
                .items
                .is_empty()
    );
    for junk in ["", "!!", "QUFB", &"A".repeat(200)] {
        let cursor = shared::store::Cursor::from_client(junk);
        assert!(
            store.events(&rec.meta.id, 2, Some(&cursor)).await.is_err(),
            "{junk}"
        );
    }
}

#[tokio::test]
async fn an_edit_decided_on_a_stale_read_is_never_applied() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    // Someone narrows the scopes first…
    let narrow = TokenEdit {
        scopes: Some(shared::testing::names("tokens:read")),
        ..TokenEdit::default()
    };
    assert_eq!(
        store.edit(&rec.meta, &narrow, t).await.unwrap(),
        EditOutcome::Edited
    );
    // …so an edit decided against the old scopes must not land (it could
    // otherwise re-widen them).
    let stale = TokenEdit {
        scopes: Some(shared::testing::names("tokens:read docs:read")),
        ..TokenEdit::default()
    };
    assert_eq!(
        store.edit(&rec.meta, &stale, t + 1).await.unwrap(),
        EditOutcome::Conflict
    );
    let stored = store.get(&rec.meta.id).await.unwrap().unwrap().meta;
    assert_eq!(stored.scopes, shared::testing::names("tokens:read"));
    // A revoked token cannot be edited at all.
    store
        .revoke(&alice, &rec.meta.id, t + 2, RevokedBy::Owner)
        .await
        .unwrap();
    let rename = TokenEdit {
        name: Some("x".into()),
        ..TokenEdit::default()
    };
    assert_eq!(
        store.edit(&stored, &rename, t + 3).await.unwrap(),
        EditOutcome::Conflict
    );
    // Shortening the expiry moves the TTL with it.
    let other = record(&alice, t, 30 * DAY);
    store.create(&other, t).await.unwrap();
    let shorter = TokenEdit {
        expires_at: Some(t + DAY),
        ..TokenEdit::default()
    };
    store.edit(&other.meta, &shorter, t).await.unwrap();
    assert_eq!(
        store
            .get(&other.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .expires_at,
        t + DAY
    );
}

#[tokio::test]
async fn a_touch_writes_sites_and_new_ip_events_in_one_request() {
    let (store, counter) = fresh_store_with(fresh_config(5)).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t - 1000, 30 * DAY);
    store.create(&rec, t - 1000).await.unwrap();
    let site = UseSite::from_request("198.51.100.7", Some("ci/1"), t).unwrap();
    let before = counter.get();
    assert_eq!(
        store
            .touch(
                &rec.meta.id,
                t,
                std::slice::from_ref(&site),
                std::slice::from_ref(&site),
                Some(t + 30 * DAY),
            )
            .await
            .unwrap(),
        TouchOutcome::Written
    );
    assert_eq!(counter.get() - before, 1, "one request, event included");
    let stored = store.get(&rec.meta.id).await.unwrap().unwrap().meta;
    assert_eq!(stored.recent_uses, std::slice::from_ref(&site));
    assert_eq!(stored.last_used_at, Some(t));
    let events = store.events(&rec.meta.id, 10, None).await.unwrap();
    assert_eq!(
        events.items[0].kind,
        EventKind::NewIp {
            ip: "198.51.100.7".into(),
            user_agent: Some("ci/1".into())
        }
    );
    // Within the interval the store skips the write, event included.
    let other = UseSite::from_request("203.0.113.9", None, t + 1).unwrap();
    let before = counter.get();
    assert_eq!(
        store
            .touch(
                &rec.meta.id,
                t + 1,
                &[other.clone(), site],
                std::slice::from_ref(&other),
                None,
            )
            .await
            .unwrap(),
        TouchOutcome::Skipped
    );
    assert_eq!(counter.get() - before, 1);
    assert_eq!(
        store
            .events(&rec.meta.id, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // A touch of a token that does not exist writes nothing.
    let ghost = Pat::generate().unwrap();
    assert_eq!(
        store
            .touch(
                ghost.id(),
                t,
                std::slice::from_ref(&other),
                std::slice::from_ref(&other),
                None,
            )
            .await
            .unwrap(),
        TouchOutcome::Skipped
    );
    assert!(
        store
            .events(ghost.id(), 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// A rotation decided on a read from before an edit must not undo it: the
/// successor (derived from the old scopes and expiry) is not stored.
#[tokio::test]
async fn a_rotation_decided_before_an_edit_cannot_undo_it() {
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    let before_edit = rec.meta.clone();
    for edit in [
        TokenEdit {
            scopes: Some(shared::testing::names("tokens:read")),
            ..TokenEdit::default()
        },
        TokenEdit {
            expires_at: Some(t + DAY),
            ..TokenEdit::default()
        },
    ] {
        let current = store.get(&rec.meta.id).await.unwrap().unwrap().meta;
        assert_eq!(
            store.edit(&current, &edit, t).await.unwrap(),
            EditOutcome::Edited
        );
        let mut successor = record(&alice, t + 1, 30 * DAY);
        successor.meta.scopes = before_edit.scopes.clone();
        successor.meta.rotated_from = Some(rec.meta.id.clone());
        assert_eq!(
            store
                .rotate_as_read(&before_edit, &successor, 0, t + 1, None)
                .await
                .unwrap(),
            RotateOutcome::Changed
        );
        assert!(store.get(&successor.meta.id).await.unwrap().is_none());
    }
    // Decided on the current state, it goes through.
    let current = store.get(&rec.meta.id).await.unwrap().unwrap().meta;
    let mut successor = record(&alice, t + 2, DAY / 2);
    successor.meta.scopes = current.scopes.clone();
    assert_eq!(
        store
            .rotate_as_read(&current, &successor, 0, t + 2, None)
            .await
            .unwrap(),
        RotateOutcome::Rotated
    );
}

/// Use sites and the description are bookkeeping: a malformed one is
/// skipped, never a failed read (the authorizer's read decides requests).
#[tokio::test]
async fn malformed_use_sites_never_fail_a_read() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    let good = AttributeValue::M(
        [
            ("ip".to_owned(), AttributeValue::S("192.0.2.1".into())),
            ("at".to_owned(), AttributeValue::N(t.to_string())),
        ]
        .into(),
    );
    store
        .client()
        .update_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{}", rec.meta.id)))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET recent_uses = :l, description = :d")
        .expression_attribute_values(
            ":l",
            AttributeValue::L(vec![AttributeValue::S("junk".into()), good]),
        )
        .expression_attribute_values(":d", AttributeValue::N("7".into()))
        .send()
        .await
        .unwrap();
    let meta = store.get(&rec.meta.id).await.unwrap().unwrap().meta;
    assert_eq!(meta.recent_uses.len(), 1);
    assert_eq!(meta.recent_uses[0].ip, "192.0.2.1");
    assert_eq!(meta.description, None);
}

/// A history is read through its token, so it never outlives the token
/// item: each event's TTL is capped at the token's end of life plus the
/// token retention (7 days in tests), below the 90-day event retention.
#[tokio::test]
async fn history_events_never_outlive_their_token() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = fresh_store(5).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    store
        .revoke(&alice, &rec.meta.id, t + 10, RevokedBy::Owner)
        .await
        .unwrap();
    let items = store
        .client()
        .query()
        .table_name(&store.config().table_name)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("EVENTS#{}", rec.meta.id)))
        .send()
        .await
        .unwrap();
    let ttls: Vec<i64> = items
        .items()
        .iter()
        .map(|i| i["ttl"].as_n().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ttls.len(), 2);
    // created: capped at expiry + retention; revoked: at revocation + retention.
    assert!(ttls.contains(&(t + 30 * DAY + 7 * DAY)), "{ttls:?}");
    assert!(ttls.contains(&(t + 10 + 7 * DAY)), "{ttls:?}");
}

/// A shortened token frees its place under the cap when it now expires, not
/// at its old expiry.
#[tokio::test]
async fn a_shortened_token_stops_counting_against_the_cap_when_it_now_expires() {
    let store = fresh_store(1).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 30 * DAY);
    store.create(&rec, t).await.unwrap();
    let shorten = TokenEdit {
        expires_at: Some(t + DAY),
        ..TokenEdit::default()
    };
    assert_eq!(
        store.edit(&rec.meta, &shorten, t).await.unwrap(),
        EditOutcome::Edited
    );
    let next = record(&alice, t + DAY + 1, 30 * DAY);
    assert_eq!(
        store.create(&next, t + DAY + 1).await.unwrap(),
        shared::store::CreateOutcome::Created,
        "the shortened token expired, so its slot is free"
    );
}
