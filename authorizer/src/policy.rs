//! Building the IAM policy API Gateway caches.
//!
//! API Gateway reuses a cached policy for **every** route of the API, so the
//! policy must allow exactly the routes the principal's scopes permit, all of
//! them, not just the route being called (serverless#6176). The list comes from
//! the manifest's route table, whose plan also says which routes an allowed
//! wildcard would over-reach and must be denied explicitly.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::value::RawValue;
use std::sync::Arc;

use shared::routes::RouteTable;
use shared::{Manifest, ScopeSet};

/// The parts of a method ARN that identify one deployed stage:
/// `arn:<partition>:execute-api:<region>:<account>:<api id>/<stage>/…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodArn<'a> {
    /// The ARN's own prefix up to and including the stage's `/`: borrowed,
    /// so parsing allocates nothing.
    stage_prefix: &'a str,
    /// The rest: `<METHOD>/<path>`.
    route: &'a str,
}

impl<'a> MethodArn<'a> {
    /// Parses the event's `methodArn`. Anything that is not an execute-api ARN
    /// with an api id and a stage is refused.
    pub fn parse(arn: &'a str) -> Option<Self> {
        if arn.len() > 2048 {
            return None;
        }
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("execute-api"),
            Some(region),
            Some(account),
            Some(rest),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        let mut path = rest.splitn(3, '/');
        let (Some(api), Some(stage), Some(_route)) = (path.next(), path.next(), path.next()) else {
            return None;
        };
        let clean = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !(partition.starts_with("aws")
            && clean(partition)
            && clean(region)
            && clean(account)
            && clean(api)
            && clean(stage))
        {
            return None;
        }
        // Every part was checked above and none holds a `:` or `/`, so the
        // prefix is exactly `arn:<partition>:execute-api:<region>:<account>:<api>/<stage>/`.
        let len = ["arn", partition, "execute-api", region, account]
            .iter()
            .map(|p| p.len() + 1)
            .sum::<usize>()
            + api.len()
            + 1
            + stage.len()
            + 1;
        Some(Self {
            stage_prefix: arn.get(..len)?,
            route: arn.get(len..)?,
        })
    }

    /// `arn:…:<api id>/<stage>/` — every route ARN of this stage starts with it.
    pub fn stage_prefix(&self) -> &'a str {
        self.stage_prefix
    }

    /// The request's HTTP method, as the ARN names it.
    pub fn http_method(&self) -> &'a str {
        self.route.split_once('/').map_or(self.route, |(m, _)| m)
    }

    /// The request's path below the stage, without its leading `/`.
    pub fn path(&self) -> &'a str {
        self.route.split_once('/').map_or("", |(_, p)| p)
    }

    /// The stage's default URL, `https://<api>.execute-api.<region>.<domain>/<stage>`,
    /// for the partitions whose domain is known (`aws`, `aws-cn`).
    pub fn default_stage_url(&self) -> Option<String> {
        let mut parts = self.stage_prefix.split(':');
        let (_, partition, _, region, _, rest) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let (api, stage) = rest.trim_end_matches('/').split_once('/')?;
        let domain = match partition {
            "aws" => "amazonaws.com",
            "aws-cn" => "amazonaws.com.cn",
            _ => return None,
        };
        Some(format!(
            "https://{api}.execute-api.{region}.{domain}/{stage}"
        ))
    }
}

fn statement(effect: IamPolicyEffect, resource: Vec<String>) -> IamPolicyStatement {
    let mut s = IamPolicyStatement::default();
    s.action = vec!["execute-api:Invoke".to_owned()];
    s.effect = effect;
    s.resource = resource;
    s
}

/// The policy for a principal holding `scopes`, from the manifest's plan:
/// Allow on every permitted route's resource, an explicit Deny on each
/// route the scopes do not permit that an allowed wildcard would reach; if
/// nothing is permitted, one Deny on the whole stage.
pub fn build(
    arn: &MethodArn<'_>,
    routes: &RouteTable,
    scopes: ScopeSet,
) -> ApiGatewayCustomAuthorizerPolicy {
    let plan = routes.policy_plan(scopes);
    let full = |r: &String| format!("{}{}", arn.stage_prefix, r);
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_owned());
    policy.statement = if plan.allow.is_empty() {
        vec![statement(
            IamPolicyEffect::Deny,
            vec![format!("{}*", arn.stage_prefix)],
        )]
    } else {
        let mut statements = vec![statement(
            IamPolicyEffect::Allow,
            plan.allow.iter().map(full).collect(),
        )];
        if !plan.deny.is_empty() {
            statements.push(statement(
                IamPolicyEffect::Deny,
                plan.deny.iter().map(full).collect(),
            ));
        }
        statements
    };
    policy
}

/// A policy as decisions share it: the document, its JSON rendered once
/// (responses embed it verbatim), and whether it allows anything.
#[derive(Debug)]
pub struct CachedPolicy {
    document: ApiGatewayCustomAuthorizerPolicy,
    json: Box<RawValue>,
    allows: bool,
}

impl CachedPolicy {
    /// Renders `document` once.
    ///
    /// # Errors
    /// If the policy cannot be serialised (it always can: strings only).
    pub fn new(document: ApiGatewayCustomAuthorizerPolicy) -> Result<Self, serde_json::Error> {
        let json = serde_json::value::to_raw_value(&document)?;
        Ok(Self {
            allows: allows_anything(&document),
            document,
            json,
        })
    }

    /// The policy.
    pub fn document(&self) -> &ApiGatewayCustomAuthorizerPolicy {
        &self.document
    }

    /// The policy's JSON, exactly as `serde_json` renders the document.
    pub fn json(&self) -> &RawValue {
        &self.json
    }

    /// Whether any statement allows a resource (for logging the decision).
    pub fn allows_anything(&self) -> bool {
        self.allows
    }
}

/// Policies built and rendered once per (stage, scope set) and reused: the
/// hot path shares a finished policy instead of formatting ARNs. Bounded, so
/// a stream of unusual scope sets cannot grow it without limit.
pub struct PolicyCache {
    routes: Arc<Manifest>,
    built: moka::sync::Cache<(Arc<str>, ScopeSet), Arc<CachedPolicy>>,
}

impl PolicyCache {
    /// An empty cache for `manifest`'s routes.
    pub fn new(manifest: Arc<Manifest>) -> Self {
        Self {
            routes: manifest,
            built: moka::sync::Cache::builder().max_capacity(4096).build(),
        }
    }

    /// The policy for `scopes` on `arn`'s stage.
    ///
    /// # Errors
    /// If the policy cannot be rendered (see [`CachedPolicy::new`]).
    pub fn get(
        &self,
        arn: &MethodArn<'_>,
        scopes: ScopeSet,
    ) -> Result<Arc<CachedPolicy>, serde_json::Error> {
        let key = (Arc::<str>::from(arn.stage_prefix), scopes);
        self.built
            .try_get_with(key, || {
                CachedPolicy::new(build(arn, self.routes.routes(), scopes)).map(Arc::new)
            })
            .map_err(|e| serde_json::Error::io(std::io::Error::other(e.to_string())))
    }
}

/// Whether the policy has any Allow statement (for logging the decision).
pub fn allows_anything(policy: &ApiGatewayCustomAuthorizerPolicy) -> bool {
    policy
        .statement
        .iter()
        .any(|s| s.effect == IamPolicyEffect::Allow && !s.resource.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::policy::{PolicyDecision, evaluate};

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/docs";

    #[test]
    fn method_arn_parsing_keeps_the_stage_prefix() {
        let arn = MethodArn::parse(ARN).unwrap();
        assert_eq!(
            arn.stage_prefix(),
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/"
        );
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:1:function/x",
            "arn:aws:execute-api:us-east-1:1:abc",
            "arn:aws:execute-api:us-east-1:1:abc/prod",
            "arn:aws:execute-api:us-east-1:1:a*c/prod/GET/x",
            "arn:aws:execute-api:us-east-1:1:abc/pr?d/GET/x",
            "arn:evil:execute-api:us-east-1:1:abc/prod/GET/x",
        ] {
            assert!(MethodArn::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_principal_without_scopes_reaches_only_authenticated_routes() {
        let m = shared::testing::manifest();
        let arn = MethodArn::parse(ARN).unwrap();
        let policy = build(&arn, m.routes(), ScopeSet::EMPTY);
        let me = format!("{}GET/me", arn.stage_prefix());
        assert_eq!(evaluate(&policy, &me), PolicyDecision::Allow);
        assert_eq!(evaluate(&policy, ARN), PolicyDecision::ImplicitDeny);
    }

    #[test]
    fn no_permitted_route_means_an_explicit_deny() {
        let m = shared::Manifest::parse(
            "version = 1\n[[scope]]\nname = \"a\"\ndescription = \"\"\n[[route]]\nmethod = \"GET\"\npath = \"/a\"\nscope = \"a\"\n",
            "m",
        )
        .unwrap();
        let arn = MethodArn::parse(ARN).unwrap();
        let policy = build(&arn, m.routes(), ScopeSet::EMPTY);
        assert!(!allows_anything(&policy));
        assert_eq!(evaluate(&policy, ARN), PolicyDecision::ExplicitDeny);
    }

    #[test]
    fn the_cache_returns_the_same_policy_per_stage_and_scope_set() {
        let m = shared::testing::manifest();
        let cache = PolicyCache::new(Arc::clone(&m));
        let arn = MethodArn::parse(ARN).unwrap();
        let read = shared::testing::scopes("docs:read");
        let a = cache.get(&arn, read).unwrap();
        assert!(Arc::ptr_eq(&a, &cache.get(&arn, read).unwrap()));
        assert_eq!(*a.document(), build(&arn, m.routes(), read));
        let dev = ARN.replace("/prod/", "/dev/");
        let other_stage = MethodArn::parse(&dev).unwrap();
        assert!(!Arc::ptr_eq(&a, &cache.get(&other_stage, read).unwrap()));
        let files = cache
            .get(&arn, shared::testing::scopes("files:read"))
            .unwrap();
        assert_ne!(*a.document(), *files.document());
    }

    #[test]
    fn a_cached_policy_renders_exactly_its_document() {
        let m = shared::testing::manifest();
        let arn = MethodArn::parse(ARN).unwrap();
        for scopes in [
            ScopeSet::EMPTY,
            shared::testing::scopes("docs:read"),
            shared::testing::default_scopes(),
        ] {
            let document = build(&arn, m.routes(), scopes);
            let cached = CachedPolicy::new(document.clone()).unwrap();
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(cached.json().get()).unwrap(),
                serde_json::to_value(&document).unwrap()
            );
            assert_eq!(cached.allows_anything(), allows_anything(&document));
        }
    }

    #[test]
    fn the_stage_prefix_is_the_arns_own_prefix() {
        for (arn, prefix) in [
            (
                ARN,
                "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/",
            ),
            (
                "arn:aws-us-gov:execute-api:us-gov-west-1:1:a_b/st-1/POST/x/y/z",
                "arn:aws-us-gov:execute-api:us-gov-west-1:1:a_b/st-1/",
            ),
            (
                "arn:aws:execute-api:eu-west-1:1:api/stage/*/*",
                "arn:aws:execute-api:eu-west-1:1:api/stage/",
            ),
        ] {
            assert_eq!(MethodArn::parse(arn).unwrap().stage_prefix(), prefix);
        }
    }
}
