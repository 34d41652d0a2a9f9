//! Test support: fresh tables on a real DynamoDB API (moto by default) and a
//! counter of the HTTP requests a client sends. Enabled by the `test-support`
//! feature; never compiled into a Lambda.
//!
//! Helpers here panic on purpose: a test that cannot reach its database must
//! fail loudly, never pass by skipping.
#![expect(clippy::panic, reason = "test-only helpers must fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_dynamodb::error::BoxError;

use crate::config::StoreConfig;

/// The agpat bus on moto (EventBridge to SQS).
#[cfg(feature = "test-bus")]
#[path = "testing_bus.rs"]
pub mod bus;

/// Proxy-event helpers for the service Lambdas.
#[cfg(feature = "http")]
#[path = "testing_http.rs"]
pub mod http;
use crate::store::TokenStore;

/// The DynamoDB endpoint tests talk to.
///
/// # Panics
/// When `DYNAMODB_ENDPOINT` is unset: tests must run through `make test`
/// (which starts moto) or point at DynamoDB Local or AWS explicitly. Skipping
/// silently would report untested code as passing.
pub fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "DYNAMODB_ENDPOINT is not set: run `make test`, or `scripts/with-moto.sh cargo test`"
        ),
    }
}

/// Counts every HTTP request the client transmits (retries included).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    /// Requests sent so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A DynamoDB client for `endpoint` with static test credentials and a request counter.
pub fn client(endpoint: &str) -> (Client, RequestCounter) {
    client_with(endpoint, None, None)
}

/// As [`client`], with the given timeouts and retries (fault-injection tests).
pub fn client_with(
    endpoint: &str,
    timeouts: Option<aws_sdk_dynamodb::config::timeout::TimeoutConfig>,
    retries: Option<aws_sdk_dynamodb::config::retry::RetryConfig>,
) -> (Client, RequestCounter) {
    let counter = RequestCounter::default();
    let mut conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .interceptor(counter.clone());
    if let Some(t) = timeouts {
        conf = conf.timeout_config(t);
    }
    if let Some(r) = retries {
        conf = conf.retry_config(r);
    }
    (Client::from_conf(conf.build()), counter)
}

/// How many cases a scalable suite runs: `ci` normally, `long` when
/// `AGPAT_LONG_TESTS=1` (`make test-long`).
pub fn scale(ci: usize, long: usize) -> usize {
    match std::env::var("AGPAT_LONG_TESTS") {
        Ok(v) if v == "1" => long,
        _ => ci,
    }
}

/// Store settings for a fresh, uniquely named table.
pub fn fresh_config(max_active_per_user: u32) -> StoreConfig {
    StoreConfig {
        table_name: format!("test-{}", uuid::Uuid::new_v4()),
        endpoint: Some(endpoint()),
        max_active_per_user,
        touch_interval_secs: 300,
        retention_secs: 7 * 86_400,
        event_retention_secs: 90 * 86_400,
        write_schema_version: crate::record::CURRENT_SCHEMA_VERSION,
    }
}

/// A store over a brand-new table, plus the client's request counter.
///
/// # Panics
/// If the table cannot be created: the test cannot run.
pub async fn fresh_store_with(cfg: StoreConfig) -> (TokenStore, RequestCounter) {
    let (client, counter) = client(&endpoint());
    let store = TokenStore::new(client, cfg);
    if let Err(e) = store.create_table().await {
        panic!("cannot create test table: {e}");
    }
    (store, counter)
}

/// A store over a brand-new table with the given per-user cap.
pub async fn fresh_store(max_active_per_user: u32) -> TokenStore {
    fresh_store_with(fresh_config(max_active_per_user)).await.0
}

/// A well-formed token (valid checksum) with `id` and the secret of `donor`:
/// what an attacker who knows a token id can present. For wrong-secret tests.
pub fn token_with_secret_of(id: &crate::TokenId, donor: &crate::Pat) -> String {
    let secret = String::from_utf8_lossy(donor.secret().expose_bytes()).into_owned();
    let body = format!("{}{}{secret}", crate::pat::PAT_PREFIX, id.as_str());
    let checksum = crate::pat::encode_checksum(crc32fast::hash(body.as_bytes()));
    format!("{body}{checksum}")
}

/// Overwrites a token's stored hash with `phc` (a planted or corrupted
/// record, as an attacker with table access could write).
///
/// # Panics
/// If the write fails.
pub async fn overwrite_hash(store: &TokenStore, id: &crate::TokenId, phc: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    store
        .client()
        .update_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("TOKEN#{id}")))
        .key("SK", AttributeValue::S("TOKEN".into()))
        .update_expression("SET #h = :h")
        .expression_attribute_names("#h", "hash")
        .expression_attribute_values(":h", AttributeValue::S(phc.to_owned()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("overwrite hash: {e}"));
}

/// Writes `rec` in the v1 item shape (no `scope_set`, `v = 1`), as code before
/// the v2 migration did, so tests can seed mixed-version tables.
pub async fn put_v1_token(store: &TokenStore, rec: &crate::TokenRecord) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let m = &rec.meta;
    let mut item = std::collections::HashMap::from([
        ("PK".to_owned(), A::S(format!("TOKEN#{}", m.id))),
        ("SK".to_owned(), A::S("TOKEN".into())),
        ("GSI1PK".to_owned(), A::S(format!("USER#{}", m.owner))),
        (
            "GSI1SK".to_owned(),
            A::S(format!("TOKEN#{:012}#{}", m.created_at, m.id)),
        ),
        ("v".to_owned(), A::N("1".into())),
        ("id".to_owned(), A::S(m.id.to_string())),
        ("owner".to_owned(), A::S(m.owner.to_string())),
        ("name".to_owned(), A::S(m.name.clone())),
        ("scopes".to_owned(), A::S(m.scopes.to_space_separated())),
        ("created_at".to_owned(), A::N(m.created_at.to_string())),
        ("expires_at".to_owned(), A::N(m.expires_at.to_string())),
        ("hash".to_owned(), A::S(rec.hash.expose().to_owned())),
        ("ttl".to_owned(), A::N((m.expires_at + 86_400).to_string())),
    ]);
    if let Some(r) = m.revoked_at {
        item.insert("revoked_at".to_owned(), A::N(r.to_string()));
    }
    let result = store
        .client()
        .put_item()
        .table_name(&store.config().table_name)
        .set_item(Some(item))
        .send()
        .await;
    if let Err(e) = result {
        panic!("cannot seed a v1 token: {e}");
    }
}

/// Everything logged through the production JSON subscriber, for log-hygiene
/// tests. Installed once per test process as the global subscriber, at
/// `trace`, so no event of any flow escapes the check.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOG_CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();

impl LogCapture {
    /// The process-wide capture, installing it on first use.
    pub fn global() -> LogCapture {
        LOG_CAPTURE
            .get_or_init(|| {
                let capture = LogCapture::default();
                let writer = capture.clone();
                let subscriber = crate::logging::json_subscriber(move || writer.clone(), "trace");
                let _ = tracing::subscriber::set_global_default(subscriber);
                capture
            })
            .clone()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// The fixture adopter's manifest (`testdata/manifests/adopter.toml`: 12
/// scopes, 47 routes, greedy paths), which the core's tests run against.
pub fn manifest() -> Arc<crate::Manifest> {
    static MANIFEST: std::sync::OnceLock<Arc<crate::Manifest>> = std::sync::OnceLock::new();
    Arc::clone(MANIFEST.get_or_init(|| {
        match crate::Manifest::load(std::path::Path::new(MANIFEST_PATH)) {
            Ok(m) => Arc::new(m),
            Err(e) => panic!("fixture manifest: {e}"),
        }
    }))
}

/// Path of the fixture adopter's manifest.
pub const MANIFEST_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/manifests/adopter.toml"
);

/// Scopes of the fixture manifest by space-separated names.
///
/// # Panics
/// On an undeclared name: a test asking for it is wrong.
pub fn scopes(names: &str) -> crate::ScopeSet {
    match manifest().scopes().parse_space_separated(names) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    }
}

/// Stored scope names (form-checked only).
///
/// # Panics
/// On a malformed name.
pub fn names(names: &str) -> crate::ScopeNames {
    crate::ScopeNames::parse_space_separated(names)
        .unwrap_or_else(|| panic!("malformed scope names: {names}"))
}

/// What a Cognito session holds under the fixture manifest (every declared
/// scope except the group-only `admin:ops`): the most a PAT can carry.
pub fn default_scopes() -> crate::ScopeSet {
    manifest().sessions().default_scopes
}

/// A synthetic manifest of `resources` × 5 routes (list, create, read,
/// replace, delete; a parameter on three, a greedy path on every tenth
/// resource) over 20 scopes: the shape of a large adopter, for size and
/// start-up measurements.
pub fn synthetic_manifest(resources: usize) -> String {
    let mut text = String::from("version = 1\n");
    for s in 0..20 {
        text.push_str(&format!(
            "[[scope]]\nname = \"area{s}:read\"\ndescription = \"\"\n"
        ));
    }
    for i in 0..resources {
        let scope = |k: usize| format!("area{}:read", (i + k) % 20);
        let id = if i % 10 == 0 { "{path+}" } else { "{id}" };
        for (method, path, k) in [
            ("GET", format!("/resource{i}"), 0),
            ("POST", format!("/resource{i}"), 1),
            ("GET", format!("/resource{i}/{id}"), 0),
            ("PUT", format!("/resource{i}/{id}"), 1),
            ("DELETE", format!("/resource{i}/{id}"), 2),
        ] {
            text.push_str(&format!(
                "[[route]]\nmethod = \"{method}\"\npath = \"{path}\"\nscope = \"{}\"\n",
                scope(k)
            ));
        }
    }
    text
}

/// Concrete request paths for `route`: plain values, then each parameter
/// spelling each literal of the table, and greedy values of one to three
/// segments. These are the paths where an IAM `*` (which spans `/`) can
/// over-reach into another route, so cache-safety tests send them all.
pub fn sample_paths(
    table: &crate::routes::RouteTable,
    route: &crate::routes::Route,
) -> Vec<String> {
    use crate::routes::Segment;
    let literals: std::collections::BTreeSet<&str> = table
        .routes()
        .iter()
        .flat_map(|r| r.segments.iter())
        .filter_map(|s| match s {
            Segment::Literal(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let plain = |i: usize, s: &Segment| match s {
        Segment::Literal(t) => t.clone(),
        Segment::Param(_) => format!("p{i}"),
        Segment::Greedy(_) => format!("g{i}/h{i}"),
    };
    let render = |parts: &[String]| format!("/{}", parts.join("/"));
    let base: Vec<String> = route
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| plain(i, s))
        .collect();
    let mut out = vec![render(&base)];
    for (i, segment) in route.segments.iter().enumerate() {
        let values: Vec<String> = match segment {
            Segment::Literal(_) => continue,
            Segment::Param(_) => literals.iter().map(|l| (*l).to_owned()).collect(),
            Segment::Greedy(_) => {
                let mut v = vec!["g".to_owned(), "g/h/k".to_owned()];
                for l in &literals {
                    v.extend([(*l).to_owned(), format!("g/{l}"), format!("{l}/g")]);
                }
                v
            }
        };
        for value in values {
            let mut parts = base.clone();
            if let Some(slot) = parts.get_mut(i) {
                *slot = value;
            }
            out.push(render(&parts));
        }
    }
    out
}
