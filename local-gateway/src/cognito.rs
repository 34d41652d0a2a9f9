//! Just enough of the Cognito Identity Provider JSON API to set up a local
//! user pool on moto and log in (for `make dev` and the end-to-end tests).

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A user pool with one public app client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    /// Cognito endpoint (moto).
    pub endpoint: String,
    /// Region of the pool.
    pub region: String,
    /// User pool id.
    pub pool_id: String,
    /// App client id (no secret).
    pub client_id: String,
}

impl Pool {
    /// The issuer tokens of this pool carry (as on AWS).
    pub fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region, self.pool_id
        )
    }

    /// Where moto serves the pool's JWKS.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/.well-known/jwks.json",
            self.endpoint.trim_end_matches('/'),
            self.pool_id
        )
    }
}

async fn call(endpoint: &str, region: &str, target: &str, body: Value) -> anyhow::Result<Value> {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{target}"))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=local/20260101/{region}/cognito-idp/aws4_request, SignedHeaders=host, Signature=00"
            ),
        )
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("Cognito {target} failed to send"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("Cognito response unreadable")?;
    if !status.is_success() {
        bail!("Cognito {target} answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a pool with a strong password policy and a public client that
/// allows `USER_PASSWORD_AUTH`.
pub async fn create_pool(endpoint: &str, region: &str, name: &str) -> anyhow::Result<Pool> {
    let pool = call(
        endpoint,
        region,
        "CreateUserPool",
        json!({"PoolName": name, "Policies": {"PasswordPolicy": {"MinimumLength": 12, "RequireUppercase": true,
            "RequireLowercase": true, "RequireNumbers": true, "RequireSymbols": true}}}),
    )
    .await?;
    let pool_id = pool
        .pointer("/UserPool/Id")
        .and_then(Value::as_str)
        .context("no pool id")?
        .to_owned();
    let client = call(
        endpoint,
        region,
        "CreateUserPoolClient",
        json!({"UserPoolId": pool_id, "ClientName": "agpat-local", "GenerateSecret": false,
            "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await?;
    let client_id = client
        .pointer("/UserPoolClient/ClientId")
        .and_then(Value::as_str)
        .context("no client id")?
        .to_owned();
    Ok(Pool {
        endpoint: endpoint.to_owned(),
        region: region.to_owned(),
        pool_id,
        client_id,
    })
}

/// Creates a confirmed user with a permanent password.
pub async fn create_user(pool: &Pool, username: &str, password: &str) -> anyhow::Result<()> {
    call(
        &pool.endpoint,
        &pool.region,
        "AdminCreateUser",
        json!({"UserPoolId": pool.pool_id, "Username": username, "MessageAction": "SUPPRESS"}),
    )
    .await?;
    call(
        &pool.endpoint,
        &pool.region,
        "AdminSetUserPassword",
        json!({"UserPoolId": pool.pool_id, "Username": username, "Password": password, "Permanent": true}),
    )
    .await?;
    Ok(())
}

/// Logs in with `USER_PASSWORD_AUTH`; returns the access token.
pub async fn login(pool: &Pool, username: &str, password: &str) -> anyhow::Result<String> {
    let auth = call(
        &pool.endpoint,
        &pool.region,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": pool.client_id,
            "AuthParameters": {"USERNAME": username, "PASSWORD": password}}),
    )
    .await?;
    Ok(auth
        .pointer("/AuthenticationResult/AccessToken")
        .and_then(Value::as_str)
        .context("no access token")?
        .to_owned())
}
