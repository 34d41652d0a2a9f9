//! Scopes: the closed set of permissions a principal can hold.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One permission. The set is closed: an unknown string is an error, never ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Read token metadata.
    #[serde(rename = "tokens:read")]
    TokensRead,
    /// Issue, rotate and revoke tokens.
    #[serde(rename = "tokens:write")]
    TokensWrite,
    /// Read items.
    #[serde(rename = "items:read")]
    ItemsRead,
    /// Create, update and delete items.
    #[serde(rename = "items:write")]
    ItemsWrite,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 4] = [
        Scope::TokensRead,
        Scope::TokensWrite,
        Scope::ItemsRead,
        Scope::ItemsWrite,
    ];

    /// The wire name, e.g. `tokens:read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::TokensRead => "tokens:read",
            Scope::TokensWrite => "tokens:write",
            Scope::ItemsRead => "items:read",
            Scope::ItemsWrite => "items:write",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Scope::TokensRead => 1,
            Scope::TokensWrite => 2,
            Scope::ItemsRead => 4,
            Scope::ItemsWrite => 8,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a scope or scope list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeParseError {
    /// The name is not one of [`Scope::ALL`]. Only a bounded prefix is kept.
    #[error("unknown scope `{0}`")]
    Unknown(String),
    /// An empty entry (e.g. two separators in a row).
    #[error("empty scope")]
    Empty,
}

impl FromStr for Scope {
    type Err = ScopeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                if s.is_empty() {
                    ScopeParseError::Empty
                } else {
                    ScopeParseError::Unknown(s.chars().take(40).collect())
                }
            })
    }
}

/// A set of scopes, stored as a bitset so subset checks are one instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// The empty set.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Every scope.
    pub const fn all() -> Self {
        // One bit per variant of `Scope`; `all_contains_every_scope` pins this.
        ScopeSet(0b1111)
    }

    /// Builds a set from scopes.
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        scopes.into_iter().fold(Self::EMPTY, |acc, s| acc.with(s))
    }

    /// Parses a space-separated list (the OAuth `scope` claim form and our context form).
    /// An empty string is the empty set.
    pub fn parse_space_separated(s: &str) -> Result<Self, ScopeParseError> {
        s.split_ascii_whitespace()
            .map(Scope::from_str)
            .try_fold(Self::EMPTY, |acc, r| r.map(|scope| acc.with(scope)))
    }

    /// This set plus `scope`.
    #[must_use]
    pub const fn with(self, scope: Scope) -> Self {
        ScopeSet(self.0 | scope.bit())
    }

    /// Whether `scope` is in the set.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `self` is in `other`.
    pub const fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes in both sets.
    #[must_use]
    pub const fn intersection(self, other: ScopeSet) -> Self {
        ScopeSet(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Every one of the 2^n subsets of all scopes (for exhaustive tests and precomputation).
    pub fn every_subset() -> impl Iterator<Item = ScopeSet> {
        (0..=Self::all().0)
            .map(ScopeSet)
            .filter(|s| s.is_subset_of(Self::all()))
    }

    /// Space-separated wire form, in a stable order.
    pub fn to_space_separated(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Self::from_scopes(iter)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scopes = Vec::<Scope>::deserialize(deserializer)?;
        Ok(Self::from_scopes(scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_name() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn unknown_and_case_variants_are_rejected() {
        for bad in [
            "tokens:READ",
            "Tokens:read",
            "tokens",
            "admin",
            " tokens:read",
            "*",
        ] {
            assert!(
                matches!(bad.parse::<Scope>(), Err(ScopeParseError::Unknown(_))),
                "{bad}"
            );
        }
        assert_eq!("".parse::<Scope>(), Err(ScopeParseError::Empty));
    }

    #[test]
    fn unknown_scope_error_is_bounded() {
        let long = "x".repeat(10_000);
        let ScopeParseError::Unknown(kept) = long.parse::<Scope>().unwrap_err() else {
            unreachable!()
        };
        assert_eq!(kept.len(), 40);
    }

    #[test]
    fn subset_checks() {
        let read = ScopeSet::from_scopes([Scope::TokensRead]);
        let rw = read.with(Scope::TokensWrite);
        assert!(read.is_subset_of(rw));
        assert!(!rw.is_subset_of(read));
        assert!(ScopeSet::EMPTY.is_subset_of(read));
        assert!(rw.is_subset_of(ScopeSet::all()));
    }

    #[test]
    fn all_contains_every_scope_and_nothing_else() {
        assert_eq!(ScopeSet::all(), ScopeSet::from_scopes(Scope::ALL));
    }

    #[test]
    fn there_are_sixteen_subsets() {
        assert_eq!(ScopeSet::every_subset().count(), 16);
    }

    #[test]
    fn space_separated_round_trip() {
        for set in ScopeSet::every_subset() {
            let s = set.to_space_separated();
            assert_eq!(ScopeSet::parse_space_separated(&s).unwrap(), set);
        }
        assert!(ScopeSet::parse_space_separated("items:read bogus").is_err());
    }

    #[test]
    fn json_form_is_a_list_of_names() {
        let set = ScopeSet::from_scopes([Scope::ItemsWrite, Scope::TokensRead]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["tokens:read","items:write"]"#);
        assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), set);
        assert!(serde_json::from_str::<ScopeSet>(r#"["nope"]"#).is_err());
    }
}
