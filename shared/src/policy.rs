//! Evaluating an authorizer's IAM policy the way API Gateway does.
//!
//! Used by the tests that prove the authorizer's policies are cache-safe, and
//! by the local gateway. Explicit `Deny` wins; `*` and `?` wildcards are honoured.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerPolicy;
use aws_lambda_events::iam::IamPolicyEffect;

use crate::routes::iam_wildcard_match;

/// The outcome of evaluating a policy for one method ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyDecision {
    /// An `Allow` statement matches and no `Deny` does.
    Allow,
    /// A `Deny` statement matches.
    ExplicitDeny,
    /// Nothing matches: denied by default.
    ImplicitDeny,
}

/// Evaluates `policy` for `execute-api:Invoke` on `method_arn`.
pub fn evaluate(policy: &ApiGatewayCustomAuthorizerPolicy, method_arn: &str) -> PolicyDecision {
    let mut allowed = false;
    for statement in &policy.statement {
        let action_matches = statement
            .action
            .iter()
            .any(|a| iam_wildcard_match(a, "execute-api:Invoke"));
        let resource_matches = statement
            .resource
            .iter()
            .any(|r| iam_wildcard_match(r, method_arn));
        if !(action_matches && resource_matches) {
            continue;
        }
        match statement.effect {
            IamPolicyEffect::Deny => return PolicyDecision::ExplicitDeny,
            IamPolicyEffect::Allow => allowed = true,
            _ => return PolicyDecision::ExplicitDeny,
        }
    }
    if allowed {
        PolicyDecision::Allow
    } else {
        PolicyDecision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::iam::IamPolicyStatement;

    fn statement(effect: IamPolicyEffect, resource: &str) -> IamPolicyStatement {
        let mut s = IamPolicyStatement::default();
        s.action = vec!["execute-api:Invoke".into()];
        s.effect = effect;
        s.resource = vec![resource.into()];
        s
    }

    #[test]
    fn explicit_deny_wins_over_allow() {
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.statement = vec![
            statement(IamPolicyEffect::Allow, "arn:x/prod/*"),
            statement(IamPolicyEffect::Deny, "arn:x/prod/DELETE/*"),
        ];
        assert_eq!(
            evaluate(&policy, "arn:x/prod/GET/items"),
            PolicyDecision::Allow
        );
        assert_eq!(
            evaluate(&policy, "arn:x/prod/DELETE/items/1"),
            PolicyDecision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&policy, "arn:x/test/GET/items"),
            PolicyDecision::ImplicitDeny
        );
    }

    #[test]
    fn other_actions_do_not_grant_invoke() {
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        let mut s = statement(IamPolicyEffect::Allow, "*");
        s.action = vec!["execute-api:ManageConnections".into()];
        policy.statement = vec![s];
        assert_eq!(
            evaluate(&policy, "arn:x/prod/GET/items"),
            PolicyDecision::ImplicitDeny
        );
    }
}
