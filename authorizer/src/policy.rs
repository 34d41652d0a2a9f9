//! Building the IAM policy API Gateway caches.
//!
//! API Gateway reuses a cached policy for **every** route of the API, so the
//! policy must allow exactly the routes the principal's scopes permit, all of
//! them, not just the route being called (serverless#6176). The list comes from
//! the shared route table.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use shared::ScopeSet;
use shared::routes::{Route, permitted_routes};

/// The parts of a method ARN that identify one deployed stage:
/// `arn:<partition>:execute-api:<region>:<account>:<api id>/<stage>/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn {
    stage_prefix: String,
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
            stage_prefix: format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}/"),
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

/// The policy for a principal holding `scopes`: Allow on the ARN of every
/// route the scopes permit; if there is none, an explicit Deny on the stage.
pub fn build(arn: &MethodArn, scopes: ScopeSet) -> ApiGatewayCustomAuthorizerPolicy {
    policy_for(arn, permitted_routes(scopes))
}

fn policy_for<'a>(
    arn: &MethodArn,
    routes: impl Iterator<Item = &'a Route>,
) -> ApiGatewayCustomAuthorizerPolicy {
    let allowed: Vec<String> = routes
        .map(|r| format!("{}{}", arn.stage_prefix, r.arn_resource()))
        .collect();
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_owned());
    policy.statement = if allowed.is_empty() {
        vec![statement(
            IamPolicyEffect::Deny,
            vec![format!("{}*", arn.stage_prefix)],
        )]
    } else {
        vec![statement(IamPolicyEffect::Allow, allowed)]
    };
    policy
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
    use shared::routes::ROUTES;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/items";

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

    /// The cache-safety matrix: for every subset of scopes and every route,
    /// the cached policy allows the route iff the scopes permit it.
    #[test]
    fn policy_allows_a_route_iff_the_scopes_permit_it_for_every_subset_and_route() {
        let arn = MethodArn::parse(ARN).unwrap();
        let mut checked = 0;
        for scopes in ScopeSet::every_subset() {
            let policy = build(&arn, scopes);
            for route in ROUTES {
                let concrete = route.path.replace("{id}", "0123456789ABCDEFG");
                let method_arn = format!("{}{}{}", arn.stage_prefix(), route.method, concrete);
                let allowed = evaluate(&policy, &method_arn) == PolicyDecision::Allow;
                assert_eq!(
                    allowed,
                    route.access.permits(scopes),
                    "{scopes:?} {} {}",
                    route.method,
                    route.path
                );
                checked += 1;
            }
            // Nothing outside this stage, and no unknown route, is ever allowed.
            let other_stage = format!("{}GET/items", arn.stage_prefix().replace("/prod/", "/dev/"));
            assert_ne!(evaluate(&policy, &other_stage), PolicyDecision::Allow);
            let unknown = format!("{}GET/admin", arn.stage_prefix());
            assert_ne!(evaluate(&policy, &unknown), PolicyDecision::Allow);
        }
        assert_eq!(checked, 16 * ROUTES.len());
    }

    #[test]
    fn a_principal_without_scopes_reaches_only_authenticated_routes() {
        let arn = MethodArn::parse(ARN).unwrap();
        let policy = build(&arn, ScopeSet::EMPTY);
        let me = format!("{}GET/me", arn.stage_prefix());
        assert_eq!(evaluate(&policy, &me), PolicyDecision::Allow);
        assert_eq!(evaluate(&policy, ARN), PolicyDecision::ImplicitDeny);
    }

    #[test]
    fn no_permitted_route_means_an_explicit_deny() {
        let arn = MethodArn::parse(ARN).unwrap();
        let policy = policy_for(&arn, std::iter::empty());
        assert!(!allows_anything(&policy));
        assert_eq!(evaluate(&policy, ARN), PolicyDecision::ExplicitDeny);
    }
}
