//! The administrators' routes, `/admin/tokens`: list, read, and revoke
//! anyone's tokens, for incident response and offboarding by hand.
//!
//! Who is an administrator is the manifest's decision: a Cognito group that
//! `[sessions.groups]` maps to the built-in `admin:tokens` scope. The
//! authorizer's policy lets only such sessions reach these routes; here the
//! [`AdminCaller`] extractor checks it again (the route's scope, and that
//! the credential is a Cognito session, never a PAT).
//!
//! Every admin action leaves an event naming the administrator in each
//! affected token's history, reads included, and an audit log line. A read
//! answers only once its events are stored: if they cannot be written, the
//! administrator gets a 500 and no data. No answer carries a secret or a
//! hash: the views are the owner's own, plus the owner's id.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::history::{Admin, AdminView, EventKind, Revoker, TokenEvent};
use shared::http::caller::Caller;
use shared::http::problem::{ApiError, FieldError, Problem};
use shared::store::{Cursor, RevokeOutcome};
use shared::{PrincipalKind, Scope, TokenId, TokenMeta, UserId};

use crate::AppState;
use crate::audit::{Audit, Outcome};
use crate::handlers::{
    REVOKE_ALL_BUDGET, TokenEventView, TokenEventsBody, TokenView, answer_issue, collect_page,
    new_token, no_store, page_query, parse_id, status_filter, validate_description,
    validate_expiry, validate_name, validate_rate_tier, validate_scopes_within,
};
use shared::ScopeSet;
use shared::http::body::{Fields, JsonObject};

/// A Cognito session holding `admin:tokens`. Anything else is refused with
/// 403: a PAT with `session-required` (a PAT never carries the scope, so
/// one that claims it is a forged or broken context), a session without the
/// scope with `insufficient-scope`.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// The caller, as for every route.
    pub caller: Caller,
    /// How the history names them.
    pub admin: Admin,
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The route's scope is checked here first: a context without
        // admin:tokens never gets further (and the authorizer's policy never
        // lets one reach this route at all).
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.principal.kind != PrincipalKind::User {
            Audit::new("admin.refused", &caller).record(Outcome::Denied, None, None);
            return Err(ApiError::SessionRequired);
        }
        if !caller.principal.scopes.contains(Scope::ADMIN_TOKENS) {
            Audit::new("admin.refused", &caller).record(Outcome::Denied, None, None);
            return Err(ApiError::InsufficientScope);
        }
        // An administrator offboarded (or whose tokens were all revoked)
        // since this session began acts no more, though the JWT lives on.
        if state
            .store
            .session_predates_revocation(&caller.principal.sub, caller.principal.issued_at)
            .await?
        {
            Audit::new("admin.refused", &caller).record(Outcome::Denied, None, None);
            return Err(ApiError::SessionPredatesRevocation);
        }
        let admin = Admin {
            sub: caller.principal.sub.clone(),
            username: caller.principal.username.clone(),
        };
        Ok(Self { caller, admin })
    }
}

/// A token as an administrator sees it: the owner's view plus the owner.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminTokenView {
    /// The owner: a user's Cognito `sub`, or `service:<name>`.
    owner: String,
    #[serde(flatten)]
    token: TokenView,
}

impl AdminTokenView {
    fn new(app: &AppState, meta: &TokenMeta) -> Self {
        Self {
            owner: meta.owner.to_string(),
            token: TokenView::new(meta, app.now(), app.manifest.scopes()),
        }
    }
}

/// `GET /admin/tokens` response body.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminTokenListBody {
    /// Newest first.
    items: Vec<AdminTokenView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// When a token's history may be dropped: its end of life.
fn end_of_life(meta: &TokenMeta) -> i64 {
    meta.revoked_at
        .map_or(meta.expires_at, |at| at.min(meta.expires_at))
}

/// Stores one `admin_viewed` event per token, before the answer leaves.
async fn record_views(
    app: &AppState,
    admin: &AdminCaller,
    metas: &[TokenMeta],
    view: AdminView,
) -> Result<(), ApiError> {
    let now = app.now();
    let events: Vec<(TokenEvent, i64)> = metas
        .iter()
        .map(|meta| {
            let event = TokenEvent {
                token: meta.id.clone(),
                at: now,
                kind: EventKind::AdminViewed { view },
                admin: Some(admin.admin.clone()),
            };
            (event, end_of_life(meta))
        })
        .collect();
    app.store.record_events(&events).await?;
    Ok(())
}

/// The `owner` query parameter: required, a user id.
fn owner_param(query: &HashMap<String, String>, errors: &mut Vec<FieldError>) -> Option<UserId> {
    match query.get("owner") {
        None => {
            errors.push(FieldError::new(
                "owner",
                "is required: the Cognito sub of the user whose tokens to act on",
            ));
            None
        }
        Some(raw) => UserId::parse(raw).ok().or_else(|| {
            errors.push(FieldError::new("owner", "is not a user id"));
            None
        }),
    }
}

/// `owner` must have held a token here: a username or a mistyped `sub`
/// would otherwise list nothing, or revoke nothing and report success.
async fn known_owner(app: &AppState, owner: &UserId) -> Result<(), ApiError> {
    // The active-set item, else (tokens from before active sets) a token
    // in the listing index.
    if app.store.is_token_owner(owner).await?
        || !app.store.list(owner, 1, None).await?.items.is_empty()
    {
        Ok(())
    } else {
        Err(ApiError::OwnerNotFound)
    }
}

/// One token by id, whoever owns it; a missing or malformed id is a 404.
async fn any_token(app: &AppState, id: &str) -> Result<(TokenId, TokenMeta), ApiError> {
    let id = parse_id(id)?;
    let meta = app
        .store
        .get(&id)
        .await?
        .ok_or(ApiError::TokenNotFound)?
        .meta;
    Ok((id, meta))
}

/// One user's tokens, newest first, filtered by `status`. Each listed token's
/// history records that this administrator saw it.
#[utoipa::path(get, path = "/admin/tokens", tag = "admin",
    params(("owner" = String, Query, description = "the owner whose tokens to list: a user's Cognito `sub`, or `service:<name>`"),
        ("status" = Option<String>, Query, description = "active | expired | revoked | all (default)"),
        ("limit" = Option<i32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "opaque, from `nextCursor`")),
    responses((status = 200, body = AdminTokenListBody), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    admin: AdminCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (limit, mut errors) = page_query(&query, &["owner", "status"]);
    let status = status_filter(&query, &mut errors);
    let owner = owner_param(&query, &mut errors);
    let Some(owner) = owner.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let audit = Audit::new("admin.token.list", &admin.caller).of_owner(owner.as_str());
    if let Err(e) = known_owner(&app, &owner).await {
        audit.record(Outcome::Refused, None, None);
        return Err(e);
    }
    let start = query.get("cursor").map(|c| Cursor::from_client(c));
    let (metas, next) = collect_page(&app, &owner, status, limit, start).await?;
    record_views(&app, &admin, &metas, AdminView::Listing).await?;
    audit.record_count(
        Outcome::Success,
        u32::try_from(metas.len()).unwrap_or(u32::MAX),
    );
    Ok(no_store(
        StatusCode::OK,
        Json(AdminTokenListBody {
            items: metas.iter().map(|m| AdminTokenView::new(&app, m)).collect(),
            next_cursor: next.map(|c| c.as_str().to_owned()),
        }),
    ))
}

/// Any token's metadata, use sites included; the token's history records
/// that this administrator read it.
#[utoipa::path(get, path = "/admin/tokens/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = AdminTokenView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_one(
    State(app): State<AppState>,
    admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, meta) = any_token(&app, &id).await?;
    record_views(
        &app,
        &admin,
        std::slice::from_ref(&meta),
        AdminView::Metadata,
    )
    .await?;
    Audit::new("admin.token.read", &admin.caller)
        .of_owner(meta.owner.as_str())
        .record(Outcome::Success, Some(&id), None);
    Ok(no_store(
        StatusCode::OK,
        Json(AdminTokenView::new(&app, &meta)),
    ))
}

/// Any token's history, newest first, this read included.
#[utoipa::path(get, path = "/admin/tokens/{id}/events", tag = "admin",
    params(("id" = String, Path),
        ("limit" = Option<i32>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "opaque, from `nextCursor`")),
    responses((status = 200, body = TokenEventsBody), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn events(
    State(app): State<AppState>,
    admin: AdminCaller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (limit, errors) = page_query(&query, &[]);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (id, meta) = any_token(&app, &id).await?;
    record_views(
        &app,
        &admin,
        std::slice::from_ref(&meta),
        AdminView::History,
    )
    .await?;
    Audit::new("admin.token.events", &admin.caller)
        .of_owner(meta.owner.as_str())
        .record(Outcome::Success, Some(&id), None);
    let start = query.get("cursor").map(|c| Cursor::from_client(c));
    let page = app.store.events(&id, limit, start.as_ref()).await?;
    Ok(no_store(
        StatusCode::OK,
        Json(TokenEventsBody {
            items: page.items.iter().map(TokenEventView::new).collect(),
            next_cursor: page.next.map(|c| c.as_str().to_owned()),
        }),
    ))
}

/// Revokes any token; its history names the administrator. Idempotent.
#[utoipa::path(delete, path = "/admin/tokens/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked (or already revoked)"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_one(
    State(app): State<AppState>,
    admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, meta) = any_token(&app, &id).await?;
    let audit = Audit::new("admin.token.revoke", &admin.caller).of_owner(meta.owner.as_str());
    match app
        .store
        .revoke(
            &meta.owner,
            &id,
            app.now(),
            Revoker::admin(admin.admin.clone()),
        )
        .await?
    {
        RevokeOutcome::Revoked => audit.record(Outcome::Success, Some(&id), None),
        RevokeOutcome::AlreadyRevoked => audit.record(Outcome::NoChange, Some(&id), None),
        RevokeOutcome::NotFound => {
            audit.record(Outcome::Refused, Some(&id), None);
            return Err(ApiError::TokenNotFound);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Revokes every token of one user, as offboarding does (the same store
/// operation): nothing minted before it survives, and the user's sessions
/// from before it can no longer mint. Each revoked token's history names the
/// administrator. Bounded in time: while `complete` is false, call again.
#[utoipa::path(delete, path = "/admin/tokens", tag = "admin",
    params(("owner" = String, Query, description = "the owner whose tokens to revoke: a user's Cognito `sub`, or `service:<name>`")),
    responses((status = 200, description = "`{\"revoked\": n, \"remaining\": m, \"complete\": bool}`; retry while `complete` is false"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn delete_all(
    State(app): State<AppState>,
    admin: AdminCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut errors: Vec<FieldError> = query
        .keys()
        .filter(|k| k.as_str() != "owner")
        .map(|k| {
            FieldError::new(
                &k.chars().take(64).collect::<String>(),
                "unknown query parameter",
            )
        })
        .collect();
    let owner = owner_param(&query, &mut errors);
    let Some(owner) = owner.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let audit = Audit::new("admin.token.revoke_all", &admin.caller).of_owner(owner.as_str());
    if let Err(e) = known_owner(&app, &owner).await {
        audit.record(Outcome::Refused, None, None);
        return Err(e);
    }
    let outcome = app
        .store
        .revoke_all(
            &owner,
            app.now(),
            Some(std::time::Instant::now() + REVOKE_ALL_BUDGET),
            Revoker::admin(admin.admin.clone()),
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

/// `POST /admin/tokens` request body.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[expect(dead_code, reason = "schema only")]
pub struct ServiceTokenBody {
    /// The service that owns the token (`service:<service>`): 1 to 63
    /// lower-case letters, digits and `-`, starting with a letter or digit.
    #[schema(example = "ci-deploy")]
    service: String,
    /// 1–100 characters after trimming, no control characters.
    name: String,
    /// Non-empty subset of the manifest's `[services] scopes`.
    #[schema(example = json!(["items:read"]))]
    scopes: Vec<String>,
    /// Lifetime in days, 1 to `TOKEN_MAX_LIFETIME_DAYS`. Exactly one of this and `expiresAt`.
    expires_in_days: Option<i64>,
    /// RFC 3339 expiry, 1 day to `TOKEN_MAX_LIFETIME_DAYS` from now.
    expires_at: Option<String>,
    /// Free text, at most 500 characters.
    description: Option<String>,
    /// One of the deployment's rate tiers; absent: the default tier.
    rate_tier: Option<String>,
    /// A public JWK (EC P-256 or Ed25519) the token is bound to (DPoP,
    /// RFC 9449), as for `POST /tokens`; deployments with `dpop` on only.
    #[schema(value_type = Object)]
    dpop_jwk: Option<serde_json::Value>,
}

/// Issues a token to a named service, owned by `service:<name>` rather than
/// by a person, so that nobody's departure revokes it; the secret is shown
/// once. Its scopes come from the manifest's `[services]` (never a built-in
/// one); only administrators issue and revoke service tokens, and the
/// token's history names the administrator who issued it.
#[utoipa::path(post, path = "/admin/tokens", tag = "admin", request_body = ServiceTokenBody,
    responses((status = 201, description = "Issued; the secret is in `token`, shown once", body = crate::handlers::IssuedTokenBody),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn create_service_token(
    State(app): State<AppState>,
    admin: AdminCaller,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let now = app.now();
    let mut f = Fields::new(
        &body,
        &[
            "service",
            "name",
            "scopes",
            "expiresInDays",
            "expiresAt",
            "description",
            "rateTier",
            "dpopJwk",
        ],
    );
    let owner = match f.string("service") {
        None => None,
        Some(name) => UserId::service(name).ok().or_else(|| {
            f.error(
                "service",
                "must be 1 to 63 lower-case letters, digits and -, starting with a letter or digit",
            );
            None
        }),
    };
    let name = validate_name(&mut f);
    let description = validate_description(&mut f).flatten();
    let scopes = service_scopes(&mut f, &app);
    let expires_at = validate_expiry(&mut f, now, app.max_lifetime_days);
    let rate_tier = validate_rate_tier(&mut f, &app.rate_tiers);
    let dpop_jkt = crate::handlers::validate_dpop_jwk(&mut f, app.dpop);
    f.finish()?;
    let (Some(owner), Some(name), Some(scopes), Some(expires_at), Some(rate_tier), Some(dpop_jkt)) =
        (owner, name, scopes, expires_at, rate_tier, dpop_jkt)
    else {
        return Err(ApiError::Internal);
    };
    let owner_name = owner.to_string();
    let audit = Audit::new("admin.token.create", &admin.caller).of_owner(&owner_name);
    let names = app.manifest.scopes().names(scopes);
    let (pat, record) = new_token(&app, owner, name, names, now, expires_at, |meta| {
        meta.description = description;
        meta.rate_tier = rate_tier;
        meta.dpop_jkt = dpop_jkt;
    })
    .await?;
    // No session is checked against a revoke-all here: the outcome is
    // created or the service's cap.
    let outcome = app
        .store
        .create_by_admin(&record, now, admin.admin.clone())
        .await?;
    answer_issue(&app, &audit, &pat, &record, outcome, now)
}

/// The `scopes` of a service token: non-empty, each declared and within the
/// manifest's `[services] scopes` (without `[services]`, no service token
/// can be issued).
fn service_scopes(f: &mut Fields<'_>, app: &AppState) -> Option<ScopeSet> {
    if app.manifest.services().is_none() {
        f.error(
            "scopes",
            "the manifest declares no [services]: service tokens are off",
        );
        return None;
    }
    validate_scopes_within(
        f,
        &app.manifest,
        app.manifest.token_ceiling(PrincipalKind::ServiceToken),
        "is not among the manifest's [services] scopes",
    )
}
