//! The DynamoDB single-table token store.
//!
//! Key design (see the README for the full table):
//!
//! | item        | PK               | SK      | GSI1PK        | GSI1SK                          |
//! |-------------|------------------|---------|---------------|---------------------------------|
//! | token       | `TOKEN#<id>`     | `TOKEN` | `USER#<sub>`  | `TOKEN#<created 12 digits>#<id>` |
//! | active set  | `USER#<sub>`     | `SLOTS` | –             | –                               |
//! | username    | `ALIAS#<name>`   | `USER`  | –             | –                               |
//! | event       | `EVENTS#<id>`    | `<at 12 digits>#<kind>#<nonce>` | – | –                    |
//! | sweep state | `SWEEP#expiry`   | `STATE` | –             | –                               |
//!
//! Token items also carry the expiry index's keys (v3): `GSI2PK` =
//! `EXP#<day>#<shard>` (the Unix day of `expires_at`, and one of
//! [`EXPIRY_SHARDS`] shards so a day's tokens spread over partitions) and
//! `GSI2SK` = `<expires_at 12 digits>#<id>`. "Tokens expiring between A and
//! B" is one query per day and shard, never a scan.
//!
//! The *active set* item holds a map `slots: {token id → expires_at}` of the
//! user's non-revoked tokens. The per-user cap is the condition
//! `size(slots) < :cap` inside the same transaction that writes the token, so
//! racing creates can never exceed it. Entries whose `expires_at` has passed are
//! pruned before each create; the map is self-healing even after DynamoDB's TTL
//! deletes an expired token item. It also holds the owner's revocation
//! `epoch` (see [`TokenStore::revoke_all`]). The username item maps a Cognito
//! username to the `sub`s that issued tokens under it, for offboarding.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use thiserror::Error;

use crate::config::StoreConfig;
use crate::hash::PhcHash;
use crate::history::{EventKind, Revoker, TokenEvent};
use crate::pat::TokenId;
use crate::principal::UserId;
use crate::record::{
    BOUND_SCHEMA_VERSION, OLDEST_READ_SCHEMA_VERSION, RESTRICTED_SCHEMA_VERSION, TokenMeta,
    TokenRecord, UseSite,
};
use crate::scope::ScopeNames;

/// Name of the GSI that lists a user's tokens newest first.
pub const GSI1: &str = "GSI1";
/// Name of the expiry index: live tokens by the day they expire.
pub const GSI2: &str = "GSI2";
/// Shards per expiry day in [`GSI2`].
pub const EXPIRY_SHARDS: u32 = 8;
/// Name of the TTL attribute.
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Errors at the store boundary. Business outcomes (not found, cap reached,
/// already revoked, …) are not errors: each operation returns its own outcome enum.
#[derive(Debug, Error)]
pub enum StoreError {
    /// DynamoDB could not be reached or refused the request.
    #[error("DynamoDB request failed: {0}")]
    Unavailable(String),
    /// An item in the table does not have the shape we write.
    #[error("stored item is malformed: {0}")]
    Corrupt(&'static str),
    /// An item was written by a newer schema version than this code understands.
    #[error("stored item has unsupported schema version {0}")]
    UnsupportedSchema(u32),
    /// The pagination cursor was not produced by us.
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// A write kept losing races; the caller may retry.
    #[error("write conflict")]
    Conflict,
}

/// Maps an SDK error to [`StoreError::Unavailable`], keeping only the error
/// code and message (never request or item contents).
pub(crate) fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // Only the error code and message are kept: never request or item
    // contents. A failure with no service answer (a TLS or connection
    // failure, a timeout) keeps its chain of causes instead, which names it.
    let Some(code) = err.code().map(str::to_owned) else {
        let chain = aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            .to_string()
            .chars()
            .take(300)
            .collect::<String>();
        return StoreError::Unavailable(format!("unknown: {chain}"));
    };
    let message = err
        .message()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    StoreError::Unavailable(format!("{code}: {message}"))
}

/// Result of [`TokenStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The token was stored.
    Created,
    /// The owner already has the maximum number of active tokens.
    CapReached,
    /// The calling session was issued before the owner's last revoke-all
    /// (or offboarding): it must sign in again first.
    SessionPredatesRevocation,
}

/// Result of [`TokenStore::revoke`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// This call revoked the token.
    Revoked,
    /// The token was already revoked; nothing changed.
    AlreadyRevoked,
    /// No such token for this owner (missing or someone else's: indistinguishable).
    NotFound,
}

/// Result of [`TokenStore::rotate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token was retired and the new one stored, atomically.
    Rotated,
    /// No such token for this owner.
    NotFound,
    /// The old token is revoked or expired, or a revoke-all has begun since
    /// its chain started (its epoch is stale).
    NotActive,
    /// The old token was already rotated; its successor is untouched.
    AlreadyRotated(TokenId),
    /// An overlapping rotation needs a slot of its own for the predecessor,
    /// and the owner is at the cap.
    CapReached,
    /// The calling session was issued before the owner's last revoke-all.
    SessionPredatesRevocation,
    /// The old token's scopes or expiry changed since the caller read it (an
    /// edit in between): the successor, derived from that read, was not
    /// stored. Read again and decide again.
    Changed,
}

/// Result of [`TokenStore::revoke_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeAllOutcome {
    /// Tokens this call revoked.
    pub revoked: u32,
    /// Live tokens the call found but did not reach before its deadline.
    /// They can no longer rotate (their epoch is stale); a retry revokes them.
    pub remaining: u32,
    /// The owner's revocation epoch after this call.
    pub epoch: i64,
    /// Whether the once-per-owner search for tokens written before active
    /// sets existed has completed (now or earlier).
    pub swept: bool,
}

impl RevokeAllOutcome {
    /// Whether every live token was found and revoked.
    pub fn complete(&self) -> bool {
        self.remaining == 0 && self.swept
    }
}

/// How many revocations [`TokenStore::revoke_all`] runs at once. Each is one
/// small transaction on a different token item plus the shared active-set
/// item, so a handful in flight is safe and keeps the call short.
pub const REVOKE_ALL_CONCURRENCY: usize = 8;

/// Result of [`TokenStore::touch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchOutcome {
    /// `last_used_at` was written.
    Written,
    /// Skipped: written within the interval (or the token no longer exists).
    Skipped,
}

/// An opaque pagination cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor that continues a listing right after `meta`.
    pub fn after(meta: &TokenMeta) -> Result<Self, StoreError> {
        cursor_at(meta.created_at, meta.id.as_str())
    }

    /// Wraps a cursor string received from a client. Validated when used.
    pub fn from_client(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The string to hand to the client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a scan of the owners continues (opaque).
#[derive(Debug, Clone)]
pub struct ScanPosition(HashMap<String, AttributeValue>);

/// An owner's revocation epoch and last revoke-all.
#[derive(Debug, Clone, Copy)]
struct OwnerState {
    epoch: i64,
    revoked_all_at: Option<i64>,
}

impl OwnerState {
    /// Whether a session issued at `issued_at` began no later than the last
    /// revoke-all (a session issued in the same second counts as older).
    fn predates_revocation(&self, issued_at: Option<i64>) -> bool {
        matches!((issued_at, self.revoked_all_at), (Some(iat), Some(at)) if iat <= at)
    }
}

/// Adds `base` as the condition of a slot update, plus, for a session, that
/// it was issued after the owner's last revoke-all.
fn session_condition(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    base: &str,
    session_issued_at: Option<i64>,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    match session_issued_at {
        None => update.condition_expression(base),
        Some(iat) => update
            .condition_expression(format!(
                "{base} AND (attribute_not_exists(revoked_all_at) OR revoked_all_at < :iat)"
            ))
            .expression_attribute_values(":iat", n(iat)),
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// Tokens, newest first.
    pub items: Vec<TokenMeta>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

/// What a listing's index does not project, read with [`TokenStore::details`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenDetails {
    /// The owner's description.
    pub description: Option<String>,
    /// The last use sites.
    pub recent_uses: Vec<UseSite>,
    /// The IP allow-list (empty: any address).
    pub allowed_cidrs: Vec<ipnet::IpNet>,
    /// The rate tier (`None`: the default).
    pub rate_tier: Option<String>,
    /// The DPoP key's thumbprint of a bound token.
    pub dpop_jkt: Option<crate::dpop::Jkt>,
}

/// One page of a token's history.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// Events, newest first.
    pub items: Vec<TokenEvent>,
    /// Where the next page starts, if there may be one.
    pub next: Option<Cursor>,
}

/// A metadata edit: each `Some` field is changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenEdit {
    /// New name.
    pub name: Option<String>,
    /// New description; `Some(None)` removes it.
    pub description: Option<Option<String>>,
    /// New (narrower) scopes.
    pub scopes: Option<ScopeNames>,
    /// New (earlier) expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

impl TokenEdit {
    /// The fields this edit changes, in a fixed order.
    pub fn changes(&self) -> Vec<crate::history::EditedField> {
        use crate::history::EditedField;
        let mut out = Vec::new();
        if self.name.is_some() {
            out.push(EditedField::Name);
        }
        if self.description.is_some() {
            out.push(EditedField::Description);
        }
        if self.scopes.is_some() {
            out.push(EditedField::Scopes);
        }
        if self.expires_at.is_some() {
            out.push(EditedField::ExpiresAt);
        }
        out
    }
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOutcome {
    /// Applied.
    Edited,
    /// The token changed (or was revoked, rotated or removed) since it was
    /// read: nothing applied. Read again and decide again.
    Conflict,
}

/// The DynamoDB-backed token store.
#[derive(Debug, Clone)]
pub struct TokenStore {
    client: Client,
    cfg: StoreConfig,
}

/// A DynamoDB client from the standard AWS configuration chain, at
/// `endpoint` when given (moto, DynamoDB Local).
pub async fn dynamodb_client(endpoint: Option<&str>) -> Client {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn token_pk(id: &TokenId) -> String {
    format!("TOKEN#{id}")
}

const TOKEN_SK: &str = "TOKEN";
const SLOTS_SK: &str = "SLOTS";

fn user_pk(owner: &UserId) -> String {
    format!("USER#{owner}")
}

fn gsi1_sk(created_at: i64, id: &TokenId) -> String {
    format!("TOKEN#{created_at:012}#{id}")
}

/// The expiry index's keys of a token expiring at `expires_at`.
pub(crate) fn gsi2_keys(expires_at: i64, id: &TokenId) -> (String, String) {
    let shard = id.as_str().bytes().map(u32::from).sum::<u32>() % EXPIRY_SHARDS;
    (
        format!("EXP#{}#{shard}", expires_at.div_euclid(DAY_SECS)),
        format!("{expires_at:012}#{id}"),
    )
}

pub(crate) const DAY_SECS: i64 = 86_400;

fn events_pk(id: &TokenId) -> String {
    format!("EVENTS#{id}")
}

pub(crate) fn token_key(id: &TokenId) -> HashMap<String, AttributeValue> {
    HashMap::from([("PK".into(), s(token_pk(id))), ("SK".into(), s(TOKEN_SK))])
}

/// Longest username kept as an alias (Cognito's own limit).
const MAX_USERNAME_LEN: usize = 128;

/// The alias item's key, `ALIAS#<username>` / `USER`; `None` for an empty or
/// oversized name.
fn alias_key(username: &str) -> Option<HashMap<String, AttributeValue>> {
    if username.is_empty() || username.chars().count() > MAX_USERNAME_LEN {
        return None;
    }
    Some(HashMap::from([
        ("PK".into(), s(format!("ALIAS#{username}"))),
        ("SK".into(), s("USER")),
    ]))
}

fn slots_key(owner: &UserId) -> HashMap<String, AttributeValue> {
    HashMap::from([("PK".into(), s(user_pk(owner))), ("SK".into(), s(SLOTS_SK))])
}

impl TokenStore {
    /// A store over an existing client.
    pub fn new(client: Client, cfg: StoreConfig) -> Self {
        Self { client, cfg }
    }

    /// Builds a client from the standard AWS configuration chain, honouring
    /// `cfg.endpoint` for moto, DynamoDB Local or other endpoints.
    pub async fn from_env_config(cfg: StoreConfig) -> Self {
        let client = dynamodb_client(cfg.endpoint.as_deref()).await;
        Self::new(client, cfg)
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration in use.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Creates the table with its GSI and TTL (local development and tests; the
    /// CDK app creates it on AWS).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|_| StoreError::Corrupt("attribute definition"))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|_| StoreError::Corrupt("key schema"))
        };
        let projection = Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(
                GSI1_PROJECTED.iter().map(|a| (*a).to_owned()).collect(),
            ))
            .build();
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key("GSI1PK", KeyType::Hash)?)
            .key_schema(key("GSI1SK", KeyType::Range)?)
            .projection(projection)
            .build()
            .map_err(|_| StoreError::Corrupt("gsi"))?;
        let expiry_index = GlobalSecondaryIndex::builder()
            .index_name(GSI2)
            .key_schema(key("GSI2PK", KeyType::Hash)?)
            .key_schema(key("GSI2SK", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(
                        GSI2_PROJECTED.iter().map(|a| (*a).to_owned()).collect(),
                    ))
                    .build(),
            )
            .build()
            .map_err(|_| StoreError::Corrupt("gsi"))?;
        self.client
            .create_table()
            .table_name(&self.cfg.table_name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("PK")?)
            .attribute_definitions(attr("SK")?)
            .attribute_definitions(attr("GSI1PK")?)
            .attribute_definitions(attr("GSI1SK")?)
            .attribute_definitions(attr("GSI2PK")?)
            .attribute_definitions(attr("GSI2SK")?)
            .key_schema(key("PK", KeyType::Hash)?)
            .key_schema(key("SK", KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .global_secondary_indexes(expiry_index)
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.cfg.table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(|_| StoreError::Corrupt("ttl spec"))?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Stores a new token if the owner is under the active-token cap.
    ///
    /// The cap check and the token write are one transaction, so concurrent
    /// creates can never exceed the cap. The same transaction requires the
    /// owner's revocation epoch to be the one read before it: a create that
    /// started before a revoke-all cannot commit after it (it retries under
    /// the new epoch instead, which makes it a token created after the
    /// revoke-all). `rec.meta.epoch` is ignored; the current epoch is written.
    pub async fn create(&self, rec: &TokenRecord, now: i64) -> Result<CreateOutcome, StoreError> {
        self.create_checked(rec, now, None, None).await
    }

    /// [`Self::create`] by an administrator (a service token): the history's
    /// `created` event names them.
    pub async fn create_by_admin(
        &self,
        rec: &TokenRecord,
        now: i64,
        admin: crate::history::Admin,
    ) -> Result<CreateOutcome, StoreError> {
        self.create_checked(rec, now, None, Some(admin)).await
    }

    /// [`Self::create`] on behalf of a session issued at `issued_at`: the
    /// same transaction also requires the session to be newer than the
    /// owner's last revoke-all, so a session stolen (or still valid after
    /// offboarding) cannot mint a token that outlives that revocation.
    pub async fn create_for_session(
        &self,
        rec: &TokenRecord,
        now: i64,
        issued_at: i64,
    ) -> Result<CreateOutcome, StoreError> {
        self.create_checked(rec, now, Some(issued_at), None).await
    }

    async fn create_checked(
        &self,
        rec: &TokenRecord,
        now: i64,
        session_issued_at: Option<i64>,
        admin: Option<crate::history::Admin>,
    ) -> Result<CreateOutcome, StoreError> {
        let owner = &rec.meta.owner;
        for _ in 0..3 {
            let epoch = self.prepare_slots(owner, now).await?;
            let mut rec = rec.clone();
            rec.meta.epoch = epoch;
            let slot_update = session_condition(
                Update::builder()
                    .table_name(&self.cfg.table_name)
                    .set_key(Some(slots_key(owner)))
                    .update_expression("SET slots.#id = :exp")
                    .expression_attribute_names("#id", rec.meta.id.as_str())
                    .expression_attribute_values(":exp", n(rec.meta.expires_at))
                    .expression_attribute_values(":cap", n(i64::from(self.cfg.max_active_per_user)))
                    .expression_attribute_values(":epoch", n(epoch)),
                "size(slots) < :cap AND epoch = :epoch",
                session_issued_at,
            )
            .build()
            .map_err(|_| StoreError::Corrupt("update builder"))?;
            let put = self.put_new_token(&rec)?;
            let created = self.put_event(
                &TokenEvent {
                    token: rec.meta.id.clone(),
                    at: now,
                    kind: EventKind::Created,
                    admin: admin.clone(),
                },
                Some(rec.meta.expires_at),
            )?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(slot_update).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().put(created).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(CreateOutcome::Created),
                Err(err) => match failed_conditions(&err) {
                    Some(failed) if failed.first() == Some(&true) => {
                        let state = self.owner_state(owner).await?;
                        if state.epoch != epoch {
                            // A revoke-all began in between: start again under it.
                            continue;
                        }
                        if state.predates_revocation(session_issued_at) {
                            return Ok(CreateOutcome::SessionPredatesRevocation);
                        }
                        return Ok(CreateOutcome::CapReached);
                    }
                    Some(failed) if failed.get(1) == Some(&true) => {
                        return Err(StoreError::Conflict);
                    }
                    _ => return Err(unavailable(err)),
                },
            }
        }
        Err(StoreError::Conflict)
    }

    /// Whether a session of `owner` issued at `issued_at` began at or before
    /// the owner's last revoke-all (an offboarding, or an administrator's
    /// revoke-all): such a session may no longer act as an administrator.
    pub async fn session_predates_revocation(
        &self,
        owner: &UserId,
        issued_at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .owner_state(owner)
            .await?
            .predates_revocation(Some(issued_at)))
    }

    /// Whether `owner` has ever held a token here (has an active-set item).
    pub async fn is_token_owner(&self, owner: &UserId) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .consistent_read(true)
            .projection_expression("PK")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item().is_some())
    }

    /// The owner's revocation epoch (0 if the owner has no active-set item),
    /// read strongly consistently.
    pub async fn current_epoch(&self, owner: &UserId) -> Result<i64, StoreError> {
        Ok(self.owner_state(owner).await?.epoch)
    }

    /// The owner's epoch and last revoke-all, read strongly consistently.
    async fn owner_state(&self, owner: &UserId) -> Result<OwnerState, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .consistent_read(true)
            .projection_expression("epoch, revoked_all_at")
            .send()
            .await
            .map_err(unavailable)?;
        let number = |key: &str| {
            out.item()
                .and_then(|i| i.get(key))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        Ok(OwnerState {
            epoch: number("epoch").unwrap_or(0),
            revoked_all_at: number("revoked_all_at"),
        })
    }

    /// Makes sure the owner's active-set item exists, carries an epoch and
    /// holds no expired entries. Returns the owner's current epoch.
    async fn prepare_slots(&self, owner: &UserId, now: i64) -> Result<i64, StoreError> {
        let current = self
            .client
            .get_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let item = current.item();
        let slots = item
            .and_then(|item| item.get("slots"))
            .and_then(|v| v.as_m().ok());
        let epoch = item
            .and_then(|item| item.get("epoch"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let (Some(slots), Some(epoch)) = (slots, epoch) else {
            // Idempotent upsert: racing first creates all succeed and leave
            // `{}` and epoch 0 (items written before epochs existed get 0 too).
            let out = self
                .client
                .update_item()
                .table_name(&self.cfg.table_name)
                .set_key(Some(slots_key(owner)))
                .update_expression(
                    "SET slots = if_not_exists(slots, :empty), epoch = if_not_exists(epoch, :zero)",
                )
                .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
                .expression_attribute_values(":zero", n(0))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
                .send()
                .await
                .map_err(unavailable)?;
            // UPDATED_NEW may omit an attribute the update left unchanged
            // (a racing first create already wrote it): read it then.
            return match out
                .attributes()
                .and_then(|a| a.get("epoch"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
            {
                Some(epoch) => Ok(epoch),
                None => self.current_epoch(owner).await,
            };
        };
        let expired: Vec<&String> = slots
            .iter()
            .filter(|(_, exp)| {
                exp.as_n()
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_none_or(|exp| exp <= now)
            })
            .map(|(id, _)| id)
            .take(50)
            .collect();
        if expired.is_empty() {
            return Ok(epoch);
        }
        let mut names = HashMap::new();
        let mut paths = Vec::with_capacity(expired.len());
        for (i, id) in expired.iter().enumerate() {
            names.insert(format!("#e{i}"), (*id).clone());
            paths.push(format!("slots.#e{i}"));
        }
        // Removing an expired entry is safe whoever else is writing: it can only
        // ever free a slot that no longer protects a usable token.
        self.client
            .update_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .update_expression(format!("REMOVE {}", paths.join(", ")))
            .set_expression_attribute_names(Some(names))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(epoch)
    }

    /// Remembers that `username` (a Cognito username, as the access token's
    /// `username` claim carries it) belongs to `owner`. Idempotent.
    ///
    /// Offboarding events may name a user only by username, and after a
    /// delete Cognito can no longer map that name to a `sub`. Every `sub`
    /// that ever issued a token under the name is kept (a username can be
    /// reused after a delete), so offboarding can reach all of them.
    pub async fn remember_username(
        &self,
        username: &str,
        owner: &UserId,
    ) -> Result<(), StoreError> {
        let Some(key) = alias_key(username) else {
            return Ok(());
        };
        self.client
            .update_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(key))
            .update_expression("ADD subs :sub")
            .expression_attribute_values(
                ":sub",
                AttributeValue::Ss(vec![owner.as_str().to_owned()]),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The DPoP replay store: records that the proof with `key` (see
    /// [`crate::dpop::CheckedProof::replay_key`]) was used, and answers
    /// whether this was its first use. One conditional put per proof, so the
    /// answer holds across every instance; the item carries the table's TTL
    /// (`remember_until`, when the proof's `iat` leaves the window) and is
    /// deleted by DynamoDB some time after. Any failure is an error: the
    /// caller fails closed. The request is never retried (see below).
    pub async fn first_use_of_proof(
        &self,
        key: &[u8; 32],
        remember_until: i64,
    ) -> Result<bool, StoreError> {
        let outcome = self
            .client
            .put_item()
            .table_name(&self.cfg.table_name)
            .item("PK", s(format!("DPOP#{}", URL_SAFE_NO_PAD.encode(key))))
            .item("SK", s("DPOP"))
            .item(TTL_ATTRIBUTE, n(remember_until))
            .condition_expression("attribute_not_exists(PK)")
            // Never retried: a first attempt that wrote but whose answer
            // was lost would make the retry fail its condition, and the
            // proof's genuine first use would be refused as a replay. A
            // failed attempt is an error (a 500); the client retries with a
            // new proof.
            .customize()
            .config_override(
                aws_sdk_dynamodb::config::Builder::default()
                    .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Every owner that issued a token under exactly `username`. No case
    /// folding: the user pool is case-sensitive (CDK's default), so "Alice"
    /// and "alice" are two users, and offboarding one must not touch the other.
    pub async fn owners_of_username(&self, username: &str) -> Result<Vec<UserId>, StoreError> {
        let Some(key) = alias_key(username) else {
            return Ok(Vec::new());
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let mut owners: Vec<UserId> = out
            .item()
            .and_then(|i| i.get("subs"))
            .and_then(|v| v.as_ss().ok())
            .map(|subs| subs.iter().filter_map(|s| UserId::parse(s).ok()).collect())
            .unwrap_or_default();
        owners.sort();
        Ok(owners)
    }

    /// One page of the owners that hold at least one live token at `now`
    /// (an active-set entry that has not expired), for offboarding's
    /// reconciliation sweep. A `Scan` that reads only the active-set items'
    /// `PK`, `SK` and `slots`; pass the returned position to continue.
    pub async fn owners_with_live_tokens(
        &self,
        now: i64,
        from: Option<ScanPosition>,
    ) -> Result<(Vec<UserId>, Option<ScanPosition>), StoreError> {
        let out = self
            .client
            .scan()
            .table_name(&self.cfg.table_name)
            .filter_expression("SK = :slots")
            .projection_expression("PK, SK, slots")
            .expression_attribute_values(":slots", s(SLOTS_SK))
            .set_exclusive_start_key(from.map(|p| p.0))
            .send()
            .await
            .map_err(unavailable)?;
        let owners = out
            .items()
            .iter()
            .filter(|item| {
                item.get("slots")
                    .and_then(|v| v.as_m().ok())
                    .is_some_and(|slots| {
                        slots.values().any(|exp| {
                            exp.as_n()
                                .ok()
                                .and_then(|v| v.parse::<i64>().ok())
                                .is_some_and(|e| e > now)
                        })
                    })
            })
            .filter_map(|item| {
                let pk = item.get("PK")?.as_s().ok()?;
                UserId::parse(pk.strip_prefix("USER#")?).ok()
            })
            .collect();
        Ok((owners, out.last_evaluated_key().cloned().map(ScanPosition)))
    }

    /// Reads a token by id with a strongly consistent read (the authorizer's lookup).
    pub async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(token_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(record_from_item).transpose()
    }

    /// Reads a token only if `owner` owns it. Someone else's token is `None`,
    /// exactly like a missing one.
    pub async fn get_owned(
        &self,
        owner: &UserId,
        id: &TokenId,
    ) -> Result<Option<TokenMeta>, StoreError> {
        Ok(self
            .get(id)
            .await?
            .map(|r| r.meta)
            .filter(|m| &m.owner == owner))
    }

    /// Lists an owner's tokens, newest first.
    pub async fn list(
        &self,
        owner: &UserId,
        limit: i32,
        cursor: Option<&Cursor>,
    ) -> Result<Page, StoreError> {
        let start = cursor.map(|c| decode_cursor(owner, c)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.cfg.table_name)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(":pk", s(user_pk(owner)))
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let items = out
            .items()
            .iter()
            .map(meta_from_index_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key() {
            Some(lek) => Some(encode_cursor(lek)?),
            None => None,
        };
        Ok(Page { items, next })
    }

    /// Revokes a token, and records who did in its history (same
    /// transaction). Idempotent: a second call returns
    /// [`RevokeOutcome::AlreadyRevoked`] and changes nothing.
    pub async fn revoke(
        &self,
        owner: &UserId,
        id: &TokenId,
        now: i64,
        by: impl Into<Revoker>,
    ) -> Result<RevokeOutcome, StoreError> {
        self.revoke_with(owner, id, now, true, None, &by.into())
            .await
    }

    /// [`Self::revoke`]; `ensure_slots` prepares the active-set item first
    /// (needed for tokens written before it existed; revoke-all has just
    /// written it, so it skips the extra read). With `below_epoch`, a token
    /// whose chain began at or after that epoch is left alone (reported as
    /// not found): it was created after the revoke-all that asks.
    ///
    /// Revoke-all (`below_epoch` set) writes only `revoked_at` and `ttl` on
    /// the token: the owner was just checked by the strongly consistent read
    /// and never changes, and offboarding's IAM may write nothing else there.
    async fn revoke_with(
        &self,
        owner: &UserId,
        id: &TokenId,
        now: i64,
        ensure_slots: bool,
        below_epoch: Option<i64>,
        by: &Revoker,
    ) -> Result<RevokeOutcome, StoreError> {
        for attempt in 0..3 {
            let Some(meta) = self.get_owned(owner, id).await? else {
                return Ok(RevokeOutcome::NotFound);
            };
            if meta.revoked_at.is_some() {
                return Ok(RevokeOutcome::AlreadyRevoked);
            }
            if below_epoch.is_some_and(|e| meta.epoch >= e) {
                return Ok(RevokeOutcome::NotFound);
            }
            if attempt == 0 && ensure_slots {
                // Tokens written before the active set existed (or a lost set
                // item) must still be revocable: the slot removal below needs
                // the map to exist.
                self.prepare_slots(owner, now).await?;
            }
            let revoke = Update::builder()
                .table_name(&self.cfg.table_name)
                .set_key(Some(token_key(id)))
                .update_expression("SET revoked_at = :now, #ttl = :ttl")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":ttl", n(now + self.cfg.retention_secs));
            let revoke = if below_epoch.is_some() {
                revoke.condition_expression(
                    "attribute_exists(PK) AND attribute_not_exists(revoked_at)",
                )
            } else {
                revoke
                    .condition_expression("#owner = :owner AND attribute_not_exists(revoked_at)")
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(":owner", s(owner.as_str()))
            }
            .build()
            .map_err(|_| StoreError::Corrupt("update builder"))?;
            let release = self.release_slot(owner, id)?;
            let event = self.put_event(
                &TokenEvent {
                    token: id.clone(),
                    at: now,
                    kind: EventKind::Revoked { by: by.by },
                    admin: by.admin.clone(),
                },
                Some(now),
            )?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(revoke).build())
                .transact_items(TransactWriteItem::builder().update(release).build())
                .transact_items(TransactWriteItem::builder().put(event).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(RevokeOutcome::Revoked),
                // Lost a race: re-read and classify.
                Err(err) if failed_conditions(&err).is_some() => continue,
                Err(err) => return Err(unavailable(err)),
            }
        }
        Err(StoreError::Conflict)
    }

    fn release_slot(&self, owner: &UserId, id: &TokenId) -> Result<Update, StoreError> {
        Update::builder()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .update_expression("REMOVE slots.#id")
            .expression_attribute_names("#id", id.as_str())
            .build()
            .map_err(|_| StoreError::Corrupt("update builder"))
    }

    /// Rotates `old_id` into `new`, atomically: the old token is retired and the
    /// new one stored in one transaction, or nothing happens.
    ///
    /// With `overlap_secs == 0` the old token is revoked now and its slot
    /// passes to the successor. Otherwise it stays valid until
    /// `min(expires_at, now + overlap_secs)` and keeps its own slot until then,
    /// so the overlap counts against the cap like any live token. A token can
    /// be rotated only once, so a retried or concurrent rotation never disturbs
    /// the successor that won. The successor inherits the chain's epoch, and
    /// the transaction requires it to still be the owner's epoch: once a
    /// revoke-all has begun, no token from before it can rotate.
    ///
    /// The successor's expiry is the caller's decision (`new.meta.expires_at`);
    /// `new.meta.epoch` is ignored.
    pub async fn rotate(
        &self,
        owner: &UserId,
        old_id: &TokenId,
        new: &TokenRecord,
        overlap_secs: i64,
        now: i64,
    ) -> Result<RotateOutcome, StoreError> {
        self.rotate_checked(owner, old_id, None, new, overlap_secs, now, None)
            .await
    }

    /// [`Self::rotate`] of the token as the caller read it (`seen`): the
    /// successor was derived from `seen`'s scopes and expiry, so it is stored
    /// only if the old token still has exactly those
    /// ([`RotateOutcome::Changed`] otherwise). An edit that narrowed or
    /// shortened the token in between can never be undone by the rotation.
    /// With `session_issued_at`, as [`Self::rotate_for_session`].
    pub async fn rotate_as_read(
        &self,
        seen: &TokenMeta,
        new: &TokenRecord,
        overlap_secs: i64,
        now: i64,
        session_issued_at: Option<i64>,
    ) -> Result<RotateOutcome, StoreError> {
        self.rotate_checked(
            &seen.owner,
            &seen.id,
            Some(seen),
            new,
            overlap_secs,
            now,
            session_issued_at,
        )
        .await
    }

    /// [`Self::rotate`] on behalf of a session issued at `issued_at`, which
    /// must be newer than the owner's last revoke-all (see
    /// [`Self::create_for_session`]).
    pub async fn rotate_for_session(
        &self,
        owner: &UserId,
        old_id: &TokenId,
        new: &TokenRecord,
        overlap_secs: i64,
        now: i64,
        issued_at: i64,
    ) -> Result<RotateOutcome, StoreError> {
        self.rotate_checked(owner, old_id, None, new, overlap_secs, now, Some(issued_at))
            .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one private implementation behind the three public rotations"
    )]
    async fn rotate_checked(
        &self,
        owner: &UserId,
        old_id: &TokenId,
        seen: Option<&TokenMeta>,
        new: &TokenRecord,
        overlap_secs: i64,
        now: i64,
        session_issued_at: Option<i64>,
    ) -> Result<RotateOutcome, StoreError> {
        self.prepare_slots(owner, now).await?;
        for _ in 0..3 {
            let Some(old) = self.get_owned(owner, old_id).await? else {
                return Ok(RotateOutcome::NotFound);
            };
            if let Some(successor) = old.rotated_to.clone() {
                return Ok(RotateOutcome::AlreadyRotated(successor));
            }
            if !old.is_active(now) {
                return Ok(RotateOutcome::NotActive);
            }
            if seen
                .is_some_and(|seen| seen.scopes != old.scopes || seen.expires_at != old.expires_at)
            {
                return Ok(RotateOutcome::Changed);
            }
            let mut new = new.clone();
            new.meta.epoch = old.epoch;
            let retire = Update::builder()
                .table_name(&self.cfg.table_name)
                .set_key(Some(token_key(old_id)))
                // Scopes too: an edit landing between the read above and
                // this write fails it, and the re-read reports the change.
                .condition_expression(
                    "#owner = :owner AND attribute_not_exists(revoked_at) \
                     AND attribute_not_exists(rotated_to) AND expires_at = :seen_exp \
                     AND scopes = :seen_scopes",
                )
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":owner", s(owner.as_str()))
                .expression_attribute_values(":seen_exp", n(old.expires_at))
                .expression_attribute_values(":seen_scopes", s(old.scopes.to_space_separated()))
                .expression_attribute_values(":new", s(new.meta.id.as_str()));
            let move_slot = Update::builder()
                .table_name(&self.cfg.table_name)
                .set_key(Some(slots_key(owner)))
                .expression_attribute_names("#old", old_id.as_str())
                .expression_attribute_names("#new", new.meta.id.as_str())
                .expression_attribute_values(":exp", n(new.meta.expires_at))
                .expression_attribute_values(":epoch", n(old.epoch));
            let (retire, move_slot) = if overlap_secs <= 0 {
                (
                    retire
                        .update_expression("SET rotated_to = :new, revoked_at = :now, #ttl = :ttl")
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(":ttl", n(now + self.cfg.retention_secs)),
                    session_condition(
                        move_slot.update_expression("REMOVE slots.#old SET slots.#new = :exp"),
                        "attribute_exists(slots) AND epoch = :epoch",
                        session_issued_at,
                    ),
                )
            } else {
                let grace_end = old.expires_at.min(now.saturating_add(overlap_secs));
                let (gsi2pk, gsi2sk) = gsi2_keys(grace_end, old_id);
                (
                    retire
                        .update_expression(
                            "SET rotated_to = :new, expires_at = :grace, #ttl = :ttl, \
                             GSI2PK = :g2pk, GSI2SK = :g2sk",
                        )
                        .expression_attribute_values(":grace", n(grace_end))
                        .expression_attribute_values(":g2pk", s(gsi2pk))
                        .expression_attribute_values(":g2sk", s(gsi2sk))
                        .expression_attribute_values(
                            ":ttl",
                            n(grace_end + self.cfg.retention_secs),
                        ),
                    // The predecessor keeps its slot (now ending at the grace
                    // end) and the successor takes a new one.
                    session_condition(
                        move_slot.update_expression("SET slots.#old = :grace, slots.#new = :exp"),
                        "attribute_exists(slots) AND epoch = :epoch AND size(slots) < :cap",
                        session_issued_at,
                    )
                    .expression_attribute_values(":grace", n(grace_end))
                    .expression_attribute_values(
                        ":cap",
                        n(i64::from(self.cfg.max_active_per_user)),
                    ),
                )
            };
            let retire = retire
                .build()
                .map_err(|_| StoreError::Corrupt("update builder"))?;
            let move_slot = move_slot
                .build()
                .map_err(|_| StoreError::Corrupt("update builder"))?;
            let put = self.put_new_token(&new)?;
            let retired = self.put_event(
                &TokenEvent {
                    token: old_id.clone(),
                    at: now,
                    kind: EventKind::Rotated {
                        from: None,
                        to: Some(new.meta.id.clone()),
                    },
                    admin: None,
                },
                Some(if overlap_secs <= 0 {
                    now
                } else {
                    old.expires_at.min(now.saturating_add(overlap_secs))
                }),
            )?;
            let successor = self.put_event(
                &TokenEvent {
                    token: new.meta.id.clone(),
                    at: now,
                    kind: EventKind::Rotated {
                        from: Some(old_id.clone()),
                        to: None,
                    },
                    admin: None,
                },
                Some(new.meta.expires_at),
            )?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(retire).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(move_slot).build())
                .transact_items(TransactWriteItem::builder().put(retired).build())
                .transact_items(TransactWriteItem::builder().put(successor).build())
                .send()
                .await;
            match result {
                Ok(_) => return Ok(RotateOutcome::Rotated),
                Err(err) => match failed_conditions(&err) {
                    Some(failed) if failed.get(1) == Some(&true) => {
                        return Err(StoreError::Conflict);
                    }
                    Some(failed) if failed.get(2) == Some(&true) => {
                        let state = self.owner_state(owner).await?;
                        if state.epoch != old.epoch {
                            return Ok(RotateOutcome::NotActive);
                        }
                        if state.predates_revocation(session_issued_at) {
                            return Ok(RotateOutcome::SessionPredatesRevocation);
                        }
                        if overlap_secs > 0 {
                            return Ok(RotateOutcome::CapReached);
                        }
                        continue;
                    }
                    Some(_) => continue,
                    None => return Err(unavailable(err)),
                },
            }
        }
        Err(StoreError::Conflict)
    }

    /// Replaces a token's stored hash `old` with `new` (the authorizer's
    /// rehash after a successful verification under stronger parameters).
    /// Conditional on the stored hash still being `old`, so it never
    /// overwrites another writer; returns `false` when it was not.
    pub async fn replace_hash(
        &self,
        id: &TokenId,
        old: &PhcHash,
        new: &PhcHash,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(token_key(id)))
            .update_expression("SET #hash = :new")
            .condition_expression("#hash = :old")
            .expression_attribute_names("#hash", "hash")
            .expression_attribute_values(":new", s(new.expose()))
            .expression_attribute_values(":old", s(old.expose()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Records a use of the token, at most once per configured interval:
    /// `last_used_at`, and the token's use sites replaced by `sites` (the
    /// caller's merge of what it last read with what it saw since, see
    /// [`UseSite::merge`]). Addresses in `new_ips` (not among the sites the
    /// caller last read) each get a `new_ip` history event, in the same
    /// request (a transaction instead of a plain update): one request either
    /// way, and a skipped write costs no extra read. `token_expires_at` caps
    /// how long those events are kept (never past the token item).
    pub async fn touch(
        &self,
        id: &TokenId,
        now: i64,
        sites: &[UseSite],
        new_ips: &[UseSite],
        token_expires_at: Option<i64>,
    ) -> Result<TouchOutcome, StoreError> {
        let condition = "attribute_exists(PK) AND (attribute_not_exists(last_used_at) OR last_used_at <= :threshold)";
        let expression = if sites.is_empty() {
            "SET last_used_at = :now"
        } else {
            "SET last_used_at = :now, recent_uses = :sites"
        };
        let mut values = HashMap::from([
            (":now".to_owned(), n(now)),
            (
                ":threshold".to_owned(),
                n(now - self.cfg.touch_interval_secs),
            ),
        ]);
        if !sites.is_empty() {
            values.insert(":sites".to_owned(), sites_to_attr(sites));
        }
        if new_ips.is_empty() {
            let result = self
                .client
                .update_item()
                .table_name(&self.cfg.table_name)
                .set_key(Some(token_key(id)))
                .update_expression(expression)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(TouchOutcome::Written),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(TouchOutcome::Skipped)
                }
                Err(err) => Err(unavailable(err)),
            };
        }
        let update = Update::builder()
            .table_name(&self.cfg.table_name)
            .set_key(Some(token_key(id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|_| StoreError::Corrupt("update builder"))?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build());
        for site in new_ips.iter().take(crate::record::MAX_USE_SITES) {
            let event = self.put_event(
                &TokenEvent {
                    token: id.clone(),
                    at: site.at,
                    kind: EventKind::NewIp {
                        ip: site.ip.clone(),
                        user_agent: site.user_agent.clone(),
                    },
                    admin: None,
                },
                token_expires_at,
            )?;
            request = request.transact_items(TransactWriteItem::builder().put(event).build());
        }
        match request.send().await {
            Ok(_) => Ok(TouchOutcome::Written),
            Err(err) if failed_conditions(&err).is_some() => Ok(TouchOutcome::Skipped),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// Edits a token's metadata, conditional on the token still being the
    /// one `seen` describes (same scopes and expiry, unrevoked, not rotated):
    /// an edit decided against a state that has since changed is never
    /// applied ([`EditOutcome::Conflict`]). Records an `updated` event in the
    /// same transaction. Whether the edit only narrows is the caller's rule,
    /// checked against `seen`; this condition makes that check hold at commit.
    pub async fn edit(
        &self,
        seen: &TokenMeta,
        edit: &TokenEdit,
        now: i64,
    ) -> Result<EditOutcome, StoreError> {
        let changes = edit.changes();
        if changes.is_empty() {
            return Ok(EditOutcome::Edited);
        }
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut names = HashMap::from([("#owner".to_owned(), "owner".to_owned())]);
        let mut values = HashMap::from([
            (":owner".to_owned(), s(seen.owner.as_str())),
            (":seen_exp".to_owned(), n(seen.expires_at)),
            (
                ":seen_scopes".to_owned(),
                s(seen.scopes.to_space_separated()),
            ),
        ]);
        if let Some(name) = &edit.name {
            sets.push("#name = :name");
            names.insert("#name".to_owned(), "name".to_owned());
            values.insert(":name".to_owned(), s(name.clone()));
        }
        match &edit.description {
            Some(Some(text)) => {
                sets.push("description = :description");
                values.insert(":description".to_owned(), s(text.clone()));
            }
            Some(None) => removes.push("description"),
            None => {}
        }
        if let Some(scopes) = &edit.scopes {
            sets.push("scopes = :scopes, scope_set = :scope_set");
            values.insert(":scopes".to_owned(), s(scopes.to_space_separated()));
            values.insert(
                ":scope_set".to_owned(),
                AttributeValue::Ss(scopes.iter().map(str::to_owned).collect()),
            );
        }
        if let Some(expires_at) = edit.expires_at {
            let (gsi2pk, gsi2sk) = gsi2_keys(expires_at, &seen.id);
            sets.push("expires_at = :exp, #ttl = :ttl, GSI2PK = :g2pk, GSI2SK = :g2sk");
            names.insert("#ttl".to_owned(), TTL_ATTRIBUTE.to_owned());
            values.insert(":exp".to_owned(), n(expires_at));
            values.insert(":ttl".to_owned(), n(expires_at + self.cfg.retention_secs));
            values.insert(":g2pk".to_owned(), s(gsi2pk));
            values.insert(":g2sk".to_owned(), s(gsi2sk));
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str("SET ");
            expression.push_str(&sets.join(", "));
        }
        if !removes.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&removes.join(", "));
        }
        let update = Update::builder()
            .table_name(&self.cfg.table_name)
            .set_key(Some(token_key(&seen.id)))
            .update_expression(expression.trim())
            .condition_expression(
                "#owner = :owner AND expires_at = :seen_exp AND scopes = :seen_scopes \
                 AND attribute_not_exists(revoked_at) AND attribute_not_exists(rotated_to)",
            )
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|_| StoreError::Corrupt("update builder"))?;
        let event = self.put_event(
            &TokenEvent {
                token: seen.id.clone(),
                at: now,
                kind: EventKind::Updated { changes },
                admin: None,
            },
            Some(edit.expires_at.unwrap_or(seen.expires_at)),
        )?;
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(event).build());
        if let Some(expires_at) = edit.expires_at {
            // The active set's entry ends with the token, so a shortened
            // token stops counting against the cap when it now expires. The
            // token's own condition above keeps this atomic with its state.
            self.prepare_slots(&seen.owner, now).await?;
            let slot = Update::builder()
                .table_name(&self.cfg.table_name)
                .set_key(Some(slots_key(&seen.owner)))
                .update_expression("SET slots.#id = :exp")
                .expression_attribute_names("#id", seen.id.as_str())
                .expression_attribute_values(":exp", n(expires_at))
                .build()
                .map_err(|_| StoreError::Corrupt("update builder"))?;
            request = request.transact_items(TransactWriteItem::builder().update(slot).build());
        }
        let result = request.send().await;
        match result {
            Ok(_) => Ok(EditOutcome::Edited),
            Err(err) if failed_conditions(&err).is_some() => Ok(EditOutcome::Conflict),
            Err(err) => Err(unavailable(err)),
        }
    }

    /// The description and use sites of `ids` (at most [`MAX_PAGE_SIZE`]),
    /// which the listing index does not project: one `BatchGetItem` that
    /// reads only those attributes (never a hash). Ids not found are absent.
    pub async fn details(
        &self,
        ids: &[TokenId],
    ) -> Result<HashMap<TokenId, TokenDetails>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let keys: Vec<_> = ids
            .iter()
            .take(usize::try_from(MAX_PAGE_SIZE).unwrap_or(100))
            .map(token_key)
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression(DETAILS_PROJECTED.join(", "))
                .consistent_read(true)
                .build()
                .map_err(|_| StoreError::Corrupt("batch keys"))?,
        );
        // Unprocessed keys are retried a few times with a short backoff.
        for attempt in 0..4u64 {
            let Some(batch) = request.take() else { break };
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 * attempt)).await;
            }
            let reply = self
                .client
                .batch_get_item()
                .request_items(&self.cfg.table_name, batch)
                .send()
                .await
                .map_err(unavailable)?;
            for item in reply
                .responses()
                .and_then(|r| r.get(&self.cfg.table_name))
                .into_iter()
                .flatten()
            {
                let id = get_s(item, "PK")?
                    .strip_prefix("TOKEN#")
                    .and_then(|id| TokenId::parse(id).ok())
                    .ok_or(StoreError::Corrupt("PK"))?;
                let description = item.get("description").and_then(|v| v.as_s().ok()).cloned();
                let recent_uses = item
                    .get("recent_uses")
                    .map(sites_from_attr)
                    .unwrap_or_default();
                let allowed_cidrs = match item.get("cidrs") {
                    None => Vec::new(),
                    Some(v) => cidrs_from_attr(v)?,
                };
                let rate_tier = item.get("tier").and_then(|v| v.as_s().ok()).cloned();
                let version =
                    u32::try_from(get_n(item, "v")?).map_err(|_| StoreError::Corrupt("v"))?;
                let dpop_jkt = jkt_from_item(item, version)?;
                out.insert(
                    id,
                    TokenDetails {
                        description,
                        recent_uses,
                        allowed_cidrs,
                        rate_tier,
                        dpop_jkt,
                    },
                );
            }
            request = reply
                .unprocessed_keys()
                .and_then(|u| u.get(&self.cfg.table_name))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
        if request.is_some() {
            return Err(StoreError::Unavailable(
                "BatchGetItem left keys unprocessed".into(),
            ));
        }
        Ok(out)
    }

    /// The transaction item that records `event` in the token's history,
    /// expiring after the configured event retention.
    pub(crate) fn put_event(
        &self,
        event: &TokenEvent,
        token_end: Option<i64>,
    ) -> Result<Put, StoreError> {
        // Never kept past the token item itself (its end of life plus
        // TOKEN_RETENTION_DAYS): a history is read only through its token,
        // and what it holds (addresses among it) should not outlive it.
        let mut ttl = event.at.saturating_add(self.cfg.event_retention_secs);
        if let Some(end) = token_end {
            ttl = ttl.min(end.saturating_add(self.cfg.retention_secs));
        }
        let nonce = crate::pat::os_random::<6>().map_err(|_| StoreError::Corrupt("randomness"))?;
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let body = serde_json::to_string(&event.kind).map_err(|_| StoreError::Corrupt("event"))?;
        let mut item = HashMap::from([
            ("PK".to_owned(), s(events_pk(&event.token))),
            (
                "SK".to_owned(),
                s(format!(
                    "{:012}#{:020}#{}#{nonce}",
                    event.at,
                    event_sequence(),
                    event.kind.name()
                )),
            ),
            ("event".to_owned(), s(body)),
            ("at".to_owned(), n(event.at)),
            (TTL_ATTRIBUTE.to_owned(), n(ttl)),
        ]);
        if let Some(admin) = &event.admin {
            let admin = serde_json::to_string(admin).map_err(|_| StoreError::Corrupt("event"))?;
            item.insert("admin".to_owned(), s(admin));
        }
        Put::builder()
            .table_name(&self.cfg.table_name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|_| StoreError::Corrupt("put builder"))
    }

    /// Writes history events that accompany no change (an administrator's
    /// reads), all or none, in one transaction: the caller answers only once
    /// they are stored. Each pairs with its token's end of life (expiry or
    /// revocation), which caps its retention. At most [`MAX_PAGE_SIZE`].
    pub async fn record_events(&self, events: &[(TokenEvent, i64)]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        if events.len() > usize::try_from(MAX_PAGE_SIZE).unwrap_or(0) {
            return Err(StoreError::Corrupt("too many events for one transaction"));
        }
        let mut request = self.client.transact_write_items();
        for (event, end) in events {
            let put = self.put_event(event, Some(*end))?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }

    /// One page of a token's history, newest first. The caller must have
    /// checked that the token is the requester's: the partition comes from
    /// `id`, never from the cursor.
    pub async fn events(
        &self,
        id: &TokenId,
        limit: i32,
        cursor: Option<&Cursor>,
    ) -> Result<EventPage, StoreError> {
        let start = match cursor {
            None => None,
            Some(c) => {
                let sk = decode_event_cursor(c)?;
                Some(HashMap::from([
                    ("PK".to_owned(), s(events_pk(id))),
                    ("SK".to_owned(), s(sk)),
                ]))
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.cfg.table_name)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(events_pk(id)))
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let items = out
            .items()
            .iter()
            .map(|item| {
                let kind: EventKind = serde_json::from_str(get_s(item, "event")?)
                    .map_err(|_| StoreError::Corrupt("event"))?;
                let admin = match item.get("admin").and_then(|v| v.as_s().ok()) {
                    None => None,
                    Some(json) => {
                        Some(serde_json::from_str(json).map_err(|_| StoreError::Corrupt("event"))?)
                    }
                };
                Ok(TokenEvent {
                    token: id.clone(),
                    at: get_n(item, "at")?,
                    kind,
                    admin,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = match out.last_evaluated_key() {
            Some(lek) => Some(Cursor(URL_SAFE_NO_PAD.encode(get_s(lek, "SK")?))),
            None => None,
        };
        Ok(EventPage { items, next })
    }

    /// Revokes every live (unrevoked, unexpired) token of `owner`, and makes
    /// sure nothing minted before this call can outlive it.
    ///
    /// 1. The owner's revocation epoch is raised first. From then on no create
    ///    or rotation that began earlier can commit, and no token from before
    ///    can rotate, so the set of tokens to revoke can only shrink.
    /// 2. The tokens of the strongly consistent active set are revoked,
    ///    [`REVOKE_ALL_CONCURRENCY`] at a time. The set holds every token
    ///    that can be live (create and rotate add to it in the same
    ///    transaction), and the cap bounds it, so this step is bounded too.
    /// 3. Once per owner, the listing index is searched for tokens written
    ///    before active sets existed; when a pass completes it is recorded
    ///    (`legacy_swept`) and never repeated, so a long history of revoked
    ///    tokens cannot slow later calls.
    ///
    /// Both steps stop at `deadline`; what is left is reported
    /// ([`RevokeAllOutcome::remaining`], [`RevokeAllOutcome::swept`]) and
    /// calling again finishes the job. Tokens created after step 1 (under the
    /// new epoch) are left alone.
    pub async fn revoke_all(
        &self,
        owner: &UserId,
        now: i64,
        deadline: Option<std::time::Instant>,
        by: impl Into<Revoker>,
    ) -> Result<RevokeAllOutcome, StoreError> {
        let by: Revoker = by.into();
        // First the time sessions are measured against, and only forwards: a
        // caller with an older clock (a long sweep) must not reopen the
        // window. Written before the epoch moves, so no create can slip in
        // between under the new epoch with a session from before.
        let advanced = self
            .client
            .update_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .update_expression("SET revoked_all_at = :now")
            .condition_expression("attribute_not_exists(revoked_all_at) OR revoked_all_at < :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        if let Err(err) = advanced
            && !err
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception())
        {
            return Err(unavailable(err));
        }
        let bumped = self
            .client
            .update_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .update_expression(
                "SET slots = if_not_exists(slots, :empty), \
                 epoch = if_not_exists(epoch, :zero) + :one",
            )
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        let epoch: i64 = bumped
            .attributes()
            .and_then(|a| a.get("epoch"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or(StoreError::Corrupt("epoch"))?;
        // The active set as it stands after the bump (strongly consistent):
        // everything committed before it, nothing that could commit after.
        let set = self
            .client
            .get_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .consistent_read(true)
            .projection_expression("slots, legacy_swept")
            .send()
            .await
            .map_err(unavailable)?;
        let item = set.item();
        let slot_ids: Vec<TokenId> = item
            .and_then(|a| a.get("slots"))
            .and_then(|v| v.as_m().ok())
            .map(|map| {
                map.iter()
                    .filter(|(_, exp)| {
                        exp.as_n()
                            .ok()
                            .and_then(|v| v.parse::<i64>().ok())
                            .is_some_and(|e| e > now)
                    })
                    .filter_map(|(k, _)| TokenId::parse(k).ok())
                    .collect()
            })
            .unwrap_or_default();
        let already_swept = item
            .and_then(|a| a.get("legacy_swept"))
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);

        let mut outcome = RevokeAllOutcome {
            revoked: 0,
            remaining: 0,
            epoch,
            swept: already_swept,
        };
        self.revoke_ids(
            owner,
            slot_ids.clone(),
            now,
            epoch,
            deadline,
            &by,
            &mut outcome,
        )
        .await?;
        if already_swept || outcome.remaining > 0 {
            return Ok(outcome);
        }
        let mut cursor = None;
        loop {
            let page = match deadline {
                Some(at) => match tokio::time::timeout_at(
                    at.into(),
                    self.list(owner, MAX_PAGE_SIZE, cursor.as_ref()),
                )
                .await
                {
                    Ok(page) => page?,
                    Err(_) => return Ok(outcome),
                },
                None => self.list(owner, MAX_PAGE_SIZE, cursor.as_ref()).await?,
            };
            let legacy: Vec<TokenId> = page
                .items
                .into_iter()
                .filter(|m| m.is_active(now) && !slot_ids.contains(&m.id))
                .map(|m| m.id)
                .collect();
            self.revoke_ids(owner, legacy, now, epoch, deadline, &by, &mut outcome)
                .await?;
            if outcome.remaining > 0 {
                return Ok(outcome);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.client
            .update_item()
            .table_name(&self.cfg.table_name)
            .set_key(Some(slots_key(owner)))
            .update_expression("SET legacy_swept = :yes")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(unavailable)?;
        outcome.swept = true;
        Ok(outcome)
    }

    /// Revokes `ids` (those below `epoch`), [`REVOKE_ALL_CONCURRENCY`] at a
    /// time, until `deadline`; adds to `outcome` what it revoked and what it
    /// did not reach.
    #[expect(
        clippy::too_many_arguments,
        reason = "one private step of revoke_all, called twice with its whole state"
    )]
    async fn revoke_ids(
        &self,
        owner: &UserId,
        ids: Vec<TokenId>,
        now: i64,
        epoch: i64,
        deadline: Option<std::time::Instant>,
        by: &Revoker,
        outcome: &mut RevokeAllOutcome,
    ) -> Result<(), StoreError> {
        use futures_util::StreamExt;

        let total = ids.len();
        let mut done = 0usize;
        let mut results = futures_util::stream::iter(ids)
            .map(|id| async move {
                self.revoke_with(owner, &id, now, false, Some(epoch), by)
                    .await
            })
            .buffer_unordered(REVOKE_ALL_CONCURRENCY);
        loop {
            let next = match deadline {
                Some(at) => match tokio::time::timeout_at(at.into(), results.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
                None => results.next().await,
            };
            let Some(result) = next else { break };
            done += 1;
            if result? == RevokeOutcome::Revoked {
                outcome.revoked += 1;
            }
        }
        outcome.remaining += u32::try_from(total - done).unwrap_or(u32::MAX);
        Ok(())
    }

    /// The transaction item that stores a new token, never over an existing one.
    fn put_new_token(&self, rec: &TokenRecord) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.cfg.table_name)
            .set_item(Some(self.to_item(rec)))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|_| StoreError::Corrupt("put builder"))
    }

    fn to_item(&self, rec: &TokenRecord) -> HashMap<String, AttributeValue> {
        let m = &rec.meta;
        // A token with an allow-list is v4, a bound one v5: older readers
        // refuse them rather than use them unrestricted or as bearer tokens.
        let version = if m.dpop_jkt.is_some() {
            BOUND_SCHEMA_VERSION
        } else if m.allowed_cidrs.is_empty() {
            self.cfg.write_schema_version
        } else {
            RESTRICTED_SCHEMA_VERSION
        };
        let mut item = HashMap::from([
            ("PK".to_owned(), s(token_pk(&m.id))),
            ("SK".to_owned(), s(TOKEN_SK)),
            ("GSI1PK".to_owned(), s(user_pk(&m.owner))),
            ("GSI1SK".to_owned(), s(gsi1_sk(m.created_at, &m.id))),
            // The pinned write version (2 during a roll-out over older
            // readers); the v3 attributes below are written either way.
            ("v".to_owned(), n(i64::from(version))),
            ("id".to_owned(), s(m.id.as_str())),
            ("owner".to_owned(), s(m.owner.as_str())),
            ("name".to_owned(), s(m.name.clone())),
            ("scopes".to_owned(), s(m.scopes.to_space_separated())),
            (
                "scope_set".to_owned(),
                AttributeValue::Ss(m.scopes.iter().map(str::to_owned).collect()),
            ),
            ("created_at".to_owned(), n(m.created_at)),
            ("expires_at".to_owned(), n(m.expires_at)),
            ("hash".to_owned(), s(rec.hash.expose())),
            ("epoch".to_owned(), n(m.epoch)),
        ]);
        let (gsi2pk, gsi2sk) = gsi2_keys(m.expires_at, &m.id);
        item.insert("GSI2PK".to_owned(), s(gsi2pk));
        item.insert("GSI2SK".to_owned(), s(gsi2sk));
        if let Some(v) = &m.description {
            item.insert("description".to_owned(), s(v.clone()));
        }
        if let Some(tier) = &m.rate_tier {
            item.insert("tier".to_owned(), s(tier.clone()));
        }
        if !m.allowed_cidrs.is_empty() {
            item.insert(
                "cidrs".to_owned(),
                AttributeValue::Ss(m.allowed_cidrs.iter().map(ToString::to_string).collect()),
            );
        }
        if let Some(jkt) = &m.dpop_jkt {
            item.insert("jkt".to_owned(), s(jkt.as_str()));
        }
        if !m.recent_uses.is_empty() {
            item.insert("recent_uses".to_owned(), sites_to_attr(&m.recent_uses));
        }
        let end_of_life = m.revoked_at.unwrap_or(m.expires_at).min(m.expires_at);
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            n(end_of_life + self.cfg.retention_secs),
        );
        if let Some(v) = m.last_used_at {
            item.insert("last_used_at".to_owned(), n(v));
        }
        if let Some(v) = m.revoked_at {
            item.insert("revoked_at".to_owned(), n(v));
        }
        if let Some(v) = &m.rotated_from {
            item.insert("rotated_from".to_owned(), s(v.as_str()));
        }
        if let Some(v) = &m.rotated_to {
            item.insert("rotated_to".to_owned(), s(v.as_str()));
        }
        item
    }
}

/// What [`TokenStore::details`] reads of each listed token record: the key,
/// the version (a binding is read strictly by it) and what GSI1 does not
/// project. Never the hash. The construct's IAM condition on the token
/// service's BatchGetItem is this list (`generated/routes.json`).
pub const DETAILS_PROJECTED: &[&str] = &[
    "PK",
    "v",
    "description",
    "recent_uses",
    "cidrs",
    "tier",
    "jkt",
];

/// Attributes projected into GSI1. The hash is deliberately absent: listings
/// can never leak it, whatever a handler does.
///
/// Adding an attribute here on a deployed table means recreating the index
/// (DynamoDB cannot change a GSI's projection in place): see the README,
/// "Changing the data model".
pub const GSI1_PROJECTED: &[&str] = &[
    "v",
    "id",
    "owner",
    "name",
    "scopes",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "rotated_from",
    "rotated_to",
];

/// Attributes projected into [`GSI2`], the expiry index: what the sweeper
/// needs to decide and to name the token in its events. No hash.
pub const GSI2_PROJECTED: &[&str] = &[
    "v",
    "id",
    "owner",
    "name",
    "created_at",
    "expires_at",
    "revoked_at",
    "rotated_to",
];

/// For a cancelled transaction, which of its items failed their condition.
pub(crate) fn failed_conditions<R>(
    err: &SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<bool>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

pub(crate) fn get_s<'a>(
    item: &'a HashMap<String, AttributeValue>,
    key: &'static str,
) -> Result<&'a str, StoreError> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or(StoreError::Corrupt(key))
}

pub(crate) fn get_n(
    item: &HashMap<String, AttributeValue>,
    key: &'static str,
) -> Result<i64, StoreError> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or(StoreError::Corrupt(key))
}

pub(crate) fn opt_n(
    item: &HashMap<String, AttributeValue>,
    key: &'static str,
) -> Result<Option<i64>, StoreError> {
    match item.get(key) {
        None => Ok(None),
        Some(_) => get_n(item, key).map(Some),
    }
}

pub(crate) fn opt_id(
    item: &HashMap<String, AttributeValue>,
    key: &'static str,
) -> Result<Option<TokenId>, StoreError> {
    match item.get(key) {
        None => Ok(None),
        Some(_) => TokenId::parse(get_s(item, key)?)
            .map(Some)
            .map_err(|_| StoreError::Corrupt(key)),
    }
}

/// Scopes of a stored token: v2 and later read `scope_set` (falling back to
/// `scopes` on index items, which do not project the set); v1 parses `scopes`. If both
/// are present they must agree. Names are checked for form only: whether the
/// current manifest still declares them is the reader's business
/// ([`crate::ScopeRegistry::resolve`]).
fn scopes_from_item(
    item: &HashMap<String, AttributeValue>,
    version: u32,
) -> Result<ScopeNames, StoreError> {
    let from_string = match item.get("scopes") {
        Some(_) => Some(
            ScopeNames::parse_space_separated(get_s(item, "scopes")?)
                .ok_or(StoreError::Corrupt("scopes"))?,
        ),
        None => None,
    };
    let from_set = match (version, item.get("scope_set")) {
        (2.., Some(v)) => {
            let names = v.as_ss().map_err(|_| StoreError::Corrupt("scope_set"))?;
            if !names.iter().all(|n| crate::scope::is_valid_scope_name(n)) {
                return Err(StoreError::Corrupt("scope_set"));
            }
            Some(ScopeNames::from_names(names.iter().cloned()))
        }
        _ => None,
    };
    match (from_set, from_string) {
        (Some(a), Some(b)) if a != b => Err(StoreError::Corrupt("scope_set")),
        (Some(a), _) => Ok(a),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(StoreError::Corrupt("scopes")),
    }
}

fn meta_from_item(item: &HashMap<String, AttributeValue>) -> Result<TokenMeta, StoreError> {
    let mut meta = meta_from_index_item(item)?;
    meta.dpop_jkt = jkt_from_item(item, meta.schema_version)?;
    Ok(meta)
}

/// A token's metadata as the owner index (GSI1) projects it: everything but
/// what [`TokenStore::details`] reads from the table (the binding among it:
/// `dpop_jkt` is `None` here). For listings only; a decision reads the
/// whole item ([`meta_from_item`]).
fn meta_from_index_item(item: &HashMap<String, AttributeValue>) -> Result<TokenMeta, StoreError> {
    let version = u32::try_from(get_n(item, "v")?).map_err(|_| StoreError::Corrupt("v"))?;
    if !(OLDEST_READ_SCHEMA_VERSION..=BOUND_SCHEMA_VERSION).contains(&version) {
        return Err(StoreError::UnsupportedSchema(version));
    }
    Ok(TokenMeta {
        id: TokenId::parse(get_s(item, "id")?).map_err(|_| StoreError::Corrupt("id"))?,
        owner: UserId::parse(get_s(item, "owner")?).map_err(|_| StoreError::Corrupt("owner"))?,
        name: get_s(item, "name")?.to_owned(),
        scopes: scopes_from_item(item, version)?,
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        last_used_at: opt_n(item, "last_used_at")?,
        revoked_at: opt_n(item, "revoked_at")?,
        rotated_from: opt_id(item, "rotated_from")?,
        rotated_to: opt_id(item, "rotated_to")?,
        // Owner-facing text and bookkeeping: read leniently (see sites_from_attr).
        description: item.get("description").and_then(|v| v.as_s().ok()).cloned(),
        recent_uses: item
            .get("recent_uses")
            .map(sites_from_attr)
            .unwrap_or_default(),
        // A restriction is read strictly: one that cannot be read refuses
        // the token (Corrupt), never lets it go unrestricted.
        allowed_cidrs: match item.get("cidrs") {
            None => Vec::new(),
            Some(v) => cidrs_from_attr(v)?,
        },
        // Only which usage plan throttles the token: read leniently (a
        // malformed one is the default tier, as for a release without tiers).
        rate_tier: item
            .get("tier")
            .and_then(|v| v.as_s().ok())
            .filter(|t| !t.is_empty() && t.len() <= 32)
            .cloned(),
        schema_version: version,
        epoch: opt_n(item, "epoch")?.unwrap_or(0),
        dpop_jkt: None,
    })
}

/// A token's DPoP binding, read strictly: a v5 item must carry a well-formed
/// `jkt`, and no other version may carry one. Either defect refuses the
/// token (Corrupt) rather than serve it as a bearer token.
fn jkt_from_item(
    item: &HashMap<String, AttributeValue>,
    version: u32,
) -> Result<Option<crate::dpop::Jkt>, StoreError> {
    match (version, item.get("jkt")) {
        (BOUND_SCHEMA_VERSION, Some(v)) => v
            .as_s()
            .ok()
            .and_then(|t| crate::dpop::Jkt::parse(t))
            .map(Some)
            .ok_or(StoreError::Corrupt("jkt")),
        (BOUND_SCHEMA_VERSION, None) | (_, Some(_)) => Err(StoreError::Corrupt("jkt")),
        (_, None) => Ok(None),
    }
}

/// An allow-list as stored: a string set of normalised networks.
fn cidrs_from_attr(v: &AttributeValue) -> Result<Vec<ipnet::IpNet>, StoreError> {
    let texts = v.as_ss().map_err(|_| StoreError::Corrupt("cidrs"))?;
    if texts.is_empty() || texts.len() > crate::record::MAX_ALLOWED_CIDRS {
        return Err(StoreError::Corrupt("cidrs"));
    }
    let mut nets = texts
        .iter()
        .map(|t| crate::record::parse_cidr(t).ok_or(StoreError::Corrupt("cidrs")))
        .collect::<Result<Vec<_>, _>>()?;
    nets.sort();
    Ok(nets)
}

/// Use sites as stored: a list of `{ip, ua?, at}` maps.
fn sites_to_attr(sites: &[UseSite]) -> AttributeValue {
    AttributeValue::L(
        sites
            .iter()
            .map(|site| {
                let mut m = HashMap::from([
                    ("ip".to_owned(), s(site.ip.clone())),
                    ("at".to_owned(), n(site.at)),
                ]);
                if let Some(ua) = &site.user_agent {
                    m.insert("ua".to_owned(), s(ua.clone()));
                }
                AttributeValue::M(m)
            })
            .collect(),
    )
}

/// Use sites as stored, read leniently: they are bookkeeping, and a
/// malformed entry must never fail the authorizer's read of the token (so it
/// is skipped, and the next touch rewrites the list).
fn sites_from_attr(v: &AttributeValue) -> Vec<UseSite> {
    let Ok(entries) = v.as_l() else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let m = entry.as_m().ok()?;
            let ua = m.get("ua").and_then(|v| v.as_s().ok());
            UseSite::from_request(
                m.get("ip")?.as_s().ok()?,
                ua.map(String::as_str),
                m.get("at")?.as_n().ok()?.parse().ok()?,
            )
        })
        .take(crate::record::MAX_USE_SITES)
        .collect()
}

fn record_from_item(item: &HashMap<String, AttributeValue>) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        meta: meta_from_item(item)?,
        hash: PhcHash::from_stored(get_s(item, "hash")?.to_owned()),
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorBody {
    /// created_at of the last item returned.
    c: i64,
    /// id of the last item returned.
    i: String,
}

fn encode_cursor(lek: &HashMap<String, AttributeValue>) -> Result<Cursor, StoreError> {
    let sk = get_s(lek, "GSI1SK")?;
    let mut parts = sk.splitn(3, '#');
    let (Some("TOKEN"), Some(created), Some(id)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(StoreError::Corrupt("GSI1SK"));
    };
    cursor_at(
        created.parse().map_err(|_| StoreError::Corrupt("GSI1SK"))?,
        id,
    )
}

fn cursor_at(created_at: i64, id: &str) -> Result<Cursor, StoreError> {
    let body = CursorBody {
        c: created_at,
        i: id.to_owned(),
    };
    let json = serde_json::to_vec(&body).map_err(|_| StoreError::Corrupt("cursor"))?;
    Ok(Cursor(URL_SAFE_NO_PAD.encode(json)))
}

/// Orders events of the same second in the order they were written: the
/// wall clock in nanoseconds, never going backwards within this process.
fn event_sequence() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let previous = LAST.fetch_max(now, Ordering::SeqCst);
    u128::from(if now > previous {
        now
    } else {
        LAST.fetch_add(1, Ordering::SeqCst).saturating_add(1)
    })
}

/// The sort key an events cursor stands for, checked for form
/// (`<12 digits>#<20 digits>#<kind>#<12 hex>`), so a forged cursor can only
/// move within the partition the caller was allowed to read.
fn decode_event_cursor(cursor: &Cursor) -> Result<String, StoreError> {
    if cursor.0.len() > 160 {
        return Err(StoreError::InvalidCursor);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.0.as_bytes())
        .map_err(|_| StoreError::InvalidCursor)?;
    let sk = String::from_utf8(raw).map_err(|_| StoreError::InvalidCursor)?;
    let mut parts = sk.split('#');
    let well_formed = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(at), Some(seq), Some(kind), Some(nonce), None)
            if at.len() == 12 && at.bytes().all(|b| b.is_ascii_digit())
                && seq.len() == 20 && seq.bytes().all(|b| b.is_ascii_digit())
                && !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && nonce.len() == 12 && nonce.bytes().all(|b| b.is_ascii_hexdigit())
    );
    if well_formed {
        Ok(sk)
    } else {
        Err(StoreError::InvalidCursor)
    }
}

/// Rebuilds the start key from a client cursor. The partition always comes from
/// the caller's identity, never from the cursor, so a forged cursor cannot
/// reach another user's tokens.
fn decode_cursor(
    owner: &UserId,
    cursor: &Cursor,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    if cursor.0.len() > 256 {
        return Err(StoreError::InvalidCursor);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(cursor.0.as_bytes())
        .map_err(|_| StoreError::InvalidCursor)?;
    let body: CursorBody = serde_json::from_slice(&raw).map_err(|_| StoreError::InvalidCursor)?;
    let id = TokenId::parse(&body.i).map_err(|_| StoreError::InvalidCursor)?;
    if !(0..=999_999_999_999).contains(&body.c) {
        return Err(StoreError::InvalidCursor);
    }
    Ok(HashMap::from([
        ("PK".into(), s(token_pk(&id))),
        ("SK".into(), s(TOKEN_SK)),
        ("GSI1PK".into(), s(user_pk(owner))),
        ("GSI1SK".into(), s(gsi1_sk(body.c, &id))),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_the_caller() {
        let alice = UserId::parse("alice").unwrap();
        let id = TokenId::parse("0123456789ABCDEFG").unwrap();
        let lek = HashMap::from([("GSI1SK".to_owned(), s(gsi1_sk(1_700_000_000, &id)))]);
        let cursor = encode_cursor(&lek).unwrap();
        let key = decode_cursor(&alice, &cursor).unwrap();
        assert_eq!(key.get("GSI1PK"), Some(&s("USER#alice")));
        assert_eq!(key.get("GSI1SK"), Some(&s(gsi1_sk(1_700_000_000, &id))));
    }

    #[test]
    fn junk_cursors_are_rejected() {
        let alice = UserId::parse("alice").unwrap();
        let negative = URL_SAFE_NO_PAD.encode(r#"{"c":-1,"i":"0123456789ABCDEFG"}"#);
        let bad_id = URL_SAFE_NO_PAD.encode(r#"{"c":1,"i":"../../etc"}"#);
        for junk in ["", "!!!", "eyJ9", &"A".repeat(300), &negative, &bad_id] {
            assert!(
                matches!(
                    decode_cursor(&alice, &Cursor::from_client(junk)),
                    Err(StoreError::InvalidCursor)
                ),
                "{junk}"
            );
        }
    }
}
