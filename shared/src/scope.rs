//! Scopes: the permissions a principal can hold.
//!
//! The set of scopes is data: the built-in token scopes plus whatever an
//! adopter's manifest declares ([`crate::manifest`]). A [`ScopeRegistry`]
//! maps names to [`Scope`] indices, and a [`ScopeSet`] is a 128-bit set of
//! them, so a subset check is two instructions whatever the scope count.
//!
//! Stored tokens keep scope *names* ([`ScopeNames`]), never bits: reordering
//! or shrinking a manifest cannot make a stored token gain a scope. A name the
//! manifest no longer declares is dropped when the token is read.

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

/// The most scopes one manifest can declare, built-in ones included.
pub const MAX_SCOPES: usize = 128;

/// Longest scope name, in bytes.
pub const MAX_SCOPE_NAME_BYTES: usize = 64;

/// One permission: an index into a [`ScopeRegistry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(u8);

impl Scope {
    /// `tokens:read`: read token metadata. Built in, always index 0.
    pub const TOKENS_READ: Scope = Scope(0);
    /// `tokens:write`: issue, rotate and revoke tokens. Built in, always index 1.
    pub const TOKENS_WRITE: Scope = Scope(1);
    /// `admin:tokens`: act on anyone's tokens (the `/admin/tokens` routes).
    /// Built in, always index 2. Only a Cognito session can hold it, and only
    /// through a `[sessions.groups]` entry: it is never a default session
    /// scope and never within a PAT's ceiling.
    pub const ADMIN_TOKENS: Scope = Scope(2);

    /// The index in its registry (the bit in a [`ScopeSet`]).
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    const fn bit(self) -> u128 {
        1u128 << (self.0 as u32 & 127)
    }
}

/// The built-in scopes, in index order: name and description.
pub const BUILT_IN_SCOPES: [(&str, &str); 3] = [
    ("tokens:read", "Read your tokens' metadata"),
    ("tokens:write", "Issue, rotate and revoke your tokens"),
    (
        "admin:tokens",
        "Administer anyone's tokens (Cognito sessions, by group only)",
    ),
];

/// Why a string is not a scope or scope list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeParseError {
    /// The name is not declared. Only a bounded prefix is kept.
    #[error("unknown scope `{0}`")]
    Unknown(String),
    /// An empty entry.
    #[error("empty scope")]
    Empty,
}

/// Whether `name` is a well-formed scope name: 1 to 64 bytes of lower-case
/// ASCII letters, digits and `:._-`, starting with a letter. (A subset of
/// RFC 6749's scope-token, so it survives the space-separated forms.)
pub fn is_valid_scope_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= MAX_SCOPE_NAME_BYTES
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b':' | b'.' | b'_' | b'-'))
}

/// A set of scopes, as a bitset over one registry's indices.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct ScopeSet(u128);

impl ScopeSet {
    /// The empty set.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Builds a set from scopes.
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        scopes.into_iter().fold(Self::EMPTY, |acc, s| acc.with(s))
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

    /// The scopes in either set.
    #[must_use]
    pub const fn union(self, other: ScopeSet) -> Self {
        ScopeSet(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many scopes the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The scopes, in index order (one step per member, not per bit).
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let index = u8::try_from(rest.trailing_zeros())
                .ok()
                .filter(|&i| i < 128)?;
            rest &= rest - 1;
            Some(Scope(index))
        })
    }

    /// The raw bits (stable only within one registry; never store them).
    pub const fn bits(self) -> u128 {
        self.0
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::index))
            .finish()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        Self::from_scopes(iter)
    }
}

/// The declared scopes of one API: the built-in token scopes first, then the
/// manifest's, in declaration order. Built once at start-up.
#[derive(Debug, Clone)]
pub struct ScopeRegistry {
    names: Vec<Box<str>>,
    descriptions: Vec<Box<str>>,
    index: HashMap<Box<str>, Scope>,
}

/// Why a registry cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The name is malformed.
    #[error("scope name `{0}` is malformed: 1-64 of a-z 0-9 : . _ -, starting with a letter")]
    Malformed(String),
    /// The name is declared twice (or redeclares a built-in scope).
    #[error(
        "scope `{0}` is declared more than once (tokens:read, tokens:write and admin:tokens are built in)"
    )]
    Duplicate(String),
    /// Too many scopes.
    #[error("more than {MAX_SCOPES} scopes (built-in ones included)")]
    TooMany,
}

impl ScopeRegistry {
    /// Only the built-in token scopes.
    pub fn built_in() -> Self {
        let mut registry = Self {
            names: Vec::new(),
            descriptions: Vec::new(),
            index: HashMap::new(),
        };
        for (name, description) in BUILT_IN_SCOPES {
            registry.push(name, description);
        }
        registry
    }

    fn push(&mut self, name: &str, description: &str) -> Scope {
        let scope = Scope(u8::try_from(self.names.len()).unwrap_or(u8::MAX));
        self.names.push(name.into());
        self.descriptions.push(description.into());
        self.index.insert(name.into(), scope);
        scope
    }

    /// The built-in scopes plus `declared` (name, description), in order.
    pub fn with_declared<'a>(
        declared: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, RegistryError> {
        let mut registry = Self::built_in();
        for (name, description) in declared {
            registry.declare(name, description)?;
        }
        Ok(registry)
    }

    /// Adds one scope.
    pub fn declare(&mut self, name: &str, description: &str) -> Result<Scope, RegistryError> {
        if !is_valid_scope_name(name) {
            return Err(RegistryError::Malformed(name.chars().take(80).collect()));
        }
        if self.index.contains_key(name) {
            return Err(RegistryError::Duplicate(name.to_owned()));
        }
        if self.names.len() >= MAX_SCOPES {
            return Err(RegistryError::TooMany);
        }
        Ok(self.push(name, description))
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no scopes (never: the built-in ones always exist).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every declared scope.
    pub fn all(&self) -> ScopeSet {
        (0..self.names.len())
            .filter_map(|i| u8::try_from(i).ok())
            .map(Scope)
            .collect()
    }

    /// Every scope with its name and description, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Scope, &str, &str)> {
        self.names
            .iter()
            .zip(&self.descriptions)
            .enumerate()
            .filter_map(|(i, (n, d))| Some((Scope(u8::try_from(i).ok()?), &**n, &**d)))
    }

    /// The scope called `name`.
    pub fn parse(&self, name: &str) -> Result<Scope, ScopeParseError> {
        self.index.get(name).copied().ok_or_else(|| {
            if name.is_empty() {
                ScopeParseError::Empty
            } else {
                ScopeParseError::Unknown(name.chars().take(40).collect())
            }
        })
    }

    /// Parses a space-separated list (the OAuth `scope` claim form and our
    /// context form); any unknown name is an error. Empty is the empty set.
    pub fn parse_space_separated(&self, s: &str) -> Result<ScopeSet, ScopeParseError> {
        s.split_ascii_whitespace()
            .map(|n| self.parse(n))
            .try_fold(ScopeSet::EMPTY, |acc, r| r.map(|scope| acc.with(scope)))
    }

    /// The declared scopes among `names`; undeclared names are dropped, so a
    /// stored token keeps the scopes that remain and never gains others.
    pub fn resolve(&self, names: &ScopeNames) -> ScopeSet {
        names
            .iter()
            .filter_map(|n| self.index.get(n).copied())
            .collect()
    }

    /// The name of `scope` (empty for an index this registry does not have).
    pub fn name(&self, scope: Scope) -> &str {
        self.names.get(scope.index()).map_or("", |n| n)
    }

    /// The description of `scope`.
    pub fn description(&self, scope: Scope) -> &str {
        self.descriptions.get(scope.index()).map_or("", |n| n)
    }

    /// The names of `set`, in index order.
    pub fn names(&self, set: ScopeSet) -> ScopeNames {
        ScopeNames::from_names(set.iter().map(|s| self.name(s).to_owned()))
    }

    /// Space-separated names of `set`, in index order.
    pub fn to_space_separated(&self, set: ScopeSet) -> String {
        let mut out = String::new();
        for scope in set.iter() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(self.name(scope));
        }
        out
    }

    /// Every subset of all scopes, for exhaustive tests. `None` above 20
    /// scopes (a million subsets), where exhaustive checks stop making sense.
    pub fn every_subset(&self) -> Option<impl Iterator<Item = ScopeSet>> {
        let n = u32::try_from(self.len()).ok().filter(|n| *n <= 20)?;
        Some((0u128..(1u128 << n)).map(ScopeSet))
    }
}

/// Scope names as stored with a token: sorted, without duplicates, each
/// well-formed, but not necessarily declared by the current manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct ScopeNames(Vec<String>);

impl ScopeNames {
    /// From names (sorted and deduplicated here).
    pub fn from_names(names: impl IntoIterator<Item = String>) -> Self {
        let mut v: Vec<String> = names.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    /// Parses a space-separated list, checking only that each name is
    /// well-formed.
    pub fn parse_space_separated(s: &str) -> Option<Self> {
        let names: Vec<String> = s.split_ascii_whitespace().map(str::to_owned).collect();
        names
            .iter()
            .all(|n| is_valid_scope_name(n))
            .then(|| Self::from_names(names))
    }

    /// The names.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Space-separated form.
    pub fn to_space_separated(&self) -> String {
        self.0.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ScopeRegistry {
        ScopeRegistry::with_declared([("items:read", "r"), ("items:write", "w")]).unwrap()
    }

    #[test]
    fn built_in_scopes_come_first() {
        let r = registry();
        assert_eq!(r.parse("tokens:read"), Ok(Scope::TOKENS_READ));
        assert_eq!(r.parse("tokens:write"), Ok(Scope::TOKENS_WRITE));
        assert_eq!(r.parse("admin:tokens"), Ok(Scope::ADMIN_TOKENS));
        assert_eq!(r.parse("items:write").unwrap().index(), 4);
        assert_eq!(r.len(), 5);
    }

    #[test]
    fn every_scope_round_trips_through_its_name() {
        let r = registry();
        for (scope, name, _) in r.iter() {
            assert_eq!(r.parse(name), Ok(scope));
            assert_eq!(r.name(scope), name);
        }
    }

    #[test]
    fn unknown_and_case_variants_are_rejected() {
        let r = registry();
        for bad in [
            "tokens:READ",
            "Tokens:read",
            "tokens",
            "admin",
            " tokens:read",
            "*",
        ] {
            assert!(
                matches!(r.parse(bad), Err(ScopeParseError::Unknown(_))),
                "{bad}"
            );
        }
        assert_eq!(r.parse(""), Err(ScopeParseError::Empty));
        let ScopeParseError::Unknown(kept) = r.parse(&"x".repeat(10_000)).unwrap_err() else {
            unreachable!()
        };
        assert_eq!(kept.len(), 40);
    }

    #[test]
    fn malformed_duplicate_and_too_many_declarations_are_refused() {
        for bad in ["", "Items:read", "1x", "a b", "a*", &"a".repeat(65)] {
            assert!(
                matches!(
                    ScopeRegistry::with_declared([(bad, "")]),
                    Err(RegistryError::Malformed(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            ScopeRegistry::with_declared([("tokens:read", "")]).unwrap_err(),
            RegistryError::Duplicate("tokens:read".into())
        );
        let declarable = MAX_SCOPES - BUILT_IN_SCOPES.len();
        let names: Vec<String> = (0..declarable).map(|i| format!("s{i}")).collect();
        let full = ScopeRegistry::with_declared(names.iter().map(|n| (n.as_str(), ""))).unwrap();
        assert_eq!(full.len(), MAX_SCOPES);
        let mut over = full.clone();
        assert_eq!(over.declare("one-more", ""), Err(RegistryError::TooMany));
        // The 128th scope is a real bit, distinct from every other.
        let last = full.parse(&format!("s{}", declarable - 1)).unwrap();
        assert_eq!(last.index(), 127);
        assert!(full.all().contains(last));
        assert_eq!(full.all().len(), 128);
        assert!(!ScopeSet::EMPTY.with(last).contains(Scope::TOKENS_READ));
    }

    #[test]
    fn subset_checks() {
        let r = registry();
        let read = ScopeSet::EMPTY.with(Scope::TOKENS_READ);
        let rw = read.with(Scope::TOKENS_WRITE);
        assert!(read.is_subset_of(rw));
        assert!(!rw.is_subset_of(read));
        assert!(ScopeSet::EMPTY.is_subset_of(read));
        assert!(rw.is_subset_of(r.all()));
        assert_eq!(r.every_subset().unwrap().count(), 32);
    }

    #[test]
    fn space_separated_round_trip() {
        let r = registry();
        for set in r.every_subset().unwrap() {
            let s = r.to_space_separated(set);
            assert_eq!(r.parse_space_separated(&s).unwrap(), set);
        }
        assert!(r.parse_space_separated("items:read bogus").is_err());
    }

    #[test]
    fn stored_names_resolve_to_what_remains_declared() {
        let before = registry();
        let names = before.names(before.all());
        // The next manifest drops items:write and adds items:admin first.
        let after =
            ScopeRegistry::with_declared([("items:admin", ""), ("items:read", "")]).unwrap();
        let kept = after.resolve(&names);
        assert_eq!(
            after.to_space_separated(kept),
            "tokens:read tokens:write admin:tokens items:read"
        );
        assert!(!kept.contains(after.parse("items:admin").unwrap()));
    }

    #[test]
    fn stored_names_are_sorted_and_checked_for_form_only() {
        let n = ScopeNames::parse_space_separated("b:x a:y b:x").unwrap();
        assert_eq!(n.to_space_separated(), "a:y b:x");
        assert!(ScopeNames::parse_space_separated("A").is_none());
        assert!(ScopeNames::parse_space_separated("").unwrap().is_empty());
    }
}
