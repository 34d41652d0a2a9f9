//! Offboarding against moto: a real user pool (Cognito API) and a real token
//! table, driven with CloudTrail-shaped EventBridge events.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

use authorizer::config::PatConfig;
use authorizer::pat::PatVerifier;
use aws_sdk_cognitoidentityprovider::Client as CognitoClient;
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};
use offboarding::{CloudTrailEnvelope, HIDDEN, Offboarding, Outcome};
use serde_json::{Value, json};
use shared::hash::{HashParams, SecretHasher};
use shared::store::TokenStore;
use shared::{Pat, TokenMeta, TokenRecord, UserId};

const NOW: i64 = 1_900_000_000;
const FIXTURE: &str = include_str!("fixtures/admin-disable-user.json");

fn cognito() -> CognitoClient {
    let conf = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(shared::testing::endpoint())
        .build();
    CognitoClient::from_conf(conf)
}

struct World {
    handler: Offboarding,
    verifier: PatVerifier<TokenStore>,
}

async fn world() -> World {
    let store = shared::testing::fresh_store(20).await;
    let cognito = cognito();
    let pool = cognito
        .create_user_pool()
        .pool_name(format!("offboarding-{}", uuid_like()))
        .send()
        .await
        .unwrap();
    let user_pool_id = pool.user_pool().unwrap().id().unwrap().to_owned();
    let hasher = SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN).unwrap();
    let cfg = PatConfig {
        positive_ttl_secs: 0,
        negative_ttl_secs: 0,
        max_failures_per_source: 5,
    };
    World {
        verifier: PatVerifier::new(store.clone(), hasher, cfg, 300, shared::testing::manifest())
            .unwrap(),
        handler: Offboarding {
            store,
            cognito,
            user_pool_id,
        },
    }
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        u128::from_le_bytes(shared::pat::os_random::<16>().unwrap())
    )
}

/// A Cognito user; returns its `sub`.
async fn create_user(w: &World, username: &str) -> UserId {
    let user = w
        .handler
        .cognito
        .admin_create_user()
        .user_pool_id(&w.handler.user_pool_id)
        .username(username)
        .message_action(MessageActionType::Suppress)
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(format!("{username}@example.com"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let sub = user
        .user()
        .unwrap()
        .attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .unwrap()
        .to_owned();
    UserId::parse(&sub).unwrap()
}

/// Issues a real PAT for `owner` the way the token service does (alias first).
async fn issue(w: &World, owner: &UserId, username: &str) -> Pat {
    let store = &w.handler.store;
    store.remember_username(username, owner).await.unwrap();
    let pat = Pat::generate().unwrap();
    let hash = SecretHasher::new(HashParams::OWASP_MIN, HashParams::OWASP_MIN)
        .unwrap()
        .hash(pat.secret())
        .unwrap();
    let record = TokenRecord {
        meta: TokenMeta::issued(
            pat.id().clone(),
            owner.clone(),
            "ci",
            shared::testing::manifest()
                .scopes()
                .names(shared::testing::default_scopes()),
            NOW - 10,
            NOW + 86_400,
        ),
        hash,
    };
    store.create(&record, NOW - 10).await.unwrap();
    pat
}

async fn works(w: &World, pat: &Pat, at: i64) -> bool {
    w.verifier
        .verify(pat.expose(), at, "198.51.100.9")
        .await
        .is_ok()
}

fn event(name: &str, pool: &str, username: Option<&str>, sub: Option<&str>) -> CloudTrailEnvelope {
    let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["detail"]["eventName"] = json!(name);
    v["detail"]["requestParameters"] = json!({"userPoolId": pool});
    if let Some(u) = username {
        v["detail"]["requestParameters"]["username"] = json!(u);
    }
    if let Some(s) = sub {
        v["detail"]["additionalEventData"] = json!({"sub": s});
    }
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn disabling_a_user_revokes_their_tokens_and_re_enabling_does_not_bring_them_back() {
    let logs = shared::testing::LogCapture::global();
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let carol = create_user(&w, "carol").await;
    let other = create_user(&w, "oscar").await;
    let (a, b) = (
        issue(&w, &carol, "carol").await,
        issue(&w, &carol, "carol").await,
    );
    let bystander = issue(&w, &other, "oscar").await;
    assert!(works(&w, &a, NOW).await && works(&w, &b, NOW).await);

    w.handler
        .cognito
        .admin_disable_user()
        .user_pool_id(&pool)
        .username("carol")
        .send()
        .await
        .unwrap();
    let outcome = w
        .handler
        .handle(&event("AdminDisableUser", &pool, Some("carol"), None), NOW)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Revoked {
            owners: vec![carol.clone()],
            revoked: 2
        }
    );
    assert!(!works(&w, &a, NOW + 1).await && !works(&w, &b, NOW + 1).await);
    assert!(
        works(&w, &bystander, NOW + 1).await,
        "another user is untouched"
    );
    // The owner's history says why.
    let history = w.handler.store.events(a.id(), 10, None).await.unwrap();
    assert_eq!(
        history.items[0].kind,
        shared::history::EventKind::Revoked {
            by: shared::history::RevokedBy::Offboarding
        }
    );
    // The revocation is audited, naming the owner and the Cognito call.
    let text = logs.text();
    let audit = text
        .lines()
        .find(|l| l.contains("token.offboarding_revoke") && l.contains(carol.as_str()))
        .unwrap_or_else(|| panic!("no offboarding audit line: {text}"));
    assert!(
        audit.contains("AdminDisableUser") && audit.contains("\"revoked\":2"),
        "{audit}"
    );
    assert!(!text.contains(a.expose()) && !text.contains(b.expose()));
    // Carol's Cognito access token stays valid after the disable, but a
    // session signed in before offboarding cannot mint new tokens.
    let late = TokenRecord {
        meta: TokenMeta {
            id: Pat::generate().unwrap().id().clone(),
            revoked_at: None,
            ..w.handler.store.get(a.id()).await.unwrap().unwrap().meta
        },
        hash: shared::hash::PhcHash::from_stored("$argon2id$unused".into()),
    };
    assert_eq!(
        w.handler
            .store
            .create_for_session(&late, NOW + 10, NOW - 60)
            .await
            .unwrap(),
        shared::store::CreateOutcome::SessionPredatesRevocation
    );

    // Re-enabling the user does not resurrect anything; a replayed event is a no-op.
    w.handler
        .cognito
        .admin_enable_user()
        .user_pool_id(&pool)
        .username("carol")
        .send()
        .await
        .unwrap();
    let again = w
        .handler
        .handle(
            &event("AdminDisableUser", &pool, Some("carol"), None),
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Outcome::Revoked {
            owners: vec![carol],
            revoked: 0
        }
    );
    assert!(!works(&w, &a, NOW + 3).await);
}

#[tokio::test]
async fn deleting_a_user_revokes_their_tokens_through_the_username_alias() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let dave = create_user(&w, "dave").await;
    let pat = issue(&w, &dave, "dave").await;
    w.handler
        .cognito
        .admin_delete_user()
        .user_pool_id(&pool)
        .username("dave")
        .send()
        .await
        .unwrap();
    // Cognito no longer knows "dave"; the alias recorded at issue does.
    let outcome = w
        .handler
        .handle(&event("AdminDeleteUser", &pool, Some("dave"), None), NOW)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Revoked {
            owners: vec![dave],
            revoked: 1
        }
    );
    assert!(!works(&w, &pat, NOW + 1).await);
}

#[tokio::test]
async fn a_self_delete_with_a_hidden_username_is_resolved_through_the_sub() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let erin = create_user(&w, "erin").await;
    let pat = issue(&w, &erin, "erin").await;
    let mut e = event("DeleteUser", &pool, Some(HIDDEN), Some(erin.as_str()));
    // DeleteUser is called with the user's own access token: no pool id.
    e.detail.request_parameters = Some(offboarding::RequestParameters {
        user_pool_id: None,
        username: Some(HIDDEN.into()),
    });
    let outcome = w.handler.handle(&e, NOW).await.unwrap();
    assert!(
        matches!(outcome, Outcome::Revoked { revoked: 1, .. }),
        "{outcome:?}"
    );
    assert!(!works(&w, &pat, NOW + 1).await);
}

#[tokio::test]
async fn other_pools_failed_calls_and_other_events_change_nothing() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let frank = create_user(&w, "frank").await;
    let pat = issue(&w, &frank, "frank").await;
    let cases = [
        event("AdminDisableUser", "us-east-1_Other", Some("frank"), None),
        event("AdminEnableUser", &pool, Some("frank"), None),
        {
            let mut failed = event("AdminDeleteUser", &pool, Some("frank"), None);
            failed.detail.error_code = Some("UserNotFoundException".into());
            failed
        },
    ];
    for e in &cases {
        let outcome = w.handler.handle(e, NOW).await.unwrap();
        assert!(matches!(outcome, Outcome::Ignored(_)), "{outcome:?}");
    }
    // A user we know no token owner for is acknowledged, not retried forever.
    let unknown = w
        .handler
        .handle(&event("AdminDeleteUser", &pool, Some("nobody"), None), NOW)
        .await
        .unwrap();
    assert_eq!(unknown, Outcome::NoTokenOwner);
    assert!(works(&w, &pat, NOW).await);
}

#[tokio::test]
async fn with_the_token_table_unreachable_the_invocation_fails_so_it_is_retried() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    create_user(&w, "gina").await;
    let (client, _) = shared::testing::client_with(
        "http://127.0.0.1:9",
        Some(authorizer::dynamodb_timeouts()),
        Some(authorizer::dynamodb_retries()),
    );
    let broken = Offboarding {
        store: TokenStore::new(client, w.handler.store.config().clone()),
        cognito: w.handler.cognito.clone(),
        user_pool_id: pool.clone(),
    };
    let result = broken
        .handle(&event("AdminDisableUser", &pool, Some("gina"), None), NOW)
        .await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn usernames_differing_only_in_case_are_different_users() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let upper = create_user(&w, "Alice").await;
    let lower = create_user(&w, "alice").await;
    let upper_pat = issue(&w, &upper, "Alice").await;
    let lower_pat = issue(&w, &lower, "alice").await;
    // Deleted first, so only the alias can resolve the name.
    w.handler
        .cognito
        .admin_delete_user()
        .user_pool_id(&pool)
        .username("Alice")
        .send()
        .await
        .unwrap();
    let outcome = w
        .handler
        .handle(&event("AdminDeleteUser", &pool, Some("Alice"), None), NOW)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Revoked {
            owners: vec![upper],
            revoked: 1
        }
    );
    assert!(!works(&w, &upper_pat, NOW + 1).await);
    assert!(
        works(&w, &lower_pat, NOW + 1).await,
        "the other user was revoked"
    );
}

#[tokio::test]
async fn the_sweep_revokes_the_tokens_of_users_who_are_gone_or_disabled_whatever_the_events_did() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let (gone, off, here) = (
        create_user(&w, "gone").await,
        create_user(&w, "off").await,
        create_user(&w, "here").await,
    );
    let gone_pat = issue(&w, &gone, "gone").await;
    let off_pat = issue(&w, &off, "off").await;
    let here_pat = issue(&w, &here, "here").await;
    // No event reaches the handler: no trail, a lost event, or a name it
    // cannot resolve (say an email address of a user already deleted).
    let cognito = &w.handler.cognito;
    cognito
        .admin_delete_user()
        .user_pool_id(&pool)
        .username("gone")
        .send()
        .await
        .unwrap();
    cognito
        .admin_disable_user()
        .user_pool_id(&pool)
        .username("off")
        .send()
        .await
        .unwrap();

    let first = w.handler.sweep(NOW, None).await.unwrap();
    assert!(first.complete, "{first:?}");
    assert_eq!(
        (first.owners_checked, first.owners_revoked, first.revoked),
        (3, 2, 2)
    );
    assert!(!works(&w, &gone_pat, NOW + 1).await);
    assert!(!works(&w, &off_pat, NOW + 1).await);
    assert!(
        works(&w, &here_pat, NOW + 1).await,
        "an active user is untouched"
    );

    // Owners without live tokens are not asked about again.
    let second = w.handler.sweep(NOW + 2, None).await.unwrap();
    assert_eq!(
        (second.owners_checked, second.revoked),
        (1, 0),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_scheduled_event_runs_the_sweep_and_a_cloudtrail_event_the_handler() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let gone = create_user(&w, "vanished").await;
    let pat = issue(&w, &gone, "vanished").await;
    w.handler
        .cognito
        .admin_delete_user()
        .user_pool_id(&pool)
        .username("vanished")
        .send()
        .await
        .unwrap();
    let scheduled = json!({
        "version": "0", "id": "5e1c", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-26T03:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"], "detail": {}
    });
    let summary = w.handler.dispatch(scheduled, NOW, None).await.unwrap();
    assert!(summary.contains("Sweep"), "{summary}");
    assert!(!works(&w, &pat, NOW + 1).await);
    let mut call: Value = serde_json::from_str(FIXTURE).unwrap();
    call["detail"]["requestParameters"] = json!({"userPoolId": pool, "username": "nobody"});
    let handled = w.handler.dispatch(call, NOW, None).await.unwrap();
    assert_eq!(handled, "NoTokenOwner");
    let unrelated = json!({"detail-type": "Something Else", "source": "aws.s3", "detail": {}});
    assert!(
        w.handler
            .dispatch(unrelated, NOW, None)
            .await
            .unwrap()
            .contains("Ignored")
    );
}

#[tokio::test]
async fn a_sweep_cut_short_by_its_deadline_fails_so_it_is_retried_and_alarmed() {
    let w = world().await;
    let owner = create_user(&w, "somebody").await;
    issue(&w, &owner, "somebody").await;
    let result = w.handler.sweep(NOW, Some(std::time::Instant::now())).await;
    assert!(
        matches!(
            result,
            Err(offboarding::OffboardingError::SweepIncomplete { .. })
        ),
        "{result:?}"
    );
}

/// Review finding (issue #16 item 2): a service (`service:<name>`) is no
/// Cognito user, so the sweep must not take it for a deleted one; and a
/// person whose username merely looks like a service is offboarded alone.
#[tokio::test]
async fn services_are_never_offboarded_by_the_sweep_or_by_a_lookalike_username() {
    let w = world().await;
    let pool = w.handler.user_pool_id.clone();
    let service = UserId::service("ci-deploy").unwrap();
    let service_pat = issue(&w, &service, "unused").await;
    let lookalike = create_user(&w, "service:ci-deploy").await;
    let lookalike_pat = issue(&w, &lookalike, "service:ci-deploy").await;

    let swept = w.handler.sweep(NOW, None).await.unwrap();
    assert!(swept.complete, "{swept:?}");
    assert_eq!(swept.owners_revoked, 0, "{swept:?}");
    assert!(
        works(&w, &service_pat, NOW + 1).await,
        "the sweep left the service alone"
    );

    w.handler
        .cognito
        .admin_disable_user()
        .user_pool_id(&pool)
        .username("service:ci-deploy")
        .send()
        .await
        .unwrap();
    w.handler
        .handle(
            &event(
                "AdminDisableUser",
                &pool,
                Some("service:ci-deploy"),
                Some(lookalike.as_str()),
            ),
            NOW + 2,
        )
        .await
        .unwrap();
    assert!(
        !works(&w, &lookalike_pat, NOW + 3).await,
        "the person is offboarded"
    );
    assert!(works(&w, &service_pat, NOW + 3).await, "the service is not");
}
