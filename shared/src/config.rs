//! Configuration from environment variables, validated once at start-up.
//!
//! Every reader takes a lookup function so tests can feed a map instead of the
//! process environment. A bad value names the variable and what was expected.

use std::str::FromStr;

use thiserror::Error;

use crate::hash::HashParams;

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("configuration variable {var}: expected {expected}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub var: &'static str,
    /// What a valid value looks like.
    pub expected: &'static str,
}

/// A source of configuration values (the process environment, or a test map).
pub trait Env {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Reads a required string.
pub fn required(
    env: &dyn Env,
    var: &'static str,
    expected: &'static str,
) -> Result<String, ConfigError> {
    match env.get(var) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError { var, expected }),
    }
}

/// Reads an optional string; empty counts as unset.
pub fn optional(env: &dyn Env, var: &'static str) -> Option<String> {
    env.get(var).filter(|v| !v.trim().is_empty())
}

/// Reads an optional number within `[min, max]`, or returns `default`.
pub fn number_in<T>(
    env: &dyn Env,
    var: &'static str,
    default: T,
    min: T,
    max: T,
    expected: &'static str,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Copy,
{
    match optional(env, var) {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(v),
            _ => Err(ConfigError { var, expected }),
        },
    }
}

/// A switch: `on` or `off` (default off when unset or empty).
///
/// # Errors
/// Any other value.
pub fn on_off(env: &dyn Env, var: &'static str) -> Result<bool, ConfigError> {
    match optional(env, var).as_deref().map(str::trim) {
        None | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(_) => Err(ConfigError {
            var,
            expected: "on or off",
        }),
    }
}

/// Reads an optional `http://` or `https://` URL.
pub fn optional_url(env: &dyn Env, var: &'static str) -> Result<Option<String>, ConfigError> {
    match optional(env, var) {
        None => Ok(None),
        Some(v) if (v.starts_with("http://") || v.starts_with("https://")) && !v.contains(' ') => {
            Ok(Some(v))
        }
        Some(_) => Err(ConfigError {
            var,
            expected: "an http:// or https:// URL",
        }),
    }
}

/// Settings of the DynamoDB token store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `TABLE_NAME`: the single table.
    pub table_name: String,
    /// `DYNAMODB_ENDPOINT`: override for moto, DynamoDB Local, etc.
    pub endpoint: Option<String>,
    /// `MAX_ACTIVE_TOKENS_PER_USER`: cap on a user's active tokens.
    pub max_active_per_user: u32,
    /// `LAST_USED_INTERVAL_SECONDS`: minimum gap between `last_used` writes.
    pub touch_interval_secs: i64,
    /// `TOKEN_RETENTION_DAYS`, in seconds: how long expired/revoked items are kept.
    pub retention_secs: i64,
    /// `TOKEN_EVENT_RETENTION_DAYS`, in seconds: how long a token's history
    /// events (which may hold client addresses) are kept.
    pub event_retention_secs: i64,
    /// `TOKEN_SCHEMA_WRITE_VERSION` (2 or 3, default 3): the schema version
    /// written. Pin it to 2 for the first deployment over a table that older
    /// readers still read (they refuse v3), then raise it; see the README,
    /// "Changing the data model".
    pub write_schema_version: u32,
}

impl StoreConfig {
    /// Reads and validates the store settings.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let table_name = required(
            env,
            "TABLE_NAME",
            "a DynamoDB table name (3-255 of [A-Za-z0-9_.-])",
        )?;
        let valid_table = (3..=255).contains(&table_name.len())
            && table_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_table {
            return Err(ConfigError {
                var: "TABLE_NAME",
                expected: "a DynamoDB table name (3-255 of [A-Za-z0-9_.-])",
            });
        }
        Ok(Self {
            table_name,
            endpoint: optional_url(env, "DYNAMODB_ENDPOINT")?,
            max_active_per_user: number_in(
                env,
                "MAX_ACTIVE_TOKENS_PER_USER",
                50,
                1,
                1000,
                "an integer from 1 to 1000",
            )?,
            touch_interval_secs: number_in(
                env,
                "LAST_USED_INTERVAL_SECONDS",
                300,
                0,
                86_400,
                "an integer from 0 to 86400",
            )?,
            retention_secs: number_in(
                env,
                "TOKEN_RETENTION_DAYS",
                30,
                0,
                3650,
                "an integer from 0 to 3650",
            )? * 86_400,
            event_retention_secs: number_in(
                env,
                "TOKEN_EVENT_RETENTION_DAYS",
                90,
                1,
                3650,
                "an integer from 1 to 3650",
            )? * 86_400,
            write_schema_version: u32::try_from(number_in(
                env,
                "TOKEN_SCHEMA_WRITE_VERSION",
                i64::from(crate::record::CURRENT_SCHEMA_VERSION),
                2,
                i64::from(crate::record::CURRENT_SCHEMA_VERSION),
                "2 or 3",
            )?)
            .unwrap_or(crate::record::CURRENT_SCHEMA_VERSION),
        })
    }
}

/// argon2id settings: what new hashes use, and the floor stored hashes must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashConfig {
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`.
    pub params: HashParams,
    /// `ARGON2_MIN_MEMORY_KIB`, `ARGON2_MIN_ITERATIONS`, `ARGON2_MIN_PARALLELISM`.
    /// Never below the OWASP minimum.
    pub minimum: HashParams,
    /// `ARGON2_MAX_MEMORY_KIB`, `ARGON2_MAX_ITERATIONS`, `ARGON2_MAX_PARALLELISM`:
    /// stored hashes above any of these are refused unevaluated. Never below
    /// the write parameters.
    pub maximum: HashParams,
}

impl HashConfig {
    /// Reads and validates the hashing settings.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let owasp = HashParams::OWASP_MIN;
        let minimum = HashParams {
            m_kib: number_in(
                env,
                "ARGON2_MIN_MEMORY_KIB",
                owasp.m_kib,
                owasp.m_kib,
                4_194_304,
                "an integer from 19456 to 4194304",
            )?,
            t: number_in(
                env,
                "ARGON2_MIN_ITERATIONS",
                owasp.t,
                owasp.t,
                100,
                "an integer from 2 to 100",
            )?,
            p: number_in(
                env,
                "ARGON2_MIN_PARALLELISM",
                owasp.p,
                owasp.p,
                16,
                "an integer from 1 to 16",
            )?,
        };
        let params = HashParams {
            m_kib: number_in(
                env,
                "ARGON2_MEMORY_KIB",
                minimum.m_kib,
                minimum.m_kib,
                4_194_304,
                "an integer, at least ARGON2_MIN_MEMORY_KIB, at most 4194304",
            )?,
            t: number_in(
                env,
                "ARGON2_ITERATIONS",
                minimum.t,
                minimum.t,
                100,
                "an integer, at least ARGON2_MIN_ITERATIONS, at most 100",
            )?,
            p: number_in(
                env,
                "ARGON2_PARALLELISM",
                minimum.p,
                minimum.p,
                16,
                "an integer, at least ARGON2_MIN_PARALLELISM, at most 16",
            )?,
        };
        let ceiling = HashParams::DEFAULT_MAXIMUM.max(params);
        let maximum = HashParams {
            m_kib: number_in(
                env,
                "ARGON2_MAX_MEMORY_KIB",
                ceiling.m_kib,
                params.m_kib,
                4_194_304,
                "an integer, at least ARGON2_MEMORY_KIB, at most 4194304",
            )?,
            t: number_in(
                env,
                "ARGON2_MAX_ITERATIONS",
                ceiling.t,
                params.t,
                100,
                "an integer, at least ARGON2_ITERATIONS, at most 100",
            )?,
            p: number_in(
                env,
                "ARGON2_MAX_PARALLELISM",
                ceiling.p,
                params.p,
                16,
                "an integer, at least ARGON2_PARALLELISM, at most 16",
            )?,
        };
        Ok(Self {
            params,
            minimum,
            maximum,
        })
    }

    /// The hasher these settings describe.
    pub fn hasher(&self) -> Result<crate::hash::SecretHasher, crate::hash::HashError> {
        crate::hash::SecretHasher::new(self.params, self.minimum)?.with_maximum(self.maximum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_defaults_apply() {
        let cfg = StoreConfig::from_env(&[("TABLE_NAME", "tokens")]).unwrap();
        assert_eq!(cfg.max_active_per_user, 50);
        assert_eq!(cfg.touch_interval_secs, 300);
        assert_eq!(cfg.retention_secs, 30 * 86_400);
        assert_eq!(cfg.endpoint, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[], "TABLE_NAME"),
            (&[("TABLE_NAME", "a b")], "TABLE_NAME"),
            (
                &[("TABLE_NAME", "t1t"), ("MAX_ACTIVE_TOKENS_PER_USER", "0")],
                "MAX_ACTIVE_TOKENS_PER_USER",
            ),
            (
                &[("TABLE_NAME", "t1t"), ("MAX_ACTIVE_TOKENS_PER_USER", "ten")],
                "MAX_ACTIVE_TOKENS_PER_USER",
            ),
            (
                &[("TABLE_NAME", "t1t"), ("LAST_USED_INTERVAL_SECONDS", "-1")],
                "LAST_USED_INTERVAL_SECONDS",
            ),
            (
                &[
                    ("TABLE_NAME", "t1t"),
                    ("DYNAMODB_ENDPOINT", "localhost:8000"),
                ],
                "DYNAMODB_ENDPOINT",
            ),
            (
                &[
                    ("TABLE_NAME", "t1t"),
                    ("TOKEN_RETENTION_DAYS", "99999999999999999999"),
                ],
                "TOKEN_RETENTION_DAYS",
            ),
        ];
        for (vars, var) in cases {
            let map: std::collections::HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let err = StoreConfig::from_env(&map).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn hash_params_cannot_go_below_owasp() {
        assert_eq!(
            HashConfig::from_env(&[]).unwrap().params,
            HashParams::OWASP_MIN
        );
        let err = HashConfig::from_env(&[("ARGON2_MEMORY_KIB", "1024")]).unwrap_err();
        assert_eq!(err.var, "ARGON2_MEMORY_KIB");
        let err = HashConfig::from_env(&[("ARGON2_MIN_ITERATIONS", "1")]).unwrap_err();
        assert_eq!(err.var, "ARGON2_MIN_ITERATIONS");
        let err =
            HashConfig::from_env(&[("ARGON2_MIN_ITERATIONS", "3"), ("ARGON2_ITERATIONS", "2")])
                .unwrap_err();
        assert_eq!(err.var, "ARGON2_ITERATIONS");
        let cfg = HashConfig::from_env(&[]).unwrap();
        assert_eq!(cfg.maximum, HashParams::DEFAULT_MAXIMUM);
        let err =
            HashConfig::from_env(&[("ARGON2_ITERATIONS", "5"), ("ARGON2_MAX_ITERATIONS", "4")])
                .unwrap_err();
        assert_eq!(err.var, "ARGON2_MAX_ITERATIONS");
    }
}
