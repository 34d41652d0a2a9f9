//! The secret-scanning partner route: GitHub-style signed reports, checked
//! against keys served by a local endpoint, revoke genuine tokens through the
//! leak-report path and are answered with per-finding labels.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use token_service::scanning::{KEYS_MAX_AGE_SECS, PartnerKeys, REFRESH_INTERVAL_SECS};
use token_service::{AppState, router};

use crate::support::*;

const ROUTE: &str = "/tokens/secret-scanning";
const TYPE: &str = "agpat_personal_access_token";

/// A partner signing key and the id it is published under.
struct Signer {
    id: String,
    pair: EcdsaKeyPair,
}

impl Signer {
    /// A key named after `label`: its id has the partner's form (64 hex
    /// digits, as GitHub's SHA-256 ids), derived from the label.
    fn new(label: &str) -> Self {
        let id = if label.len() == 64 && label.bytes().all(|b| b.is_ascii_hexdigit()) {
            label.to_owned()
        } else {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, label.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        Self {
            id,
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap(),
        }
    }

    /// The key as GitHub publishes it.
    fn published(&self) -> Value {
        let der = self.pair.public_key().as_der().unwrap();
        json!({
            "key_identifier": self.id,
            "key": format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
                STANDARD.encode(der.as_ref())
            ),
            "is_current": true,
        })
    }

    /// The base64 DER signature of `body`.
    fn sign(&self, body: &str) -> String {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), body.as_bytes())
            .unwrap();
        STANDARD.encode(sig.as_ref())
    }

    /// A report of `body`, signed by this key.
    fn report(&self, body: &str) -> Req<'static> {
        report(body)
            .header("Github-Public-Key-Identifier", &self.id)
            .header("Github-Public-Key-Signature", &self.sign(body))
    }
}

/// An unsigned report of `body`.
fn report(body: &str) -> Req<'static> {
    Req::new("POST", ROUTE, None).raw(body, Some("application/json"))
}

/// The body of a report of `tokens`, as GitHub sends it.
fn findings(tokens: &[&str]) -> String {
    let list: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "token": t, "type": TYPE,
                "url": "https://github.com/octo/repo/blob/abc/deploy.yml#L3",
                "source": "content"
            })
        })
        .collect();
    Value::Array(list).to_string()
}

fn labels(reply: &Reply) -> Vec<(String, String)> {
    assert!(reply.json.is_array(), "not an array: {}", reply.text);
    reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["token_type"], TYPE);
            (
                l["token_raw"].as_str().unwrap().to_owned(),
                l["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The partner's key endpoint on 127.0.0.1, serving whatever keys a test
/// publishes and counting its fetches.
struct KeyEndpoint {
    url: String,
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl KeyEndpoint {
    async fn start(signers: &[&Signer]) -> Self {
        let document = Arc::new(Mutex::new(Value::Null));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (doc, count, down) = (document.clone(), fetches.clone(), failing.clone());
        let app = axum::Router::new().route(
            "/meta/public_keys/secret_scanning",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let (doc, count, down) = (doc.clone(), count.clone(), down.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    if down.load(Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    // As GitHub's API does: no User-Agent, no answer.
                    if !headers.contains_key(axum::http::header::USER_AGENT) {
                        return axum::http::StatusCode::FORBIDDEN.into_response();
                    }
                    axum::Json(doc.lock().unwrap().clone()).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let endpoint = Self {
            url: format!("http://{addr}/meta/public_keys/secret_scanning"),
            document,
            fetches,
            failing,
        };
        endpoint.publish(signers);
        endpoint
    }

    fn publish(&self, signers: &[&Signer]) {
        *self.document.lock().unwrap() =
            json!({"public_keys": signers.iter().map(|s| s.published()).collect::<Vec<_>>()});
    }

    /// From now on the endpoint answers 503.
    fn fail(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A harness whose token service takes reports signed with the keys
/// `endpoint` publishes (and publishes owner events to `bus`, if given).
async fn with_partner_keys(endpoint: &KeyEndpoint, bus: Option<shared::bus::EventBus>) -> Harness {
    with_partner_keys_and_state(endpoint, bus).await.0
}

/// As [`with_partner_keys`], also handing back the service's state.
async fn with_partner_keys_and_state(
    endpoint: &KeyEndpoint,
    bus: Option<shared::bus::EventBus>,
) -> (Harness, AppState) {
    let mut h = match &bus {
        Some(bus) => Harness::with_event_bus(10, bus.clone()).await,
        None => Harness::new(10).await,
    };
    let state = h
        .state()
        .with_partner_keys(PartnerKeys::new(endpoint.url.clone()).unwrap())
        .unwrap();
    let state = match bus {
        Some(bus) => state.with_event_bus(bus).unwrap(),
        None => state,
    };
    h.app = router(state.clone());
    (h, state)
}

async fn history(h: &Harness, id: &str) -> Value {
    h.call(Req::new(
        "GET",
        &format!("/tokens/{id}/events"),
        Some(&session(USER_A, ALL)),
    ))
    .await
    .json
}

#[tokio::test]
async fn a_signed_report_revokes_a_live_token_and_tells_its_owner() {
    let sdk = shared::testing::bus::sdk().await;
    let bus = shared::testing::bus::BusWithQueue::create(&sdk).await;
    let github = Signer::new("90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, Some(bus.bus.clone())).await;
    let (token, id) = issue(&h, USER_A, &["docs:read"], 30).await;
    let (bystander, _) = issue(&h, USER_A, &["docs:read"], 30).await;

    let reply = h.call(github.report(&findings(&[&token]))).await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(
        labels(&reply),
        [(token.clone(), "true_positive".to_owned())]
    );
    assert!(h.authorize(&token).await.is_none(), "the token still works");
    assert!(h.authorize(&bystander).await.is_some());
    let events = history(&h, &id).await;
    assert_eq!(events["items"][0]["type"], "revoked");
    assert_eq!(events["items"][0]["by"], "leak_report");
    assert_eq!(
        bus.drain().await,
        [("agpat.token.leak_reported".to_owned(), id, None)]
    );
    assert_eq!(keys.fetches(), 1);
}

#[tokio::test]
async fn unknown_and_junk_tokens_are_false_positives_and_revoke_nothing() {
    let github = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, None).await;
    let (token, _) = issue(&h, USER_A, &["docs:read"], 30).await;
    let unknown = shared::Pat::generate().unwrap();
    // The last character changed (never to itself: 1 token in 62 ends in x).
    let last = if token.ends_with('x') { 'y' } else { 'x' };
    let junk = format!("{}{last}", &token[..token.len() - 1]);
    let long = format!("agpat_{}", "a".repeat(600));

    let reply = h
        .call(github.report(&findings(&[unknown.expose(), "agpat_nope", &junk, &long])))
        .await;

    assert_eq!(reply.status, 200, "{}", reply.text);
    let got: Vec<String> = labels(&reply).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, ["false_positive"; 4]);
    assert!(h.authorize(&token).await.is_some());
    // A signed body of another shape is a 400, not a partial action.
    for body in [
        "{}",
        "[{\"token\": 5, \"type\": \"x\"}]",
        "[{\"type\": \"x\"}]",
        "not json",
    ] {
        h.call(github.report(body))
            .await
            .assert_problem(400, "validation-failed");
    }
    // An empty report is answered with no labels.
    let empty = h.call(github.report("[]")).await;
    assert_eq!((empty.status, empty.text.as_str()), (200, "[]"));
}

#[tokio::test]
async fn a_tampered_or_forged_report_is_refused_and_revokes_nothing() {
    let github = Signer::new("k1");
    let forger = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, None).await;
    let (token, _) = issue(&h, USER_A, &["docs:read"], 30).await;
    let body = findings(&[&token]);

    // Signed, then changed by one byte.
    let tampered = report(&format!("{body} "))
        .header("Github-Public-Key-Identifier", "k1")
        .header("Github-Public-Key-Signature", &github.sign(&body));
    h.call(tampered)
        .await
        .assert_problem(401, "invalid-signature");
    // Signed by another key under the published id.
    h.call(forger.report(&body))
        .await
        .assert_problem(401, "invalid-signature");
    assert!(h.authorize(&token).await.is_some());
}

#[tokio::test]
async fn missing_or_malformed_signature_headers_are_refused_without_a_key_fetch() {
    let github = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, None).await;
    let (token, _) = issue(&h, USER_A, &["docs:read"], 30).await;
    let body = findings(&[&token]);
    let signature = github.sign(&body);

    for req in [
        report(&body),
        report(&body).header("Github-Public-Key-Identifier", &github.id),
        report(&body).header("Github-Public-Key-Signature", &signature),
        report(&body)
            .header("Github-Public-Key-Identifier", &github.id)
            .header("Github-Public-Key-Signature", "!!not base64!!"),
        report(&body)
            .header("Github-Public-Key-Identifier", "")
            .header("Github-Public-Key-Signature", &signature),
    ] {
        h.call(req).await.assert_problem(401, "invalid-signature");
    }
    assert_eq!(keys.fetches(), 0);
    assert!(h.authorize(&token).await.is_some());
    // Header names are case-insensitive.
    let reply = h
        .call(
            report(&body)
                .header("GITHUB-PUBLIC-KEY-IDENTIFIER", &github.id)
                .header("github-public-key-signature", &signature),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_keys_once_then_is_refused() {
    let github = Signer::new("k1");
    let stranger = Signer::new("k2");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, None).await;
    let body = findings(&["agpat_nope"]);

    h.call(stranger.report(&body))
        .await
        .assert_problem(401, "invalid-signature");
    assert_eq!(keys.fetches(), 1);
    for _ in 0..3 {
        h.call(stranger.report(&body))
            .await
            .assert_problem(401, "invalid-signature");
    }
    assert_eq!(keys.fetches(), 1, "unknown ids must not refetch every time");
    // The keys fetched meanwhile serve the known id.
    let reply = h.call(github.report(&body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(keys.fetches(), 1);
}

#[tokio::test]
async fn a_replayed_report_gets_the_same_labels_and_alerts_no_one_again() {
    let sdk = shared::testing::bus::sdk().await;
    let bus = shared::testing::bus::BusWithQueue::create(&sdk).await;
    let github = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, Some(bus.bus.clone())).await;
    let (token, id) = issue(&h, USER_A, &["docs:read"], 30).await;
    let unknown = shared::Pat::generate().unwrap();
    // The same token twice in one batch, too.
    let body = findings(&[&token, unknown.expose(), &token]);
    let signed = github.report(&body);
    let (key_id, signature) = (signed.headers[0].1.clone(), signed.headers[1].1.clone());

    let first = h.call(signed).await;
    h.clock.set(T0 + 60);
    let replay = h
        .call(
            report(&body)
                .header("Github-Public-Key-Identifier", &key_id)
                .header("Github-Public-Key-Signature", &signature),
        )
        .await;

    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!((replay.status, &replay.text), (first.status, &first.text));
    let got: Vec<String> = labels(&first).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, ["true_positive", "false_positive", "true_positive"]);
    assert_eq!(
        bus.drain().await,
        [("agpat.token.leak_reported".to_owned(), id.clone(), None)],
        "one notice, however often the token is reported"
    );
    let events = history(&h, &id).await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2, "{events}");
}

#[tokio::test]
async fn an_oversized_report_is_refused_before_its_signature_is_checked() {
    let github = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, None).await;
    let (token, _) = issue(&h, USER_A, &["docs:read"], 30).await;
    let filler = "x".repeat(64 * 1024);
    let huge = format!("[{{\"token\": \"{token}\", \"type\": \"{TYPE}\", \"url\": \"{filler}\"}}]");

    h.call(github.report(&huge))
        .await
        .assert_problem(413, "payload-too-large");
    assert_eq!(keys.fetches(), 0);
    // Small, but more findings than a report may carry.
    let many: Vec<&str> = std::iter::repeat_n("agpat_nope", 101).collect();
    h.call(github.report(&findings(&many)))
        .await
        .assert_problem(413, "payload-too-large");
    assert!(h.authorize(&token).await.is_some());
    // Exactly at the limits is fine.
    let most: Vec<&str> = std::iter::repeat_n("agpat_nope", 100).collect();
    let reply = h.call(github.report(&findings(&most))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_refetches_are_rate_limited() {
    let old = Signer::new("old");
    let new = Signer::new("new");
    let keys = KeyEndpoint::start(&[&old]).await;
    let h = with_partner_keys(&keys, None).await;
    let body = findings(&["agpat_nope"]);
    assert_eq!(h.call(old.report(&body)).await.status, 200);
    assert_eq!(keys.fetches(), 1);

    // Signed with a key the endpoint does not publish yet: one refetch, refused.
    let interval = REFRESH_INTERVAL_SECS;
    h.clock.set(T0 + interval + 10);
    h.call(new.report(&body))
        .await
        .assert_problem(401, "invalid-signature");
    assert_eq!(keys.fetches(), 2);
    // Published now, but within the refresh interval: still refused, no fetch.
    keys.publish(&[&old, &new]);
    h.clock.set(T0 + interval + 15);
    h.call(new.report(&body))
        .await
        .assert_problem(401, "invalid-signature");
    assert_eq!(keys.fetches(), 2);
    // Once the interval has passed, one fetch, and the new key verifies; the
    // old key, still published, keeps working.
    let fetched = T0 + 2 * interval + 10;
    h.clock.set(fetched);
    assert_eq!(h.call(new.report(&body)).await.status, 200);
    assert_eq!(h.call(old.report(&body)).await.status, 200);
    assert_eq!(keys.fetches(), 3);

    // The old key is withdrawn: within the hour it is still trusted; after
    // it, the keys are fetched again and it is refused.
    keys.publish(&[&new]);
    h.clock.set(fetched + 3599);
    assert_eq!(h.call(old.report(&body)).await.status, 200);
    assert_eq!(keys.fetches(), 3);
    h.clock.set(fetched + 3600);
    h.call(old.report(&body))
        .await
        .assert_problem(401, "invalid-signature");
    assert_eq!(h.call(new.report(&body)).await.status, 200);
    assert_eq!(keys.fetches(), 4);
}

#[tokio::test]
async fn without_a_keys_url_the_route_answers_as_if_absent() {
    let github = Signer::new("k1");
    let h = Harness::new(10).await;
    let (token, _) = issue(&h, USER_A, &["docs:read"], 30).await;

    h.call(github.report(&findings(&[&token])))
        .await
        .assert_problem(404, "not-found");
    assert!(h.authorize(&token).await.is_some());
}

/// Only ids of the partner's form are worth a fetch: junk ids from an
/// unsigned caller never reach the keys URL. Keys that cannot be renewed are
/// dropped after a day: the route then fails closed (500, the partner
/// retries) instead of trusting keys that may have been withdrawn.
#[tokio::test]
async fn junk_key_ids_never_cause_a_fetch_and_unrenewable_keys_expire() {
    let github = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let h = with_partner_keys(&keys, None).await;
    let body = findings(&["agpat_nope"]);
    assert_eq!(h.call(github.report(&body)).await.status, 200);
    assert_eq!(keys.fetches(), 1);
    for (i, junk) in ["x", "k2", &"g".repeat(64)].into_iter().enumerate() {
        h.clock.set(T0 + (i as i64 + 1) * 2 * REFRESH_INTERVAL_SECS);
        let signed = github.report(&body);
        let forged = report(&body)
            .header("Github-Public-Key-Identifier", junk)
            .header("Github-Public-Key-Signature", &signed.headers[1].1.clone());
        h.call(forged)
            .await
            .assert_problem(401, "invalid-signature");
    }
    assert_eq!(keys.fetches(), 1, "no junk id reached the keys URL");
    // The keys URL starts failing; a day after the last good fetch the keys
    // are dropped and reports are answered 500 (retry later).
    keys.fail();
    h.clock.set(T0 + KEYS_MAX_AGE_SECS - 1);
    assert_eq!(
        h.call(github.report(&body)).await.status,
        200,
        "stale keys still used"
    );
    h.clock.set(T0 + KEYS_MAX_AGE_SECS);
    assert_eq!(h.call(github.report(&body)).await.status, 500);
}

/// Made-up tokens (anyone can plant one where the partner will find it) cost
/// the partner route a read, not an argon2id run: no dummy hash there, its
/// caller is the partner. The public route keeps the dummy hash, so its
/// timing does not tell a caller whether an id exists.
#[tokio::test]
async fn made_up_tokens_cost_the_partner_route_no_argon2id_run() {
    let github = Signer::new("k1");
    let keys = KeyEndpoint::start(&[&github]).await;
    let (h, state) = with_partner_keys_and_state(&keys, None).await;
    let made_up: Vec<shared::Pat> = (0..3).map(|_| shared::Pat::generate().unwrap()).collect();
    let tokens: Vec<&str> = made_up.iter().map(|p| p.expose()).collect();
    let reply = h.call(github.report(&findings(&tokens))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let runs = || state.leak_verifications.load(Ordering::SeqCst);
    assert_eq!(runs(), 0);
    let public = h
        .call(Req::new("POST", "/tokens/revoke", None).json(json!({"token": tokens[0]})))
        .await;
    assert_eq!(public.status, 202);
    assert_eq!(
        runs(),
        1,
        "the public route verifies against the dummy hash"
    );
    // A real token of ours is verified on the partner route too.
    let (token, _) = issue(&h, USER_A, &["docs:read"], 30).await;
    assert_eq!(
        h.call(github.report(&findings(&[&token]))).await.status,
        200
    );
    assert_eq!(runs(), 2);
}
