//! Business API tests against moto, driven with proxy events carrying the
//! authorizer context.

mod support;

use std::sync::Arc;

use items_api::{AppState, router};
use serde_json::json;
use shared::testing::http::{Req, T0, call, session};

/// Every scope of the items example manifest.
const ALL: &str = "tokens:read tokens:write items:read items:write";
use shared::{AuthMethod, Clock};

const A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> i64 {
        T0
    }
}

#[expect(clippy::panic, reason = "a test helper fails loudly")]
async fn app() -> axum::Router {
    let (client, _) = shared::testing::client(&shared::testing::endpoint());
    let items = support::fresh_items(&client).await;
    router(AppState {
        items,
        clock: Arc::new(Fixed),
        manifest: Arc::new(
            items_api::committed_manifest().unwrap_or_else(|e| panic!("the items manifest: {e}")),
        ),
    })
}

#[tokio::test]
async fn items_crud_with_optimistic_concurrency() {
    let app = app().await;
    let a = session(A, ALL);
    let created = call(
        &app,
        Req::new("POST", "/items", Some(&a)).json(json!({"name": " first ", "description": "d"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.headers["location"], format!("/items/{id}").as_str());
    assert_eq!(created.json["name"], "first");
    assert_eq!(created.json["version"], 1);
    assert!(created.json.get("owner").is_none());

    let got = call(&app, Req::new("GET", &format!("/items/{id}"), Some(&a))).await;
    assert_eq!(got.json, created.json);

    let updated = call(
        &app,
        Req::new("PUT", &format!("/items/{id}"), Some(&a))
            .json(json!({"name": "second", "version": 1})),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["version"], 2);
    let stale = call(
        &app,
        Req::new("PUT", &format!("/items/{id}"), Some(&a))
            .json(json!({"name": "third", "version": 1})),
    )
    .await;
    stale.assert_problem(409, "version-conflict");
    assert_eq!(
        call(&app, Req::new("GET", &format!("/items/{id}"), Some(&a)))
            .await
            .json["name"],
        "second"
    );

    for i in 0..4 {
        call(
            &app,
            Req::new("POST", "/items", Some(&a)).json(json!({"name": format!("n{i}")})),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or("limit=2".to_owned(), |c| format!("limit=2&cursor={c}"));
        let page = call(&app, Req::new("GET", "/items", Some(&a)).query(&q)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(
            page.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest first");

    let deleted = call(&app, Req::new("DELETE", &format!("/items/{id}"), Some(&a))).await;
    assert_eq!(deleted.status, 204);
    call(&app, Req::new("DELETE", &format!("/items/{id}"), Some(&a)))
        .await
        .assert_problem(404, "item-not-found");
    call(
        &app,
        Req::new("PUT", &format!("/items/{id}"), Some(&a)).json(json!({"name": "x", "version": 2})),
    )
    .await
    .assert_problem(404, "item-not-found");
}

#[tokio::test]
async fn another_user_gets_404_for_every_operation_on_an_item() {
    let app = app().await;
    let created = call(
        &app,
        Req::new("POST", "/items", Some(&session(A, ALL))).json(json!({"name": "mine"})),
    )
    .await;
    let id = created.json["id"].as_str().unwrap();
    let b = session(B, ALL);
    call(&app, Req::new("GET", &format!("/items/{id}"), Some(&b)))
        .await
        .assert_problem(404, "item-not-found");
    call(
        &app,
        Req::new("PUT", &format!("/items/{id}"), Some(&b)).json(json!({"name": "x", "version": 1})),
    )
    .await
    .assert_problem(404, "item-not-found");
    call(&app, Req::new("DELETE", &format!("/items/{id}"), Some(&b)))
        .await
        .assert_problem(404, "item-not-found");
    assert_eq!(
        call(&app, Req::new("GET", "/items", Some(&b))).await.json["items"],
        json!([])
    );
    let still = call(
        &app,
        Req::new("GET", &format!("/items/{id}"), Some(&session(A, ALL))),
    )
    .await;
    assert_eq!(still.json["name"], "mine");
}

#[tokio::test]
async fn scopes_are_rechecked_and_input_is_validated() {
    let app = app().await;
    let reader = session(A, "items:read");
    call(
        &app,
        Req::new("POST", "/items", Some(&reader)).json(json!({"name": "x"})),
    )
    .await
    .assert_problem(403, "insufficient-scope");
    call(
        &app,
        Req::new("GET", "/items", Some(&session(A, "tokens:read"))),
    )
    .await
    .assert_problem(403, "insufficient-scope");
    call(&app, Req::new("GET", "/items", None))
        .await
        .assert_problem(401, "unauthenticated");
    let writer = session(A, "items:write");
    let bad = call(
        &app,
        Req::new("POST", "/items", Some(&writer)).json(json!({"name": "", "extra": 1})),
    )
    .await;
    bad.assert_problem(400, "validation-failed");
    assert_eq!(bad.json["errors"].as_array().unwrap().len(), 2);
    call(
        &app,
        Req::new("PUT", "/items/abc", Some(&writer)).json(json!({"name": "x"})),
    )
    .await
    .assert_problem(400, "validation-failed");
    call(
        &app,
        Req::new("GET", "/items/../../tokens", Some(&session(A, ALL))),
    )
    .await
    .assert_problem(404, "not-found");
    call(
        &app,
        Req::new("GET", "/items/not-an-id", Some(&session(A, ALL))),
    )
    .await
    .assert_problem(404, "item-not-found");
    call(
        &app,
        Req::new("GET", "/items", Some(&session(A, ALL))).query("cursor=%%%"),
    )
    .await
    .assert_problem(400, "validation-failed");
}

#[tokio::test]
async fn me_returns_the_principal_as_the_authorizer_saw_it() {
    let app = app().await;
    let mut ctx = session(A, "items:read");
    ctx.auth_method = AuthMethod::Pat;
    ctx.principal_kind = shared::PrincipalKind::UserToken;
    ctx.token_id = "0123456789ABCDEFG".into();
    let me = call(&app, Req::new("GET", "/me", Some(&ctx))).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(
        me.json,
        json!({"sub": A, "username": "someone", "authMethod": "pat", "principalKind": "user_token", "scopes": ["items:read"], "tokenId": "0123456789ABCDEFG", "expiresAt": T0 + 365 * 86_400})
    );
}
