//! Routes: method + path template + who may call it, and the two questions
//! asked of them: which route serves a request ([`RouteTable::find`]), and
//! which IAM resources an authorizer policy must allow and deny so that one
//! cached policy is exact for every route ([`RouteTable::policy_plan`]).
//!
//! The table is the built-in `/tokens` routes plus an adopter's manifest
//! ([`crate::manifest`]), which builds and validates it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

use crate::scope::{Scope, ScopeSet};

#[path = "routes_reach.rs"]
mod reach;

/// HTTP methods a route can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// HEAD
    Head,
    /// OPTIONS
    Options,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ];

    /// The upper-case method name as it appears in a method ARN.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    /// Parses an upper-case method name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    /// Whether the authorizer guards the route.
    pub fn is_protected(self) -> bool {
        self != Access::Public
    }
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param(String),
    /// `{name+}`: one or more segments; only ever last.
    Greedy(String),
}

impl Segment {
    /// Specificity rank for routing: literal beats parameter beats greedy.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 0,
        }
    }
}

/// Why a path template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Not starting with `/`, an empty segment, or a trailing `/`.
    #[error("a path starts with `/` and has no empty segment or trailing `/`")]
    Shape,
    /// A literal segment holds a character outside `A-Z a-z 0-9 - . _ ~`
    /// (IAM wildcards `*` and `?` above all).
    #[error("segment `{0}` may hold only A-Z a-z 0-9 - . _ ~")]
    Literal(String),
    /// A parameter name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("`{0}` is not a parameter: use {{name}} or {{name+}}")]
    Param(String),
    /// A greedy parameter that is not the last segment.
    #[error("the greedy parameter `{0}` must be the last segment")]
    GreedyNotLast(String),
    /// The same parameter name twice in one path.
    #[error("parameter `{0}` appears twice")]
    DuplicateParam(String),
    /// Too long.
    #[error("a path is at most 512 bytes and 32 segments")]
    TooLong,
}

/// Parses a path template such as `/docs/{docId}/files/{path+}`.
pub fn parse_template(path: &str) -> Result<Vec<Segment>, TemplateError> {
    if path.len() > 512 {
        return Err(TemplateError::TooLong);
    }
    let rest = path.strip_prefix('/').ok_or(TemplateError::Shape)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 32 {
        return Err(TemplateError::TooLong);
    }
    let mut segments = Vec::with_capacity(parts.len());
    let mut names = BTreeSet::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(TemplateError::Shape);
        }
        let segment = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
        {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            let mut chars = name.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.len() <= 64;
            if !ok {
                return Err(TemplateError::Param((*part).chars().take(80).collect()));
            }
            if !names.insert(name.to_owned()) {
                return Err(TemplateError::DuplicateParam(name.to_owned()));
            }
            if greedy {
                if i + 1 != parts.len() {
                    return Err(TemplateError::GreedyNotLast(name.to_owned()));
                }
                Segment::Greedy(name.to_owned())
            } else {
                Segment::Param(name.to_owned())
            }
        } else {
            let ok = part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if !ok {
                return Err(TemplateError::Literal((*part).chars().take(80).collect()));
            }
            Segment::Literal((*part).to_owned())
        };
        segments.push(segment);
    }
    Ok(segments)
}

/// One API route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path template as declared, e.g. `/docs/{docId}`.
    pub path: String,
    /// The parsed template.
    pub segments: Vec<Segment>,
    /// Who may call it.
    pub access: Access,
    /// One-line description for the OpenAPI document.
    pub summary: Option<String>,
    /// A built-in `/tokens` route, served by the token service.
    pub built_in: bool,
    /// Where the manifest declares it (1-based line; 0 for built-in routes).
    pub line: usize,
}

impl Route {
    /// The resource part of a method ARN for this route: `METHOD/path` with
    /// each parameter replaced by `*`, e.g. `GET/tokens/*`; the root is `GET/`.
    pub fn arn_resource(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 8);
        out.push_str(self.method.as_str());
        if self.segments.is_empty() {
            out.push('/');
        }
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Param(_) | Segment::Greedy(_) => out.push('*'),
            }
        }
        out
    }

    /// Whether a concrete request path matches this route's template.
    pub fn matches(&self, method: Method, path: &str) -> bool {
        method == self.method && matches_segments(&self.segments, &split_path(path))
    }

    /// `METHOD /path` (for messages).
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// `METHOD /path (line N)`, or `(built in)` for a built-in route.
    pub fn located(&self) -> String {
        if self.built_in {
            format!("{} (built in)", self.label())
        } else {
            format!("{} (line {})", self.label(), self.line)
        }
    }
}

fn split_path(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn matches_segments(template: &[Segment], have: &[&str]) -> bool {
    match template.split_first() {
        None => have.is_empty(),
        Some((Segment::Greedy(_), _)) => !have.is_empty(),
        Some((Segment::Literal(text), rest)) => have
            .split_first()
            .is_some_and(|(h, more)| h == text && matches_segments(rest, more)),
        Some((Segment::Param(_), rest)) => have
            .split_first()
            .is_some_and(|(_, more)| matches_segments(rest, more)),
    }
}

/// What an authorizer policy must say for one scope set: Allow these
/// resources, and Deny these (resources of routes the scopes do not permit,
/// that an allowed wildcard would otherwise reach). Resources are the part
/// after the stage prefix, e.g. `GET/docs/*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyPlan {
    /// Allowed resources.
    pub allow: Vec<String>,
    /// Denied resources (explicit Deny wins over Allow).
    pub deny: Vec<String>,
}

/// Resources every non-empty policy denies: any path with a trailing slash
/// (`GET/a/`; the root `GET/` has one slash and stays allowed) and any path
/// with an empty segment (`GET/a//b`).
pub const MALFORMED_PATH_DENIES: [&str; 2] = ["*/*/", "*//*"];

/// Routes no IAM policy can tell apart for some scope set, each as
/// [`Route::located`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inseparable {
    /// The allowed route whose wildcard reaches `denied`.
    pub allowed: String,
    /// The route that must then be denied.
    pub denied: String,
    /// The allowed route the Deny of `denied` would also hit.
    pub collateral: String,
    /// The manifest line to report: the first declared route of `denied`,
    /// `allowed`, `collateral` (0 when all are built in).
    pub line: usize,
}

/// Why a route table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// Routes no IAM policy can keep apart.
    Inseparable(Inseparable),
    /// The wildcard analysis exceeded its budget: refused rather than
    /// trusted unchecked.
    TooComplex,
}

/// The route table: every route, and which routes each route's ARN wildcard
/// reaches.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// `reaches[r]`: the other protected routes that `routes[r]`'s ARN
    /// resource can match a request of (a request API Gateway routes to them).
    reaches: Vec<Vec<usize>>,
    by_method: HashMap<Method, Vec<usize>>,
}

impl RouteTable {
    /// Builds the table and its wildcard analysis. Fails when some scope set
    /// would need a policy IAM cannot express exactly.
    pub fn new(routes: Vec<Route>) -> Result<Self, TableError> {
        let mut by_method: HashMap<Method, Vec<usize>> = HashMap::new();
        for (i, r) in routes.iter().enumerate() {
            by_method.entry(r.method).or_default().push(i);
        }
        let mut table = Self {
            reaches: vec![Vec::new(); routes.len()],
            routes,
            by_method,
        };
        table.analyse()?;
        Ok(table)
    }

    /// Every route, built-in ones first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route serving a request: among matching templates, the most
    /// specific, comparing segment by segment (literal, then parameter, then
    /// greedy), as API Gateway picks a resource.
    pub fn find(&self, method: Method, path: &str) -> Option<&Route> {
        self.find_index(method, &split_path(path))
            .and_then(|i| self.routes.get(i))
    }

    fn find_index(&self, method: Method, have: &[&str]) -> Option<usize> {
        let candidates = self.by_method.get(&method)?;
        candidates
            .iter()
            .copied()
            .filter(|&i| {
                self.routes
                    .get(i)
                    .is_some_and(|r| matches_segments(&r.segments, have))
            })
            .max_by(|&a, &b| self.specificity(a).cmp(self.specificity(b)))
    }

    /// The routes a principal with `scopes` may call (never public routes).
    pub fn permitted(&self, scopes: ScopeSet) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(move |r| r.access.permits(scopes))
    }

    /// The policy for `scopes`: Allow every permitted route's resource; Deny
    /// every protected route it does not permit that an allowed wildcard
    /// reaches. Exact for every route by construction ([`Self::new`] refuses
    /// tables where it could not be).
    pub fn policy_plan(&self, scopes: ScopeSet) -> PolicyPlan {
        let mut allow = BTreeSet::new();
        let mut deny = BTreeSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            if !route.access.permits(scopes) {
                continue;
            }
            allow.insert(route.arn_resource());
            for &q in self.reaches.get(i).map_or(&[][..], Vec::as_slice) {
                if let Some(other) = self.routes.get(q)
                    && !other.access.permits(scopes)
                {
                    deny.insert(other.arn_resource());
                }
            }
        }
        if !allow.is_empty() {
            // API Gateway serves `/a/b/` as `/a/b` and may pass empty
            // segments, but IAM's `*` matches them too, which would carry
            // requests past the Deny entries above (`/d/x/acl/` past
            // `GET/d/*/acl`). Such paths are refused for everyone.
            deny.extend(MALFORMED_PATH_DENIES.iter().map(|d| (*d).to_owned()));
        }
        PolicyPlan {
            allow: allow.into_iter().collect(),
            deny: deny.into_iter().collect(),
        }
    }

    /// Fills `reaches`, then checks that no Deny it may need hits a route
    /// that the same scope set allows.
    fn analyse(&mut self) -> Result<(), TableError> {
        let mut budget = reach::BUDGET;
        let too_complex = |_| TableError::TooComplex;
        for (r, route) in self.routes.iter().enumerate() {
            if !route.access.is_protected() {
                continue;
            }
            let wild = route
                .segments
                .iter()
                .any(|s| !matches!(s, Segment::Literal(_)));
            if !wild {
                // A literal resource matches its own path only, which routes to it.
                continue;
            }
            let same_method = self
                .by_method
                .get(&route.method)
                .map_or(&[][..], Vec::as_slice);
            for &q in same_method {
                let Some(target) = self.routes.get(q) else {
                    continue;
                };
                if q == r || !target.access.is_protected() {
                    continue;
                }
                // IAM's `*` also matches nothing: `M/*` is the root's `M/`.
                let root_reach = target.segments.is_empty() && route.segments.len() == 1;
                // Most pairs share no path at all: settle those without
                // looking for the routes that would shadow the target.
                let shared_path = root_reach
                    || reach::reaches(&route.segments, &target.segments, &[], &mut budget)
                        .map_err(too_complex)?;
                if !shared_path {
                    continue;
                }
                let mut shadows: Vec<&[Segment]> = Vec::new();
                for &o in same_method {
                    if o == q || self.specificity(o).cmp(self.specificity(q)).is_le() {
                        continue;
                    }
                    if let Some(other) = self.routes.get(o)
                        && reach::overlap(&other.segments, &target.segments, &mut budget)
                            .map_err(too_complex)?
                    {
                        shadows.push(&other.segments);
                    }
                }
                let reached = root_reach
                    || reach::reaches(&route.segments, &target.segments, &shadows, &mut budget)
                        .map_err(too_complex)?;
                if reached && let Some(list) = self.reaches.get_mut(r) {
                    list.push(q);
                }
            }
        }
        // A scope set allowing `a` but not `q` denies `q`'s resource; that
        // Deny must not reach any route `c` the same set may allow.
        for (a, reached) in self.reaches.iter().enumerate() {
            for &q in reached {
                for &c in self.reaches.get(q).map_or(&[][..], Vec::as_slice) {
                    if self.can_allow_both_but_not(a, c, q) {
                        let route = |i: usize| self.routes.get(i);
                        let located = |i: usize| route(i).map(Route::located).unwrap_or_default();
                        return Err(TableError::Inseparable(Inseparable {
                            allowed: located(a),
                            denied: located(q),
                            collateral: located(c),
                            line: [q, a, c]
                                .into_iter()
                                .filter_map(|i| route(i).map(|r| r.line))
                                .find(|&line| line > 0)
                                .unwrap_or(0),
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// Route `i`'s segment ranks, compared lexicographically to pick the most
    /// specific of several matching templates.
    fn specificity(&self, i: usize) -> impl Iterator<Item = u8> + '_ {
        self.routes
            .get(i)
            .into_iter()
            .flat_map(|r| r.segments.iter().map(Segment::rank))
    }

    /// Whether some scope set permits routes `a` and `c` but not `q`.
    fn can_allow_both_but_not(&self, a: usize, c: usize, q: usize) -> bool {
        let access = |i: usize| self.routes.get(i).map_or(Access::Public, |r| r.access);
        match access(q) {
            Access::Scope(needed) => {
                let implies = |x: Access| x == Access::Scope(needed);
                !implies(access(a)) && !implies(access(c))
            }
            Access::Authenticated | Access::Public => false,
        }
    }
}

/// The built-in routes: the token service's, owners' (`/tokens`) and
/// administrators' (`/admin/tokens`). Always present; no manifest can declare
/// a path under either.
pub fn built_in_routes() -> Vec<Route> {
    use Access::{Public, Scope as S};
    use Method::{Delete, Get, Patch, Post};
    let read = S(Scope::TOKENS_READ);
    let write = S(Scope::TOKENS_WRITE);
    let admin = S(Scope::ADMIN_TOKENS);
    [
        (Post, "/tokens", write, "Issue a token"),
        (Get, "/tokens", read, "List your tokens"),
        (Delete, "/tokens", write, "Revoke all your tokens"),
        (Get, "/tokens/self", read, "Inspect the calling token"),
        (Delete, "/tokens/self", write, "Revoke the calling token"),
        (Post, "/tokens/revoke", Public, "Report a leaked token"),
        (
            Post,
            "/tokens/secret-scanning",
            Public,
            "Receive a secret-scanning partner report",
        ),
        (Get, "/tokens/{id}", read, "Inspect one token"),
        (
            Patch,
            "/tokens/{id}",
            write,
            "Rename, describe, narrow or shorten one token",
        ),
        (Delete, "/tokens/{id}", write, "Revoke one token"),
        (Post, "/tokens/{id}/rotate", write, "Rotate one token"),
        (Get, "/tokens/{id}/events", read, "One token's history"),
        (
            Get,
            "/admin/tokens",
            admin,
            "Administrators: list one user's tokens",
        ),
        (
            Delete,
            "/admin/tokens",
            admin,
            "Administrators: revoke all of one user's tokens",
        ),
        (
            Post,
            "/admin/tokens",
            admin,
            "Administrators: issue a token to a named service",
        ),
        (
            Get,
            "/admin/tokens/{id}",
            admin,
            "Administrators: inspect any token",
        ),
        (
            Delete,
            "/admin/tokens/{id}",
            admin,
            "Administrators: revoke any token",
        ),
        (
            Get,
            "/admin/tokens/{id}/events",
            admin,
            "Administrators: any token's history",
        ),
    ]
    .into_iter()
    .map(|(method, path, access, summary)| Route {
        method,
        path: path.to_owned(),
        segments: parse_template(path).unwrap_or_default(),
        access,
        summary: Some(summary.to_owned()),
        built_in: true,
        line: 0,
    })
    .collect()
}

/// Whether a path is reserved for the built-in routes: `/tokens` and
/// `/admin/tokens`, and everything below them.
pub fn is_reserved_path(path: &str) -> bool {
    ["/tokens", "/admin/tokens"].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

#[cfg(feature = "store")]
/// The infrastructure facts the CDK construct needs from Rust: the built-in
/// routes and the token table's keys. Written to `infra/generated/routes.json`
/// (a test fails when the file drifts).
pub fn infra_manifest() -> serde_json::Value {
    let routes: Vec<serde_json::Value> = built_in_routes()
        .iter()
        .map(|r| {
            let access = match r.access {
                Access::Public => serde_json::json!({"kind": "public"}),
                Access::Authenticated => serde_json::json!({"kind": "authenticated"}),
                Access::Scope(s) => serde_json::json!({
                    "kind": "scope",
                    "scope": crate::scope::ScopeRegistry::built_in().name(s),
                }),
            };
            serde_json::json!({
                "method": r.method,
                "path": r.path,
                "access": access,
                "service": "token-service",
            })
        })
        .collect();
    serde_json::json!({
        "comment": "Generated from shared/src/routes.rs by `make generated`. Do not edit.",
        "routes": routes,
        "gatewayResponses": crate::gateway::GATEWAY_PROBLEMS,
        "table": {
            "partitionKey": "PK",
            "sortKey": "SK",
            "gsi1": {
                "name": crate::store::GSI1,
                "partitionKey": "GSI1PK",
                "sortKey": "GSI1SK",
                "projectedAttributes": crate::store::GSI1_PROJECTED,
            },
            "gsi2": {
                "name": crate::store::GSI2,
                "partitionKey": "GSI2PK",
                "sortKey": "GSI2SK",
                "projectedAttributes": crate::store::GSI2_PROJECTED,
            },
            "ttlAttribute": crate::store::TTL_ATTRIBUTE,
            "detailsProjected": crate::store::DETAILS_PROJECTED,
        }
    })
}

/// [`infra_manifest`] as committed: pretty JSON with a trailing newline.
#[cfg(feature = "store")]
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

    fn route(method: Method, path: &str, access: Access) -> Route {
        Route {
            method,
            path: path.into(),
            segments: parse_template(path).unwrap(),
            access,
            summary: None,
            built_in: false,
            line: 0,
        }
    }

    const A: Access = Access::Scope(Scope::TOKENS_READ);
    const B: Access = Access::Scope(Scope::TOKENS_WRITE);

    #[test]
    fn templates_parse_and_refuse_what_api_gateway_or_iam_would_misread() {
        assert_eq!(parse_template("/").unwrap(), vec![]);
        assert_eq!(
            parse_template("/a/{id}/{rest+}").unwrap(),
            vec![
                Segment::Literal("a".into()),
                Segment::Param("id".into()),
                Segment::Greedy("rest".into())
            ]
        );
        for (bad, err) in [
            ("a", TemplateError::Shape),
            ("/a/", TemplateError::Shape),
            ("//a", TemplateError::Shape),
            ("/a*", TemplateError::Literal("a*".into())),
            ("/a?b", TemplateError::Literal("a?b".into())),
            ("/{1x}", TemplateError::Param("{1x}".into())),
            ("/{}", TemplateError::Param("{}".into())),
            ("/{a+}/b", TemplateError::GreedyNotLast("a".into())),
            ("/{a}/{a}", TemplateError::DuplicateParam("a".into())),
        ] {
            assert_eq!(parse_template(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn arn_resources_replace_parameters_with_a_star() {
        assert_eq!(
            route(Method::Post, "/t/{id}/rotate", A).arn_resource(),
            "POST/t/*/rotate"
        );
        assert_eq!(route(Method::Get, "/", A).arn_resource(), "GET/");
        assert_eq!(route(Method::Get, "/f/{p+}", A).arn_resource(), "GET/f/*");
    }

    #[test]
    fn the_most_specific_template_serves_a_request() {
        let t = RouteTable::new(vec![
            route(Method::Get, "/f/{p+}", A),
            route(Method::Get, "/f/shared/{p+}", A),
            route(Method::Get, "/d/{id}", A),
            route(Method::Get, "/d/recent", A),
            route(Method::Get, "/d/{id}/x", A),
        ])
        .unwrap();
        let served = |p: &str| t.find(Method::Get, p).map(|r| r.path.clone());
        assert_eq!(served("/f/a/b").as_deref(), Some("/f/{p+}"));
        assert_eq!(served("/f/shared").as_deref(), Some("/f/{p+}"));
        assert_eq!(served("/f/shared/x").as_deref(), Some("/f/shared/{p+}"));
        assert_eq!(served("/d/recent").as_deref(), Some("/d/recent"));
        assert_eq!(served("/d/recent/x").as_deref(), Some("/d/{id}/x"));
        assert_eq!(served("/d/1/y"), None);
        assert_eq!(served("/f"), None);
        assert!(t.find(Method::Post, "/d/1").is_none());
    }

    #[test]
    fn a_wildcard_that_reaches_a_deeper_route_gets_a_deny_for_it() {
        let t = RouteTable::new(vec![
            route(Method::Get, "/d/{id}", A),
            route(Method::Get, "/d/{id}/acl", B),
            route(Method::Get, "/d/recent", Access::Authenticated),
        ])
        .unwrap();
        let only_a = ScopeSet::EMPTY.with(Scope::TOKENS_READ);
        assert_eq!(
            t.policy_plan(only_a),
            PolicyPlan {
                allow: vec!["GET/d/*".into(), "GET/d/recent".into()],
                deny: vec!["*/*/".into(), "*//*".into(), "GET/d/*/acl".into()],
            }
        );
        let both = only_a.with(Scope::TOKENS_WRITE);
        assert_eq!(t.policy_plan(both).deny, MALFORMED_PATH_DENIES.to_vec());
        assert!(t.policy_plan(ScopeSet::EMPTY).allow == vec!["GET/d/recent".to_owned()]);
        assert!(
            RouteTable::new(vec![route(Method::Get, "/x", A)])
                .unwrap()
                .policy_plan(ScopeSet::EMPTY)
                == PolicyPlan::default()
        );
    }

    /// Whether `plan` allows `resource` (a method ARN after the stage prefix)
    /// as IAM evaluates it: some Allow matches and no Deny does.
    fn plan_allows(plan: &PolicyPlan, resource: &str) -> bool {
        plan.allow.iter().any(|p| iam_wildcard_match(p, resource))
            && !plan.deny.iter().any(|p| iam_wildcard_match(p, resource))
    }

    /// Review finding: a reach needing a path longer than any template plus
    /// two (the other route's literal prefix, then this route's literal
    /// tail) was missed, letting reports:read reach an operators-only route.
    #[test]
    fn a_reach_through_a_long_greedy_tail_is_found() {
        let t = RouteTable::new(vec![
            route(
                Method::Get,
                "/v1/{tenant}/reports/monthly/export/{file+}",
                A,
            ),
            route(Method::Get, "/v1/system/internal/debug/tools/{path+}", B),
        ])
        .unwrap();
        let reader = t.policy_plan(ScopeSet::EMPTY.with(Scope::TOKENS_READ));
        let tail = "GET/v1/system/internal/debug/tools/reports/monthly/export/anything/here";
        assert_eq!(
            t.find(Method::Get, &tail[3..]).map(|r| r.path.as_str()),
            Some("/v1/system/internal/debug/tools/{path+}")
        );
        assert!(!plan_allows(&reader, tail), "{reader:?}");
        assert!(plan_allows(&reader, "GET/v1/acme/reports/monthly/export/x"));
    }

    /// Review finding: a cap on the witnesses the search collected could
    /// fill up with paths served by a decoy and stop before the real reach,
    /// and the table was accepted with no Deny for `/x/k/{any+}`.
    #[test]
    fn many_decoy_paths_do_not_hide_a_reach() {
        let deep = format!(
            "/{}",
            (0..32)
                .map(|i| format!("s{i}"))
                .collect::<Vec<_>>()
                .join("/")
        );
        let t = RouteTable::new(vec![
            route(Method::Get, "/x/{p}/l/{a}/l/{b}/l/{c}/l", A),
            route(Method::Get, "/x/k/l/{rest+}", A),
            route(Method::Get, "/x/k/{any+}", B),
            route(Method::Get, &deep, A),
        ]);
        // Refused: allowing the decoy and the first route but not
        // /x/k/{any+} would need a Deny that also hits the decoy.
        assert!(matches!(t, Err(TableError::Inseparable(_))), "{t:?}");
    }

    /// Review finding: IAM's `*` matches nothing, so `GET/*` also matches
    /// the root's `GET/`.
    #[test]
    fn a_top_level_parameter_reaches_the_root() {
        let t = RouteTable::new(vec![
            route(Method::Get, "/", B),
            route(Method::Get, "/{tenant}", A),
        ])
        .unwrap();
        let reader = t.policy_plan(ScopeSet::EMPTY.with(Scope::TOKENS_READ));
        assert!(!plan_allows(&reader, "GET/"), "{reader:?}");
        assert!(plan_allows(&reader, "GET/acme"));
        let writer = t.policy_plan(ScopeSet::EMPTY.with(Scope::TOKENS_WRITE));
        assert!(plan_allows(&writer, "GET/"), "{writer:?}");
    }

    /// Review finding: `/d/x/acl/` (served as `/d/x/acl`) and `/d//acl`
    /// slipped past `Deny GET/d/*/acl`. Every such path is now refused.
    #[test]
    fn trailing_slashes_and_empty_segments_never_pass() {
        let t = RouteTable::new(vec![
            route(Method::Get, "/d/{id}", A),
            route(Method::Get, "/d/{id}/acl", B),
            route(Method::Get, "/", A),
        ])
        .unwrap();
        for scopes in [
            ScopeSet::EMPTY.with(Scope::TOKENS_READ),
            ScopeSet::EMPTY
                .with(Scope::TOKENS_READ)
                .with(Scope::TOKENS_WRITE),
        ] {
            let plan = t.policy_plan(scopes);
            for bad in [
                "GET/d/x/acl/",
                "GET/d/x/",
                "GET/d//acl",
                "GET//d/x",
                "GET/d/x//",
            ] {
                assert!(!plan_allows(&plan, bad), "{bad} {plan:?}");
            }
            assert!(plan_allows(&plan, "GET/"));
            assert!(plan_allows(&plan, "GET/d/x"));
        }
    }

    /// Review finding: the old witness search doubled per parameter (69 s at
    /// 31). The product search is polynomial, and a budget refuses what it
    /// cannot finish.
    #[test]
    fn long_parameter_chains_are_analysed_quickly() {
        let params = |n: usize| {
            (0..n)
                .map(|i| format!("{{p{i}}}"))
                .collect::<Vec<_>>()
                .join("/")
        };
        let t = RouteTable::new(vec![
            route(Method::Get, &format!("/x/{}", params(31)), A),
            route(Method::Get, &format!("/x/{}/y", params(30)), B),
        ]);
        assert!(
            matches!(t, Ok(_) | Err(TableError::Inseparable(_))),
            "{t:?}"
        );
    }

    mod differential {
        use super::*;
        use proptest::prelude::*;

        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("a".to_owned()),
                Just("b".to_owned()),
                Just("{p}".to_owned()),
            ]
        }

        /// Up to 5 GET routes of up to 3 segments (a greedy one last, counted),
        /// each needing tokens:read, tokens:write or nothing.
        fn table() -> impl Strategy<Value = Vec<(String, u8)>> {
            prop::collection::vec(
                (
                    prop::collection::vec(segment(), 0..3),
                    any::<bool>(),
                    0u8..3,
                ),
                1..6,
            )
            .prop_map(|routes| {
                routes
                    .into_iter()
                    .map(|(segments, greedy, access)| {
                        let mut parts: Vec<String> = segments
                            .into_iter()
                            .enumerate()
                            .map(|(i, s)| if s == "{p}" { format!("{{p{i}}}") } else { s })
                            .collect();
                        if greedy {
                            parts.push(format!("{{g{}+}}", parts.len()));
                        }
                        (format!("/{}", parts.join("/")), access)
                    })
                    .collect()
            })
        }

        /// Every path of up to `len` segments over the literals and one
        /// other value, with and without a trailing slash.
        fn paths(len: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut frontier = vec![String::new()];
            for _ in 0..len {
                let mut next = Vec::new();
                for p in &frontier {
                    for s in ["a", "b", "z"] {
                        next.push(format!("{p}/{s}"));
                    }
                }
                out.extend(next.iter().cloned());
                frontier = next;
            }
            let slashed: Vec<String> = out
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| format!("{p}/"))
                .collect();
            out.extend(slashed);
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// For every accepted table and every scope set, the plan allows
            /// exactly the paths whose serving route the scopes permit, over
            /// every path up to 7 segments (longer than any two templates
            /// together) and every trailing-slash variant.
            #[test]
            fn accepted_tables_have_exact_policies(spec in table()) {
                let mut seen = std::collections::HashSet::new();
                let routes: Vec<Route> = spec
                    .iter()
                    .filter(|(path, _)| seen.insert(path.clone()))
                    .filter_map(|(path, access)| {
                        let access = match access { 0 => A, 1 => B, _ => Access::Authenticated };
                        parse_template(path).ok().map(|segments| Route {
                            method: Method::Get,
                            path: path.clone(),
                            segments,
                            access,
                            summary: None,
                            built_in: false,
                            line: 0,
                        })
                    })
                    .collect();
                // Sibling parameters with different names are refused by the
                // manifest before they get here; skip such tables.
                prop_assume!(siblings_agree(&routes));
                let Ok(t) = RouteTable::new(routes) else { return Ok(()) };
                let all = paths(7);
                for scopes in [
                    ScopeSet::EMPTY,
                    ScopeSet::EMPTY.with(Scope::TOKENS_READ),
                    ScopeSet::EMPTY.with(Scope::TOKENS_WRITE),
                    ScopeSet::EMPTY.with(Scope::TOKENS_READ).with(Scope::TOKENS_WRITE),
                ] {
                    let plan = t.policy_plan(scopes);
                    for path in &all {
                        let resource = format!("GET{}", if path.is_empty() { "/" } else { path });
                        let allowed = plan_allows(&plan, &resource);
                        let expected = !path.ends_with('/')
                            && t.find(Method::Get, path).is_some_and(|r| r.access.permits(scopes));
                        // A path no route serves never reaches the authorizer.
                        if t.find(Method::Get, path).is_none() { continue; }
                        prop_assert_eq!(allowed, expected, "{} for {:?}: {:?}", resource, scopes, plan);
                    }
                }
            }
        }

        /// At each resource, at most one parameter child name (as the
        /// manifest requires).
        fn siblings_agree(routes: &[Route]) -> bool {
            let mut child: HashMap<String, String> = HashMap::new();
            for r in routes {
                let mut prefix = String::new();
                for s in &r.segments {
                    let (text, variable) = match s {
                        Segment::Literal(t) => (t.clone(), false),
                        Segment::Param(n) => (format!("{{{n}}}"), true),
                        Segment::Greedy(n) => (format!("{{{n}+}}"), true),
                    };
                    if variable
                        && child.entry(prefix.clone()).or_insert_with(|| text.clone()) != &text
                    {
                        return false;
                    }
                    prefix.push('/');
                    prefix.push_str(&text);
                }
            }
            true
        }
    }

    #[test]
    fn routes_iam_cannot_separate_are_refused() {
        // Allowing /a/{x} and /a/{x}/b/{y}/c but not /a/{x}/b/{y} needs a
        // Deny on GET/a/*/b/*, which also hits /a/x/b/y/c.
        let err = RouteTable::new(vec![
            route(Method::Get, "/a/{x}", A),
            route(Method::Get, "/a/{x}/b/{y}", B),
            route(Method::Get, "/a/{x}/b/{y}/c", A),
        ])
        .unwrap_err();
        let TableError::Inseparable(err) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (
                err.allowed.as_str(),
                err.denied.as_str(),
                err.collateral.as_str()
            ),
            (
                "GET /a/{x} (line 0)",
                "GET /a/{x}/b/{y} (line 0)",
                "GET /a/{x}/b/{y}/c (line 0)"
            )
        );
        // The same shape with one scope is fine: nothing needs denying.
        assert!(
            RouteTable::new(vec![
                route(Method::Get, "/a/{x}", A),
                route(Method::Get, "/a/{x}/b/{y}", A),
                route(Method::Get, "/a/{x}/b/{y}/c", A),
            ])
            .is_ok()
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

    #[test]
    #[cfg(feature = "store")]
    fn the_committed_infra_manifest_matches_the_built_in_routes() {
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
}
