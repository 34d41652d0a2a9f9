//! PAT verification, in the order that keeps junk cheap:
//!
//! 1. parse + checksum (no I/O);
//! 2. positive cache, keyed by an HMAC of the whole token under a per-process
//!    random key (never the raw token);
//! 3. negative cache per token id (unknown, revoked, expired, or too many wrong
//!    secrets): refused with no I/O and no hashing;
//! 4. one strongly consistent `GetItem` by id;
//! 5. revoked / expired;
//! 6. argon2id on a blocking thread;
//! 7. a throttled `last_used` touch in the background, which can never delay
//!    or fail the decision.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use shared::hash::SecretHasher;
use shared::store::{StoreError, TokenStore, TouchOutcome};
use shared::{AuthMethod, Pat, Principal, TokenId, TokenRecord, TokenStatus};
use tokio::task::JoinSet;

use crate::Reject;
use crate::config::PatConfig;

/// Read access to tokens, plus the `last_used` touch. Implemented by the
/// DynamoDB store; the benchmarks substitute an in-memory answer.
pub trait TokenLookup: Send + Sync + 'static {
    /// The token with this id, if any.
    fn get(
        &self,
        id: &TokenId,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;
    /// Records a use (throttled by the store).
    fn touch(
        &self,
        id: &TokenId,
        now: i64,
    ) -> impl Future<Output = Result<TouchOutcome, StoreError>> + Send;
}

impl TokenLookup for TokenStore {
    async fn get(&self, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        TokenStore::get(self, id).await
    }
    async fn touch(&self, id: &TokenId, now: i64) -> Result<TouchOutcome, StoreError> {
        TokenStore::touch(self, id, now).await
    }
}

#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    cached_at: i64,
}

#[derive(Debug, Clone, Copy)]
struct Refusal {
    since: i64,
    failures: u32,
    permanent: bool,
}

/// Verifies PATs.
pub struct PatVerifier<L> {
    lookup: Arc<L>,
    hasher: Arc<SecretHasher>,
    cfg: PatConfig,
    touch_interval_secs: i64,
    cache_key: hmac::Key,
    positive: moka::sync::Cache<[u8; 32], Verified>,
    negative: moka::sync::Cache<TokenId, Refusal>,
    touched: moka::sync::Cache<TokenId, i64>,
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
    ) -> Result<Self, shared::pat::RandomnessError> {
        let key_bytes = shared::pat::os_random::<32>()?;
        let ttl = |secs: i64| Duration::from_secs(u64::try_from(secs.max(1)).unwrap_or(1));
        Ok(Self {
            lookup: Arc::new(lookup),
            hasher: Arc::new(hasher),
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key_bytes),
            positive: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl(cfg.positive_ttl_secs))
                .build(),
            negative: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl(cfg.negative_ttl_secs))
                .build(),
            touched: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl(touch_interval_secs))
                .build(),
            cfg,
            touch_interval_secs,
            background: Mutex::new(JoinSet::new()),
        })
    }

    /// Waits for background `last_used` writes (tests; and before a Lambda freeze
    /// if desired). Decisions never wait for them.
    pub async fn settle(&self) {
        let mut set = match self.background.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(_) => return,
        };
        while set.join_next().await.is_some() {}
    }

    /// Verifies a presented PAT at `now`.
    pub async fn verify(&self, presented: &str, now: i64) -> Result<Principal, Reject> {
        let pat = Pat::parse(presented).map_err(|_| Reject::Malformed)?;
        let cache_key: [u8; 32] = hmac::sign(&self.cache_key, pat.expose().as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Reject::Internal("HMAC-SHA256 tag is not 32 bytes"))?;

        if self.cfg.positive_ttl_secs > 0
            && let Some(hit) = self.positive.get(&cache_key)
        {
            if now - hit.cached_at < self.cfg.positive_ttl_secs && now < hit.principal.expires_at {
                self.touch_later(pat.id(), now);
                return Ok(hit.principal);
            }
            self.positive.invalidate(&cache_key);
        }

        if let Some(refusal) = self.negative.get(pat.id()) {
            let fresh = now - refusal.since < self.cfg.negative_ttl_secs;
            if fresh && (refusal.permanent || refusal.failures >= self.cfg.max_failures_per_id) {
                return Err(Reject::Refused);
            }
            if !fresh {
                self.negative.invalidate(pat.id());
            }
        }

        let record = self
            .lookup
            .get(pat.id())
            .await
            .map_err(|e| Reject::StoreUnavailable(e.to_string()))?;
        let Some(record) = record else {
            self.refuse(pat.id(), now, true);
            return Err(Reject::UnknownToken);
        };
        match record.meta.status(now) {
            TokenStatus::Active => {}
            TokenStatus::Revoked => {
                self.refuse(pat.id(), now, true);
                return Err(Reject::Revoked);
            }
            TokenStatus::Expired => {
                self.refuse(pat.id(), now, true);
                return Err(Reject::Expired);
            }
        }
        if record.meta.scopes.is_empty() {
            return Err(Reject::NoScopes);
        }

        let hasher = Arc::clone(&self.hasher);
        let hash = record.hash.clone();
        let (pat, verdict) = tokio::task::spawn_blocking(move || {
            let verdict = hasher.verify(pat.secret(), &hash);
            (pat, verdict)
        })
        .await
        .map_err(|_| Reject::Internal("verification task failed"))?;
        match verdict {
            Ok(true) => {}
            Ok(false) => {
                self.refuse(pat.id(), now, false);
                return Err(Reject::WrongSecret);
            }
            Err(_) => return Err(Reject::BadStoredHash),
        }

        let meta = record.meta;
        let principal = Principal {
            sub: meta.owner,
            username: None,
            method: AuthMethod::Pat,
            scopes: meta.scopes,
            token_id: Some(meta.id),
            expires_at: meta.expires_at,
        };
        if self.cfg.positive_ttl_secs > 0 {
            self.positive.insert(
                cache_key,
                Verified {
                    principal: principal.clone(),
                    cached_at: now,
                },
            );
        }
        self.touch_later(pat.id(), now);
        Ok(principal)
    }

    fn refuse(&self, id: &TokenId, now: i64, permanent: bool) {
        if self.cfg.negative_ttl_secs <= 0 {
            return;
        }
        let next = match self.negative.get(id) {
            Some(r) if now - r.since < self.cfg.negative_ttl_secs => Refusal {
                since: r.since,
                failures: r.failures.saturating_add(1),
                permanent: r.permanent || permanent,
            },
            _ => Refusal {
                since: now,
                failures: 1,
                permanent,
            },
        };
        self.negative.insert(id.clone(), next);
    }

    fn touch_later(&self, id: &TokenId, now: i64) {
        if self
            .touched
            .get(id)
            .is_some_and(|at| now - at < self.touch_interval_secs)
        {
            return;
        }
        self.touched.insert(id.clone(), now);
        let lookup = Arc::clone(&self.lookup);
        let id = id.clone();
        if let Ok(mut set) = self.background.lock() {
            // Reap finished writes so the set stays small on a long-lived instance.
            while set.try_join_next().is_some() {}
            set.spawn(async move {
                if let Err(e) = lookup.touch(&id, now).await {
                    tracing::warn!(token_id = %id, error = %e, "last_used update failed");
                }
            });
        }
    }
}
