//! What a token owner sees and may change: metadata edits that only narrow,
//! the token's history, leak notices and use sites.

use serde_json::json;

use crate::support::*;

fn events_of(reply: &Reply) -> Vec<String> {
    reply.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_edit_can_relabel_narrow_and_shorten_but_never_widen() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let (token, id) = issue(&h, USER_A, &["docs:read", "tokens:read"], 30).await;
    let path = format!("/tokens/{id}");

    let relabel = h
        .call(Req::new("PATCH", &path, Some(&a)).json(json!({
            "name": "deploy", "description": "  used by the nightly deploy\n"
        })))
        .await;
    assert_eq!(relabel.status, 200, "{}", relabel.text);
    assert_eq!(relabel.headers["cache-control"], "no-store");
    assert_eq!(relabel.json["name"], "deploy");
    assert_eq!(relabel.json["description"], "used by the nightly deploy");

    let narrow = h
        .call(Req::new("PATCH", &path, Some(&a)).json(json!({"scopes": ["docs:read"]})))
        .await;
    assert_eq!(narrow.status, 200, "{}", narrow.text);
    assert_eq!(narrow.json["scopes"], json!(["docs:read"]));
    let ctx = h.authorize(&token).await.expect("still valid");
    assert_eq!(ctx.scopes, "docs:read", "the authorizer sees the narrowing");

    // Widening back is refused, with the field named.
    let widen = h
        .call(
            Req::new("PATCH", &path, Some(&a))
                .json(json!({"scopes": ["docs:read", "tokens:read"]})),
        )
        .await;
    widen.assert_problem(400, "validation-failed");
    assert_eq!(widen.json["errors"][0]["field"], "scopes");
    let later = h
        .call(Req::new("PATCH", &path, Some(&a)).json(json!({"expiresAt": "2031-01-01T00:00:00Z"})))
        .await;
    later.assert_problem(400, "validation-failed");
    assert_eq!(later.json["errors"][0]["field"], "expiresAt");
    let past = h
        .call(Req::new("PATCH", &path, Some(&a)).json(json!({"expiresAt": "2001-01-01T00:00:00Z"})))
        .await;
    past.assert_problem(400, "validation-failed");

    // Shortening holds, and is what the authorizer enforces.
    let sooner = shared_time(T0 + 2 * DAY);
    let shorten = h
        .call(Req::new("PATCH", &path, Some(&a)).json(json!({"expiresAt": sooner})))
        .await;
    assert_eq!(shorten.status, 200, "{}", shorten.text);
    assert_eq!(shorten.json["expiresAt"], sooner.as_str());
    h.clock.set(T0 + 2 * DAY);
    assert!(
        h.authorize(&token).await.is_none(),
        "expired at the new time"
    );

    for bad in [
        json!({}),
        json!({"colour": "red"}),
        json!({"name": ""}),
        json!({"description": "x".repeat(501)}),
        json!({"scopes": []}),
    ] {
        let reply = h
            .call(Req::new("PATCH", &path, Some(&a)).json(bad.clone()))
            .await;
        reply.assert_problem(400, "validation-failed");
    }
    // Someone else's token, or a revoked one.
    let b = session(USER_B, ALL);
    h.call(Req::new("PATCH", &path, Some(&b)).json(json!({"name": "mine"})))
        .await
        .assert_problem(404, "token-not-found");
    h.call(Req::new("PATCH", &path, Some(&a)).json(json!({"name": "late"})))
        .await
        .assert_problem(409, "token-not-active");
}

/// Formats a Unix time as the API does.
fn shared_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn a_pat_may_only_make_itself_weaker() {
    let h = Harness::new(10).await;
    let (token, id) = issue(
        &h,
        USER_A,
        &["docs:read", "tokens:read", "tokens:write"],
        30,
    )
    .await;
    let (_, sibling) = issue(&h, USER_A, &["docs:read"], 30).await;
    let pat = h.authorize(&token).await.unwrap();
    let path = format!("/tokens/{id}");

    let narrower = h
        .call(
            Req::new("PATCH", &path, Some(&pat))
                .json(json!({"scopes": ["tokens:read", "tokens:write"]})),
        )
        .await;
    assert_eq!(narrower.status, 200, "{}", narrower.text);
    h.call(Req::new("PATCH", &path, Some(&pat)).json(json!({"name": "innocent"})))
        .await
        .assert_problem(403, "session-required");
    h.call(Req::new("PATCH", &path, Some(&pat)).json(json!({"description": "x"})))
        .await
        .assert_problem(403, "session-required");
    h.call(
        Req::new("PATCH", &format!("/tokens/{sibling}"), Some(&pat))
            .json(json!({"scopes": ["docs:read"]})),
    )
    .await
    .assert_problem(403, "session-required");
    let events = h
        .call(Req::new(
            "GET",
            &format!("{path}/events"),
            Some(&session(USER_A, ALL)),
        ))
        .await;
    assert_eq!(events_of(&events), ["updated", "created"]);
    assert_eq!(events.json["items"][0]["changes"], json!(["scopes"]));
}

#[tokio::test]
async fn the_history_is_the_owners_alone_paginated_and_holds_no_secret() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let (token, id) = issue(&h, USER_A, &["docs:read"], 30).await;
    h.clock.set(T0 + 10);
    let rotated = h.rotate(&id, &a, None).await;
    let new_id = rotated.json["id"].as_str().unwrap().to_owned();
    let new_token = rotated.json["token"].as_str().unwrap().to_owned();
    h.clock.set(T0 + 20);
    let revoked = h
        .call(Req::new("DELETE", &format!("/tokens/{new_id}"), Some(&a)))
        .await;
    assert_eq!(revoked.status, 204);

    let old = h
        .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)))
        .await;
    assert_eq!(old.status, 200, "{}", old.text);
    assert_eq!(old.headers["cache-control"], "no-store");
    assert_eq!(events_of(&old), ["rotated", "created"]);
    assert_eq!(old.json["items"][0]["to"], new_id.as_str());
    let new = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{new_id}/events"),
            Some(&a),
        ))
        .await;
    assert_eq!(events_of(&new), ["revoked", "rotated"]);
    assert_eq!(new.json["items"][0]["by"], "owner");
    assert_eq!(new.json["items"][1]["from"], id.as_str());
    for reply in [&old, &new] {
        assert!(!reply.text.contains(&token) && !reply.text.contains(&new_token));
        assert!(!reply.text.contains("argon2"));
    }

    // One at a time, with the cursor.
    let first = h
        .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)).query("limit=1"))
        .await;
    assert_eq!(events_of(&first), ["rotated"]);
    let cursor = first.json["nextCursor"].as_str().unwrap().to_owned();
    let query = format!("limit=1&cursor={cursor}");
    let second = h
        .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)).query(&query))
        .await;
    assert_eq!(events_of(&second), ["created"]);

    // Another user, a missing token and a malformed id are the same 404.
    let b = session(USER_B, ALL);
    h.call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&b)))
        .await
        .assert_problem(404, "token-not-found");
    h.call(Req::new("GET", "/tokens/not-an-id/events", Some(&a)))
        .await
        .assert_problem(404, "token-not-found");
    // Bad paging is a 400 that names the parameter.
    for q in ["limit=0", "limit=abc", "colour=red", "cursor=%21%21"] {
        let reply = h
            .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)).query(q))
            .await;
        reply.assert_problem(400, "validation-failed");
    }
}

#[tokio::test]
async fn a_leak_report_reaches_the_owners_history_and_the_bus_and_the_reporter_learns_nothing() {
    let sdk = shared::testing::bus::sdk().await;
    let bus = shared::testing::bus::BusWithQueue::create(&sdk).await;
    let h = Harness::with_event_bus(10, bus.bus.clone()).await;
    let a = session(USER_A, ALL);
    let (token, id) = issue(&h, USER_A, &["docs:read"], 30).await;
    let reported = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": token})))
        .await;
    let unknown = shared::Pat::generate().unwrap();
    let junk = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": unknown.expose()})))
        .await;
    assert_eq!((reported.status, &reported.text), (junk.status, &junk.text));
    let history = h
        .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)))
        .await;
    assert_eq!(events_of(&history), ["revoked", "created"]);
    assert_eq!(history.json["items"][0]["by"], "leak_report");
    // One notice on the bus, for the killed token only; reporting it again
    // (already revoked) sends nothing more.
    assert_eq!(
        bus.drain().await,
        [("agpat.token.leak_reported".to_owned(), id.clone(), None)]
    );
    let again = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": token})))
        .await;
    assert_eq!(again.text, junk.text);
    assert!(bus.drain().await.is_empty());
    // A token that had already expired is recorded, but alerts no one.
    let (stale, _) = issue(&h, USER_A, &["docs:read"], 1).await;
    h.clock.set(T0 + 2 * DAY);
    let late = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": stale})))
        .await;
    assert_eq!(late.text, junk.text);
    assert!(bus.drain().await.is_empty());
}

#[tokio::test]
async fn use_sites_show_in_the_token_and_the_listing() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let (token, id) = issue(&h, USER_A, &["docs:read"], 30).await;
    let ua = format!("ci-runner/1.0 {}", "x".repeat(300));
    h.authorize_from(&token, "198.51.100.7", &ua).await.unwrap();

    let one = h
        .call(Req::new("GET", &format!("/tokens/{id}"), Some(&a)))
        .await;
    let uses = one.json["recentUses"].as_array().unwrap();
    assert_eq!(uses.len(), 1, "{}", one.text);
    assert_eq!(uses[0]["ip"], "198.51.100.7");
    assert_eq!(uses[0]["userAgent"].as_str().unwrap().chars().count(), 128);
    let list = h.call(Req::new("GET", "/tokens", Some(&a))).await;
    assert_eq!(list.json["items"][0]["recentUses"], one.json["recentUses"]);
    let history = h
        .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)))
        .await;
    assert_eq!(events_of(&history), ["new_ip", "created"]);
    assert_eq!(history.json["items"][0]["ip"], "198.51.100.7");
}

#[tokio::test]
async fn revoke_all_and_self_revocation_say_so_in_the_history() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let (token, own) = issue(&h, USER_A, &["tokens:read", "tokens:write"], 30).await;
    let (_, other) = issue(&h, USER_A, &["docs:read"], 30).await;
    let pat = h.authorize(&token).await.unwrap();
    let gone = h.call(Req::new("DELETE", "/tokens/self", Some(&pat))).await;
    assert_eq!(gone.status, 204, "{}", gone.text);
    let all = h.call(Req::new("DELETE", "/tokens", Some(&a))).await;
    assert_eq!(all.status, 200, "{}", all.text);
    for (id, by) in [(&own, "self"), (&other, "revoke_all")] {
        let history = h
            .call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)))
            .await;
        assert_eq!(history.json["items"][0]["type"], "revoked");
        assert_eq!(history.json["items"][0]["by"], by);
    }
}

/// A leaked PAT with tokens:read still lists its siblings, but learns
/// nothing of where they run: no use sites, no history.
#[tokio::test]
async fn a_pat_sees_where_only_itself_was_used() {
    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let (reader, reader_id) = issue(&h, USER_A, &["tokens:read"], 30).await;
    let (ci, ci_id) = issue(&h, USER_A, &["docs:read"], 30).await;
    h.authorize_from(&ci, "198.51.100.7", "ci/1").await.unwrap();
    h.clock.set(T0 + 400);
    let pat = h
        .authorize_from(&reader, "203.0.113.9", "laptop/1")
        .await
        .unwrap();

    let sibling = h
        .call(Req::new("GET", &format!("/tokens/{ci_id}"), Some(&pat)))
        .await;
    assert_eq!(sibling.status, 200, "{}", sibling.text);
    assert_eq!(sibling.json["recentUses"], json!([]));
    assert!(!sibling.text.contains("198.51.100.7"));
    let list = h.call(Req::new("GET", "/tokens", Some(&pat))).await;
    assert!(!list.text.contains("198.51.100.7"), "{}", list.text);
    assert!(
        list.text.contains("203.0.113.9"),
        "its own sites stay visible"
    );
    h.call(Req::new(
        "GET",
        &format!("/tokens/{ci_id}/events"),
        Some(&pat),
    ))
    .await
    .assert_problem(403, "session-required");
    let own = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{reader_id}/events"),
            Some(&pat),
        ))
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    // The owner's session sees everything.
    let full = h
        .call(Req::new("GET", &format!("/tokens/{ci_id}"), Some(&a)))
        .await;
    assert_eq!(full.json["recentUses"][0]["ip"], "198.51.100.7");
}
