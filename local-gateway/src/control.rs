//! The control plane an operator's emergency lever talks to, on loopback,
//! in the wire format the AWS SDKs send (restJson for both services):
//!
//! - API Gateway `FlushStageAuthorizersCache` under [`APIGATEWAY_PREFIX`]:
//!   clears the gateway's authorizer result cache;
//! - Lambda `GetFunctionConfiguration`, `UpdateFunctionConfiguration`,
//!   `PublishVersion`, `GetAlias`, `UpdateAlias` and
//!   `GetProvisionedConcurrencyConfig` under [`LAMBDA_PREFIX`], on the one
//!   function that is the authorizer: a configuration change starts a fresh
//!   `$LATEST` instance, a published version gets its own instance, and the
//!   alias serves the instance of the version it points to.
//!
//! Point an SDK at them with an endpoint URL that carries the prefix, e.g.
//! `--lambda-endpoint-url http://127.0.0.1:3000/_aws/lambda`.
//!
//! Which instance decides requests follows AWS: `$LATEST` when the gateway
//! invokes the function, the alias's version when it invokes an alias (as
//! with provisioned concurrency). Changing `$LATEST` alone therefore leaves
//! an alias's instance, and its caches, untouched.
//!
//! As on AWS, `UpdateFunctionConfiguration` answers `LastUpdateStatus:
//! InProgress` (the next read says `Successful`), `PublishVersion` is refused
//! with `ResourceConflictException` while an update is in progress, and after
//! `UpdateAlias` provisioned concurrency reports `IN_PROGRESS` once before
//! `READY`. An SDK that does not wait is caught out here as it would be on
//! AWS.

use std::collections::BTreeMap;
use std::sync::Arc;

use authorizer::Authorizer;
use authorizer::jwks::JwksSource;
use authorizer::pat::TokenLookup;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared::Clock;

use crate::Gateway;

/// Where the API Gateway control plane is served (its SDK endpoint URL).
pub const APIGATEWAY_PREFIX: &str = "/_aws/apigateway";
/// Where the Lambda control plane is served (its SDK endpoint URL).
pub const LAMBDA_PREFIX: &str = "/_aws/lambda";

/// Builds a fresh authorizer, as a cold start would: empty caches.
pub type AuthorizerFactory<K, L, C> =
    Arc<dyn Fn() -> anyhow::Result<Authorizer<K, L, C>> + Send + Sync>;

/// The authorizer function the gateway invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerFunction {
    /// The function's name (the control plane also accepts its ARN).
    pub name: String,
    /// The alias the gateway invokes (e.g. `live`); `None`: `$LATEST`.
    pub alias: Option<String>,
    /// Provisioned concurrency on the alias; 0: none configured.
    pub provisioned_concurrency: u32,
    /// The function's environment variables at start.
    pub environment: BTreeMap<String, String>,
}

impl Default for AuthorizerFunction {
    fn default() -> Self {
        Self {
            name: "agpat-authorizer".into(),
            alias: None,
            provisioned_concurrency: 0,
            environment: BTreeMap::new(),
        }
    }
}

struct Instance<K, L, C> {
    environment: BTreeMap<String, String>,
    authorizer: Arc<Authorizer<K, L, C>>,
    modified: i64,
}

/// The function's state: `$LATEST`, its published versions and its alias.
pub(crate) struct FunctionState<K, L, C> {
    latest: Instance<K, L, C>,
    /// Bumped on every change of the function; `RevisionId` is derived from it.
    revision: u64,
    /// The alias's own revision, as on AWS: bumped only when the alias moves.
    alias_revision: u64,
    /// A weighted release in progress: other versions and their share of
    /// the alias's traffic (recorded and reported; requests still go to
    /// `alias_version`).
    alias_weights: BTreeMap<String, f64>,
    /// Version `n` is at index `n - 1`.
    versions: Vec<Instance<K, L, C>>,
    /// `$LATEST` has not changed since the last version was published.
    latest_published: bool,
    update_in_progress: bool,
    /// The version the alias points to, when there is an alias.
    alias_version: Option<usize>,
    provisioning: bool,
}

impl<K, L, C> FunctionState<K, L, C> {
    /// The first instance; with an alias, also version 1 and the alias on it.
    pub(crate) fn new(
        function: &AuthorizerFunction,
        authorizer: Authorizer<K, L, C>,
        now: i64,
    ) -> Self {
        let authorizer = Arc::new(authorizer);
        let latest = Instance {
            environment: function.environment.clone(),
            authorizer: Arc::clone(&authorizer),
            modified: now,
        };
        let mut state = Self {
            latest,
            revision: 1,
            alias_revision: 1,
            alias_weights: BTreeMap::new(),
            versions: Vec::new(),
            latest_published: false,
            update_in_progress: false,
            alias_version: None,
            provisioning: false,
        };
        if function.alias.is_some() {
            state.versions.push(Instance {
                environment: function.environment.clone(),
                authorizer,
                modified: now,
            });
            state.latest_published = true;
            state.alias_version = Some(1);
        }
        state
    }

    /// The instance that decides the gateway's requests.
    pub(crate) fn serving(&self) -> Arc<Authorizer<K, L, C>> {
        match self
            .alias_version
            .and_then(|v| self.versions.get(v.saturating_sub(1)))
        {
            Some(version) => Arc::clone(&version.authorizer),
            None => Arc::clone(&self.latest.authorizer),
        }
    }
}

/// An AWS restJson error: the code in `x-amzn-ErrorType`, the message in the
/// body (`message` for API Gateway, `Message` and `Type` for Lambda).
struct AwsError {
    status: StatusCode,
    code: &'static str,
    body: Value,
}

impl AwsError {
    fn apigateway(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            body: json!({ "message": message }),
        }
    }

    fn lambda(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            body: json!({ "Type": "User", "Message": message }),
        }
    }

    fn service(message: &str) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "ServiceException",
            body: json!({ "Type": "Service", "Message": message }),
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        response
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The control router (both prefixes). Requests from a peer that is not on
/// loopback are refused, whatever address the server listens on.
pub fn router<K, L, C>() -> axum::Router<Arc<Gateway<K, L, C>>>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    use axum::routing::{delete, get, post};
    let apigateway = axum::Router::new()
        .route(
            "/restapis/{api}/stages/{stage}/cache/authorizers",
            delete(flush::<K, L, C>),
        )
        .fallback(unknown_apigateway);
    let lambda = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration::<K, L, C>).put(update_configuration::<K, L, C>),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(publish_version::<K, L, C>),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(get_alias::<K, L, C>).put(update_alias::<K, L, C>),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            get(get_provisioned_concurrency::<K, L, C>),
        )
        .fallback(unknown_lambda);
    axum::Router::new()
        .nest(APIGATEWAY_PREFIX, apigateway)
        .nest(LAMBDA_PREFIX, lambda)
        .layer(axum::middleware::from_fn(loopback_only))
}

async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The peer on loopback (an IPv4 peer of a dual-stack listener arrives
    // as ::ffff:127.0.0.1), and a loopback Host: a web page whose name was
    // rebound to 127.0.0.1 reaches us from loopback, but with its own Host.
    let host_is_loopback = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback_host);
    if !peer.ip().to_canonical().is_loopback() || !host_is_loopback {
        return AwsError::apigateway(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "the local control plane answers loopback only".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
        || name.eq_ignore_ascii_case("localhost")
}

async fn unknown_apigateway() -> AwsError {
    AwsError::apigateway(
        StatusCode::NOT_FOUND,
        "NotFoundException",
        "Unsupported operation on the local gateway".into(),
    )
}

async fn unknown_lambda() -> AwsError {
    AwsError::lambda(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        "Unsupported operation on the local gateway".into(),
    )
}

/// `FlushStageAuthorizersCache`: 202, no body.
async fn flush<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path((api, stage)): Path<(String, String)>,
) -> Result<StatusCode, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    if api != gw.cfg.api_id {
        return Err(AwsError::apigateway(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            format!("Invalid API identifier specified {}:{api}", gw.cfg.account),
        ));
    }
    if stage != gw.cfg.stage {
        return Err(AwsError::apigateway(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "Invalid stage identifier specified".into(),
        ));
    }
    gw.flush_authorizer_cache();
    tracing::warn!(target: "local_gateway::control", api, stage, "stage authorizer cache flushed");
    Ok(StatusCode::ACCEPTED)
}

#[derive(serde::Deserialize)]
struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

impl<K, L, C> Gateway<K, L, C>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    fn function_arn(&self, qualifier: Option<&str>) -> String {
        let base = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.cfg.region, self.cfg.account, self.cfg.function.name
        );
        match qualifier {
            Some(q) => format!("{base}:{q}"),
            None => base,
        }
    }

    /// Accepts the function's name, ARN or partial ARN (`account:function:name`).
    fn known_function(&self, name: &str) -> Result<(), AwsError> {
        let want = &self.cfg.function.name;
        let plain = name
            .rsplit_once(":function:")
            .map_or(name, |(_, rest)| rest);
        if plain == want {
            Ok(())
        } else {
            Err(AwsError::lambda(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!(
                    "Function not found: arn:aws:lambda:{}:{}:function:{plain}",
                    self.cfg.region, self.cfg.account
                ),
            ))
        }
    }

    fn known_alias(&self, alias: &str) -> Result<(), AwsError> {
        if self.cfg.function.alias.as_deref() == Some(alias) {
            Ok(())
        } else {
            Err(AwsError::lambda(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Alias not found: {}", self.function_arn(Some(alias))),
            ))
        }
    }

    fn configuration(
        &self,
        state: &FunctionState<K, L, C>,
        version: Option<usize>,
        last_update: &str,
    ) -> Value {
        let found = version
            .and_then(|v| v.checked_sub(1))
            .and_then(|i| state.versions.get(i));
        let (instance, label) = match found {
            Some(i) => (i, version.map(|v| v.to_string())),
            None => (&state.latest, None),
        };
        json!({
            "FunctionName": self.cfg.function.name,
            "FunctionArn": self.function_arn(label.as_deref()),
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "PackageType": "Zip",
            "Architectures": ["arm64"],
            "Version": label.as_deref().unwrap_or("$LATEST"),
            "Environment": {"Variables": instance.environment},
            "LastModified": lambda_timestamp(instance.modified),
            "RevisionId": revision_id(state.revision),
            "State": "Active",
            "LastUpdateStatus": last_update,
        })
    }

    fn alias_configuration<K2, L2, C2>(
        &self,
        alias: &str,
        state: &FunctionState<K2, L2, C2>,
    ) -> Value {
        let routing = (!state.alias_weights.is_empty())
            .then(|| json!({ "AdditionalVersionWeights": state.alias_weights }));
        json!({
            "AliasArn": self.function_arn(Some(alias)),
            "Name": alias,
            "FunctionVersion": state.alias_version.unwrap_or(1).to_string(),
            "Description": "",
            "RevisionId": revision_id(state.alias_revision),
            "RoutingConfig": routing,
        })
    }
}

fn revision_id(revision: u64) -> String {
    format!("00000000-0000-4000-8000-{revision:012x}")
}

/// Lambda's `LastModified` format, e.g. `2026-11-26T20:00:00.000+0000`.
fn lambda_timestamp(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000+0000",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

/// `Qualifier` of a read: `$LATEST`, a version number, or the alias.
fn resolve_qualifier<K, L, C>(
    gw: &Gateway<K, L, C>,
    state: &FunctionState<K, L, C>,
    qualifier: Option<&str>,
) -> Result<Option<usize>, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    match qualifier {
        None | Some("$LATEST") => Ok(None),
        Some(q) if gw.cfg.function.alias.as_deref() == Some(q) => Ok(state.alias_version),
        Some(q) => match q.parse::<usize>() {
            Ok(v) if v >= 1 && v <= state.versions.len() => Ok(Some(v)),
            _ => Err(AwsError::lambda(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Function not found: {}", gw.function_arn(Some(q))),
            )),
        },
    }
}

/// `GetFunctionConfiguration`. Once read, an update in progress is done.
async fn get_configuration<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path(name): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    gw.known_function(&name)?;
    let mut state = gw.function_state();
    let version = resolve_qualifier(&gw, &state, query.qualifier.as_deref())?;
    let status = if state.update_in_progress && version.is_none() {
        "InProgress"
    } else {
        "Successful"
    };
    let body = gw.configuration(&state, version, status);
    state.update_in_progress = false;
    Ok(json_reply(StatusCode::OK, &body))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateConfiguration {
    environment: Option<EnvironmentInput>,
    revision_id: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvironmentInput {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, AwsError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|_| {
        AwsError::lambda(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "The request body is not valid JSON for this operation".into(),
        )
    })
}

fn check_revision(current: u64, given: Option<&str>) -> Result<(), AwsError> {
    match given {
        Some(given) if given != revision_id(current) => Err(AwsError::lambda(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the \
             GetFunction/GetAlias API to retrieve the latest Revision Id"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// `UpdateFunctionConfiguration`: the environment is replaced (not merged),
/// and `$LATEST` gets a fresh instance.
async fn update_configuration<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    gw.known_function(&name)?;
    let input: UpdateConfiguration = parse_body(&body)?;
    let fresh = fresh_instance(&gw)?;
    let mut state = gw.function_state();
    may_change_function(&gw, &state, input.revision_id.as_deref())?;
    let environment = input
        .environment
        .map_or_else(|| state.latest.environment.clone(), |e| e.variables);
    state.latest = Instance {
        environment,
        authorizer: Arc::new(fresh),
        modified: gw.clock.now(),
    };
    state.revision += 1;
    state.latest_published = false;
    state.update_in_progress = true;
    tracing::warn!(target: "local_gateway::control", function = %gw.cfg.function.name,
        "function configuration updated: new $LATEST instance");
    let body = gw.configuration(&state, None, "InProgress");
    Ok(json_reply(StatusCode::OK, &body))
}

/// A new authorizer instance (fresh caches), built outside the state lock.
fn fresh_instance<K, L, C>(gw: &Gateway<K, L, C>) -> Result<Authorizer<K, L, C>, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    (gw.factory)().map_err(|e| {
        tracing::error!(target: "local_gateway::control", error = %e, "cannot start an authorizer instance");
        AwsError::service("cannot start a new authorizer instance")
    })
}

/// What AWS checks before changing a function: the caller's `RevisionId`
/// (when given) is current, and no update is still in progress.
fn may_change_function<K, L, C>(
    gw: &Gateway<K, L, C>,
    state: &FunctionState<K, L, C>,
    revision_id: Option<&str>,
) -> Result<(), AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    check_revision(state.revision, revision_id)?;
    if state.update_in_progress {
        return Err(update_conflict(gw));
    }
    Ok(())
}

fn update_conflict<K, L, C>(gw: &Gateway<K, L, C>) -> AwsError
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    AwsError::lambda(
        StatusCode::CONFLICT,
        "ResourceConflictException",
        format!(
            "The operation cannot be performed at this time. An update is in progress for \
             resource: {}",
            gw.function_arn(None)
        ),
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishInput {
    revision_id: Option<String>,
}

/// `PublishVersion`: 201 with the version's configuration; when `$LATEST`
/// has not changed since the last version, that version (as on AWS).
async fn publish_version<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    gw.known_function(&name)?;
    let input: PublishInput = parse_body(&body)?;
    // A version is a new function instance: build it outside the lock.
    let fresh = fresh_instance(&gw)?;
    let mut state = gw.function_state();
    may_change_function(&gw, &state, input.revision_id.as_deref())?;
    if !state.latest_published || state.versions.is_empty() {
        let environment = state.latest.environment.clone();
        state.versions.push(Instance {
            environment,
            authorizer: Arc::new(fresh),
            modified: gw.clock.now(),
        });
        state.latest_published = true;
        state.revision += 1;
    }
    let version = state.versions.len();
    tracing::warn!(target: "local_gateway::control", function = %gw.cfg.function.name, version,
        "version published");
    let body = gw.configuration(&state, Some(version), "Successful");
    Ok(json_reply(StatusCode::CREATED, &body))
}

/// `GetAlias`.
async fn get_alias<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    gw.known_function(&name)?;
    gw.known_alias(&alias)?;
    let state = gw.function_state();
    let body = gw.alias_configuration(&alias, &state);
    Ok(json_reply(StatusCode::OK, &body))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateAliasInput {
    function_version: Option<String>,
    revision_id: Option<String>,
    routing_config: Option<RoutingConfigInput>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoutingConfigInput {
    #[serde(default)]
    additional_version_weights: BTreeMap<String, f64>,
}

/// `UpdateAlias`: the alias, and so the gateway, moves to the version's
/// instance.
async fn update_alias<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    gw.known_function(&name)?;
    gw.known_alias(&alias)?;
    let input: UpdateAliasInput = parse_body(&body)?;
    let mut state = gw.function_state();
    check_revision(state.alias_revision, input.revision_id.as_deref())?;
    if let Some(v) = input.function_version.as_deref() {
        let version = match v.parse::<usize>() {
            Ok(n) if n >= 1 && n <= state.versions.len() => n,
            _ => {
                return Err(AwsError::lambda(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    format!("Function not found: {}", gw.function_arn(Some(v))),
                ));
            }
        };
        if state.alias_version != Some(version) {
            state.alias_version = Some(version);
            state.provisioning = gw.cfg.function.provisioned_concurrency > 0;
        }
    }
    if let Some(routing) = input.routing_config {
        state.alias_weights = routing.additional_version_weights;
    }
    state.alias_revision += 1;
    let version = state.alias_version.unwrap_or(1);
    tracing::warn!(target: "local_gateway::control", function = %gw.cfg.function.name, alias, version,
        "alias moved");
    let body = gw.alias_configuration(&alias, &state);
    Ok(json_reply(StatusCode::OK, &body))
}

/// `GetProvisionedConcurrencyConfig`: `IN_PROGRESS` once after the alias
/// moved, then `READY`.
async fn get_provisioned_concurrency<K, L, C>(
    State(gw): State<Arc<Gateway<K, L, C>>>,
    Path(name): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, AwsError>
where
    K: JwksSource,
    L: TokenLookup,
    C: Clock + 'static,
{
    gw.known_function(&name)?;
    let requested = gw.cfg.function.provisioned_concurrency;
    let qualifier = query.qualifier.unwrap_or_default();
    if requested == 0 || gw.cfg.function.alias.as_deref() != Some(qualifier.as_str()) {
        return Err(AwsError::lambda(
            StatusCode::NOT_FOUND,
            "ProvisionedConcurrencyConfigNotFoundException",
            "No Provisioned Concurrency Config found for this function".into(),
        ));
    }
    let mut state = gw.function_state();
    let (status, available) = if state.provisioning {
        ("IN_PROGRESS", 0)
    } else {
        ("READY", requested)
    };
    state.provisioning = false;
    let body = json!({
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": available,
        "AllocatedProvisionedConcurrentExecutions": available,
        "Status": status,
        "LastModified": lambda_timestamp(gw.clock.now()),
    });
    Ok(json_reply(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_pass_as_host() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST",
            "[::1]:3000",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example:3000",
            "127.0.0.1.attacker.example:80",
            "localhost.attacker.example",
            "10.0.0.1:3000",
            "[::2]:3000",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
