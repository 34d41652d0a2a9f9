//! Who is calling: the principal, and the flat context the authorizer hands to the Lambdas.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pat::TokenId;
use crate::scope::{ScopeNames, ScopeRegistry, ScopeSet};

/// Longest user id (Cognito `sub`) we accept.
pub const MAX_USER_ID_LEN: usize = 128;

/// How the owner of a service token is named: `service:<name>`. No Cognito
/// `sub` (a UUID) or app client id (alphanumeric) starts with it, so a
/// service owner can never be a person, and no person's offboarding reaches
/// a service's tokens.
pub const SERVICE_OWNER_PREFIX: &str = "service:";

/// Longest service name.
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// A user's stable identifier: the Cognito `sub`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

/// Why a string is not a user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UserIdError {
    /// Empty, longer than [`MAX_USER_ID_LEN`], or contains characters outside
    /// `[A-Za-z0-9-_.:@]` (which would break our `#`-separated keys).
    #[error("invalid user id")]
    Invalid,
}

impl UserId {
    /// Parses a user id.
    pub fn parse(s: &str) -> Result<Self, UserIdError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_USER_ID_LEN
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(UserIdError::Invalid)
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owner of a named service's tokens, `service:<name>`: `name` is 1
    /// to [`MAX_SERVICE_NAME_LEN`] lower-case letters, digits and `-`,
    /// starting with a letter or digit.
    pub fn service(name: &str) -> Result<Self, UserIdError> {
        let mut bytes = name.bytes();
        let ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
            && name.len() <= MAX_SERVICE_NAME_LEN
            && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        if ok {
            Self::parse(&format!("{SERVICE_OWNER_PREFIX}{name}"))
        } else {
            Err(UserIdError::Invalid)
        }
    }

    /// Whether this owner is a named service (`service:<name>`), not a person.
    pub fn is_service(&self) -> bool {
        self.0.starts_with(SERVICE_OWNER_PREFIX)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = UserIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

/// How the principal authenticated.
///
/// `Default` exists only because `aws_lambda_events` response types are
/// `#[non_exhaustive]` and must be built from `Default`; the authorizer always
/// sets the real value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A Cognito JWT.
    #[default]
    Jwt,
    /// A personal access token.
    Pat,
}

impl AuthMethod {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::Pat => "pat",
        }
    }
}

/// What kind of principal is calling: a person or a machine, with a
/// Cognito token or an agpat token. Business Lambdas read it from the
/// context's `principalKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person's Cognito session (an access or ID token).
    #[default]
    User,
    /// A person's personal access token.
    UserToken,
    /// A machine's Cognito client-credentials access token: `sub` is the app
    /// client id.
    Service,
    /// A token issued by an administrator to a named service
    /// (`service:<name>`), which no person's departure revokes.
    ServiceToken,
}

impl PrincipalKind {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::UserToken => "user_token",
            PrincipalKind::Service => "service",
            PrincipalKind::ServiceToken => "service_token",
        }
    }

    /// How a principal of this kind authenticates.
    pub const fn method(self) -> AuthMethod {
        match self {
            PrincipalKind::User | PrincipalKind::Service => AuthMethod::Jwt,
            PrincipalKind::UserToken | PrincipalKind::ServiceToken => AuthMethod::Pat,
        }
    }

    /// The kind of an agpat token owned by `owner`.
    pub fn of_token_owner(owner: &UserId) -> Self {
        if owner.is_service() {
            PrincipalKind::ServiceToken
        } else {
            PrincipalKind::UserToken
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's Cognito `sub`.
    pub sub: UserId,
    /// The username, where the credential carries one.
    pub username: Option<String>,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// Who the caller is: a person or a service, by session or by token.
    /// Always agrees with `method` ([`PrincipalKind::method`]).
    pub kind: PrincipalKind,
    /// What the caller may do.
    pub scopes: ScopeSet,
    /// The PAT's id, for PAT callers.
    pub token_id: Option<TokenId>,
    /// When the credential expires (Unix seconds).
    pub expires_at: i64,
    /// When the credential's session began (Unix seconds): for a Cognito
    /// session the sign-in (`auth_time`, which refreshes keep; `iat` when
    /// absent), for a PAT its creation. A session that began before its
    /// owner's last revoke-all may not mint or rotate tokens. 0 when unknown.
    pub issued_at: i64,
    /// An agpat token's rate tier (which usage-plan key the decision names);
    /// `None` for sessions and services, and for tokens in the default tier.
    /// Not part of the forwarded context.
    pub rate_tier: Option<String>,
    /// For a token bound to a key (DPoP, RFC 9449): the key's RFC 7638
    /// thumbprint. The authorizer allows such a token only with a fresh
    /// proof from that key, so a request whose principal has one proved
    /// possession of it. `None` for bearer credentials.
    pub dpop_jkt: Option<String>,
}

/// The context the authorizer returns and API Gateway forwards to the Lambdas.
///
/// Every field is a flat string or number, as API Gateway requires. Empty
/// strings stand for "absent" so that no field is ever `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerContext {
    /// The user's `sub`.
    pub sub: String,
    /// The username, or empty.
    pub username: String,
    /// `jwt` or `pat`.
    pub auth_method: AuthMethod,
    /// `user`, `user_token`, `service` or `service_token`.
    pub principal_kind: PrincipalKind,
    /// Space-separated scopes.
    pub scopes: String,
    /// The PAT id, or empty for JWT callers.
    pub token_id: String,
    /// Credential expiry, Unix seconds.
    pub expires_at: i64,
    /// When the session began (sign-in or PAT creation), Unix seconds (0 when unknown).
    pub issued_at: i64,
    /// For a token bound to a key (DPoP): the key's thumbprint, which the
    /// request proved possession of. Absent (empty) for bearer credentials.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dpop_jkt: String,
}

impl AuthorizerContext {
    /// The context for `p`, naming its scopes from `scopes`.
    pub fn new(p: &Principal, scopes: &ScopeRegistry) -> Self {
        Self {
            sub: p.sub.as_str().to_owned(),
            username: p.username.clone().unwrap_or_default(),
            auth_method: p.method,
            principal_kind: p.kind,
            scopes: scopes.to_space_separated(p.scopes),
            token_id: p
                .token_id
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            expires_at: p.expires_at,
            issued_at: p.issued_at,
            dpop_jkt: p.dpop_jkt.clone().unwrap_or_default(),
        }
    }
}

/// Version of the context contract business Lambdas rely on
/// (`docs/authorizer-context.schema.json`). Adding an optional field is a
/// minor change; removing or retyping a field is a new version.
pub const CONTEXT_CONTRACT_VERSION: u32 = 1;

/// Where the committed JSON Schema of the context lives, from the repository root.
pub const CONTEXT_SCHEMA_PATH: &str = "docs/authorizer-context.schema.json";

/// The JSON Schema (draft 2020-12) of `requestContext.authorizer` as a
/// business Lambda receives it behind API Gateway: every value the
/// authorizer returned, as a string (API Gateway forwards numbers as
/// decimal strings), plus API Gateway's own `principalId`. Committed at
/// [`CONTEXT_SCHEMA_PATH`] for adopters in other languages; a test keeps the
/// two in step.
pub fn context_json_schema() -> serde_json::Value {
    let unix_seconds = serde_json::json!({
        "type": "string",
        "pattern": "^(0|[1-9][0-9]{0,11})$",
        "description": "Unix seconds, as a decimal string"
    });
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:agpat:schema:authorizer-context:{CONTEXT_CONTRACT_VERSION}"),
        "title": "agpat authorizer context",
        "description": "requestContext.authorizer as API Gateway forwards it to a business Lambda behind the agpat authorizer. Trust nothing else about the caller. Refuse the request when expiresAt is not in the future: API Gateway may replay a cached Allow past the credential's expiry.",
        "type": "object",
        "required": ["principalId", "sub", "username", "authMethod", "scopes", "tokenId", "expiresAt", "issuedAt"],
        "additionalProperties": true,
        "properties": {
            "principalId": {"type": "string", "description": "Set by API Gateway from the authorizer's principalId: the same value as sub"},
            "sub": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$", "description": "Who the caller acts as, the stable owner of everything it does: a user's Cognito sub, a service's app client id, or service:<name> for a service token"},
            "username": {"type": "string", "maxLength": 128, "description": "The Cognito username when the credential carries one, else empty"},
            "authMethod": {"enum": ["jwt", "pat"], "description": "jwt: a Cognito token; pat: an agpat token"},
            "principalKind": {"enum": ["user", "user_token", "service", "service_token"], "description": "user: a person's Cognito session; user_token: a person's personal access token; service: a machine's Cognito client-credentials token (sub is the app client id); service_token: an agpat token an administrator issued to a named service (sub is service:<name>). Absent from contexts of releases before it: read jwt as user and pat as user_token"},
            "scopes": {"type": "string", "pattern": "^$|^[^ ]+( [^ ]+)*$", "description": "Space-separated scopes the caller holds (already narrowed to what the owner's session may hold)"},
            "tokenId": {"type": "string", "pattern": "^$|^[0-9A-Za-z]{17}$", "description": "The PAT's public id for pat callers, empty for jwt callers"},
            "expiresAt": unix_seconds,
            "issuedAt": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,11})$", "description": "When the session began, Unix seconds as a decimal string: a Cognito sign-in (auth_time, which refreshes keep), or a PAT's creation (0 when unknown)"},
            "dpopJkt": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$", "description": "Present only for a token bound to a key (DPoP, RFC 9449): the key's RFC 7638 thumbprint. The authorizer allowed the request only with a fresh proof from that key, so its presence means the caller proved possession; a route that must not accept bearer tokens refuses requests without it"}
        }
    })
}

/// A context exactly as a business Lambda receives it, for the schema's
/// users to test against (`docs/examples/authorizer-context.json`).
pub fn sample_forwarded_context() -> serde_json::Value {
    serde_json::json!({
        "principalId": "1b2c3d4e-0000-4000-8000-123456789abc",
        "sub": "1b2c3d4e-0000-4000-8000-123456789abc",
        "username": "",
        "authMethod": "pat",
        "principalKind": "user_token",
        "scopes": "tokens:read items:read",
        "tokenId": "0123456789ABCDEFG",
        "expiresAt": "1900000000",
        "issuedAt": "1899990000"
    })
}

/// Why a forwarded authorizer context cannot be trusted as a principal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    /// A required field is missing.
    #[error("authorizer context is missing `{0}`")]
    Missing(&'static str),
    /// A field has the wrong type or an invalid value.
    #[error("authorizer context field `{0}` is invalid")]
    Invalid(&'static str),
}

impl Principal {
    /// Reads the principal back from `requestContext.authorizer` as API Gateway
    /// forwards it. Values may arrive as strings even where the authorizer sent
    /// numbers, so both are accepted. Anything unexpected is an error: a Lambda
    /// must never act on a half-understood context.
    ///
    /// Scope names are resolved against `registry` (the manifest this Lambda
    /// loaded). A well-formed name it does not declare is dropped, never
    /// guessed at: during a deploy that changes the manifest, the Lambda may
    /// briefly see a newer authorizer's scope, and holding fewer scopes fails
    /// closed.
    pub fn from_forwarded_context(
        ctx: &HashMap<String, serde_json::Value>,
        registry: &ScopeRegistry,
    ) -> Result<Self, ContextError> {
        let text = |key: &'static str| -> Result<&str, ContextError> {
            match ctx.get(key) {
                None => Err(ContextError::Missing(key)),
                Some(serde_json::Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(ContextError::Invalid(key)),
            }
        };
        let sub = UserId::parse(text("sub")?).map_err(|_| ContextError::Invalid("sub"))?;
        let username = match ctx.get("username") {
            None => None,
            Some(serde_json::Value::String(s)) if s.is_empty() => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ContextError::Invalid("username")),
        };
        let method = match text("authMethod")? {
            "jwt" => AuthMethod::Jwt,
            "pat" => AuthMethod::Pat,
            _ => return Err(ContextError::Invalid("authMethod")),
        };
        // Optional so that an older authorizer's context still parses (its
        // principals were all people); present, it must agree with the method.
        let kind = match ctx.get("principalKind") {
            None => match method {
                AuthMethod::Jwt => PrincipalKind::User,
                AuthMethod::Pat => PrincipalKind::UserToken,
            },
            Some(serde_json::Value::String(s)) => match s.as_str() {
                "user" => PrincipalKind::User,
                "user_token" => PrincipalKind::UserToken,
                "service" => PrincipalKind::Service,
                "service_token" => PrincipalKind::ServiceToken,
                _ => return Err(ContextError::Invalid("principalKind")),
            },
            Some(_) => return Err(ContextError::Invalid("principalKind")),
        };
        if kind.method() != method {
            return Err(ContextError::Invalid("principalKind"));
        }
        let names = ScopeNames::parse_space_separated(text("scopes")?)
            .ok_or(ContextError::Invalid("scopes"))?;
        let scopes = registry.resolve(&names);
        let token_id = match (method, ctx.get("tokenId")) {
            (AuthMethod::Pat, Some(serde_json::Value::String(s))) => {
                Some(TokenId::parse(s).map_err(|_| ContextError::Invalid("tokenId"))?)
            }
            (AuthMethod::Pat, _) => return Err(ContextError::Missing("tokenId")),
            (AuthMethod::Jwt, None) => None,
            (AuthMethod::Jwt, Some(serde_json::Value::String(s))) if s.is_empty() => None,
            (AuthMethod::Jwt, Some(_)) => return Err(ContextError::Invalid("tokenId")),
        };
        let expires_at = match ctx.get("expiresAt") {
            None => return Err(ContextError::Missing("expiresAt")),
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
            Some(_) => None,
        }
        .ok_or(ContextError::Invalid("expiresAt"))?;
        // Optional so that an older authorizer's context still parses; 0
        // (unknown) counts as older than any revoke-all, which fails closed.
        let issued_at = match ctx.get("issuedAt") {
            None => Some(0),
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
            Some(_) => None,
        }
        .ok_or(ContextError::Invalid("issuedAt"))?;
        // Optional: present only for bound tokens, which are agpat tokens.
        let dpop_jkt = match (method, ctx.get("dpopJkt")) {
            (_, None) => None,
            (_, Some(serde_json::Value::String(s))) if s.is_empty() => None,
            (AuthMethod::Pat, Some(serde_json::Value::String(s)))
                if s.len() == 43
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Some(s.clone())
            }
            (_, Some(_)) => return Err(ContextError::Invalid("dpopJkt")),
        };
        Ok(Principal {
            sub,
            username,
            method,
            kind,
            scopes,
            token_id,
            expires_at,
            issued_at,
            rate_tier: None,
            dpop_jkt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ScopeRegistry {
        ScopeRegistry::with_declared([("items:read", ""), ("items:write", "")]).unwrap()
    }

    fn pat_principal() -> Principal {
        Principal {
            sub: UserId::parse("1b2c3d4e-0000-4000-8000-123456789abc").unwrap(),
            username: Some("alice".into()),
            method: AuthMethod::Pat,
            kind: PrincipalKind::UserToken,
            scopes: registry()
                .parse_space_separated("items:read tokens:read")
                .unwrap(),
            token_id: Some(TokenId::parse("0123456789ABCDEFG").unwrap()),
            expires_at: 1_900_000_000,
            issued_at: 1_899_990_000,
            rate_tier: None,
            dpop_jkt: None,
        }
    }

    /// A bound token's context names its key (issue #18: a business
    /// Lambda can require proof of possession); bearer contexts are
    /// unchanged, and a malformed or misplaced `dpopJkt` is refused.
    #[test]
    fn a_bound_tokens_context_names_its_key_and_reads_back() {
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let mut bound = pat_principal();
        bound.dpop_jkt = Some(jkt.into());
        let json = serde_json::to_value(AuthorizerContext::new(&bound, &registry())).unwrap();
        assert_eq!(json["dpopJkt"], jkt);
        let bearer = serde_json::to_value(AuthorizerContext::new(&pat_principal(), &registry()));
        assert!(
            bearer.unwrap().get("dpopJkt").is_none(),
            "bearer contexts unchanged"
        );
        let forwarded = |jkt: serde_json::Value, method: &str| {
            let mut ctx: HashMap<String, serde_json::Value> =
                serde_json::from_value(sample_forwarded_context()).unwrap();
            ctx.insert("dpopJkt".into(), jkt);
            if method == "jwt" {
                ctx.insert("authMethod".into(), "jwt".into());
                ctx.insert("principalKind".into(), "user".into());
                ctx.insert("tokenId".into(), "".into());
            }
            Principal::from_forwarded_context(&ctx, &registry())
        };
        assert_eq!(
            forwarded(jkt.into(), "pat").unwrap().dpop_jkt.as_deref(),
            Some(jkt)
        );
        assert_eq!(forwarded("".into(), "pat").unwrap().dpop_jkt, None);
        for bad in [
            serde_json::json!("short"),
            serde_json::json!(7),
            serde_json::json!(format!("{}!", &jkt[..42])),
        ] {
            assert_eq!(forwarded(bad, "pat"), Err(ContextError::Invalid("dpopJkt")));
        }
        assert_eq!(
            forwarded(jkt.into(), "jwt"),
            Err(ContextError::Invalid("dpopJkt"))
        );
    }

    #[test]
    fn context_serializes_to_flat_camel_case_values() {
        let ctx = AuthorizerContext::new(&pat_principal(), &registry());
        let json = serde_json::to_value(&ctx).unwrap();
        let obj = json.as_object().unwrap();
        assert!(
            obj.values()
                .all(|v| v.is_string() || v.is_number() || v.is_boolean())
        );
        assert_eq!(
            json,
            serde_json::json!({
                "sub": "1b2c3d4e-0000-4000-8000-123456789abc",
                "username": "alice",
                "authMethod": "pat",
                "principalKind": "user_token",
                "scopes": "tokens:read items:read",
                "tokenId": "0123456789ABCDEFG",
                "expiresAt": 1_900_000_000,
                "issuedAt": 1_899_990_000
            })
        );
    }

    #[test]
    fn forwarded_context_round_trips_with_numbers_or_strings() {
        let p = pat_principal();
        let json = serde_json::to_value(AuthorizerContext::new(&p, &registry())).unwrap();
        let mut map: HashMap<String, serde_json::Value> = serde_json::from_value(json).unwrap();
        assert_eq!(
            Principal::from_forwarded_context(&map, &registry()).unwrap(),
            p
        );
        map.insert("expiresAt".into(), "1900000000".into());
        assert_eq!(
            Principal::from_forwarded_context(&map, &registry()).unwrap(),
            p
        );
    }

    #[test]
    fn tampered_or_incomplete_contexts_are_rejected() {
        let json =
            serde_json::to_value(AuthorizerContext::new(&pat_principal(), &registry())).unwrap();
        let base: HashMap<String, serde_json::Value> = serde_json::from_value(json).unwrap();
        let cases: [(&str, Option<serde_json::Value>); 10] = [
            ("sub", None),
            ("sub", Some("a#b".into())),
            ("authMethod", Some("admin".into())),
            ("principalKind", Some("admin".into())),
            ("principalKind", Some("user".into())),
            ("principalKind", Some("service".into())),
            ("scopes", Some("tokens:read Root".into())),
            ("tokenId", None),
            ("expiresAt", Some("soon".into())),
            ("expiresAt", Some(serde_json::json!([1]))),
        ];
        for (key, value) in cases {
            let mut map = base.clone();
            match value {
                None => map.remove(key),
                Some(v) => map.insert(key.into(), v),
            };
            assert!(
                Principal::from_forwarded_context(&map, &registry()).is_err(),
                "{key}"
            );
        }
    }

    #[test]
    fn scopes_this_manifest_does_not_declare_are_dropped_not_guessed() {
        let json =
            serde_json::to_value(AuthorizerContext::new(&pat_principal(), &registry())).unwrap();
        let mut map: HashMap<String, serde_json::Value> = serde_json::from_value(json).unwrap();
        map.insert("scopes".into(), "items:read items:admin".into());
        let p = Principal::from_forwarded_context(&map, &registry()).unwrap();
        assert_eq!(registry().to_space_separated(p.scopes), "items:read");
    }

    #[test]
    fn the_context_schema_lists_exactly_the_fields_the_authorizer_sends() {
        let schema = context_json_schema();
        let mut declared: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        declared.sort_unstable();
        // A bound token's context: every field the authorizer may send.
        let mut bound = pat_principal();
        bound.dpop_jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into());
        let sent = serde_json::to_value(AuthorizerContext::new(&bound, &registry())).unwrap();
        let mut expected: Vec<&str> = sent
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .chain(["principalId"])
            .collect();
        expected.sort_unstable();
        assert_eq!(declared, expected);
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        required.sort_unstable();
        // principalKind is optional (contract version 1 stays readable by
        // Lambdas that predate it, and theirs by newer ones); dpopJkt is
        // sent for bound tokens only.
        expected.retain(|f| *f != "principalKind" && *f != "dpopJkt");
        assert_eq!(required, expected);
    }

    /// A context from before `principalKind` reads as a person; a present
    /// kind must agree with the method; service owners are their own
    /// namespace.
    #[test]
    fn principal_kinds_round_trip_and_older_contexts_read_as_people() {
        for kind in [
            PrincipalKind::User,
            PrincipalKind::UserToken,
            PrincipalKind::Service,
            PrincipalKind::ServiceToken,
        ] {
            let mut p = pat_principal();
            p.kind = kind;
            p.method = kind.method();
            if kind.method() == AuthMethod::Jwt {
                p.token_id = None;
            }
            let json = serde_json::to_value(AuthorizerContext::new(&p, &registry())).unwrap();
            assert_eq!(json["principalKind"], kind.as_str());
            let map: HashMap<String, serde_json::Value> = serde_json::from_value(json).unwrap();
            assert_eq!(
                Principal::from_forwarded_context(&map, &registry()).unwrap(),
                p
            );
        }
        let json =
            serde_json::to_value(AuthorizerContext::new(&pat_principal(), &registry())).unwrap();
        let mut map: HashMap<String, serde_json::Value> = serde_json::from_value(json).unwrap();
        map.remove("principalKind");
        let p = Principal::from_forwarded_context(&map, &registry()).unwrap();
        assert_eq!(p.kind, PrincipalKind::UserToken);

        let owner = UserId::service("ci-deploy").unwrap();
        assert_eq!(owner.as_str(), "service:ci-deploy");
        assert!(owner.is_service());
        assert_eq!(
            PrincipalKind::of_token_owner(&owner),
            PrincipalKind::ServiceToken
        );
        let person = UserId::parse("1b2c3d4e-0000-4000-8000-123456789abc").unwrap();
        assert!(!person.is_service());
        for bad in ["", "CI", "-ci", "ci_deploy", "a:b", &"x".repeat(64)] {
            assert!(UserId::service(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sample_context_is_one_the_services_accept() {
        let sample: HashMap<String, serde_json::Value> =
            serde_json::from_value(sample_forwarded_context()).unwrap();
        let p = Principal::from_forwarded_context(&sample, &registry()).unwrap();
        assert_eq!(p.method, AuthMethod::Pat);
        assert_eq!(p.expires_at, 1_900_000_000);
        assert_eq!(p.issued_at, 1_899_990_000);
    }

    #[test]
    fn the_committed_context_schema_and_sample_match_the_code() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        for (path, value) in [
            (CONTEXT_SCHEMA_PATH, context_json_schema()),
            (
                "docs/examples/authorizer-context.json",
                sample_forwarded_context(),
            ),
        ] {
            let committed = std::fs::read_to_string(format!("{root}/{path}"))
                .unwrap_or_else(|_| panic!("{path} is missing: run `make generated`"));
            let expected = format!("{}\n", serde_json::to_string_pretty(&value).unwrap());
            assert!(
                committed == expected,
                "{path} is stale: run `make generated`"
            );
        }
    }

    #[test]
    fn user_ids_reject_key_separators_and_oversize() {
        assert!(UserId::parse("abc-123").is_ok());
        for bad in ["", "a#b", "a b", "ä", &"x".repeat(129)] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }
}
