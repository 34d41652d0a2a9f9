//! Schema evolution: mixed v1/v2/v3 tables, and the migration runner to v3.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::migrate::{MigrationConfig, Progress, run};
use shared::store::TokenStore;
use shared::testing::{fresh_store, put_v1_token};
use shared::{TokenRecord, UserId};

use crate::{DAY, now, record, user};

async fn seed_v1(store: &TokenStore, owner: &UserId, n: usize) -> Vec<TokenRecord> {
    let t = now();
    let mut out = Vec::new();
    for i in 0..n {
        let mut rec = record(owner, t - 1000 + i as i64, 30 * DAY);
        rec.meta.schema_version = 1;
        rec.meta.scopes = shared::testing::names("items:read tokens:read");
        put_v1_token(store, &rec).await;
        out.push(rec);
    }
    out
}

async fn raw_version(store: &TokenStore, rec: &TokenRecord) -> (i64, Option<Vec<String>>) {
    let out = store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{}", rec.meta.id)))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = out.item().unwrap();
    let v = item["v"].as_n().unwrap().parse().unwrap();
    let mut set = item.get("scope_set").map(|s| s.as_ss().unwrap().clone());
    if let Some(s) = set.as_mut() {
        s.sort();
    }
    (v, set)
}

fn config(dry_run: bool) -> MigrationConfig {
    MigrationConfig {
        segments: 3,
        page_size: 7,
        max_writes_per_sec: 0,
        dry_run,
    }
}

#[tokio::test]
async fn a_mixed_v1_and_v2_table_reads_correctly() {
    let store = fresh_store(100).await;
    let alice = user("alice");
    let v1 = seed_v1(&store, &alice, 5).await;
    let t = now();
    let v2 = record(&alice, t, DAY);
    store.create(&v2, t).await.unwrap();
    for rec in &v1 {
        let got = store.get(&rec.meta.id).await.unwrap().unwrap();
        assert_eq!(got.meta.schema_version, 1);
        assert_eq!(
            got.meta.scopes, rec.meta.scopes,
            "v1 scopes upgraded in memory"
        );
    }
    assert_eq!(
        store
            .get(&v2.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .schema_version,
        3
    );
    assert_eq!(
        raw_version(&store, &v2).await.0,
        3,
        "writers write the current version"
    );
    let listed = store.list(&alice, 100, None).await.unwrap().items;
    assert_eq!(listed.len(), 6);
    // Lifecycle operations work on v1 items and keep their version.
    assert_eq!(
        store
            .revoke(&alice, &v1[0].meta.id, t, shared::history::RevokedBy::Owner)
            .await
            .unwrap(),
        shared::store::RevokeOutcome::Revoked
    );
    assert_eq!(raw_version(&store, &v1[0]).await.0, 1);
}

#[tokio::test]
async fn a_dry_run_counts_per_version_and_writes_nothing() {
    let store = fresh_store(100).await;
    let alice = user("alice");
    let v1 = seed_v1(&store, &alice, 9).await;
    let t = now();
    for _ in 0..4 {
        store.create(&record(&alice, t, DAY), t).await.unwrap();
    }
    let report = run(
        store.client(),
        &store.config().table_name,
        &config(true),
        Arc::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.by_version.get(&1), Some(&9));
    assert_eq!(report.by_version.get(&3), Some(&4));
    assert_eq!(report.migrated, 0);
    for rec in &v1 {
        assert_eq!(raw_version(&store, rec).await, (1, None), "dry run wrote");
    }
    let checkpoints = store
        .client()
        .scan()
        .table_name(&store.config().table_name)
        .filter_expression("begins_with(PK, :m)")
        .expression_attribute_values(":m", AttributeValue::S("MIGRATION#".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(checkpoints.count(), 0, "a dry run leaves no checkpoint");
}

#[tokio::test]
async fn a_migration_racing_a_live_writer_loses_no_write() {
    let store = fresh_store(200).await;
    let alice = user("alice");
    let v1 = seed_v1(&store, &alice, 60).await;
    let t = now();
    let writer = {
        let (store, alice, v1) = (store.clone(), alice.clone(), v1.clone());
        tokio::spawn(async move {
            for (i, rec) in v1.iter().enumerate() {
                if i % 3 == 0 {
                    store
                        .revoke(
                            &alice,
                            &rec.meta.id,
                            t + 1,
                            shared::history::RevokedBy::Owner,
                        )
                        .await
                        .unwrap();
                } else {
                    store
                        .touch(&rec.meta.id, t + 2, &[], &[], None)
                        .await
                        .unwrap();
                }
            }
        })
    };
    let mut cfg = config(false);
    cfg.max_writes_per_sec = 200;
    let report = run(
        store.client(),
        &store.config().table_name,
        &cfg,
        Arc::default(),
    )
    .await
    .unwrap();
    writer.await.unwrap();
    assert!(report.complete);
    assert_eq!(report.migrated + report.skipped, 60);
    for (i, rec) in v1.iter().enumerate() {
        let (v, set) = raw_version(&store, rec).await;
        assert_eq!(v, 3, "every item ends on the current version");
        assert_eq!(
            set,
            Some(vec!["items:read".to_owned(), "tokens:read".to_owned()])
        );
        let meta = store.get(&rec.meta.id).await.unwrap().unwrap().meta;
        if i % 3 == 0 {
            assert_eq!(meta.revoked_at, Some(t + 1), "a revocation was lost");
        } else {
            assert_eq!(meta.last_used_at, Some(t + 2), "a last_used write was lost");
        }
    }
}

#[tokio::test]
async fn an_interrupted_migration_resumes_and_migrates_each_item_once() {
    let store = fresh_store(200).await;
    let alice = user("alice");
    let v1 = seed_v1(&store, &alice, 50).await;
    let table = store.config().table_name.clone();
    let first = Arc::new(Progress::default());
    let watcher = {
        let progress = first.clone();
        tokio::spawn(async move {
            while progress.migrated.load(Ordering::SeqCst) < 15 {
                tokio::task::yield_now().await;
            }
            progress.stop.store(true, Ordering::SeqCst); // "killed" midway
        })
    };
    let mut cfg = config(false);
    cfg.segments = 1;
    let interrupted = run(store.client(), &table, &cfg, first).await.unwrap();
    watcher.await.unwrap();
    assert!(!interrupted.complete);
    assert!(interrupted.migrated >= 15 && interrupted.migrated < 50);
    let resumed = run(store.client(), &table, &cfg, Arc::default())
        .await
        .unwrap();
    assert!(resumed.complete);
    assert_eq!(
        interrupted.migrated + resumed.migrated,
        50,
        "each item migrated exactly once"
    );
    for rec in &v1 {
        assert_eq!(raw_version(&store, rec).await.0, 3);
    }
    let again = run(store.client(), &table, &cfg, Arc::default())
        .await
        .unwrap();
    assert_eq!(again.migrated, 0, "a finished migration is a no-op");
}

/// v3 adds the expiry index's keys: a v2 item (written before them) is not
/// in the index until the migration gives it its keys, then it is.
#[tokio::test]
async fn the_migration_puts_older_tokens_into_the_expiry_index() {
    let store = fresh_store(100).await;
    let alice = user("alice");
    let t = now();
    let v2 = record(&alice, t, 10 * DAY);
    store.create(&v2, t).await.unwrap();
    // Make it what a v2 writer left: no GSI2 keys, v = 2.
    store
        .client()
        .update_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{}", v2.meta.id)))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET v = :two REMOVE GSI2PK, GSI2SK")
        .expression_attribute_values(":two", AttributeValue::N("2".into()))
        .send()
        .await
        .unwrap();
    let v1 = seed_v1(&store, &alice, 2).await;
    let window = (t, t + 40 * DAY);
    assert!(
        store
            .expiring_between(window.0, window.1)
            .await
            .unwrap()
            .is_empty()
    );
    let report = run(
        store.client(),
        &store.config().table_name,
        &config(false),
        Arc::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.migrated, 3);
    let mut found: Vec<_> = store
        .expiring_between(window.0 - DAY, window.1)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    found.sort();
    let mut expected = vec![
        v2.meta.id.clone(),
        v1[0].meta.id.clone(),
        v1[1].meta.id.clone(),
    ];
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(raw_version(&store, &v2).await.0, 3);
}

/// Rolling out v3 over a table older readers still read: with writes pinned
/// to v2, new tokens carry `v = 2` (which those readers accept) and already
/// the expiry index's keys, so they are in the index from the start.
#[tokio::test]
async fn writes_pinned_to_v2_are_read_by_v2_readers_and_already_indexed() {
    let mut cfg = shared::testing::fresh_config(10);
    cfg.write_schema_version = 2;
    let (store, _) = shared::testing::fresh_store_with(cfg).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, 10 * DAY);
    store.create(&rec, t).await.unwrap();
    assert_eq!(raw_version(&store, &rec).await.0, 2);
    let found = store.expiring_between(t, t + 11 * DAY).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, rec.meta.id);
    assert_eq!(
        store
            .get(&rec.meta.id)
            .await
            .unwrap()
            .unwrap()
            .meta
            .schema_version,
        2
    );
}

/// A v2 (or later) item's `scope_set` is what readers trust, and it must
/// agree with `scopes`: a disagreeing one is corrupt, never silently read.
#[tokio::test]
async fn a_v2_item_whose_scope_set_disagrees_with_scopes_is_refused() {
    let store = fresh_store(10).await;
    let alice = user("alice");
    let t = now();
    let rec = record(&alice, t, DAY);
    store.create(&rec, t).await.unwrap();
    store
        .client()
        .update_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{}", rec.meta.id)))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET v = :two, scope_set = :wide")
        .expression_attribute_values(":two", AttributeValue::N("2".into()))
        .expression_attribute_values(
            ":wide",
            AttributeValue::Ss(vec!["admin:all".into(), "tokens:read".into()]),
        )
        .send()
        .await
        .unwrap();
    assert!(matches!(
        store.get(&rec.meta.id).await,
        Err(shared::store::StoreError::Corrupt("scope_set"))
    ));
}
