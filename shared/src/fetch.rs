//! Bounded HTTP GETs of small public documents the Lambdas trust only after
//! checking them (Cognito's JWKS, the secret-scanning partner keys): one
//! whole-request timeout, no redirects (the configured URL is the only
//! source), and a size cap enforced while reading, so a slow or huge answer
//! costs a bounded amount of time and memory.

use std::time::Duration;

use thiserror::Error;

/// Why a document could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchError {
    /// Network failure, timeout, redirect or non-2xx status. The text names
    /// the cause, never the URL's query.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The body exceeded the cap.
    #[error("document too large")]
    TooLarge,
}

/// The `User-Agent` of every fetch: some sources (GitHub's API) refuse
/// requests without one.
pub const USER_AGENT: &str = concat!("agpat/", env!("CARGO_PKG_VERSION"));

/// A GET of one URL with a timeout, a size cap and no redirects.
#[derive(Debug, Clone)]
pub struct BoundedGet {
    client: reqwest::Client,
    url: String,
    max_bytes: usize,
}

impl BoundedGet {
    /// A fetcher for `url` that gives up after `timeout` (connecting within
    /// at most a second of it) and refuses bodies over `max_bytes`.
    ///
    /// # Errors
    /// If the HTTP client cannot be built (TLS initialisation).
    pub fn new(url: String, timeout: Duration, max_bytes: usize) -> Result<Self, FetchError> {
        Self::trusting(url, timeout, max_bytes, None)
    }

    /// As [`BoundedGet::new`], trusting only the certificates of
    /// `roots_pem` (a PEM bundle) when given, else the platform's store.
    ///
    /// # Errors
    /// If the HTTP client cannot be built, or the bundle holds no certificate.
    pub fn trusting(
        url: String,
        timeout: Duration,
        max_bytes: usize,
        roots_pem: Option<&str>,
    ) -> Result<Self, FetchError> {
        // GitHub's API refuses requests without a User-Agent (403).
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = roots_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| FetchError::Unavailable(e.to_string()))?;
            if roots.is_empty() {
                return Err(FetchError::Unavailable("no root certificate".into()));
            }
            builder = builder.tls_certs_only(roots);
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Unavailable(e.to_string()))?;
        Ok(Self {
            client,
            url,
            max_bytes,
        })
    }

    /// The URL fetched.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the body.
    ///
    /// # Errors
    /// [`FetchError::Unavailable`] on any transport failure or a non-2xx
    /// status (a redirect included), [`FetchError::TooLarge`] as soon as the
    /// announced or received length passes the cap.
    pub async fn fetch(&self) -> Result<Vec<u8>, FetchError> {
        let mut response = self
            .client
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Unavailable(with_causes(&e.without_url())))?;
        if !response.status().is_success() {
            return Err(FetchError::Unavailable(format!(
                "status {}",
                response.status()
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Unavailable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// An error and its causes, `: `-separated and capped at 300 characters: a
/// TLS failure then names itself ("invalid peer certificate: UnknownIssuer")
/// instead of "error sending request". Causes carry no request contents.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text.chars().take(300).collect()
}
