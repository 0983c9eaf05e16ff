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
