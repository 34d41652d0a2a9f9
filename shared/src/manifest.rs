//! The manifest: one TOML file that declares an adopter's API to agpat.
//!
//! ```toml
//! version = 1
//!
//! [sessions]                                  # how Cognito sessions get scopes
//! default_scopes = ["tokens:read", "tokens:write", "docs:read"]
//! scope_prefix = "https://docs.example.com/"  # optional: resource-server scopes narrow access tokens
//! [sessions.groups]                           # optional: cognito:groups -> extra session scopes
//! operators = ["admin:ops"]
//! agpat-admins = ["admin:tokens"]             # built in: the /admin/tokens routes
//!
//! [[scope]]
//! name = "docs:read"
//! description = "Read documents"
//!
//! [[route]]
//! method = "GET"
//! path = "/docs/{docId}"       # {name}: one segment; {name+}: greedy, last only
//! scope = "docs:read"          # or: access = "authenticated" | "public"
//! summary = "Read a document"  # optional, for the OpenAPI document
//! ```
//!
//! ```toml
//! [services]                                  # optional: machines (client credentials, service tokens)
//! scope_prefix = "https://docs.example.com/"  # the resource server's identifier plus "/"
//! scopes = ["docs:read"]                      # the most a service may hold; never a built-in scope
//! ```
//!
//! A scope removed from the manifest should be listed in top-level
//! `retired_scopes = ["old:name"]`: tokens issued with it still name it, and
//! a retired name cannot be declared again.
//!
//! The built-in `tokens:read` / `tokens:write` / `admin:tokens` scopes and
//! the `/tokens` and `/admin/tokens` routes are always present and cannot be
//! declared. `admin:tokens` is granted only by a group, never by default. Validation is strict: an unknown
//! field or scope, a malformed or duplicate name or template, sibling
//! parameters API Gateway would refuse, routes no IAM policy can separate, or
//! more than [`MAX_SCOPES`] scopes each fail with the line that caused it.
//! The authorizer, the token service and the context crate load it at cold
//! start from `AGPAT_MANIFEST`; `agpat-manifest check` runs the same code at
//! build time.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::routes::{
    Access, Method, Route, RouteTable, Segment, TableError, built_in_routes, is_reserved_path,
    parse_template,
};
use crate::scope::{MAX_SCOPES, RegistryError, Scope, ScopeRegistry, ScopeSet};

/// The environment variable naming the manifest file.
pub const MANIFEST_ENV: &str = "AGPAT_MANIFEST";

/// The manifest format version this code reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest manifest file accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// Most routes a manifest may declare.
pub const MAX_ROUTES: usize = 2000;

/// Why a manifest was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file (or a label for in-memory text).
    pub source: String,
    /// 1-based line of the offending value (0 when not tied to one).
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}:{}: {}", self.source, self.line, self.message)
        }
    }
}

impl std::error::Error for ManifestError {}

/// How Cognito sessions get scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// What every session holds, and the most a PAT can ever carry.
    /// Unset in the manifest: every declared scope that no group grants.
    pub default_scopes: ScopeSet,
    /// If set, an access token's `scope` claim narrows the session: entries
    /// `<prefix><scope>` are kept and intersected with what the session may hold.
    pub scope_prefix: Option<String>,
    /// `cognito:groups` entries and the extra scopes each grants a session.
    /// Group scopes are session-only: PATs never carry them.
    pub groups: Vec<(String, ScopeSet)>,
}

impl SessionPolicy {
    /// The scopes one Cognito session holds: the defaults plus its groups'
    /// scopes, narrowed by an access token's resource-server scopes when a
    /// prefix is set.
    pub fn session_scopes<'a>(
        &self,
        registry: &ScopeRegistry,
        token_use: &str,
        scope_claim: Option<&str>,
        groups: impl IntoIterator<Item = &'a str>,
    ) -> ScopeSet {
        let mut ceiling = self.default_scopes;
        for group in groups {
            for (name, scopes) in &self.groups {
                if name == group {
                    ceiling = ceiling.union(*scopes);
                }
            }
        }
        let Some(prefix) = self.scope_prefix.as_deref() else {
            return ceiling;
        };
        if token_use != "access" {
            return ceiling;
        }
        let granted: ScopeSet = scope_claim
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|s| s.strip_prefix(prefix))
            .filter_map(|s| registry.parse(s).ok())
            .collect();
        granted.intersection(ceiling)
    }

    /// The most a PAT can carry: the default session scopes. A PAT never
    /// out-scopes its owner, so the authorizer intersects every PAT with this
    /// and the token service refuses to issue anything beyond it.
    pub fn pat_ceiling(&self) -> ScopeSet {
        self.default_scopes
    }
}

/// How machines get scopes (`[services]`): Cognito client-credentials
/// tokens, and the service tokens administrators issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    /// The resource server's identifier plus `/`: a client-credentials
    /// token's `scope` entries `<prefix><scope>` name the scopes it asks for.
    pub scope_prefix: String,
    /// The most a service, or a service token, can ever hold. Never a
    /// built-in scope: machines do not manage tokens.
    pub scopes: ScopeSet,
}

impl ServicePolicy {
    /// The scopes a client-credentials token holds: the entries of its
    /// `scope` claim under the prefix, within [`Self::scopes`].
    pub fn service_scopes(&self, registry: &ScopeRegistry, scope_claim: Option<&str>) -> ScopeSet {
        scope_claim
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|s| s.strip_prefix(self.scope_prefix.as_str()))
            .filter_map(|s| registry.parse(s).ok())
            .collect::<ScopeSet>()
            .intersection(self.scopes)
    }
}

/// A validated manifest: scopes, routes (built-in ones included), the
/// session policy and, when declared, the service policy.
#[derive(Debug, Clone)]
pub struct Manifest {
    scopes: ScopeRegistry,
    routes: RouteTable,
    sessions: SessionPolicy,
    services: Option<ServicePolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: Spanned<u32>,
    #[serde(default)]
    retired_scopes: Vec<Spanned<String>>,
    #[serde(default)]
    sessions: Option<RawSessions>,
    #[serde(default)]
    services: Option<Spanned<RawServices>>,
    #[serde(default, rename = "scope")]
    scopes: Vec<Spanned<RawScope>>,
    #[serde(default, rename = "route")]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    #[serde(default)]
    default_scopes: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    scope_prefix: Option<Spanned<String>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServices {
    scope_prefix: Spanned<String>,
    scopes: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    name: Spanned<String>,
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    method: Spanned<String>,
    path: Spanned<String>,
    #[serde(default)]
    scope: Option<Spanned<String>>,
    #[serde(default)]
    access: Option<Spanned<String>>,
    #[serde(default)]
    summary: Option<String>,
}

struct Lines<'a> {
    text: &'a str,
    source: &'a str,
}

impl Lines<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text
            .get(..end)
            .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            source: self.source.to_owned(),
            line: self.line_of(span.start),
            message: message.into(),
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let source = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| ManifestError {
            source: source.clone(),
            line: 0,
            message: format!("cannot read: {}", e.kind()),
        })?;
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError {
                source,
                line: 0,
                message: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        let text = String::from_utf8(text).map_err(|_| ManifestError {
            source: source.clone(),
            line: 0,
            message: "not UTF-8".into(),
        })?;
        Self::parse(&text, &source)
    }

    /// Loads the manifest named by `AGPAT_MANIFEST`.
    pub fn from_env() -> Result<Self, ManifestError> {
        let path = std::env::var_os(MANIFEST_ENV).ok_or_else(|| ManifestError {
            source: MANIFEST_ENV.into(),
            line: 0,
            message: "not set: the path of the agpat manifest (agpat.toml)".into(),
        })?;
        Self::load(Path::new(&path))
    }

    /// Validates manifest text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ManifestError> {
        let lines = Lines { text, source };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            lines.error(span, e.message().trim().to_owned())
        })?;
        if *raw.version.get_ref() != MANIFEST_VERSION {
            return Err(lines.error(
                raw.version.span(),
                format!("version must be {MANIFEST_VERSION}"),
            ));
        }

        // Names once declared and since removed: tokens issued with them
        // still carry them, so declaring one again would hand it back.
        let mut retired: HashMap<&str, usize> = HashMap::new();
        for name in &raw.retired_scopes {
            if !crate::scope::is_valid_scope_name(name.get_ref()) {
                return Err(lines.error(name.span(), "a retired scope name is malformed"));
            }
            if crate::scope::BUILT_IN_SCOPES
                .iter()
                .any(|(built_in, _)| built_in == name.get_ref())
            {
                return Err(lines.error(
                    name.span(),
                    format!("`{}` is built in and cannot be retired", name.get_ref()),
                ));
            }
            retired.insert(name.get_ref(), lines.line_of(name.span().start));
        }
        let mut scopes = ScopeRegistry::built_in();
        for declared in &raw.scopes {
            let name = &declared.get_ref().name;
            if let Some(at) = retired.get(name.get_ref().as_str()) {
                return Err(lines.error(
                    name.span(),
                    format!(
                        "scope `{}` is retired (line {at}): tokens issued before still name it, so it cannot be declared again; pick a new name",
                        name.get_ref()
                    ),
                ));
            }
            scopes
                .declare(name.get_ref(), &declared.get_ref().description)
                .map_err(|e| match e {
                    RegistryError::TooMany => lines.error(
                        name.span(),
                        format!("too many scopes: at most {MAX_SCOPES}, the built-in tokens:read, tokens:write and admin:tokens included"),
                    ),
                    other => lines.error(name.span(), other.to_string()),
                })?;
        }
        let scope = |name: &Spanned<String>| -> Result<Scope, ManifestError> {
            scopes.parse(name.get_ref()).map_err(|_| {
                lines.error(
                    name.span(),
                    format!(
                        "unknown scope `{}`: declare it in a [[scope]] table",
                        name.get_ref()
                    ),
                )
            })
        };
        let scope_list = |list: &[Spanned<String>]| -> Result<ScopeSet, ManifestError> {
            list.iter()
                .try_fold(ScopeSet::EMPTY, |acc, n| Ok(acc.with(scope(n)?)))
        };

        // admin:tokens is for administrators' sessions: granted by a group
        // or not at all, so it never lands in every session or in a PAT.
        let never_default = ScopeSet::EMPTY.with(Scope::ADMIN_TOKENS);
        let sessions = match &raw.sessions {
            None => SessionPolicy {
                default_scopes: ScopeSet::from_scopes(
                    scopes.all().iter().filter(|s| !never_default.contains(*s)),
                ),
                scope_prefix: None,
                groups: Vec::new(),
            },
            Some(s) => {
                let scope_prefix = match &s.scope_prefix {
                    Some(p) if p.get_ref().is_empty() || p.get_ref().len() > 256 => {
                        return Err(lines.error(p.span(), "scope_prefix must be 1 to 256 bytes"));
                    }
                    other => other.as_ref().map(|p| p.get_ref().clone()),
                };
                let mut groups = Vec::new();
                for (name, list) in &s.groups {
                    if name.is_empty() || name.len() > 128 {
                        return Err(lines.error(list.span(), "a group name is 1 to 128 bytes"));
                    }
                    groups.push((name.clone(), scope_list(list.get_ref())?));
                }
                // Unset: every declared scope except those a group grants, so
                // declaring a group scope never hands it to every session.
                let group_only = groups
                    .iter()
                    .fold(ScopeSet::EMPTY, |acc, (_, set)| acc.union(*set));
                let default_scopes = match &s.default_scopes {
                    Some(list) => {
                        if let Some(admin) = list
                            .get_ref()
                            .iter()
                            .find(|n| scope(n).is_ok_and(|s| never_default.contains(s)))
                        {
                            return Err(lines.error(
                                admin.span(),
                                "`admin:tokens` is granted only through [sessions.groups] (for example `agpat-admins = [\"admin:tokens\"]`), never by default",
                            ));
                        }
                        scope_list(list.get_ref())?
                    }
                    None => ScopeSet::from_scopes(scopes.all().iter().filter(|scope| {
                        !group_only.contains(*scope) && !never_default.contains(*scope)
                    })),
                };
                SessionPolicy {
                    default_scopes,
                    scope_prefix,
                    groups,
                }
            }
        };

        let services = match &raw.services {
            None => None,
            Some(s) => {
                let s = s.get_ref();
                let prefix = s.scope_prefix.get_ref();
                if prefix.is_empty() || prefix.len() > 256 || !prefix.ends_with('/') {
                    return Err(lines.error(
                        s.scope_prefix.span(),
                        "scope_prefix is the resource server's identifier plus `/` (1 to 256 bytes)",
                    ));
                }
                if s.scopes.get_ref().is_empty() {
                    return Err(lines.error(s.scopes.span(), "[services] scopes must not be empty"));
                }
                let built_in = ScopeSet::from_scopes([
                    Scope::TOKENS_READ,
                    Scope::TOKENS_WRITE,
                    Scope::ADMIN_TOKENS,
                ]);
                for name in s.scopes.get_ref() {
                    if built_in.contains(scope(name)?) {
                        return Err(lines.error(
                            name.span(),
                            format!(
                                "`{}` is built in: services and service tokens never manage tokens",
                                name.get_ref()
                            ),
                        ));
                    }
                }
                Some(ServicePolicy {
                    scope_prefix: prefix.clone(),
                    scopes: scope_list(s.scopes.get_ref())?,
                })
            }
        };

        if raw.routes.len() > MAX_ROUTES {
            return Err(lines.error(
                raw.routes.get(MAX_ROUTES).map_or(0..0, Spanned::span),
                format!("too many routes: at most {MAX_ROUTES}"),
            ));
        }
        let mut routes = built_in_routes();
        let mut seen: HashMap<(Method, String), usize> = HashMap::new();
        // Each resource (path prefix, parameters by name) may have at most
        // one variable child, as API Gateway requires.
        let mut variable_child: HashMap<String, (String, usize)> = HashMap::new();
        for r in &routes {
            seen.insert((r.method, r.path.clone()), 0);
        }
        for declared in &raw.routes {
            let d = declared.get_ref();
            let line = lines.line_of(declared.span().start);
            let method = Method::parse(d.method.get_ref()).ok_or_else(|| {
                lines.error(
                    d.method.span(),
                    format!(
                        "method `{}` is not one of GET POST PUT PATCH DELETE HEAD OPTIONS",
                        d.method.get_ref().chars().take(20).collect::<String>()
                    ),
                )
            })?;
            let path = d.path.get_ref();
            if is_reserved_path(path) {
                return Err(lines.error(
                    d.path.span(),
                    format!(
                        "`{path}` is reserved: the /tokens and /admin/tokens routes are built in"
                    ),
                ));
            }
            let segments = parse_template(path)
                .map_err(|e| lines.error(d.path.span(), format!("path `{path}`: {e}")))?;
            let access = match (&d.scope, &d.access) {
                (Some(s), None) if never_default.contains(scope(s)?) => {
                    return Err(lines.error(
                        s.span(),
                        "`admin:tokens` is agpat's administrators' scope, for the built-in /admin/tokens routes only: give this route a scope of its own",
                    ));
                }
                (Some(s), None) => Access::Scope(scope(s)?),
                (None, Some(a)) => match a.get_ref().as_str() {
                    "public" => Access::Public,
                    "authenticated" => Access::Authenticated,
                    _ => {
                        return Err(lines.error(
                            a.span(),
                            "access must be `public` or `authenticated` (or give `scope` instead)",
                        ));
                    }
                },
                _ => {
                    return Err(lines.error(
                        declared.span(),
                        "a route needs exactly one of `scope = \"<name>\"` or `access = \"public\" | \"authenticated\"`",
                    ));
                }
            };
            if let Some(first) = seen.insert((method, path.clone()), line) {
                return Err(lines.error(
                    d.path.span(),
                    format!("duplicate route {method} {path} (first declared on line {first})"),
                ));
            }
            let mut prefix = String::new();
            for segment in &segments {
                let variable = match segment {
                    Segment::Literal(_) => None,
                    Segment::Param(n) => Some(format!("{{{n}}}")),
                    Segment::Greedy(n) => Some(format!("{{{n}+}}")),
                };
                if let Some(v) = &variable {
                    match variable_child.get(&prefix) {
                        Some((existing, at)) if existing != v => {
                            return Err(lines.error(
                                d.path.span(),
                                format!(
                                    "`{prefix}/{v}` overlaps `{prefix}/{existing}` (line {at}): a resource has at most one parameter child, with one name"
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            variable_child.insert(prefix.clone(), (v.clone(), line));
                        }
                    }
                }
                prefix.push('/');
                match segment {
                    Segment::Literal(t) => prefix.push_str(t),
                    _ => prefix.push_str(variable.as_deref().unwrap_or_default()),
                }
            }
            routes.push(Route {
                method,
                path: path.clone(),
                segments,
                access,
                summary: d.summary.clone(),
                built_in: false,
                line,
            });
        }
        let table = RouteTable::new(routes).map_err(|e| match e {
            TableError::Inseparable(e) => ManifestError {
                source: source.to_owned(),
                line: e.line,
                message: format!(
                    "routes {} and {} cannot be told apart by an IAM policy: a principal allowed {} but not {} would need a Deny that also refuses {}. Give them the same scope, or move one",
                    e.allowed, e.denied, e.allowed, e.denied, e.collateral,
                ),
            },
            TableError::TooComplex => ManifestError {
                source: source.to_owned(),
                line: 0,
                message: "the routes are too complex to prove an IAM policy exact for them: use fewer parameters per path or fewer overlapping routes".into(),
            },
        })?;
        Ok(Self {
            scopes,
            routes: table,
            sessions,
            services,
        })
    }

    /// The scopes.
    pub fn scopes(&self) -> &ScopeRegistry {
        &self.scopes
    }

    /// The routes, built-in ones first.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// How Cognito sessions get scopes.
    pub fn sessions(&self) -> &SessionPolicy {
        &self.sessions
    }

    /// How machines get scopes; `None` when the manifest declares no
    /// `[services]`, and then no machine credential is accepted.
    pub fn services(&self) -> Option<&ServicePolicy> {
        self.services.as_ref()
    }

    /// The most an agpat token of a `kind` principal may carry: a user
    /// token, the default session scopes; a service token, the services'
    /// scopes (nothing without `[services]`). Sessions and client-credentials
    /// tokens are not bounded by this.
    pub fn token_ceiling(&self, kind: crate::PrincipalKind) -> ScopeSet {
        match kind {
            crate::PrincipalKind::ServiceToken => {
                self.services.as_ref().map_or(ScopeSet::EMPTY, |s| s.scopes)
            }
            _ => self.sessions.pat_ceiling(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "version = 1\n[[scope]]\nname = \"docs:read\"\ndescription = \"d\"\n";

    fn err(body: &str) -> ManifestError {
        Manifest::parse(&format!("{HEAD}{body}"), "m.toml").unwrap_err()
    }

    fn route(method: &str, path: &str, rule: &str) -> String {
        format!("[[route]]\nmethod = \"{method}\"\npath = \"{path}\"\n{rule}\n")
    }

    #[test]
    fn the_fixture_adopter_manifest_is_valid_and_complete() {
        let text = include_str!("../../testdata/manifests/adopter.toml");
        let m = Manifest::parse(text, "adopter.toml").unwrap();
        assert!(m.scopes().len() >= 15, "12 declared + 3 built in");
        let declared = m.routes().routes().iter().filter(|r| !r.built_in).count();
        assert!(declared >= 40);
        assert!(
            m.routes()
                .routes()
                .iter()
                .any(|r| r.segments.iter().any(|s| matches!(s, Segment::Greedy(_))))
        );
        let admin = m.scopes().parse("admin:ops").unwrap();
        assert!(!m.sessions().pat_ceiling().contains(admin));
        assert_eq!(m.sessions().groups.len(), 2);
    }

    #[test]
    fn the_built_in_routes_and_scopes_are_always_there() {
        let m = Manifest::parse("version = 1\n", "m.toml").unwrap();
        assert_eq!(m.scopes().len(), 3);
        assert!(
            m.routes()
                .find(Method::Post, "/tokens/abc/rotate")
                .is_some()
        );
        assert_eq!(
            m.sessions().default_scopes,
            ScopeSet::from_scopes([Scope::TOKENS_READ, Scope::TOKENS_WRITE])
        );
    }

    #[test]
    fn each_mistake_stops_with_the_line_that_made_it() {
        let body_line = |e: &ManifestError| e.line;
        // Head is 4 lines; a route table starts on line 5, its path on line 7.
        let cases: Vec<(String, usize, &str)> = vec![
            (
                route("GET", "/d", "scope = \"docs:write\""),
                8,
                "unknown scope `docs:write`",
            ),
            (
                route("GET", "/d/", "scope = \"docs:read\""),
                7,
                "path `/d/`",
            ),
            (
                route("GET", "/d/{x+}/y", "scope = \"docs:read\""),
                7,
                "greedy",
            ),
            (
                route("GET", "/d*", "scope = \"docs:read\""),
                7,
                "A-Z a-z 0-9",
            ),
            (
                route("FETCH", "/d", "scope = \"docs:read\""),
                6,
                "method `FETCH`",
            ),
            (
                route("GET", "/tokens/x", "access = \"public\""),
                7,
                "reserved",
            ),
            (
                route("GET", "/d", "access = \"everyone\""),
                8,
                "access must be",
            ),
            (route("GET", "/d", ""), 5, "exactly one of"),
            (
                format!(
                    "{}{}",
                    route("GET", "/d", "scope = \"docs:read\""),
                    route("GET", "/d", "access = \"public\"")
                ),
                11,
                "duplicate route GET /d (first declared on line 5)",
            ),
            (
                format!(
                    "{}{}",
                    route("GET", "/d/{id}", "scope = \"docs:read\""),
                    route("PUT", "/d/{key}/x", "scope = \"docs:read\"")
                ),
                11,
                "overlaps `/d/{id}` (line 5)",
            ),
            (
                format!(
                    "{}{}",
                    route("GET", "/d/{id}", "scope = \"docs:read\""),
                    route("GET", "/d/{rest+}", "scope = \"docs:read\"")
                ),
                11,
                "at most one parameter child",
            ),
            (
                "[[scope]]\nname = \"docs:read\"\ndescription = \"again\"\n".into(),
                6,
                "more than once",
            ),
            (
                "[[scope]]\nname = \"Docs\"\ndescription = \"\"\n".into(),
                6,
                "malformed",
            ),
            ("[[rout]]\nmethod = \"GET\"\n".into(), 5, "unknown field"),
            (
                "[sessions]\ndefault_scopes = [\"docs:read\", \"nope\"]\n".into(),
                6,
                "unknown scope `nope`",
            ),
            (
                "[sessions.groups]\nops = [\"admin\"]\n".into(),
                6,
                "unknown scope `admin`",
            ),
            (
                "[[route]]\nmethod = \"GET\"\npath = 7\nscope = \"docs:read\"\n".into(),
                7,
                "invalid type",
            ),
        ];
        for (body, line, needle) in cases {
            let e = err(&body);
            assert!(e.message.contains(needle), "{body}\n=> {e}");
            assert_eq!(body_line(&e), line, "{body}\n=> {e}");
            assert!(
                e.to_string().starts_with(&format!("m.toml:{line}: ")),
                "{e}"
            );
        }
        let v = Manifest::parse("version = 2\n", "m.toml").unwrap_err();
        assert_eq!((v.line, v.message.as_str()), (1, "version must be 1"));
    }

    /// A retired name cannot come back: old tokens that still carry it
    /// would hold the new meaning.
    #[test]
    fn a_retired_scope_name_cannot_be_declared_again() {
        let text = "version = 1\nretired_scopes = [\"docs:admin\"]\n[[scope]]\nname = \"docs:admin\"\ndescription = \"\"\n";
        let e = Manifest::parse(text, "m.toml").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("retired (line 2)"), "{e}");
        assert!(Manifest::parse("version = 1\nretired_scopes = [\"docs:admin\"]\n", "m").is_ok());
        let bad =
            Manifest::parse("version = 1\nretired_scopes = [\"Bad Name\"]\n", "m").unwrap_err();
        assert_eq!(bad.line, 2);
    }

    #[test]
    fn too_many_scopes_names_the_first_one_over() {
        let mut text = String::from("version = 1\n");
        let built_in = crate::scope::BUILT_IN_SCOPES.len();
        for i in 0..=MAX_SCOPES - built_in {
            text.push_str(&format!("[[scope]]\nname = \"s{i}\"\ndescription = \"\"\n"));
        }
        let e = Manifest::parse(&text, "m.toml").unwrap_err();
        assert!(e.message.contains("too many scopes"), "{e}");
        // The first declared scope past index 127 (built-ins included) is refused.
        assert_eq!(e.line, 2 + 3 * (MAX_SCOPES - built_in) + 1);
        text.truncate(text.rfind("[[scope]]").unwrap_or(0));
        assert_eq!(
            Manifest::parse(&text, "m.toml").unwrap().scopes().len(),
            MAX_SCOPES
        );
    }

    #[test]
    fn inseparable_routes_name_all_three() {
        let text = format!(
            "{HEAD}[[scope]]\nname = \"docs:write\"\ndescription = \"\"\n{}{}{}",
            route("GET", "/a/{x}", "scope = \"docs:read\""),
            route("GET", "/a/{x}/b/{y}", "scope = \"docs:write\""),
            route("GET", "/a/{x}/b/{y}/c", "scope = \"docs:read\""),
        );
        let e = Manifest::parse(&text, "m.toml").unwrap_err();
        assert!(e.message.contains("GET /a/{x} (line 8)"), "{e}");
        assert!(e.message.contains("GET /a/{x}/b/{y} (line 12)"), "{e}");
        assert!(e.message.contains("GET /a/{x}/b/{y}/c (line 16)"), "{e}");
        assert_eq!(e.line, 12);
    }

    #[test]
    fn a_parameter_can_spell_a_literal_and_that_is_caught() {
        // /d/x/c/acl routes to /d/{id}/c/{cid} with cid = "acl", and a Deny
        // on GET/d/*/acl would refuse it: IAM cannot separate these.
        let text = format!(
            "{HEAD}[[scope]]\nname = \"acl:read\"\ndescription = \"\"\n{}{}{}",
            route("GET", "/d/{id}", "scope = \"docs:read\""),
            route("GET", "/d/{id}/acl", "scope = \"acl:read\""),
            route("GET", "/d/{id}/c/{cid}", "scope = \"docs:read\""),
        );
        let e = Manifest::parse(&text, "m.toml").unwrap_err();
        assert!(
            e.message
                .contains("also refuses GET /d/{id}/c/{cid} (line 16)"),
            "{e}"
        );
    }

    #[test]
    fn a_root_greedy_route_that_would_shadow_the_token_routes_is_refused() {
        let e = err(&route("GET", "/{proxy+}", "scope = \"docs:read\""));
        assert!(e.message.contains("cannot be told apart"), "{e}");
        assert!(e.message.contains("(built in)"), "{e}");
    }

    /// Review finding: an adopter who once declared `admin:tokens` must not
    /// keep handing it out through their own routes or a retirement.
    #[test]
    fn no_adopter_route_or_retirement_names_admin_tokens() {
        let e = err(&route("GET", "/ops", "scope = \"admin:tokens\""));
        assert!(e.message.contains("administrators' scope"), "{e}");
        assert_eq!(e.line, 8);
        for name in ["admin:tokens", "tokens:read"] {
            let e = Manifest::parse(
                &format!("version = 1\nretired_scopes = [\"{name}\"]\n"),
                "m",
            )
            .unwrap_err();
            assert!(e.message.contains("built in and cannot be retired"), "{e}");
        }
    }

    /// Machines: a client-credentials token's resource-server scopes, within
    /// `[services] scopes`; never a built-in scope; a service token's
    /// ceiling is the services' scopes, a user token's the session defaults.
    #[test]
    fn services_get_their_resource_server_scopes_within_their_ceiling() {
        let text = format!(
            "{HEAD}[[scope]]\nname = \"docs:write\"\ndescription = \"\"\n[services]\nscope_prefix = \"https://api.example.com/\"\nscopes = [\"docs:read\"]\n"
        );
        let m = Manifest::parse(&text, "m.toml").unwrap();
        let r = m.scopes();
        let s = m.services().unwrap();
        let names = |set| r.to_space_separated(set);
        assert_eq!(
            names(s.service_scopes(
                r,
                Some("https://api.example.com/docs:read https://api.example.com/docs:write https://other/docs:read docs:read")
            )),
            "docs:read"
        );
        assert_eq!(names(s.service_scopes(r, None)), "");
        assert_eq!(
            names(m.token_ceiling(crate::PrincipalKind::ServiceToken)),
            "docs:read"
        );
        assert_eq!(
            names(m.token_ceiling(crate::PrincipalKind::UserToken)),
            "tokens:read tokens:write docs:read docs:write"
        );
        let none = Manifest::parse(HEAD, "m.toml").unwrap();
        assert!(none.services().is_none());
        assert!(
            none.token_ceiling(crate::PrincipalKind::ServiceToken)
                .is_empty()
        );
        for (body, line, what) in [
            (
                "[services]\nscope_prefix = \"https://a/\"\nscopes = [\"tokens:read\"]\n",
                7,
                "built in",
            ),
            (
                "[services]\nscope_prefix = \"https://a/\"\nscopes = [\"admin:tokens\"]\n",
                7,
                "built in",
            ),
            (
                "[services]\nscope_prefix = \"https://a\"\nscopes = [\"docs:read\"]\n",
                6,
                "identifier plus",
            ),
            (
                "[services]\nscope_prefix = \"https://a/\"\nscopes = []\n",
                7,
                "must not be empty",
            ),
            (
                "[services]\nscope_prefix = \"https://a/\"\nscopes = [\"nope\"]\n",
                7,
                "unknown scope",
            ),
        ] {
            let e = err(body);
            assert!(e.message.contains(what), "{body}: {e}");
            assert_eq!(e.line, line, "{body}: {e}");
        }
    }

    /// The administrators' routes are as reserved as the owners'; paths
    /// that merely start with the same letters are the adopter's.
    #[test]
    fn the_admin_token_paths_are_reserved_and_their_neighbours_are_not() {
        for path in ["/admin/tokens", "/admin/tokens/{id}", "/admin/tokens/x/y"] {
            let e = err(&route("GET", path, "scope = \"docs:read\""));
            assert!(e.message.contains("is reserved"), "{path}: {e}");
        }
        let text = format!(
            "{HEAD}{}{}",
            route("GET", "/admin/tokenset", "scope = \"docs:read\""),
            route("GET", "/admin/{page}", "scope = \"docs:read\"")
        );
        let m = Manifest::parse(&text, "m.toml").unwrap();
        let found = m.routes().find(Method::Get, "/admin/tokens").unwrap();
        assert!(found.built_in, "the literal built-in route wins");
        let found = m.routes().find(Method::Get, "/admin/other").unwrap();
        assert!(!found.built_in);
    }

    /// Review finding: with `default_scopes` left out, a group scope used
    /// to land in every session (and in the PAT ceiling).
    #[test]
    fn a_group_scope_is_never_a_default_one_unless_listed() {
        let text = format!(
            "{HEAD}[[scope]]\nname = \"admin:ops\"\ndescription = \"\"\n[sessions.groups]\nops = [\"admin:ops\"]\n"
        );
        let m = Manifest::parse(&text, "m.toml").unwrap();
        let r = m.scopes();
        assert_eq!(
            r.to_space_separated(m.sessions().default_scopes),
            "tokens:read tokens:write docs:read"
        );
        assert_eq!(
            r.to_space_separated(m.sessions().session_scopes(r, "access", None, ["ops"])),
            "tokens:read tokens:write docs:read admin:ops"
        );
        assert!(
            !m.sessions()
                .pat_ceiling()
                .contains(r.parse("admin:ops").unwrap())
        );
    }

    /// `admin:tokens` reaches a session only through a group: never a
    /// default (listed or not), so never within a PAT's ceiling.
    #[test]
    fn admin_tokens_is_granted_by_a_group_and_never_by_default() {
        let m = Manifest::parse(HEAD, "m.toml").unwrap();
        assert!(!m.sessions().default_scopes.contains(Scope::ADMIN_TOKENS));
        assert!(!m.sessions().pat_ceiling().contains(Scope::ADMIN_TOKENS));
        let text = format!("{HEAD}[sessions.groups]\nagpat-admins = [\"admin:tokens\"]\n");
        let m = Manifest::parse(&text, "m.toml").unwrap();
        let r = m.scopes();
        assert!(!m.sessions().pat_ceiling().contains(Scope::ADMIN_TOKENS));
        assert!(
            m.sessions()
                .session_scopes(r, "id", None, ["agpat-admins"])
                .contains(Scope::ADMIN_TOKENS)
        );
        assert!(
            !m.sessions()
                .session_scopes(r, "id", None, ["agpat-admin", "admins"])
                .contains(Scope::ADMIN_TOKENS)
        );
        let e = err("[sessions]\ndefault_scopes = [\"tokens:read\", \"admin:tokens\"]\n");
        assert_eq!(e.line, 6);
        assert!(e.message.contains("only through [sessions.groups]"), "{e}");
    }

    #[test]
    fn sessions_get_defaults_groups_and_prefix_narrowing() {
        let text = format!(
            "{HEAD}[[scope]]\nname = \"admin:ops\"\ndescription = \"\"\n[sessions]\ndefault_scopes = [\"tokens:read\", \"docs:read\"]\nscope_prefix = \"https://x/\"\n[sessions.groups]\nops = [\"admin:ops\"]\n"
        );
        let m = Manifest::parse(&text, "m.toml").unwrap();
        let r = m.scopes();
        let s = m.sessions();
        let names = |set| r.to_space_separated(set);
        assert_eq!(
            names(s.session_scopes(r, "id", None, [])),
            "tokens:read docs:read"
        );
        assert_eq!(
            names(s.session_scopes(r, "id", None, ["ops", "other"])),
            "tokens:read docs:read admin:ops"
        );
        assert_eq!(
            names(s.session_scopes(
                r,
                "access",
                Some("https://x/docs:read https://x/admin:ops https://y/tokens:read tokens:read"),
                ["ops"]
            )),
            "docs:read admin:ops"
        );
        assert_eq!(
            names(s.session_scopes(r, "access", Some("https://x/admin:ops"), [])),
            ""
        );
        assert_eq!(names(s.pat_ceiling()), "tokens:read docs:read");
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The largest manifest agpat accepts (2,000 routes over 20 scopes) is
    /// analysed within the budget, not refused as too complex.
    #[test]
    fn a_manifest_of_the_maximum_size_is_accepted() {
        let text = crate::testing::synthetic_manifest(MAX_ROUTES / 5);
        let m = Manifest::parse(&text, "synthetic.toml").unwrap();
        let declared = m.routes().routes().iter().filter(|r| !r.built_in).count();
        assert_eq!(declared, MAX_ROUTES);
    }
}
