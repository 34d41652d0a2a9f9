//! `agpat login --web`: the hosted UI's authorization-code flow with PKCE
//! (RFC 7636, S256) and a loopback redirect (RFC 8252), as `gh auth login --web`.
//!
//! The verifier and `state` come from the OS CSPRNG. The redirect listener
//! binds 127.0.0.1 only, yet the `redirect_uri` names `localhost`: Cognito
//! accepts an `http` callback URL only for `http://localhost` (registered with
//! its port). It answers only `/callback`, and only a redirect carrying the
//! `state` it sent counts: any other (a local process or a web page that found
//! the port) gets a 400 and the wait goes on, so it can neither inject text nor
//! end the sign-in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::auth::Tokens;
use crate::error::CliError;

/// The path the hosted UI redirects to.
pub const CALLBACK_PATH: &str = "/callback";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `BASE64URL(SHA256(verifier))`, the S256 code challenge.
pub fn challenge(verifier: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// One sign-in attempt's secrets.
pub struct Pkce {
    /// The code verifier (43 characters from 32 random bytes).
    pub verifier: SecretString,
    /// The anti-CSRF `state`.
    pub state: String,
}

impl Pkce {
    /// Fresh values from the OS CSPRNG.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            verifier: SecretString::from(b64(&crate::random::os_random::<32>()?)),
            state: b64(&crate::random::os_random::<16>()?),
        })
    }

    /// The hosted UI's `/oauth2/authorize` URL for this attempt.
    pub fn authorize_url(
        &self,
        hosted_ui: &str,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
    ) -> Result<String, CliError> {
        let base = crate::transport::parse("hosted_ui", hosted_ui)?;
        let mut url = reqwest::Url::parse(&format!(
            "{}/oauth2/authorize",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| CliError::Usage(format!("hosted_ui is not a URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &self.state)
            .append_pair("code_challenge_method", "S256")
            .append_pair("code_challenge", &challenge(self.verifier.expose_secret()));
        Ok(url.into())
    }
}

type Outcome = Result<SecretString, String>;

#[derive(Clone)]
struct Shared {
    state: Arc<str>,
    done: Arc<Mutex<Option<oneshot::Sender<Outcome>>>>,
}

impl Shared {
    fn finish(&self, outcome: Outcome) {
        if let Some(tx) = self.done.lock().ok().and_then(|mut d| d.take()) {
            let _ = tx.send(outcome);
        }
    }
}

/// Whether `received` is this sign-in's `state`, compared in constant time: a
/// forged redirect no longer ends the wait, so one could try many guesses.
fn state_matches(received: Option<&String>, expected: &str) -> bool {
    received.is_some_and(|r| {
        aws_lc_rs::constant_time::verify_slices_are_equal(r.as_bytes(), expected.as_bytes()).is_ok()
    })
}

async fn callback(
    State(shared): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    // Nothing in a redirect is read before its state matches: anyone on this
    // machine can reach the port. Such a request is answered and forgotten.
    if !state_matches(params.get("state"), &shared.state) {
        return (
            StatusCode::BAD_REQUEST,
            Html(
                "<!doctype html><title>agpat</title><p>This is not the sign-in agpat is waiting for.</p>",
            ),
        );
    }
    let outcome = if let Some(error) = params.get("error") {
        // Shown through `CliError`'s escaping: the hosted UI's words, not ours.
        let description = params
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        Err(format!(
            "the hosted UI refused the sign-in ({error}{description})"
        ))
    } else if let Some(code) = params.get("code").filter(|c| !c.is_empty()) {
        Ok(SecretString::from(code.clone()))
    } else {
        Err("the redirect carries no code".to_owned())
    };
    let page = match &outcome {
        Ok(_) => (
            StatusCode::OK,
            Html("<!doctype html><title>agpat</title><p>Signed in. You can close this tab.</p>"),
        ),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Html("<!doctype html><title>agpat</title><p>Sign-in failed: see the terminal.</p>"),
        ),
    };
    shared.finish(outcome);
    page
}

/// The loopback listener that receives the authorization code.
pub struct CallbackListener {
    listener: tokio::net::TcpListener,
    redirect_uri: String,
}

impl CallbackListener {
    /// Binds 127.0.0.1 (never a wildcard address) on `port` (0: any free
    /// port); the redirect URI is `http://localhost:<port>/callback`, the only
    /// `http` form Cognito accepts.
    pub async fn bind(port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        let redirect_uri = format!(
            "http://localhost:{}{CALLBACK_PATH}",
            listener.local_addr()?.port()
        );
        Ok(Self {
            listener,
            redirect_uri,
        })
    }

    /// The `redirect_uri` to send.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Serves until a redirect to `/callback` with this sign-in's `state`
    /// arrives, or `timeout` passes, then returns its code (or the error it
    /// carries). Any other path is a 404, a redirect with another or no
    /// `state` a 400; neither ends the wait.
    pub async fn wait(self, state: &str, timeout: Duration) -> Result<SecretString, CliError> {
        let (tx, rx) = oneshot::channel();
        let shared = Shared {
            state: Arc::from(state),
            done: Arc::new(Mutex::new(Some(tx))),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let router = axum::Router::new()
            .route(CALLBACK_PATH, axum::routing::get(callback))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
            .with_state(shared);
        let listener = self.listener;
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        let outcome = tokio::time::timeout(timeout, rx).await;
        let _ = stop_tx.send(());
        // Let the browser receive its page, but never hang on a kept-alive connection.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        match outcome {
            Err(_) => Err(CliError::SignIn(format!(
                "no redirect within {} s: sign-in abandoned",
                timeout.as_secs()
            ))),
            Ok(Err(_)) => Err(CliError::SignIn("the redirect listener stopped".into())),
            Ok(Ok(Err(message))) => Err(CliError::SignIn(message)),
            Ok(Ok(Ok(code))) => Ok(code),
        }
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

#[derive(serde::Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Exchanges the code at the hosted UI's `/oauth2/token` (`https://`, or
/// `http://` to a loopback host only: the code and verifier go there).
pub async fn exchange(
    http: &reqwest::Client,
    hosted_ui: &str,
    client_id: &str,
    redirect_uri: &str,
    code: &SecretString,
    verifier: &SecretString,
) -> Result<Tokens, CliError> {
    let base = crate::transport::parse("hosted_ui", hosted_ui)?;
    let url = format!("{}/oauth2/token", base.as_str().trim_end_matches('/'));
    let response = http
        .post(&url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.expose_secret()),
        ])
        .send()
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot reach {url}: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("unreadable answer from {url}: {e}")))?;
    if !status.is_success() {
        let reason = serde_json::from_slice::<TokenError>(&body)
            .map(|e| match e.error_description {
                Some(d) => format!("{}: {d}", e.error),
                None => e.error,
            })
            .unwrap_or_else(|_| status.to_string());
        return Err(CliError::SignIn(format!(
            "the code exchange was refused ({reason})"
        )));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|_| CliError::Other(anyhow::anyhow!("{url} answered without an access token")))?;
    Ok(Tokens {
        access_token: SecretString::from(answer.access_token),
        expires_in: answer.expires_in.unwrap_or(3600),
        refresh_token: answer.refresh_token.map(SecretString::from),
    })
}

/// Opens `url` in the default browser (best effort; the URL is printed anyway).
pub fn open_browser(url: &str) -> bool {
    let mut command = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    command
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn each_attempt_has_fresh_unreserved_values_and_an_s256_url() {
        let a = Pkce::new().unwrap();
        let b = Pkce::new().unwrap();
        assert_ne!(a.verifier.expose_secret(), b.verifier.expose_secret());
        assert_ne!(a.state, b.state);
        let v = a.verifier.expose_secret();
        assert_eq!(v.len(), 43);
        assert!(
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        );
        let url = a
            .authorize_url(
                "https://auth.example.com/",
                "cid",
                "http://localhost:5/callback",
                "openid",
            )
            .unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/oauth2/authorize");
        let q: HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge"], challenge(v));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], a.state);
        assert_eq!(q["redirect_uri"], "http://localhost:5/callback");
        assert!(!url.contains(v), "the verifier never leaves the machine");
    }

    async fn redirect(query: &str) -> (Result<SecretString, CliError>, Vec<(String, u16)>) {
        redirect_after(&[], query).await
    }

    /// Sends requests to `paths` first, then the redirect with `query`.
    async fn redirect_after(
        paths: &[&str],
        query: &str,
    ) -> (Result<SecretString, CliError>, Vec<(String, u16)>) {
        let final_path = format!("{CALLBACK_PATH}?{query}");
        let all: Vec<&str> = paths.iter().copied().chain([&*final_path]).collect();
        requests_then_wait(&all, Duration::from_secs(10)).await
    }

    /// Sends requests to `paths` while the listener waits up to `timeout`.
    async fn requests_then_wait(
        paths: &[&str],
        timeout: Duration,
    ) -> (Result<SecretString, CliError>, Vec<(String, u16)>) {
        let listener = CallbackListener::bind(0).await.unwrap();
        let base = listener
            .redirect_uri()
            .trim_end_matches(CALLBACK_PATH)
            .to_owned();
        let waiting = tokio::spawn(listener.wait("expected-state", timeout));
        let http = reqwest::Client::new();
        let mut seen = Vec::new();
        for &path in paths {
            let status = http
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status();
            seen.push((path.to_owned(), status.as_u16()));
        }
        (waiting.await.unwrap(), seen)
    }

    #[tokio::test]
    async fn the_code_with_the_right_state_is_accepted() {
        let (code, seen) = redirect("code=abc&state=expected-state").await;
        assert_eq!(code.unwrap().expose_secret(), "abc");
        assert_eq!(seen.last().unwrap().1, 200);
    }

    /// An OSC 52 (clipboard write) sequence, percent-encoded for a query.
    const OSC52: &str = "%1B%5D52%3Bc%3BZXZpbA%3D%3D%07";

    #[tokio::test]
    async fn a_redirect_without_the_right_state_is_answered_400_and_ignored() {
        let forged = [
            "/callback?code=evil&state=forged".to_owned(),
            "/callback?code=evil".to_owned(),
            format!("/callback?error=access_denied&error_description={OSC52}"),
            format!("/callback?error=x&error_description={OSC52}&state=forged"),
            "/callback?error=x&state=expected-state-but-longer".to_owned(),
        ];
        let forged: Vec<&str> = forged.iter().map(String::as_str).collect();
        let (code, seen) = redirect_after(&forged, "code=good&state=expected-state").await;
        assert_eq!(
            seen.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [400, 400, 400, 400, 400, 200],
            "{seen:?}"
        );
        assert_eq!(code.unwrap().expose_secret(), "good");
    }

    #[tokio::test]
    async fn forged_redirects_alone_never_end_the_wait_before_the_timeout() {
        let forged = format!("/callback?error=access_denied&error_description={OSC52}");
        let started = std::time::Instant::now();
        let (code, seen) = requests_then_wait(&[&forged], Duration::from_secs(1)).await;
        assert_eq!(seen[0].1, 400);
        let err = code.err().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(err.to_string().contains("no redirect within 1 s"), "{err}");
        assert!(!err.to_string().contains("access_denied"), "{err}");
    }

    #[tokio::test]
    async fn an_error_with_the_right_state_ends_the_sign_in_with_its_reason_escaped() {
        let (code, seen) = redirect(&format!(
            "error=access_denied&error_description={OSC52}&state=expected-state"
        ))
        .await;
        assert_eq!(seen.last().unwrap().1, 400);
        let err = code.err().unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::UNAUTHENTICATED);
        let shown = err.render();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(
            shown.contains("access_denied: \\u{1b}]52;c;ZXZpbA==\\u{7}"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn the_redirect_uri_names_localhost_and_the_listener_binds_127_0_0_1_only() {
        let listener = CallbackListener::bind(0).await.unwrap();
        let addr = listener.listener.local_addr().unwrap();
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(
            listener.redirect_uri(),
            format!("http://localhost:{}/callback", addr.port())
        );
    }

    /// A stand-in `/oauth2/token` that refuses every code with `body`.
    async fn refusing_token_endpoint(body: serde_json::Value) -> String {
        let router = axum::Router::new().route(
            "/oauth2/token",
            axum::routing::post(move || async move {
                (StatusCode::BAD_REQUEST, axum::Json(body.clone()))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        base
    }

    #[tokio::test]
    async fn a_refused_code_exchange_shows_the_servers_reason_escaped() {
        let base = refusing_token_endpoint(serde_json::json!({
            "error": "invalid_grant",
            "error_description": "\u{1b}]52;c;ZXZpbA==\u{7}"
        }))
        .await;
        let err = exchange(
            &reqwest::Client::new(),
            &base,
            "cid",
            "http://localhost:1/callback",
            &SecretString::from("code"),
            &SecretString::from("verifier"),
        )
        .await
        .err()
        .unwrap();
        let shown = err.render();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("invalid_grant: \\u{1b}]52;c;"), "{shown}");
    }

    #[test]
    fn the_authorize_url_refuses_a_cleartext_hosted_ui() {
        let pkce = Pkce::new().unwrap();
        let err = pkce
            .authorize_url(
                "http://auth.example.com",
                "cid",
                "http://localhost:5/callback",
                "openid",
            )
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(
            pkce.authorize_url(
                "http://localhost:9",
                "cid",
                "http://localhost:5/callback",
                "openid"
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn the_code_exchange_refuses_a_cleartext_hosted_ui_before_sending() {
        // Even if the name resolved (here: to loopback, where nothing listens), the
        // code and verifier are never sent over http to a non-loopback host.
        let http = reqwest::Client::builder()
            .resolve("auth.example.com", ([127, 0, 0, 1], 1).into())
            .build()
            .unwrap();
        let err = exchange(
            &http,
            "http://auth.example.com",
            "cid",
            "http://localhost:5/callback",
            &SecretString::from("code"),
            &SecretString::from("verifier"),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
    }

    #[tokio::test]
    async fn an_error_in_the_redirect_is_refused() {
        let (code, _) =
            redirect("error=access_denied&error_description=user+cancelled&state=expected-state")
                .await;
        let err = code.err().unwrap().to_string();
        assert!(err.contains("access_denied: user cancelled"), "{err}");
    }

    #[tokio::test]
    async fn only_the_callback_path_is_answered() {
        let (code, seen) = redirect_after(
            &[
                "/",
                "/callback/x?code=evil&state=expected-state",
                "/favicon.ico",
            ],
            "code=good&state=expected-state",
        )
        .await;
        assert_eq!(
            seen.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [404, 404, 404, 200]
        );
        assert_eq!(code.unwrap().expose_secret(), "good");
    }
}
