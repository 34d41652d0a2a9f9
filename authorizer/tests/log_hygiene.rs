//! Log hygiene: decisions are logged, secrets never are.
//!
//! A binary of its own: the capturing subscriber is the process-wide default,
//! so no other test's threads can race tracing's callsite cache.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers"
)]

#[path = "authorizer/support.rs"]
#[expect(dead_code, reason = "shared harness; this binary uses part of it")]
mod support;

use support::*;

#[tokio::test]
async fn logs_record_decisions_but_never_a_secret_a_jwt_or_a_hash() {
    // The production subscriber, at the most verbose level an operator could set.
    let captured = shared::testing::LogCapture::global();

    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let jwt = sign(&access_claims());
    let pat = issue_pat(
        &h.store,
        "user-logs",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let stored_hash = h
        .store
        .get(pat.id())
        .await
        .unwrap()
        .unwrap()
        .hash
        .expose()
        .to_owned();
    h.decide(Some(&bearer(&jwt))).await.unwrap();
    h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    let mut wrong = pat.expose().to_owned();
    wrong.pop();
    let _ = h.decide(Some(&bearer(&wrong))).await;
    let _ = h.decide(Some(&bearer("not-a-jwt"))).await;
    h.authorizer.pat().settle().await;

    let logs = captured.text();
    assert!(logs.contains("\"decision\":\"allow\""), "{logs}");
    assert!(logs.contains("\"decision\":\"unauthorized\""), "{logs}");
    assert!(
        logs.contains(pat.id().as_str()),
        "token ids are logged for audit"
    );
    assert!(
        logs.contains("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
        "request id is logged"
    );
    let secret = std::str::from_utf8(pat.secret().expose_bytes()).unwrap();
    let jwt_signature = jwt.rsplit('.').next().unwrap();
    for (what, needle) in [
        ("PAT", pat.expose()),
        ("PAT secret", secret),
        ("wrong PAT", wrong.as_str()),
        ("JWT", jwt.as_str()),
        ("JWT signature", jwt_signature),
        ("hash", stored_hash.as_str()),
        ("hash marker", "$argon2"),
    ] {
        assert!(!logs.contains(needle), "{what} leaked into logs");
    }
}

#[tokio::test]
async fn a_refused_pats_decision_line_names_its_token_id_and_source_ip() {
    let captured = shared::testing::LogCapture::global();
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let pat = issue_pat(
        &h.store,
        "user-refused",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let forged = shared::testing::token_with_secret_of(pat.id(), &shared::Pat::generate().unwrap());
    assert!(h.decide_from(&bearer(&forged), "192.0.2.77").await.is_err());

    let logs = captured.text();
    let line = logs
        .lines()
        .find(|l| l.contains("\"decision\":\"unauthorized\"") && l.contains("192.0.2.77"))
        .unwrap_or_else(|| panic!("no refusal line with the source address: {logs}"));
    assert!(
        line.contains(&format!("\"token_id\":\"{}\"", pat.id())),
        "{line}"
    );
    assert!(line.contains("\"source_ip\":\"192.0.2.77\""), "{line}");
    assert!(line.contains("WrongSecret"), "{line}");
    let secret = std::str::from_utf8(pat.secret().expose_bytes()).unwrap();
    assert!(!line.contains(secret) && !line.contains(&forged));
    let forged_secret = &forged[shared::pat::PAT_PREFIX.len() + 17..];
    assert!(
        !logs.contains(forged_secret),
        "a presented secret reached the logs"
    );
}
