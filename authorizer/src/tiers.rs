//! Rate tiers: which usage-plan API key a decision names
//! (`usageIdentifierKey`), so that API Gateway throttles and meters per tier
//! rather than per stage.
//!
//! API Gateway accounts cap API keys per region, so tokens do not get a key
//! each: every token carries a tier (its own, or the default), and a tier
//! has one or more keys, each with the tier's full limits. A token always
//! maps to the same key of its tier (a stable hash of its id), so one
//! runaway token can exhaust at most its key's share of its tier, and never
//! another tier. Sessions and services use the default tier, by `sub`.

use std::collections::BTreeMap;

use shared::config::{ConfigError, Env, optional};

/// Most keys one tier may have.
pub const MAX_KEYS_PER_TIER: usize = 64;

/// The tiers and their usage-plan API key values, from `RATE_TIER_KEYS`
/// (`tier=key1|key2,tier2=key3`) and `RATE_TIER_DEFAULT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTiers {
    keys: BTreeMap<String, Vec<String>>,
    default: String,
}

const EXPECTED_KEYS: &str = "tier=key|key,… with tier names of a-z 0-9 - (1 to 32) and API key values of 20 to 128 A-Z a-z 0-9 - _";

/// Whether `name` is a well-formed tier name: 1 to 32 of `a-z 0-9 -`.
pub fn is_tier_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl RateTiers {
    /// Reads the tiers; `None` when `RATE_TIER_KEYS` is unset (decisions name
    /// no key, and no usage plan applies).
    ///
    /// # Errors
    /// A malformed list, or a default that is not one of the tiers.
    pub fn from_env(env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let Some(raw) = optional(env, "RATE_TIER_KEYS") else {
            return Ok(None);
        };
        let bad = ConfigError {
            var: "RATE_TIER_KEYS",
            expected: EXPECTED_KEYS,
        };
        let mut keys = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tier, values) = entry.split_once('=').ok_or_else(|| bad.clone())?;
            let tier = tier.trim();
            let values: Vec<String> = values.split('|').map(|v| v.trim().to_owned()).collect();
            let key_ok = |v: &String| {
                (20..=128).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if !is_tier_name(tier)
                || values.is_empty()
                || values.len() > MAX_KEYS_PER_TIER
                || !values.iter().all(key_ok)
                || keys.insert(tier.to_owned(), values).is_some()
            {
                return Err(bad);
            }
        }
        let default = optional(env, "RATE_TIER_DEFAULT")
            .or_else(|| keys.keys().next().cloned())
            .filter(|d| keys.contains_key(d))
            .ok_or(ConfigError {
                var: "RATE_TIER_DEFAULT",
                expected: "one of the tiers in RATE_TIER_KEYS",
            })?;
        Ok(Some(Self { keys, default }))
    }

    /// Tiers from their keys (tier name to key values) and the default
    /// tier; `None` when a name, a key or the default is malformed.
    pub fn new(keys: BTreeMap<String, Vec<String>>, default: &str) -> Option<Self> {
        let ok = keys.contains_key(default)
            && keys.iter().all(|(tier, values)| {
                is_tier_name(tier) && !values.is_empty() && values.len() <= MAX_KEYS_PER_TIER
            });
        ok.then(|| Self {
            keys,
            default: default.to_owned(),
        })
    }

    /// The tier names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The default tier.
    pub fn default_tier(&self) -> &str {
        &self.default
    }

    /// The key for a principal: its token's `tier` (the default when none, or
    /// one this deployment no longer has), picked within the tier by a stable
    /// hash of `who` (the token id, else the `sub`).
    pub fn key_for(&self, tier: Option<&str>, who: &str) -> &str {
        let keys = tier
            .and_then(|t| self.keys.get(t))
            .or_else(|| self.keys.get(&self.default))
            .map(Vec::as_slice)
            .unwrap_or_default();
        if keys.is_empty() {
            return "";
        }
        // FNV-1a: stable across instances and releases (not a secret).
        let hash = who.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let index = usize::try_from(hash % keys.len() as u64).unwrap_or(0);
        keys.get(index).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "aaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn tiers_parse_and_map_every_principal_to_one_stable_key() {
        let env = [
            (
                "RATE_TIER_KEYS",
                "standard=std-key-00000000000000|std-key-11111111111111, slow=slow-key-000000000000",
            ),
            ("RATE_TIER_DEFAULT", "standard"),
        ];
        let tiers = RateTiers::from_env(&env).unwrap().unwrap();
        assert_eq!(
            tiers.key_for(Some("slow"), "tokenA"),
            "slow-key-000000000000"
        );
        let first = tiers.key_for(None, "tokenA");
        assert!(first.starts_with("std-key-"));
        assert_eq!(tiers.key_for(None, "tokenA"), first, "stable");
        assert_eq!(
            tiers.key_for(Some("gone"), "tokenA"),
            first,
            "unknown tier: default"
        );
        let spread: std::collections::BTreeSet<&str> = (0..64)
            .map(|i| tiers.key_for(Some("standard"), &format!("token{i}")))
            .collect();
        assert_eq!(spread.len(), 2, "tokens spread over the tier's keys");
        assert_eq!(RateTiers::from_env(&[("X", "y")]).unwrap(), None);
    }

    #[test]
    fn malformed_tiers_are_configuration_errors() {
        for bad in [
            "standard",
            "Standard=aaaaaaaaaaaaaaaaaaaa",
            "standard=short",
            "standard=aaaaaaaaaaaaaaaaaaaa,standard=bbbbbbbbbbbbbbbbbbbb",
            "standard=aaaaaaaaaaaaaaaaaaa!",
        ] {
            let err = RateTiers::from_env(&[("RATE_TIER_KEYS", bad)]).unwrap_err();
            assert_eq!(err.var, "RATE_TIER_KEYS", "{bad}");
        }
        let err = RateTiers::from_env(&[
            ("RATE_TIER_KEYS", &format!("standard={K}") as &str),
            ("RATE_TIER_DEFAULT", "bulk"),
        ]);
        assert_eq!(err.unwrap_err().var, "RATE_TIER_DEFAULT");
    }
}
