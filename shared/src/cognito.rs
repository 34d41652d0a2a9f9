//! Looking a Cognito user up by `sub`, the one way agpat's functions find the
//! user behind a token's owner (offboarding's sweep, the owner emails).

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::UserType;
use thiserror::Error;

use crate::principal::UserId;

/// Why a lookup gave no answer.
#[derive(Debug, Error)]
pub enum LookupError {
    /// Cognito refused or failed the call (only its error code is kept:
    /// messages may name users).
    #[error("cognito ListUsers failed: {0}")]
    Unavailable(String),
    /// Cognito answered about another user (a filter ignored by an emulator
    /// or a proxy): an error, never a verdict about the user asked for.
    #[error("ListUsers answered for another user")]
    WrongUser,
}

/// The user of `pool` whose `sub` is `sub`, if any (`ListUsers` with a
/// `sub` filter: the documented way, as `AdminGetUser` takes a username).
pub async fn user_by_sub(
    client: &Client,
    pool: &str,
    sub: &UserId,
) -> Result<Option<UserType>, LookupError> {
    // A UserId has no quote or backslash, so it is safe in the filter.
    let users = client
        .list_users()
        .user_pool_id(pool)
        .filter(format!("sub = \"{sub}\""))
        .limit(1)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
            LookupError::Unavailable(e.code().unwrap_or("unknown").to_owned())
        })?;
    let Some(user) = users.users().first() else {
        return Ok(None);
    };
    if attribute(user, "sub") != Some(sub.as_str()) {
        return Err(LookupError::WrongUser);
    }
    Ok(Some(user.clone()))
}

/// The value of a user's attribute `name`, if set.
pub fn attribute<'a>(user: &'a UserType, name: &str) -> Option<&'a str> {
    user.attributes()
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value())
}
