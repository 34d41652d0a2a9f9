//! Cognito through the AWS SDK: password sign-in (`USER_PASSWORD_AUTH`),
//! refresh (`REFRESH_TOKEN_AUTH`) and refresh-token revocation. These calls are
//! unauthenticated on AWS (a public app client), so no AWS credentials are used.

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Region};
use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_cognitoidentityprovider::types::AuthFlowType;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::credentials::Session;
use crate::error::CliError;

/// Where the user pool's app client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoTarget {
    /// App client id.
    pub client_id: String,
    /// Region.
    pub region: String,
    /// Endpoint override (moto); `None` for AWS.
    pub endpoint: Option<String>,
}

impl CognitoTarget {
    /// The SDK client; an endpoint override must be `https://` or loopback,
    /// since passwords and refresh tokens go there.
    fn client(&self) -> Result<Client, CliError> {
        let mut conf = aws_sdk_cognitoidentityprovider::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()));
        if let Some(endpoint) = &self.endpoint {
            crate::transport::parse("the Cognito endpoint", endpoint)?;
            conf = conf.endpoint_url(endpoint);
        }
        Ok(Client::from_conf(conf.build()))
    }
}

/// Tokens Cognito hands out.
pub struct Tokens {
    /// Access token.
    pub access_token: SecretString,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// Refresh token (absent on a refresh).
    pub refresh_token: Option<SecretString>,
}

fn sdk_error<E>(what: &str, err: aws_sdk_cognitoidentityprovider::error::SdkError<E>) -> CliError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error().and_then(|e| e.code()) {
        Some(code @ ("NotAuthorizedException" | "UserNotFoundException")) => {
            let message = err
                .as_service_error()
                .and_then(|e| e.message())
                .unwrap_or("not authorized");
            CliError::SignIn(format!("{what} refused ({code}): {message}"))
        }
        _ => CliError::Other(anyhow::anyhow!(
            "{what} failed: {}",
            DisplayErrorContext(&err)
        )),
    }
}

/// `USER_PASSWORD_AUTH`.
pub async fn password_login(
    target: &CognitoTarget,
    username: &str,
    password: &SecretString,
) -> Result<Tokens, CliError> {
    let out = target
        .client()?
        .initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(&target.client_id)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password.expose_secret())
        .send()
        .await
        .map_err(|e| sdk_error("sign-in", e))?;
    if let Some(challenge) = out.challenge_name() {
        return Err(CliError::SignIn(format!(
            "Cognito asks for the {challenge} challenge, which this CLI does not answer: \
             use `agpat login --web`"
        )));
    }
    let result = out
        .authentication_result()
        .ok_or_else(|| CliError::SignIn("Cognito returned no tokens".into()))?;
    Ok(Tokens {
        access_token: SecretString::from(
            result
                .access_token()
                .ok_or_else(|| CliError::SignIn("Cognito returned no access token".into()))?,
        ),
        expires_in: i64::from(result.expires_in()),
        refresh_token: result.refresh_token().map(SecretString::from),
    })
}

/// `REFRESH_TOKEN_AUTH`: a fresh access token for the session.
pub async fn refresh(session: &Session) -> Result<Tokens, CliError> {
    let refresh_token = session.refresh_token.as_ref().ok_or_else(|| {
        CliError::NotLoggedIn("the session has expired: run `agpat login`".into())
    })?;
    let target = CognitoTarget {
        client_id: session.client_id.clone(),
        region: session.region.clone(),
        endpoint: session.cognito_endpoint.clone(),
    };
    let out = target
        .client()?
        .initiate_auth()
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .client_id(&target.client_id)
        .auth_parameters("REFRESH_TOKEN", refresh_token.expose_secret())
        .send()
        .await
        .map_err(|e| match sdk_error("session refresh", e) {
            CliError::SignIn(m) => CliError::NotLoggedIn(format!("{m}; run `agpat login`")),
            other => other,
        })?;
    let result = out.authentication_result().ok_or_else(|| {
        CliError::NotLoggedIn("Cognito returned no tokens: run `agpat login`".into())
    })?;
    Ok(Tokens {
        access_token: SecretString::from(result.access_token().ok_or_else(|| {
            CliError::NotLoggedIn("Cognito returned no access token: run `agpat login`".into())
        })?),
        expires_in: i64::from(result.expires_in()),
        refresh_token: result.refresh_token().map(SecretString::from),
    })
}

/// Revokes the session's refresh token at Cognito (best effort at logout).
pub async fn revoke(session: &Session) -> Result<(), CliError> {
    let Some(refresh_token) = &session.refresh_token else {
        return Ok(());
    };
    let target = CognitoTarget {
        client_id: session.client_id.clone(),
        region: session.region.clone(),
        endpoint: session.cognito_endpoint.clone(),
    };
    target
        .client()?
        .revoke_token()
        .client_id(&target.client_id)
        .token(refresh_token.expose_secret())
        .send()
        .await
        .map_err(|e| sdk_error("refresh-token revocation", e))?;
    Ok(())
}

/// The claims `whoami` shows, read from a JWT's payload. The signature is not
/// checked here: the API checks it; this is only for display.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Claims {
    /// Subject (user id).
    #[serde(default)]
    pub sub: Option<String>,
    /// Cognito username (access tokens).
    #[serde(default)]
    pub username: Option<String>,
    /// App client (access tokens).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Issuer (the user pool).
    #[serde(default)]
    pub iss: Option<String>,
    /// Expiry (Unix seconds).
    #[serde(default)]
    pub exp: Option<i64>,
    /// Space-separated OAuth scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// Groups.
    #[serde(default, rename = "cognito:groups")]
    pub groups: Option<Vec<String>>,
}

/// Decodes a JWT's payload (no verification: display only).
pub fn claims(jwt: &str) -> Option<Claims> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cognito_endpoint_must_be_https_unless_it_is_loopback() {
        let target = |endpoint: Option<&str>| CognitoTarget {
            client_id: "cid".into(),
            region: "us-east-1".into(),
            endpoint: endpoint.map(str::to_owned),
        };
        let err = target(Some("http://cognito.example.com"))
            .client()
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{err}");
        assert!(err.to_string().contains("https://"), "{err}");
        for ok in [
            None,
            Some("https://cognito-idp.eu-west-1.amazonaws.com"),
            Some("http://127.0.0.1:4566"),
            Some("http://localhost:4566"),
        ] {
            assert!(target(ok).client().is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            br#"{"sub":"u-1","username":"demo","exp":1900000000,"cognito:groups":["ops"]}"#,
        );
        let c = claims(&format!("e30.{payload}.sig")).unwrap();
        assert_eq!(c.username.as_deref(), Some("demo"));
        assert_eq!(c.exp, Some(1_900_000_000));
        assert_eq!(c.groups, Some(vec!["ops".to_owned()]));
        assert!(claims("not-a-jwt").is_none());
    }
}
