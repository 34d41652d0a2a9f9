//! Issuing options: IP allow-lists (issue #16 item 5: validation, the
//! switch, the stored form older releases refuse) and rate tiers (item 3).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use super::support::*;

fn fenced_service(h: &Harness) -> axum::Router {
    token_service::router(h.state().with_ip_allow_lists(true).unwrap())
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

    let state = h
        .state()
        .with_rate_tiers(vec!["standard".into(), "bulk".into()])
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

fn dpop_service(h: &Harness) -> axum::Router {
    token_service::router(h.state().with_dpop(true).unwrap())
}

/// Issue #18 item 1: a token bound at issue to a public JWK (P-256 or
/// Ed25519), stored as v5 with its thumbprint, shown as bound; a rotation
/// keeps the binding or moves it to a new key; refused where DPoP is off.
#[tokio::test]
async fn a_token_is_bound_to_a_public_key_at_issue_and_rotation_and_shown_as_bound() {
    use shared::dpop::{ProofAlgorithm, ProofKey};
    let h = Harness::new(20).await;
    let app = dpop_service(&h);
    let a = session(USER_A, ALL);
    let create = |jwk: serde_json::Value| {
        Req::new("POST", "/tokens", Some(&a)).json(json!({
            "name": "ci", "scopes": ["docs:read", "tokens:write"], "expiresInDays": 7, "dpopJwk": jwk
        }))
    };
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let mut private = key.public_jwk().to_value();
    private["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut off_curve = key.public_jwk().to_value();
    off_curve["y"] = off_curve["x"].clone();
    for (bad, says) in [
        (private, "only the public key"),
        (off_curve, "not a valid public key"),
        (
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            "JSON Web Key",
        ),
        (
            json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
            "P-256",
        ),
        (json!("EC"), "JSON Web Key"),
    ] {
        let reply = call(&app, create(bad.clone())).await;
        reply.assert_problem(400, "validation-failed");
        assert!(
            reply.text.contains("dpopJwk") && reply.text.contains(says),
            "{bad}: {}",
            reply.text
        );
    }
    let jkt = key.public_jwk().thumbprint();
    let created = call(&app, create(key.public_jwk().to_value())).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["dpopJkt"], json!(jkt.as_str()));
    let id = created.json["id"].as_str().unwrap().to_owned();
    let item = stored(&h, &id).await;
    assert_eq!(
        item["v"],
        AttributeValue::N("5".into()),
        "older readers refuse v5"
    );
    assert_eq!(item["jkt"], AttributeValue::S(jkt.as_str().to_owned()));
    let shown = call(&app, Req::new("GET", &format!("/tokens/{id}"), Some(&a))).await;
    assert_eq!(shown.json["dpopJkt"], json!(jkt.as_str()));
    let listed = call(&app, Req::new("GET", "/tokens", Some(&a))).await;
    let row = listed.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["dpopJkt"], json!(jkt.as_str()));

    // Rotation keeps the key, or binds the successor to a new one.
    let rotated = call(
        &app,
        Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a)),
    )
    .await;
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    assert_eq!(rotated.json["dpopJkt"], json!(jkt.as_str()));
    let next = rotated.json["id"].as_str().unwrap().to_owned();
    let ed = ProofKey::generate(ProofAlgorithm::EdDsa).unwrap();
    let rebound = call(
        &app,
        Req::new("POST", &format!("/tokens/{next}/rotate"), Some(&a))
            .json(json!({"dpopJwk": ed.public_jwk().to_value()})),
    )
    .await;
    assert_eq!(rebound.status, 201, "{}", rebound.text);
    assert_eq!(
        rebound.json["dpopJkt"],
        json!(ed.public_jwk().thumbprint().as_str())
    );
    // No rotation drops a binding: `null` keeps the key too.
    let last = rebound.json["id"].as_str().unwrap().to_owned();
    let kept = call(
        &app,
        Req::new("POST", &format!("/tokens/{last}/rotate"), Some(&a))
            .json(json!({"dpopJwk": null})),
    )
    .await;
    assert_eq!(kept.status, 201, "{}", kept.text);
    assert_eq!(
        kept.json["dpopJkt"],
        json!(ed.public_jwk().thumbprint().as_str())
    );

    // An unbound token shows no binding; a deployment with DPoP off (the
    // default) binds nothing.
    let open = call(
        &app,
        Req::new("POST", "/tokens", Some(&a))
            .json(json!({"name": "laptop", "scopes": ["docs:read"], "expiresInDays": 7})),
    )
    .await;
    assert!(open.json.get("dpopJkt").is_none());
    let reply = h
        .call(Req::new("POST", "/tokens", Some(&a)).json(json!({
            "name": "ci", "scopes": ["docs:read"], "expiresInDays": 7,
            "dpopJwk": key.public_jwk().to_value()
        })))
        .await;
    reply.assert_problem(400, "validation-failed");
    assert!(reply.text.contains("DPoP is off"), "{}", reply.text);
}

/// Review finding: the machines the README recommends binding include
/// service tokens, which only administrators issue.
#[tokio::test]
async fn an_administrator_binds_a_service_token_to_a_key() {
    use shared::dpop::{ProofAlgorithm, ProofKey};
    let h = Harness::new(20).await;
    let app = dpop_service(&h);
    let mut admin = session("admin-sub", &format!("{ALL} admin:tokens"));
    admin.username = "adam".into();
    let key = ProofKey::generate(ProofAlgorithm::EdDsa).unwrap();
    let created = call(
        &app,
        Req::new("POST", "/admin/tokens", Some(&admin)).json(json!({
            "service": "ci-deploy", "name": "deploy", "scopes": ["docs:read"], "expiresInDays": 30,
            "dpopJwk": key.public_jwk().to_value()
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json["dpopJkt"],
        json!(key.public_jwk().thumbprint().as_str())
    );
    let item = stored(&h, created.json["id"].as_str().unwrap()).await;
    assert_eq!(item["v"], AttributeValue::N("5".into()));
    // Off (the default harness): refused like any binding.
    let reply = h
        .call(Req::new("POST", "/admin/tokens", Some(&admin)).json(json!({
            "service": "ci-deploy", "name": "deploy", "scopes": ["docs:read"], "expiresInDays": 30,
            "dpopJwk": key.public_jwk().to_value()
        })))
        .await;
    reply.assert_problem(400, "validation-failed");
}
