//! The administrators' routes end to end through the local gateway, with the
//! shipped caches on: real Cognito users on moto, one of them in the
//! `agpat-admins` group that the fixture manifest maps to `admin:tokens`.
//!
//! BFLA: no credential but an administrator's Cognito session reaches an
//! admin route, whatever its scopes (a non-admin session, a PAT with every
//! scope a PAT can hold, the administrator's own PAT). BOLA: an
//! administrator acts on another user's tokens, and each act is in the
//! affected token's history, naming the administrator.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

use std::sync::Arc;

use axum::Json;
use local_gateway::{GatewayConfig, app, build, cognito};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::Scope;
use shared::routes::Access;

mod support;

use support::{PASSWORD, fixture, lambda_endpoint, serve_on_loopback};

/// The adopter's Lambda: echoes who API Gateway says is calling.
async fn echo(Json(event): Json<Value>) -> Json<Value> {
    let authorizer = &event["requestContext"]["authorizer"];
    let seen = json!({
        "sub": authorizer["sub"],
        "principalKind": authorizer["principalKind"],
        "scopes": authorizer["scopes"],
    });
    Json(
        json!({"statusCode": 200, "headers": {}, "body": seen.to_string(), "isBase64Encoded": false}),
    )
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: &str, path: &str, credential: &str) -> (StatusCode, Value) {
        let reply = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        let status = reply.status();
        let text = reply.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, jwt: &str, name: &str, scopes: &[&str]) -> (String, String) {
        let reply = self
            .http
            .post(format!("{}/tokens", self.base))
            .bearer_auth(jwt)
            .json(&json!({"name": name, "scopes": scopes, "expiresInDays": 7}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::CREATED, "{name}");
        let body: Value = reply.json().await.unwrap();
        (
            body["token"].as_str().unwrap().to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        )
    }
}

#[tokio::test]
async fn only_an_admin_session_acts_on_others_tokens_and_every_act_is_in_their_history() {
    let upstream = lambda_endpoint(echo).await;
    let setup = fixture(
        "admins",
        &["alice", "mallory", "adam"],
        &upstream,
        GatewayConfig::default(),
    )
    .await;
    let pool = setup.pool.clone();
    cognito::add_to_group(&pool, "adam", "agpat-admins")
        .await
        .unwrap();
    let manifest = Arc::clone(&setup.manifest);
    let store = setup.store.clone();
    let gateway = build(&setup, Arc::new(shared::SystemClock)).unwrap();
    let api = Api {
        base: serve_on_loopback(app(gateway.clone())).await,
        http: reqwest::Client::new(),
    };
    let alice = cognito::login(&pool, "alice", PASSWORD).await.unwrap();
    let mallory = cognito::login(&pool, "mallory", PASSWORD).await.unwrap();
    let adam = cognito::login(&pool, "adam", PASSWORD).await.unwrap();

    let (alice_pat, alice_id) = api.create(&alice, "laptop", &["tokens:read"]).await;
    // Every scope a PAT can carry; admin:tokens is not among them, not even
    // for an administrator.
    let registry = manifest.scopes();
    let all: Vec<&str> = manifest
        .sessions()
        .pat_ceiling()
        .iter()
        .map(|s| registry.name(s))
        .collect();
    let (mallory_pat, _) = api.create(&mallory, "everything", &all).await;
    let (adam_pat, _) = api.create(&adam, "admin's own", &all).await;
    let escalation = api
        .http
        .post(format!("{}/tokens", api.base))
        .bearer_auth(&adam)
        .json(&json!({"name": "x", "scopes": ["admin:tokens"], "expiresInDays": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(escalation.status(), StatusCode::BAD_REQUEST);
    let refused = escalation.text().await.unwrap();
    assert!(refused.contains("granted by group membership"), "{refused}");

    // The administrator finds the owner of a token by its id.
    let (status, seen) = api
        .call("GET", &format!("/admin/tokens/{alice_id}"), &adam)
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let alice_sub = seen["owner"].as_str().unwrap().to_owned();
    assert_eq!(seen["id"], alice_id.as_str());

    // BFLA: every admin route, three kinds of non-admin credential.
    let admin_routes: Vec<_> = manifest
        .routes()
        .routes()
        .iter()
        .filter(|r| r.access == Access::Scope(Scope::ADMIN_TOKENS))
        .collect();
    assert_eq!(admin_routes.len(), 6);
    for route in &admin_routes {
        let path = route.path.replace("{id}", &alice_id);
        let path = if path == "/admin/tokens" {
            format!("{path}?owner={alice_sub}")
        } else {
            path
        };
        for (who, credential) in [
            ("a session outside the group", &mallory),
            ("a PAT with every PAT scope", &mallory_pat),
            ("the administrator's own PAT", &adam_pat),
        ] {
            let (status, body) = api.call(route.method.as_str(), &path, credential).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{who}: {} {path}",
                route.method
            );
            assert!(!body.to_string().contains(&alice_id), "{who}: {body}");
        }
    }
    // None of it touched Alice's token.
    let (status, mine) = api
        .call("GET", &format!("/tokens/{alice_id}"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["status"], "active");

    // The administrator lists, reads, revokes; never a secret or a hash.
    let (status, listed) = api
        .call(
            "GET",
            &format!("/admin/tokens?owner={alice_sub}&status=active"),
            &adam,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["owner"], alice_sub.as_str());
    let (status, history) = api
        .call("GET", &format!("/admin/tokens/{alice_id}/events"), &adam)
        .await;
    assert_eq!(status, StatusCode::OK);
    for body in [&seen, &listed, &history] {
        let text = body.to_string();
        assert!(!text.contains(&alice_pat), "{text}");
        assert!(!text.contains("$argon2"), "{text}");
        assert!(!text.contains("hash"), "{text}");
    }
    assert_eq!(
        api.call("DELETE", "/admin/tokens", &adam).await.0,
        StatusCode::BAD_REQUEST,
        "revoke-all names its owner"
    );
    assert_eq!(
        api.call("DELETE", &format!("/admin/tokens/{alice_id}"), &adam)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "/tokens/self", &alice_pat).await.0,
        StatusCode::UNAUTHORIZED,
        "never cached as allowed: refused at once"
    );

    // Alice's own history names the administrator for each act.
    let (status, events) = api
        .call(
            "GET",
            &format!("/tokens/{alice_id}/events?limit=100"),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let events = events["items"].as_array().unwrap();
    let by_admin: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["admin"]["sub"].is_string())
        .map(|e| {
            assert_eq!(e["admin"]["username"], "adam");
            (
                e["type"].as_str().unwrap(),
                e["view"].as_str().or(e["by"].as_str()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_admin,
        [
            ("revoked", "admin"),
            ("admin_viewed", "history"),
            ("admin_viewed", "listing"),
            ("admin_viewed", "metadata"),
        ]
    );
    let adam_sub = events[0]["admin"]["sub"].as_str().unwrap();
    assert_ne!(adam_sub, alice_sub);

    // Revoke-all of a user, the offboarding operation: her other tokens
    // die, and her session from before it can no longer mint.
    let (second, _) = api.create(&alice, "ci", &["tokens:read"]).await;
    let (third, _) = api.create(&alice, "phone", &["tokens:read"]).await;
    let (status, outcome) = api
        .call("DELETE", &format!("/admin/tokens?owner={alice_sub}"), &adam)
        .await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(
        outcome,
        json!({"revoked": 2, "remaining": 0, "complete": true})
    );
    for pat in [&second, &third] {
        assert_eq!(
            api.call("GET", "/tokens/self", pat).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let again = api
        .http
        .post(format!("{}/tokens", api.base))
        .bearer_auth(&alice)
        .json(&json!({"name": "x", "scopes": ["tokens:read"], "expiresInDays": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    // Mallory's tokens are untouched by Alice's revoke-all.
    assert_eq!(
        api.call("GET", "/tokens/self", &mallory_pat).await.0,
        StatusCode::OK
    );

    // Item 2: the administrator issues a token to a service; the adopter's
    // Lambda sees a service token, and the administrator leaving (the
    // offboarding operation on their sub) does not take it along.
    let issued = api
        .http
        .post(format!("{}/admin/tokens", api.base))
        .bearer_auth(&adam)
        .json(&json!({"service": "ci-deploy", "name": "deploy", "scopes": ["docs:read"], "expiresInDays": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::CREATED);
    let service_token = issued.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    store
        .revoke_all(
            &shared::UserId::parse(adam_sub).unwrap(),
            shared::Clock::now(&shared::SystemClock),
            None,
            shared::history::RevokedBy::Offboarding,
        )
        .await
        .unwrap();
    let (status, seen) = api.call("GET", "/docs/readme", &service_token).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(
        seen,
        json!({"sub": "service:ci-deploy", "principalKind": "service_token", "scopes": "docs:read"})
    );
    let (status, _) = api.call("PUT", "/docs/readme", &service_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "docs:write is beyond it");
    // The administrator's session from before their offboarding is done.
    assert_eq!(
        api.call("GET", &format!("/admin/tokens?owner={alice_sub}"), &adam)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}
