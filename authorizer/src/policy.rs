//! Building the IAM policy API Gateway caches.
//!
//! API Gateway reuses a cached policy for **every** route of the API, so the
//! policy must allow exactly the routes the principal's scopes permit, all of
//! them, not just the route being called (serverless#6176). The list comes from
//! the manifest's route table, whose plan also says which routes an allowed
//! wildcard would over-reach and must be denied explicitly.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use std::sync::Arc;

use shared::routes::RouteTable;
use shared::{Manifest, ScopeSet};

/// The parts of a method ARN that identify one deployed stage:
/// `arn:<partition>:execute-api:<region>:<account>:<api id>/<stage>/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn {
    /// Shared, so the policy cache keys on it without copying.
    stage_prefix: Arc<str>,
}

impl MethodArn {
    /// Parses the event's `methodArn`. Anything that is not an execute-api ARN
    /// with an api id and a stage is refused.
    pub fn parse(arn: &str) -> Option<Self> {
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
        Some(Self {
            stage_prefix: format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/")
                .into(),
        })
    }

    /// `arn:…:<api id>/<stage>/` — every route ARN of this stage starts with it.
    pub fn stage_prefix(&self) -> &str {
        &self.stage_prefix
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
    arn: &MethodArn,
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

/// Policies built once per (stage, scope set) and reused: the hot path
/// clones a finished policy instead of formatting ARNs. Bounded, so a
/// stream of unusual scope sets cannot grow it without limit.
pub struct PolicyCache {
    routes: Arc<Manifest>,
    built: moka::sync::Cache<(Arc<str>, ScopeSet), Arc<ApiGatewayCustomAuthorizerPolicy>>,
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
    pub fn get(&self, arn: &MethodArn, scopes: ScopeSet) -> Arc<ApiGatewayCustomAuthorizerPolicy> {
        let key = (Arc::clone(&arn.stage_prefix), scopes);
        self.built
            .get_with(key, || Arc::new(build(arn, self.routes.routes(), scopes)))
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
        let a = cache.get(&arn, read);
        assert!(Arc::ptr_eq(&a, &cache.get(&arn, read)));
        assert_eq!(*a, build(&arn, m.routes(), read));
        let other_stage = MethodArn::parse(&ARN.replace("/prod/", "/dev/")).unwrap();
        assert!(!Arc::ptr_eq(&a, &cache.get(&other_stage, read)));
        assert_ne!(*a, *cache.get(&arn, shared::testing::scopes("files:read")));
    }
}
