//! Offboarding: a PAT lives only while its owner does.
//!
//! Cognito management calls reach EventBridge as CloudTrail "AWS API Call via
//! CloudTrail" events. For `AdminDisableUser`, `AdminDeleteUser` and
//! `DeleteUser` on our user pool, this handler finds the user's `sub` and
//! revokes all of their tokens with the same store operation as
//! `DELETE /tokens` ([`TokenStore::revoke_all`]): final, idempotent, safe to
//! retry. Re-enabling the user later does not bring a token back.
//!
//! Finding the `sub`, in order:
//! 1. `additionalEventData.sub`, when CloudTrail carries it;
//! 2. the `username` of the request (unless CloudTrail hid it): Cognito's
//!    `AdminGetUser` while the user still exists (a disable), and the
//!    username aliases the token service records at issue (a delete, after
//!    which Cognito no longer knows the name);
//! 3. the `username` itself, when it is the `sub` of a token owner (admins
//!    may pass either).
//!
//! A disabled or deleted user's Cognito access tokens are verified offline
//! and stay valid until they expire. They cannot mint new tokens: the token
//! service only lets sessions issued after the owner's last revoke-all
//! create or rotate (`TokenStore::create_for_session`). A re-enabled user
//! signs in again and carries on.
//!
//! A scheduled **reconciliation sweep** backs this up: for every owner that
//! still holds a live token, it asks Cognito whether the user exists and is
//! enabled, and revokes all of their tokens if not. It catches what the
//! events cannot: a missing trail, a lost or dead-lettered event, or a name
//! the handler cannot resolve (an email address of a user already deleted).
//!
//! Errors that a retry can fix (DynamoDB or Cognito unavailable, a
//! revoke-all cut short) fail the invocation, so EventBridge retries and
//! finally dead-letters it (an alarm watches the queue). Events for another
//! pool, failed calls and other event names are acknowledged and ignored.

use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider::Client as CognitoClient;
use serde::Deserialize;
use shared::UserId;
use shared::store::{StoreError, TokenStore};
use thiserror::Error;

/// The Cognito calls that end a user's right to hold tokens.
pub const OFFBOARDING_EVENTS: [&str; 3] = ["AdminDisableUser", "AdminDeleteUser", "DeleteUser"];

/// What CloudTrail writes instead of a username it will not disclose.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// How long one invocation keeps revoking before it fails for a retry.
pub const REVOKE_BUDGET: Duration = Duration::from_secs(40);

/// The EventBridge envelope of a CloudTrail API-call event (the parts we read).
#[derive(Debug, Clone, Deserialize)]
pub struct CloudTrailEnvelope {
    /// EventBridge's event id.
    #[serde(default)]
    pub id: String,
    /// `AWS API Call via CloudTrail`.
    #[serde(rename = "detail-type", default)]
    pub detail_type: String,
    /// `aws.cognito-idp`.
    #[serde(default)]
    pub source: String,
    /// The CloudTrail record.
    pub detail: CloudTrailDetail,
}

/// The CloudTrail record (the parts we read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailDetail {
    /// `cognito-idp.amazonaws.com`.
    #[serde(default)]
    pub event_source: String,
    /// The API call, e.g. `AdminDisableUser`.
    #[serde(default)]
    pub event_name: String,
    /// Set when the call failed (then nothing happened to the user).
    #[serde(default)]
    pub error_code: Option<String>,
    /// CloudTrail's record id.
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    /// The call's parameters.
    #[serde(default)]
    pub request_parameters: Option<RequestParameters>,
    /// Extra data; Cognito may put the user's `sub` here.
    #[serde(default)]
    pub additional_event_data: Option<AdditionalEventData>,
}

/// `requestParameters` of the Cognito calls we handle.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestParameters {
    /// The pool the call was made on (absent for `DeleteUser`).
    #[serde(default)]
    pub user_pool_id: Option<String>,
    /// The username (or alias, or sub) the call named; may be hidden.
    #[serde(default)]
    pub username: Option<String>,
}

/// `additionalEventData` of the Cognito calls we handle.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AdditionalEventData {
    /// The user's `sub`, when CloudTrail carries it.
    #[serde(default)]
    pub sub: Option<String>,
}

/// What the handler did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not an offboarding event for our pool (or the call failed): nothing to do.
    Ignored(&'static str),
    /// These owners' tokens were revoked (`revoked` newly, in total).
    Revoked {
        /// Every owner the event resolved to.
        owners: Vec<UserId>,
        /// Tokens this invocation revoked.
        revoked: u32,
    },
    /// The event named a user we know no token owner for.
    NoTokenOwner,
}

/// What one reconciliation sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepOutcome {
    /// Owners holding a live token that were looked up in Cognito.
    pub owners_checked: u32,
    /// Of those, owners missing or disabled in Cognito, whose tokens were revoked.
    pub owners_revoked: u32,
    /// Tokens revoked.
    pub revoked: u32,
    /// Whether the whole table was covered before the deadline.
    pub complete: bool,
}

/// Whether Cognito still has the user, enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserState {
    Active,
    Disabled,
    Missing,
}

/// Failures that a retry may fix; the invocation fails and EventBridge retries.
#[derive(Debug, Error)]
pub enum OffboardingError {
    /// DynamoDB failed.
    #[error("token store: {0}")]
    Store(#[from] StoreError),
    /// Cognito failed (other than "no such user").
    #[error("cognito: {0}")]
    Cognito(String),
    /// The revocation did not finish within the invocation's budget.
    #[error("revoke-all incomplete: {0} token(s) left; retrying")]
    Incomplete(u32),
    /// The sweep ran out of time before it covered every owner: fails the
    /// invocation, so retries, the dead-letter queue and the error alarm
    /// see it rather than a silent partial run.
    #[error("sweep incomplete: {checked} owner(s) checked before the deadline")]
    SweepIncomplete {
        /// Owners checked before the deadline.
        checked: u32,
    },
}

/// The handler's dependencies, built once per cold start.
pub struct Offboarding {
    /// The token store.
    pub store: TokenStore,
    /// Cognito, to map a username to its `sub` while the user exists.
    pub cognito: CognitoClient,
    /// Our user pool: events for other pools are ignored.
    pub user_pool_id: String,
}

impl Offboarding {
    /// Handles whatever EventBridge delivered: a scheduled event runs the
    /// sweep, a CloudTrail API-call event goes to [`Self::handle`], anything
    /// else is ignored. Returns a one-line summary for the log.
    pub async fn dispatch(
        &self,
        event: serde_json::Value,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<String, OffboardingError> {
        match event.get("detail-type").and_then(|v| v.as_str()) {
            Some("Scheduled Event") => {
                let outcome = self.sweep(now, deadline).await?;
                Ok(format!("Sweep {outcome:?}"))
            }
            Some("AWS API Call via CloudTrail") => match serde_json::from_value(event) {
                Ok(call) => Ok(format!("{:?}", self.handle(&call, now).await?)),
                Err(_) => Ok(format!("{:?}", Outcome::Ignored("unreadable event"))),
            },
            _ => Ok(format!("{:?}", Outcome::Ignored("not an event we handle"))),
        }
    }

    /// The reconciliation sweep: every owner with a live token is looked up
    /// in Cognito by `sub`; a user who is missing or disabled has all tokens
    /// revoked (the same store operation as everywhere else). Stops at
    /// `deadline` with [`OffboardingError::SweepIncomplete`]; the next run
    /// starts over. Time moves on during a long sweep, so each revocation is
    /// stamped with `now` plus the time elapsed since the sweep began.
    pub async fn sweep(
        &self,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<SweepOutcome, OffboardingError> {
        let started = Instant::now();
        let mut outcome = SweepOutcome::default();
        let mut position = None;
        let cut_short = |checked| Err(OffboardingError::SweepIncomplete { checked });
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return cut_short(outcome.owners_checked);
            }
            let (owners, next) = self.store.owners_with_live_tokens(now, position).await?;
            // A service (`service:<name>`) is no Cognito user: it is never
            // offboarded, whoever left.
            for owner in owners.into_iter().filter(|o| !o.is_service()) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return cut_short(outcome.owners_checked);
                }
                outcome.owners_checked += 1;
                let state = self.user_state(&owner).await?;
                if state == UserState::Active {
                    continue;
                }
                let elapsed = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
                let revoked = self
                    .store
                    .revoke_all(
                        &owner,
                        now.saturating_add(elapsed),
                        deadline,
                        shared::history::RevokedBy::Offboarding,
                    )
                    .await?;
                outcome.owners_revoked += 1;
                outcome.revoked += revoked.revoked;
                tracing::info!(
                    target: "offboarding::audit",
                    audit = true,
                    event = "token.offboarding_revoke",
                    owner = %owner,
                    cloudtrail_event = "reconciliation-sweep",
                    user_state = ?state,
                    revoked = revoked.revoked,
                    remaining = revoked.remaining,
                    "revoked the tokens of a user Cognito no longer has enabled"
                );
                if !revoked.complete() {
                    return Err(OffboardingError::Incomplete(revoked.remaining));
                }
            }
            match next {
                Some(n) => position = Some(n),
                None => break,
            }
        }
        outcome.complete = true;
        Ok(outcome)
    }

    /// The state of the user whose `sub` this is ([`shared::cognito::user_by_sub`]).
    async fn user_state(&self, sub: &UserId) -> Result<UserState, OffboardingError> {
        let user = shared::cognito::user_by_sub(&self.cognito, &self.user_pool_id, sub)
            .await
            .map_err(|e| OffboardingError::Cognito(e.to_string()))?;
        Ok(match user {
            None => UserState::Missing,
            Some(u) if u.enabled() => UserState::Active,
            Some(_) => UserState::Disabled,
        })
    }

    /// Handles one event at `now` (Unix seconds).
    pub async fn handle(
        &self,
        event: &CloudTrailEnvelope,
        now: i64,
    ) -> Result<Outcome, OffboardingError> {
        let d = &event.detail;
        if d.event_source != "cognito-idp.amazonaws.com"
            || !OFFBOARDING_EVENTS.contains(&d.event_name.as_str())
        {
            return Ok(Outcome::Ignored("not an offboarding call"));
        }
        if d.error_code.as_deref().is_some_and(|c| !c.is_empty()) {
            return Ok(Outcome::Ignored("the call failed"));
        }
        let params = d.request_parameters.clone().unwrap_or_default();
        if let Some(pool) = &params.user_pool_id
            && pool != &self.user_pool_id
        {
            return Ok(Outcome::Ignored("another user pool"));
        }
        let owners = self.owners(d, &params).await?;
        if owners.is_empty() {
            tracing::warn!(
                event_id = %d.event_id,
                event_name = %d.event_name,
                "offboarding event names no known token owner"
            );
            return Ok(Outcome::NoTokenOwner);
        }
        let deadline = Instant::now() + REVOKE_BUDGET;
        let mut revoked = 0;
        for owner in &owners {
            let outcome = self
                .store
                .revoke_all(
                    owner,
                    now,
                    Some(deadline),
                    shared::history::RevokedBy::Offboarding,
                )
                .await?;
            revoked += outcome.revoked;
            tracing::info!(
                target: "offboarding::audit",
                audit = true,
                event = "token.offboarding_revoke",
                owner = %owner,
                cloudtrail_event = %d.event_name,
                event_id = %d.event_id,
                revoked = outcome.revoked,
                remaining = outcome.remaining,
                "revoked the tokens of an offboarded user"
            );
            if !outcome.complete() {
                return Err(OffboardingError::Incomplete(outcome.remaining));
            }
        }
        Ok(Outcome::Revoked { owners, revoked })
    }

    async fn owners(
        &self,
        d: &CloudTrailDetail,
        params: &RequestParameters,
    ) -> Result<Vec<UserId>, OffboardingError> {
        let mut owners = Vec::new();
        if let Some(sub) = d
            .additional_event_data
            .as_ref()
            .and_then(|a| a.sub.as_deref())
            .and_then(|s| UserId::parse(s).ok())
        {
            owners.push(sub);
        }
        let username = params
            .username
            .as_deref()
            .filter(|u| !u.is_empty() && *u != HIDDEN);
        if let Some(username) = username {
            if let Some(sub) = self.sub_from_cognito(username).await? {
                owners.push(sub);
            }
            owners.extend(self.store.owners_of_username(username).await?);
            if let Ok(as_sub) = UserId::parse(username)
                && self.store.is_token_owner(&as_sub).await?
            {
                owners.push(as_sub);
            }
        }
        // A user named like a service (`service:x`) is still a person: their
        // offboarding never reaches the service's tokens.
        owners.retain(|o| !o.is_service());
        owners.sort();
        owners.dedup();
        Ok(owners)
    }

    /// The `sub` of a user Cognito still has; `None` when it no longer does.
    async fn sub_from_cognito(&self, username: &str) -> Result<Option<UserId>, OffboardingError> {
        let result = self
            .cognito
            .admin_get_user()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .send()
            .await;
        match result {
            Ok(user) => Ok(user
                .user_attributes()
                .iter()
                .find(|a| a.name() == "sub")
                .and_then(|a| a.value())
                .and_then(|v| UserId::parse(v).ok())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_user_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => {
                use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
                Err(OffboardingError::Cognito(
                    e.code().unwrap_or("unknown").to_owned(),
                ))
            }
        }
    }
}
