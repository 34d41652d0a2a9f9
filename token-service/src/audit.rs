//! Audit events and CloudWatch Embedded Metric Format counts.
//!
//! One structured `audit` log event per token operation: actor, auth method,
//! token id, scopes, source IP, user agent, outcome. Never a secret.

use std::io::Write;
use std::sync::OnceLock;

use shared::emf::{Directive, Member, Namespace, NamespaceError, Unit};
use shared::{ScopeNames, TokenId, UserId};

use shared::http::caller::{Caller, RequestInfo};

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Nothing to do (e.g. already revoked).
    NoChange,
    /// Refused by policy (not allowed for this caller).
    Denied,
    /// Refused by state (cap reached, not found, already rotated…).
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NoChange => "no_change",
            Outcome::Denied => "denied",
            Outcome::Refused => "refused",
        }
    }
}

/// An audit record under construction.
pub struct Audit<'a> {
    event: &'static str,
    actor: &'a str,
    auth_method: &'static str,
    actor_token: Option<&'a TokenId>,
    source_ip: &'a str,
    user_agent: &'a str,
    /// Where a reporter found a leaked token (the secret-scanning partner's
    /// `source` and `url`), never the token itself.
    leak_source: Option<&'a str>,
    leak_url: Option<&'a str>,
    /// The owner of the tokens acted on, when the actor is an administrator.
    owner: Option<&'a str>,
}

impl<'a> Audit<'a> {
    /// For an authenticated caller.
    pub fn new(event: &'static str, caller: &'a Caller) -> Self {
        Self {
            event,
            actor: caller.principal.sub.as_str(),
            auth_method: caller.principal.method.as_str(),
            actor_token: caller.principal.token_id.as_ref(),
            source_ip: &caller.source_ip,
            user_agent: &caller.user_agent,
            leak_source: None,
            leak_url: None,
            owner: None,
        }
    }

    /// For the public leaked-token route: the actor is anonymous; `owner` is
    /// the token's owner.
    pub fn public(event: &'static str, info: &'a RequestInfo, owner: &'a UserId) -> Self {
        Self {
            event,
            actor: owner.as_str(),
            auth_method: "presented-token",
            actor_token: None,
            source_ip: &info.source_ip,
            user_agent: &info.user_agent,
            leak_source: None,
            leak_url: None,
            owner: None,
        }
    }

    /// The same record, naming where the reporter found the token.
    pub fn found_at(mut self, source: Option<&'a str>, url: Option<&'a str>) -> Self {
        self.leak_source = source;
        self.leak_url = url;
        self
    }

    /// The same record, naming the owner of the tokens an administrator
    /// acted on.
    pub fn of_owner(mut self, owner: &'a str) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Emits the audit event and its metric.
    pub fn record(&self, outcome: Outcome, token: Option<&TokenId>, scopes: Option<&ScopeNames>) {
        tracing::info!(
            target: "token_service::audit",
            audit = true,
            event = self.event,
            outcome = outcome.as_str(),
            actor = self.actor,
            auth_method = self.auth_method,
            actor_token_id = self.actor_token.map(TokenId::as_str).unwrap_or(""),
            token_id = token.map(TokenId::as_str).unwrap_or(""),
            scopes = scopes.map(ScopeNames::to_space_separated).unwrap_or_default(),
            source_ip = self.source_ip,
            user_agent = self.user_agent,
            leak_source = self.leak_source,
            leak_url = self.leak_url,
            owner = self.owner,
            "token audit event"
        );
        emit_metric(self.event, outcome.as_str(), 1);
    }

    /// Emits an audit event that affected `count` tokens.
    pub fn record_count(&self, outcome: Outcome, count: u32) {
        tracing::info!(
            target: "token_service::audit",
            audit = true,
            event = self.event,
            outcome = outcome.as_str(),
            actor = self.actor,
            auth_method = self.auth_method,
            count,
            owner = self.owner,
            source_ip = self.source_ip,
            user_agent = self.user_agent,
            "token audit event"
        );
        emit_metric(self.event, outcome.as_str(), count);
    }
}

/// One EMF line: CloudWatch turns it into the metric `TokenOperations` in
/// `namespace` (the environment's, see [`metrics_namespace`]) with dimensions
/// `Operation` and `Outcome`.
pub fn emf_line(
    namespace: &Namespace,
    operation: &str,
    outcome: &str,
    count: u32,
    timestamp_ms: i64,
) -> String {
    shared::emf::document(
        namespace,
        timestamp_ms,
        &[Directive {
            dimensions: &[&["Operation", "Outcome"]],
            metrics: &[("TokenOperations", Unit::Count)],
        }],
        &[
            ("Operation", Member::Text(operation)),
            ("Outcome", Member::Text(outcome)),
            ("TokenOperations", Member::Count(u64::from(count))),
        ],
    )
}

/// The namespace of the token metrics: `AGPAT_METRICS_NAMESPACE`, default
/// `agpat`, read once. Call it at cold start to refuse a bad value there;
/// if it was never called and the value is bad, metrics are not emitted
/// (never into another environment's namespace) and the error is logged once.
///
/// # Errors
/// [`NamespaceError`] when the variable is set to an invalid namespace.
pub fn metrics_namespace() -> Result<&'static Namespace, NamespaceError> {
    static NAMESPACE: OnceLock<Result<Namespace, NamespaceError>> = OnceLock::new();
    NAMESPACE
        .get_or_init(|| {
            let ns = Namespace::from_process_env();
            if let Err(e) = &ns {
                tracing::error!(error = %e, "AGPAT_METRICS_NAMESPACE is invalid: token metrics are off");
            }
            ns
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn emit_metric(operation: &str, outcome: &str, count: u32) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return; // Only inside Lambda, where stdout goes to CloudWatch.
    }
    let Ok(namespace) = metrics_namespace() else {
        return;
    };
    let line = emf_line(namespace, operation, outcome, count, shared::emf::now_ms());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn emf_lines_declare_the_metric_and_its_dimensions() {
        let ns = Namespace::parse("agpat/prod").unwrap();
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(&ns, "token.create", "success", 1, 42)).unwrap();
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "agpat/prod"
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "TokenOperations"
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Operation", "Outcome"])
        );
        assert_eq!(line["Operation"], "token.create");
        assert_eq!(line["Outcome"], "success");
        assert_eq!(line["TokenOperations"], 1);
        assert_eq!(line["_aws"]["Timestamp"], 42);
    }
}
