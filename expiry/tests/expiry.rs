//! The expiry sweeper and the owner notifier against moto: DynamoDB (the
//! expiry index and the claim markers), EventBridge (a rule on the agpat bus
//! delivering to an SQS queue the test reads), Cognito and SES.

#![expect(clippy::unwrap_used, reason = "test helpers")]

use std::collections::BTreeMap;

use expiry::{NotifyOutcome, Sweeper};
use shared::hash::PhcHash;
use shared::history::{BusEvent, BusEventKind, EventKind, RevokedBy};
use shared::testing::bus::{BusWithQueue, sdk};
use shared::testing::{endpoint, fresh_store};
use shared::{Clock, Pat, SystemClock, TokenId, TokenMeta, TokenRecord, UserId};

const DAY: i64 = 86_400;

fn uuid_like() -> String {
    Pat::generate().unwrap().id().as_str().to_lowercase()
}

fn token(owner: &UserId, created_at: i64, expires_at: i64) -> TokenRecord {
    let pat = Pat::generate().unwrap();
    TokenRecord {
        meta: TokenMeta::issued(
            pat.id().clone(),
            owner.clone(),
            "ci",
            shared::testing::names("tokens:read"),
            created_at,
            expires_at,
        ),
        hash: PhcHash::from_stored("$argon2id$placeholder".into()),
    }
}

/// Tokens on both sides of every threshold, swept twice at once and once
/// more in sequence: exactly one event per token and threshold, and none for
/// tokens that have not crossed one, are revoked, or never lived that long.
#[tokio::test]
async fn each_token_gets_exactly_one_event_per_threshold_however_often_the_sweeper_runs() {
    let sdk = sdk().await;
    let bus = BusWithQueue::create(&sdk).await;
    let store = fresh_store(100).await;
    let owner = UserId::parse("owner-1").unwrap();
    let t = SystemClock.now();
    let long_ago = t - 80 * DAY;
    let mut crossed: BTreeMap<u32, TokenId> = BTreeMap::new();
    let mut not_yet: BTreeMap<u32, TokenId> = BTreeMap::new();
    for days in shared::expiry::WARNING_DAYS {
        let lead = i64::from(days) * DAY;
        let inside = token(&owner, long_ago, t + lead - 600); // crossed 10 minutes ago
        let outside = token(&owner, long_ago, t + lead + 600); // crosses in 10 minutes
        store.create(&inside, long_ago).await.unwrap();
        store.create(&outside, long_ago).await.unwrap();
        crossed.insert(days, inside.meta.id.clone());
        not_yet.insert(days, outside.meta.id.clone());
    }
    let expired = token(&owner, long_ago, t - 600);
    let live = token(&owner, long_ago, t + 600);
    let revoked = token(&owner, long_ago, t + 7 * DAY - 600);
    // Issued five minutes ago for less than seven days: its 7-day crossing
    // happened before it existed, so it gets no 7-day warning.
    let short = token(&owner, t - 300, t + 7 * DAY - 600);
    for rec in [&expired, &live, &revoked, &short] {
        store.create(rec, rec.meta.created_at.min(t)).await.unwrap();
    }
    store
        .revoke(&owner, &revoked.meta.id, t - 100, RevokedBy::Owner)
        .await
        .unwrap();

    let sweeper = Sweeper {
        store: store.clone(),
        events: bus.bus.client.clone(),
        bus: bus.bus.name.clone(),
    };
    // Two runs at once (an overlap), then a rerun.
    let (a, b) = tokio::join!(sweeper.sweep(t, None), sweeper.sweep(t, None));
    let (a, b) = (a.unwrap(), b.unwrap());
    let rerun = sweeper.sweep(t, None).await.unwrap();
    let published: u64 = [&a, &b, &rerun]
        .iter()
        .flat_map(|r| r.published.values())
        .sum();
    assert_eq!(published, 5, "{a:?} {b:?} {rerun:?}");

    let mut expected: Vec<(String, String, Option<u64>)> = crossed
        .iter()
        .map(|(days, id)| {
            (
                "agpat.token.expiring".to_owned(),
                id.to_string(),
                Some(u64::from(*days)),
            )
        })
        .chain([
            (
                "agpat.token.expired".to_owned(),
                expired.meta.id.to_string(),
                None,
            ),
            // Ten minutes from expiry, it crossed the 1-day line 23h50 ago:
            // inside the first run's one-day look-back.
            (
                "agpat.token.expiring".to_owned(),
                live.meta.id.to_string(),
                Some(1),
            ),
        ])
        .collect();
    expected.sort();
    assert_eq!(bus.drain().await, expected);

    // Later, the tokens on the other side cross (and the near one expires).
    let later = sweeper.sweep(t + 1200, None).await.unwrap();
    let mut expected: Vec<(String, String, Option<u64>)> = not_yet
        .iter()
        .map(|(days, id)| {
            (
                "agpat.token.expiring".to_owned(),
                id.to_string(),
                Some(u64::from(*days)),
            )
        })
        .chain([(
            "agpat.token.expired".to_owned(),
            live.meta.id.to_string(),
            None,
        )])
        .collect();
    expected.sort();
    assert_eq!(bus.drain().await, expected, "{later:?}");
    sweeper.sweep(t + 1200, None).await.unwrap();
    assert!(bus.drain().await.is_empty(), "a rerun sends nothing");

    // The owner's history shows the warning too.
    let history = store.events(&crossed[&7], 10, None).await.unwrap();
    assert_eq!(history.items[0].kind, EventKind::Expiring { days_left: 7 });
}

/// The notifier emails the owner's verified address through SES, and
/// nobody else.
#[tokio::test]
async fn the_owner_is_emailed_at_a_verified_address_only() {
    let sdk = sdk().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let pool = cognito
        .create_user_pool()
        .pool_name(format!("p{}", uuid_like()))
        .send()
        .await
        .unwrap();
    let pool_id = pool.user_pool().unwrap().id().unwrap().to_owned();
    let mut subs = Vec::new();
    for (name, email, verified) in [
        ("verified", "owner@example.com", "true"),
        ("unverified", "other@example.com", "false"),
        ("disabled", "gone@example.com", "true"),
    ] {
        use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};
        let attr = |n: &str, v: &str| AttributeType::builder().name(n).value(v).build().unwrap();
        let user = cognito
            .admin_create_user()
            .user_pool_id(&pool_id)
            .username(name)
            .message_action(MessageActionType::Suppress)
            .user_attributes(attr("email", email))
            .user_attributes(attr("email_verified", verified))
            .send()
            .await
            .unwrap();
        let sub = user
            .user()
            .unwrap()
            .attributes()
            .iter()
            .find(|a| a.name() == "sub")
            .unwrap()
            .value()
            .unwrap()
            .to_owned();
        subs.push(sub);
    }
    cognito
        .admin_disable_user()
        .user_pool_id(&pool_id)
        .username("disabled")
        .send()
        .await
        .unwrap();
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    let from = format!("agpat-{}@example.com", uuid_like());
    ses.create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    let notifier = expiry::Notifier {
        cognito,
        user_pool_id: pool_id,
        ses,
        from: from.clone(),
    };
    let event = |owner: &str| {
        let e = BusEvent {
            kind: BusEventKind::LeakReported,
            token: Pat::generate().unwrap().id().clone(),
            owner: UserId::parse(owner).unwrap(),
            name: "deploy".into(),
            expires_at: SystemClock.now() + DAY,
            at: SystemClock.now(),
        };
        serde_json::json!({"source": "agpat", "detail-type": e.detail_type(), "detail": e.detail()})
    };
    assert_eq!(
        notifier.notify(&event(&subs[0])).await.unwrap(),
        NotifyOutcome::Sent
    );
    assert_eq!(
        notifier.notify(&event(&subs[1])).await.unwrap(),
        NotifyOutcome::NoVerifiedAddress
    );
    assert_eq!(
        notifier.notify(&event(&subs[2])).await.unwrap(),
        NotifyOutcome::NoVerifiedAddress,
        "a disabled user is being offboarded, not emailed"
    );
    assert_eq!(
        notifier.notify(&event("no-such-user")).await.unwrap(),
        NotifyOutcome::NoVerifiedAddress
    );
    assert_eq!(
        notifier.notify(&event("service:ci-deploy")).await.unwrap(),
        NotifyOutcome::NoVerifiedAddress,
        "a service has no mailbox"
    );
    assert_eq!(
        notifier
            .notify(&serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}))
            .await
            .unwrap(),
        NotifyOutcome::Ignored
    );
    // What SES (moto) recorded as sent from our identity.
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent: Vec<&serde_json::Value> = data["ses"]
        .as_object()
        .into_iter()
        .flat_map(|models| models.values())
        .flat_map(|list| list.as_array().into_iter().flatten())
        .filter(|m| m.get("destinations").is_some() && m.to_string().contains(&from))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = sent[0].to_string();
    assert!(
        text.contains("owner@example.com") && !text.contains("other@example.com"),
        "{text}"
    );
    assert!(
        text.contains("reported it") && text.contains("leaked"),
        "{text}"
    );
}

/// A run that reaches its deadline leaves the checkpoint alone, so the next
/// run covers the same window and sends what the first did not.
#[tokio::test]
async fn a_run_cut_short_by_its_deadline_is_finished_by_the_next() {
    let sdk = sdk().await;
    let bus = BusWithQueue::create(&sdk).await;
    let store = fresh_store(100).await;
    let owner = UserId::parse("owner-2").unwrap();
    let t = SystemClock.now();
    let rec = token(&owner, t - 80 * DAY, t + 7 * DAY - 600);
    store.create(&rec, t - 80 * DAY).await.unwrap();
    let sweeper = Sweeper {
        store: store.clone(),
        events: bus.bus.client.clone(),
        bus: bus.bus.name.clone(),
    };
    let cut = sweeper
        .sweep(t, Some(std::time::Instant::now()))
        .await
        .unwrap();
    assert!(!cut.complete);
    assert!(bus.drain().await.is_empty());
    assert_eq!(store.sweep_checkpoint().await.unwrap(), None);
    let next = sweeper.sweep(t + 60, None).await.unwrap();
    assert!(next.complete);
    assert_eq!(
        bus.drain().await,
        [(
            "agpat.token.expiring".to_owned(),
            rec.meta.id.to_string(),
            Some(7)
        )]
    );
    assert_eq!(store.sweep_checkpoint().await.unwrap(), Some(t + 60));
}
