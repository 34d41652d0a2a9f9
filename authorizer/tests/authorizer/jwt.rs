//! The JWT suite: real RS256 tokens against an in-test JWKS server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::AuthMethod;

use crate::support::*;

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        signature
    )
}

#[tokio::test]
async fn a_valid_access_token_is_allowed_with_every_permitted_route() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let before = h.dynamo_calls.get();
    let response = h
        .decide(Some(&bearer(&sign(&access_claims()))))
        .await
        .unwrap();
    assert_eq!(
        response.principal_id.as_deref(),
        Some("8c1d5a2e-1111-4000-8000-000000000001")
    );
    assert_eq!(
        allowed_resources(&response),
        expected_resources(shared::testing::default_scopes())
    );
    assert_eq!(response.context.auth_method, AuthMethod::Jwt);
    assert_eq!(response.context.username, "alice");
    assert_eq!(response.context.token_id, "");
    assert_eq!(response.context.expires_at, T0 + 3600);
    assert_eq!(
        h.dynamo_calls.get(),
        before,
        "the JWT path never touches DynamoDB"
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let token = sign(&access_claims());
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        assert!(
            h.decide(Some(&format!("{scheme} {token}"))).await.is_ok(),
            "{scheme}"
        );
    }
    assert_unauthorized(
        h.decide(Some(&format!("Basic {token}"))).await,
        "basic scheme",
    );
    assert_unauthorized(h.decide(Some(&token)).await, "no scheme");
    assert_unauthorized(h.decide(Some("Bearer ")).await, "empty credential");
    assert_unauthorized(h.decide(None).await, "no header");
}

#[tokio::test]
async fn scopes_can_be_narrowed_by_the_access_token_scope_claim() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.manifest = fixture_with_sessions(
        "[sessions]\nscope_prefix = \"https://api.example.com/\"\n[sessions.groups]\noperators = [\"admin:ops\"]\n",
    );
    let h = builder.build().await;
    let claims = with(
        access_claims(),
        "scope",
        json!("openid https://api.example.com/docs:read https://api.example.com/bogus"),
    );
    let response = h.decide(Some(&bearer(&sign(&claims)))).await.unwrap();
    let expected = shared::testing::scopes("docs:read");
    assert_eq!(response.context.scopes, "docs:read");
    assert_eq!(allowed_resources(&response), expected_resources(expected));
    let none = with(access_claims(), "scope", json!("openid"));
    assert_unauthorized(h.decide(Some(&bearer(&sign(&none)))).await, "no api scope");
}

#[tokio::test]
async fn id_tokens_are_refused_by_default_and_accepted_when_configured() {
    let jwks = JwksServer::start(JWKS).await;
    let id_claims = json!({
        "sub": "8c1d5a2e-1111-4000-8000-000000000001",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "cognito:username": "alice",
        "iat": T0 - 5,
        "exp": T0 + 3600
    });
    let token = sign(&id_claims);
    let h = HarnessBuilder::new(&jwks.url).build().await;
    assert_unauthorized(
        h.decide(Some(&bearer(&token))).await,
        "id token when access required",
    );
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.jwt.token_use.id = true;
    let h = builder.build().await;
    let response = h.decide(Some(&bearer(&token))).await.unwrap();
    assert_eq!(response.context.username, "alice");
    let wrong_aud = with(id_claims, "aud", json!("another-client"));
    assert_unauthorized(
        h.decide(Some(&bearer(&sign(&wrong_aud)))).await,
        "id token wrong aud",
    );
}

/// The negative corpus: every entry must get the same `Unauthorized`.
#[tokio::test]
async fn every_malicious_or_invalid_jwt_is_unauthorized() {
    let jwks = JwksServer::start(JWKS).await;
    let evil = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let good = sign(&access_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let (head, body, sig) = (parts[0], parts[1], parts[2]);
    let payload = access_claims();

    let mut cases: Vec<(String, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "kid": KID, "typ": "JWT"});
        cases.push((
            format!("alg {alg} unsigned"),
            raw_token(&header, &payload, ""),
        ));
        cases.push((
            format!("alg {alg} with junk signature"),
            raw_token(&header, &payload, "AAAA"),
        ));
    }
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(KID.into());
    cases.push((
        "HS256 keyed with the public key PEM".into(),
        jsonwebtoken::encode(
            &hs,
            &payload,
            &EncodingKey::from_secret(SIGNING_PUB_PEM.as_bytes()),
        )
        .unwrap(),
    ));
    let pem_body: String = SIGNING_PUB_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(pem_body)
        .unwrap();
    cases.push((
        "HS256 keyed with the public key DER".into(),
        jsonwebtoken::encode(&hs, &payload, &EncodingKey::from_secret(&der)).unwrap(),
    ));
    let jwk_json =
        serde_json::to_string(&serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0]).unwrap();
    cases.push((
        "HS256 keyed with the public key JWK JSON".into(),
        jsonwebtoken::encode(
            &hs,
            &payload,
            &EncodingKey::from_secret(jwk_json.as_bytes()),
        )
        .unwrap(),
    ));
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let mut header = Header::new(alg);
        header.kid = Some(KID.into());
        cases.push((
            format!("{alg:?}"),
            jsonwebtoken::encode(&header, &payload, &EncodingKey::from_secret(b"secret")).unwrap(),
        ));
    }
    let mut ps = Header::new(Algorithm::PS256);
    ps.kid = Some(KID.into());
    cases.push((
        "PS256 with the right key".into(),
        sign_header(&ps, &payload),
    ));
    cases.push((
        "unknown kid".into(),
        sign_with(SIGNING_DER, Some("no-such-key"), &payload),
    ));
    cases.push(("missing kid".into(), sign_with(SIGNING_DER, None, &payload)));
    cases.push((
        "kid path traversal".into(),
        sign_with(SIGNING_DER, Some("../../../../etc/passwd"), &payload),
    ));
    cases.push((
        "kid SQL".into(),
        sign_with(SIGNING_DER, Some("' OR '1'='1"), &payload),
    ));
    cases.push((
        "kid 10 KiB".into(),
        sign_with(SIGNING_DER, Some(&"k".repeat(10 * 1024)), &payload),
    ));
    cases.push((
        "kid not a string".into(),
        raw_token(&json!({"alg": "RS256", "kid": 7}), &payload, sig),
    ));
    let mut jku = Header::new(Algorithm::RS256);
    jku.kid = Some(KID.into());
    jku.jku = Some(evil.url.clone());
    cases.push(("jku pointing elsewhere".into(), sign_header(&jku, &payload)));
    let mut x5u = Header::new(Algorithm::RS256);
    x5u.kid = Some(KID.into());
    x5u.x5u = Some(evil.url.clone());
    cases.push(("x5u pointing elsewhere".into(), sign_header(&x5u, &payload)));
    let embedded: Value = serde_json::from_str::<Value>(JWKS).unwrap()["keys"][0].clone();
    cases.push((
        "embedded jwk header".into(),
        raw_token(
            &json!({"alg": "RS256", "kid": KID, "jwk": embedded}),
            &payload,
            sig,
        ),
    ));
    cases.push((
        "x5c header".into(),
        raw_token(
            &json!({"alg": "RS256", "kid": KID, "x5c": ["MIIB"]}),
            &payload,
            sig,
        ),
    ));
    cases.push((
        "signed by another key with our kid".into(),
        sign_with(OTHER_DER, Some(KID), &payload),
    ));
    cases.push((
        "expired".into(),
        sign(&with(payload.clone(), "exp", json!(T0 - 10))),
    ));
    cases.push((
        "expired just past leeway".into(),
        sign(&with(payload.clone(), "exp", json!(T0 - 5))),
    ));
    cases.push((
        "nbf in the future".into(),
        sign(&with(payload.clone(), "nbf", json!(T0 + 60))),
    ));
    cases.push((
        "iat in the future".into(),
        sign(&with(payload.clone(), "iat", json!(T0 + 60))),
    ));
    cases.push(("exp missing".into(), sign(&without(payload.clone(), "exp"))));
    cases.push((
        "exp as a string".into(),
        sign(&with(payload.clone(), "exp", json!("1900003600"))),
    ));
    cases.push((
        "nbf as a string".into(),
        sign(&with(payload.clone(), "nbf", json!("0"))),
    ));
    cases.push((
        "wrong iss".into(),
        sign(&with(
            payload.clone(),
            "iss",
            json!("https://evil.example.com/pool"),
        )),
    ));
    cases.push((
        "iss with trailing slash".into(),
        sign(&with(payload.clone(), "iss", json!(format!("{ISSUER}/")))),
    ));
    cases.push((
        "wrong client_id".into(),
        sign(&with(payload.clone(), "client_id", json!("other-client"))),
    ));
    cases.push((
        "client_id missing".into(),
        sign(&without(payload.clone(), "client_id")),
    ));
    cases.push((
        "token_use refresh".into(),
        sign(&with(payload.clone(), "token_use", json!("refresh"))),
    ));
    cases.push((
        "token_use missing".into(),
        sign(&without(payload.clone(), "token_use")),
    ));
    cases.push(("sub missing".into(), sign(&without(payload.clone(), "sub"))));
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    cases.push((
        "flipped signature byte".into(),
        format!("{head}.{body}.{}", String::from_utf8(flipped).unwrap()),
    ));
    cases.push(("stripped signature".into(), format!("{head}.{body}.")));
    cases.push(("two parts".into(), format!("{head}.{body}")));
    cases.push(("four parts".into(), format!("{good}.{sig}")));
    cases.push((
        "oversize".into(),
        format!("{head}.{}.{sig}", "A".repeat(9000)),
    ));
    cases.push(("non-base64".into(), format!("{head}.{body}!.{sig}")));
    cases.push((
        "payload not JSON".into(),
        format!("{head}.{}.{sig}", B64.encode("not json")),
    ));
    cases.push(("empty".into(), String::new()));
    cases.push(("five parts".into(), format!("{good}.{sig}.{sig}")));
    cases.push((
        "truncated signature".into(),
        format!("{head}.{body}.{}", &sig[..sig.len() / 2]),
    ));
    cases.push(("signature with base64 padding".into(), format!("{good}==")));
    cases.push((
        "standard base64 alphabet".into(),
        good.replace('-', "+").replace('_', "/"),
    ));
    cases.push(("leading whitespace".into(), format!(" {good}")));
    cases.push(("whitespace inside".into(), format!("{head}. {body}.{sig}")));
    cases.push(("trailing dot".into(), format!("{good}.")));
    cases.push((
        "issuer off by one character".into(),
        sign(&with(
            payload.clone(),
            "iss",
            json!(ISSUER.replace("TestPool", "TestPoom")),
        )),
    ));
    cases.push((
        "issuer in another case".into(),
        sign(&with(payload.clone(), "iss", json!(ISSUER.to_uppercase()))),
    ));
    cases.push((
        "token_use swapped to id".into(),
        sign(&with(payload.clone(), "token_use", json!("id"))),
    ));
    cases.push((
        "client_id as a number".into(),
        sign(&with(payload.clone(), "client_id", json!(7))),
    ));
    cases.push((
        "exp as a float".into(),
        sign(&with(payload.clone(), "exp", json!(1.9e9))),
    ));
    cases.push((
        "sub not a user id".into(),
        sign(&with(payload.clone(), "sub", json!("a#b"))),
    ));

    assert!(cases.len() >= 35, "corpus has {} vectors", cases.len());
    for (name, token) in &cases {
        assert_refused(&h, &bearer(token), name).await;
    }
    println!(
        "JWT negative corpus: {} vectors, all Unauthorized, 0 fetches from token-named URLs",
        cases.len()
    );
    assert_eq!(
        evil.hits(),
        0,
        "a token header made us fetch from elsewhere"
    );
    assert!(
        jwks.hits() <= 2,
        "junk triggered {} JWKS fetches",
        jwks.hits()
    );
    // The genuine token still works after the onslaught.
    assert!(h.decide(Some(&bearer(&good))).await.is_ok());
}

#[tokio::test]
async fn expiry_honours_the_configured_leeway() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let token = sign(&with(access_claims(), "exp", json!(T0 - 4)));
    assert!(
        h.decide(Some(&bearer(&token))).await.is_ok(),
        "within the 5 s leeway"
    );
    h.clock.set(T0 + 1);
    assert_unauthorized(h.decide(Some(&bearer(&token))).await, "past the leeway");
}

#[tokio::test]
async fn a_thousand_unknown_kids_cause_at_most_one_refetch() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    h.decide(Some(&bearer(&sign(&access_claims()))))
        .await
        .unwrap();
    assert_eq!(jwks.hits(), 1);
    for i in 0..1000 {
        let token = sign_with(
            SIGNING_DER,
            Some(&format!("random-kid-{i}")),
            &access_claims(),
        );
        assert_unauthorized(h.decide(Some(&bearer(&token))).await, "unknown kid");
    }
    assert!(jwks.hits() <= 2, "{} fetches", jwks.hits());
    assert!(h.authorizer.jwt().keys().fetch_count() <= 2);
}

#[tokio::test]
async fn concurrent_cold_callers_share_one_fetch() {
    let jwks = JwksServer::start(JWKS).await;
    let h = std::sync::Arc::new(HarnessBuilder::new(&jwks.url).build().await);
    let token = bearer(&sign(&access_claims()));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.decide(Some(&token)).await.is_ok() })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test]
async fn cached_keys_keep_working_when_the_jwks_endpoint_goes_down() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.refresh_interval = std::time::Duration::from_millis(1);
    let h = builder.build().await;
    let token = bearer(&sign(&access_claims()));
    h.decide(Some(&token)).await.unwrap();
    jwks.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // An unknown kid forces a (failing) refetch; known keys must survive it.
    let unknown = sign_with(SIGNING_DER, Some("rotated-key"), &access_claims());
    assert!(h.decide(Some(&bearer(&unknown))).await.is_err());
    for _ in 0..3 {
        assert!(h.decide(Some(&token)).await.is_ok());
    }
}

#[tokio::test]
async fn an_unreachable_jwks_with_no_cached_key_fails_closed() {
    let jwks = JwksServer::start(JWKS).await;
    let url = jwks.url.clone();
    jwks.stop().await;
    let h = HarnessBuilder::new(&url).build().await;
    let result = h.decide(Some(&bearer(&sign(&access_claims())))).await;
    assert_eq!(result.err(), Some(authorizer::AuthError::Internal));
}

#[tokio::test]
async fn an_oversized_jwks_document_is_refused() {
    let padding = "x".repeat(authorizer::jwks::MAX_JWKS_BYTES);
    let body = JWKS.replacen('{', &format!("{{\"padding\":\"{padding}\","), 1);
    let jwks = JwksServer::start(&body).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let result = h.decide(Some(&bearer(&sign(&access_claims())))).await;
    assert_eq!(result.err(), Some(authorizer::AuthError::Internal));
    assert_eq!(jwks.hits(), 1);
}

#[tokio::test]
async fn a_jwks_redirect_is_not_followed() {
    let target = JwksServer::start(JWKS).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        target.url
    );
    let jwks = JwksServer::start_raw(redirect, false).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let result = h.decide(Some(&bearer(&sign(&access_claims())))).await;
    assert_eq!(result.err(), Some(authorizer::AuthError::Internal));
    assert_eq!(target.hits(), 0, "the redirect target was contacted");
}

#[tokio::test]
async fn a_hanging_jwks_endpoint_times_out_and_fails_closed() {
    let jwks = JwksServer::start_raw(String::new(), true).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        h.decide(Some(&bearer(&sign(&access_claims())))),
    )
    .await
    .expect("the JWKS fetch must time out well before 5 s");
    assert_eq!(result.err(), Some(authorizer::AuthError::Internal));
}

#[tokio::test]
async fn a_seen_jwt_is_served_from_the_verified_token_cache() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let token = bearer(&sign(&access_claims()));
    for t in 0..5 {
        h.clock.set(T0 + t);
        assert!(h.decide(Some(&token)).await.is_ok());
    }
    assert_eq!(h.authorizer.jwt().signature_checks(), 1);
    // A different token (same claims, new jti) is verified on its own.
    let other = bearer(&sign(&with(access_claims(), "jti", json!("other"))));
    assert!(h.decide(Some(&other)).await.is_ok());
    assert_eq!(h.authorizer.jwt().signature_checks(), 2);
}

#[tokio::test]
async fn a_cached_jwt_is_never_served_past_its_exp() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let token = bearer(&sign(&with(access_claims(), "exp", json!(T0 + 10))));
    assert!(h.decide(Some(&token)).await.is_ok());
    h.clock.set(T0 + 9);
    assert!(h.decide(Some(&token)).await.is_ok());
    assert_eq!(
        h.authorizer.jwt().signature_checks(),
        1,
        "served from cache before exp"
    );
    h.clock.set(T0 + 10);
    assert!(
        h.decide(Some(&token)).await.is_ok(),
        "leeway still applies on full verification"
    );
    assert_eq!(
        h.authorizer.jwt().signature_checks(),
        2,
        "at exp the cache is bypassed"
    );
    h.clock.set(T0 + 15);
    assert_unauthorized(h.decide(Some(&token)).await, "past exp and leeway");
}

#[tokio::test]
async fn a_refreshed_session_keeps_its_sign_in_time_in_the_context() {
    // A refresh gives a new access token (new iat) for the same sign-in
    // (auth_time): the context must carry the sign-in, so a session older
    // than the owner's revoke-all stays older after any number of refreshes.
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let mut refreshed = access_claims();
    refreshed["auth_time"] = serde_json::json!(T0 - 86_400);
    refreshed["iat"] = serde_json::json!(T0 - 60);
    let response = h.decide(Some(&bearer(&sign(&refreshed)))).await.unwrap();
    assert_eq!(response.context.issued_at, T0 - 86_400);
    // Without auth_time, iat is the best there is.
    let mut plain = access_claims();
    plain.as_object_mut().unwrap().remove("auth_time");
    let response = h.decide(Some(&bearer(&sign(&plain)))).await.unwrap();
    assert_eq!(response.context.issued_at, T0 - 60);
}

/// The fixture maps the Cognito group `operators` to `admin:ops`: sessions of
/// its members hold it, other sessions and every PAT never do.
#[tokio::test]
async fn cognito_groups_grant_session_only_scopes_from_the_manifest() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let delete_user = format!("{STAGE_PREFIX}DELETE/users/*");
    let member = with(
        access_claims(),
        "cognito:groups",
        json!(["staff", "operators"]),
    );
    let response = h.decide(Some(&bearer(&sign(&member)))).await.unwrap();
    assert!(
        response.context.scopes.ends_with(" admin:ops"),
        "{}",
        response.context.scopes
    );
    assert!(allowed_resources(&response).contains(&delete_user));

    let other = with(access_claims(), "cognito:groups", json!(["staff"]));
    let response = h.decide(Some(&bearer(&sign(&other)))).await.unwrap();
    assert!(!response.context.scopes.contains("admin:ops"));
    assert!(!allowed_resources(&response).contains(&delete_user));

    // A PAT whose record names admin:ops (say, written before the scope
    // became group-only) never holds it.
    let pat = issue_pat(
        &h.store,
        "user-groups",
        shared::testing::scopes("admin:ops docs:read"),
        T0 + 600,
    )
    .await;
    let response = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(response.context.scopes, "docs:read");
    assert!(!allowed_resources(&response).contains(&delete_user));

    // A groups claim of the wrong type is a malformed token, not "no groups".
    let bad = with(access_claims(), "cognito:groups", json!("operators"));
    assert_unauthorized(
        h.decide(Some(&bearer(&sign(&bad)))).await,
        "groups as a string",
    );
}
