//! A token's history: what happened to it, for its owner (`GET
//! /tokens/{id}/events`).
//!
//! Events are items of their own, `EVENTS#<token id>` / `<at>#<kind>#<nonce>`,
//! written in the same transaction as the change they describe (create,
//! rotate, revoke, edit), so a change never happens without its event. They
//! expire with DynamoDB's TTL after the configured retention
//! (`TOKEN_EVENT_RETENTION_DAYS`). No event holds a secret or a hash: only
//! ids, times, field names, and for `new_ip` the client address and user
//! agent (personal data, kept only as long as the history).

use serde::{Deserialize, Serialize};

use crate::pat::TokenId;
use crate::principal::UserId;

/// Who or what revoked a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedBy {
    /// The owner, with a session (`DELETE /tokens/{id}`).
    Owner,
    /// The token itself (`DELETE /tokens/self`, or a PAT revoking its own id).
    #[serde(rename = "self")]
    Itself,
    /// The owner's `DELETE /tokens` (revoke all).
    RevokeAll,
    /// Someone who held the token reported it leaked (`POST /tokens/revoke`).
    LeakReport,
    /// The owner's Cognito account was disabled or deleted.
    Offboarding,
    /// An administrator (`DELETE /admin/tokens/{id}` or `DELETE
    /// /admin/tokens?owner=`), named in the event's `admin`.
    Admin,
    /// A cause this version does not know (written by a newer one): read
    /// as this, so a history stays readable across a rollback.
    #[serde(other)]
    Other,
}

/// A field an edit changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EditedField {
    /// The name.
    Name,
    /// The description.
    Description,
    /// The scopes (narrowed).
    Scopes,
    /// The expiry (shortened).
    ExpiresAt,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// Issued by `POST /tokens`.
    Created,
    /// Rotation: on the successor `from` is set, on the predecessor `to`.
    Rotated {
        /// The token this one replaced.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<TokenId>,
        /// The token that replaced this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<TokenId>,
    },
    /// Revoked.
    Revoked {
        /// By whom.
        by: RevokedBy,
    },
    /// Metadata edited (`PATCH /tokens/{id}`).
    Updated {
        /// Which fields changed.
        changes: Vec<EditedField>,
    },
    /// First use from an address not among the token's recent use sites.
    NewIp {
        /// Client address.
        ip: String,
        /// Client user agent, truncated.
        #[serde(rename = "userAgent", default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
    },
    /// The expiry warning for a threshold was sent.
    Expiring {
        /// Whole days left at the threshold (30, 7 or 1).
        #[serde(rename = "daysLeft")]
        days_left: u32,
    },
    /// The token expired (the notice was sent).
    Expired,
    /// An administrator read the token: what they saw is `view`; who, the
    /// event's `admin`. Written before the answer leaves, so no admin read
    /// goes unrecorded.
    AdminViewed {
        /// Which view.
        view: AdminView,
    },
    /// An event this version does not know (written by a newer one): read
    /// as this, so a history stays readable across a rollback.
    #[serde(other)]
    Other,
}

impl EventKind {
    /// A short stable name, part of the item's sort key.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Rotated { .. } => "rotated",
            EventKind::Revoked { .. } => "revoked",
            EventKind::Updated { .. } => "updated",
            EventKind::NewIp { .. } => "new_ip",
            EventKind::Expiring { .. } => "expiring",
            EventKind::Expired => "expired",
            EventKind::AdminViewed { .. } => "admin_viewed",
            EventKind::Other => "other",
        }
    }
}

/// What an administrator read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminView {
    /// The token's metadata (`GET /admin/tokens/{id}`).
    Metadata,
    /// The token's history (`GET /admin/tokens/{id}/events`).
    History,
    /// The token in a listing of its owner's tokens (`GET /admin/tokens`).
    Listing,
    /// A view this version does not know.
    #[serde(other)]
    Other,
}

/// An administrator who acted on someone else's token, as the history and
/// the audit log name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// Their Cognito `sub`.
    pub sub: UserId,
    /// Their Cognito username, when the session carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// Why a token is revoked, and the administrator when one revoked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoker {
    /// The cause.
    pub by: RevokedBy,
    /// The administrator, for [`RevokedBy::Admin`].
    pub admin: Option<Admin>,
}

impl Revoker {
    /// A revocation by `admin`.
    pub fn admin(admin: Admin) -> Self {
        Self {
            by: RevokedBy::Admin,
            admin: Some(admin),
        }
    }
}

impl From<RevokedBy> for Revoker {
    fn from(by: RevokedBy) -> Self {
        Self { by, admin: None }
    }
}

/// One event of a token's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    /// The token it is about.
    pub token: TokenId,
    /// When, Unix seconds.
    pub at: i64,
    /// What happened.
    pub kind: EventKind,
    /// The administrator who did it, when one did.
    pub admin: Option<Admin>,
}

impl TokenEvent {
    /// An event nobody in particular caused (the owner, the token, the system).
    pub fn new(token: TokenId, at: i64, kind: EventKind) -> Self {
        Self {
            token,
            at,
            kind,
            admin: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A newer version may add event kinds and causes; an older reader
    /// shows them as `other` instead of failing the whole history.
    #[test]
    fn unknown_kinds_and_causes_from_a_newer_version_read_as_other() {
        let kind: EventKind =
            serde_json::from_value(serde_json::json!({"type": "admin_note", "x": 1})).unwrap();
        assert_eq!(kind, EventKind::Other);
        let kind: EventKind =
            serde_json::from_value(serde_json::json!({"type": "revoked", "by": "auditor"}))
                .unwrap();
        assert_eq!(
            kind,
            EventKind::Revoked {
                by: RevokedBy::Other
            }
        );
    }

    #[test]
    fn events_serialize_with_a_type_and_camel_case_fields() {
        let json = |k: &EventKind| serde_json::to_value(k).unwrap();
        assert_eq!(
            json(&EventKind::Revoked {
                by: RevokedBy::Itself
            }),
            serde_json::json!({"type": "revoked", "by": "self"})
        );
        assert_eq!(
            json(&EventKind::Expiring { days_left: 7 }),
            serde_json::json!({"type": "expiring", "daysLeft": 7})
        );
        assert_eq!(
            json(&EventKind::NewIp {
                ip: "192.0.2.1".into(),
                user_agent: None
            }),
            serde_json::json!({"type": "new_ip", "ip": "192.0.2.1"})
        );
        assert_eq!(
            json(&EventKind::Updated {
                changes: vec![EditedField::ExpiresAt]
            }),
            serde_json::json!({"type": "updated", "changes": ["expiresAt"]})
        );
        for kind in [
            EventKind::Created,
            EventKind::Expired,
            EventKind::Rotated {
                from: None,
                to: Some(TokenId::parse("0123456789ABCDEFG").unwrap()),
            },
        ] {
            let back: EventKind = serde_json::from_value(json(&kind)).unwrap();
            assert_eq!(back, kind);
            assert_eq!(json(&kind)["type"], kind.name());
        }
    }
}

/// The `source` of every event agpat puts on its EventBridge bus.
pub const BUS_SOURCE: &str = "agpat";

/// What an event on the bus announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusEventKind {
    /// `agpat.token.expiring`: `days_left` days remain.
    Expiring {
        /// Days left (30, 7 or 1).
        days_left: u32,
    },
    /// `agpat.token.expired`.
    Expired,
    /// `agpat.token.leak_reported`: a holder reported the token leaked and
    /// it was revoked.
    LeakReported,
}

/// An event for the owner's eyes on the agpat bus (and from there, through
/// rules, to emails, chat or webhooks). It names the token, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    /// What happened.
    pub kind: BusEventKind,
    /// The token.
    pub token: TokenId,
    /// Its owner (Cognito `sub`).
    pub owner: crate::principal::UserId,
    /// Its name.
    pub name: String,
    /// Its expiry, Unix seconds.
    pub expires_at: i64,
    /// When the event happened, Unix seconds.
    pub at: i64,
}

impl BusEvent {
    /// The EventBridge `detail-type`.
    pub fn detail_type(&self) -> &'static str {
        match self.kind {
            BusEventKind::Expiring { .. } => "agpat.token.expiring",
            BusEventKind::Expired => "agpat.token.expired",
            BusEventKind::LeakReported => "agpat.token.leak_reported",
        }
    }

    /// The EventBridge `detail`.
    pub fn detail(&self) -> serde_json::Value {
        let mut detail = serde_json::json!({
            "tokenId": self.token.as_str(),
            "owner": self.owner.as_str(),
            "name": self.name,
            "expiresAt": rfc3339(self.expires_at),
            "at": rfc3339(self.at),
        });
        if let (BusEventKind::Expiring { days_left }, Some(map)) =
            (self.kind, detail.as_object_mut())
        {
            map.insert("daysLeft".to_owned(), serde_json::json!(days_left));
        }
        detail
    }

    /// Reads back an event as EventBridge delivers it to a rule's target
    /// (`source`, `detail-type`, `detail`). `None` for anything else.
    pub fn from_delivery(event: &serde_json::Value) -> Option<Self> {
        if event.get("source")?.as_str()? != BUS_SOURCE {
            return None;
        }
        let detail = event.get("detail")?;
        let text = |key: &str| detail.get(key).and_then(|v| v.as_str());
        let time = |key: &str| {
            time::OffsetDateTime::parse(text(key)?, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(time::OffsetDateTime::unix_timestamp)
        };
        let kind = match event.get("detail-type")?.as_str()? {
            "agpat.token.expiring" => BusEventKind::Expiring {
                days_left: u32::try_from(detail.get("daysLeft")?.as_u64()?).ok()?,
            },
            "agpat.token.expired" => BusEventKind::Expired,
            "agpat.token.leak_reported" => BusEventKind::LeakReported,
            _ => return None,
        };
        Some(Self {
            kind,
            token: TokenId::parse(text("tokenId")?).ok()?,
            owner: crate::principal::UserId::parse(text("owner")?).ok()?,
            name: text("name")?
                .chars()
                .take(crate::record::MAX_TOKEN_NAME_CHARS)
                .collect(),
            expires_at: time("expiresAt")?,
            at: time("at")?,
        })
    }
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod bus_tests {
    use super::*;

    #[test]
    fn a_bus_event_reads_back_as_eventbridge_delivers_it() {
        let event = BusEvent {
            kind: BusEventKind::Expiring { days_left: 7 },
            token: TokenId::parse("0123456789ABCDEFG").unwrap(),
            owner: crate::principal::UserId::parse("u-1").unwrap(),
            name: "ci".into(),
            expires_at: 1_900_000_000,
            at: 1_899_000_000,
        };
        let delivered = serde_json::json!({
            "source": BUS_SOURCE,
            "detail-type": event.detail_type(),
            "detail": event.detail(),
        });
        assert_eq!(event.detail()["daysLeft"], 7);
        assert_eq!(BusEvent::from_delivery(&delivered), Some(event));
        let mut foreign = delivered.clone();
        foreign["source"] = serde_json::json!("aws.events");
        assert_eq!(BusEvent::from_delivery(&foreign), None);
    }
}
