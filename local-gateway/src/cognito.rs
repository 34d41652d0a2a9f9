//! Cognito on moto for `make dev` and the end-to-end tests: a user pool with a
//! public client, confirmed users, and password sign-in, through the AWS SDK.

use anyhow::Context;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cognitoidentityprovider::error::DisplayErrorContext;
use aws_sdk_cognitoidentityprovider::types::{
    AuthFlowType, ExplicitAuthFlowsType, MessageActionType, PasswordPolicyType, UserPoolPolicyType,
};

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

/// A client for the local endpoint. The admin calls are signed with the
/// environment's keys (moto accepts any), never a credential chain that could
/// reach beyond loopback.
fn client(endpoint: &str, region: &str) -> Client {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
        var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
        None,
        None,
        "local-gateway",
    );
    let conf = aws_sdk_cognitoidentityprovider::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(conf)
}

/// Creates a pool with a strong password policy and a public client that
/// allows `USER_PASSWORD_AUTH`.
pub async fn create_pool(endpoint: &str, region: &str, name: &str) -> anyhow::Result<Pool> {
    let cognito = client(endpoint, region);
    let policy = PasswordPolicyType::builder()
        .minimum_length(12)
        .require_uppercase(true)
        .require_lowercase(true)
        .require_numbers(true)
        .require_symbols(true)
        .build();
    let pool = cognito
        .create_user_pool()
        .pool_name(name)
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(policy)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("Cognito CreateUserPool failed: {}", DisplayErrorContext(&e))
        })?;
    let pool_id = pool
        .user_pool()
        .and_then(|p| p.id())
        .context("no pool id")?
        .to_owned();
    let app = cognito
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("agpat-local")
        .generate_secret(false)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Cognito CreateUserPoolClient failed: {}",
                DisplayErrorContext(&e)
            )
        })?;
    let client_id = app
        .user_pool_client()
        .and_then(|c| c.client_id())
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
    let cognito = client(&pool.endpoint, &pool.region);
    cognito
        .admin_create_user()
        .user_pool_id(&pool.pool_id)
        .username(username)
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Cognito AdminCreateUser failed: {}",
                DisplayErrorContext(&e)
            )
        })?;
    cognito
        .admin_set_user_password()
        .user_pool_id(&pool.pool_id)
        .username(username)
        .password(password)
        .permanent(true)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Cognito AdminSetUserPassword failed: {}",
                DisplayErrorContext(&e)
            )
        })?;
    Ok(())
}

/// Logs in with `USER_PASSWORD_AUTH`; returns the access token.
pub async fn login(pool: &Pool, username: &str, password: &str) -> anyhow::Result<String> {
    let auth = client(&pool.endpoint, &pool.region)
        .initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(&pool.client_id)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("Cognito InitiateAuth failed: {}", DisplayErrorContext(&e)))?;
    Ok(auth
        .authentication_result()
        .and_then(|r| r.access_token())
        .context("no access token")?
        .to_owned())
}

/// Puts a user in a group, creating the group first if the pool lacks it
/// (`make dev` puts its administrator in `agpat-admins` this way).
pub async fn add_to_group(pool: &Pool, username: &str, group: &str) -> anyhow::Result<()> {
    let cognito = client(&pool.endpoint, &pool.region);
    let exists = cognito
        .get_group()
        .user_pool_id(&pool.pool_id)
        .group_name(group)
        .send()
        .await
        .is_ok();
    if !exists {
        cognito
            .create_group()
            .user_pool_id(&pool.pool_id)
            .group_name(group)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("Cognito CreateGroup failed: {}", DisplayErrorContext(&e))
            })?;
    }
    cognito
        .admin_add_user_to_group()
        .user_pool_id(&pool.pool_id)
        .username(username)
        .group_name(group)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "Cognito AdminAddUserToGroup failed: {}",
                DisplayErrorContext(&e)
            )
        })?;
    Ok(())
}
