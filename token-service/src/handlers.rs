//! The `/tokens` handlers. Each reads the caller from the authorizer context,
//! validates everything before touching the store, and answers problem+json
//! on any error.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shared::history::{BusEvent, BusEventKind, EventKind, RevokedBy, TokenEvent};
use shared::record::{MAX_DESCRIPTION_CHARS, MAX_TOKEN_NAME_CHARS};
use shared::store::{CreateOutcome, Cursor, EditOutcome, RevokeOutcome, RotateOutcome, TokenEdit};
use shared::{AuthMethod, Pat, ScopeSet, TokenId, TokenMeta, TokenRecord, TokenStatus};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::audit::{Audit, Outcome};
use crate::scanning::{
    KEY_ID_HEADER, MAX_REPORT_BYTES, MAX_REPORT_ENTRIES, SIGNATURE_HEADER, SignatureError,
};
use shared::http::body::{Fields, JsonObject};
use shared::http::caller::{Caller, RequestInfo};
use shared::http::problem::{ApiError, FieldError, Problem};

const DAY: i64 = 86_400;
/// Default page size of `GET /tokens`.
pub const DEFAULT_PAGE: i32 = 20;
/// Store pages a single listing may read while filtering by status.
const MAX_STORE_PAGES_PER_LISTING: usize = 10;

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Token metadata as the API shows it. Never the secret, never the hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// Public token id (the part after `agpat_`, 17 characters).
    id: String,
    /// Human label.
    name: String,
    /// Granted scopes the manifest still declares (a scope removed from the
    /// manifest grants nothing and is not shown).
    #[schema(example = json!(["items:read"]))]
    scopes: Vec<String>,
    /// `active`, `expired` or `revoked`.
    #[schema(value_type = String, example = "active")]
    status: TokenStatus,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339. Every token expires.
    expires_at: String,
    /// RFC 3339, approximate (written at most once per interval).
    last_used_at: Option<String>,
    /// RFC 3339.
    revoked_at: Option<String>,
    /// The token this one replaced.
    rotated_from: Option<String>,
    /// The token that replaced this one.
    rotated_to: Option<String>,
    /// The owner's free text (at most 500 characters).
    description: Option<String>,
    /// The last distinct places the token was used from, newest first (at
    /// most 5). Recorded with the throttled last-use write, so approximate.
    /// Empty for a PAT asking about another token than itself.
    recent_uses: Vec<UseSiteView>,
    /// The only client networks the token works from; absent: any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["198.51.100.0/24"]))]
    allowed_cidrs: Vec<String>,
    /// The rate tier (which usage plan throttles the token); absent: the
    /// deployment's default tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_tier: Option<String>,
    /// Present when the token is bound to a key (DPoP, RFC 9449): the key's
    /// RFC 7638 thumbprint. Such a token works only as `Authorization: DPoP
    /// <token>` with a fresh proof signed by that key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")]
    dpop_jkt: Option<String>,
}

/// One place a token was used from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UseSiteView {
    /// The client address API Gateway saw.
    #[schema(example = "198.51.100.7")]
    ip: String,
    /// The client's user agent, cut to 128 characters.
    user_agent: Option<String>,
    /// RFC 3339.
    at: String,
}

/// One event of a token's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenEventView {
    /// `created`, `rotated`, `revoked`, `updated`, `new_ip`, `expiring`, `expired`,
    /// `admin_viewed`, or `other` (written by a newer version).
    #[serde(rename = "type")]
    #[schema(example = "revoked")]
    kind: String,
    /// RFC 3339.
    at: String,
    /// `rotated`: on the successor, the token it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// `rotated`: on the predecessor, the token that replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// `revoked`: `owner`, `self`, `revoke_all`, `leak_report`, `offboarding`, `admin`,
    /// or `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    /// `updated`: the fields changed (`name`, `description`, `scopes`, `expiresAt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<Vec<String>>,
    /// `new_ip`: the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    /// `new_ip`: the user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    /// `expiring`: whole days left (30, 7 or 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    days_left: Option<u32>,
    /// `admin_viewed`: what the administrator read (`metadata`, `history`,
    /// `listing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    view: Option<String>,
    /// The administrator who acted (`admin_viewed`, and `revoked` by
    /// `admin`): never absent when an administrator did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    admin: Option<AdminActorView>,
}

/// An administrator named in a token's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminActorView {
    /// Their Cognito `sub`.
    sub: String,
    /// Their Cognito username, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
}

impl TokenEventView {
    pub(crate) fn new(event: &TokenEvent) -> Self {
        // The stored form is the API form: one serde definition
        // (`shared::history::EventKind`), read back field by field.
        let value = serde_json::to_value(&event.kind).unwrap_or_default();
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            kind: event.kind.name().to_owned(),
            at: rfc3339(event.at),
            from: text("from"),
            to: text("to"),
            by: text("by"),
            changes: match &event.kind {
                EventKind::Updated { .. } => value.get("changes").and_then(|c| {
                    c.as_array().map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                }),
                _ => None,
            },
            ip: text("ip"),
            user_agent: text("userAgent"),
            days_left: match &event.kind {
                EventKind::Expiring { days_left } => Some(*days_left),
                _ => None,
            },
            view: text("view"),
            admin: event.admin.as_ref().map(|a| AdminActorView {
                sub: a.sub.to_string(),
                username: a.username.clone(),
            }),
        }
    }
}

/// `GET /tokens/{id}/events` response body.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenEventsBody {
    /// Newest first.
    pub(crate) items: Vec<TokenEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// `PATCH /tokens/{id}` request body: at least one field.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct PatchTokenBody {
    /// New name: 1–100 characters after trimming. Sessions only.
    name: Option<String>,
    /// New description (at most 500 characters), or `null` to remove it. Sessions only.
    description: Option<String>,
    /// A non-empty subset of the token's current scopes.
    #[schema(example = json!(["items:read"]))]
    scopes: Option<Vec<String>>,
    /// RFC 3339: later than now, and not later than the current expiry.
    expires_at: Option<String>,
}

/// `POST /tokens` request body (documentation; validation is field by field).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct CreateTokenBody {
    /// 1–100 characters after trimming, no control characters.
    name: String,
    /// Non-empty subset of the caller's scopes.
    #[schema(example = json!(["items:read"]))]
    scopes: Vec<String>,
    /// Lifetime in days, 1 to `TOKEN_MAX_LIFETIME_DAYS`. Exactly one of this and `expiresAt`.
    expires_in_days: Option<i64>,
    /// RFC 3339 expiry, 1 day to `TOKEN_MAX_LIFETIME_DAYS` from now.
    expires_at: Option<String>,
    /// Free text, at most 500 characters.
    description: Option<String>,
    /// 1 to 16 IPv4/IPv6 networks or addresses: the token works only from
    /// them (deployments with `ipAllowLists` on; else 400). Kept on rotation.
    #[schema(example = json!(["198.51.100.0/24", "2001:db8::/32"]))]
    allowed_cidrs: Option<Vec<String>>,
    /// One of the deployment's rate tiers (`RATE_TIERS`): which usage plan
    /// throttles the token. Absent: the default tier. Kept on rotation.
    rate_tier: Option<String>,
    /// A public JWK, EC P-256 (`{"kty":"EC","crv":"P-256","x","y"}`) or
    /// Ed25519 (`{"kty":"OKP","crv":"Ed25519","x"}`), without its private
    /// part: binds the token to that key (DPoP, RFC 9449; deployments with
    /// `dpop` on, else 400). Kept on rotation.
    #[schema(value_type = Object)]
    dpop_jwk: Option<serde_json::Value>,
}

/// `POST /tokens/{id}/rotate` request body (optional).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct RotateBody {
    /// 0–3600 (default 0): how long the old token keeps working.
    overlap_seconds: Option<i64>,
    /// Binds the successor to this public JWK instead of the old token's
    /// key (or binds it, if the old token was a bearer token).
    #[schema(value_type = Object)]
    dpop_jwk: Option<serde_json::Value>,
}

/// `POST /tokens/revoke` request body.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "schema only")]
pub struct RevokePresentedBody {
    /// The full token to revoke.
    token: String,
}

/// The response that carries a secret (issue, rotate).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct IssuedTokenBody {
    /// The full token. Shown exactly once; store it now.
    token: String,
    /// Metadata, as in [`TokenView`].
    #[serde(flatten)]
    meta: TokenView,
}

/// `GET /tokens` response body.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct TokenListBody {
    /// Newest first.
    items: Vec<TokenView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

impl TokenView {
    pub(crate) fn new(m: &TokenMeta, now: i64, registry: &shared::ScopeRegistry) -> Self {
        let effective = registry.resolve(&m.scopes);
        Self {
            id: m.id.to_string(),
            name: m.name.clone(),
            scopes: effective
                .iter()
                .map(|s| registry.name(s).to_owned())
                .collect(),
            status: m.status(now),
            created_at: rfc3339(m.created_at),
            expires_at: rfc3339(m.expires_at),
            last_used_at: m.last_used_at.map(rfc3339),
            revoked_at: m.revoked_at.map(rfc3339),
            rotated_from: m.rotated_from.as_ref().map(ToString::to_string),
            rotated_to: m.rotated_to.as_ref().map(ToString::to_string),
            description: m.description.clone(),
            recent_uses: m
                .recent_uses
                .iter()
                .map(|u| UseSiteView {
                    ip: u.ip.clone(),
                    user_agent: u.user_agent.clone(),
                    at: rfc3339(u.at),
                })
                .collect(),
            allowed_cidrs: m.allowed_cidrs.iter().map(ToString::to_string).collect(),
            rate_tier: m.rate_tier.clone(),
            dpop_jkt: m.dpop_jkt.as_ref().map(|j| j.as_str().to_owned()),
        }
    }
}

/// The one response that carries a secret: issue and rotate.
#[derive(Serialize)]
struct Issued<'a> {
    /// The full token. Shown exactly once.
    token: &'a str,
    #[serde(flatten)]
    meta: TokenView,
}

pub(crate) fn no_store<T: IntoResponse>(status: StatusCode, body: T) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn issued_response(app: &AppState, pat: &Pat, meta: &TokenMeta, now: i64) -> Response {
    let location = if meta.owner.is_service() {
        format!("/admin/tokens/{}", meta.id)
    } else {
        format!("/tokens/{}", meta.id)
    };
    let mut response = no_store(
        StatusCode::CREATED,
        Json(Issued {
            token: pat.expose(),
            meta: TokenView::new(meta, now, app.manifest.scopes()),
        }),
    );
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Hashes a new token's secret off the async threads (argon2id is ~16 ms of CPU).
pub(crate) async fn hash_new(
    app: &AppState,
    pat: Pat,
) -> Result<(Pat, shared::hash::PhcHash), ApiError> {
    let hasher = app.hasher.clone();
    tokio::task::spawn_blocking(move || {
        let hash = hasher.hash(pat.secret());
        (pat, hash)
    })
    .await
    .map_err(|_| ApiError::Internal)
    .and_then(|(pat, hash)| hash.map(|h| (pat, h)).map_err(|_| ApiError::Internal))
}

pub(crate) fn validate_name(f: &mut Fields<'_>) -> Option<String> {
    let raw = f.string("name")?;
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_TOKEN_NAME_CHARS {
        f.error(
            "name",
            format!("must be 1 to {MAX_TOKEN_NAME_CHARS} characters after trimming"),
        );
        return None;
    }
    if name.chars().any(char::is_control) {
        f.error("name", "must not contain control characters");
        return None;
    }
    Some(name.to_owned())
}

/// `rateTier`: absent, `Some(None)` (the default tier); else one of the
/// deployment's tiers. `None` when invalid (the error is recorded).
pub(crate) fn validate_rate_tier(f: &mut Fields<'_>, tiers: &[String]) -> Option<Option<String>> {
    if !f.has("rateTier") {
        return Some(None);
    }
    let tier = f.string("rateTier")?;
    if tiers.iter().any(|t| t == tier) {
        Some(Some(tier.to_owned()))
    } else if tiers.is_empty() {
        f.error("rateTier", "this deployment has no rate tiers");
        None
    } else {
        f.error("rateTier", format!("must be one of: {}", tiers.join(", ")));
        None
    }
}

/// `allowedCidrs`: absent, an empty list; else 1 to 16 networks or
/// addresses (normalised, deduplicated), and only where the deployment keys
/// the authorizer cache by client address (`AGPAT_IP_ALLOW_LISTS`). `None`
/// when invalid (the error is recorded).
/// `dpopJwk`: the public key to bind the token to. `Some(None)` when
/// absent, `None` when invalid (the error recorded).
pub(crate) fn validate_dpop_jwk(
    f: &mut Fields<'_>,
    enabled: bool,
) -> Option<Option<shared::dpop::Jkt>> {
    let Some(value) = f.raw("dpopJwk") else {
        return Some(None);
    };
    if !enabled {
        f.error(
            "dpopJwk",
            "bound tokens: DPoP is off in this deployment (its authorizer cache would serve answers without a proof)",
        );
        return None;
    }
    match shared::dpop::PublicJwk::from_value(value) {
        Ok(key) => Some(Some(key.thumbprint())),
        Err(e) => {
            f.error("dpopJwk", e.to_string());
            None
        }
    }
}

pub(crate) fn validate_cidrs(f: &mut Fields<'_>, enabled: bool) -> Option<Vec<ipnet::IpNet>> {
    if !f.has("allowedCidrs") {
        return Some(Vec::new());
    }
    if !enabled {
        f.error(
            "allowedCidrs",
            "IP allow-lists are off in this deployment (its authorizer cache is not keyed by client address)",
        );
        return None;
    }
    let entries = f.strings("allowedCidrs")?;
    if entries.is_empty() || entries.len() > shared::record::MAX_ALLOWED_CIDRS {
        f.error(
            "allowedCidrs",
            format!(
                "must hold 1 to {} networks (leave it out to allow any address)",
                shared::record::MAX_ALLOWED_CIDRS
            ),
        );
        return None;
    }
    let mut nets = Vec::with_capacity(entries.len());
    for entry in entries {
        match shared::record::parse_cidr(entry) {
            Some(net) => nets.push(net),
            None => {
                let shown: String = entry.chars().take(50).collect();
                f.error(
                    "allowedCidrs",
                    format!("'{shown}' is not an IPv4 or IPv6 network or address (and /0 allows everything: leave the list out)"),
                );
                return None;
            }
        }
    }
    nets.sort();
    nets.dedup();
    Some(nets)
}

/// An optional description: `None` if absent, `Some(None)` for `null`
/// (remove), `Some(Some(text))` for at most [`MAX_DESCRIPTION_CHARS`]
/// characters without control characters other than newline and tab.
pub(crate) fn validate_description(f: &mut Fields<'_>) -> Option<Option<String>> {
    if !f.present("description") {
        return None;
    }
    if !f.has("description") {
        return Some(None);
    }
    let raw = f.string("description")?;
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        f.error(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
        return None;
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        f.error("description", "must not contain control characters");
        return None;
    }
    let text = raw.trim();
    Some((!text.is_empty()).then(|| text.to_owned()))
}

/// The requested scopes: each declared by the manifest and delegable (a
/// group-only scope is a session's, never a token's).
fn validate_scopes(f: &mut Fields<'_>, manifest: &shared::Manifest) -> Option<ScopeSet> {
    validate_scopes_within(
        f,
        manifest,
        manifest.sessions().pat_ceiling(),
        "is granted by group membership and cannot be given to a token",
    )
}

/// `scopes`: a non-empty list of declared scopes, each within `ceiling`
/// (else the error says it `beyond`). `None` when invalid (recorded).
pub(crate) fn validate_scopes_within(
    f: &mut Fields<'_>,
    manifest: &shared::Manifest,
    ceiling: ScopeSet,
    beyond: &str,
) -> Option<ScopeSet> {
    let names = f.strings("scopes")?;
    if names.is_empty() {
        f.error("scopes", "must not be empty");
        return None;
    }
    let registry = manifest.scopes();
    let mut set = ScopeSet::EMPTY;
    let mut ok = true;
    for name in names {
        let shown: String = name.chars().take(40).collect();
        match registry.parse(name) {
            Ok(scope) if ceiling.contains(scope) => set = set.with(scope),
            Ok(_) => {
                ok = false;
                f.error("scopes", format!("scope '{shown}' {beyond}"));
            }
            Err(_) => {
                ok = false;
                f.error("scopes", format!("unknown scope '{shown}'"));
            }
        }
    }
    ok.then_some(set)
}

pub(crate) fn validate_expiry(f: &mut Fields<'_>, now: i64, max_days: i64) -> Option<i64> {
    match (f.has("expiresInDays"), f.has("expiresAt")) {
        (true, true) => {
            f.error(
                "expiresAt",
                "give either expiresInDays or expiresAt, not both",
            );
            None
        }
        (false, false) => {
            f.error(
                "expiresInDays",
                "an expiry is required (expiresInDays or expiresAt)",
            );
            None
        }
        (true, false) => f
            .int_in("expiresInDays", 1, max_days)
            .map(|d| now + d * DAY),
        (false, true) => {
            let raw = f.string("expiresAt")?;
            let Ok(at) = OffsetDateTime::parse(raw, &Rfc3339) else {
                f.error("expiresAt", "must be an RFC 3339 timestamp");
                return None;
            };
            let at = at.unix_timestamp();
            if at < now + DAY || at > now + max_days * DAY {
                f.error(
                    "expiresAt",
                    format!("must be between 1 and {max_days} days from now"),
                );
                return None;
            }
            Some(at)
        }
    }
}

/// Issues a token; the secret is shown once. Cognito sessions only.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = CreateTokenBody,
    responses((status = 201, description = "Issued; the secret is in `token`, shown once", body = IssuedTokenBody),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let audit = Audit::new("token.create", &caller);
    if caller.principal.kind != shared::PrincipalKind::User {
        audit.record(Outcome::Denied, None, None);
        return Err(ApiError::SessionRequired);
    }
    let now = app.now();
    let mut f = Fields::new(
        &body,
        &[
            "name",
            "scopes",
            "expiresInDays",
            "expiresAt",
            "description",
            "allowedCidrs",
            "rateTier",
            "dpopJwk",
        ],
    );
    let name = validate_name(&mut f);
    let description = validate_description(&mut f).flatten();
    let scopes = validate_scopes(&mut f, &app.manifest);
    let expires_at = validate_expiry(&mut f, now, app.max_lifetime_days);
    let allowed_cidrs = validate_cidrs(&mut f, app.ip_allow_lists);
    let rate_tier = validate_rate_tier(&mut f, &app.rate_tiers);
    let dpop_jkt = validate_dpop_jwk(&mut f, app.dpop);
    f.finish()?;
    let (
        Some(name),
        Some(scopes),
        Some(expires_at),
        Some(allowed_cidrs),
        Some(rate_tier),
        Some(dpop_jkt),
    ) = (name, scopes, expires_at, allowed_cidrs, rate_tier, dpop_jkt)
    else {
        return Err(ApiError::Internal);
    };
    let names = app.manifest.scopes().names(scopes);
    if !scopes.is_subset_of(caller.principal.scopes) {
        audit.record(Outcome::Denied, None, Some(&names));
        return Err(ApiError::ScopeEscalation);
    }
    if let Some(username) = &caller.principal.username {
        // Offboarding events may name the user by username only (after a
        // delete, Cognito can no longer map it to the sub): remember it.
        app.store
            .remember_username(username, &caller.principal.sub)
            .await?;
    }
    let (pat, record) = new_token(
        &app,
        caller.principal.sub.clone(),
        name,
        names,
        now,
        expires_at,
        |meta| {
            meta.description = description;
            meta.allowed_cidrs = allowed_cidrs;
            meta.rate_tier = rate_tier;
            meta.dpop_jkt = dpop_jkt;
        },
    )
    .await?;
    let outcome = app
        .store
        .create_for_session(&record, now, caller.principal.issued_at)
        .await?;
    answer_issue(&app, &audit, &pat, &record, outcome, now)
}

/// A new token for `owner`: a fresh secret, its argon2id hash, and the
/// metadata (`extra` sets what the request adds: description, allow-list,
/// tier). Not stored yet.
pub(crate) async fn new_token(
    app: &AppState,
    owner: shared::UserId,
    name: String,
    scopes: shared::ScopeNames,
    now: i64,
    expires_at: i64,
    extra: impl FnOnce(&mut TokenMeta),
) -> Result<(Pat, TokenRecord), ApiError> {
    let pat = Pat::generate().map_err(|_| ApiError::Internal)?;
    let (pat, hash) = hash_new(app, pat).await?;
    let mut meta = TokenMeta::issued(pat.id().clone(), owner, name, scopes, now, expires_at);
    extra(&mut meta);
    Ok((pat, TokenRecord { meta, hash }))
}

/// The answer to a create, audited: the secret once on success, else why not.
pub(crate) fn answer_issue(
    app: &AppState,
    audit: &Audit<'_>,
    pat: &Pat,
    record: &TokenRecord,
    outcome: CreateOutcome,
    now: i64,
) -> Result<Response, ApiError> {
    let scopes = Some(&record.meta.scopes);
    match outcome {
        CreateOutcome::Created => {
            audit.record(Outcome::Success, Some(&record.meta.id), scopes);
            Ok(issued_response(app, pat, &record.meta, now))
        }
        CreateOutcome::CapReached => {
            audit.record(Outcome::Refused, None, scopes);
            Err(ApiError::TokenLimitReached)
        }
        CreateOutcome::SessionPredatesRevocation => {
            audit.record(Outcome::Denied, None, scopes);
            Err(ApiError::SessionPredatesRevocation)
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    items: Vec<TokenView>,
    next_cursor: Option<String>,
}

/// Metadata only, newest first, filtered by `status`, paginated by `cursor`.
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    params(("status" = Option<String>, Query, description = "active | expired | revoked | all (default)"),
        ("limit" = Option<i32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "opaque, from `nextCursor`")),
    responses((status = 200, body = TokenListBody), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (limit, mut errors) = page_query(&query, &["status"]);
    let status = status_filter(&query, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let start = query.get("cursor").map(|c| Cursor::from_client(c));
    let (metas, next) = collect_page(&app, &caller.principal.sub, status, limit, start).await?;
    let now = app.now();
    let items = metas
        .into_iter()
        .map(|mut meta| {
            hide_foreign_activity(&caller, &mut meta);
            TokenView::new(&meta, now, app.manifest.scopes())
        })
        .collect();
    Ok(no_store(
        StatusCode::OK,
        Json(ListBody {
            items,
            next_cursor: next.map(|c| c.as_str().to_owned()),
        }),
    ))
}

/// The `status` filter of a listing (`active`, `expired`, `revoked`,
/// `all`); `None` for all, an error added for anything else.
pub(crate) fn status_filter(
    query: &HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Option<TokenStatus> {
    match query.get("status").map(String::as_str) {
        None | Some("all") => None,
        Some("active") => Some(TokenStatus::Active),
        Some("expired") => Some(TokenStatus::Expired),
        Some("revoked") => Some(TokenStatus::Revoked),
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "must be active, expired, revoked or all",
            ));
            None
        }
    }
}

/// The paging parameters of a listing (`limit`, `cursor`) plus `extra`
/// keys: the page size, and an error for each unknown key or bad limit.
pub(crate) fn page_query(
    query: &HashMap<String, String>,
    extra: &[&str],
) -> (i32, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut keys: Vec<&String> = query.keys().collect();
    keys.sort();
    for key in keys {
        if !["limit", "cursor"].contains(&key.as_str()) && !extra.contains(&key.as_str()) {
            errors.push(FieldError::new(
                &key.chars().take(64).collect::<String>(),
                "unknown query parameter",
            ));
        }
    }
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<i32>() {
            Ok(n) if (1..=shared::store::MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    format!(
                        "must be an integer from 1 to {}",
                        shared::store::MAX_PAGE_SIZE
                    ),
                ));
                DEFAULT_PAGE
            }
        },
    };
    (limit, errors)
}

/// Reads `owner`'s store pages until `limit` tokens match `status` (or the
/// history ends, or [`MAX_STORE_PAGES_PER_LISTING`] pages were read), and
/// returns them, description and use sites included, with the cursor that
/// continues right after the last token examined.
pub(crate) async fn collect_page(
    app: &AppState,
    owner: &shared::UserId,
    status: Option<TokenStatus>,
    limit: i32,
    mut cursor: Option<Cursor>,
) -> Result<(Vec<TokenMeta>, Option<Cursor>), ApiError> {
    let now = app.now();
    let wanted = usize::try_from(limit).unwrap_or(1);
    let mut items: Vec<TokenMeta> = Vec::new();
    let mut next = cursor.clone();
    'pages: for _ in 0..MAX_STORE_PAGES_PER_LISTING {
        let page = app.store.list(owner, limit, cursor.as_ref()).await?;
        let examined = page.items.len();
        for (i, meta) in page.items.iter().enumerate() {
            if status.is_none_or(|s| meta.status(now) == s) {
                items.push(meta.clone());
            }
            if items.len() == wanted {
                let more = i + 1 < examined || page.next.is_some();
                next = if more {
                    Some(Cursor::after(meta)?)
                } else {
                    None
                };
                break 'pages;
            }
        }
        match page.next {
            Some(page_next) => {
                cursor = Some(page_next);
                // Bounded work per request: the client continues from here.
                next.clone_from(&cursor);
            }
            None => {
                next = None;
                break;
            }
        }
    }
    // The index does not project description and use sites: one batch read
    // of just those attributes for the page.
    let ids: Vec<TokenId> = items.iter().map(|m| m.id.clone()).collect();
    let mut details = app.store.details(&ids).await?;
    for meta in &mut items {
        if let Some(d) = details.remove(&meta.id) {
            meta.description = d.description;
            meta.recent_uses = d.recent_uses;
            meta.allowed_cidrs = d.allowed_cidrs;
            meta.dpop_jkt = d.dpop_jkt;
            meta.rate_tier = d.rate_tier;
        }
    }
    Ok((items, next))
}

pub(crate) fn parse_id(raw: &str) -> Result<TokenId, ApiError> {
    // A malformed id is indistinguishable from a missing token.
    TokenId::parse(raw).map_err(|_| ApiError::TokenNotFound)
}

/// A PAT may manage exactly one token: itself. Everything else (another
/// token, every token, a new token) needs a Cognito session, so a leaked PAT
/// cannot rotate or revoke its siblings.
///
/// A PAT's write must also not ride on a stale decision: API Gateway and the
/// authorizer may keep serving a cached Allow for a while after revocation,
/// so the calling token is re-read with a strongly consistent read and must
/// still be live. Sessions pass through unchanged.
async fn confirm_pat_acts_on_itself(
    app: &AppState,
    caller: &Caller,
    target: &TokenId,
) -> Result<(), ApiError> {
    match caller.principal.kind {
        shared::PrincipalKind::User => return Ok(()),
        // A machine never manages tokens (it holds no token scope; this
        // holds even against a forged context).
        shared::PrincipalKind::Service => return Err(ApiError::SessionRequired),
        shared::PrincipalKind::UserToken | shared::PrincipalKind::ServiceToken => {}
    }
    let own = caller
        .principal
        .token_id
        .as_ref()
        .ok_or(ApiError::Unauthenticated)?;
    if own != target {
        return Err(ApiError::SessionRequired);
    }
    let live = app
        .store
        .get_owned(&caller.principal.sub, own)
        .await?
        .is_some_and(|m| m.is_active(app.now()));
    if !live {
        return Err(ApiError::CredentialRevoked);
    }
    Ok(())
}

fn self_id(caller: &Caller) -> Result<TokenId, ApiError> {
    match (&caller.principal.method, &caller.principal.token_id) {
        (AuthMethod::Pat, Some(id)) => Ok(id.clone()),
        _ => Err(ApiError::SelfRequiresPat),
    }
}

/// Whether `caller` may see where and when token `id` was used (its use
/// sites and history): a session, for any of its tokens; a PAT, only for
/// itself. A leaked PAT with `tokens:read` still lists its siblings'
/// metadata (section 5.6 of the threat model) but learns nothing of where
/// they run.
fn sees_activity_of(caller: &Caller, id: &TokenId) -> bool {
    match caller.principal.kind {
        shared::PrincipalKind::User => true,
        shared::PrincipalKind::UserToken | shared::PrincipalKind::ServiceToken => {
            caller.principal.token_id.as_ref() == Some(id)
        }
        shared::PrincipalKind::Service => false,
    }
}

fn hide_foreign_activity(caller: &Caller, meta: &mut TokenMeta) {
    if !sees_activity_of(caller, &meta.id) {
        meta.recent_uses.clear();
    }
}

async fn show(app: &AppState, caller: &Caller, id: &TokenId) -> Result<Response, ApiError> {
    let mut meta = app
        .store
        .get_owned(&caller.principal.sub, id)
        .await?
        .ok_or(ApiError::TokenNotFound)?;
    hide_foreign_activity(caller, &mut meta);
    Ok(no_store(
        StatusCode::OK,
        Json(TokenView::new(&meta, app.now(), app.manifest.scopes())),
    ))
}

/// One of the caller's tokens; another user's token is a 404.
#[utoipa::path(get, path = "/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = TokenView), (status = 404, body = Problem)))]
pub async fn get_one(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    show(&app, &caller, &parse_id(&id)?).await
}

/// The PAT making the call.
#[utoipa::path(get, path = "/tokens/self", tag = "tokens",
    responses((status = 200, body = TokenView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_self(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    show(&app, &caller, &self_id(&caller)?).await
}

async fn revoke_one(
    app: &AppState,
    caller: &Caller,
    id: &TokenId,
    event: &'static str,
) -> Result<Response, ApiError> {
    let audit = Audit::new(event, caller);
    // A PAT can only ever revoke itself (checked below); a session is the owner.
    let by = match caller.principal.method {
        AuthMethod::Pat => RevokedBy::Itself,
        AuthMethod::Jwt => RevokedBy::Owner,
    };
    if let Err(e) = confirm_pat_acts_on_itself(app, caller, id).await {
        audit.record(Outcome::Denied, Some(id), None);
        return Err(e);
    }
    match app
        .store
        .revoke(&caller.principal.sub, id, app.now(), by)
        .await?
    {
        RevokeOutcome::Revoked => audit.record(Outcome::Success, Some(id), None),
        RevokeOutcome::AlreadyRevoked => audit.record(Outcome::NoChange, Some(id), None),
        RevokeOutcome::NotFound => {
            audit.record(Outcome::Refused, None, None);
            return Err(ApiError::TokenNotFound);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Idempotent: revoking a revoked token answers 204 again.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked (or already revoked)"), (status = 404, body = Problem)))]
pub async fn delete_one(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    revoke_one(&app, &caller, &parse_id(&id)?, "token.revoke").await
}

/// The calling PAT revokes itself.
#[utoipa::path(delete, path = "/tokens/self", tag = "tokens",
    responses((status = 204, description = "Revoked"), (status = 400, body = Problem)))]
pub async fn delete_self(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let id = self_id(&caller)?;
    revoke_one(&app, &caller, &id, "token.revoke_self").await
}

/// How long `DELETE /tokens` revokes before it answers; what is left is
/// reported (`complete: false`) and a retry finishes it. Well inside the
/// token service's Lambda timeout.
pub const REVOKE_ALL_BUDGET: std::time::Duration = std::time::Duration::from_secs(6);

/// Revokes every token of the caller. Cognito sessions only.
///
/// Final: from the moment it starts, no token created or rotated before it
/// can survive it, and no such token can rotate any more. Bounded in time:
/// when `complete` is false, call again (it is idempotent) to revoke the rest.
#[utoipa::path(delete, path = "/tokens", tag = "tokens",
    responses((status = 200, description = "`{\"revoked\": n, \"remaining\": m, \"complete\": bool}`; retry while `complete` is false"),
        (status = 403, body = Problem)))]
pub async fn delete_all(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let audit = Audit::new("token.revoke_all", &caller);
    if caller.principal.kind != shared::PrincipalKind::User {
        audit.record(Outcome::Denied, None, None);
        return Err(ApiError::SessionRequired);
    }
    let outcome = app
        .store
        .revoke_all(
            &caller.principal.sub,
            app.now(),
            Some(std::time::Instant::now() + REVOKE_ALL_BUDGET),
            RevokedBy::RevokeAll,
        )
        .await?;
    audit.record_count(Outcome::Success, outcome.revoked);
    Ok(no_store(
        StatusCode::OK,
        Json(serde_json::json!({
            "revoked": outcome.revoked,
            "remaining": outcome.remaining,
            "complete": outcome.complete(),
        })),
    ))
}

/// Anyone holding a token can kill it by posting `{"token": …}`.
///
/// Public (no authorizer). The answer is the same whether or not the token
/// existed; the secret is verified (against a dummy hash when the id is
/// unknown, so timing does not reveal existence) before anything is revoked.
#[utoipa::path(post, path = "/tokens/revoke", tag = "tokens", request_body = RevokePresentedBody,
    responses((status = 202, description = "Always the same answer, whether or not the token existed"),
        (status = 400, body = Problem)))]
pub async fn revoke_presented(
    State(app): State<AppState>,
    info: RequestInfo,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let mut f = Fields::new(&body, &["token"]);
    let presented = f.string("token");
    if presented.is_some_and(|t| t.len() > MAX_PRESENTED_TOKEN_BYTES) {
        f.error("token", "is too long");
    }
    f.finish()?;
    let accepted = || {
        no_store(
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "status": "accepted" })),
        )
    };
    let Some(Ok(pat)) = presented.map(Pat::parse) else {
        return Ok(accepted());
    };
    let report = LeakReport {
        audit_event: "token.leaked_revoke",
        info: &info,
        source: None,
        url: None,
        hide_unknown_ids: true,
    };
    revoke_if_genuine(&app, pat, &report).await?;
    Ok(accepted())
}

/// Longest string a leak report may present as a token (a PAT is 72).
const MAX_PRESENTED_TOKEN_BYTES: usize = 512;

/// Who reported a presented token, and where they found it: for the audit
/// trail only (never the token).
struct LeakReport<'a> {
    /// The audit event of the route.
    audit_event: &'static str,
    /// The reporter's request.
    info: &'a RequestInfo,
    /// Where the token was found (the partner's `source`), if said.
    source: Option<&'a str>,
    /// The public address where it was found, if said.
    url: Option<&'a str>,
    /// Whether an unknown id is verified against a dummy hash, so the time
    /// taken does not tell the caller whether the id exists. The partner
    /// route does not need it (its caller is the signing partner, not the
    /// people who plant findings) and saves one argon2id run per made-up
    /// token, which anyone can get the partner to send.
    hide_unknown_ids: bool,
}

/// The one path of every leak report (`POST /tokens/revoke` and the
/// secret-scanning partner route): verifies the presented secret, and if it
/// is genuine revokes the token (`leak_report` in its history), audits it,
/// and, if the token still worked, puts `agpat.token.leak_reported` on the
/// bus for its owner. Idempotent: a token already revoked is audited as
/// `no_change` and alerts no one again.
///
/// Returns whether the secret is genuine (a real token of ours, live or
/// not). With `hide_unknown_ids`, the secret is verified against a dummy
/// hash when the id is unknown, so the time taken does not reveal whether
/// the id exists.
async fn revoke_if_genuine(
    app: &AppState,
    pat: Pat,
    report: &LeakReport<'_>,
) -> Result<bool, ApiError> {
    let record = app.store.get(pat.id()).await?;
    if record.is_none() && !report.hide_unknown_ids {
        return Ok(false);
    }
    let hash = record
        .as_ref()
        .map_or_else(|| app.dummy_hash.clone(), |r| r.hash.clone());
    let hasher = app.hasher.clone();
    app.leak_verifications
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let matches =
        tokio::task::spawn_blocking(move || hasher.verify(pat.secret(), &hash).unwrap_or(false))
            .await
            .map_err(|_| ApiError::Internal)?;
    let (true, Some(record)) = (matches, record) else {
        return Ok(false);
    };
    let outcome = app
        .store
        .revoke(
            &record.meta.owner,
            &record.meta.id,
            app.now(),
            RevokedBy::LeakReport,
        )
        .await?;
    let audit = Audit::public(report.audit_event, report.info, &record.meta.owner)
        .found_at(report.source, report.url);
    // Only a token that still worked is news to its owner: an expired
    // one is recorded in its history, but nobody is alerted about it.
    if outcome == RevokeOutcome::Revoked
        && record.meta.is_active(app.now())
        && let Some(bus) = &app.bus
    {
        // The owner learns of it (history, bus event, optional email).
        // The reporter already holds a working secret, so the extra time
        // this takes tells them nothing they could not test directly.
        let notice = BusEvent {
            kind: BusEventKind::LeakReported,
            token: record.meta.id.clone(),
            owner: record.meta.owner.clone(),
            name: record.meta.name.clone(),
            expires_at: record.meta.expires_at,
            at: app.now(),
        };
        if bus.publish(std::slice::from_ref(&notice)).await > 0 {
            tracing::error!(token_id = %record.meta.id, "leak notice not published");
        }
    }
    let outcome = match outcome {
        RevokeOutcome::Revoked => Outcome::Success,
        _ => Outcome::NoChange,
    };
    audit.record(outcome, Some(&record.meta.id), Some(&record.meta.scopes));
    Ok(true)
}

/// One finding of a secret-scanning report, as GitHub sends it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SecretScanningFinding {
    /// The string that matched the registered pattern.
    token: String,
    /// The registered token type's name.
    #[serde(rename = "type")]
    #[schema(example = "agpat_personal_access_token")]
    kind: String,
    /// Where it was found.
    #[serde(default)]
    #[schema(example = "https://github.com/octo/repo/blob/abc/config.yml#L3")]
    url: Option<String>,
    /// The kind of place (`content`, `commit`, `pull_request`, `gist`, …).
    #[serde(default)]
    #[schema(example = "content")]
    source: Option<String>,
}

/// The answer for one finding: GitHub's feedback format.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretScanningLabel {
    /// The token as reported.
    token_raw: String,
    /// The type as reported.
    token_type: String,
    /// `true_positive` when the string is a genuine agpat token (its secret
    /// verifies; it is revoked now if it was not already), else
    /// `false_positive`.
    #[schema(example = "true_positive")]
    label: String,
}

/// Longest `source` or `url` of a finding kept in the audit trail.
const MAX_FOUND_AT_CHARS: usize = 512;

/// A reporter's free text, cut and stripped of control characters, for the audit trail.
fn audit_text(text: Option<&str>) -> Option<String> {
    text.map(|t| {
        t.chars()
            .filter(|c| !c.is_control())
            .take(MAX_FOUND_AT_CHARS)
            .collect()
    })
}

/// GitHub's secret-scanning partner programme reports tokens it found in
/// public places: each genuine one is revoked and its owner told, exactly as
/// for `POST /tokens/revoke`.
///
/// Public (no authorizer); the report must carry GitHub's ECDSA signature
/// over the raw body (`Github-Public-Key-Identifier`,
/// `Github-Public-Key-Signature`), checked before the body is even parsed.
/// At most 64 KiB and 100 findings. The answer labels each finding
/// `true_positive` (a genuine token of ours, revoked now or already) or
/// `false_positive` (anything else: a well-formed token whose id is unknown
/// and one whose secret is wrong look the same, in content and in time).
/// Replaying a report revokes nothing more, alerts no one again, and gets
/// the same labels. Off (404) unless `SECRET_SCANNING_KEYS_URL` is set.
#[utoipa::path(post, path = "/tokens/secret-scanning", tag = "tokens",
    request_body = Vec<SecretScanningFinding>,
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The partner key that signed the report"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 DER ECDSA P-256 SHA-256 signature of the raw body")),
    responses((status = 200, description = "One label per finding, in order", body = Vec<SecretScanningLabel>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem)))]
pub async fn secret_scanning_report(
    State(app): State<AppState>,
    info: RequestInfo,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let Some(keys) = &app.partner_keys else {
        return Err(ApiError::NotFound);
    };
    let raw = axum::body::to_bytes(body, MAX_REPORT_BYTES)
        .await
        .map_err(|_| ApiError::ReportTooLarge)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The signature first: an unsigned or forged report costs one ECDSA
    // check, never a parse, a lookup or an argon2id run.
    match keys
        .verify(
            header(KEY_ID_HEADER),
            header(SIGNATURE_HEADER),
            &raw,
            app.now(),
        )
        .await
    {
        Ok(()) => {}
        Err(SignatureError::KeysUnavailable(e)) => {
            tracing::error!(error = %e, "secret-scanning report not checked: no partner keys");
            return Err(ApiError::Internal);
        }
        Err(e) => {
            tracing::warn!(reason = %e, source_ip = %info.source_ip, "secret-scanning report refused");
            return Err(ApiError::InvalidSignature);
        }
    }
    let findings: Vec<SecretScanningFinding> = serde_json::from_slice(&raw).map_err(|_| {
        ApiError::Validation(vec![FieldError::new(
            "body",
            "must be a JSON array of {token, type, url, source}",
        )])
    })?;
    if findings.len() > MAX_REPORT_ENTRIES {
        return Err(ApiError::ReportTooLarge);
    }
    // A token reported twice in one batch is checked once.
    let mut verdicts: HashMap<&str, bool> = HashMap::new();
    let mut labels = Vec::with_capacity(findings.len());
    for finding in &findings {
        let genuine = match verdicts.get(finding.token.as_str()) {
            Some(known) => *known,
            None => {
                let source = audit_text(finding.source.as_deref());
                let url = audit_text(finding.url.as_deref());
                let report = LeakReport {
                    audit_event: "token.secret_scanning_revoke",
                    info: &info,
                    source: source.as_deref(),
                    url: url.as_deref(),
                    hide_unknown_ids: false,
                };
                let genuine = match Pat::parse(&finding.token) {
                    Ok(pat) if finding.token.len() <= MAX_PRESENTED_TOKEN_BYTES => {
                        revoke_if_genuine(&app, pat, &report).await?
                    }
                    _ => false,
                };
                verdicts.insert(&finding.token, genuine);
                genuine
            }
        };
        labels.push(SecretScanningLabel {
            token_raw: finding.token.clone(),
            token_type: finding.kind.clone(),
            label: if genuine {
                "true_positive"
            } else {
                "false_positive"
            }
            .to_owned(),
        });
    }
    tracing::info!(
        findings = findings.len(),
        genuine = verdicts.values().filter(|v| **v).count(),
        "secret-scanning report processed"
    );
    Ok(no_store(StatusCode::OK, Json(labels)))
}

/// Replaces a token by a new one; optional `{overlapSeconds}` (0–3600).
///
/// The successor keeps the name and scopes. Its expiry depends on who asks:
/// - a Cognito session gives it a fresh lifetime, as long as the old token's
///   and capped by the configured maximum;
/// - a PAT may rotate only itself, and its successor ends exactly when the
///   predecessor would have: self-rotation never extends a chain's life.
///
/// Rotation never drops an expiry and never extends past the policy.
#[utoipa::path(post, path = "/tokens/{id}/rotate", tag = "tokens", params(("id" = String, Path)), request_body(content = Option<RotateBody>),
    responses((status = 201, description = "The successor; the secret is in `token`, shown once", body = IssuedTokenBody),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn rotate(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let mut f = Fields::new(&body, &["overlapSeconds", "dpopJwk"]);
    let overlap = f.int_in("overlapSeconds", 0, 3600).unwrap_or(0);
    let new_binding = validate_dpop_jwk(&mut f, app.dpop);
    f.finish()?;
    let new_binding = new_binding.ok_or(ApiError::Internal)?;
    let id = parse_id(&id)?;
    let audit = Audit::new("token.rotate", &caller);
    if let Err(e) = confirm_pat_acts_on_itself(&app, &caller, &id).await {
        audit.record(Outcome::Denied, Some(&id), None);
        return Err(e);
    }
    let now = app.now();
    let old = app
        .store
        .get_owned(&caller.principal.sub, &id)
        .await?
        .ok_or(ApiError::TokenNotFound)?;
    // The successor carries the scopes the manifest still declares and a
    // token may hold: names the manifest dropped are not carried forward, so
    // a scope later re-added with another meaning is never inherited.
    let registry = app.manifest.scopes();
    let kept = registry
        .resolve(&old.scopes)
        .intersection(app.manifest.sessions().pat_ceiling());
    if !kept.is_subset_of(caller.principal.scopes) {
        audit.record(Outcome::Denied, Some(&id), Some(&old.scopes));
        return Err(ApiError::ScopeEscalation);
    }
    if kept.is_empty() {
        audit.record(Outcome::Refused, Some(&id), Some(&old.scopes));
        return Err(ApiError::TokenNotActive);
    }
    if old.rotated_to.is_some() {
        audit.record(Outcome::Refused, Some(&id), None);
        return Err(ApiError::TokenAlreadyRotated);
    }
    if !old.is_active(now) {
        audit.record(Outcome::Refused, Some(&id), None);
        return Err(ApiError::TokenNotActive);
    }
    let expires_at = match caller.principal.method {
        AuthMethod::Pat => old.expires_at,
        AuthMethod::Jwt => {
            now + (old.expires_at - old.created_at).clamp(DAY, app.max_lifetime_days * DAY)
        }
    };
    let pat = Pat::generate().map_err(|_| ApiError::Internal)?;
    let (pat, hash) = hash_new(&app, pat).await?;
    let meta = TokenMeta {
        rotated_from: Some(id.clone()),
        description: old.description.clone(),
        // The successor is held to the same networks.
        allowed_cidrs: old.allowed_cidrs.clone(),
        rate_tier: old.rate_tier.clone(),
        epoch: old.epoch,
        // Bound to the same key, unless the request names a new one.
        dpop_jkt: new_binding.or_else(|| old.dpop_jkt.clone()),
        ..TokenMeta::issued(
            pat.id().clone(),
            old.owner.clone(),
            old.name.clone(),
            registry.names(kept),
            now,
            expires_at,
        )
    };
    let record = TokenRecord { meta, hash };
    // The successor was derived from `old`: it is stored only if the token
    // still has exactly those scopes and that expiry (an edit in between is
    // never undone). A PAT's own chain is guarded by its epoch; a session
    // must also be newer than the owner's last revoke-all.
    let session_issued_at = match caller.principal.method {
        AuthMethod::Pat => None,
        AuthMethod::Jwt => Some(caller.principal.issued_at),
    };
    let outcome = app
        .store
        .rotate_as_read(&old, &record, overlap, now, session_issued_at)
        .await?;
    match outcome {
        RotateOutcome::Rotated => {
            audit.record(
                Outcome::Success,
                Some(&record.meta.id),
                Some(&record.meta.scopes),
            );
            Ok(issued_response(&app, &pat, &record.meta, now))
        }
        RotateOutcome::NotFound => Err(ApiError::TokenNotFound),
        RotateOutcome::NotActive => {
            audit.record(Outcome::Refused, Some(&id), None);
            Err(ApiError::TokenNotActive)
        }
        RotateOutcome::AlreadyRotated(_) => {
            audit.record(Outcome::Refused, Some(&id), None);
            Err(ApiError::TokenAlreadyRotated)
        }
        RotateOutcome::CapReached => {
            audit.record(Outcome::Refused, Some(&id), None);
            Err(ApiError::TokenLimitReached)
        }
        RotateOutcome::SessionPredatesRevocation => {
            audit.record(Outcome::Denied, Some(&id), None);
            Err(ApiError::SessionPredatesRevocation)
        }
        RotateOutcome::Changed => {
            audit.record(Outcome::Refused, Some(&id), None);
            Err(ApiError::VersionConflict)
        }
    }
}

/// How often an edit is decided again when the token changed under it.
const EDIT_ATTEMPTS: usize = 3;

/// Edits one token. Every change is a narrowing or a relabel:
/// - `name`, `description`: relabel (Cognito sessions only);
/// - `scopes`: a non-empty subset of what the token holds now;
/// - `expiresAt`: later than now and not later than the current expiry.
///
/// Nothing here can widen a token. A PAT may edit only itself, and only
/// narrow it. The write is conditional on the state the decision was made
/// on, so a concurrent change makes it decide again, never apply stale.
#[utoipa::path(patch, path = "/tokens/{id}", tag = "tokens", params(("id" = String, Path)), request_body = PatchTokenBody,
    responses((status = 200, body = TokenView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let mut f = Fields::new(&body, &["name", "description", "scopes", "expiresAt"]);
    let name = if f.present("name") {
        validate_name(&mut f)
    } else {
        None
    };
    let description = validate_description(&mut f);
    let scopes = if f.present("scopes") {
        validate_scopes(&mut f, &app.manifest)
    } else {
        None
    };
    let expires_at = if f.present("expiresAt") {
        match f
            .string("expiresAt")
            .map(|raw| OffsetDateTime::parse(raw, &Rfc3339))
        {
            Some(Ok(at)) => Some(at.unix_timestamp()),
            Some(Err(_)) => {
                f.error("expiresAt", "must be an RFC 3339 timestamp");
                None
            }
            None => None,
        }
    } else {
        None
    };
    if body.is_empty() {
        f.error(
            "name",
            "give at least one of name, description, scopes, expiresAt",
        );
    }
    f.finish()?;
    let id = parse_id(&id)?;
    let audit = Audit::new("token.update", &caller);
    if let Err(e) = confirm_pat_acts_on_itself(&app, &caller, &id).await {
        audit.record(Outcome::Denied, Some(&id), None);
        return Err(e);
    }
    if caller.principal.method == AuthMethod::Pat && (name.is_some() || description.is_some()) {
        // A leaked PAT may make itself weaker, never relabel itself.
        audit.record(Outcome::Denied, Some(&id), None);
        return Err(ApiError::SessionRequired);
    }
    let registry = app.manifest.scopes();
    for _ in 0..EDIT_ATTEMPTS {
        let now = app.now();
        let current = app
            .store
            .get_owned(&caller.principal.sub, &id)
            .await?
            .ok_or(ApiError::TokenNotFound)?;
        if current.rotated_to.is_some() || !current.is_active(now) {
            audit.record(Outcome::Refused, Some(&id), None);
            return Err(ApiError::TokenNotActive);
        }
        let mut errors = Vec::new();
        if let Some(requested) = scopes
            && !requested.is_subset_of(registry.resolve(&current.scopes))
        {
            errors.push(FieldError::new(
                "scopes",
                "can only narrow: every scope must be one the token holds now",
            ));
        }
        if let Some(at) = expires_at {
            if at <= now {
                errors.push(FieldError::new("expiresAt", "must be in the future"));
            } else if at > current.expires_at {
                errors.push(FieldError::new(
                    "expiresAt",
                    format!(
                        "can only shorten: must not be later than the current expiry {}",
                        rfc3339(current.expires_at)
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            audit.record(Outcome::Refused, Some(&id), Some(&current.scopes));
            return Err(ApiError::Validation(errors));
        }
        let edit = TokenEdit {
            name: name.clone(),
            description: description.clone(),
            scopes: scopes.map(|s| registry.names(s)),
            expires_at,
        };
        match app.store.edit(&current, &edit, now).await? {
            EditOutcome::Edited => {
                let mut meta = current;
                if let Some(v) = edit.name {
                    meta.name = v;
                }
                if let Some(v) = edit.description {
                    meta.description = v;
                }
                if let Some(v) = edit.scopes {
                    meta.scopes = v;
                }
                if let Some(v) = edit.expires_at {
                    meta.expires_at = v;
                }
                audit.record(Outcome::Success, Some(&id), Some(&meta.scopes));
                return Ok(no_store(
                    StatusCode::OK,
                    Json(TokenView::new(&meta, now, registry)),
                ));
            }
            EditOutcome::Conflict => continue,
        }
    }
    audit.record(Outcome::Refused, Some(&id), None);
    Err(ApiError::VersionConflict)
}

/// The owner's history of one token, newest first: created, rotated,
/// revoked (and by whom), edited, first use from a new address, expiry
/// warnings. Another user's token is a 404, like a missing one; a PAT may
/// read only its own history (403 session-required for a sibling's).
#[utoipa::path(get, path = "/tokens/{id}/events", tag = "tokens",
    params(("id" = String, Path),
        ("limit" = Option<i32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "opaque, from `nextCursor`")),
    responses((status = 200, body = TokenEventsBody), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (limit, errors) = page_query(&query, &[]);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = parse_id(&id)?;
    if !sees_activity_of(&caller, &id) {
        return Err(ApiError::SessionRequired);
    }
    // Ownership first: the history's partition is reached only through a
    // token the caller owns.
    app.store
        .get_owned(&caller.principal.sub, &id)
        .await?
        .ok_or(ApiError::TokenNotFound)?;
    let start = query.get("cursor").map(|c| Cursor::from_client(c));
    let page = app.store.events(&id, limit, start.as_ref()).await?;
    // A PAT reading its own history (perhaps a thief's) is not told that an
    // administrator is looking at it, nor who: admin reads are left out and
    // an admin revocation does not name the administrator. The owner's
    // session sees everything.
    let pat = caller.principal.method == AuthMethod::Pat;
    let items = page
        .items
        .iter()
        .filter(|e| !(pat && matches!(e.kind, EventKind::AdminViewed { .. })))
        .map(|e| {
            let mut view = TokenEventView::new(e);
            if pat {
                view.admin = None;
            }
            view
        })
        .collect();
    Ok(no_store(
        StatusCode::OK,
        Json(TokenEventsBody {
            items,
            next_cursor: page.next.map(|c| c.as_str().to_owned()),
        }),
    ))
}
