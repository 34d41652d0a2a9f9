//! The route table: the one list of API routes and what each requires.
//!
//! The authorizer builds its IAM policy from it, the handlers re-check scopes
//! with it, and the local gateway, the OpenAPI document and the infrastructure
//! are generated from it. Adding a route anywhere else is a bug.

use std::fmt;

use serde::Serialize;

use crate::scope::{Scope, ScopeSet};

/// HTTP methods used by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// The upper-case method name as it appears in a method ARN.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Parses an upper-case method name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "scope", rename_all = "camelCase")]
pub enum Access {
    /// No authorizer at all (e.g. leaked-token revocation). Throttled by the gateway.
    Public,
    /// Any authenticated principal, whatever its scopes.
    Authenticated,
    /// An authenticated principal holding this scope.
    Scope(Scope),
}

impl Access {
    /// Whether a principal holding `scopes` may call a route with this access rule.
    /// Public routes never reach the authorizer, so they are not part of any policy.
    pub fn permits(self, scopes: ScopeSet) -> bool {
        match self {
            Access::Public => false,
            Access::Authenticated => true,
            Access::Scope(s) => scopes.contains(s),
        }
    }
}

/// Which Lambda serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// `token-service/`
    TokenService,
    /// `api/`
    Api,
}

/// One API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path template, with `{name}` for a path parameter.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Which Lambda serves it.
    pub service: Service,
}

const fn route(method: Method, path: &'static str, access: Access, service: Service) -> Route {
    Route {
        method,
        path,
        access,
        service,
    }
}

use Access::{Authenticated, Public, Scope as S};
use Method::{Delete, Get, Post, Put};
use Scope::{ItemsRead, ItemsWrite, TokensRead, TokensWrite};
use Service::{Api, TokenService};

/// Every route of the API. The single source of truth.
pub const ROUTES: &[Route] = &[
    route(Post, "/tokens", S(TokensWrite), TokenService),
    route(Get, "/tokens", S(TokensRead), TokenService),
    route(Delete, "/tokens", S(TokensWrite), TokenService),
    route(Get, "/tokens/self", S(TokensRead), TokenService),
    route(Delete, "/tokens/self", S(TokensWrite), TokenService),
    route(Post, "/tokens/revoke", Public, TokenService),
    route(Get, "/tokens/{id}", S(TokensRead), TokenService),
    route(Delete, "/tokens/{id}", S(TokensWrite), TokenService),
    route(Post, "/tokens/{id}/rotate", S(TokensWrite), TokenService),
    route(Get, "/items", S(ItemsRead), Api),
    route(Post, "/items", S(ItemsWrite), Api),
    route(Get, "/items/{id}", S(ItemsRead), Api),
    route(Put, "/items/{id}", S(ItemsWrite), Api),
    route(Delete, "/items/{id}", S(ItemsWrite), Api),
    route(Get, "/me", Authenticated, Api),
];

impl Route {
    /// The resource part of a method ARN for this route: `METHOD/path` with each
    /// path parameter replaced by `*`, e.g. `GET/tokens/*`.
    pub fn arn_resource(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 8);
        out.push_str(self.method.as_str());
        for segment in self.path.split('/').filter(|s| !s.is_empty()) {
            out.push('/');
            if segment.starts_with('{') && segment.ends_with('}') {
                out.push('*');
            } else {
                out.push_str(segment);
            }
        }
        out
    }

    /// Whether a concrete request path matches this route's template.
    /// Path parameters match exactly one non-empty segment.
    pub fn matches(&self, method: Method, path: &str) -> bool {
        if method != self.method {
            return false;
        }
        let mut want = self.path.split('/').filter(|s| !s.is_empty());
        let mut have = path.split('/').filter(|s| !s.is_empty());
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(w), Some(h)) => {
                    let is_param = w.starts_with('{') && w.ends_with('}');
                    if !is_param && w != h {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

/// Finds the route for a request. Literal segments win over parameters, so
/// `/tokens/self` resolves to its own route, not to `/tokens/{id}`.
pub fn find_route(method: Method, path: &str) -> Option<&'static Route> {
    let mut candidates = ROUTES.iter().filter(|r| r.matches(method, path));
    let first = candidates.next()?;
    Some(candidates.fold(first, |best, r| {
        if literal_segments(r) > literal_segments(best) {
            r
        } else {
            best
        }
    }))
}

fn literal_segments(r: &Route) -> usize {
    r.path
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .count()
}

/// The routes a principal with `scopes` may call (never public routes).
pub fn permitted_routes(scopes: ScopeSet) -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(move |r| r.access.permits(scopes))
}

/// The infrastructure manifest: every route with its access rule and service,
/// plus the table facts the CDK app needs. Written to
/// `infra/generated/routes.json` (a test fails when the file drifts), so the
/// deployed API is generated from this table, never hand-copied.
pub fn infra_manifest() -> serde_json::Value {
    serde_json::json!({
        "comment": "Generated from shared/src/routes.rs by `make generated`. Do not edit.",
        "routes": ROUTES,
        "table": {
            "partitionKey": "PK",
            "sortKey": "SK",
            "gsi1": {
                "name": crate::store::GSI1,
                "partitionKey": "GSI1PK",
                "sortKey": "GSI1SK",
                "projectedAttributes": crate::store::GSI1_PROJECTED,
            },
            "ttlAttribute": crate::store::TTL_ATTRIBUTE,
        }
    })
}

/// [`infra_manifest`] as committed: pretty JSON with a trailing newline.
pub fn infra_manifest_json() -> String {
    let mut text = serde_json::to_string_pretty(&infra_manifest()).unwrap_or_default();
    text.push('\n');
    text
}

/// Whether an IAM resource pattern (with `*` and `?` wildcards) matches `value`.
///
/// `*` matches any run of characters (including `/`), `?` exactly one, as IAM
/// and API Gateway evaluate `Resource` entries. Iterative, so no input can blow
/// the stack.
pub fn iam_wildcard_match(pattern: &str, value: &str) -> bool {
    let p = pattern.as_bytes();
    let v = value.as_bytes();
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<usize> = None;
    let mut mark = 0usize;
    while vi < v.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some(pi);
                mark = vi;
                pi += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == v.get(vi) => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    vi = mark;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_resources_replace_parameters_with_a_star() {
        let r = find_route(Post, "/tokens/abc/rotate").unwrap();
        assert_eq!(r.arn_resource(), "POST/tokens/*/rotate");
        assert_eq!(find_route(Get, "/me").unwrap().arn_resource(), "GET/me");
    }

    #[test]
    fn literal_routes_win_over_parameters() {
        assert_eq!(
            find_route(Get, "/tokens/self").unwrap().path,
            "/tokens/self"
        );
        assert_eq!(find_route(Get, "/tokens/xyz").unwrap().path, "/tokens/{id}");
        assert_eq!(find_route(Post, "/tokens/revoke").unwrap().access, Public);
    }

    #[test]
    fn unknown_paths_have_no_route() {
        assert!(find_route(Get, "/nope").is_none());
        assert!(find_route(Put, "/tokens").is_none());
        assert!(find_route(Get, "/tokens/a/b").is_none());
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{a:?}");
            }
        }
    }

    /// The explicit table a reviewer checks: each route and the scope it needs.
    #[test]
    fn each_route_requires_the_expected_access() {
        let expected = [
            ("POST /tokens", S(TokensWrite)),
            ("GET /tokens", S(TokensRead)),
            ("DELETE /tokens", S(TokensWrite)),
            ("GET /tokens/self", S(TokensRead)),
            ("DELETE /tokens/self", S(TokensWrite)),
            ("POST /tokens/revoke", Public),
            ("GET /tokens/{id}", S(TokensRead)),
            ("DELETE /tokens/{id}", S(TokensWrite)),
            ("POST /tokens/{id}/rotate", S(TokensWrite)),
            ("GET /items", S(ItemsRead)),
            ("POST /items", S(ItemsWrite)),
            ("GET /items/{id}", S(ItemsRead)),
            ("PUT /items/{id}", S(ItemsWrite)),
            ("DELETE /items/{id}", S(ItemsWrite)),
            ("GET /me", Authenticated),
        ];
        assert_eq!(ROUTES.len(), expected.len());
        for (route, (name, access)) in ROUTES.iter().zip(expected) {
            assert_eq!(format!("{} {}", route.method, route.path), name);
            assert_eq!(route.access, access, "{name}");
        }
    }

    #[test]
    fn the_committed_infra_manifest_matches_the_route_table() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/generated/routes.json"
        );
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == infra_manifest_json(),
            "infra/generated/routes.json is stale: run `make generated` and commit it"
        );
    }

    #[test]
    fn wildcard_matching_follows_iam_rules() {
        assert!(iam_wildcard_match("a*c", "abbbc"));
        assert!(iam_wildcard_match("a*c", "ac"));
        assert!(iam_wildcard_match("a?c", "abc"));
        assert!(!iam_wildcard_match("a?c", "ac"));
        assert!(iam_wildcard_match("*", ""));
        assert!(iam_wildcard_match("GET/tokens/*", "GET/tokens/x/y"));
        assert!(!iam_wildcard_match("GET/tokens", "GET/tokens/x"));
        assert!(!iam_wildcard_match("", "x"));
        assert!(iam_wildcard_match("**a", "a"));
        assert!(!iam_wildcard_match(&"*a".repeat(50), &"a".repeat(49)));
    }
}
