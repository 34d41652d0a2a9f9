//! Every way a command fails, the exit code each maps to, and how an RFC 9457
//! problem+json answer is shown.

use serde::Deserialize;

/// The documented exit codes (also in `agpat --help` and `agpat-cli/README.md`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Unexpected failure: network, unreadable answer, local file error (a
    /// credentials file open to others included).
    pub const FAILURE: u8 = 1;
    /// Usage error: bad flags or arguments, missing setting, or an `http://`
    /// URL for a host that is not loopback (clap uses 2 too).
    pub const USAGE: u8 = 2;
    /// Not logged in, session expired, or the API answered 401.
    pub const UNAUTHENTICATED: u8 = 3;
    /// 403: the credential may not do this (scope, PAT instead of session).
    pub const FORBIDDEN: u8 = 4;
    /// 404: no such token (or route).
    pub const NOT_FOUND: u8 = 5;
    /// 409: conflict (token not active, already rotated, limit reached, concurrent change).
    pub const CONFLICT: u8 = 6;
    /// 400, 405, 413, 415, 422: the request was invalid.
    pub const INVALID: u8 = 7;
    /// 429 or 5xx: throttled or the service failed; retrying later may work.
    pub const UNAVAILABLE: u8 = 8;
}

/// The exit-code table as shown in `agpat --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  unexpected failure (network, unreadable answer, local file error,
     a credentials file open to others)
  2  usage error (bad flags or arguments, missing setting,
     an http:// URL for a host that is not loopback)
  3  not logged in, session expired, or 401 from the API
  4  forbidden (403): missing scope, or a session is required
  5  not found (404)
  6  conflict (409): token not active, already rotated, limit reached, concurrent change
  7  invalid request (400, 405, 413, 415, 422)
  8  throttled (429) or server error (5xx): try again later";

/// One invalid field of a problem.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    /// The field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem+json answer (or what we could make of a non-problem error).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// The problem type URI.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Short summary.
    #[serde(default)]
    pub title: String,
    /// HTTP status.
    #[serde(default)]
    pub status: u16,
    /// Details for this occurrence.
    #[serde(default)]
    pub detail: Option<String>,
    /// Invalid fields, if any.
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem from an answer body; a body that is not problem+json still
    /// yields the status and a generic title.
    pub fn from_body(status: u16, body: &[u8]) -> Self {
        let mut problem = serde_json::from_slice::<Problem>(body).unwrap_or(Problem {
            kind: None,
            title: String::new(),
            status,
            detail: None,
            errors: Vec::new(),
        });
        problem.status = status;
        if problem.title.is_empty() {
            // Some gateway answers carry only {"message": "..."}.
            let message = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
            problem.title = message.unwrap_or_else(|| reason(status).to_owned());
        }
        problem
    }

    /// `error: <title> (<status>)`, then the detail and each field on its own line.
    pub fn render(&self) -> String {
        let mut out = format!("error: {} ({})", clean(&self.title), self.status);
        if let Some(detail) = self.detail.as_deref().filter(|d| !d.is_empty()) {
            out.push_str(&format!("\n  {}", clean(detail)));
        }
        for e in &self.errors {
            out.push_str(&format!("\n  - {}: {}", clean(&e.field), clean(&e.message)));
        }
        out
    }
}

/// Text from a server, a redirect or a file, made safe to print: control
/// characters (an escape sequence could rewrite the terminal, set its title or
/// write the clipboard) are shown escaped. Everything the CLI prints that it did
/// not write itself goes through here.
pub fn clean(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        413 => "Payload too large",
        415 => "Unsupported media type",
        429 => "Too many requests",
        500..=599 => "Server error",
        _ => "Request failed",
    }
}

/// Why a command failed.
///
/// Messages may quote what a server or the sign-in redirect said, so `Display`
/// (and with it [`CliError::render`]) always shows them through [`clean`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or a missing setting.
    #[error("{}", clean(.0))]
    Usage(String),
    /// The config file is unreadable or invalid.
    #[error("{}", clean(.0))]
    Config(String),
    /// No usable credential.
    #[error("{}", clean(.0))]
    NotLoggedIn(String),
    /// Cognito refused the sign-in or the refresh.
    #[error("{}", clean(.0))]
    SignIn(String),
    /// The API answered with an error.
    #[error("{}", .0.render())]
    Api(Problem),
    /// Anything else (network, unreadable answer, local I/O).
    #[error("{}", clean(&format!("{:#}", .0)))]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config(_) => exit::USAGE,
            CliError::NotLoggedIn(_) | CliError::SignIn(_) => exit::UNAUTHENTICATED,
            CliError::Api(p) => match p.status {
                401 => exit::UNAUTHENTICATED,
                403 => exit::FORBIDDEN,
                404 => exit::NOT_FOUND,
                409 => exit::CONFLICT,
                400 | 405 | 413 | 415 | 422 => exit::INVALID,
                429 | 500..=599 => exit::UNAVAILABLE,
                _ => exit::FAILURE,
            },
            CliError::Other(_) => exit::FAILURE,
        }
    }

    /// The text shown on stderr.
    pub fn render(&self) -> String {
        match self {
            CliError::Api(p) => {
                let mut out = p.render();
                if p.status == 401 {
                    out.push_str("\n  (sign in again with `agpat login`, or check AGPAT_TOKEN)");
                }
                out
            }
            other => format!("error: {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_renders_title_status_detail_and_fields() {
        let body = br#"{"type":"urn:agpat:problem:validation-failed","title":"The request has invalid fields","status":400,
            "detail":"see errors","errors":[{"field":"scopes","message":"must be a subset of the token's scopes"}]}"#;
        let p = Problem::from_body(400, body);
        assert_eq!(
            p.render(),
            "error: The request has invalid fields (400)\n  see errors\n  - scopes: must be a subset of the token's scopes"
        );
        assert_eq!(CliError::Api(p).exit_code(), exit::INVALID);
    }

    #[test]
    fn a_non_problem_body_still_gives_a_readable_error() {
        let p = Problem::from_body(403, br#"{"message":"Forbidden"}"#);
        assert_eq!(p.render(), "error: Forbidden (403)");
        let p = Problem::from_body(502, b"<html>bad gateway</html>");
        assert_eq!(p.render(), "error: Server error (502)");
        assert_eq!(CliError::Api(p).exit_code(), exit::UNAVAILABLE);
    }

    #[test]
    fn control_characters_from_the_server_are_escaped() {
        let p = Problem::from_body(404, b"{\"title\":\"x\\u001b[2Jy\",\"status\":404}");
        assert_eq!(p.render(), "error: x\\u{1b}[2Jy (404)");
    }

    #[test]
    fn sign_in_and_other_errors_escape_control_characters() {
        // An OSC 52 sequence would write the clipboard; a bell, a CSI, a newline
        // could forge more output. None reaches the terminal raw.
        let hostile = "x\u{1b}]52;c;ZXZpbA==\u{7}\u{9b}2J\ny";
        for err in [
            CliError::SignIn(hostile.to_owned()),
            CliError::Other(anyhow::anyhow!("{hostile}")),
            CliError::NotLoggedIn(hostile.to_owned()),
            CliError::Usage(hostile.to_owned()),
            CliError::Config(hostile.to_owned()),
        ] {
            let shown = err.render();
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            assert_eq!(shown, "error: x\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{9b}2J\\ny");
            assert!(!err.to_string().chars().any(char::is_control), "{err}");
        }
    }

    #[test]
    fn statuses_map_to_the_documented_codes() {
        let code = |s| CliError::Api(Problem::from_body(s, b"")).exit_code();
        assert_eq!(
            [401, 403, 404, 409, 413, 415, 429, 503, 418].map(code),
            [3, 4, 5, 6, 7, 7, 8, 8, 1]
        );
        assert_eq!(CliError::NotLoggedIn(String::new()).exit_code(), 3);
        assert_eq!(CliError::Usage(String::new()).exit_code(), 2);
    }
}
