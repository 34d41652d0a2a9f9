//! The answer the Lambda serialises (issue #17): rendered once per verified
//! credential and shared, yet never stale, never another stage's, and the
//! same JSON as the response type.

use std::collections::BTreeMap;

use authorizer::event::AuthorizerEvent;
use authorizer::tiers::RateTiers;
use serde_json::Value;
use shared::store::TokenEdit;

use crate::support::*;

fn lean(authorization: &str) -> AuthorizerEvent {
    serde_json::from_value(event_json(Some(authorization)).unwrap()).unwrap()
}

fn lean_on_stage(authorization: &str, stage: &str) -> AuthorizerEvent {
    let mut event = event_json(Some(authorization)).unwrap();
    event["methodArn"] = Value::String(METHOD_ARN.replace("/test/", &format!("/{stage}/")));
    serde_json::from_value(event).unwrap()
}

/// A fresh instance, and the two credentials every test here tries: a
/// session's JWT and a PAT of the default scopes.
async fn harness_and_credentials() -> (Harness, JwksServer, [String; 2]) {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let pat = issue_pat(
        &h.store,
        "user-1",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let credentials = [sign(&access_claims()), pat.expose().to_owned()];
    (h, jwks, credentials)
}

#[tokio::test]
async fn the_serialised_decision_is_the_response_types_json() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.rate_tiers = RateTiers::new(
        BTreeMap::from([(
            "standard".to_owned(),
            vec!["standard-key-000000000".to_owned()],
        )]),
        "standard",
    );
    let h = builder.build().await;
    let plain = HarnessBuilder::sharing(&jwks.url, &h).build().await;
    let pat = issue_pat(
        &h.store,
        "user-1",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    // Read-only scopes reach some routes; the manifest's narrowest session
    // still gets `/me`.
    let mut read_only = access_claims();
    read_only["scope"] = Value::String("docs:read".into());
    for harness in [&h, &plain] {
        for credential in [
            sign(&access_claims()),
            sign(&read_only),
            pat.expose().to_owned(),
        ] {
            // Twice: rendered, then from the shared renderings.
            for _ in 0..2 {
                let decision = harness
                    .authorizer
                    .decision(&lean(&bearer(&credential)))
                    .await
                    .unwrap();
                let ours: Value =
                    serde_json::from_slice(&serde_json::to_vec(&decision).unwrap()).unwrap();
                let theirs = serde_json::to_value(decision.to_response()).unwrap();
                assert_eq!(ours, theirs);
                assert!(ours["principalId"].is_string());
                assert!(ours["policyDocument"]["Statement"].is_array());
            }
        }
    }
}

#[tokio::test]
async fn a_seen_credential_shares_its_rendering_and_its_stages_policy() {
    let (h, _jwks, credentials) = harness_and_credentials().await;
    for credential in credentials {
        let first = h
            .authorizer
            .decision(&lean(&bearer(&credential)))
            .await
            .unwrap();
        let again = h
            .authorizer
            .decision(&lean(&bearer(&credential)))
            .await
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(first.grant(), again.grant()));
        assert!(std::ptr::eq(first.policy(), again.policy()));
        // The same principal on another stage: the shared grant, the other
        // stage's policy, whichever stage came first.
        let prod = h
            .authorizer
            .decision(&lean_on_stage(&bearer(&credential), "prod"))
            .await
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(first.grant(), prod.grant()));
        let resources = |d: &authorizer::decision::Decision| -> Vec<String> {
            d.policy()
                .document()
                .statement
                .iter()
                .flat_map(|s| s.resource.clone())
                .collect()
        };
        assert!(!resources(&prod).is_empty());
        for r in resources(&prod) {
            assert!(r.contains("/prod/"), "{r}");
        }
        for r in resources(&again) {
            assert!(r.starts_with(STAGE_PREFIX), "{r}");
        }
        let back = h
            .authorizer
            .decision(&lean(&bearer(&credential)))
            .await
            .unwrap();
        assert_eq!(resources(&back), resources(&first));
    }
}

#[tokio::test]
async fn a_pat_narrowed_after_its_first_decision_answers_narrowed_once_reread() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let all = shared::testing::default_scopes();
    let pat = issue_pat(&h.store, "user-1", all, T0 + 600).await;
    let before = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(allowed_resources(&before), expected_resources(all));
    assert_eq!(before.context.expires_at, T0 + 600);

    let seen = h.store.get(pat.id()).await.unwrap().unwrap().meta;
    let narrower = shared::testing::scopes("docs:read");
    let edit = TokenEdit {
        name: None,
        description: None,
        scopes: Some(shared::testing::names("docs:read")),
        expires_at: Some(T0 + 400),
    };
    h.store.edit(&seen, &edit, T0 + 1).await.unwrap();
    // Within the positive TTL the instance answers as it verified; past it,
    // it re-reads the record and renders the answer anew.
    h.clock.set(T0 + pat_config().positive_ttl_secs);
    let after = h.decide(Some(&bearer(pat.expose()))).await.unwrap();
    assert_eq!(allowed_resources(&after), expected_resources(narrower));
    assert_eq!(after.context.expires_at, T0 + 400);
    assert_eq!(after.context.scopes, "docs:read");
}

#[tokio::test]
async fn the_lean_event_refuses_an_authorization_header_sent_under_two_spellings() {
    let jwks = JwksServer::start(JWKS).await;
    let h = HarnessBuilder::new(&jwks.url).build().await;
    let token = bearer(&sign(&access_claims()));
    let mut event = event_json(Some(&token)).unwrap();
    assert!(h.decide_json(event.clone()).await.is_ok());
    event["headers"]["authorization"] = Value::String(token.clone());
    assert_unauthorized(h.decide_json(event).await, "two spellings");
    // One spelling, any case, is one header.
    let mut event = event_json(None).unwrap();
    event["headers"]["AUTHORIZATION"] = Value::String(token);
    assert!(h.decide_json(event).await.is_ok());
    // No headers at all, or null: no credential.
    for headers in [Value::Null, Value::Object(serde_json::Map::new())] {
        let mut event = event_json(None).unwrap();
        event["headers"] = headers;
        assert_unauthorized(h.decide_json(event).await, "no headers");
    }
}

#[test]
fn the_lean_event_reads_what_the_full_event_type_reads() {
    use authorizer::event::AuthorizerRequest;
    use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest as Full;
    let mut events = vec![
        event_json(Some("Bearer abc.def.ghi")).unwrap(),
        event_json(None).unwrap(),
    ];
    let mut bare = event_json(Some("Bearer x")).unwrap();
    bare.as_object_mut().unwrap().remove("methodArn");
    bare["requestContext"] = serde_json::json!({});
    events.push(bare);
    // Without a request context neither type is an event at all.
    let mut no_context = event_json(Some("Bearer x")).unwrap();
    no_context.as_object_mut().unwrap().remove("requestContext");
    assert!(serde_json::from_value::<Full>(no_context.clone()).is_err());
    assert!(serde_json::from_value::<AuthorizerEvent>(no_context).is_err());
    let mut odd = event_json(Some("bearer  spaced\tvalue")).unwrap();
    odd["headers"]["USER-AGENT"] = Value::String("agent/1 (x)".into());
    odd["requestContext"]["identity"]["sourceIp"] = Value::String("2001:db8::1".into());
    events.push(odd);
    for event in events {
        let full: Full = serde_json::from_value(event.clone()).unwrap();
        let lean: AuthorizerEvent = serde_json::from_value(event).unwrap();
        assert_eq!(full.method_arn(), lean.method_arn());
        assert_eq!(full.authorization(), lean.authorization());
        assert_eq!(full.user_agent(), lean.user_agent());
        assert_eq!(full.source_ip(), lean.source_ip());
        assert_eq!(full.request_id(), lean.request_id());
    }
}

/// JSON can carry what no HTTP header can (control bytes, non-ASCII); the
/// lean event hands it over as is, and the credential check refuses it.
#[tokio::test]
async fn credentials_no_header_could_carry_are_refused_by_the_lean_event() {
    let (h, _jwks, credentials) = harness_and_credentials().await;
    for credential in credentials {
        assert!(h.decide(Some(&bearer(&credential))).await.is_ok());
        for tail in ["\u{0}", "\u{a0}", "\r\n", "\u{7f}", "é"] {
            let mut event = event_json(Some("Bearer placeholder")).unwrap();
            event["headers"]["Authorization"] = Value::String(format!("Bearer {credential}{tail}"));
            assert_unauthorized(h.decide_json(event).await, &format!("{tail:?}"));
            let mut event = event_json(None).unwrap();
            event["headers"]["Authorization"] = Value::String(format!("Bearer {tail}{credential}"));
            assert_unauthorized(h.decide_json(event).await, &format!("{tail:?} first"));
        }
    }
}
