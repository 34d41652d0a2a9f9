//! Expiry notices: which live tokens cross a warning threshold, and the
//! markers that make each notice happen at most once.
//!
//! A notice for threshold *d* days is due when a token's remaining life drops
//! to *d* days, that is when `now` passes `expires_at - d`. The sweeper asks
//! the expiry index ([`crate::store::GSI2`]) for tokens whose `expires_at -
//! d` falls in the window since its last run (its checkpoint), so each run
//! reads only the tokens that crossed a threshold since the previous one:
//! one query per day and shard, never a scan, whatever the table's size.
//!
//! A threshold applies only to a token whose lifetime was longer than it (a
//! token issued for 5 days gets the 1-day warning, not the 7-day one). Each
//! notice is *claimed* before it is published: one conditional write sets
//! the token's marker (`notified_30`, `notified_7`, `notified_1`,
//! `notified_expired`) only if it is absent and the token is neither revoked
//! nor rotated, together with the history event. A second or overlapping
//! run loses the claim and publishes nothing: at most once per token and
//! threshold (a publish that fails after its claim is lost, not repeated).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use crate::history::{EventKind, TokenEvent};
use crate::pat::TokenId;
use crate::principal::UserId;
use crate::store::{
    DAY_SECS, EXPIRY_SHARDS, GSI2, StoreError, TokenStore, failed_conditions, get_n, get_s, n,
    opt_id, opt_n, s, token_key, unavailable,
};

/// The warning thresholds, in days before expiry.
pub const WARNING_DAYS: [u32; 3] = [30, 7, 1];

/// Attempts of a claim cancelled for another reason than its condition.
const CLAIM_ATTEMPTS: u32 = 3;

/// The longest window one run looks back over (after an outage, older
/// crossings are not announced late: a warning days after the fact helps
/// no one, and the bound keeps a run's work bounded).
pub const MAX_LOOKBACK_SECS: i64 = 7 * DAY_SECS;

/// A notice about a token's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Notice {
    /// `days_left` days remain (one of [`WARNING_DAYS`]).
    Expiring {
        /// Days left at the threshold.
        days_left: u32,
    },
    /// The token has expired.
    Expired,
}

impl Notice {
    /// Every notice, in the order a run handles them.
    pub fn all() -> Vec<Notice> {
        WARNING_DAYS
            .iter()
            .map(|&days_left| Notice::Expiring { days_left })
            .chain([Notice::Expired])
            .collect()
    }

    /// How long before expiry the notice is due, in seconds.
    pub fn lead_secs(self) -> i64 {
        match self {
            Notice::Expiring { days_left } => i64::from(days_left) * DAY_SECS,
            Notice::Expired => 0,
        }
    }

    /// The token attribute that records the notice was claimed.
    pub fn marker(self) -> String {
        match self {
            Notice::Expiring { days_left } => format!("notified_{days_left}"),
            Notice::Expired => "notified_expired".to_owned(),
        }
    }

    /// The history event of the notice.
    pub fn event(self) -> EventKind {
        match self {
            Notice::Expiring { days_left } => EventKind::Expiring { days_left },
            Notice::Expired => EventKind::Expired,
        }
    }

    /// Whether the notice applies to a token created at `created_at` that
    /// expires at `expires_at`: a warning only if the token lived longer
    /// than the threshold.
    pub fn applies(self, created_at: i64, expires_at: i64) -> bool {
        expires_at - created_at > self.lead_secs()
    }
}

/// A token as the expiry index shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringToken {
    /// Token id.
    pub id: TokenId,
    /// Owner.
    pub owner: UserId,
    /// Name.
    pub name: String,
    /// Creation, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// A page-by-page walk over the expiry index for one window, so a caller
/// handles each page before it reads the next (bounded memory, and work it
/// can stop at a deadline).
#[derive(Debug, Clone)]
pub struct ExpiryWalk {
    from: i64,
    to: i64,
    day: i64,
    last_day: i64,
    shard: u32,
    start: Option<HashMap<String, AttributeValue>>,
    done: bool,
}

impl ExpiryWalk {
    /// A walk over `from < expires_at <= to`.
    pub fn new(from: i64, to: i64) -> Self {
        Self {
            from,
            to,
            day: (from + 1).div_euclid(DAY_SECS),
            last_day: to.div_euclid(DAY_SECS),
            shard: 0,
            start: None,
            done: to <= from,
        }
    }

    /// The next page (possibly empty), or `None` once the window is done.
    pub async fn next_page(
        &mut self,
        store: &TokenStore,
    ) -> Result<Option<Vec<ExpiringToken>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let (day, shard) = (self.day, self.shard);
        let page = store
            .client()
            .query()
            .table_name(&store.config().table_name)
            .index_name(GSI2)
            .key_condition_expression("GSI2PK = :pk AND GSI2SK BETWEEN :lo AND :hi")
            .filter_expression(
                "attribute_not_exists(revoked_at) AND attribute_not_exists(rotated_to)",
            )
            .expression_attribute_values(":pk", s(format!("EXP#{day}#{shard}")))
            // `<expires_at 12 digits>#<id>`: "#" sorts below every id
            // character and "~" above, so these bound the range.
            .expression_attribute_values(":lo", s(format!("{:012}#", self.from + 1)))
            .expression_attribute_values(":hi", s(format!("{:012}#~", self.to)))
            .set_exclusive_start_key(self.start.take())
            .send()
            .await
            .map_err(unavailable)?;
        let items = page
            .items()
            .iter()
            .map(expiring_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        self.start = page.last_evaluated_key().cloned();
        if self.start.is_none() {
            self.shard += 1;
            if self.shard == EXPIRY_SHARDS {
                self.shard = 0;
                self.day += 1;
                self.done = self.day > self.last_day;
            }
        }
        Ok(Some(items))
    }
}

/// The sweeper's checkpoint item.
fn checkpoint_key() -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("PK".to_owned(), s("SWEEP#expiry")),
        ("SK".to_owned(), s("STATE")),
    ])
}

impl TokenStore {
    /// Live tokens (not revoked, not rotated) with `from < expires_at <= to`,
    /// from the expiry index: one query per day and shard in the range,
    /// all pages read. For bounded work, walk [`ExpiryWalk`] instead.
    pub async fn expiring_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<ExpiringToken>, StoreError> {
        let mut out = Vec::new();
        let mut walk = ExpiryWalk::new(from, to);
        while let Some(page) = walk.next_page(self).await? {
            out.extend(page);
        }
        out.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
        Ok(out)
    }

    /// Claims `notice` for `token`: sets its marker and records the history
    /// event in one transaction, only if the marker is absent and the token
    /// still exists, unrevoked and unrotated, with the expiry the sweeper
    /// saw. `true` if this call claimed it (and must publish it).
    pub async fn claim_notice(
        &self,
        token: &ExpiringToken,
        notice: Notice,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mark = Update::builder()
            .table_name(&self.config().table_name)
            .set_key(Some(token_key(&token.id)))
            .update_expression("SET #marker = :now")
            .condition_expression(
                "attribute_exists(PK) AND attribute_not_exists(#marker) \
                 AND attribute_not_exists(revoked_at) AND attribute_not_exists(rotated_to) \
                 AND expires_at = :exp",
            )
            .expression_attribute_names("#marker", notice.marker())
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":exp", n(token.expires_at))
            .build()
            .map_err(|_| StoreError::Corrupt("update builder"))?;
        let event = self.put_event(
            &TokenEvent {
                token: token.id.clone(),
                at: now,
                kind: notice.event(),
                admin: None,
            },
            Some(token.expires_at),
        )?;
        let request = self
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .transact_items(TransactWriteItem::builder().put(event).build());
        // Only a failed condition on the marker means "not ours to send";
        // a cancellation for any other reason (a conflicting transaction such
        // as the authorizer's touch, throttling) is tried again.
        for attempt in 0..CLAIM_ATTEMPTS {
            match request.clone().send().await {
                Ok(_) => return Ok(true),
                Err(err) => match failed_conditions(&err) {
                    Some(failed) if failed.first() == Some(&true) => return Ok(false),
                    Some(_) if attempt + 1 < CLAIM_ATTEMPTS => {
                        tokio::time::sleep(std::time::Duration::from_millis(
                            50 * (u64::from(attempt) + 1),
                        ))
                        .await;
                    }
                    _ => return Err(unavailable(err)),
                },
            }
        }
        Err(StoreError::Conflict)
    }

    /// Where the last completed sweep stopped (Unix seconds), if any.
    pub async fn sweep_checkpoint(&self) -> Result<Option<i64>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(&self.config().table_name)
            .set_key(Some(checkpoint_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item()
            .map(|i| opt_n(i, "through"))
            .transpose()
            .map(Option::flatten)
    }

    /// Moves the checkpoint forward to `through` (never backwards: an older,
    /// slower run cannot undo a newer one's progress).
    pub async fn advance_sweep_checkpoint(&self, through: i64) -> Result<(), StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(&self.config().table_name)
            .set_key(Some(checkpoint_key()))
            .update_expression("SET through = :t")
            .condition_expression("attribute_not_exists(through) OR through < :t")
            .expression_attribute_values(":t", n(through))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(unavailable(err)),
        }
    }
}

fn expiring_from_item(item: &HashMap<String, AttributeValue>) -> Result<ExpiringToken, StoreError> {
    Ok(ExpiringToken {
        id: opt_id(item, "id")?.ok_or(StoreError::Corrupt("id"))?,
        owner: UserId::parse(get_s(item, "owner")?).map_err(|_| StoreError::Corrupt("owner"))?,
        name: get_s(item, "name")?.to_owned(),
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_applies_only_to_tokens_that_lived_longer_than_it() {
        let seven = Notice::Expiring { days_left: 7 };
        assert!(seven.applies(0, 8 * DAY_SECS));
        assert!(!seven.applies(0, 7 * DAY_SECS));
        assert!(!seven.applies(0, 5 * DAY_SECS));
        assert!(Notice::Expired.applies(0, 1));
        assert_eq!(seven.marker(), "notified_7");
        assert_eq!(Notice::Expired.marker(), "notified_expired");
        assert_eq!(Notice::all().len(), WARNING_DAYS.len() + 1);
    }
}
