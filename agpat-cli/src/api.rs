//! The `/tokens` API over HTTP: bearer authentication, JSON in and out, and
//! every error answer turned into a [`Problem`].

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::error::{CliError, Problem};
use crate::{dpop, transport};

/// A client for one API base URL and one credential.
pub struct Api {
    http: reqwest::Client,
    base: reqwest::Url,
    bearer: SecretString,
    /// The key of a bound token (DPoP): each request then carries
    /// `Authorization: DPoP` and a fresh proof instead of `Bearer`.
    proof_key: Option<shared::dpop::ProofKey>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// The `User-Agent` the API records in a token's recent uses.
pub const USER_AGENT: &str = concat!("agpat-cli/", env!("CARGO_PKG_VERSION"));

impl Api {
    /// A client for `base` (e.g. `https://api.example.com/prod`): `https://`,
    /// or `http://` to a loopback host only (see [`crate::transport`]).
    pub fn new(base: &str, bearer: SecretString) -> Result<Self, CliError> {
        let base = transport::parse("the API URL", base)?;
        let http = transport::client()?;
        Ok(Self {
            http,
            base,
            bearer,
            proof_key: None,
        })
    }

    /// The same client for a bound token: every request signed with `key`.
    pub fn with_proof_key(mut self, key: shared::dpop::ProofKey) -> Self {
        self.proof_key = Some(key);
        self
    }

    /// The URL of `segments` under the base, each segment percent-encoded
    /// (a token id can never add a path level or a query).
    pub fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request; `Ok(None)` for an empty success body (204).
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, CliError> {
        let url = self.url(segments);
        let request = self.http.request(method.clone(), url.clone());
        let mut request = match &self.proof_key {
            None => request.bearer_auth(self.bearer.expose_secret()),
            // The proof names the URL without its query, added below.
            Some(key) => request
                .header(
                    reqwest::header::AUTHORIZATION,
                    dpop::authorization(&self.bearer)?,
                )
                .header("DPoP", dpop::proof(key, &self.bearer, &method, &url)?),
        }
        .header("accept", "application/json, application/problem+json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            CliError::Other(anyhow::anyhow!("cannot reach {}: {}", url, e.without_url()))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            CliError::Other(anyhow::anyhow!("unreadable answer: {}", e.without_url()))
        })?;
        if !status.is_success() {
            return Err(CliError::Api(Problem::from_body(status.as_u16(), &bytes)));
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|_| {
            CliError::Other(anyhow::anyhow!(
                "{url} answered {status} with a body that is not JSON"
            ))
        })
    }

    /// Like [`Api::send`], for answers that must have a body.
    pub async fn json(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        self.send(method, segments, query, body)
            .await?
            .ok_or_else(|| CliError::Other(anyhow::anyhow!("the API answered with no body")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let api = Api::new("http://127.0.0.1:3000/prod/", SecretString::from("x")).unwrap();
        assert_eq!(
            api.url(&["tokens", "../x?y=1#z"]).as_str(),
            "http://127.0.0.1:3000/prod/tokens/..%2Fx%3Fy=1%23z"
        );
        assert_eq!(
            api.url(&["tokens"]).as_str(),
            "http://127.0.0.1:3000/prod/tokens"
        );
        assert!(Api::new("ftp://x", SecretString::from("x")).is_err());
    }

    #[test]
    fn the_api_url_must_be_https_unless_it_is_loopback() {
        let err = Api::new("http://api.example.com/prod", SecretString::from("x"))
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(Api::new("https://api.example.com/prod", SecretString::from("x")).is_ok());
        assert!(Api::new("http://localhost:3000", SecretString::from("x")).is_ok());
        assert!(Api::new("http://[::1]:3000", SecretString::from("x")).is_ok());
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let api = Api::new("http://127.0.0.1:3000", SecretString::from("agpat_secret")).unwrap();
        assert!(!format!("{api:?}").contains("agpat_secret"));
    }
}
