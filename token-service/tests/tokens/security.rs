//! The security issue's token-service properties: a PAT acts only on itself,
//! never extends its chain, and a stale context (revoked PAT, passed expiry)
//! changes nothing.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_pat_cannot_rotate_or_revoke_a_sibling_token() {
    let h = Harness::new(10).await;
    let (attacker, _) = issue(
        &h,
        USER_A,
        &["tokens:write", "tokens:read", "docs:read"],
        30,
    )
    .await;
    let (sibling, sibling_id) = issue(&h, USER_A, &["docs:read"], 30).await;
    let ctx = h.authorize(&attacker).await.unwrap();

    h.rotate(&sibling_id, &ctx, None)
        .await
        .assert_problem(403, "session-required");
    h.call(Req::new(
        "DELETE",
        &format!("/tokens/{sibling_id}"),
        Some(&ctx),
    ))
    .await
    .assert_problem(403, "session-required");
    assert!(
        h.authorize(&sibling).await.is_some(),
        "the sibling's holder must not be locked out"
    );
    // Reading metadata with tokens:read stays allowed (documented decision).
    let read = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{sibling_id}"),
            Some(&ctx),
        ))
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(read.json.get("token").is_none());
}

#[tokio::test]
async fn a_pat_may_rotate_itself_but_never_extends_its_chain() {
    let h = Harness::new(10).await;
    let (mut token, id) = issue(&h, USER_A, &["tokens:write", "docs:read"], 10).await;
    let original_expiry = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{id}"),
            Some(&session(USER_A, ALL)),
        ))
        .await
        .json["expiresAt"]
        .clone();
    // Rotate itself every two days: the chain's end never moves.
    for step in 1..=4 {
        h.clock.set(T0 + step * 2 * DAY);
        let ctx = h.authorize(&token).await.expect("the chain is alive");
        let own = ctx.token_id.clone();
        let rotated = h.rotate(&own, &ctx, None).await;
        assert_eq!(rotated.status, 201, "{}", rotated.text);
        assert_eq!(rotated.json["expiresAt"], original_expiry, "step {step}");
        token = rotated.json["token"].as_str().unwrap().to_owned();
    }
    h.clock.set(T0 + 10 * DAY);
    assert!(
        h.authorize(&token).await.is_none(),
        "self-rotation must not make a token outlive its first expiry"
    );
}

#[tokio::test]
async fn a_session_rotation_gives_a_fresh_lifetime_within_the_maximum() {
    let h = Harness::new(10).await;
    let (_, id) = issue(&h, USER_A, &["docs:read"], 10).await;
    h.clock.set(T0 + 5 * DAY);
    let rotated = h.rotate(&id, &session(USER_A, ALL), None).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    // Same 10-day lifetime, from now.
    let (token, _) = (rotated.json["token"].as_str().unwrap().to_owned(), ());
    h.clock.set(T0 + 14 * DAY);
    assert!(h.authorize(&token).await.is_some());
    h.clock.set(T0 + 15 * DAY);
    assert!(h.authorize(&token).await.is_none());
}

#[tokio::test]
async fn a_revoked_pat_inside_the_cache_window_can_mint_rotate_or_revoke_nothing() {
    let h = Harness::new(10).await;
    let (token, id) = issue(&h, USER_A, &["tokens:write", "tokens:read"], 30).await;
    let (_, other_id) = issue(&h, USER_A, &["tokens:read"], 30).await;
    // The context a cache would keep serving after revocation.
    let stale = h.authorize(&token).await.unwrap();
    let a = session(USER_A, ALL);
    assert_eq!(
        h.call(Req::new("DELETE", &format!("/tokens/{id}"), Some(&a)))
            .await
            .status,
        204
    );
    h.rotate(&id, &stale, None)
        .await
        .assert_problem(401, "credential-revoked");
    h.call(Req::new("DELETE", "/tokens/self", Some(&stale)))
        .await
        .assert_problem(401, "credential-revoked");
    h.call(Req::new(
        "DELETE",
        &format!("/tokens/{other_id}"),
        Some(&stale),
    ))
    .await
    .assert_problem(403, "session-required");
    h.call(
        Req::new("POST", "/tokens", Some(&stale))
            .json(json!({"name": "x", "scopes": ["tokens:read"], "expiresInDays": 1})),
    )
    .await
    .assert_problem(403, "session-required");
    let list = h
        .call(Req::new("GET", "/tokens", Some(&a)).query("status=active"))
        .await;
    assert_eq!(
        list.json["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
}

#[tokio::test]
async fn a_context_whose_credential_has_expired_is_refused_on_every_route() {
    let h = Harness::new(10).await;
    let (token, _) = issue(&h, USER_A, &["tokens:read", "tokens:write"], 1).await;
    let ctx = h.authorize(&token).await.unwrap();
    let mut jwt = session(USER_A, ALL);
    jwt.expires_at = T0 + 3600;
    // Exactly at expiry, both are refused (expiry is exclusive, as in the authorizer).
    h.clock.set(T0 + DAY);
    for context in [&ctx, &jwt] {
        h.call(Req::new("GET", "/tokens", Some(context)))
            .await
            .assert_problem(401, "credential-expired");
        h.call(Req::new("DELETE", "/tokens/self", Some(context)))
            .await
            .assert_problem(401, "credential-expired");
    }
    h.clock.set(T0 + 3599);
    let ok = h.call(Req::new("GET", "/tokens", Some(&jwt))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test]
async fn an_overlapping_rotation_keeps_the_predecessor_slot_until_the_overlap_ends() {
    let h = Harness::new(2).await;
    let a = session(USER_A, ALL);
    let (_, first) = issue(&h, USER_A, &["docs:read"], 10).await;
    let (_, _second) = issue(&h, USER_A, &["docs:read"], 10).await;
    // At the cap, an overlapping rotation would make three live tokens.
    h.rotate(&first, &a, Some(600))
        .await
        .assert_problem(409, "token-limit-reached");
    // Without overlap the count does not change, so it is allowed.
    let plain = h.rotate(&first, &a, None).await;
    assert_eq!(plain.status, 201, "{}", plain.text);

    // Under the cap: the predecessor holds its slot for the overlap, then frees it.
    let h = Harness::new(3).await;
    let (_, first) = issue(&h, USER_A, &["docs:read"], 10).await;
    issue(&h, USER_A, &["docs:read"], 10).await;
    let overlapped = h.rotate(&first, &a, Some(600)).await;
    assert_eq!(overlapped.status, 201, "{}", overlapped.text);
    let create = || {
        Req::new("POST", "/tokens", Some(&a))
            .json(json!({"name": "n", "scopes": ["docs:read"], "expiresInDays": 5}))
    };
    h.call(create())
        .await
        .assert_problem(409, "token-limit-reached");
    h.clock.set(T0 + 601);
    let after = h.call(create()).await;
    assert_eq!(after.status, 201, "{}", after.text);
}

#[tokio::test]
async fn revoke_all_reports_what_it_revoked_and_that_it_is_complete() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(issue(&h, USER_A, &["docs:read"], 10).await.0);
    }
    let all = h.call(Req::new("DELETE", "/tokens", Some(&a))).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.headers["cache-control"], "no-store");
    assert_eq!(
        all.json,
        json!({"revoked": 3, "remaining": 0, "complete": true})
    );
    for t in &tokens {
        assert!(h.authorize(t).await.is_none());
    }
    let again = h.call(Req::new("DELETE", "/tokens", Some(&a))).await;
    assert_eq!(
        again.json,
        json!({"revoked": 0, "remaining": 0, "complete": true})
    );
}

#[tokio::test]
async fn after_the_argon2_floor_is_raised_a_session_rotation_rescues_a_weak_token() {
    use shared::hash::{HashParams, SecretHasher};
    let h = Harness::new(10).await;
    let (weak, id) = issue(&h, USER_A, &["docs:read"], 10).await;
    let raised = HashParams {
        t: HashParams::OWASP_MIN.t + 1,
        ..HashParams::OWASP_MIN
    };
    let after = Harness::over_hashing(
        h.store.clone(),
        90,
        SecretHasher::new(raised, raised).unwrap(),
    );
    assert!(
        after.authorize(&weak).await.is_none(),
        "a hash below the floor is refused"
    );
    // The owner's session rotates it without the old secret.
    let rotated = after.rotate(&id, &session(USER_A, ALL), None).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let fresh = rotated.json["token"].as_str().unwrap();
    assert!(after.authorize(fresh).await.is_some());
}

#[tokio::test]
async fn a_session_older_than_the_last_revoke_all_cannot_mint_or_rotate() {
    let h = Harness::new(10).await;
    // A stolen session, signed in before the owner's revoke-all.
    let mut stolen = session(USER_A, ALL);
    stolen.issued_at = T0 - 600;
    issue(&h, USER_A, &["docs:read"], 10).await;
    h.clock.set(T0 + 100);
    let mut owner = session(USER_A, ALL);
    owner.issued_at = T0 - 300;
    let all = h.call(Req::new("DELETE", "/tokens", Some(&owner))).await;
    assert_eq!(all.json["revoked"], 1, "{}", all.text);

    // Anything the stolen session mints would outlive the revoke-all: refused.
    let create = |ctx: &shared::AuthorizerContext| {
        Req::new("POST", "/tokens", Some(ctx))
            .json(json!({"name": "late", "scopes": ["docs:read"], "expiresInDays": 5}))
    };
    h.call(create(&stolen))
        .await
        .assert_problem(403, "session-predates-revocation");
    // So is the owner's own old session: signing in again is the way on.
    h.call(create(&owner))
        .await
        .assert_problem(403, "session-predates-revocation");
    let mut fresh = session(USER_A, ALL);
    fresh.issued_at = T0 + 101;
    let created = h.call(create(&fresh)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let new_id = created.json["id"].as_str().unwrap().to_owned();
    h.rotate(&new_id, &stolen, None)
        .await
        .assert_problem(403, "session-predates-revocation");
    let rotated = h.rotate(&new_id, &fresh, None).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
}

#[tokio::test]
async fn issuing_with_a_session_records_the_username_for_offboarding() {
    let h = Harness::new(10).await;
    issue(&h, USER_A, &["docs:read"], 10).await;
    // `session()` carries the username "someone", as an access token would.
    let owners = h.store.owners_of_username("someone").await.unwrap();
    assert_eq!(owners, vec![shared::UserId::parse(USER_A).unwrap()]);
    assert!(
        h.store
            .owners_of_username("Someone")
            .await
            .unwrap()
            .is_empty()
    );
}
