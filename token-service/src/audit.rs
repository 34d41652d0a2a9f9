//! Audit events and CloudWatch Embedded Metric Format counts.
//!
//! One structured `audit` log event per token operation: actor, auth method,
//! token id, scopes, source IP, user agent, outcome. Never a secret.

use std::io::Write;

use serde_json::json;
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
        }
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
            source_ip = self.source_ip,
            user_agent = self.user_agent,
            "token audit event"
        );
        emit_metric(self.event, outcome.as_str(), count);
    }
}

/// One EMF line: CloudWatch turns it into the metric `agpat/TokenOperations`
/// with dimensions `Operation` and `Outcome`.
pub fn emf_line(operation: &str, outcome: &str, count: u32, timestamp_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "agpat",
                "Dimensions": [["Operation", "Outcome"]],
                "Metrics": [{"Name": "TokenOperations", "Unit": "Count"}]
            }]
        },
        "Operation": operation,
        "Outcome": outcome,
        "TokenOperations": count
    })
    .to_string()
}

fn emit_metric(operation: &str, outcome: &str, count: u32) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return; // Only inside Lambda, where stdout goes to CloudWatch.
    }
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", emf_line(operation, outcome, count, ms));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_declare_the_metric_and_its_dimensions() {
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("token.create", "success", 1, 42)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "agpat");
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
