//! Expiry warnings for personal access tokens.
//!
//! Two handlers, one binary (`AGPAT_EXPIRY_MODE`):
//!
//! - [`Sweeper`] (`sweep`, on an EventBridge schedule): finds the live tokens
//!   that crossed a warning threshold (30, 7, 1 days left) or expired since
//!   the last run, through the expiry index (never a scan), claims each
//!   notice once in the table ([`shared::expiry`]) and publishes it to the
//!   agpat bus as `agpat.token.expiring` / `agpat.token.expired`.
//! - [`Notifier`] (`notify`, optional, the target of a bus rule): emails the
//!   token's owner about `expiring`, `expired` and `leak_reported` events,
//!   with the address from Cognito (verified addresses only), through SES.

use std::collections::BTreeMap;

use shared::UserId;
use shared::cognito::attribute;
use shared::expiry::{ExpiringToken, ExpiryWalk, MAX_LOOKBACK_SECS, Notice};
use shared::history::{BusEvent, BusEventKind};
use shared::store::{StoreError, TokenStore};
use thiserror::Error;

/// How far back the very first run looks (no checkpoint yet).
pub const FIRST_RUN_LOOKBACK_SECS: i64 = 86_400;

/// Why a run failed.
#[derive(Debug, Error)]
pub enum ExpiryError {
    /// The token table.
    #[error("token store: {0}")]
    Store(#[from] StoreError),
    /// Some claimed notices could not be published (they are not repeated:
    /// delivery is at most once).
    #[error("{0} notices could not be published")]
    Publish(u64),
    /// Cognito could not be asked for the owner's address.
    #[error("cognito: {0}")]
    Cognito(String),
    /// SES refused or failed the email.
    #[error("ses: {0}")]
    Email(String),
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// The window's start (exclusive), Unix seconds.
    pub from: i64,
    /// The window's end (inclusive): the run's `now`.
    pub through: i64,
    /// Notices claimed and published, by detail-type and days left.
    pub published: BTreeMap<String, u64>,
    /// Candidates whose notice another run had already claimed.
    pub already_claimed: u64,
    /// Claimed notices that failed to publish.
    pub failed: u64,
    /// Whether the whole window was covered (the checkpoint moved).
    pub complete: bool,
}

/// The scheduled sweeper.
#[derive(Debug, Clone)]
pub struct Sweeper {
    /// The token store.
    pub store: TokenStore,
    /// EventBridge.
    pub events: aws_sdk_eventbridge::Client,
    /// The agpat bus's name.
    pub bus: String,
}

impl Sweeper {
    /// One run at `now`: every notice due since the checkpoint, at most once
    /// each, then the checkpoint moves to `now`. With a `deadline`, the run
    /// stops claiming when it passes and leaves the checkpoint where it was
    /// (`complete: false`): the next run covers the window again, and what
    /// this one claimed stays claimed.
    pub async fn sweep(
        &self,
        now: i64,
        deadline: Option<std::time::Instant>,
    ) -> Result<SweepReport, ExpiryError> {
        let checkpoint = self.store.sweep_checkpoint().await?;
        let from = checkpoint
            .unwrap_or(now - FIRST_RUN_LOOKBACK_SECS)
            .max(now - MAX_LOOKBACK_SECS)
            .min(now);
        let mut report = SweepReport {
            from,
            through: now,
            complete: true,
            ..SweepReport::default()
        };
        'notices: for notice in Notice::all() {
            let lead = notice.lead_secs();
            let mut walk = ExpiryWalk::new(from + lead, now + lead);
            while let Some(page) = walk.next_page(&self.store).await? {
                let mut claimed = Vec::new();
                for token in page
                    .iter()
                    .filter(|t| notice.applies(t.created_at, t.expires_at))
                {
                    if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                        report.complete = false;
                        self.publish_claimed(notice, &claimed, &mut report).await;
                        break 'notices;
                    }
                    if self.store.claim_notice(token, notice, now).await? {
                        claimed.push(bus_event(token, notice, now));
                        // Published in small batches right after their claims,
                        // so a run that dies loses at most one batch.
                        if claimed.len() == PUBLISH_BATCH {
                            self.publish_claimed(notice, &claimed, &mut report).await;
                            claimed.clear();
                        }
                    } else {
                        report.already_claimed += 1;
                    }
                }
                self.publish_claimed(notice, &claimed, &mut report).await;
            }
        }
        if report.complete {
            self.store.advance_sweep_checkpoint(now).await?;
        }
        if report.failed > 0 {
            return Err(ExpiryError::Publish(report.failed));
        }
        Ok(report)
    }

    /// Publishes claimed notices and counts the outcome in `report`.
    async fn publish_claimed(
        &self,
        notice: Notice,
        claimed: &[BusEvent],
        report: &mut SweepReport,
    ) {
        if claimed.is_empty() {
            return;
        }
        let failed = shared::bus::publish(&self.events, &self.bus, claimed).await;
        report.failed += failed;
        let published = u64::try_from(claimed.len())
            .unwrap_or(u64::MAX)
            .saturating_sub(failed);
        if published > 0 {
            let label = match notice {
                Notice::Expiring { days_left } => format!("expiring_{days_left}"),
                Notice::Expired => "expired".to_owned(),
            };
            *report.published.entry(label).or_default() += published;
        }
    }
}

/// How many claimed notices are published together (EventBridge's
/// `PutEvents` limit).
const PUBLISH_BATCH: usize = 10;

fn bus_event(token: &ExpiringToken, notice: Notice, now: i64) -> BusEvent {
    BusEvent {
        kind: match notice {
            Notice::Expiring { days_left } => BusEventKind::Expiring { days_left },
            Notice::Expired => BusEventKind::Expired,
        },
        token: token.id.clone(),
        owner: token.owner.clone(),
        name: token.name.clone(),
        expires_at: token.expires_at,
        at: now,
    }
}

/// What the notifier did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOutcome {
    /// An email went to the owner.
    Sent,
    /// The owner has no verified email address (or no longer exists).
    NoVerifiedAddress,
    /// Not an agpat owner event: ignored.
    Ignored,
}

/// Emails owners about their tokens.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// Cognito, to find the owner's address.
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    /// The user pool of the owners.
    pub user_pool_id: String,
    /// SES (v2).
    pub ses: aws_sdk_sesv2::Client,
    /// The verified SES identity the emails come from.
    pub from: String,
}

impl Notifier {
    /// Handles one event as EventBridge delivers it.
    pub async fn notify(&self, event: &serde_json::Value) -> Result<NotifyOutcome, ExpiryError> {
        let Some(event) = BusEvent::from_delivery(event) else {
            return Ok(NotifyOutcome::Ignored);
        };
        let Some(address) = self.verified_email(&event.owner).await? else {
            return Ok(NotifyOutcome::NoVerifiedAddress);
        };
        let (subject, body) = email_text(&event);
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content = |text: String| {
            Content::builder()
                .data(text)
                .charset("UTF-8")
                .build()
                .map_err(|e| ExpiryError::Email(e.to_string()))
        };
        let message = Message::builder()
            .subject(content(subject)?)
            .body(Body::builder().text(content(body)?).build())
            .build();
        self.ses
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(address).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| {
                ExpiryError::Email(aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string())
            })?;
        Ok(NotifyOutcome::Sent)
    }

    /// The owner's email address, if Cognito holds a verified one for an
    /// enabled user (a disabled user's tokens are being revoked).
    async fn verified_email(&self, sub: &UserId) -> Result<Option<String>, ExpiryError> {
        // A service (`service:<name>`) has no mailbox: its events stay on the
        // bus for the adopter's own rules, without a Cognito lookup.
        if sub.is_service() {
            return Ok(None);
        }
        let user = shared::cognito::user_by_sub(&self.cognito, &self.user_pool_id, sub)
            .await
            .map_err(|e| ExpiryError::Cognito(e.to_string()))?;
        let Some(user) = user.filter(|u| u.enabled()) else {
            return Ok(None);
        };
        let verified = attribute(&user, "email_verified") == Some("true");
        Ok(attribute(&user, "email")
            .filter(|_| verified)
            .map(str::to_owned))
    }
}

/// Subject and plain-text body of the owner's email. Names the token and its
/// id, never a secret.
pub fn email_text(event: &BusEvent) -> (String, String) {
    let name: String = event.name.chars().filter(|c| !c.is_control()).collect();
    let id = event.token.as_str();
    let expires = event
        .detail()
        .get("expiresAt")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    match event.kind {
        BusEventKind::Expiring { days_left } => (
            format!(
                "Your token \"{name}\" expires in {days_left} day{}",
                if days_left == 1 { "" } else { "s" }
            ),
            format!(
                "Your personal access token \"{name}\" (id {id}) expires at {expires}.\n\n\
                 Rotate it before then (agpat tokens rotate {id}) and update what uses it, \
                 or let it expire if it is no longer needed."
            ),
        ),
        BusEventKind::Expired => (
            format!("Your token \"{name}\" has expired"),
            format!(
                "Your personal access token \"{name}\" (id {id}) expired at {expires} \
                 and is no longer accepted. Issue a new one if you still need it."
            ),
        ),
        BusEventKind::LeakReported => (
            format!("Your token \"{name}\" was reported leaked and revoked"),
            format!(
                "Someone who held your personal access token \"{name}\" (id {id}) reported it \
                 as leaked, and it was revoked. It is no longer accepted.\n\n\
                 Check where it was used (agpat tokens events {id}) and issue a new token \
                 for whatever needs one."
            ),
        ),
    }
}
