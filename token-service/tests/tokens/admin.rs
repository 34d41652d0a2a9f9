//! The administrators' routes in the service itself, behind forged and real
//! authorizer contexts: the service's own checks (defence in depth behind
//! the authorizer's policy), the filters, and the history every admin act
//! leaves.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::Scope;
use shared::routes::Access;

use super::support::*;

const ADMIN: &str = "admin-sub";

fn admin() -> shared::AuthorizerContext {
    let mut ctx = session(ADMIN, &format!("{ALL} admin:tokens"));
    ctx.username = "adam".into();
    ctx
}

/// Every admin route, with its parameters filled for `owner` and `id`.
fn admin_requests(owner: &str, id: &str) -> Vec<(&'static str, String, Option<String>)> {
    let routes: Vec<_> = shared::testing::manifest()
        .routes()
        .routes()
        .iter()
        .filter(|r| r.access == Access::Scope(Scope::ADMIN_TOKENS))
        .map(|r| {
            let path = r.path.replace("{id}", id);
            let query = (path == "/admin/tokens").then(|| format!("owner={owner}"));
            (r.method.as_str(), path, query)
        })
        .collect();
    assert_eq!(routes.len(), 6);
    routes
}

async fn status_of(h: &Harness, id: &str) -> String {
    let reply = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{id}"),
            Some(&session(USER_A, ALL)),
        ))
        .await;
    reply.json["status"].as_str().unwrap().to_owned()
}

/// BFLA in the service: a context without `admin:tokens`, or a PAT's context
/// that claims it (which the authorizer never produces), gets 403 on every
/// admin route, and nothing changes.
#[tokio::test]
async fn the_service_refuses_admin_routes_to_anyone_but_an_admin_session() {
    let h = Harness::new(10).await;
    let (token, id) = issue(&h, USER_A, &["tokens:read"], 30).await;
    let mut forged = h.authorize(&token).await.unwrap();
    forged.scopes = format!("{} admin:tokens", forged.scopes);
    let everything = session(USER_B, &format!("{ALL} admin:ops"));
    for (method, path, query) in admin_requests(USER_A, &id) {
        let req = |ctx| {
            let req = Req::new(method, &path, Some(ctx));
            match &query {
                Some(q) => req.query(q),
                None => req,
            }
        };
        h.call(req(&forged))
            .await
            .assert_problem(403, "session-required");
        h.call(req(&everything))
            .await
            .assert_problem(403, "insufficient-scope");
    }
    assert_eq!(status_of(&h, &id).await, "active");
}

/// A stored token that names `admin:tokens` (written by hand, or by a bug)
/// still never yields it: the authorizer bounds every PAT by the ceiling.
#[tokio::test]
async fn a_stored_pat_naming_admin_tokens_never_carries_it() {
    let h = Harness::new(10).await;
    let (token, id) = issue(&h, USER_A, &["tokens:read"], 30).await;
    h.store
        .client()
        .update_item()
        .table_name(&h.store.config().table_name)
        .set_key(Some(HashMap::from([
            ("PK".to_owned(), AttributeValue::S(format!("TOKEN#{id}"))),
            ("SK".to_owned(), AttributeValue::S("TOKEN".into())),
        ])))
        .update_expression("SET scopes = :s, scope_set = :set")
        .expression_attribute_values(":s", AttributeValue::S("tokens:read admin:tokens".into()))
        .expression_attribute_values(
            ":set",
            AttributeValue::Ss(vec!["tokens:read".into(), "admin:tokens".into()]),
        )
        .condition_expression("attribute_exists(PK)")
        .send()
        .await
        .unwrap();
    let ctx = h.authorize(&token).await.unwrap();
    assert_eq!(ctx.scopes, "tokens:read");
}

/// Filters, paging and validation of the admin listing; every listed token
/// records the view before the answer, and a missing id is a 404.
#[tokio::test]
async fn the_admin_listing_filters_pages_and_leaves_a_view_on_each_token() {
    let h = Harness::new(10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(issue(&h, USER_A, &["tokens:read"], 30).await.1);
    }
    let (_, other) = issue(&h, USER_B, &["tokens:read"], 30).await;
    let revoked = ids[0].clone();
    let owner_ctx = session(USER_A, ALL);
    assert_eq!(
        h.call(Req::new(
            "DELETE",
            &format!("/tokens/{revoked}"),
            Some(&owner_ctx)
        ))
        .await
        .status,
        204
    );
    let list = |q: String| {
        let h = &h;
        async move {
            h.call(Req::new("GET", "/admin/tokens", Some(&admin())).query(&q))
                .await
        }
    };
    let active = list(format!("owner={USER_A}&status=active")).await;
    assert_eq!(active.status, 200, "{}", active.text);
    assert_eq!(active.headers["cache-control"], "no-store");
    let got: Vec<&str> = active.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(!got.contains(&revoked.as_str()) && !got.contains(&other.as_str()));
    assert!(
        active.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["owner"] == USER_A)
    );
    let only_revoked = list(format!("owner={USER_A}&status=revoked")).await;
    assert_eq!(only_revoked.json["items"][0]["id"], revoked.as_str());
    // Paging: one per page, three pages, no repeats.
    let first = list(format!("owner={USER_A}&limit=1")).await;
    let cursor = first.json["nextCursor"].as_str().unwrap().to_owned();
    let second = list(format!("owner={USER_A}&limit=1&cursor={cursor}")).await;
    assert_ne!(first.json["items"][0]["id"], second.json["items"][0]["id"]);

    for bad in [
        String::new(),
        "status=active".into(),
        format!("owner={USER_A}&status=sleeping"),
        "owner=a%23b".into(),
        format!("owner={USER_A}&team=x"),
    ] {
        list(bad.clone())
            .await
            .assert_problem(400, "validation-failed");
    }
    h.call(Req::new(
        "GET",
        "/admin/tokens/0123456789ABCDEFGHJKMNPQRS",
        Some(&admin()),
    ))
    .await
    .assert_problem(404, "token-not-found");
    h.call(Req::new("DELETE", "/admin/tokens/nope", Some(&admin())))
        .await
        .assert_problem(404, "token-not-found");

    // The owner sees every view, each naming the administrator: five
    // listed tokens in all (two active, one revoked, two single pages),
    // and none on the other user's token.
    let mut views = 0;
    for id in &ids {
        let history = h
            .call(Req::new(
                "GET",
                &format!("/tokens/{id}/events"),
                Some(&owner_ctx),
            ))
            .await;
        for view in history.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "admin_viewed")
        {
            assert_eq!(view["view"], "listing");
            assert_eq!(view["admin"], json!({"sub": ADMIN, "username": "adam"}));
            views += 1;
        }
    }
    assert_eq!(views, 5);
    let history = h
        .call(Req::new(
            "GET",
            &format!("/tokens/{other}/events"),
            Some(&session(USER_B, ALL)),
        ))
        .await;
    assert!(!history.text.contains("admin_viewed"), "{}", history.text);
}

/// Review findings: an administrator offboarded (or whose tokens were all
/// revoked) since signing in acts no more; an owner who never held a token
/// is a 404, not an empty success; a PAT reading its own history is not told
/// who is investigating it.
#[tokio::test]
async fn admin_sessions_from_before_their_revocation_unknown_owners_and_pat_views_are_handled() {
    let h = Harness::new(10).await;
    let (token, id) = issue(&h, USER_A, &["tokens:read"], 30).await;
    let mut before = admin();
    before.issued_at = T0;
    let path = format!("/admin/tokens/{id}");
    assert_eq!(
        h.call(Req::new("GET", &path, Some(&before))).await.status,
        200
    );

    // The owner's PAT sees its history without the administrator's reads.
    let pat = h.authorize(&token).await.unwrap();
    let events = format!("/tokens/{id}/events");
    let own = h.call(Req::new("GET", &events, Some(&pat))).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert!(
        !own.text.contains("admin_viewed") && !own.text.contains("adam"),
        "{}",
        own.text
    );
    let session = h
        .call(Req::new("GET", &events, Some(&session(USER_A, ALL))))
        .await;
    assert!(session.text.contains("admin_viewed") && session.text.contains("adam"));

    // After an administrator revokes it, the PAT's context (still cached at
    // the gateway for a while) reads the revocation without a name.
    assert_eq!(
        h.call(Req::new("DELETE", &path, Some(&admin())))
            .await
            .status,
        204
    );
    let own = h.call(Req::new("GET", &events, Some(&pat))).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert!(own.text.contains(r#""by":"admin""#), "{}", own.text);
    assert!(
        !own.text.contains("adam") && !own.text.contains(ADMIN),
        "{}",
        own.text
    );

    // Offboarding the administrator (the same revoke-all) ends the session's
    // admin rights at once, though its JWT lives on.
    h.clock.set(T0 + 60);
    h.store
        .revoke_all(
            &shared::UserId::parse(ADMIN).unwrap(),
            T0 + 60,
            None,
            shared::history::RevokedBy::Offboarding,
        )
        .await
        .unwrap();
    h.call(Req::new("GET", &path, Some(&before)))
        .await
        .assert_problem(403, "session-predates-revocation");
    // A session from after it is an administrator again.
    assert_eq!(
        h.call(Req::new("GET", &path, Some(&admin()))).await.status,
        200
    );

    for method in ["GET", "DELETE"] {
        h.call(Req::new(method, "/admin/tokens", Some(&admin())).query("owner=alice"))
            .await
            .assert_problem(404, "owner-not-found");
    }
}

/// Issue #16 item 2: an administrator issues a token to a named service. It
/// is owned by `service:<name>`, bounded by the manifest's `[services]`,
/// survives its issuer's offboarding, and only administrators list and
/// revoke it.
#[tokio::test]
async fn administrators_issue_service_tokens_that_outlive_any_person() {
    let h = Harness::new(10).await;
    let issue = |ctx: shared::AuthorizerContext, body: serde_json::Value| {
        let h = &h;
        async move {
            h.call(Req::new("POST", "/admin/tokens", Some(&ctx)).json(body))
                .await
        }
    };
    let body = json!({"service": "ci-deploy", "name": "deploy", "scopes": ["docs:read"],
        "expiresInDays": 30, "description": "GitHub Actions, prod deploys"});
    let created = issue(admin(), body.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/admin/tokens/{id}").as_str()
    );
    let token = created.json["token"].as_str().unwrap().to_owned();
    let ctx = h
        .authorize(&token)
        .await
        .expect("a service token is accepted");
    assert_eq!(ctx.sub, "service:ci-deploy");
    assert_eq!(ctx.principal_kind, shared::PrincipalKind::ServiceToken);
    assert_eq!(ctx.scopes, "docs:read");

    // Out of bounds, malformed, or not an administrator: refused.
    for (bad, field) in [
        (
            json!({"service": "ci-deploy", "name": "x", "scopes": ["docs:write"], "expiresInDays": 3}),
            "scopes",
        ),
        (
            json!({"service": "ci-deploy", "name": "x", "scopes": ["tokens:read"], "expiresInDays": 3}),
            "scopes",
        ),
        (
            json!({"service": "CI deploy", "name": "x", "scopes": ["docs:read"], "expiresInDays": 3}),
            "service",
        ),
        (
            json!({"name": "x", "scopes": ["docs:read"], "expiresInDays": 3}),
            "service",
        ),
        (
            json!({"service": "ci", "name": "x", "scopes": ["docs:read"], "expiresInDays": 999}),
            "expiresInDays",
        ),
    ] {
        let reply = issue(admin(), bad).await;
        reply.assert_problem(400, "validation-failed");
        assert!(reply.text.contains(field), "{field}: {}", reply.text);
    }
    issue(session(USER_A, ALL), body.clone())
        .await
        .assert_problem(403, "insufficient-scope");
    let mut forged = ctx.clone();
    forged.scopes = "docs:read admin:tokens".into();
    issue(forged, body.clone())
        .await
        .assert_problem(403, "session-required");
    // A service token cannot manage tokens, not even itself.
    h.call(Req::new("GET", "/tokens/self", Some(&ctx)))
        .await
        .assert_problem(403, "insufficient-scope");

    // The issuing administrator is in the history; the listing finds it.
    let history = h
        .call(Req::new(
            "GET",
            &format!("/admin/tokens/{id}/events"),
            Some(&admin()),
        ))
        .await;
    let created_event = history.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "created")
        .unwrap()
        .clone();
    assert_eq!(created_event["admin"]["sub"], ADMIN);
    let listed = h
        .call(Req::new("GET", "/admin/tokens", Some(&admin())).query("owner=service:ci-deploy"))
        .await;
    assert_eq!(listed.json["items"][0]["id"], id.as_str());
    assert_eq!(
        listed.json["items"][0]["description"],
        "GitHub Actions, prod deploys"
    );

    // The administrator who issued it leaves: the service token stays.
    h.clock.set(T0 + 60);
    h.store
        .revoke_all(
            &shared::UserId::parse(ADMIN).unwrap(),
            T0 + 60,
            None,
            shared::history::RevokedBy::Offboarding,
        )
        .await
        .unwrap();
    assert!(h.authorize(&token).await.is_some(), "outlives its issuer");
    // Another administrator revokes it.
    let mut other = admin();
    other.sub = "another-admin".into();
    assert_eq!(
        h.call(Req::new(
            "DELETE",
            &format!("/admin/tokens/{id}"),
            Some(&other)
        ))
        .await
        .status,
        204
    );
    assert!(h.authorize(&token).await.is_none());
}

/// Machines never manage tokens: even a forged context claiming
/// `tokens:write` for a service (client credentials) or a service token is
/// refused where only a person's session may act.
#[tokio::test]
async fn a_machine_context_never_mints_or_revokes_all_even_with_a_forged_scope() {
    let h = Harness::new(10).await;
    for kind in [
        shared::PrincipalKind::Service,
        shared::PrincipalKind::ServiceToken,
    ] {
        let mut ctx = session("svcclient0123456789abcdefg", ALL);
        ctx.principal_kind = kind;
        ctx.auth_method = kind.method();
        if kind == shared::PrincipalKind::ServiceToken {
            ctx.sub = "service:ci-deploy".into();
            ctx.token_id = "0123456789ABCDEFG".into();
        }
        h.call(Req::new("POST", "/tokens", Some(&ctx)).json(json!({
            "name": "x", "scopes": ["docs:read"], "expiresInDays": 3
        })))
        .await
        .assert_problem(403, "session-required");
        h.call(Req::new("DELETE", "/tokens", Some(&ctx)))
            .await
            .assert_problem(403, "session-required");
    }
    // Nor does a client-credentials context act on a token as its owner
    // would: revoke, rotate, edit or read its history.
    let (_, id) = issue(&h, USER_A, &["docs:read"], 7).await;
    let mut service = session("svcclient0123456789abcdefg", ALL);
    service.principal_kind = shared::PrincipalKind::Service;
    for (method, path) in [
        ("DELETE", format!("/tokens/{id}")),
        ("POST", format!("/tokens/{id}/rotate")),
        ("GET", format!("/tokens/{id}/events")),
    ] {
        h.call(Req::new(method, &path, Some(&service)))
            .await
            .assert_problem(403, "session-required");
    }
    h.call(
        Req::new("PATCH", &format!("/tokens/{id}"), Some(&service))
            .json(json!({"scopes": ["docs:read"]})),
    )
    .await
    .assert_problem(403, "session-required");
}
