use crate::domain::ValidationError;

/// What can go wrong in signup, login, refresh and logout.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Wrong email or wrong password: deliberately one error.
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    #[error("the refresh token has expired")]
    RefreshTokenExpired,
    /// A spent refresh token came back: the whole login has been revoked.
    #[error("the refresh token was already used; every token of this login is now revoked")]
    RefreshTokenReused,
    #[error("the account no longer exists")]
    UserGone,
    #[error("this account is disabled")]
    Disabled,
    #[error("a user with this external id already exists")]
    ExternalIdTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was sent")]
    Missing,
    #[error("the bearer token is malformed or its signature is wrong")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error("this login was ended (logout or a reused refresh token)")]
    Revoked,
    #[error("the key does not exist or was revoked")]
    UnknownKey,
    #[error("the key has expired")]
    KeyExpired,
    #[error("this account is disabled")]
    Disabled,
    /// The caller is known but its key's scopes do not reach the route.
    #[error("this needs the {0} scope, which the key does not have")]
    InsufficientScope(&'static str),
    #[error("only a login (or an admin key) may do this, not a key")]
    LoginRequired,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for AccountError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Unexpected(anyhow::Error::new(e).context("database"))
    }
}

impl From<sea_orm::DbErr> for AuthError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Unexpected(anyhow::Error::new(e).context("database"))
    }
}
