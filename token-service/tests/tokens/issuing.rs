//! Issuing options: IP allow-lists (issue #16 item 5: validation, the
//! switch, the stored form older releases refuse) and rate tiers (item 3).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use token_service::AppState;

use super::support::*;

fn fenced_service(h: &Harness) -> axum::Router {
    let state = AppState::new(
        h.store.clone(),
        hasher(),
        h.clock.clone(),
        90,
        shared::testing::manifest(),
    )
    .and_then(|s| s.with_ip_allow_lists(true))
    .unwrap();
    token_service::router(state)
}

async fn stored(h: &Harness, id: &str) -> HashMap<String, AttributeValue> {
    h.store
        .client()
        .get_item()
        .table_name(&h.store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{id}")))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .send()
        .await
        .unwrap()
        .item()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn allow_lists_are_validated_stored_as_v4_and_refused_where_switched_off() {
    let h = Harness::new(20).await;
    let app = fenced_service(&h);
    let a = session(USER_A, ALL);
    let create = |cidrs: serde_json::Value| {
        Req::new("POST", "/tokens", Some(&a)).json(json!({
            "name": "office", "scopes": ["docs:read"], "expiresInDays": 7, "allowedCidrs": cidrs
        }))
    };
    let seventeen: Vec<String> = (0..17).map(|i| format!("10.0.{i}.0/24")).collect();
    for bad in [
        json!([]),
        json!(seventeen),
        json!(["0.0.0.0/0"]),
        json!(["::/0"]),
        json!(["10.0.0.0/33"]),
        json!(["office"]),
        json!("10.0.0.0/8"),
        json!([10]),
    ] {
        let reply = call(&app, create(bad.clone())).await;
        reply.assert_problem(400, "validation-failed");
        assert!(reply.text.contains("allowedCidrs"), "{bad}: {}", reply.text);
    }
    let created = call(
        &app,
        create(json!(["198.51.100.7/24", "2001:db8::1", "198.51.100.0/24"])),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json["allowedCidrs"],
        json!(["198.51.100.0/24", "2001:db8::1/128"])
    );
    let id = created.json["id"].as_str().unwrap();
    let item = stored(&h, id).await;
    assert_eq!(
        item["v"],
        AttributeValue::N("4".into()),
        "older readers refuse v4"
    );
    let shown = call(&app, Req::new("GET", &format!("/tokens/{id}"), Some(&a))).await;
    assert_eq!(shown.json["allowedCidrs"], created.json["allowedCidrs"]);
    // The listing shows it too (the index does not project it).
    let listed = call(&app, Req::new("GET", "/tokens", Some(&a))).await;
    let item = listed.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(item["allowedCidrs"], created.json["allowedCidrs"]);

    // Without an allow-list: v3 as before, and no field in the view.
    let open = call(
        &app,
        Req::new("POST", "/tokens", Some(&a)).json(json!({
            "name": "laptop", "scopes": ["docs:read"], "expiresInDays": 7
        })),
    )
    .await;
    assert!(open.json.get("allowedCidrs").is_none());
    let item = stored(&h, open.json["id"].as_str().unwrap()).await;
    assert_eq!(item["v"], AttributeValue::N("3".into()));

    // The shipped default: switched off, so none is issued.
    let reply = h.call(create(json!(["198.51.100.0/24"]))).await;
    reply.assert_problem(400, "validation-failed");
    assert!(
        reply.text.contains("IP allow-lists are off"),
        "{}",
        reply.text
    );
}

/// A restriction that cannot be read never becomes no restriction.
#[tokio::test]
async fn an_unreadable_allow_list_refuses_the_token() {
    let h = Harness::new(20).await;
    let (token, id) = issue(&h, USER_A, &["docs:read"], 7).await;
    assert!(h.authorize(&token).await.is_some());
    h.store
        .client()
        .update_item()
        .table_name(&h.store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{id}")))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET cidrs = :c")
        .expression_attribute_values(":c", AttributeValue::Ss(vec!["everywhere".into()]))
        .send()
        .await
        .unwrap();
    h.clock.set(T0 + 3600);
    let read = h.store.get(&shared::TokenId::parse(&id).unwrap()).await;
    assert!(
        matches!(read, Err(shared::store::StoreError::Corrupt("cidrs"))),
        "{read:?}"
    );
    assert!(h.authorize(&token).await.is_none());
}

/// Rate tiers at issue (issue #16 item 3): one of the deployment's tiers,
/// kept by rotation; without tiers, none.
#[tokio::test]
async fn a_rate_tier_is_one_of_the_deployments_and_rotation_keeps_it() {
    let h = Harness::new(20).await;
    let a = session(USER_A, ALL);
    let body = |tier: &str| json!({"name": "ci", "scopes": ["docs:read"], "expiresInDays": 7, "rateTier": tier});
    let reply = h
        .call(Req::new("POST", "/tokens", Some(&a)).json(body("bulk")))
        .await;
    reply.assert_problem(400, "validation-failed");
    assert!(reply.text.contains("no rate tiers"), "{}", reply.text);

    let state = AppState::new(
        h.store.clone(),
        hasher(),
        h.clock.clone(),
        90,
        shared::testing::manifest(),
    )
    .and_then(|s| s.with_rate_tiers(vec!["standard".into(), "bulk".into()]))
    .unwrap();
    let app = token_service::router(state);
    let reply = call(
        &app,
        Req::new("POST", "/tokens", Some(&a)).json(body("gold")),
    )
    .await;
    reply.assert_problem(400, "validation-failed");
    assert!(reply.text.contains("standard, bulk"), "{}", reply.text);
    let created = call(
        &app,
        Req::new("POST", "/tokens", Some(&a)).json(body("bulk")),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["rateTier"], "bulk");
    let id = created.json["id"].as_str().unwrap();
    let rotated = call(
        &app,
        Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a)),
    )
    .await;
    assert_eq!(rotated.json["rateTier"], "bulk");
    let listed = call(&app, Req::new("GET", "/tokens?status=active", Some(&a))).await;
    assert_eq!(
        listed.json["items"][0]["rateTier"], "bulk",
        "{}",
        listed.text
    );
}
