//! What a decision reads of a request, and the lean event the Lambda parses.
//!
//! A decision reads six things: the method ARN, the `Authorization`,
//! `DPoP` and `User-Agent` headers, the client address and the request id
//! ([`AuthorizerRequest`]). A credential header sent more than once (two
//! spellings of its name in `headers`, or two values in
//! `multiValueHeaders`) is [`Header::Ambiguous`]. The Lambda deserialises only those
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
    /// The `DPoP` header (RFC 9449): a proof of possession.
    fn dpop(&self) -> Header<'_>;
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
        full_header(self, "authorization")
    }

    fn dpop(&self) -> Header<'_> {
        full_header(self, "dpop")
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

/// A header of the full event type: ambiguous when `multiValueHeaders`
/// holds more than one value for it.
fn full_header<'a>(
    event: &'a ApiGatewayCustomAuthorizerRequestTypeRequest,
    name: &str,
) -> Header<'a> {
    if event.multi_value_headers.get_all(name).iter().count() > 1
        || event.headers.get_all(name).iter().count() > 1
    {
        return Header::Ambiguous;
    }
    event
        .headers
        .get(name)
        .or_else(|| event.multi_value_headers.get(name))
        .map_or(Header::Absent, |v| Header::One(v.as_bytes()))
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
    #[serde(default, deserialize_with = "lean_multi_value_headers")]
    multi_value_headers: MultiValueCounts,
    /// Required, as in the full type: an event without it is no API
    /// Gateway event, and fails before any decision.
    request_context: LeanContext,
}

#[derive(Default)]
struct LeanHeaders {
    authorization: Option<String>,
    ambiguous: bool,
    dpop: Option<String>,
    dpop_ambiguous: bool,
    user_agent: Option<String>,
}

/// What a decision needs of `multiValueHeaders`: how many values each
/// credential header has, and the value when `headers` lacks it.
#[derive(Debug, Default)]
struct MultiValueCounts {
    authorization: usize,
    dpop: usize,
    dpop_value: Option<RedactedValue>,
}

/// A header value kept for the decision; its `Debug` shows only its length.
#[derive(Default)]
struct RedactedValue(String);

impl fmt::Debug for RedactedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
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
            .field("dpop", &self.dpop.as_ref().map(|_| "<redacted>"))
            .field("dpop_ambiguous", &self.dpop_ambiguous)
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
            } else if name.eq_ignore_ascii_case("dpop") {
                let value: String = map.next_value()?;
                if headers.dpop.is_some() {
                    headers.dpop_ambiguous = true;
                }
                headers.dpop = Some(value);
            } else if name.eq_ignore_ascii_case("user-agent") {
                headers.user_agent = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(headers)
    }
}

fn lean_multi_value_headers<'de, D: Deserializer<'de>>(d: D) -> Result<MultiValueCounts, D::Error> {
    d.deserialize_option(MultiValueVisitor)
}

struct MultiValueVisitor;

impl<'de> Visitor<'de> for MultiValueVisitor {
    type Value = MultiValueCounts;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of header names to lists of strings, or null")
    }

    fn visit_none<E>(self) -> Result<MultiValueCounts, E> {
        Ok(MultiValueCounts::default())
    }

    fn visit_unit<E>(self) -> Result<MultiValueCounts, E> {
        Ok(MultiValueCounts::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<MultiValueCounts, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<MultiValueCounts, M::Error> {
        let mut counts = MultiValueCounts::default();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name.eq_ignore_ascii_case("authorization") {
                let values: Vec<IgnoredAny> = map.next_value()?;
                counts.authorization += values.len();
            } else if name.eq_ignore_ascii_case("dpop") {
                let values: Vec<String> = map.next_value()?;
                counts.dpop += values.len();
                counts.dpop_value = values.into_iter().next().map(RedactedValue);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(counts)
    }
}

impl AuthorizerRequest for AuthorizerEvent {
    fn method_arn(&self) -> Option<&str> {
        self.method_arn.as_deref()
    }

    fn authorization(&self) -> Header<'_> {
        match &self.headers.authorization {
            _ if self.headers.ambiguous || self.multi_value_headers.authorization > 1 => {
                Header::Ambiguous
            }
            Some(v) => Header::One(v.as_bytes()),
            None => Header::Absent,
        }
    }

    fn dpop(&self) -> Header<'_> {
        let multi = &self.multi_value_headers;
        if self.headers.dpop_ambiguous || multi.dpop > 1 {
            return Header::Ambiguous;
        }
        match (&self.headers.dpop, &multi.dpop_value) {
            (Some(v), _) | (None, Some(RedactedValue(v))) => Header::One(v.as_bytes()),
            (None, None) => Header::Absent,
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
    fn a_credential_header_sent_twice_is_ambiguous_in_either_event_shape() {
        let lean = |json: &str| serde_json::from_str::<AuthorizerEvent>(json).unwrap();
        let one = lean(
            r#"{"headers": {"DPoP": "p1", "Authorization": "DPoP t"},
                "multiValueHeaders": {"DPoP": ["p1"], "Authorization": ["DPoP t"]},
                "requestContext": {}}"#,
        );
        assert_eq!(one.dpop(), Header::One(b"p1"));
        assert_eq!(one.authorization(), Header::One(b"DPoP t"));
        // API Gateway keeps the last value in `headers` and every value in
        // `multiValueHeaders`.
        let two = lean(
            r#"{"headers": {"DPoP": "p2", "Authorization": "DPoP t"},
                "multiValueHeaders": {"DPoP": ["p1", "p2"], "Authorization": ["DPoP t", "Bearer u"]},
                "requestContext": {}}"#,
        );
        assert_eq!(two.dpop(), Header::Ambiguous);
        assert_eq!(two.authorization(), Header::Ambiguous);
        let spelled = lean(r#"{"headers": {"DPoP": "p1", "dpop": "p2"}, "requestContext": {}}"#);
        assert_eq!(spelled.dpop(), Header::Ambiguous);
        let only_multi = lean(r#"{"multiValueHeaders": {"dpop": ["p1"]}, "requestContext": {}}"#);
        assert_eq!(only_multi.dpop(), Header::One(b"p1"));
        let none = lean(r#"{"headers": null, "multiValueHeaders": null, "requestContext": {}}"#);
        assert_eq!(none.dpop(), Header::Absent);
        let shown = format!("{two:?} {only_multi:?}");
        assert!(!shown.contains("p1") && !shown.contains("p2"), "{shown}");

        let full: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_str(
            r#"{"headers": {"DPoP": "p2"}, "multiValueHeaders": {"DPoP": ["p1", "p2"]},
                "requestContext": {}}"#,
        )
        .unwrap();
        assert_eq!(full.dpop(), Header::Ambiguous);
        let full: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_str(
            r#"{"headers": {"DPoP": "p1"}, "multiValueHeaders": {"DPoP": ["p1"]}, "requestContext": {}}"#,
        )
        .unwrap();
        assert_eq!(full.dpop(), Header::One(b"p1"));
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
