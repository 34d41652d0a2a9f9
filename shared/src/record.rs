//! The stored form of a PAT's metadata.

use crate::hash::PhcHash;
use crate::pat::TokenId;
use crate::principal::UserId;
use crate::scope::ScopeNames;

/// The schema version this code writes. Readers accept every version from
/// [`OLDEST_READ_SCHEMA_VERSION`] up to it.
///
/// - v1: `scopes` as a space-separated string.
/// - v2: adds `scope_set`, a DynamoDB string set the authorizer reads; `scopes`
///   is still written (additive change: v1 readers and the GSI keep working).
/// - v3: adds `GSI2PK` / `GSI2SK`, the keys of the expiry index
///   ([`crate::store::GSI2`]), so the expiry sweeper can ask for "tokens
///   expiring between A and B" without a scan. Additive: v2 readers ignore
///   them. Older items get them from the `tokens-to-v3` migration.
/// - v4 ([`RESTRICTED_SCHEMA_VERSION`]): v3 plus `cidrs`, only on tokens
///   with an IP allow-list.
/// - v5 ([`BOUND_SCHEMA_VERSION`]): v4 plus `jkt`, only on tokens bound to a
///   DPoP key.
pub const CURRENT_SCHEMA_VERSION: u32 = 3;

/// The version of a token that carries an IP allow-list (`cidrs`): v3 plus
/// that attribute. Releases before it read only up to v3, so they refuse
/// such a token instead of ignoring a restriction they do not know (a
/// rollback fails closed). Tokens without an allow-list keep
/// [`CURRENT_SCHEMA_VERSION`].
pub const RESTRICTED_SCHEMA_VERSION: u32 = 4;

/// The version of a token bound to a DPoP key (`jkt`, RFC 9449): v4 plus
/// that attribute. Releases before it read only up to v4, so they refuse
/// such a token instead of accepting it as a bearer token (a rollback fails
/// closed). Unbound tokens keep their version.
pub const BOUND_SCHEMA_VERSION: u32 = 5;

/// The oldest version still read (and upgraded in memory). A version is
/// dropped here only after a migration has reported none left everywhere.
pub const OLDEST_READ_SCHEMA_VERSION: u32 = 1;

/// Longest token name, in characters, after trimming.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// Longest token description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// How many distinct use sites a token keeps (the most recent ones).
pub const MAX_USE_SITES: usize = 5;

/// Longest user agent kept in a use site, in characters (longer ones are cut).
pub const MAX_USER_AGENT_CHARS: usize = 128;

/// Longest user agent kept in a use site, in UTF-8 bytes: with
/// [`MAX_USE_SITES`], bounds what use sites add to a token item (and so to
/// the read units of the authorizer's strongly consistent read).
pub const MAX_USER_AGENT_BYTES: usize = 256;

/// Longest source address kept in a use site (an IPv6 address is at most 45).
pub const MAX_IP_CHARS: usize = 45;

/// One place a token was used from: the client address API Gateway saw, the
/// user agent (cut to [`MAX_USER_AGENT_CHARS`]) and when (Unix seconds).
///
/// Addresses are personal data: they are kept only in the token's record
/// (at most [`MAX_USE_SITES`]) and in its history, which expire with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseSite {
    /// Client address.
    pub ip: String,
    /// Client user agent, truncated; `None` when the request had none.
    pub user_agent: Option<String>,
    /// When, Unix seconds.
    pub at: i64,
}

impl UseSite {
    /// A site from what a request carried, cut to the stored bounds. `None`
    /// when the address is empty (nothing to show).
    pub fn from_request(ip: &str, user_agent: Option<&str>, at: i64) -> Option<Self> {
        let ip: String = ip
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_IP_CHARS)
            .collect();
        if ip.is_empty() {
            return None;
        }
        let user_agent = user_agent
            .map(|ua| {
                let mut out = String::new();
                for c in ua
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                {
                    if out.len() + c.len_utf8() > MAX_USER_AGENT_BYTES {
                        break;
                    }
                    out.push(c);
                }
                out
            })
            .filter(|ua| !ua.is_empty());
        Some(Self { ip, user_agent, at })
    }

    /// `known` with `new` merged in: one entry per address (the newest use
    /// wins), newest first, at most [`MAX_USE_SITES`].
    pub fn merge(known: &[UseSite], new: &[UseSite]) -> Vec<UseSite> {
        let mut all: Vec<UseSite> = known.iter().chain(new).cloned().collect();
        all.sort_by_key(|site| std::cmp::Reverse(site.at));
        let mut out: Vec<UseSite> = Vec::with_capacity(MAX_USE_SITES);
        for site in all {
            if out.len() == MAX_USE_SITES {
                break;
            }
            if !out.iter().any(|s| s.ip == site.ip) {
                out.push(site);
            }
        }
        out
    }
}

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
    /// Free text from the owner (at most [`MAX_DESCRIPTION_CHARS`]).
    pub description: Option<String>,
    /// The last distinct places the token was used from, newest first (at
    /// most [`MAX_USE_SITES`]; written with the throttled `last_used_at`).
    pub recent_uses: Vec<UseSite>,
    /// Schema version of the stored item.
    pub schema_version: u32,
    /// The client networks the token may be used from (`allowedCidrs`);
    /// empty: anywhere. At most [`MAX_ALLOWED_CIDRS`], each normalised
    /// (host bits cleared) and never `/0`.
    pub allowed_cidrs: Vec<ipnet::IpNet>,
    /// The rate tier the token was issued in (`rateTier`): which usage plan
    /// throttles it. `None`: the deployment's default tier.
    pub rate_tier: Option<String>,
    /// The owner's revocation epoch when this token's chain began (absent in
    /// older items: 0). A revoke-all raises the owner's epoch first; create
    /// and rotate commit only while the epoch they read is still current, so
    /// nothing minted before a revoke-all can outlive it.
    pub epoch: i64,
    /// The RFC 7638 thumbprint of the key the token is bound to (DPoP,
    /// RFC 9449): every use needs a fresh proof signed by that key. `None`:
    /// a bearer token.
    pub dpop_jkt: Option<crate::dpop::Jkt>,
}

/// Most networks one token's allow-list may hold.
pub const MAX_ALLOWED_CIDRS: usize = 16;

/// Whether `source_ip` falls inside one of `allowed` (see
/// [`TokenMeta::allows_address`]); an empty list allows every address.
pub fn allows_address(allowed: &[ipnet::IpNet], source_ip: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Ok(ip) = source_ip.trim().parse::<std::net::IpAddr>() else {
        return false;
    };
    let ip = ip.to_canonical();
    allowed.iter().any(|net| net.contains(&ip))
}

/// Parses one allow-list entry: a network (`198.51.100.0/24`,
/// `2001:db8::/32`) or a single address; host bits are cleared. `/0` is
/// refused (it allows everything: leave the list out instead).
pub fn parse_cidr(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    let net = match text.parse::<ipnet::IpNet>() {
        Ok(net) => net,
        Err(_) => ipnet::IpNet::from(text.parse::<std::net::IpAddr>().ok()?.to_canonical()),
    };
    // Requests from IPv4-mapped addresses are matched as IPv4, so a mapped
    // network is stored as the IPv4 network it names (else it matched nothing).
    let net = match net {
        ipnet::IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::IpNet::V4(ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).ok()?),
            None => net,
        },
        _ => net,
    };
    (net.prefix_len() > 0).then(|| net.trunc())
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
    /// A newly issued token's metadata: never used, revoked or rotated, no
    /// description, at the current schema version, epoch 0 (the store writes
    /// the owner's current epoch when it stores the token).
    pub fn issued(
        id: TokenId,
        owner: UserId,
        name: impl Into<String>,
        scopes: ScopeNames,
        created_at: i64,
        expires_at: i64,
    ) -> Self {
        Self {
            id,
            owner,
            name: name.into(),
            scopes,
            created_at,
            expires_at,
            last_used_at: None,
            revoked_at: None,
            rotated_from: None,
            rotated_to: None,
            description: None,
            recent_uses: Vec::new(),
            allowed_cidrs: Vec::new(),
            rate_tier: None,
            schema_version: CURRENT_SCHEMA_VERSION,
            epoch: 0,
            dpop_jkt: None,
        }
    }

    /// Whether a request from `source_ip` (as API Gateway reports it) may use
    /// this token: always without an allow-list; with one, only an address
    /// inside one of its networks (an IPv4-mapped IPv6 address counts as its
    /// IPv4 address). An address that does not parse is outside.
    pub fn allows_address(&self, source_ip: &str) -> bool {
        allows_address(&self.allowed_cidrs, source_ip)
    }

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

    #[test]
    fn allow_lists_admit_only_their_networks_and_junk_is_outside() {
        let nets: Vec<ipnet::IpNet> = ["198.51.100.0/24", "2001:db8::/32"]
            .iter()
            .map(|n| parse_cidr(n).unwrap())
            .collect();
        for inside in [
            "198.51.100.7",
            "2001:db8::1",
            "::ffff:198.51.100.9",
            " 198.51.100.1 ",
        ] {
            assert!(allows_address(&nets, inside), "{inside}");
        }
        for outside in [
            "198.51.101.7",
            "2001:db9::1",
            "",
            "junk",
            "198.51.100.7:443",
        ] {
            assert!(!allows_address(&nets, outside), "{outside}");
        }
        assert!(allows_address(&[], "anything at all"));
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("192.0.2.5").unwrap().to_string(), "192.0.2.5/32");
        assert_eq!(
            parse_cidr("::ffff:192.0.2.5").unwrap().to_string(),
            "192.0.2.5/32"
        );
        let mapped = parse_cidr("::ffff:198.51.100.0/120").unwrap();
        assert_eq!(mapped.to_string(), "198.51.100.0/24");
        assert!(allows_address(&[mapped], "198.51.100.77"));
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "10.0.0.0/33",
            "10.0.0",
            "example.com",
            "",
        ] {
            assert!(parse_cidr(bad).is_none(), "{bad}");
        }
    }

    fn record(expires_at: i64, revoked_at: Option<i64>) -> TokenMeta {
        TokenMeta {
            revoked_at,
            ..TokenMeta::issued(
                TokenId::parse("0123456789ABCDEFG").unwrap(),
                UserId::parse("u1").unwrap(),
                "ci",
                ScopeNames::default(),
                0,
                expires_at,
            )
        }
    }

    fn site(ip: &str, at: i64) -> UseSite {
        UseSite::from_request(ip, Some("curl/8"), at).unwrap()
    }

    #[test]
    fn use_sites_keep_the_newest_use_of_each_address_up_to_five() {
        let known: Vec<UseSite> = (1..=5)
            .map(|i| site(&format!("10.0.0.{i}"), 100 - i))
            .collect();
        // A repeat of a known address moves it to the front with its new time.
        let merged = UseSite::merge(&known, &[site("10.0.0.5", 200)]);
        assert_eq!(merged.len(), 5);
        assert_eq!((merged[0].ip.as_str(), merged[0].at), ("10.0.0.5", 200));
        // A sixth address pushes out the oldest one.
        let merged = UseSite::merge(&merged, &[site("192.0.2.1", 300)]);
        let ips: Vec<&str> = merged.iter().map(|s| s.ip.as_str()).collect();
        assert_eq!(
            ips,
            ["192.0.2.1", "10.0.0.5", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        // An older report of an address never replaces a newer one.
        let merged = UseSite::merge(&merged, &[site("192.0.2.1", 250)]);
        assert_eq!(merged[0].at, 300);
    }

    #[test]
    fn use_sites_are_cut_to_their_bounds() {
        let long_ua = "x".repeat(1000);
        let s = UseSite::from_request(&"1".repeat(100), Some(&long_ua), 1).unwrap();
        assert_eq!(s.ip.chars().count(), MAX_IP_CHARS);
        assert_eq!(s.user_agent.unwrap().chars().count(), MAX_USER_AGENT_CHARS);
        let wide = "\u{1F600}".repeat(200);
        let s = UseSite::from_request("::1", Some(&wide), 1).unwrap();
        assert!(s.user_agent.unwrap().len() <= MAX_USER_AGENT_BYTES);
        let s = UseSite::from_request("203.0.113.9", Some("a\r\nb"), 1).unwrap();
        assert_eq!(s.user_agent.as_deref(), Some("ab"));
        assert!(UseSite::from_request("", Some("curl"), 1).is_none());
        assert_eq!(
            UseSite::from_request("::1", Some(""), 1)
                .unwrap()
                .user_agent,
            None
        );
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
