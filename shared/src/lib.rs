//! The shared vocabulary of the component: the PAT format, scopes, principals and
//! the authorizer context, the route table, argon2id hashing, configuration and
//! the DynamoDB single-table store.

#[cfg(feature = "bus")]
pub mod bus;
#[cfg(feature = "cognito")]
pub mod cognito;
#[cfg(feature = "store")]
pub mod config;
pub mod context;
pub mod deadline;
#[cfg(feature = "dpop")]
pub mod dpop;
pub mod emf;
#[cfg(feature = "store")]
pub mod expiry;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod gateway;
#[cfg(feature = "store")]
pub mod hash;
#[cfg(feature = "store")]
pub mod history;
#[cfg(feature = "http")]
pub mod http;
pub mod logging;
pub mod manifest;
#[cfg(feature = "store")]
pub mod migrate;
pub mod pat;
pub mod policy;
pub mod principal;
#[cfg(feature = "store")]
pub mod record;
pub mod routes;
pub mod scope;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
#[cfg(all(feature = "fetch", feature = "store"))]
pub mod tls;

pub use manifest::Manifest;
pub use pat::{Pat, PatParseError, TokenId};
pub use principal::{AuthMethod, AuthorizerContext, Principal, PrincipalKind, UserId};
#[cfg(feature = "store")]
pub use record::{TokenMeta, TokenRecord, TokenStatus, UseSite};
pub use scope::{Scope, ScopeNames, ScopeRegistry, ScopeSet};

/// A source of the current time, injectable so tests can move it.
pub trait Clock: Send + Sync {
    /// Now, in Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}
