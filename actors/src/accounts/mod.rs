//! Accounts: signup, login, refresh-token rotation, logout, and checking the
//! bearer token of every other request.
//!
//! A login creates a *login session*; each refresh spends the presented
//! refresh token and issues the next one in the same session. A spent token
//! that comes back means it was copied: the session is revoked, which ends
//! every refresh token and every access token of that login, unless it comes
//! back within a few seconds while its successor is unused: that is a second
//! tab refreshing at the same moment, and it gets the same new pair.

mod admin;
mod caller;
mod error;
mod oidc;
mod passwords;
mod tokens;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set, SqlErr, TransactionTrait,
};
use stowage_entity::{login_sessions, refresh_tokens, users};
use uuid::Uuid;

pub use admin::{NewUser, UserFilter, UserPatch, external_id};
pub use caller::{Caller, Need, SCOPE_NAMES, Scopes, Via};
pub use error::{AccountError, AuthError};
pub use oidc::{Oidc, OidcConfig, REFETCH_EVERY as OIDC_REFETCH_EVERY};
pub use passwords::PasswordHasher;
pub use tokens::{ACCESS_TOKEN_TTL, Claims, Principal, REFRESH_TOKEN_TTL, TokenKeys};

use crate::domain::{DisplayName, Email, Password};
use crate::metrics::auth_attempt;
use crate::time::now;

/// How long after a rotation a concurrent refresh of the spent token (a
/// second tab) is handed the same new pair instead of revoking the login.
pub const REFRESH_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// What signup, login and refresh hand back.
#[derive(Debug)]
pub struct IssuedSession {
    pub user: users::Model,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// A signup request after parsing.
#[derive(Debug)]
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub display_name: Option<DisplayName>,
}

#[derive(Clone)]
pub struct Accounts {
    db: DatabaseConnection,
    hasher: PasswordHasher,
    keys: TokenKeys,
    /// The quota of a new account, in bytes; `None`: unlimited.
    default_quota: Option<u64>,
}

impl Accounts {
    pub fn new(db: DatabaseConnection, hasher: PasswordHasher, keys: TokenKeys) -> Self {
        Self {
            db,
            hasher,
            keys,
            default_quota: None,
        }
    }

    /// New accounts get this quota (`STOWAGE_DEFAULT_QUOTA`).
    pub fn with_default_quota(mut self, bytes: Option<u64>) -> Self {
        self.default_quota = bytes;
        self
    }

    #[tracing::instrument(skip_all)]
    pub async fn signup(&self, new: NewAccount) -> Result<IssuedSession, AccountError> {
        let result = self.signup_inner(new).await;
        auth_attempt("signup", outcome(&result));
        result
    }

    async fn signup_inner(&self, new: NewAccount) -> Result<IssuedSession, AccountError> {
        let display_name = match new.display_name {
            Some(d) => d.as_str().to_owned(),
            None => DisplayName::parse(new.email.local_part())
                .map(|d| d.as_str().to_owned())
                .unwrap_or_else(|_| new.email.as_str().to_owned()),
        };
        let password_hash = self.hasher.hash(new.password.into_inner()).await?;
        let at = now();
        let user = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(new.email.as_str().to_owned()),
            email_key: Set(new.email.key().to_owned()),
            display_name: Set(display_name),
            password_hash: Set(password_hash),
            quota_bytes: Set(self
                .default_quota
                .map(|q| i64::try_from(q).unwrap_or(i64::MAX))),
            created_at: Set(at),
            updated_at: Set(at),
            disabled_at: Set(None),
            external_id: Set(None),
            identity_issuer: Set(None),
            identity_subject: Set(None),
        };
        let txn = self.db.begin().await?;
        let user = match user.insert(&txn).await {
            Ok(user) => user,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AccountError::EmailTaken);
            }
            Err(e) => return Err(e.into()),
        };
        let refresh_token = start_session(&txn, user.id, at).await?;
        txn.commit().await?;
        self.issue(user, refresh_token.0, refresh_token.1)
    }

    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: String,
    ) -> Result<IssuedSession, AccountError> {
        let result = self.login_inner(email, password).await;
        auth_attempt("login", outcome(&result));
        result
    }

    async fn login_inner(
        &self,
        email: &str,
        password: String,
    ) -> Result<IssuedSession, AccountError> {
        let user = users::Entity::find()
            .filter(users::Column::EmailKey.eq(Email::key_of(email)))
            .one(&self.db)
            .await?;
        // A user without a password (an admin made it) is checked against
        // the decoy, like an unknown address.
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .filter(|h| !h.is_empty());
        let has_password = stored.is_some();
        if !self.hasher.verify(password.clone(), stored).await? || !has_password {
            return Err(AccountError::InvalidCredentials);
        }
        let Some(mut user) = user else {
            return Err(AccountError::InvalidCredentials);
        };
        if user.disabled_at.is_some() {
            return Err(AccountError::Disabled);
        }
        if self.hasher.needs_rehash(&user.password_hash) {
            // The configured cost changed since this password was set.
            let rehashed = self.hasher.hash(password).await?;
            let mut active: users::ActiveModel = user.clone().into();
            active.password_hash = Set(rehashed);
            user = active.update(&self.db).await?;
        }
        let at = now();
        let txn = self.db.begin().await?;
        let (session_id, refresh_token) = start_session(&txn, user.id, at).await?;
        txn.commit().await?;
        self.issue(user, session_id, refresh_token)
    }

    /// Spends a refresh token and issues the next one of the same login.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, presented: &str) -> Result<IssuedSession, AccountError> {
        let result = self.refresh_inner(presented).await;
        auth_attempt("refresh", outcome(&result));
        result
    }

    async fn refresh_inner(&self, presented: &str) -> Result<IssuedSession, AccountError> {
        let hash = tokens::hash_refresh_token(presented);
        let at = now();
        let txn = self.db.begin().await?;
        // Spend first: the guarded UPDATE is what makes two concurrent
        // exchanges of one token impossible (and takes SQLite's write lock
        // up front, so the transaction never has to upgrade a read lock).
        let spent = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::SpentAt, Expr::value(at))
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .filter(refresh_tokens::Column::SpentAt.is_null())
            .filter(refresh_tokens::Column::ExpiresAt.gt(at))
            .exec(&txn)
            .await?;
        if spent.rows_affected != 1 {
            txn.rollback().await?;
            return self.refresh_again_or_refuse(presented, &hash, at).await;
        }
        let token = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .one(&txn)
            .await?
            .context("refresh token vanished inside its transaction")?;
        let session = login_sessions::Entity::find_by_id(token.session_id)
            .one(&txn)
            .await?
            .context("refresh token without a session")?;
        if session.revoked_at.is_some() {
            txn.rollback().await?;
            return Err(AccountError::InvalidRefreshToken);
        }
        let user = users::Entity::find_by_id(session.user_id)
            .one(&txn)
            .await?
            .ok_or(AccountError::UserGone)?;
        let mut active: login_sessions::ActiveModel = session.into();
        active.last_used_at = Set(at);
        let session = active.update(&txn).await?;
        let next = self.keys.successor(presented);
        insert_refresh_token(&txn, session.id, &next, at).await?;
        txn.commit().await?;
        let access_token =
            self.keys
                .issue_for_refresh(user.id, session.id, &next, at.timestamp())?;
        Ok(IssuedSession {
            user,
            access_token,
            refresh_token: next,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
        })
    }

    /// A refresh token that could not be spent: if it was spent within
    /// [`REFRESH_GRACE`] and its successor is still unused, this is a
    /// concurrent refresh (two tabs) and gets the same new pair; otherwise
    /// it is refused, and a spent one revokes its login.
    async fn refresh_again_or_refuse(
        &self,
        presented: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<IssuedSession, AccountError> {
        let Some(token) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await?
        else {
            return Err(AccountError::InvalidRefreshToken);
        };
        let within_grace = token
            .spent_at
            .is_some_and(|spent| at - spent <= REFRESH_GRACE);
        if within_grace && let Some(again) = self.same_pair_again(presented, &token, at).await? {
            return Ok(again);
        }
        Err(self.explain_unspendable(&token, at).await?)
    }

    /// The pair the first refresh of `token` issued, while its refresh token
    /// is unused and its login live.
    async fn same_pair_again(
        &self,
        presented: &str,
        token: &refresh_tokens::Model,
        at: DateTime<Utc>,
    ) -> Result<Option<IssuedSession>, AccountError> {
        let next = self.keys.successor(presented);
        let Some(successor) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(tokens::hash_refresh_token(&next)))
            .filter(refresh_tokens::Column::SessionId.eq(token.session_id))
            .filter(refresh_tokens::Column::SpentAt.is_null())
            .filter(refresh_tokens::Column::ExpiresAt.gt(at))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let Some(session) = login_sessions::Entity::find_by_id(token.session_id)
            .one(&self.db)
            .await?
            .filter(|s| s.revoked_at.is_none())
        else {
            return Ok(None);
        };
        let user = self.user(session.user_id).await?;
        let access_token = self.keys.issue_for_refresh(
            user.id,
            session.id,
            &next,
            successor.created_at.timestamp(),
        )?;
        Ok(Some(IssuedSession {
            user,
            access_token,
            refresh_token: next,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
        }))
    }

    /// Why a refresh token could not be spent; revokes its login on reuse.
    async fn explain_unspendable(
        &self,
        token: &refresh_tokens::Model,
        at: DateTime<Utc>,
    ) -> Result<AccountError, AccountError> {
        if token.spent_at.is_some() {
            revoke_session(&self.db, token.session_id, at, "refresh_token_reuse").await?;
            tracing::warn!(session_id = %token.session_id, "spent refresh token presented again; login revoked");
            return Ok(AccountError::RefreshTokenReused);
        }
        Ok(AccountError::RefreshTokenExpired)
    }

    /// Ends the login that `presented` belongs to, which must be the caller's.
    #[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
    pub async fn logout(&self, principal: Principal, presented: &str) -> Result<(), AccountError> {
        let result = self.logout_inner(principal, presented).await;
        auth_attempt("logout", outcome(&result));
        result
    }

    async fn logout_inner(
        &self,
        principal: Principal,
        presented: &str,
    ) -> Result<(), AccountError> {
        let hash = tokens::hash_refresh_token(presented);
        let Some(token) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(&hash))
            .one(&self.db)
            .await?
        else {
            return Err(AccountError::InvalidRefreshToken);
        };
        let session = login_sessions::Entity::find_by_id(token.session_id)
            .one(&self.db)
            .await?;
        match session {
            Some(s) if s.user_id == principal.user_id => {
                revoke_session(&self.db, s.id, now(), "logout").await?;
                Ok(())
            }
            // Someone else's token: say no more than for an unknown one.
            _ => Err(AccountError::InvalidRefreshToken),
        }
    }

    /// Checks a bearer access token: signature, expiry, and that its login
    /// has not been ended (disabling a user ends every login of theirs).
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller, AuthError> {
        let result = self.authenticate_inner(bearer).await;
        if let Err(e) = &result {
            auth_attempt(
                "access_token",
                match e {
                    AuthError::Unexpected(_) => "error",
                    AuthError::Expired => "expired",
                    AuthError::Revoked | AuthError::Disabled => "revoked",
                    _ => "invalid",
                },
            );
        }
        result.map(|p| Caller {
            user_id: p.user_id,
            via: Via::Session {
                session_id: p.session_id,
            },
        })
    }

    async fn authenticate_inner(&self, bearer: &str) -> Result<Principal, AuthError> {
        let principal = self.keys.verify(bearer)?;
        let session = login_sessions::Entity::find_by_id(principal.session_id)
            .one(&self.db)
            .await?;
        match session {
            Some(s) if s.user_id == principal.user_id && s.revoked_at.is_none() => Ok(principal),
            _ => Err(AuthError::Revoked),
        }
    }

    /// Checks an access token's signature and expiry only, without the
    /// database: for deciding whose budget a request spends (rate limiting)
    /// before the request is authenticated properly.
    pub fn peek(&self, bearer: &str) -> Option<Principal> {
        self.keys.verify(bearer).ok()
    }

    pub async fn user(&self, id: Uuid) -> Result<users::Model, AccountError> {
        users::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(AccountError::UserGone)
    }

    fn issue(
        &self,
        user: users::Model,
        session_id: Uuid,
        refresh_token: String,
    ) -> Result<IssuedSession, AccountError> {
        let access_token = self.keys.issue(user.id, session_id)?;
        Ok(IssuedSession {
            user,
            access_token,
            refresh_token,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
        })
    }
}

/// Opens a login session with its first refresh token.
async fn start_session(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(Uuid, String), AccountError> {
    let session = login_sessions::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        created_at: Set(at),
        last_used_at: Set(at),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
    .insert(txn)
    .await?;
    let (token, _) = tokens::new_refresh_token();
    insert_refresh_token(txn, session.id, &token, at).await?;
    Ok((session.id, token))
}

async fn insert_refresh_token(
    txn: &DatabaseTransaction,
    session_id: Uuid,
    token: &str,
    at: DateTime<Utc>,
) -> Result<(), AccountError> {
    refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        token_hash: Set(tokens::hash_refresh_token(token)),
        created_at: Set(at),
        expires_at: Set(at + REFRESH_TOKEN_TTL),
        spent_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(())
}

async fn revoke_session(
    db: &DatabaseConnection,
    session_id: Uuid,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), AccountError> {
    login_sessions::Entity::update_many()
        .col_expr(login_sessions::Column::RevokedAt, Expr::value(at))
        .col_expr(login_sessions::Column::RevokedReason, Expr::value(reason))
        .filter(login_sessions::Column::Id.eq(session_id))
        .filter(login_sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// The `result` label of an attempt.
fn outcome<T>(result: &Result<T, AccountError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(AccountError::Validation(_)) => "invalid_input",
        Err(AccountError::EmailTaken | AccountError::ExternalIdTaken) => "conflict",
        Err(AccountError::InvalidCredentials | AccountError::InvalidRefreshToken) => "invalid",
        Err(AccountError::RefreshTokenExpired) => "expired",
        Err(AccountError::Disabled) => "disabled",
        Err(AccountError::RefreshTokenReused) => "reused",
        Err(AccountError::UserGone | AccountError::Unexpected(_)) => "error",
    }
}
