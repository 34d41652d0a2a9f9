//! Where the CLI may send a credential: `https://` anywhere, `http://` only to
//! this machine (127.0.0.0/8, `[::1]` or `localhost`). A password, refresh
//! token, authorization code with its PKCE verifier, access token or personal
//! access token therefore never crosses a network in cleartext.
//!
//! One rule for the API URL, the hosted UI, the Cognito endpoint and every
//! redirect the HTTP client would follow. A refused URL is a usage error
//! (exit code 2): the setting has to change.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::{Attempt, Policy};

use crate::error::CliError;

/// The hosts `http://` is allowed for, as the messages and `--help` name them.
pub const LOOPBACK_HOSTS: &str = "127.0.0.0/8, [::1] or localhost";

/// Most redirects one request follows (reqwest's own default).
const MAX_REDIRECTS: usize = 10;

/// Whether `url`'s host is this machine: an address in 127.0.0.0/8, `[::1]`,
/// or the name `localhost`. Nothing else counts, not even a name that resolves
/// to loopback today: DNS can change its answer.
pub fn is_loopback(url: &Url) -> bool {
    // The URL parser has already normalised the host: IPv4 in dotted quads,
    // IPv6 in brackets, names in lower case.
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

/// Whether a credential may be sent to `url`.
fn allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback(url),
        _ => false,
    }
}

/// Parses the base URL of `what` (named in the error), refusing anything but
/// `https://`, or `http://` to a loopback host.
pub fn parse(what: &str, raw: &str) -> Result<Url, CliError> {
    let url = Url::parse(raw.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
        .ok_or_else(|| CliError::Usage(format!("{what} {raw:?} is not an http(s) URL")))?;
    if !allowed(&url) {
        return Err(cleartext(what, raw));
    }
    Ok(url)
}

fn cleartext(what: &str, raw: &str) -> CliError {
    CliError::Usage(format!(
        "{what} {raw:?} would carry credentials in cleartext: use https:// \
         (http:// is allowed only for a loopback host: {LOOPBACK_HOSTS})"
    ))
}

/// Parses the URL of one request that carries a token (`agpat dpop`)
/// exactly as given, query included, under the rule of [`parse`]. A user
/// name or password in it is refused: the token is the credential.
pub fn parse_request_url(raw: &str) -> Result<Url, CliError> {
    let url = Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| CliError::Usage(format!("the URL {raw:?} is not an http(s) URL")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CliError::Usage(
            "the URL must not hold a user name or password".into(),
        ));
    }
    if !allowed(&url) {
        return Err(cleartext("the URL", raw));
    }
    Ok(url)
}

/// Follows a redirect only to a URL [`parse`] would accept, so an `https://`
/// server cannot bounce a request body (a code and verifier, a token's
/// settings) to cleartext.
fn redirect_policy() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if allowed(attempt.url()) {
            attempt.follow()
        } else {
            let refused = format!(
                "refused a redirect to {}: not https:// and not a loopback host",
                attempt.url().origin().ascii_serialization()
            );
            attempt.error(refused)
        }
    })
}

fn builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .user_agent(crate::api::USER_AGENT)
        .timeout(Duration::from_secs(60))
        .redirect(redirect_policy())
        // No system proxy: it would also carry plain http, and with it a
        // token in cleartext, to whatever host HTTP_PROXY names.
        .no_proxy();
    match https_proxy() {
        Some(proxy) => builder.proxy(proxy),
        None => builder,
    }
}

/// The proxy for https requests, as the environment names it
/// (`HTTPS_PROXY`, else `ALL_PROXY`, lower case too; `NO_PROXY` honoured).
/// Plain http goes only to loopback hosts ([`parse`]) and never through a
/// proxy.
fn https_proxy() -> Option<reqwest::Proxy> {
    let url = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))?;
    reqwest::Proxy::https(url)
        .ok()
        .map(|proxy| proxy.no_proxy(reqwest::NoProxy::from_env()))
}

/// The HTTP client for the API and the hosted UI: our `User-Agent`, a
/// 60-second timeout, and redirects only where [`parse`] would allow them.
pub fn client() -> Result<reqwest::Client, CliError> {
    builder()
        .build()
        .map_err(|e| CliError::Other(anyhow::anyhow!("HTTP client: {e}")))
}

/// The client for a request signed with a DPoP proof: as [`client`], but it
/// follows no redirect. A proof names one URL, so it would be refused
/// elsewhere anyway; the redirect is the answer.
pub fn client_without_redirects() -> Result<reqwest::Client, CliError> {
    builder()
        .redirect(Policy::none())
        .build()
        .map_err(|e| CliError::Other(anyhow::anyhow!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn http_is_allowed_only_for_loopback_hosts() {
        for ok in [
            "https://api.example.com/prod",
            "https://10.0.0.1",
            "http://127.0.0.1:3000",
            "http://127.1.2.3",
            "http://localhost:8080/x",
            "http://LOCALHOST",
            "http://[::1]:3000",
        ] {
            assert!(parse("the API URL", ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://api.example.com",
            "http://10.0.0.1:3000",
            "http://0.0.0.0:3000",
            "http://128.0.0.1",
            "http://[::2]",
            "http://[::ffff:127.0.0.1]",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(
                matches!(parse("the API URL", refused), Err(CliError::Usage(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_request_url_keeps_its_query_and_follows_the_same_rule() {
        let url = parse_request_url("http://127.0.0.1:3000/docs/?q=a/").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:3000/docs/?q=a/");
        for refused in [
            "http://api.example.com/x",
            "http://user:pw@127.0.0.1/x",
            "https://user@api.example.com/x",
            "/docs/readme",
            "ftp://127.0.0.1/x",
        ] {
            assert!(
                matches!(parse_request_url(refused), Err(CliError::Usage(_))),
                "{refused}"
            );
        }
        assert!(parse_request_url("https://api.example.com/prod/docs").is_ok());
    }

    #[test]
    fn a_cleartext_url_is_a_usage_error_that_says_what_to_do() {
        let err = parse("hosted_ui", "http://auth.example.com").err().unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
        let text = err.to_string();
        assert!(text.contains("hosted_ui"), "{text}");
        assert!(text.contains("https://"), "{text}");
        assert!(text.contains("loopback"), "{text}");
    }

    /// A loopback server whose `/start` redirects (307) to `location`, and
    /// which counts the requests that reach `/landed`.
    async fn redirecting_server(location: impl Fn(u16) -> String) -> (u16, Arc<AtomicUsize>) {
        let landed = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&landed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = location(port);
        let router = axum::Router::new()
            .route(
                "/start",
                axum::routing::post(move || async move {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [(axum::http::header::LOCATION, target)],
                    )
                }),
            )
            .route(
                "/landed",
                axum::routing::post(move || async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    "landed"
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        (port, landed)
    }

    #[tokio::test]
    async fn the_client_never_follows_a_redirect_to_cleartext_off_this_machine() {
        let (port, landed) =
            redirecting_server(|port| format!("http://api.example.com:{port}/landed")).await;
        // The name resolves to the same loopback server, so a followed
        // redirect would be seen (and no traffic leaves the machine).
        let http = builder()
            .resolve("api.example.com", ([127, 0, 0, 1], port).into())
            .build()
            .unwrap();
        let answer = http
            .post(format!("http://127.0.0.1:{port}/start"))
            .body("code=secret")
            .send()
            .await;
        assert!(answer.is_err(), "{answer:?}");
        assert_eq!(landed.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_client_follows_a_redirect_that_stays_on_loopback() {
        let (port, landed) =
            redirecting_server(|port| format!("http://localhost:{port}/landed")).await;
        let answer = client()
            .unwrap()
            .post(format!("http://127.0.0.1:{port}/start"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(landed.load(Ordering::SeqCst), 1);
    }
}
