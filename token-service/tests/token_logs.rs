//! Secret hygiene across the whole token lifecycle: the secret appears only in
//! the issue and rotate response bodies; logs carry audit events, never a
//! secret or a hash. Its own binary so the capturing subscriber is global.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn secrets_appear_only_in_issue_and_rotate_bodies_and_never_in_logs() {
    let captured = shared::testing::LogCapture::global();

    let h = Harness::new(10).await;
    let a = session(USER_A, ALL);
    let mut secrets = Vec::new();
    let mut bodies_without_secrets = Vec::new();

    let created = h
        .call(
            Req::new("POST", "/tokens", Some(&a))
                .json(json!({"name": "n", "scopes": ["docs:read"], "expiresInDays": 3})),
        )
        .await;
    let token = created.json["token"].as_str().unwrap().to_owned();
    let id = created.json["id"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    let ctx = h.authorize(&token).await.unwrap();
    bodies_without_secrets.push(h.call(Req::new("GET", "/tokens", Some(&a))).await.text);
    bodies_without_secrets.push(
        h.call(Req::new("GET", &format!("/tokens/{id}"), Some(&a)))
            .await
            .text,
    );
    bodies_without_secrets.push(
        h.call(Req::new("GET", "/tokens/self", Some(&ctx)))
            .await
            .text,
    );
    bodies_without_secrets.push(
        h.call(
            Req::new("PATCH", &format!("/tokens/{id}"), Some(&a))
                .json(json!({"name": "renamed", "description": "ci"})),
        )
        .await
        .text,
    );
    bodies_without_secrets.push(
        h.call(Req::new("GET", &format!("/tokens/{id}/events"), Some(&a)))
            .await
            .text,
    );
    let rotated = h
        .call(Req::new("POST", &format!("/tokens/{id}/rotate"), Some(&a)))
        .await;
    let token2 = rotated.json["token"].as_str().unwrap().to_owned();
    let id2 = rotated.json["id"].as_str().unwrap().to_owned();
    secrets.push(token2.clone());
    bodies_without_secrets.push(
        h.call(Req::new("DELETE", &format!("/tokens/{id2}"), Some(&a)))
            .await
            .text,
    );
    let (token3, _) = issue(&h, USER_A, &["docs:read"], 3).await;
    secrets.push(token3.clone());
    bodies_without_secrets.push(
        h.call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": token3})))
            .await
            .text,
    );
    // An administrator's acts on A's tokens: answers without secrets, and
    // an audit line each naming the administrator and the owner.
    let admin = session("admin-sub", &format!("{ALL} admin:tokens"));
    let (token4, id4) = issue(&h, USER_A, &["docs:read"], 3).await;
    secrets.push(token4);
    let owner_query = format!("owner={USER_A}");
    for (method, path, query) in [
        (
            "GET",
            "/admin/tokens".to_owned(),
            Some(owner_query.as_str()),
        ),
        ("GET", format!("/admin/tokens/{id4}"), None),
        ("GET", format!("/admin/tokens/{id4}/events"), None),
        ("DELETE", format!("/admin/tokens/{id4}"), None),
        (
            "DELETE",
            "/admin/tokens".to_owned(),
            Some(owner_query.as_str()),
        ),
    ] {
        let req = Req::new(method, &path, Some(&admin));
        let req = match query {
            Some(q) => req.query(q),
            None => req,
        };
        let reply = h.call(req).await;
        assert!(reply.status < 300, "{method} {path}: {}", reply.text);
        bodies_without_secrets.push(reply.text);
    }
    // A service token: its secret only in the issue body, too.
    let service = h
        .call(Req::new("POST", "/admin/tokens", Some(&admin)).json(json!({
            "service": "ci-deploy", "name": "deploy", "scopes": ["docs:read"], "expiresInDays": 3
        })))
        .await;
    assert_eq!(service.status, 201, "{}", service.text);
    secrets.push(service.json["token"].as_str().unwrap().to_owned());
    bodies_without_secrets.push(h.call(Req::new("DELETE", "/tokens", Some(&a))).await.text);

    let mut hashes = Vec::new();
    for t in &secrets {
        let pat = shared::Pat::parse(t).unwrap();
        hashes.push(
            h.store
                .get(pat.id())
                .await
                .unwrap()
                .unwrap()
                .hash
                .expose()
                .to_owned(),
        );
    }
    let logs = captured.text();
    for secret in &secrets {
        let pat = shared::Pat::parse(secret).unwrap();
        let secret_part = std::str::from_utf8(pat.secret().expose_bytes()).unwrap();
        assert!(!logs.contains(secret_part), "a secret reached the logs");
        for body in &bodies_without_secrets {
            assert!(
                !body.contains(secret_part),
                "a secret appeared outside issue/rotate"
            );
        }
    }
    for hash in &hashes {
        assert!(!logs.contains(hash.as_str()), "a hash reached the logs");
    }
    assert!(!logs.contains("$argon2"));
    // The audit trail is there, with who, what, from where.
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["audit"] == true)
        .collect();
    let events: Vec<&str> = audit
        .iter()
        .map(|v| v["fields"]["event"].as_str().unwrap())
        .collect();
    for expected in [
        "token.create",
        "token.update",
        "token.rotate",
        "token.revoke",
        "token.leaked_revoke",
        "token.revoke_all",
        "admin.token.list",
        "admin.token.read",
        "admin.token.events",
        "admin.token.revoke",
        "admin.token.revoke_all",
        "admin.token.create",
    ] {
        assert!(
            events.contains(&expected),
            "missing audit event {expected}: {events:?}"
        );
    }
    let create = audit
        .iter()
        .find(|v| v["fields"]["event"] == "token.create")
        .unwrap();
    assert_eq!(create["fields"]["actor"], USER_A);
    assert_eq!(create["fields"]["token_id"], id.as_str());
    assert_eq!(create["fields"]["scopes"], "docs:read");
    assert_eq!(create["fields"]["source_ip"], "198.51.100.7");
    assert_eq!(create["fields"]["user_agent"], "token-tests/1.0");
    assert_eq!(create["fields"]["outcome"], "success");
    for act in audit
        .iter()
        .filter(|v| v["fields"]["event"].as_str().unwrap().starts_with("admin."))
    {
        assert_eq!(act["fields"]["actor"], "admin-sub", "{act}");
        let owner = if act["fields"]["event"] == "admin.token.create" {
            "service:ci-deploy"
        } else {
            USER_A
        };
        assert_eq!(act["fields"]["owner"], owner, "{act}");
        assert_eq!(act["fields"]["outcome"], "success", "{act}");
    }
}
