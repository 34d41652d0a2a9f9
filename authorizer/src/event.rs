//! What a decision reads of a request, and the lean event the Lambda parses.
//!
//! A decision reads five things: the method ARN, the `Authorization` and
//! `User-Agent` headers, the client address and the request id
//! ([`AuthorizerRequest`]). The Lambda deserialises only those
//! ([`AuthorizerEvent`]) and skips the rest of the event unparsed; tests and
//! the local gateway hand over `aws_lambda_events`' full type, which answers
//! the same five questions.

use std::fmt;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// A header as a request carries it. Its `Debug` never shows a value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Header<'a> {
    /// Not sent.
    Absent,
    /// Sent once: its raw value.
    One(&'a [u8]),
    /// Sent under more than one spelling of its name (`Authorization` and
    /// `authorization`): which one API Gateway meant is not ours to guess.
    Ambiguous,
}

impl fmt::Debug for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Header::Absent => f.write_str("Absent"),
            Header::One(v) => write!(f, "One(<{} bytes>)", v.len()),
            Header::Ambiguous => f.write_str("Ambiguous"),
        }
    }
}

/// What a decision reads of a request.
pub trait AuthorizerRequest: Sync {
    /// The `methodArn`.
    fn method_arn(&self) -> Option<&str>;
    /// The `Authorization` header.
    fn authorization(&self) -> Header<'_>;
    /// The `User-Agent` header, if it is text.
    fn user_agent(&self) -> Option<&str>;
    /// The client address API Gateway reports (empty if absent).
    fn source_ip(&self) -> &str;
    /// API Gateway's request id.
    fn request_id(&self) -> Option<&str>;
}

impl AuthorizerRequest for ApiGatewayCustomAuthorizerRequestTypeRequest {
    fn method_arn(&self) -> Option<&str> {
        self.method_arn.as_deref()
    }

    fn authorization(&self) -> Header<'_> {
        // The header map has already merged the spellings of a name (the
        // last one wins); the lean event refuses them instead.
        self.headers
            .get("authorization")
            .map_or(Header::Absent, |v| Header::One(v.as_bytes()))
    }

    fn user_agent(&self) -> Option<&str> {
        self.headers
            .get("user-agent")
            .and_then(|v| visible_ascii(v.as_bytes()))
    }

    fn source_ip(&self) -> &str {
        self.request_context
            .identity
            .as_ref()
            .and_then(|i| i.source_ip.as_deref())
            .unwrap_or("")
    }

    fn request_id(&self) -> Option<&str> {
        self.request_context.request_id.as_deref()
    }
}

/// Header text as `http::HeaderValue::to_str` accepts it: visible ASCII
/// and tabs, nothing else.
pub fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    // No early exit: the compiler checks many bytes at once.
    let text = bytes.iter().fold(true, |ok, &b| {
        ok & ((b == b'\t') | (0x20..0x7f).contains(&b))
    });
    if text {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// The REQUEST authorizer event, reduced to what a decision reads. Every
/// other field is skipped without being kept.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    #[serde(default)]
    method_arn: Option<String>,
    #[serde(default, deserialize_with = "lean_headers")]
    headers: LeanHeaders,
    /// Required, as in the full type: an event without it is no API
    /// Gateway event, and fails before any decision.
    request_context: LeanContext,
}

#[derive(Default)]
struct LeanHeaders {
    authorization: Option<String>,
    ambiguous: bool,
    user_agent: Option<String>,
}

/// Never shows the credential: the event can be logged.
impl fmt::Debug for LeanHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeanHeaders")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("ambiguous", &self.ambiguous)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanContext {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    identity: Option<LeanIdentity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanIdentity {
    #[serde(default)]
    source_ip: Option<String>,
}

fn lean_headers<'de, D: Deserializer<'de>>(d: D) -> Result<LeanHeaders, D::Error> {
    d.deserialize_option(HeadersVisitor)
}

struct HeadersVisitor;

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = LeanHeaders;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of header names to strings, or null")
    }

    fn visit_none<E>(self) -> Result<LeanHeaders, E> {
        Ok(LeanHeaders::default())
    }

    fn visit_unit<E>(self) -> Result<LeanHeaders, E> {
        Ok(LeanHeaders::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LeanHeaders, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<LeanHeaders, M::Error> {
        let mut headers = LeanHeaders::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name.eq_ignore_ascii_case("authorization") {
                let value: String = map.next_value()?;
                if headers.authorization.is_some() {
                    headers.ambiguous = true;
                }
                headers.authorization = Some(value);
            } else if name.eq_ignore_ascii_case("user-agent") {
                headers.user_agent = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(headers)
    }
}

impl AuthorizerRequest for AuthorizerEvent {
    fn method_arn(&self) -> Option<&str> {
        self.method_arn.as_deref()
    }

    fn authorization(&self) -> Header<'_> {
        match &self.headers.authorization {
            _ if self.headers.ambiguous => Header::Ambiguous,
            Some(v) => Header::One(v.as_bytes()),
            None => Header::Absent,
        }
    }

    fn user_agent(&self) -> Option<&str> {
        self.headers
            .user_agent
            .as_deref()
            .and_then(|v| visible_ascii(v.as_bytes()))
    }

    fn source_ip(&self) -> &str {
        self.request_context
            .identity
            .as_ref()
            .and_then(|i| i.source_ip.as_deref())
            .unwrap_or("")
    }

    fn request_id(&self) -> Option<&str> {
        self.request_context.request_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_debug_never_shows_its_credential() {
        let event: AuthorizerEvent = serde_json::from_str(
            r#"{"headers": {"Authorization": "Bearer s3cr3t-value"}, "requestContext": {}}"#,
        )
        .unwrap();
        let shown = format!("{event:?} {:?}", event.authorization());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn visible_ascii_is_what_header_values_accept_as_text() {
        for b in 0u8..=255 {
            let bytes = [b'a', b];
            let ours = visible_ascii(&bytes).is_some();
            let http = aws_lambda_events::http::HeaderValue::from_bytes(&bytes)
                .ok()
                .is_some_and(|v| v.to_str().is_ok());
            assert_eq!(ours, http, "byte {b:#04x}");
        }
    }
}
