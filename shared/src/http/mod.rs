//! The HTTP layer both service Lambdas share: RFC 9457 problems, strict JSON
//! bodies, the caller taken from the authorizer context, and the adapter from
//! an API Gateway proxy event to an axum router.

pub mod body;
pub mod caller;
pub mod openapi;
pub mod problem;

use axum::Router;
use axum::routing::MethodRouter;

use crate::http::problem::ApiError;
use crate::routes::Route;
use lambda_http::RequestExt;
use tower::ServiceExt;

/// Serves one API Gateway proxy request (as `lambda_http` decoded it) with `router`.
///
/// `lambda_http` prefixes the stage to the path; routes are stage-less, so the
/// raw path API Gateway sent is used instead.
pub async fn handle(
    router: Router,
    request: lambda_http::Request,
) -> Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible> {
    let raw_path = request.raw_http_path().to_owned();
    let (mut parts, body) = request.into_parts();
    let path = if raw_path.is_empty() {
        parts.uri.path().to_owned()
    } else {
        raw_path
    };
    let uri = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    if let Ok(uri) = uri.parse() {
        parts.uri = uri;
    }
    let request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if text.is_empty() => lambda_http::Body::Empty,
        Ok(text) => lambda_http::Body::Text(text),
        Err(e) => lambda_http::Body::Binary(e.into_bytes()),
    };
    Ok(lambda_http::Response::from_parts(parts, body))
}

/// The router of one service, generated from the route table: each of
/// `routes` gets its handler from `handler_for`; unknown paths and methods
/// answer RFC 9457 problems. Greedy `{name+}` templates become axum's `{*name}`.
pub fn service_router<'a, S: Clone + Send + Sync + 'static>(
    routes: impl IntoIterator<Item = &'a Route>,
    handler_for: impl Fn(&Route) -> Option<MethodRouter<S>>,
    state: S,
) -> Router {
    let mut router = Router::new();
    for route in routes {
        if let Some(handler) = handler_for(route) {
            router = router.route(&axum_path(&route.path), handler);
        }
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// A manifest path template in axum's syntax: `{name+}` becomes `{*name}`.
pub fn axum_path(template: &str) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                Some(name) => format!("{{*{name}}}"),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The reverse of [`axum_path`]: axum's matched path back to the manifest's template.
pub fn template_of(axum_matched: &str) -> String {
    axum_matched
        .split('/')
        .map(
            |segment| match segment.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!("{{{name}+}}"),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}
