//! Driving a service router with API Gateway REST proxy events that carry an
//! authorizer context, exactly as API Gateway forwards it.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test-only helpers must fail loudly"
)]

use serde_json::{Value, json};

use crate::{AuthMethod, AuthorizerContext};

/// A fixed "now" for handler tests.
pub const T0: i64 = 1_900_000_000;

/// Sends `req` through the same entry point the Lambda uses.
pub async fn call(router: &axum::Router, req: Req<'_>) -> Reply {
    let request = match lambda_http::request::from_str(&req.event().to_string()) {
        Ok(r) => r,
        Err(e) => panic!("bad proxy event: {e}"),
    };
    let Ok(response) = crate::http::handle(router.clone(), request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = match response.body() {
        lambda_http::Body::Text(t) => t.clone(),
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// A Cognito session's context (as the authorizer would produce it). It
/// expires a year after [`T0`], so tests may move their clock by days; tests
/// of expiry set `expires_at` themselves.
pub fn session(sub: &str, scopes: &str) -> AuthorizerContext {
    AuthorizerContext {
        sub: sub.into(),
        username: "someone".into(),
        auth_method: AuthMethod::Jwt,
        principal_kind: crate::PrincipalKind::User,
        scopes: scopes.into(),
        token_id: String::new(),
        expires_at: T0 + 365 * 86_400,
        // Signed in after anything a test does; tests of stale sessions set it.
        issued_at: T0 + 365 * 86_400,
        dpop_jkt: String::new(),
    }
}

/// The core scopes of the fixture manifest, space-separated.
pub const ALL: &str = "tokens:read tokens:write docs:read docs:write";

/// A request to build into a proxy event.
pub struct Req<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Stage-less path.
    pub path: &'a str,
    /// `k=v&k2=v2`.
    pub query: Option<&'a str>,
    /// The authorizer context to forward (none: unauthenticated).
    pub context: Option<AuthorizerContext>,
    /// Raw body.
    pub body: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// Further headers, as sent.
    pub headers: Vec<(String, String)>,
}

impl<'a> Req<'a> {
    /// A request without body or query.
    pub fn new(method: &'a str, path: &'a str, context: Option<&AuthorizerContext>) -> Self {
        Self {
            method,
            path,
            query: None,
            context: context.cloned(),
            body: None,
            content_type: None,
            headers: Vec::new(),
        }
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// With a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self.content_type = Some("application/json");
        self
    }

    /// With a raw body and content type.
    pub fn raw(mut self, body: &str, content_type: Option<&'a str>) -> Self {
        self.body = Some(body.to_owned());
        self.content_type = content_type;
        self
    }

    /// With a query string.
    pub fn query(mut self, q: &'a str) -> Self {
        self.query = Some(q);
        self
    }

    /// The API Gateway REST proxy event.
    fn event(&self) -> Value {
        let mut headers = serde_json::Map::new();
        headers.insert("User-Agent".into(), json!("token-tests/1.0"));
        if let Some(ct) = self.content_type {
            headers.insert("Content-Type".into(), json!(ct));
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), json!(value));
        }
        let query: Value = match self.query {
            None => Value::Null,
            Some(q) => Value::Object(
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), json!(v)))
                    .collect(),
            ),
        };
        // API Gateway forwards every context value as a string.
        let authorizer = self.context.as_ref().map(|c| {
            let mut map = serde_json::Map::new();
            for (k, v) in serde_json::to_value(c).unwrap().as_object().unwrap() {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                map.insert(k.clone(), json!(s));
            }
            map.insert("principalId".into(), json!(c.sub));
            Value::Object(map)
        });
        json!({
            "resource": self.path,
            "path": self.path,
            "httpMethod": self.method,
            "headers": headers,
            "queryStringParameters": query,
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "resourcePath": self.path,
                "httpMethod": self.method,
                "path": format!("/test{}", self.path),
                "stage": "test",
                "requestId": "req-1",
                "accountId": "123456789012",
                "apiId": "api1",
                "identity": {"sourceIp": "198.51.100.7", "userAgent": "token-tests/1.0"},
                "authorizer": authorizer
            },
            "body": self.body,
            "isBase64Encoded": false
        })
    }
}

/// A response, decoded.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: axum::http::HeaderMap,
    /// Body text.
    pub text: String,
    /// Body as JSON (`null` if not JSON).
    pub json: Value,
}

impl Reply {
    /// The problem `type` (asserts the problem media type).
    pub fn problem_type(&self) -> &str {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        self.json["type"].as_str().unwrap_or("")
    }

    #[track_caller]
    /// Asserts status and problem slug.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.problem_type(),
            format!("urn:agpat:problem:{slug}"),
            "{}",
            self.text
        );
        assert_eq!(self.json["status"], status);
    }
}
