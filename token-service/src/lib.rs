//! The `/tokens` service: issue, list, inspect, rotate and revoke personal
//! access tokens, and the administrators' `/admin/tokens` routes. It knows
//! the caller only from the authorizer context.
//!
//! The router is generated from the built-in routes of the route table: each
//! gets its handler from [`handler_for`], and a test fails if one is missing.
//! Scopes are the manifest's (`AGPAT_MANIFEST`), loaded once at cold start.

pub use shared::http::handle;

pub mod admin;
pub mod audit;
pub mod handlers;
pub mod openapi;
pub mod scanning;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post};
use shared::config::{ConfigError, Env, HashConfig, StoreConfig, number_in};
use shared::hash::{PhcHash, SecretHasher};
use shared::routes::{Method, Route};
use shared::store::TokenStore;
use shared::{Clock, Manifest, Pat};

use shared::http::problem::ApiError;

/// Settings of the token service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Token store.
    pub store: StoreConfig,
    /// argon2id settings.
    pub hash: HashConfig,
    /// `TOKEN_MAX_LIFETIME_DAYS`: longest lifetime a token may have (1–365, default 90).
    pub max_lifetime_days: i64,
    /// `AGPAT_EVENT_BUS`: the EventBridge bus owner events go to (the
    /// leak notice); unset, none are published.
    pub event_bus: Option<String>,
    /// `AGPAT_IP_ALLOW_LISTS` (`on`/`off`, default off): whether tokens may
    /// carry IP allow-lists. On only where the authorizer's cache is keyed by
    /// client address (the construct's `ipAllowLists`).
    pub ip_allow_lists: bool,
    /// `AGPAT_DPOP` (`on`/`off`, default off): whether tokens may be bound
    /// to a key (RFC 9449). On only where the authorizer accepts proofs and
    /// API Gateway caches no authorizer answer (the construct's `dpop`).
    pub dpop: bool,
    /// `RATE_TIERS`: the rate tiers a token may be issued in (comma-separated
    /// names of `a-z 0-9 -`); unset, tokens carry none (every token is in
    /// the authorizer's default tier).
    pub rate_tiers: Vec<String>,
    /// `SECRET_SCANNING_KEYS_URL`: where the secret-scanning partner's
    /// public keys are (GitHub's is
    /// `https://api.github.com/meta/public_keys/secret_scanning`); `https://`,
    /// or `http://` to a loopback host. Unset, `POST /tokens/secret-scanning`
    /// answers 404 as if it did not exist.
    pub secret_scanning_keys_url: Option<String>,
}

impl ServiceConfig {
    /// Reads and validates every setting.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            hash: HashConfig::from_env(env)?,
            max_lifetime_days: number_in(
                env,
                "TOKEN_MAX_LIFETIME_DAYS",
                90,
                1,
                365,
                "an integer from 1 to 365",
            )?,
            event_bus: env.get("AGPAT_EVENT_BUS").filter(|v| !v.is_empty()),
            ip_allow_lists: shared::config::on_off(env, "AGPAT_IP_ALLOW_LISTS")?,
            dpop: shared::config::on_off(env, "AGPAT_DPOP")?,
            rate_tiers: {
                let names: Vec<String> = env
                    .get("RATE_TIERS")
                    .unwrap_or_default()
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect();
                let ok = names.iter().all(|t| {
                    t.len() <= 32
                        && t.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
                if !ok {
                    return Err(ConfigError {
                        var: "RATE_TIERS",
                        expected: "comma-separated tier names of a-z 0-9 - (1 to 32)",
                    });
                }
                names
            },
            secret_scanning_keys_url: match env
                .get("SECRET_SCANNING_KEYS_URL")
                .filter(|v| !v.is_empty())
            {
                None => None,
                Some(url) => Some(
                    scanning::keys_url(&url)
                        .ok_or(ConfigError {
                            var: "SECRET_SCANNING_KEYS_URL",
                            expected: "an https:// URL (or http:// to a loopback host)",
                        })?
                        .to_owned(),
                ),
            },
        })
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state behind [`AppState`].
pub struct Inner {
    /// The token store.
    pub store: TokenStore,
    /// argon2id hasher.
    pub hasher: SecretHasher,
    /// Source of time.
    pub clock: Arc<dyn Clock>,
    /// The adopter's manifest: which scopes exist, and which a PAT may carry.
    pub manifest: Arc<Manifest>,
    /// Longest token lifetime, in days.
    pub max_lifetime_days: i64,
    /// A hash of a random secret, verified against when a presented token's id
    /// is unknown, so the leaked-token route takes the same time either way.
    pub dummy_hash: PhcHash,
    /// Where owner events go (`agpat.token.leak_reported`), if configured.
    pub bus: Option<shared::bus::EventBus>,
    /// argon2id verifications the leak routes ran (dummy hash included).
    pub leak_verifications: std::sync::atomic::AtomicU64,
    /// The secret-scanning partner's keys; `None` turns the partner route off.
    pub partner_keys: Option<scanning::PartnerKeys>,
    /// Whether tokens may carry IP allow-lists (`AGPAT_IP_ALLOW_LISTS`).
    pub ip_allow_lists: bool,
    /// Whether tokens may be bound to a DPoP key (`AGPAT_DPOP`).
    pub dpop: bool,
    /// The rate tiers a token may be issued in (`RATE_TIERS`).
    pub rate_tiers: Vec<String>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl shared::http::caller::HasClock for AppState {
    fn clock(&self) -> &dyn Clock {
        &*self.0.clock
    }
}

impl shared::http::caller::HasManifest for AppState {
    fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }
}

impl AppState {
    /// Builds the state; hashes the dummy secret once (one argon2id run).
    pub fn new(
        store: TokenStore,
        hasher: SecretHasher,
        clock: Arc<dyn Clock>,
        max_lifetime_days: i64,
        manifest: Arc<Manifest>,
    ) -> Result<Self, ApiError> {
        let dummy = Pat::generate().map_err(|_| ApiError::Internal)?;
        let dummy_hash = hasher
            .hash(dummy.secret())
            .map_err(|_| ApiError::Internal)?;
        Ok(Self(Arc::new(Inner {
            store,
            hasher,
            clock,
            manifest,
            max_lifetime_days,
            dummy_hash,
            bus: None,
            leak_verifications: std::sync::atomic::AtomicU64::new(0),
            partner_keys: None,
            ip_allow_lists: false,
            dpop: false,
            rate_tiers: Vec::new(),
        })))
    }

    /// The same state, publishing owner events to `bus`. Call right after
    /// [`Self::new`], before the state is shared.
    ///
    /// # Errors
    /// If the state is already shared (a wiring mistake).
    pub fn with_event_bus(mut self, bus: shared::bus::EventBus) -> Result<Self, ApiError> {
        let inner = Arc::get_mut(&mut self.0).ok_or(ApiError::Internal)?;
        inner.bus = Some(bus);
        Ok(self)
    }

    /// The same state, accepting secret-scanning reports signed with
    /// `keys`. Call right after [`Self::new`], before the state is shared.
    ///
    /// # Errors
    /// If the state is already shared (a wiring mistake).
    pub fn with_partner_keys(mut self, keys: scanning::PartnerKeys) -> Result<Self, ApiError> {
        let inner = Arc::get_mut(&mut self.0).ok_or(ApiError::Internal)?;
        inner.partner_keys = Some(keys);
        Ok(self)
    }

    /// The same state, letting tokens carry IP allow-lists. Call right after
    /// [`Self::new`], before the state is shared.
    ///
    /// # Errors
    /// If the state is already shared (a wiring mistake).
    pub fn with_ip_allow_lists(mut self, on: bool) -> Result<Self, ApiError> {
        let inner = Arc::get_mut(&mut self.0).ok_or(ApiError::Internal)?;
        inner.ip_allow_lists = on;
        Ok(self)
    }

    /// The same state, letting tokens be bound to a DPoP key (`on`). Call
    /// right after [`Self::new`], before the state is shared.
    ///
    /// # Errors
    /// If the state is already shared (a wiring mistake).
    pub fn with_dpop(mut self, on: bool) -> Result<Self, ApiError> {
        let inner = Arc::get_mut(&mut self.0).ok_or(ApiError::Internal)?;
        inner.dpop = on;
        Ok(self)
    }

    /// The same state, letting tokens be issued in `tiers`. Call right after
    /// [`Self::new`], before the state is shared.
    ///
    /// # Errors
    /// If the state is already shared (a wiring mistake).
    pub fn with_rate_tiers(mut self, tiers: Vec<String>) -> Result<Self, ApiError> {
        let inner = Arc::get_mut(&mut self.0).ok_or(ApiError::Internal)?;
        inner.rate_tiers = tiers;
        Ok(self)
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// The handler serving a route of the table, if this service serves it.
pub fn handler_for(route: &Route) -> Option<MethodRouter<AppState>> {
    use Method::{Delete, Get, Patch, Post};
    if !route.built_in {
        return None;
    }
    Some(match (route.method, route.path.as_str()) {
        (Post, "/tokens") => post(handlers::create),
        (Get, "/tokens") => get(handlers::list),
        (Delete, "/tokens") => delete(handlers::delete_all),
        (Get, "/tokens/self") => get(handlers::get_self),
        (Delete, "/tokens/self") => delete(handlers::delete_self),
        (Post, "/tokens/revoke") => post(handlers::revoke_presented),
        (Post, "/tokens/secret-scanning") => post(handlers::secret_scanning_report),
        (Get, "/tokens/{id}") => get(handlers::get_one),
        (Patch, "/tokens/{id}") => patch(handlers::patch),
        (Delete, "/tokens/{id}") => delete(handlers::delete_one),
        (Post, "/tokens/{id}/rotate") => post(handlers::rotate),
        (Get, "/tokens/{id}/events") => get(handlers::events),
        (Get, "/admin/tokens") => get(admin::list),
        (Delete, "/admin/tokens") => delete(admin::delete_all),
        (Post, "/admin/tokens") => post(admin::create_service_token),
        (Get, "/admin/tokens/{id}") => get(admin::get_one),
        (Delete, "/admin/tokens/{id}") => delete(admin::delete_one),
        (Get, "/admin/tokens/{id}/events") => get(admin::events),
        _ => return None,
    })
}

/// The router, generated from the built-in routes.
pub fn router(state: AppState) -> Router {
    let manifest = Arc::clone(&state.manifest);
    let routes = manifest.routes().routes().iter().filter(|r| r.built_in);
    shared::http::service_router(routes, handler_for, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_service_route_in_the_table_has_a_handler() {
        let manifest = shared::testing::manifest();
        let routes: Vec<_> = manifest
            .routes()
            .routes()
            .iter()
            .filter(|r| r.built_in)
            .collect();
        assert_eq!(routes.len(), 18);
        for route in routes {
            assert!(
                handler_for(route).is_some(),
                "{} {}",
                route.method,
                route.path
            );
        }
        for route in manifest.routes().routes().iter().filter(|r| !r.built_in) {
            assert!(
                handler_for(route).is_none(),
                "{} {}",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn max_lifetime_is_bounded_by_365_days() {
        let err = ServiceConfig::from_env(&[
            ("TABLE_NAME", "tokens"),
            ("TOKEN_MAX_LIFETIME_DAYS", "366"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "TOKEN_MAX_LIFETIME_DAYS");
        let cfg = ServiceConfig::from_env(&[("TABLE_NAME", "tokens")]).unwrap();
        assert_eq!(cfg.max_lifetime_days, 90);
    }

    #[test]
    fn the_partner_keys_url_is_optional_and_never_plain_http_to_a_remote_host() {
        let cfg = ServiceConfig::from_env(&[("TABLE_NAME", "tokens")]).unwrap();
        assert_eq!(cfg.secret_scanning_keys_url, None);
        let url = "https://api.github.com/meta/public_keys/secret_scanning";
        let cfg =
            ServiceConfig::from_env(&[("TABLE_NAME", "tokens"), ("SECRET_SCANNING_KEYS_URL", url)])
                .unwrap();
        assert_eq!(cfg.secret_scanning_keys_url.as_deref(), Some(url));
        let err = ServiceConfig::from_env(&[
            ("TABLE_NAME", "tokens"),
            ("SECRET_SCANNING_KEYS_URL", "http://keys.example.com/"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "SECRET_SCANNING_KEYS_URL");
    }
}
