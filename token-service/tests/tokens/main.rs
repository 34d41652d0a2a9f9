//! Token-service tests against moto, with the real authorizer in the loop.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

#[path = "../support/mod.rs"]
mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn the_whole_lifecycle_is_honoured_by_the_authorizer_at_every_step() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);

    // Create.
    let created = h
        .call(Req::new("POST", "/tokens", Some(&a)).json(json!({
            "name": "  deploy bot  ", "scopes": ["docs:read", "tokens:read"], "expiresInDays": 30
        })))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/tokens/{id}").as_str()
    );
    assert_eq!(created.json["name"], "deploy bot");
    assert_eq!(created.json["scopes"], json!(["tokens:read", "docs:read"]));
    assert_eq!(created.json["status"], "active");
    assert_eq!(created.json["expiresAt"], "2030-04-16T17:46:40Z");
    let token = created.json["token"].as_str().unwrap().to_owned();
    let ctx = h.authorize(&token).await.expect("a new token is accepted");
    assert_eq!(ctx.scopes, "tokens:read docs:read");
    assert_eq!(ctx.token_id, id);

    // List and get: metadata only.
    let list = h.call(Req::new("GET", "/tokens", Some(&a))).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.headers["cache-control"], "no-store");
    assert_eq!(list.json["items"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(&token) && !list.text.contains("argon2"));
    let one = h
        .call(Req::new("GET", &format!("/tokens/{id}"), Some(&a)))
        .await;
    assert_eq!(one.json["id"], id.as_str());
    assert!(one.json.get("token").is_none());
    let me = h.call(Req::new("GET", "/tokens/self", Some(&ctx))).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["id"], id.as_str());

    // Rotate without overlap: old refused at once, new accepted.
    h.clock.set(T0 + 100);
    let rotated = h
        .call(Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a)))
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let token2 = rotated.json["token"].as_str().unwrap().to_owned();
    let id2 = rotated.json["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated.json["rotatedFrom"], id.as_str());
    assert_eq!(rotated.json["scopes"], json!(["tokens:read", "docs:read"]));
    assert_eq!(rotated.json["name"], "deploy bot");
    assert!(
        h.authorize(&token).await.is_none(),
        "rotated-out token still accepted"
    );
    assert!(h.authorize(&token2).await.is_some());

    // Rotate with overlap: both work until the overlap ends.
    let rotated = h
        .call(
            Req::new("POST", &format!("/tokens/{id2}/rotate"), Some(&a))
                .json(json!({"overlapSeconds": 600})),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let token3 = rotated.json["token"].as_str().unwrap().to_owned();
    let id3 = rotated.json["id"].as_str().unwrap().to_owned();
    assert!(
        h.authorize(&token2).await.is_some(),
        "overlap keeps the old token"
    );
    assert!(h.authorize(&token3).await.is_some());
    h.clock.set(T0 + 700);
    assert!(h.authorize(&token2).await.is_none(), "overlap ended");
    assert!(h.authorize(&token3).await.is_some());

    // Revoke (idempotent).
    for _ in 0..2 {
        let revoked = h
            .call(Req::new("DELETE", &format!("/tokens/{id3}"), Some(&a)))
            .await;
        assert_eq!(revoked.status, 204, "{}", revoked.text);
    }
    assert!(h.authorize(&token3).await.is_none());

    // Revoke all.
    let (t4, _) = issue(&h, USER_A, &["docs:read"], 10).await;
    let (t5, _) = issue(&h, USER_A, &["docs:write"], 10).await;
    assert!(h.authorize(&t4).await.is_some() && h.authorize(&t5).await.is_some());
    let all = h.call(Req::new("DELETE", "/tokens", Some(&a))).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(all.json["revoked"], 2);
    assert!(h.authorize(&t4).await.is_none() && h.authorize(&t5).await.is_none());

    // Leaked-token revocation: whoever holds it can kill it, and the answer is
    // the same for a live token, a dead one and junk.
    let (t6, _) = issue(&h, USER_A, &["docs:read"], 10).await;
    let leaked = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": t6})))
        .await;
    assert!(
        h.authorize(&t6).await.is_none(),
        "leaked token still accepted"
    );
    let again = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": t6})))
        .await;
    let junk = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": "agpat_nope"})))
        .await;
    let unknown = shared::Pat::generate().unwrap();
    let missing = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": unknown.expose()})))
        .await;
    for reply in [&leaked, &again, &junk, &missing] {
        assert_eq!(reply.status, 202);
        assert_eq!(reply.text, leaked.text);
    }

    // Revoking yourself with a PAT.
    let (t7, _) = issue(&h, USER_A, &["tokens:write"], 10).await;
    let ctx7 = h.authorize(&t7).await.unwrap();
    let gone = h
        .call(Req::new("DELETE", "/tokens/self", Some(&ctx7)))
        .await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    assert!(h.authorize(&t7).await.is_none());

    // Status filters see the history.
    let revoked = h
        .call(Req::new("GET", "/tokens", Some(&a)).query("status=revoked"))
        .await;
    assert_eq!(
        revoked.json["items"].as_array().unwrap().len(),
        6,
        "{}",
        revoked.text
    );
    let active = h
        .call(Req::new("GET", "/tokens", Some(&a)).query("status=active"))
        .await;
    assert_eq!(
        active.json["items"].as_array().unwrap().len(),
        0,
        "{}",
        active.text
    );
}

#[tokio::test]
async fn a_pat_cannot_create_tokens_or_revoke_everything() {
    let h = Harness::new(10).await;
    let (token, _) = issue(&h, USER_A, &["tokens:read", "tokens:write"], 10).await;
    let ctx = h.authorize(&token).await.unwrap();
    let reply = h
        .call(
            Req::new("POST", "/tokens", Some(&ctx))
                .json(json!({"name": "x", "scopes": ["tokens:read"], "expiresInDays": 1})),
        )
        .await;
    reply.assert_problem(403, "session-required");
    h.call(Req::new("DELETE", "/tokens", Some(&ctx)))
        .await
        .assert_problem(403, "session-required");
    assert!(h.authorize(&token).await.is_some());
}

#[tokio::test]
async fn scope_escalation_is_refused() {
    let h = Harness::new(10).await;
    let narrow = session(USER_A, "tokens:write docs:read");
    let reply = h
        .call(Req::new("POST", "/tokens", Some(&narrow)).json(json!({
            "name": "x", "scopes": ["docs:read", "docs:write"], "expiresInDays": 5
        })))
        .await;
    reply.assert_problem(403, "scope-escalation");
    let ok = h
        .call(
            Req::new("POST", "/tokens", Some(&narrow))
                .json(json!({"name": "x", "scopes": ["docs:read"], "expiresInDays": 5})),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    // Rotating a broader token with a narrower session is escalation too.
    let (_, broad) = issue(&h, USER_A, &["docs:write"], 5).await;
    h.call(Req::new(
        "POST",
        &format!("/tokens/{broad}/rotate"),
        Some(&narrow),
    ))
    .await
    .assert_problem(403, "scope-escalation");
}

#[tokio::test]
async fn expiry_bounds_are_enforced_at_creation() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let at = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let bad = [
        json!({"expiresInDays": 0}),
        json!({"expiresInDays": 91}),
        json!({"expiresInDays": "30"}),
        json!({"expiresAt": at(T0 + DAY - 1)}),
        json!({"expiresAt": at(T0 + 91 * DAY)}),
        json!({"expiresAt": "next tuesday"}),
        json!({"expiresInDays": 5, "expiresAt": at(T0 + 5 * DAY)}),
        json!({}),
    ];
    for expiry in bad {
        let mut body = json!({"name": "x", "scopes": ["docs:read"]});
        body.as_object_mut()
            .unwrap()
            .extend(expiry.as_object().unwrap().clone());
        let reply = h
            .call(Req::new("POST", "/tokens", Some(&a)).json(body.clone()))
            .await;
        reply.assert_problem(400, "validation-failed");
        assert!(reply.text.contains("expires"), "{body} -> {}", reply.text);
    }
    for good in [
        json!({"expiresInDays": 90}),
        json!({"expiresAt": at(T0 + DAY)}),
        json!({"expiresAt": at(T0 + 90 * DAY)}),
    ] {
        let mut body = json!({"name": "x", "scopes": ["docs:read"]});
        body.as_object_mut()
            .unwrap()
            .extend(good.as_object().unwrap().clone());
        let reply = h
            .call(Req::new("POST", "/tokens", Some(&a)).json(body.clone()))
            .await;
        assert_eq!(reply.status, 201, "{body} -> {}", reply.text);
    }
}

#[tokio::test]
async fn rotation_keeps_an_expiry_within_the_current_maximum() {
    let h = Harness::new(10).await;
    let (_, id) = issue(&h, USER_A, &["docs:read"], 60).await;
    // The policy tightens to 30 days: the successor may not outlive it.
    let strict = Harness::over(h.store.clone(), 30);
    strict.clock.set(T0 + 10);
    let rotated = strict
        .call(Req::new(
            "POST",
            &format!("/tokens/{id}/rotate"),
            Some(&session(USER_A, ALL)),
        ))
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let successor = shared::TokenId::parse(rotated.json["id"].as_str().unwrap()).unwrap();
    let meta = h.store.get(&successor).await.unwrap().unwrap().meta;
    assert_eq!(meta.expires_at, T0 + 10 + 30 * DAY);
    // Under the original policy, the successor keeps the original lifetime.
    let (_, id) = issue(&h, USER_A, &["docs:read"], 60).await;
    let rotated = h
        .call(Req::new(
            "POST",
            &format!("/tokens/{id}/rotate"),
            Some(&session(USER_A, ALL)),
        ))
        .await;
    let successor = shared::TokenId::parse(rotated.json["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        h.store
            .get(&successor)
            .await
            .unwrap()
            .unwrap()
            .meta
            .expires_at,
        T0 + 60 * DAY
    );
}

#[tokio::test]
async fn the_cap_holds_under_twenty_concurrent_creates() {
    let h = std::sync::Arc::new(Harness::new(5).await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                h.call(
                    Req::new("POST", "/tokens", Some(&session(USER_A, ALL))).json(json!({
                        "name": format!("t{i}"), "scopes": ["docs:read"], "expiresInDays": 1
                    })),
                )
                .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            201 => created += 1,
            _ => reply.assert_problem(409, "token-limit-reached"),
        }
    }
    assert_eq!(created, 5);
}

#[tokio::test]
async fn another_user_cannot_see_rotate_or_revoke_a_token() {
    let h = Harness::new(10).await;
    let (token, id) = issue(&h, USER_A, &["docs:read"], 10).await;
    let b = session(USER_B, ALL);
    h.call(Req::new("GET", &format!("/tokens/{id}"), Some(&b)))
        .await
        .assert_problem(404, "token-not-found");
    h.call(Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&b)))
        .await
        .assert_problem(404, "token-not-found");
    h.call(Req::new("DELETE", &format!("/tokens/{id}"), Some(&b)))
        .await
        .assert_problem(404, "token-not-found");
    let missing = shared::Pat::generate().unwrap();
    let not_there = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{}", missing.id()),
            Some(&b),
        ))
        .await;
    not_there.assert_problem(404, "token-not-found");
    let theirs = h
        .call(Req::new("GET", &format!("/tokens/{id}"), Some(&b)))
        .await;
    assert_eq!(
        theirs.text, not_there.text,
        "a foreign token must look exactly like a missing one"
    );
    let list = h.call(Req::new("GET", "/tokens", Some(&b))).await;
    assert_eq!(list.json["items"], json!([]));
    assert!(
        h.authorize(&token).await.is_some(),
        "A's token is untouched"
    );
}

#[tokio::test]
async fn racing_rotations_give_one_success_and_one_conflict() {
    let h = std::sync::Arc::new(Harness::new(10).await);
    let (_, id) = issue(&h, USER_A, &["docs:read"], 10).await;
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (h, id) = (h.clone(), id.clone());
            tokio::spawn(async move {
                h.call(Req::new(
                    "POST",
                    &format!("/tokens/{id}/rotate"),
                    Some(&session(USER_A, ALL)),
                ))
                .await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies.sort_by_key(|r| r.status);
    assert_eq!(replies[0].status, 201, "{}", replies[0].text);
    replies[1].assert_problem(409, "token-already-rotated");
    let list = h
        .call(Req::new("GET", "/tokens", Some(&session(USER_A, ALL))).query("status=active"))
        .await;
    let active = list.json["items"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["rotatedFrom"], id.as_str());
    // Rotating the old token again never touches its successor.
    let again = h
        .call(Req::new(
            "POST",
            &format!("/tokens/{id}/rotate"),
            Some(&session(USER_A, ALL)),
        ))
        .await;
    again.assert_problem(409, "token-already-rotated");
    let list = h
        .call(Req::new("GET", "/tokens", Some(&session(USER_A, ALL))).query("status=active"))
        .await;
    assert_eq!(list.json["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn listing_pages_through_every_token_once() {
    let h = Harness::new(50).await;
    let a = session(USER_A, ALL);
    let mut ids = std::collections::HashSet::new();
    for i in 0..12 {
        h.clock.set(T0 + i);
        ids.insert(issue(&h, USER_A, &["docs:read"], 5).await.1);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=5&cursor={c}"),
            None => "limit=5".into(),
        };
        let page = h.call(Req::new("GET", "/tokens", Some(&a)).query(&q)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.json["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert_eq!(
        seen.iter()
            .cloned()
            .collect::<std::collections::HashSet<_>>(),
        ids
    );
}

/// Every error class: status and stable problem type.
#[tokio::test]
async fn every_error_class_has_its_status_and_problem_type() {
    let h = Harness::new(1).await;
    let a = session(USER_A, ALL);
    let post = |body: serde_json::Value| Req::new("POST", "/tokens", Some(&a)).json(body);

    let reply = h
        .call(post(
            json!({"name": "", "scopes": ["root", "docs:read"], "color": "red"}),
        ))
        .await;
    reply.assert_problem(400, "validation-failed");
    let fields: Vec<&str> = reply.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["color", "name", "scopes", "expiresInDays"],
        "every invalid field is listed"
    );
    h.call(post(
        json!({"name": "a\u{7}b", "scopes": ["docs:read"], "expiresInDays": 1}),
    ))
    .await
    .assert_problem(400, "validation-failed");
    h.call(post(
        json!({"name": "x".repeat(101), "scopes": ["docs:read"], "expiresInDays": 1}),
    ))
    .await
    .assert_problem(400, "validation-failed");
    h.call(post(json!({"name": "x", "scopes": [], "expiresInDays": 1})))
        .await
        .assert_problem(400, "validation-failed");
    h.call(Req::new("POST", "/tokens", Some(&a)).raw("{not json", Some("application/json")))
        .await
        .assert_problem(400, "malformed-json");
    h.call(Req::new("POST", "/tokens", Some(&a)).raw("[1,2]", Some("application/json")))
        .await
        .assert_problem(400, "malformed-json");
    h.call(Req::new("POST", "/tokens", Some(&a)).raw("name=x", Some("text/plain")))
        .await
        .assert_problem(415, "unsupported-media-type");
    let big = json!({"name": "x".repeat(17 * 1024)}).to_string();
    h.call(Req::new("POST", "/tokens", Some(&a)).raw(&big, Some("application/json")))
        .await
        .assert_problem(413, "payload-too-large");
    h.call(Req::new("GET", "/nope", Some(&a)))
        .await
        .assert_problem(404, "not-found");
    h.call(Req::new("PUT", "/tokens", Some(&a)))
        .await
        .assert_problem(405, "method-not-allowed");
    h.call(Req::new("GET", "/tokens/not-an-id", Some(&a)))
        .await
        .assert_problem(404, "token-not-found");
    h.call(Req::new("GET", "/tokens/self", Some(&a)))
        .await
        .assert_problem(400, "self-requires-pat");
    h.call(Req::new("GET", "/tokens", None))
        .await
        .assert_problem(401, "unauthenticated");
    h.call(Req::new(
        "GET",
        "/tokens",
        Some(&session(USER_A, "docs:read")),
    ))
    .await
    .assert_problem(403, "insufficient-scope");
    h.call(Req::new("GET", "/tokens", Some(&a)).query("status=weird"))
        .await
        .assert_problem(400, "validation-failed");
    h.call(Req::new("GET", "/tokens", Some(&a)).query("limit=0"))
        .await
        .assert_problem(400, "validation-failed");
    h.call(Req::new("GET", "/tokens", Some(&a)).query("sort=asc"))
        .await
        .assert_problem(400, "validation-failed");
    h.call(Req::new("GET", "/tokens", Some(&a)).query("cursor=garbage"))
        .await
        .assert_problem(400, "validation-failed");
    h.call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": 5})))
        .await
        .assert_problem(400, "validation-failed");

    let (_, id) = issue(&h, USER_A, &["docs:read"], 5).await;
    h.call(post(
        json!({"name": "x", "scopes": ["docs:read"], "expiresInDays": 1}),
    ))
    .await
    .assert_problem(409, "token-limit-reached");
    h.call(
        Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a))
            .json(json!({"overlapSeconds": 3601})),
    )
    .await
    .assert_problem(400, "validation-failed");
    h.call(Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a)))
        .await;
    h.call(Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a)))
        .await
        .assert_problem(409, "token-already-rotated");
    let (_, other) = {
        h.call(Req::new("DELETE", "/tokens", Some(&a))).await;
        issue(&h, USER_A, &["docs:read"], 5).await
    };
    h.call(Req::new("DELETE", &format!("/tokens/{other}"), Some(&a)))
        .await;
    h.call(Req::new(
        "POST",
        &format!("/tokens/{other}/rotate"),
        Some(&a),
    ))
    .await
    .assert_problem(409, "token-not-active");
}

mod admin;
mod issuing;
mod owner;
mod scanning;
mod security;

/// The token service speaks the manifest: a group-only scope (admin:ops,
/// granted by the `operators` group) is never delegated to a token, even by
/// a session that holds it; an undeclared scope is unknown.
#[tokio::test]
async fn group_only_and_undeclared_scopes_cannot_be_issued() {
    let h = Harness::new(10).await;
    let operator = session(USER_A, &format!("{ALL} admin:ops"));
    for (scope, message) in [
        ("admin:ops", "granted by group membership"),
        ("items:read", "unknown scope 'items:read'"),
    ] {
        let reply = h
            .call(Req::new("POST", "/tokens", Some(&operator)).json(json!({
                "name": "n", "scopes": ["docs:read", scope], "expiresInDays": 3
            })))
            .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(reply.text.contains(message), "{}", reply.text);
    }
}

/// A stored token naming a scope the manifest no longer declares: listed and
/// inspected with the scopes that remain, accepted with only those, and
/// rotated without carrying the retired name forward.
#[tokio::test]
async fn scopes_that_left_the_manifest_are_dropped_not_kept_or_remapped() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let pat = shared::Pat::generate().unwrap();
    let record = shared::TokenRecord {
        meta: shared::TokenMeta::issued(
            pat.id().clone(),
            shared::UserId::parse(USER_A).unwrap(),
            "old",
            shared::testing::names("docs:read items:legacy"),
            T0 - 10,
            T0 + 10 * DAY,
        ),
        hash: hasher().hash(pat.secret()).unwrap(),
    };
    h.store.create(&record, T0 - 10).await.unwrap();
    let id = pat.id().as_str().to_owned();
    let shown = h
        .call(Req::new("GET", &format!("/tokens/{id}"), Some(&a)))
        .await;
    assert_eq!(shown.json["scopes"], json!(["docs:read"]), "{}", shown.text);
    let ctx = h.authorize(pat.expose()).await.unwrap();
    assert_eq!(ctx.scopes, "docs:read");
    let rotated = h.rotate(&id, &a, None).await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let next = shared::TokenId::parse(rotated.json["id"].as_str().unwrap()).unwrap();
    let stored = h.store.get(&next).await.unwrap().unwrap();
    assert_eq!(stored.meta.scopes, shared::testing::names("docs:read"));
}

/// The event CodeDeploy's pre-traffic hook sends a new token-service version
/// (`infra/lib/hooks/pre-traffic/events/token-service.json`): a request
/// without the authorizer's context, through the Lambda entry point. A
/// healthy version answers 401, the 4xx the hook expects; an event
/// `lambda_http` could not read would fail every release.
#[tokio::test]
async fn the_release_hooks_event_gets_a_401_through_the_lambda_entry_point() {
    let h = Harness::new(5).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/lib/hooks/pre-traffic/events/token-service.json"
    ))
    .unwrap();
    let request = lambda_http::request::from_str(&text).unwrap();
    let Ok(response) = shared::http::handle(h.app.clone(), request).await;
    assert_eq!(response.status().as_u16(), 401);
}
