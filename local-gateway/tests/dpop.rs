//! Sender-constrained PATs (DPoP, RFC 9449; issue #18) end to end through
//! the local gateway as the construct's `dpop` deploys it: the authorizer
//! cache off (TTL 0), the shipped in-process caches on, a real Cognito login
//! and token service on moto, proofs over HTTP to the gateway's own URL.
//!
//! The attack corpus of issue #18 item 6 runs here: every case is a 401
//! with the same problem body (up to the request id) and the DPoP challenge.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "test helpers")]

use std::sync::Arc;

use local_gateway::{GatewayConfig, app, build, cognito};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::dpop::{ProofAlgorithm, ProofKey, access_token_hash};

mod support;

use support::{PASSWORD, empty_lambda, fixture, issue};

struct Running {
    base: String,
    http: reqwest::Client,
    jwt: String,
    gateway: Arc<
        local_gateway::Gateway<
            authorizer::jwks::HttpJwks,
            shared::store::TokenStore,
            shared::SystemClock,
        >,
    >,
}

/// The gateway with `dpop` on, listening before it is built so that the
/// authorizer knows the URL clients sign proofs for.
async fn start(name: &str, dpop: bool) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gateway = GatewayConfig {
        dpop,
        cache_ttl_secs: if dpop { 0 } else { 60 },
        dpop_origins: vec![base.clone()],
        ..GatewayConfig::default()
    };
    let setup = fixture(name, &["dana"], &empty_lambda().await, gateway).await;
    let jwt = cognito::login(&setup.pool, "dana", PASSWORD).await.unwrap();
    let gateway = build(&setup, Arc::new(shared::SystemClock)).unwrap();
    tokio::spawn(local_gateway::serve(
        listener,
        app(gateway.clone()),
        std::future::pending(),
    ));
    Running {
        base,
        http: reqwest::Client::new(),
        jwt,
        gateway,
    }
}

fn now() -> i64 {
    shared::Clock::now(&shared::SystemClock)
}

async fn get(
    r: &Running,
    url: &str,
    authorization: &str,
    proofs: &[&str],
) -> (StatusCode, Value, String) {
    let mut request = r.http.get(url).header("Authorization", authorization);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status();
    let challenge = reply
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = reply.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

async fn bound(r: &Running, key: &ProofKey) -> (String, String) {
    let body = json!({"name": "ci", "scopes": ["docs:read", "tokens:read"], "expiresInDays": 7,
        "dpopJwk": key.public_jwk().to_value()});
    let issued = issue(&r.http, &r.base, &r.jwt, body).await;
    assert_eq!(
        issued["dpopJkt"],
        json!(key.public_jwk().thumbprint().as_str())
    );
    (
        issued["token"].as_str().unwrap().to_owned(),
        issued["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_bound_token_works_with_fresh_proofs_and_the_attack_corpus_gets_identical_401s() {
    let r = start("dpop-corpus", true).await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let thief = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let (token, id) = bound(&r, &key).await;
    let url = format!("{}/docs/readme", r.base);
    let auth = format!("DPoP {token}");
    let fresh = || key.proof("GET", &url, &token, now()).unwrap();

    // Genuine use: every request with its own proof, cold then warm.
    let calls = r.gateway.authorizer_calls();
    for _ in 0..3 {
        assert_eq!(get(&r, &url, &auth, &[&fresh()]).await.0, StatusCode::OK);
    }
    // No gateway cache: every request reaches the authorizer.
    assert_eq!(r.gateway.authorizer_calls() - calls, 3);
    // A bound token manages itself with proofs too (GET /tokens/{id}).
    let own = format!("{}/tokens/{id}", r.base);
    let own_proof = key.proof("GET", &own, &token, now()).unwrap();
    assert_eq!(get(&r, &own, &auth, &[&own_proof]).await.0, StatusCode::OK);

    let header = || json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk().to_value()});
    let claims = || {
        json!({"jti": format!("jti-{}", uuid::Uuid::new_v4()), "htm": "GET", "htu": url,
            "iat": now(), "ath": access_token_hash(&token)})
    };
    let with = |mut v: Value, k: &str, x: Value| {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x;
        }
        v
    };
    let signed = |h: Value, c: Value| key.sign_parts(&h, &c).unwrap();
    let replayed = fresh();
    assert_eq!(get(&r, &url, &auth, &[&replayed]).await.0, StatusCode::OK);
    let mut private = key.public_jwk().to_value();
    private["d"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let unsigned = |h: Value| {
        let jws = signed(h, claims());
        format!("{}.", jws.rsplit_once('.').unwrap().0)
    };
    let bearer = format!("Bearer {token}");
    let corpus: Vec<(&str, String, Vec<String>)> = vec![
        ("replayed jti", auth.clone(), vec![replayed.clone()]),
        (
            "another method",
            auth.clone(),
            vec![signed(header(), with(claims(), "htm", json!("POST")))],
        ),
        (
            "another URL",
            auth.clone(),
            vec![signed(
                header(),
                with(claims(), "htu", json!(format!("{}/docs/other", r.base))),
            )],
        ),
        (
            "stale iat",
            auth.clone(),
            vec![signed(header(), with(claims(), "iat", json!(now() - 120)))],
        ),
        (
            "future iat",
            auth.clone(),
            vec![signed(header(), with(claims(), "iat", json!(now() + 120)))],
        ),
        (
            "wrong ath",
            auth.clone(),
            vec![signed(
                header(),
                with(claims(), "ath", json!(access_token_hash("other"))),
            )],
        ),
        (
            "another key",
            auth.clone(),
            vec![thief.proof("GET", &url, &token, now()).unwrap()],
        ),
        (
            "private jwk",
            auth.clone(),
            vec![signed(with(header(), "jwk", private), claims())],
        ),
        (
            "alg none",
            auth.clone(),
            vec![unsigned(with(header(), "alg", json!("none")))],
        ),
        (
            "alg HS256",
            auth.clone(),
            vec![signed(with(header(), "alg", json!("HS256")), claims())],
        ),
        (
            "missing typ",
            auth.clone(),
            vec![signed(with(header(), "typ", json!(null)), claims())],
        ),
        ("two DPoP headers", auth.clone(), vec![fresh(), fresh()]),
        ("bound token as Bearer", bearer.clone(), vec![]),
        (
            "bound token as Bearer with a proof",
            bearer.clone(),
            vec![fresh()],
        ),
        ("no proof", auth.clone(), vec![]),
        (
            "oversize proof",
            auth.clone(),
            vec![signed(
                header(),
                with(claims(), "pad", json!("p".repeat(5000))),
            )],
        ),
    ];
    let mut bodies = Vec::new();
    for (case, authorization, proofs) in &corpus {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, mut body, challenge) = get(&r, &url, authorization, &proofs).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(challenge, r#"Bearer, DPoP algs="ES256 EdDSA""#, "{case}");
        body.as_object_mut().unwrap().remove("requestId");
        body.as_object_mut().unwrap().remove("instance");
        bodies.push(body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one refusal for every case: {bodies:?}"
    );
    // Nothing in the corpus spent or locked anything.
    assert_eq!(get(&r, &url, &auth, &[&fresh()]).await.0, StatusCode::OK);

    // An unbound token: Bearer as before (a stray proof is ignored); the
    // DPoP scheme, which claims a binding it does not have, is refused.
    let open = issue(
        &r.http,
        &r.base,
        &r.jwt,
        json!({"name": "laptop", "scopes": ["docs:read"], "expiresInDays": 7}),
    )
    .await;
    let open = open["token"].as_str().unwrap();
    let stray = key.proof("GET", &url, open, now()).unwrap();
    assert_eq!(
        get(&r, &url, &format!("Bearer {open}"), &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&r, &url, &format!("Bearer {open}"), &[&stray]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(&r, &url, &format!("DPoP {open}"), &[&stray]).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Cognito sessions keep working on this deployment (no gateway cache).
    assert_eq!(
        get(&r, &url, &format!("Bearer {}", r.jwt), &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn where_dpop_is_off_no_token_can_be_bound_and_the_gateway_refuses_to_cache_with_it() {
    let r = start("dpop-off", false).await;
    let key = ProofKey::generate(ProofAlgorithm::Es256).unwrap();
    let reply = r
        .http
        .post(format!("{}/tokens", r.base))
        .bearer_auth(&r.jwt)
        .json(
            &json!({"name": "ci", "scopes": ["docs:read"], "expiresInDays": 7,
            "dpopJwk": key.public_jwk().to_value()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    // The invariant the construct keeps: DPoP only with the cache off.
    let mut setup = fixture(
        "dpop-cache",
        &[],
        &empty_lambda().await,
        GatewayConfig {
            dpop: true,
            ..GatewayConfig::default()
        },
    )
    .await;
    let refused = build(&setup, Arc::new(shared::SystemClock)).err().unwrap();
    assert!(refused.to_string().contains("TTL 0"), "{refused}");
    setup.gateway.cache_ttl_secs = 0;
    assert!(build(&setup, Arc::new(shared::SystemClock)).is_ok());
}
