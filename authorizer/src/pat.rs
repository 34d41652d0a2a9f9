//! PAT verification, in the order that keeps junk cheap and never lets
//! someone who only knows a token's id lock its holder out:
//!
//! 1. parse + checksum (no I/O);
//! 2. the instance's memory of this exact token, keyed by an HMAC of the
//!    whole token under a per-process random key (never the raw token). A
//!    fresh entry (within `PAT_CACHE_TTL_SECONDS`) is the decision, with no
//!    I/O. Separately, and far larger (`PAT_VERIFIED_CAPACITY`, 16 bytes a
//!    token), the instance remembers which (token, stored hash) pairs passed
//!    argon2 here, so a cold decision for one of them reads the record but
//!    skips argon2: argon2 runs once per genuine token per instance, even
//!    when the instance meets far more tokens than its decision cache holds;
//! 3. ids known to be unknown, revoked or expired are refused with no I/O
//!    (states a genuine token can never leave, so caching them locks no one out);
//! 4. an unverified presentation from a source address that has already
//!    sent `PAT_MAX_FAILURES_PER_SOURCE` wrong secrets for this id in the
//!    window is refused with no I/O and no hashing. The budget is per
//!    (id, address): one address's failures never refuse another address,
//!    and never refuse a token this instance has verified;
//! 5. one strongly consistent `GetItem` by id; revoked / expired;
//! 6. argon2id on a blocking thread, unless step 2 remembered this secret for
//!    this very stored hash;
//! 7. in the background, never delaying or failing the decision: the
//!    throttled `last_used` touch, and a rehash when the stored hash is
//!    weaker than the parameters this instance writes.
//!
//! Use sites (client address, user agent, time) ride on the touch: each
//! decision notes its site in memory, and the next throttled touch writes the
//! merged list, with a `new_ip` history event for each address the record
//! did not hold, in the same single request. A site noted between two
//! touches waits for the next one on this instance; it is lost only if this
//! instance never decides for the token again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use shared::hash::{PhcHash, SecretHasher};
use shared::store::{StoreError, TokenStore, TouchOutcome};
use shared::{AuthMethod, Manifest, Pat, Principal, TokenId, TokenRecord, TokenStatus, UseSite};
use tokio::task::JoinSet;

use crate::Reject;
use crate::config::PatConfig;
use crate::decision::Vouched;
use crate::metrics::CacheUse;

/// How long an instance remembers that it verified a token's secret. Far
/// beyond a Lambda instance's usual life, so in practice: for the instance's
/// life. The record's status is still read on every cold decision.
pub const VERIFIED_MEMORY_TTL: Duration = Duration::from_secs(12 * 3600);

/// Longest source address kept as a budget key (an IPv6 address is at most 45).
const MAX_SOURCE_LEN: usize = 64;

/// Read access to tokens, plus the `last_used` touch. Implemented by the
/// DynamoDB store; the benchmarks substitute an in-memory answer.
pub trait TokenLookup: Send + Sync + 'static {
    /// The token with this id, if any.
    fn get(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;
    /// Records a use (throttled by the store): `sites` is the token's new
    /// use-site list; each of `new_ips` also gets a history event.
    fn touch(
        &self,
        id: &TokenId,
        now: i64,
        sites: &[UseSite],
        new_ips: &[UseSite],
        token_expires_at: Option<i64>,
    ) -> impl Future<Output = Result<TouchOutcome, StoreError>> + Send;
    /// Replaces the stored hash `old` with `new` (a rehash under stronger
    /// parameters); `false` when the stored hash is no longer `old`.
    fn replace_hash(
        &self,
        id: &TokenId,
        old: &PhcHash,
        new: &PhcHash,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The DPoP replay store: `true` the first time a proof's key is
    /// recorded, across every instance; remembered until `remember_until`.
    fn first_use_of_proof(
        &self,
        key: &[u8; 32],
        remember_until: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl TokenLookup for TokenStore {
    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        TokenStore::get(self, id).await
    }
    async fn touch(
        &self,
        id: &TokenId,
        now: i64,
        sites: &[UseSite],
        new_ips: &[UseSite],
        token_expires_at: Option<i64>,
    ) -> Result<TouchOutcome, StoreError> {
        TokenStore::touch(self, id, now, sites, new_ips, token_expires_at).await
    }
    async fn replace_hash(
        &self,
        id: &TokenId,
        old: &PhcHash,
        new: &PhcHash,
    ) -> Result<bool, StoreError> {
        TokenStore::replace_hash(self, id, old, new).await
    }
    async fn first_use_of_proof(
        &self,
        key: &[u8; 32],
        remember_until: i64,
    ) -> Result<bool, StoreError> {
        TokenStore::first_use_of_proof(self, key, remember_until).await
    }
}

/// What an instance remembers about a token it verified.
#[derive(Debug, Clone)]
struct Verified {
    vouched: Arc<Vouched>,
    /// When the decision was last confirmed against the record.
    confirmed_at: i64,
    /// The token's IP allow-list (empty: any address), checked on every
    /// decision, warm ones included.
    allowed: Arc<[ipnet::IpNet]>,
}

/// A decision's client, as the request carried it (borrowed: copied only
/// when it is news).
struct Seen<'a> {
    ip: &'a str,
    user_agent: Option<&'a str>,
    at: i64,
}

/// What this instance knows of a token's use sites: the list the record held
/// when this instance last read it or last wrote it (`None` until then: the
/// memory may have been evicted while the decision cache was not), and the
/// sites seen since, waiting for the next touch.
#[derive(Debug, Default)]
struct SiteMemory {
    known: Option<Vec<UseSite>>,
    pending: Vec<UseSite>,
    /// When this instance last sent the token's `last_used` touch.
    touched_at: Option<i64>,
}

/// Wrong secrets from one source address for one id, in the current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: i64,
    count: u32,
}

/// Verifies PATs.
pub struct PatVerifier<L> {
    lookup: Arc<L>,
    manifest: Arc<Manifest>,
    hasher: Arc<SecretHasher>,
    cfg: PatConfig,
    ip_allow_lists: bool,
    touch_interval_secs: i64,
    cache_key: hmac::Key,
    verified: moka::sync::Cache<[u8; 32], Verified>,
    proofs: Proofs,
    refused: moka::sync::Cache<TokenId, i64>,
    failures: moka::sync::Cache<(TokenId, String), Failures>,
    sites: moka::sync::Cache<TokenId, Arc<Mutex<SiteMemory>>>,
    argon2_runs: AtomicU64,
    background: Mutex<JoinSet<()>>,
}

impl<L: TokenLookup> PatVerifier<L> {
    /// A verifier over `lookup`.
    ///
    /// # Errors
    /// If the OS CSPRNG cannot provide the cache key.
    pub fn new(
        lookup: L,
        hasher: SecretHasher,
        cfg: PatConfig,
        touch_interval_secs: i64,
        manifest: Arc<Manifest>,
    ) -> Result<Self, shared::pat::RandomnessError> {
        let key_bytes = shared::pat::os_random::<32>()?;
        let ttl = |secs: i64| Duration::from_secs(u64::try_from(secs.max(1)).unwrap_or(1));
        Ok(Self {
            lookup: Arc::new(lookup),
            manifest,
            hasher: Arc::new(hasher),
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key_bytes),
            verified: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(VERIFIED_MEMORY_TTL)
                .build(),
            refused: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl(cfg.negative_ttl_secs))
                .build(),
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl(cfg.negative_ttl_secs))
                .build(),
            sites: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(VERIFIED_MEMORY_TTL)
                .build(),
            proofs: Proofs::new(DEFAULT_VERIFIED_CAPACITY),
            cfg,
            ip_allow_lists: false,
            touch_interval_secs,
            argon2_runs: AtomicU64::new(0),
            background: Mutex::new(JoinSet::new()),
        })
    }

    /// The token store (the DPoP replay store is its conditional write).
    pub fn lookup(&self) -> &L {
        &self.lookup
    }

    /// How many argon2id verifications this instance has run.
    pub fn argon2_evaluations(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// Waits for background writes (`last_used`, rehash): tests, and before
    /// a Lambda freeze if desired. Decisions never wait for them.
    pub async fn settle(&self) {
        let mut set = match self.background.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(_) => return,
        };
        while set.join_next().await.is_some() {}
    }

    /// Verifies a presented PAT at `now`, for a request from `source` (the
    /// client address API Gateway reports; empty if unknown).
    pub async fn verify(
        &self,
        presented: &str,
        now: i64,
        source: &str,
    ) -> Result<Principal, Reject> {
        self.verify_observed(presented, now, source, None, &mut CacheUse::NotConsulted)
            .await
            .map(|v| v.principal().clone())
    }

    /// As [`PatVerifier::verify`], also noting in `cache` whether the
    /// positive cache answered (step 2 above, with no I/O): `Hit`, or `Miss`
    /// when it was consulted and did not. Left alone for junk refused before
    /// the lookup. `user_agent` is the client's, for the token's use sites.
    pub async fn verify_observed(
        &self,
        presented: &str,
        now: i64,
        source: &str,
        user_agent: Option<&str>,
        cache: &mut CacheUse,
    ) -> Result<Arc<Vouched>, Reject> {
        let site = Seen {
            ip: source,
            user_agent,
            at: now,
        };
        let pat = Pat::parse(presented).map_err(|_| Reject::Malformed)?;
        let cache_key: [u8; 32] = hmac::sign(&self.cache_key, pat.expose().as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Reject::Internal("HMAC-SHA256 tag is not 32 bytes"))?;

        let remembered = self.verified.get(&cache_key);
        *cache = CacheUse::Miss;
        if let Some(hit) = &remembered
            && now - hit.confirmed_at < self.cfg.positive_ttl_secs
            && now < hit.vouched.principal().expires_at
        {
            *cache = CacheUse::Hit;
            self.check_address(&hit.allowed, source)?;
            let memory = self.note_use(pat.id(), &site, None);
            let expires_at = hit.vouched.principal().expires_at;
            self.touch_later(pat.id(), memory, now, expires_at, None);
            return Ok(Arc::clone(&hit.vouched));
        }

        if let Some(since) = self.refused.get(pat.id()) {
            if now - since < self.cfg.negative_ttl_secs {
                return Err(Reject::Refused);
            }
            self.refused.invalidate(pat.id());
        }
        let budget_key = (pat.id().clone(), source_key(source));
        if remembered.is_none()
            && let Some(f) = self.failures.get(&budget_key)
            && now - f.since < self.cfg.negative_ttl_secs
            && f.count >= self.cfg.max_failures_per_source
        {
            return Err(Reject::SourceThrottled);
        }

        let record = self
            .lookup
            .get(pat.id())
            .await
            .map_err(|e| Reject::StoreUnavailable(e.to_string()))?;
        let Some(record) = record else {
            self.refuse(pat.id(), now);
            return Err(Reject::UnknownToken);
        };
        match record.meta.status(now) {
            TokenStatus::Active => {}
            TokenStatus::Revoked => {
                self.refuse(pat.id(), now);
                self.verified.invalidate(&cache_key);
                return Err(Reject::Revoked);
            }
            TokenStatus::Expired => {
                self.refuse(pat.id(), now);
                self.verified.invalidate(&cache_key);
                return Err(Reject::Expired);
            }
        }
        // Before any argon2 run: from outside its networks the token cannot
        // succeed, whatever the secret. Counted against the address's budget
        // like a wrong secret, so repeats from outside stop costing a read.
        if let Err(refused) = self.check_address(&record.meta.allowed_cidrs, source) {
            self.count_failure(budget_key, now);
            return Err(refused);
        }
        // Stored names the manifest no longer declares grant nothing.
        let scopes = self.manifest.scopes().resolve(&record.meta.scopes);
        if scopes.is_empty() {
            return Err(Reject::NoScopes);
        }

        let proof = proof_of(&cache_key, &sha256(record.hash.expose().as_bytes())?)?;
        if !self.proofs.contains(proof) {
            let hasher = Arc::clone(&self.hasher);
            let hash = record.hash.clone();
            let (returned, verdict) = tokio::task::spawn_blocking(move || {
                let verdict = hasher.verify(pat.secret(), &hash);
                (pat, verdict)
            })
            .await
            .map_err(|_| Reject::Internal("verification task failed"))?;
            if verdict.is_ok() {
                // Counted only when argon2 ran: a hash refused unevaluated
                // (malformed, below the floor, above the ceiling) cost nothing.
                self.argon2_runs.fetch_add(1, Ordering::Relaxed);
            }
            match verdict {
                Ok(true) => self.proofs.insert(proof),
                Ok(false) => {
                    self.count_failure(budget_key, now);
                    return Err(Reject::WrongSecret);
                }
                Err(_) => return Err(Reject::BadStoredHash),
            }
            let memory = self.note_use(returned.id(), &site, Some(&record.meta.recent_uses));
            let (expires_at, used) = (record.meta.expires_at, record.meta.last_used_at);
            self.touch_later(returned.id(), memory, now, expires_at, used);
            if self.hasher.needs_rehash(&record.hash) {
                self.rehash_later(returned, record.hash.clone());
            }
        } else {
            let memory = self.note_use(pat.id(), &site, Some(&record.meta.recent_uses));
            let (expires_at, used) = (record.meta.expires_at, record.meta.last_used_at);
            self.touch_later(pat.id(), memory, now, expires_at, used);
        }

        let meta = record.meta;
        let allowed: Arc<[ipnet::IpNet]> = meta.allowed_cidrs.into();
        let vouched = Vouched::new(Principal {
            kind: shared::PrincipalKind::of_token_owner(&meta.owner),
            sub: meta.owner,
            username: None,
            method: AuthMethod::Pat,
            scopes,
            token_id: Some(meta.id),
            expires_at: meta.expires_at,
            issued_at: meta.created_at,
            rate_tier: meta.rate_tier,
            dpop_jkt: meta.dpop_jkt.map(|j| j.as_str().to_owned()),
        });
        self.verified.insert(
            cache_key,
            Verified {
                vouched: Arc::clone(&vouched),
                confirmed_at: now,
                allowed,
            },
        );
        Ok(vouched)
    }

    /// Refuses a request from outside the token's allow-list; and any token
    /// with an allow-list where this deployment cannot honour one (its
    /// gateway cache not keyed by address: a cached Allow would serve other
    /// addresses), so turning the feature off fails closed.
    fn check_address(&self, allowed: &[ipnet::IpNet], source: &str) -> Result<(), Reject> {
        if allowed.is_empty() {
            return Ok(());
        }
        if self.ip_allow_lists && shared::record::allows_address(allowed, source) {
            Ok(())
        } else {
            Err(Reject::AddressNotAllowed)
        }
    }

    /// The same verifier, honouring tokens' IP allow-lists
    /// (`AGPAT_IP_ALLOW_LISTS`); off (the default), a token with one is refused.
    #[must_use]
    pub fn with_ip_allow_lists(mut self, on: bool) -> Self {
        self.ip_allow_lists = on;
        self
    }

    /// The same verifier, remembering up to `capacity` verified (token,
    /// stored hash) pairs (`PAT_VERIFIED_CAPACITY`; default
    /// [`DEFAULT_VERIFIED_CAPACITY`]). Past it the oldest half is forgotten,
    /// and those tokens pay argon2 once more on their next cold decision.
    #[must_use]
    pub fn with_verified_capacity(mut self, capacity: usize) -> Self {
        self.proofs = Proofs::new(capacity);
        self
    }

    /// The same verifier, with a decision cache (step 2) of at most
    /// `capacity` tokens (tests: a fleet's instance meets more tokens than
    /// that cache holds).
    #[must_use]
    pub fn with_decision_cache_capacity(mut self, capacity: u64) -> Self {
        self.verified = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(VERIFIED_MEMORY_TTL)
            .build();
        self
    }

    /// Remembers an id whose state no genuine presentation can change
    /// (unknown, revoked, expired).
    fn refuse(&self, id: &TokenId, now: i64) {
        if self.cfg.negative_ttl_secs > 0 {
            self.refused.insert(id.clone(), now);
        }
    }

    fn count_failure(&self, key: (TokenId, String), now: i64) {
        let next = match self.failures.get(&key) {
            Some(f) if now - f.since < self.cfg.negative_ttl_secs => Failures {
                since: f.since,
                count: f.count.saturating_add(1),
            },
            _ => Failures {
                since: now,
                count: 1,
            },
        };
        self.failures.insert(key, next);
    }

    /// Replaces a weaker stored hash, off the decision path. The write is
    /// conditional on the hash being unchanged, so a racing rotation,
    /// revocation or second rehash is never overwritten.
    fn rehash_later(&self, pat: Pat, old: PhcHash) {
        let lookup = Arc::clone(&self.lookup);
        let hasher = Arc::clone(&self.hasher);
        if let Ok(mut set) = self.background.lock() {
            while set.try_join_next().is_some() {}
            set.spawn(async move {
                let id = pat.id().clone();
                let new = match tokio::task::spawn_blocking(move || hasher.hash(pat.secret())).await {
                    Ok(Ok(new)) => new,
                    _ => {
                        tracing::warn!(token_id = %id, "rehash failed to compute");
                        return;
                    }
                };
                match lookup.replace_hash(&id, &old, &new).await {
                    Ok(true) => tracing::info!(token_id = %id, "stored hash upgraded to the current parameters"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(token_id = %id, error = %e, "rehash write failed"),
                }
            });
        }
    }

    /// The throttled `last_used` touch, at most once per
    /// `touch_interval_secs` per token on this instance (its site memory
    /// holds when it last touched; a memory that could not be had skips it).
    /// `recorded` is the record's `last_used_at` when this decision read it:
    /// within the interval, the store's condition would refuse the write, so
    /// none is sent (a fleet of instances would otherwise spend a request and
    /// a write unit on nearly every cold decision: BENCHMARKS.md, fleet).
    fn touch_later(
        &self,
        id: &TokenId,
        memory: Option<Arc<Mutex<SiteMemory>>>,
        now: i64,
        expires_at: i64,
        recorded: Option<i64>,
    ) {
        let Some(memory) = memory else {
            return;
        };
        let lookup = Arc::clone(&self.lookup);
        // What this touch writes: the known list merged with the pending
        // sites, and which addresses are new to the record. The pending sites
        // are taken out of memory now and put back if the store skips the
        // write (another instance touched first). Without a known list
        // (nothing read since the memory was evicted) only `last_used_at` is
        // written and the sites wait for the next cold read: a write never
        // replaces a list it has not seen.
        let (sites, flushed, new_ips) = match memory.lock() {
            Ok(mut m) => {
                if m.touched_at
                    .is_some_and(|at| now - at < self.touch_interval_secs)
                {
                    return;
                }
                if let Some(at) = recorded
                    && now - at < self.touch_interval_secs
                {
                    // Written by some instance within the interval: the
                    // store would refuse it until `at + interval`.
                    m.touched_at = Some(at);
                    return;
                }
                m.touched_at = Some(now);
                match m.known.clone() {
                    Some(known) => {
                        let flushed = std::mem::take(&mut m.pending);
                        let new_ips: Vec<UseSite> = flushed
                            .iter()
                            .filter(|p| !known.iter().any(|k| k.ip == p.ip))
                            .cloned()
                            .collect();
                        (UseSite::merge(&known, &flushed), flushed, new_ips)
                    }
                    None => (Vec::new(), Vec::new(), Vec::new()),
                }
            }
            Err(_) => return,
        };
        let id = id.clone();
        if let Ok(mut set) = self.background.lock() {
            // Reap finished writes so the set stays small on a long-lived instance.
            while set.try_join_next().is_some() {}
            set.spawn(async move {
                let written = lookup
                    .touch(&id, now, &sites, &new_ips, Some(expires_at))
                    .await;
                if let Ok(mut m) = memory.lock() {
                    if matches!(written, Ok(TouchOutcome::Written)) {
                        if !sites.is_empty() {
                            // What the record now holds.
                            m.known = Some(sites);
                        }
                    } else {
                        // Not written: the sites wait for the next touch,
                        // and the record is still what was known.
                        m.pending = UseSite::merge(&m.pending, &flushed);
                    }
                }
                if let Err(e) = written {
                    tracing::warn!(token_id = %id, error = %e, "last_used update failed");
                }
            });
        }
    }

    /// Notes a decision's use site in memory (no I/O); `stored` is the list
    /// the record held, when this decision read it. A repeat of a pending
    /// address only moves its time: no allocation on the usual warm path.
    fn note_use(
        &self,
        id: &TokenId,
        seen: &Seen<'_>,
        stored: Option<&[UseSite]>,
    ) -> Option<Arc<Mutex<SiteMemory>>> {
        // Looked up by reference first: the id is copied only for a token
        // this instance has not seen yet.
        let memory = match self.sites.get(id) {
            Some(memory) => memory,
            None => self.sites.get_with(id.clone(), Arc::default),
        };
        {
            let Ok(mut m) = memory.lock() else {
                return None;
            };
            if let Some(stored) = stored {
                m.known = Some(stored.to_vec());
            }
            if let Some(pending) = m.pending.iter_mut().find(|p| p.ip == seen.ip) {
                pending.at = pending.at.max(seen.at);
                if pending.user_agent.as_deref() != seen.user_agent
                    && let Some(fresh) = UseSite::from_request(seen.ip, seen.user_agent, seen.at)
                {
                    pending.user_agent = fresh.user_agent;
                }
            } else if let Some(site) = UseSite::from_request(seen.ip, seen.user_agent, seen.at) {
                m.pending = UseSite::merge(&m.pending, std::slice::from_ref(&site));
            }
        }
        Some(memory)
    }
}

/// The budget key for a source address: bounded, and shared by requests
/// whose address is unknown.
fn source_key(source: &str) -> String {
    if source.is_empty() {
        "-".to_owned()
    } else {
        source.chars().take(MAX_SOURCE_LEN).collect()
    }
}

/// The default of `PAT_VERIFIED_CAPACITY`: 2^18 (token, stored hash) pairs,
/// 16-byte proofs held in hash sets. The fleet model (BENCHMARKS.md) finds an instance
/// meeting about 6·10^4 distinct tokens in its life with 10^5 active.
pub const DEFAULT_VERIFIED_CAPACITY: usize = 1 << 18;

/// Which (token, stored hash) pairs passed argon2id on this instance: 128
/// bits of SHA-256 over the token's HMAC (keyed per process, so a wrong
/// secret never matches) and the stored hash's digest (so a rehashed or
/// altered record is verified again). Two generations bound the memory:
/// when the current one holds half the capacity, it becomes the previous
/// one and the previous one is forgotten.
struct Proofs {
    half: usize,
    generations: Mutex<[std::collections::HashSet<u128>; 2]>,
}

impl Proofs {
    fn new(capacity: usize) -> Self {
        Self {
            half: (capacity / 2).max(1),
            generations: Mutex::default(),
        }
    }

    fn contains(&self, proof: u128) -> bool {
        self.generations
            .lock()
            .is_ok_and(|g| g.iter().any(|set| set.contains(&proof)))
    }

    fn insert(&self, proof: u128) {
        if let Ok(mut g) = self.generations.lock() {
            let [current, previous] = &mut *g;
            if current.len() >= self.half {
                *previous = std::mem::take(current);
            }
            current.insert(proof);
        }
    }
}

fn proof_of(token_key: &[u8; 32], hash_digest: &[u8; 32]) -> Result<u128, Reject> {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(token_key);
    both[32..].copy_from_slice(hash_digest);
    let digest = sha256(&both)?;
    let half: [u8; 16] = digest[..16]
        .try_into()
        .map_err(|_| Reject::Internal("SHA-256 digest is not 32 bytes"))?;
    Ok(u128::from_le_bytes(half))
}

fn sha256(bytes: &[u8]) -> Result<[u8; 32], Reject> {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .map_err(|_| Reject::Internal("SHA-256 digest is not 32 bytes"))
}
