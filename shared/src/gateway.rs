//! The problem+json answers API Gateway itself gives (no Lambda involved):
//! a missing or refused credential, a policy's Deny, a throttle, an unknown
//! route, a failed integration. The CDK construct installs them as gateway
//! responses (`infra/generated/routes.json`, `problemGatewayResponses`) and
//! the local gateway answers with the same bodies, so clients see one error
//! format wherever they run.

use serde::Serialize;

/// One gateway response: which API Gateway response type it replaces, and
/// the problem it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayProblem {
    /// API Gateway's response type (`UNAUTHORIZED`, `DEFAULT_4XX`, …).
    pub response_type: &'static str,
    /// The status it answers with; `None` keeps the status API Gateway chose
    /// (the two defaults).
    pub status: Option<u16>,
    /// Whether the body names the response type as `code` (a fixed enum such
    /// as `BAD_REQUEST_BODY`, never request data): only for 4xx defaults. A
    /// 5xx says nothing more than that it failed.
    pub code: bool,
    /// The problem type's slug (`urn:agpat:problem:<slug>`).
    pub slug: &'static str,
    /// The problem's title.
    pub title: &'static str,
    /// A `WWW-Authenticate` challenge, for 401.
    pub www_authenticate: Option<&'static str>,
    /// The challenge where bound tokens are accepted (the construct's
    /// `dpop`): RFC 9449 §7.1's `DPoP` scheme with the accepted algorithms
    /// beside `Bearer`.
    pub www_authenticate_dpop: Option<&'static str>,
}

impl GatewayProblem {
    /// The `WWW-Authenticate` challenge of a deployment with (`dpop`) or
    /// without bound tokens.
    pub fn challenge(&self, dpop: bool) -> Option<&'static str> {
        if dpop {
            self.www_authenticate_dpop.or(self.www_authenticate)
        } else {
            self.www_authenticate
        }
    }
}

/// Every gateway response agpat replaces, in the construct's order.
pub const GATEWAY_PROBLEMS: [GatewayProblem; 6] = [
    GatewayProblem {
        response_type: "UNAUTHORIZED",
        status: Some(401),
        slug: "unauthenticated",
        title: "Authentication required",
        www_authenticate: Some("Bearer"),
        www_authenticate_dpop: Some(r#"Bearer, DPoP algs="ES256 EdDSA""#),
        code: false,
    },
    GatewayProblem {
        response_type: "ACCESS_DENIED",
        status: Some(403),
        slug: "insufficient-scope",
        title: "The credential does not allow this route",
        www_authenticate: None,
        www_authenticate_dpop: None,
        code: false,
    },
    GatewayProblem {
        response_type: "THROTTLED",
        status: Some(429),
        slug: "throttled",
        title: "Too many requests",
        www_authenticate: None,
        www_authenticate_dpop: None,
        code: false,
    },
    GatewayProblem {
        response_type: "MISSING_AUTHENTICATION_TOKEN",
        status: Some(404),
        slug: "not-found",
        title: "No such route",
        www_authenticate: None,
        www_authenticate_dpop: None,
        code: false,
    },
    GatewayProblem {
        response_type: "DEFAULT_4XX",
        status: None,
        slug: "request-rejected",
        title: "The request was rejected",
        www_authenticate: None,
        www_authenticate_dpop: None,
        code: true,
    },
    DEFAULT_5XX,
];

/// The gateway response of `response_type`; any other type falls back to
/// the matching default (`DEFAULT_5XX` for a 5xx `status`, else `DEFAULT_4XX`).
pub fn problem_for(response_type: &str, status: u16) -> &'static GatewayProblem {
    let fallback = if status >= 500 {
        "DEFAULT_5XX"
    } else {
        "DEFAULT_4XX"
    };
    GATEWAY_PROBLEMS
        .iter()
        .find(|p| p.response_type == response_type)
        .or_else(|| {
            GATEWAY_PROBLEMS
                .iter()
                .find(|p| p.response_type == fallback)
        })
        .unwrap_or(&DEFAULT_5XX)
}

const DEFAULT_5XX: GatewayProblem = GatewayProblem {
    response_type: "DEFAULT_5XX",
    status: None,
    slug: "server-error",
    title: "The request could not be completed",
    www_authenticate: None,
    www_authenticate_dpop: None,
    code: false,
};

/// The body API Gateway renders for `problem` (with `$context.requestId`
/// and, for the defaults, `$context.error.responseType` as `code`).
pub fn problem_body(
    problem: &GatewayProblem,
    response_type: &str,
    request_id: &str,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "type": format!("urn:agpat:problem:{}", problem.slug),
        "title": problem.title,
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(s) = problem.status {
            map.insert("status".into(), s.into());
        }
        if problem.code {
            map.insert("code".into(), response_type.into());
        }
        map.insert("requestId".into(), request_id.into());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_problem_and_unknown_types_fall_back_by_status() {
        assert_eq!(problem_for("ACCESS_DENIED", 403).slug, "insufficient-scope");
        assert_eq!(problem_for("INTEGRATION_TIMEOUT", 504).slug, "server-error");
        assert_eq!(
            problem_for("BAD_REQUEST_BODY", 400).slug,
            "request-rejected"
        );
        let body = problem_body(problem_for("UNAUTHORIZED", 401), "UNAUTHORIZED", "r1");
        assert_eq!(
            body,
            serde_json::json!({"type": "urn:agpat:problem:unauthenticated",
                "title": "Authentication required", "status": 401, "requestId": "r1"})
        );
        let body = problem_body(problem_for("X", 400), "X", "r2");
        assert_eq!(body["code"], "X");
        assert!(body.get("status").is_none());
        let body = problem_body(problem_for("X", 502), "X", "r3");
        assert_eq!(
            body,
            serde_json::json!({"type": "urn:agpat:problem:server-error",
                "title": "The request could not be completed", "requestId": "r3"})
        );
    }
}

#[cfg(test)]
mod dpop_tests {
    use super::*;

    #[test]
    fn the_dpop_challenge_names_exactly_the_algorithms_the_authorizer_accepts() {
        let unauthorized = problem_for("UNAUTHORIZED", 401);
        let challenge = unauthorized.challenge(true).unwrap_or_default();
        assert!(
            challenge.contains(&format!("DPoP algs=\"{}\"", crate::dpop::ALGORITHMS)),
            "{challenge}"
        );
        assert_eq!(unauthorized.challenge(false), Some("Bearer"));
        assert_eq!(problem_for("ACCESS_DENIED", 403).challenge(true), None);
    }
}
