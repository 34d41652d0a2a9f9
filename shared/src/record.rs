//! The stored form of a PAT's metadata.

use crate::hash::PhcHash;
use crate::pat::TokenId;
use crate::principal::UserId;
use crate::scope::ScopeNames;

/// The schema version this code writes. Readers accept it and the one before.
///
/// - v1: `scopes` as a space-separated string.
/// - v2: adds `scope_set`, a DynamoDB string set the authorizer reads; `scopes`
///   is still written (additive change: v1 readers and the GSI keep working).
pub const CURRENT_SCHEMA_VERSION: u32 = 2;

/// The previous version, still read (and upgraded in memory).
pub const PREVIOUS_SCHEMA_VERSION: u32 = 1;

/// Longest token name, in characters, after trimming.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// A token's metadata: everything we store about it except the hash.
/// This is what listings and inspections return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMeta {
    /// Public token id.
    pub id: TokenId,
    /// The owning user.
    pub owner: UserId,
    /// Human-chosen label.
    pub name: String,
    /// What the token may do, by name. Names the manifest no longer
    /// declares grant nothing ([`crate::ScopeRegistry::resolve`]).
    pub scopes: ScopeNames,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds. Mandatory: there are no eternal tokens.
    pub expires_at: i64,
    /// Last successful use, Unix seconds (throttled, approximate).
    pub last_used_at: Option<i64>,
    /// Revocation time, Unix seconds.
    pub revoked_at: Option<i64>,
    /// The token this one replaced by rotation.
    pub rotated_from: Option<TokenId>,
    /// The token that replaced this one by rotation.
    pub rotated_to: Option<TokenId>,
    /// Schema version of the stored item.
    pub schema_version: u32,
    /// The owner's revocation epoch when this token's chain began (absent in
    /// older items: 0). A revoke-all raises the owner's epoch first; create
    /// and rotate commit only while the epoch they read is still current, so
    /// nothing minted before a revoke-all can outlive it.
    pub epoch: i64,
}

/// A token's metadata plus the argon2id hash of its secret. The secret itself
/// is never stored.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The metadata.
    pub meta: TokenMeta,
    /// argon2id PHC hash of the secret.
    pub hash: PhcHash,
}

/// The lifecycle state of a token at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    /// Usable.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked (explicitly, or by rotation without overlap).
    Revoked,
}

impl TokenMeta {
    /// The token's status at `now` (Unix seconds). Revocation wins over expiry.
    pub fn status(&self, now: i64) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if now >= self.expires_at {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }

    /// Whether the token may authenticate at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.status(now) == TokenStatus::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at: i64, revoked_at: Option<i64>) -> TokenMeta {
        TokenMeta {
            id: TokenId::parse("0123456789ABCDEFG").unwrap(),
            owner: UserId::parse("u1").unwrap(),
            name: "ci".into(),
            scopes: ScopeNames::default(),
            created_at: 0,
            expires_at,
            last_used_at: None,
            revoked_at,
            rotated_from: None,
            rotated_to: None,
            schema_version: CURRENT_SCHEMA_VERSION,
            epoch: 0,
        }
    }

    #[test]
    fn status_at_boundaries() {
        assert_eq!(record(100, None).status(99), TokenStatus::Active);
        assert_eq!(record(100, None).status(100), TokenStatus::Expired);
        assert_eq!(record(100, Some(50)).status(60), TokenStatus::Revoked);
        assert_eq!(record(100, Some(50)).status(200), TokenStatus::Revoked);
        assert_eq!(record(100, Some(80)).status(70), TokenStatus::Revoked);
    }
}
