//! Authorizer settings, read once at cold start.

use shared::config::{
    ConfigError, Env, HashConfig, StoreConfig, number_in, optional, optional_url, required,
};
use shared::emf::{NAMESPACE_VAR, Namespace};

/// Which Cognito token kinds are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedTokenUse {
    /// Access tokens (`token_use = access`, client checked via `client_id`).
    pub access: bool,
    /// ID tokens (`token_use = id`, client checked via `aud`).
    pub id: bool,
}

/// Cognito JWT settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// Exact expected `iss`.
    pub issuer: String,
    /// Where the signing keys are fetched from. Never taken from a token.
    pub jwks_url: String,
    /// Allowed app client ids (`client_id` of access tokens, `aud` of ID tokens).
    pub client_ids: Vec<String>,
    /// App clients whose client-credentials access tokens are machines
    /// (`COGNITO_SERVICE_CLIENT_IDS`): principal kind `service`, scopes from
    /// the manifest's `[services]`. Never one of [`Self::client_ids`].
    pub service_client_ids: Vec<String>,
    /// Accepted `token_use` values.
    pub token_use: AcceptedTokenUse,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: i64,
    /// How long a verified JWT is served from memory, in seconds (never past
    /// its `exp`); 0 turns the cache off.
    pub cache_ttl_secs: i64,
}

impl JwtConfig {
    /// Settings for one issuer and app client with the same defaults as
    /// [`AuthorizerConfig::from_env`]: access tokens only, 5 s leeway, a 60 s
    /// verified-token cache. (Which scopes a session holds is the manifest's.)
    pub fn for_issuer(
        issuer: impl Into<String>,
        jwks_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: jwks_url.into(),
            client_ids: vec![client_id.into()],
            service_client_ids: Vec::new(),
            token_use: AcceptedTokenUse {
                access: true,
                id: false,
            },
            leeway_secs: 5,
            cache_ttl_secs: 60,
        }
    }
}

/// PAT verification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatConfig {
    /// How long a verified token is served from memory, in seconds.
    pub positive_ttl_secs: i64,
    /// How long an id stays refused after it failed, in seconds.
    pub negative_ttl_secs: i64,
    /// Wrong secrets tolerated per (id, source address) within
    /// `negative_ttl_secs`; past that, further unverified presentations of
    /// that id from that address are refused without a read or a hash.
    /// Other addresses, and tokens this instance has verified, are unaffected.
    pub max_failures_per_source: u32,
}

/// Everything the authorizer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// JWT settings.
    pub jwt: JwtConfig,
    /// PAT settings.
    pub pat: PatConfig,
    /// Token store.
    pub store: StoreConfig,
    /// argon2id settings.
    pub hash: HashConfig,
    /// Longest credential accepted, in bytes; longer ones are refused undecoded.
    pub max_credential_bytes: usize,
    /// CloudWatch namespace of the decision metrics (`AGPAT_METRICS_NAMESPACE`,
    /// default `agpat`): one per environment, so `dev` and `prod` never mix.
    pub metrics_namespace: Namespace,
    /// `AGPAT_IP_ALLOW_LISTS` (`on`/`off`, default off): honour tokens' IP
    /// allow-lists. On only where API Gateway's authorizer cache is keyed by
    /// `context.identity.sourceIp` too (the construct's `ipAllowLists`); off,
    /// a token that carries one is refused.
    pub ip_allow_lists: bool,
    /// `AGPAT_DPOP` (`on`/`off`, default off): accept tokens bound to a key
    /// (RFC 9449). On only where API Gateway caches no authorizer answer
    /// (the construct's `dpop`: TTL 0); off, every bound token is refused.
    /// With it: `DPOP_ORIGINS` (comma-separated `https://` URLs clients use
    /// besides the stage's default one, e.g. a custom domain with its base
    /// path), `DPOP_PROOF_MAX_AGE_SECONDS` (5 to 300, default 60) and
    /// `DPOP_CLOCK_SKEW_SECONDS` (0 to 60, default 5).
    pub dpop: Option<crate::dpop::DpopSettings>,
    /// `RATE_TIER_KEYS` / `RATE_TIER_DEFAULT`: the usage-plan key of each
    /// rate tier, named in decisions as `usageIdentifierKey`; unset, none.
    pub rate_tiers: Option<crate::tiers::RateTiers>,
    /// `PAT_VERIFIED_CAPACITY` (1,024 to 2,097,152; default 262,144): how
    /// many verified (token, stored hash) pairs an instance remembers, so
    /// argon2 runs once per genuine token per instance (a 16-byte proof
    /// each, held in hash sets).
    pub verified_capacity: usize,
    /// `AGPAT_TLS_ROOTS` (`amazon` or `system`): the roots the DynamoDB
    /// client and the JWKS fetch trust. Default: Amazon's for a Cognito user
    /// pool in the commercial partition, else the system's.
    pub tls_roots: shared::tls::TrustRoots,
}

impl AuthorizerConfig {
    /// Reads and validates every setting.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let issuer = match optional(env, "JWT_ISSUER") {
            Some(iss) if iss.starts_with("https://") || iss.starts_with("http://") => iss,
            Some(_) => {
                return Err(ConfigError {
                    var: "JWT_ISSUER",
                    expected: "an https:// issuer URL",
                });
            }
            None => {
                let pool = required(
                    env,
                    "COGNITO_USER_POOL_ID",
                    "a Cognito user pool id like us-east-1_AbC123 (or set JWT_ISSUER)",
                )?;
                let region = pool.split('_').next().unwrap_or_default().to_owned();
                let valid_pool = pool.len() <= 55
                    && pool.contains('_')
                    && pool
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid_pool || region.is_empty() {
                    return Err(ConfigError {
                        var: "COGNITO_USER_POOL_ID",
                        expected: "a Cognito user pool id like us-east-1_AbC123",
                    });
                }
                format!("https://cognito-idp.{region}.amazonaws.com/{pool}")
            }
        };
        let jwks_url = optional_url(env, "JWKS_URL")?
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        let store = StoreConfig::from_env(env)?;
        // Amazon's roots by default only where every HTTPS peer is AWS: a
        // Cognito pool's JWKS, and DynamoDB itself (an https endpoint
        // override elsewhere keeps the system's store; http is local).
        let aws_dynamodb = store.endpoint.as_deref().is_none_or(|e| {
            !e.starts_with("https://")
                || e.strip_prefix("https://")
                    .and_then(|r| r.split(['/', ':']).next())
                    .is_some_and(|h| h.ends_with(".amazonaws.com"))
        });
        let tls_roots = shared::tls::TrustRoots::from_env(
            env,
            if aws_dynamodb {
                shared::tls::TrustRoots::default_for_jwks(&jwks_url)
            } else {
                shared::tls::TrustRoots::System
            },
        )?;
        let client_ids: Vec<String> = required(
            env,
            "COGNITO_CLIENT_IDS",
            "a comma-separated list of app client ids",
        )?
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
        if client_ids.is_empty() {
            return Err(ConfigError {
                var: "COGNITO_CLIENT_IDS",
                expected: "a comma-separated list of app client ids",
            });
        }
        let service_client_ids: Vec<String> = optional(env, "COGNITO_SERVICE_CLIENT_IDS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        // One client, one kind: a user client's token is never a machine's.
        if service_client_ids.iter().any(|s| client_ids.contains(s)) {
            return Err(ConfigError {
                var: "COGNITO_SERVICE_CLIENT_IDS",
                expected: "app client ids that are not also in COGNITO_CLIENT_IDS",
            });
        }
        // Session scopes moved to the manifest's [sessions]. A deployment that
        // still sets the old variables must not silently get other scopes.
        for var in ["JWT_DEFAULT_SCOPES", "JWT_SCOPE_PREFIX"] {
            if optional(env, var).is_some() {
                return Err(ConfigError {
                    var,
                    expected: "nothing: session scopes are set in the manifest's [sessions] table",
                });
            }
        }
        let token_use = match optional(env, "JWT_TOKEN_USE").as_deref().map(str::trim) {
            None | Some("access") => AcceptedTokenUse {
                access: true,
                id: false,
            },
            Some("id") => AcceptedTokenUse {
                access: false,
                id: true,
            },
            Some("access,id") | Some("id,access") => AcceptedTokenUse {
                access: true,
                id: true,
            },
            Some(_) => {
                return Err(ConfigError {
                    var: "JWT_TOKEN_USE",
                    expected: "access, id, or access,id",
                });
            }
        };
        // Client-credentials tokens are access tokens: refusing those would
        // refuse every service silently.
        if !service_client_ids.is_empty() && !token_use.access {
            return Err(ConfigError {
                var: "COGNITO_SERVICE_CLIENT_IDS",
                expected: "unset when JWT_TOKEN_USE=id (client-credentials tokens are access tokens)",
            });
        }
        Ok(Self {
            jwt: JwtConfig {
                issuer,
                jwks_url,
                client_ids,
                service_client_ids,
                token_use,
                leeway_secs: number_in(
                    env,
                    "JWT_LEEWAY_SECONDS",
                    5,
                    0,
                    60,
                    "an integer from 0 to 60",
                )?,
                cache_ttl_secs: number_in(
                    env,
                    "JWT_CACHE_TTL_SECONDS",
                    60,
                    0,
                    3600,
                    "an integer from 0 to 3600",
                )?,
            },
            pat: PatConfig {
                positive_ttl_secs: number_in(
                    env,
                    "PAT_CACHE_TTL_SECONDS",
                    30,
                    0,
                    300,
                    "an integer from 0 to 300",
                )?,
                negative_ttl_secs: number_in(
                    env,
                    "PAT_NEGATIVE_CACHE_TTL_SECONDS",
                    30,
                    // At least 1: this is also the window of the wrong-secret
                    // budget, which 0 would switch off.
                    1,
                    3600,
                    "an integer from 1 to 3600",
                )?,
                max_failures_per_source: number_in(
                    env,
                    "PAT_MAX_FAILURES_PER_SOURCE",
                    5,
                    1,
                    1000,
                    "an integer from 1 to 1000",
                )?,
            },
            store,
            hash: HashConfig::from_env(env)?,
            max_credential_bytes: number_in(
                env,
                "MAX_CREDENTIAL_BYTES",
                8192,
                256,
                65_536,
                "an integer from 256 to 65536",
            )?,
            metrics_namespace: Namespace::from_var(env.get(NAMESPACE_VAR).as_deref()).map_err(
                |_| ConfigError {
                    var: "AGPAT_METRICS_NAMESPACE",
                    expected: "a CloudWatch namespace: 1 to 255 characters from A-Z a-z 0-9 . - _ / # : and space, not starting with AWS/",
                },
            )?,
            ip_allow_lists: shared::config::on_off(env, "AGPAT_IP_ALLOW_LISTS")?,
            dpop: dpop_from_env(env)?,
            verified_capacity: number_in(
                env,
                "PAT_VERIFIED_CAPACITY",
                crate::pat::DEFAULT_VERIFIED_CAPACITY,
                1024,
                2_097_152,
                "an integer from 1024 to 2097152",
            )?,
            rate_tiers: crate::tiers::RateTiers::from_env(env)?,
            tls_roots,
        })
    }
}

/// The DPoP settings, if `AGPAT_DPOP` is on.
fn dpop_from_env(env: &dyn Env) -> Result<Option<crate::dpop::DpopSettings>, ConfigError> {
    if !shared::config::on_off(env, "AGPAT_DPOP")? {
        return Ok(None);
    }
    let origins = optional(env, "DPOP_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .filter(|o| !o.trim().is_empty())
        .map(|o| {
            crate::dpop::DpopSettings::origin(o).ok_or(ConfigError {
                var: "DPOP_ORIGINS",
                expected: "comma-separated http(s) URLs without query or credentials",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut settings = crate::dpop::DpopSettings::new(origins);
    settings.max_age_secs = number_in(
        env,
        "DPOP_PROOF_MAX_AGE_SECONDS",
        settings.max_age_secs,
        5,
        shared::dpop::MAX_PROOF_AGE_LIMIT_SECS,
        "an integer from 5 to 300",
    )?;
    settings.max_skew_secs = number_in(
        env,
        "DPOP_CLOCK_SKEW_SECONDS",
        settings.max_skew_secs,
        0,
        shared::dpop::MAX_CLOCK_SKEW_LIMIT_SECS,
        "an integer from 0 to 60",
    )?;
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_is_off_unless_switched_on_and_its_settings_are_checked() {
        const BASE: [(&str, &str); 3] = [
            ("COGNITO_USER_POOL_ID", "us-east-1_AbC123"),
            ("COGNITO_CLIENT_IDS", "people"),
            ("TABLE_NAME", "tokens"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let vars: std::collections::HashMap<String, String> = BASE
                .iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            AuthorizerConfig::from_env(&vars)
        };
        assert_eq!(with(&[]).unwrap().dpop, None);
        assert_eq!(
            with(&[("DPOP_ORIGINS", "https://x.example")]).unwrap().dpop,
            None
        );
        let on = with(&[
            ("AGPAT_DPOP", "on"),
            (
                "DPOP_ORIGINS",
                "https://API.example.com/v1/, http://127.0.0.1:8080",
            ),
        ])
        .unwrap()
        .dpop
        .unwrap();
        assert_eq!(
            on.origins,
            vec!["https://api.example.com/v1", "http://127.0.0.1:8080"]
        );
        assert_eq!((on.max_age_secs, on.max_skew_secs), (60, 5));
        for (var, value) in [
            ("DPOP_ORIGINS", "api.example.com"),
            ("DPOP_ORIGINS", "https://x.example/?q=1"),
            ("DPOP_PROOF_MAX_AGE_SECONDS", "3600"),
            ("DPOP_CLOCK_SKEW_SECONDS", "-1"),
            ("AGPAT_DPOP", "yes"),
        ] {
            let err = with(&[("AGPAT_DPOP", "on"), (var, value)]).unwrap_err();
            assert_eq!(err.var, var);
        }
    }

    /// Service clients are never people's clients, and need access tokens.
    #[test]
    fn service_clients_are_their_own_and_need_access_tokens() {
        const POOL: (&str, &str) = ("COGNITO_USER_POOL_ID", "us-east-1_AbC123");
        const PEOPLE: (&str, &str) = ("COGNITO_CLIENT_IDS", "people");
        const TABLE: (&str, &str) = ("TABLE_NAME", "tokens");
        let cfg = AuthorizerConfig::from_env(&[
            POOL,
            PEOPLE,
            TABLE,
            ("COGNITO_SERVICE_CLIENT_IDS", "ci, batch"),
        ])
        .unwrap();
        assert_eq!(cfg.jwt.service_client_ids, vec!["ci", "batch"]);
        let cfg = AuthorizerConfig::from_env(&[POOL, PEOPLE, TABLE]).unwrap();
        assert!(cfg.jwt.service_client_ids.is_empty());
        let overlap = AuthorizerConfig::from_env(&[
            POOL,
            PEOPLE,
            TABLE,
            ("COGNITO_SERVICE_CLIENT_IDS", "ci,people"),
        ]);
        assert_eq!(overlap.unwrap_err().var, "COGNITO_SERVICE_CLIENT_IDS");
        let id_only = AuthorizerConfig::from_env(&[
            POOL,
            PEOPLE,
            TABLE,
            ("COGNITO_SERVICE_CLIENT_IDS", "ci"),
            ("JWT_TOKEN_USE", "id"),
        ]);
        assert_eq!(id_only.unwrap_err().var, "COGNITO_SERVICE_CLIENT_IDS");
    }

    #[test]
    fn issuer_and_jwks_url_derive_from_the_pool() {
        let cfg = AuthorizerConfig::from_env(&[
            ("COGNITO_USER_POOL_ID", "eu-west-1_AbC123"),
            ("COGNITO_CLIENT_IDS", "abc, def"),
            ("TABLE_NAME", "tokens"),
        ])
        .unwrap();
        assert_eq!(
            cfg.jwt.issuer,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        );
        assert_eq!(
            cfg.jwt.jwks_url,
            format!("{}/.well-known/jwks.json", cfg.jwt.issuer)
        );
        assert_eq!(cfg.jwt.client_ids, vec!["abc", "def"]);
        assert_eq!(
            cfg.jwt.token_use,
            AcceptedTokenUse {
                access: true,
                id: false
            }
        );
        assert_eq!(cfg.jwt.leeway_secs, 5);
    }

    #[test]
    fn the_metrics_namespace_defaults_to_agpat_and_is_validated() {
        let base = [
            ("COGNITO_USER_POOL_ID", "us-east-1_x"),
            ("COGNITO_CLIENT_IDS", "abc"),
            ("TABLE_NAME", "tokens"),
        ];
        let cfg = AuthorizerConfig::from_env(&base).unwrap();
        assert_eq!(cfg.metrics_namespace.as_str(), "agpat");
        let with = |value: &str| {
            let mut map: std::collections::HashMap<String, String> = base
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            map.insert("AGPAT_METRICS_NAMESPACE".into(), value.into());
            AuthorizerConfig::from_env(&map)
        };
        assert_eq!(
            with("agpat/prod").unwrap().metrics_namespace.as_str(),
            "agpat/prod"
        );
        for bad in ["", "agpat/prød", "AWS/Lambda", &"n".repeat(256), "a\"b"] {
            assert_eq!(
                with(bad).unwrap_err().var,
                "AGPAT_METRICS_NAMESPACE",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_failure_window_cannot_be_switched_off() {
        let err = AuthorizerConfig::from_env(&[
            ("COGNITO_USER_POOL_ID", "us-east-1_x"),
            ("COGNITO_CLIENT_IDS", "abc"),
            ("TABLE_NAME", "tokens"),
            ("PAT_NEGATIVE_CACHE_TTL_SECONDS", "0"),
        ])
        .unwrap_err();
        assert_eq!(err.var, "PAT_NEGATIVE_CACHE_TTL_SECONDS");
    }

    #[test]
    fn the_verified_memory_defaults_past_the_fleet_models_tokens_per_instance() {
        let with = |value: Option<&str>| {
            let mut map: std::collections::HashMap<String, String> = [
                ("COGNITO_USER_POOL_ID", "us-east-1_x"),
                ("COGNITO_CLIENT_IDS", "abc"),
                ("TABLE_NAME", "tokens"),
            ]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
            if let Some(v) = value {
                map.insert("PAT_VERIFIED_CAPACITY".into(), v.into());
            }
            AuthorizerConfig::from_env(&map)
        };
        assert_eq!(with(None).unwrap().verified_capacity, 262_144);
        assert_eq!(with(Some("100000")).unwrap().verified_capacity, 100_000);
        for bad in ["10", "99999999", "lots"] {
            assert_eq!(
                with(Some(bad)).unwrap_err().var,
                "PAT_VERIFIED_CAPACITY",
                "{bad}"
            );
        }
    }

    #[test]
    fn a_cognito_pool_trusts_amazons_roots_unless_told_otherwise() {
        let cfg = |extra: &[(&str, &str)]| {
            let mut map: std::collections::HashMap<String, String> = [
                ("COGNITO_USER_POOL_ID", "eu-west-1_AbC123"),
                ("COGNITO_CLIENT_IDS", "abc"),
                ("TABLE_NAME", "tokens"),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
            map.retain(|_, v| !v.is_empty());
            AuthorizerConfig::from_env(&map)
        };
        use shared::tls::TrustRoots;
        assert_eq!(cfg(&[]).unwrap().tls_roots, TrustRoots::Amazon);
        assert_eq!(
            cfg(&[("AGPAT_TLS_ROOTS", "system")]).unwrap().tls_roots,
            TrustRoots::System
        );
        let other = [
            ("COGNITO_USER_POOL_ID", ""),
            ("JWT_ISSUER", "https://login.example.com"),
        ];
        assert_eq!(cfg(&other).unwrap().tls_roots, TrustRoots::System);
        let elsewhere = [("DYNAMODB_ENDPOINT", "https://dynamo.example.com")];
        assert_eq!(cfg(&elsewhere).unwrap().tls_roots, TrustRoots::System);
        let local = [("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000")];
        assert_eq!(cfg(&local).unwrap().tls_roots, TrustRoots::Amazon);
        assert_eq!(
            cfg(&[("AGPAT_TLS_ROOTS", "everything")]).unwrap_err().var,
            "AGPAT_TLS_ROOTS"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let base = [("COGNITO_CLIENT_IDS", "abc"), ("TABLE_NAME", "tokens")];
        let cases: [(&str, &str, &str); 7] = [
            (
                "COGNITO_USER_POOL_ID",
                "no-underscore",
                "COGNITO_USER_POOL_ID",
            ),
            ("JWT_ISSUER", "cognito", "JWT_ISSUER"),
            ("JWT_TOKEN_USE", "refresh", "JWT_TOKEN_USE"),
            ("JWT_LEEWAY_SECONDS", "600", "JWT_LEEWAY_SECONDS"),
            // Moved to the manifest's [sessions]: refused, never ignored.
            ("JWT_DEFAULT_SCOPES", "tokens:read", "JWT_DEFAULT_SCOPES"),
            ("JWT_SCOPE_PREFIX", "https://x/", "JWT_SCOPE_PREFIX"),
            ("JWKS_URL", "file:///etc/passwd", "JWKS_URL"),
        ];
        for (var, value, named) in cases {
            let mut map: std::collections::HashMap<String, String> = base
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            if var != "COGNITO_USER_POOL_ID" {
                map.insert("COGNITO_USER_POOL_ID".into(), "us-east-1_x".into());
            }
            map.insert(var.into(), value.into());
            let err = AuthorizerConfig::from_env(&map).unwrap_err();
            assert_eq!(err.var, named, "{var}={value}");
        }
    }
}
