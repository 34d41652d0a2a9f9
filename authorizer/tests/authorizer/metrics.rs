//! Decision metrics: one CloudWatch EMF record per decision, through the real
//! `decide` path (real RS256 JWTs, PATs on moto), captured from the writer
//! thread and checked against the EMF rules.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authorizer::config::AuthorizerConfig;
use authorizer::metrics::DecisionMetrics;
use serde_json::{Value, json};
use shared::Pat;
use shared::emf::Namespace;

use crate::support::*;

/// The lines the writer thread wrote, kept in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A harness whose authorizer emits to a capture, under `namespace`.
struct Metered {
    h: Harness,
    capture: Capture,
    seen: usize,
}

impl Metered {
    async fn new(builder: HarnessBuilder, namespace: Namespace) -> Self {
        let mut h = builder.build().await;
        let capture = Capture::default();
        h.authorizer = h
            .authorizer
            .with_metrics(DecisionMetrics::to_writer(namespace, 64, capture.clone()).unwrap());
        Self {
            h,
            capture,
            seen: 0,
        }
    }

    /// Decides, and returns the one EMF record that decision produced.
    async fn record(&mut self, authorization: Option<&str>) -> Value {
        self.decide(authorization).await.1
    }

    /// Decides; returns the decision and the one EMF record it produced.
    async fn decide(
        &mut self,
        authorization: Option<&str>,
    ) -> (
        Result<authorizer::AuthorizerResponse, authorizer::AuthError>,
        Value,
    ) {
        let result = self.h.decide(authorization).await;
        let metrics = self.h.authorizer.metrics().unwrap();
        assert!(metrics.sink().settle(Duration::from_secs(5)));
        let text = self.capture.text();
        let lines: Vec<&str> = text.lines().collect();
        let new = &lines[self.seen..];
        assert_eq!(new.len(), 1, "one record per decision: {new:?}");
        self.seen = lines.len();
        (result, assert_valid_emf(new[0]))
    }
}

/// The EMF rules a line must follow for CloudWatch to extract it; returns
/// the parsed document.
fn assert_valid_emf(line: &str) -> Value {
    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let root = doc.as_object().unwrap();
    let aws = root["_aws"].as_object().unwrap();
    let mut keys: Vec<&String> = aws.keys().collect();
    keys.sort();
    assert_eq!(keys, ["CloudWatchMetrics", "Timestamp"], "{line}");
    let ts = aws["Timestamp"].as_i64().unwrap();
    assert!(ts > 1_600_000_000_000, "Timestamp in ms: {ts}");
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert!(!directives.is_empty());
    for d in directives {
        let d = d.as_object().unwrap();
        let mut keys: Vec<&String> = d.keys().collect();
        keys.sort();
        assert_eq!(keys, ["Dimensions", "Metrics", "Namespace"], "{line}");
        let ns = d["Namespace"].as_str().unwrap();
        assert!(Namespace::parse(ns).is_ok(), "{ns}");
        for set in d["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30, "{line}");
            for key in set {
                let key = key.as_str().unwrap();
                assert!(root[key].is_string(), "dimension {key} missing: {line}");
            }
        }
        let metrics = d["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(
                ["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()),
                "{line}"
            );
            assert_eq!(m.as_object().unwrap().len(), 2, "{line}");
            assert!(root[name].is_number(), "metric {name} missing: {line}");
        }
    }
    doc
}

fn dims(record: &Value) -> (&str, &str) {
    (
        record["Method"].as_str().unwrap(),
        record["Outcome"].as_str().unwrap(),
    )
}

/// The counters of a record, in a fixed order: hits, misses, argon2, fetches.
fn counters(record: &Value) -> [u64; 4] {
    [
        "CacheHits",
        "CacheMisses",
        "Argon2Evaluations",
        "JwksFetches",
    ]
    .map(|k| record[k].as_u64().unwrap())
}

fn expired_claims() -> Value {
    let mut claims = access_claims();
    claims["iat"] = json!(T0 - 7200);
    claims["auth_time"] = json!(T0 - 7200);
    claims["exp"] = json!(T0 - 3600);
    claims
}

#[tokio::test]
async fn allowed_jwts_and_pats_are_recorded_with_their_method_and_caches() {
    let jwks = JwksServer::start(JWKS).await;
    let mut m = Metered::new(HarnessBuilder::new(&jwks.url), Namespace::default()).await;
    let jwt = sign(&access_claims());

    let first = m.record(Some(&bearer(&jwt))).await;
    assert_eq!(dims(&first), ("jwt", "allow"));
    assert_eq!(first["Decisions"], 1);
    assert!(first["DecisionLatency"].as_f64().unwrap() > 0.0);
    assert_eq!(
        counters(&first),
        [0, 1, 0, 1],
        "first JWT: a miss and a JWKS fetch"
    );
    let again = m.record(Some(&bearer(&jwt))).await;
    assert_eq!(dims(&again), ("jwt", "allow"));
    assert_eq!(
        counters(&again),
        [1, 0, 0, 0],
        "served from the seen-JWT cache"
    );

    let pat = issue_pat(
        &m.h.store,
        "user-metrics",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let cold = m.record(Some(&bearer(pat.expose()))).await;
    assert_eq!(dims(&cold), ("pat", "allow"));
    assert_eq!(counters(&cold), [0, 1, 1, 0], "first PAT: argon2 once");
    let cached = m.record(Some(&bearer(pat.expose()))).await;
    assert_eq!(dims(&cached), ("pat", "allow"));
    assert_eq!(counters(&cached), [1, 0, 0, 0], "cached PAT: no argon2");
    m.h.authorizer.pat().settle().await;
}

#[tokio::test]
async fn refusals_are_unauthorized_with_the_method_that_refused() {
    let jwks = JwksServer::start(JWKS).await;
    let mut m = Metered::new(HarnessBuilder::new(&jwks.url), Namespace::default()).await;
    let real = issue_pat(
        &m.h.store,
        "user-metrics",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let wrong_secret = shared::testing::token_with_secret_of(real.id(), &Pat::generate().unwrap());
    let cases: [(&str, Option<String>, (&str, &str)); 6] = [
        (
            "wrong secret",
            Some(bearer(&wrong_secret)),
            ("pat", "unauthorized"),
        ),
        (
            "unknown PAT",
            Some(bearer(Pat::generate().unwrap().expose())),
            ("pat", "unauthorized"),
        ),
        (
            "expired JWT",
            Some(bearer(&sign(&expired_claims()))),
            ("jwt", "unauthorized"),
        ),
        ("no header", None, ("none", "unauthorized")),
        (
            "other scheme",
            Some("Basic dXNlcjpwYXNz".to_owned()),
            ("none", "unauthorized"),
        ),
        (
            "opaque junk",
            Some(bearer("not-a-token")),
            ("none", "unauthorized"),
        ),
    ];
    for (case, authorization, expected) in cases {
        let record = m.record(authorization.as_deref()).await;
        assert_eq!(dims(&record), expected, "{case}");
        assert_eq!(record["Decisions"], 1, "{case}");
    }
}

#[tokio::test]
async fn a_corrupted_stored_hash_answers_401_but_is_recorded_as_an_error() {
    // The caller learns nothing new (the same 401), but a stored hash that
    // is malformed or beyond the parameters is an operational fault: it must
    // reach the fail-closed alarm, not hide among bad credentials.
    let jwks = JwksServer::start(JWKS).await;
    let mut m = Metered::new(HarnessBuilder::new(&jwks.url), Namespace::default()).await;
    let real = issue_pat(
        &m.h.store,
        "user-metrics-hash",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let stored = m.h.store.get(real.id()).await.unwrap().unwrap().hash;
    let planted = stored.expose().replacen("m=19456", "m=4194304", 1);
    shared::testing::overwrite_hash(&m.h.store, real.id(), &planted).await;
    let (result, record) = m.decide(Some(&bearer(real.expose()))).await;
    assert_eq!(result.unwrap_err(), authorizer::AuthError::Unauthorized);
    assert_eq!(dims(&record), ("pat", "error"));
}

#[tokio::test]
async fn a_policy_that_allows_nothing_is_recorded_as_deny() {
    let jwks = JwksServer::start(JWKS).await;
    let mut builder = HarnessBuilder::new(&jwks.url);
    // Sessions get scope `b`, which no route needs; the only route needs `a`.
    builder.manifest = Arc::new(
        shared::Manifest::parse(
            "version = 1\n[sessions]\ndefault_scopes = [\"b\"]\n\
             [[scope]]\nname = \"a\"\ndescription = \"\"\n\
             [[scope]]\nname = \"b\"\ndescription = \"\"\n\
             [[route]]\nmethod = \"GET\"\npath = \"/a\"\nscope = \"a\"\n",
            "deny-only",
        )
        .unwrap(),
    );
    let mut m = Metered::new(builder, Namespace::default()).await;
    let (response, record) = m.decide(Some(&bearer(&sign(&access_claims())))).await;
    assert!(
        !authorizer::policy::allows_anything(&response.unwrap().policy_document),
        "the fixture must produce a policy that allows nothing"
    );
    assert_eq!(dims(&record), ("jwt", "deny"));
}

#[tokio::test]
async fn fail_closed_decisions_are_errors() {
    // JWKS unreachable and nothing cached.
    let jwks = JwksServer::start(JWKS).await;
    let url = jwks.url.clone();
    jwks.stop().await;
    let mut builder = HarnessBuilder::new(&url);
    // DynamoDB unreachable (nothing listens on the discard port).
    let (client, counter) = shared::testing::client_with(
        "http://127.0.0.1:9",
        Some(authorizer::dynamodb_timeouts()),
        Some(authorizer::dynamodb_retries()),
    );
    builder.store = Some((
        shared::store::TokenStore::new(client, shared::testing::fresh_config(5)),
        counter,
    ));
    let mut m = Metered::new(builder, Namespace::default()).await;

    let record = m.record(Some(&bearer(&sign(&access_claims())))).await;
    assert_eq!(dims(&record), ("jwt", "error"));
    assert_eq!(record["JwksFetches"], 1, "the failed fetch is counted");
    let pat = Pat::generate().unwrap();
    let record = m.record(Some(&bearer(pat.expose()))).await;
    assert_eq!(dims(&record), ("pat", "error"));
}

#[tokio::test]
async fn the_namespace_comes_from_the_environment_and_a_bad_one_is_refused() {
    let base = [
        ("COGNITO_USER_POOL_ID", "us-east-1_TestPool"),
        ("COGNITO_CLIENT_IDS", CLIENT_ID),
        ("TABLE_NAME", "tokens"),
    ];
    let env = |namespace: Option<&str>| {
        let mut map: std::collections::HashMap<String, String> = base
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        if let Some(ns) = namespace {
            map.insert("AGPAT_METRICS_NAMESPACE".into(), ns.into());
        }
        AuthorizerConfig::from_env(&map)
    };
    assert_eq!(env(None).unwrap().metrics_namespace.as_str(), "agpat");
    for bad in ["", "agpat/dév", "AWS/agpat", "agpat\n"] {
        assert_eq!(
            env(Some(bad)).unwrap_err().var,
            "AGPAT_METRICS_NAMESPACE",
            "{bad:?}"
        );
    }

    let namespace = env(Some("agpat/dev")).unwrap().metrics_namespace;
    let jwks = JwksServer::start(JWKS).await;
    let mut m = Metered::new(HarnessBuilder::new(&jwks.url), namespace).await;
    let record = m.record(Some(&bearer(&sign(&access_claims())))).await;
    for d in record["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        assert_eq!(d["Namespace"], "agpat/dev");
    }
}

#[tokio::test]
async fn records_carry_no_credential_subject_token_id_or_address() {
    let jwks = JwksServer::start(JWKS).await;
    let mut m = Metered::new(HarnessBuilder::new(&jwks.url), Namespace::default()).await;
    let owner = "8c1d5a2e-3333-4000-8000-000000000003";
    let pat = issue_pat(
        &m.h.store,
        owner,
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let jwt = sign(&access_claims());
    let mut wrong = pat.expose().to_owned();
    wrong.pop();
    for authorization in [
        bearer(&jwt),
        bearer(pat.expose()),
        bearer(pat.expose()),
        bearer(&wrong),
    ] {
        let _ = m.record(Some(&authorization)).await;
    }
    let text = m.capture.text();
    let secret = String::from_utf8_lossy(pat.secret().expose_bytes()).into_owned();
    let event = event(None);
    let source_ip = event
        .request_context
        .identity
        .as_ref()
        .and_then(|i| i.source_ip.clone())
        .unwrap();
    for (what, needle) in [
        ("the PAT", pat.expose()),
        ("the PAT secret", &secret),
        ("the PAT id", pat.id().as_str()),
        ("the JWT", &jwt),
        ("the JWT signature", jwt.rsplit('.').next().unwrap()),
        ("the PAT owner", owner),
        ("the JWT subject", "8c1d5a2e-1111-4000-8000-000000000001"),
        ("the username", "alice"),
        ("the source address", &source_ip),
        ("the request id", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
    ] {
        assert!(!text.contains(needle), "{what} leaked into metrics: {text}");
    }
    // Only the declared members: no room for anything else to ride along.
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let mut keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "Argon2Evaluations",
                "CacheHits",
                "CacheMisses",
                "DecisionLatency",
                "Decisions",
                "JwksFetches",
                "Method",
                "Outcome",
                "_aws"
            ]
        );
    }
}
