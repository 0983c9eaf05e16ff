//! Personal and service keys (`stk_…`).
//!
//! A key is 32 random bytes, shown once at creation. Only an HMAC-SHA256 of
//! it is kept (under a key derived from the server secret; a random key
//! this long needs no slow hash, and a fast one costs nothing per
//! request), with its first characters to tell keys apart. Every request
//! looks its key up, so a deleted key, an expired one or a disabled user
//! is refused from the next request on, on every instance; `last_used_at`
//! is written at most once a minute per key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use stowage_entity::{api_keys, users};
use uuid::Uuid;

use crate::accounts::{AuthError, Caller, Scopes, Via};
use crate::domain::{DisplayName, ValidationError};
use crate::time::now;

/// What every key starts with.
pub const KEY_PREFIX: &str = "stk_";
/// How many characters of a key are kept to tell it apart.
const SHOWN: usize = 12;
/// `last_used_at` is written when it is older than this.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// What went wrong with keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("key {0} does not exist")]
    NotFound(Uuid),
    #[error("user {0} does not exist")]
    UserNotFound(Uuid),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for KeyError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Unexpected(anyhow::Error::new(e).context("database"))
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: DisplayName,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewKey {
    /// Checks the scopes' names and that an expiry lies ahead.
    pub fn parse(
        name: &str,
        scopes: &[String],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Self, ValidationError> {
        let name = DisplayName::parse(name).map_err(|e| ValidationError::new("name", e.message))?;
        let scopes = Scopes::from_names(scopes.iter().map(String::as_str)).map_err(|bad| {
            ValidationError::new(
                "scopes",
                format!("{bad:?} is not a scope; use files:read, files:write or admin"),
            )
        })?;
        if scopes.is_empty() {
            return Err(ValidationError::new("scopes", "name at least one scope"));
        }
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ValidationError::new("expires_at", "must be in the future"));
        }
        Ok(Self {
            name,
            scopes,
            expires_at,
        })
    }
}

/// A key without its secret.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub key: api_keys::Model,
    pub scopes: Scopes,
}

impl From<api_keys::Model> for KeyView {
    fn from(key: api_keys::Model) -> Self {
        let scopes = Scopes::from_names(key.scopes.split_whitespace()).unwrap_or_default();
        Self { key, scopes }
    }
}

#[derive(Clone)]
pub struct Keys {
    db: DatabaseConnection,
    /// Keys the stored hashes; derived from the server secret.
    hash_key: SecretSlice<u8>,
}

type HmacSha256 = Hmac<Sha256>;

impl Keys {
    pub fn new(db: DatabaseConnection, secret: &SecretSlice<u8>) -> Self {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(b"stowage api key v1");
        Self {
            db,
            hash_key: SecretSlice::from(mac.finalize().into_bytes().to_vec()),
        }
    }

    fn hash(&self, key: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.hash_key.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Mints a key for the caller's user (only a login or an admin key may;
    /// only an admin may mint an `admin` key). Returns it with its secret,
    /// which is never shown again.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewKey,
    ) -> Result<(KeyView, String), KeyError> {
        caller.require_login_or_admin()?;
        if new.scopes.admin() && !caller.is_admin() {
            return Err(AuthError::InsufficientScope("admin").into());
        }
        self.insert(&self.db, caller.user_id, new).await
    }

    async fn insert(
        &self,
        db: &impl ConnectionTrait,
        user: Uuid,
        new: NewKey,
    ) -> Result<(KeyView, String), KeyError> {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let key = api_keys::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user),
            name: Set(new.name.as_str().to_owned()),
            prefix: Set(secret[..SHOWN].to_owned()),
            key_hash: Set(self.hash(&secret)),
            scopes: Set(new.scopes.names().join(" ")),
            created_at: Set(now()),
            expires_at: Set(new.expires_at),
            last_used_at: Set(None),
        }
        .insert(db)
        .await?;
        Ok((KeyView::from(key), secret))
    }

    /// The caller's keys, newest first.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<KeyView>, KeyError> {
        caller.require_login_or_admin()?;
        Ok(api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(caller.user_id))
            .order_by_desc(api_keys::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(KeyView::from)
            .collect())
    }

    /// Deletes one of the caller's keys: refused from the next request on.
    pub async fn revoke(&self, caller: &Caller, id: Uuid) -> Result<(), KeyError> {
        caller.require_login_or_admin()?;
        let gone = api_keys::Entity::delete_many()
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::UserId.eq(caller.user_id))
            .exec(&self.db)
            .await?;
        if gone.rows_affected == 0 {
            return Err(KeyError::NotFound(id));
        }
        Ok(())
    }

    /// The caller a key speaks for: unknown, deleted and expired keys and
    /// disabled users are refused.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AuthError> {
        let result = self.authenticate_inner(presented).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(AuthError::KeyExpired) => "expired",
            Err(AuthError::Disabled) => "revoked",
            Err(AuthError::Unexpected(_)) => "error",
            Err(_) => "invalid",
        };
        crate::metrics::auth_attempt("api_key", outcome);
        result
    }

    async fn authenticate_inner(&self, presented: &str) -> Result<Caller, AuthError> {
        let (key, user) = api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(self.hash(presented)))
            .find_also_related(users::Entity)
            .one(&self.db)
            .await?
            .ok_or(AuthError::UnknownKey)?;
        let user = user.ok_or(AuthError::UnknownKey)?;
        let at = now();
        if key.expires_at.is_some_and(|e| e <= at) {
            return Err(AuthError::KeyExpired);
        }
        if user.disabled_at.is_some() {
            return Err(AuthError::Disabled);
        }
        let stale = key
            .last_used_at
            .is_none_or(|t| (at - t).to_std().unwrap_or_default() >= LAST_USED_EVERY);
        if stale {
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
                .filter(api_keys::Column::Id.eq(key.id))
                .exec(&self.db)
                .await?;
        }
        let scopes = KeyView::from(key.clone()).scopes;
        Ok(Caller {
            user_id: key.user_id,
            via: Via::Key {
                key_id: key.id,
                scopes,
                holder: key.user_id,
            },
        })
    }

    /// An admin key's request acting for `user` (`Stowage-On-Behalf-Of`):
    /// the same key, now acting as that user, who must exist and not be
    /// disabled.
    pub async fn on_behalf_of(&self, caller: Caller, user: Uuid) -> Result<Caller, KeyError> {
        caller.require(crate::accounts::Need::Admin)?;
        let target = users::Entity::find_by_id(user)
            .one(&self.db)
            .await?
            .ok_or(KeyError::UserNotFound(user))?;
        if target.disabled_at.is_some() {
            return Err(AuthError::Disabled.into());
        }
        Ok(Caller {
            user_id: target.id,
            via: caller.via,
        })
    }

    /// `stowage admin create-key`: a service user named `name` and an
    /// `admin` key for it, whose secret is returned (and shown once).
    pub async fn create_service_key(&self, name: &str) -> Result<(KeyView, String), KeyError> {
        let name = DisplayName::parse(name).map_err(|e| ValidationError::new("name", e.message))?;
        let id = Uuid::now_v7();
        let at = now();
        let txn = self.db.begin().await?;
        users::ActiveModel {
            id: Set(id),
            email: Set(String::new()),
            email_key: Set(format!("user:{id}")),
            display_name: Set(name.as_str().to_owned()),
            password_hash: Set(String::new()),
            quota_bytes: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            disabled_at: Set(None),
            external_id: Set(None),
            identity_issuer: Set(None),
            identity_subject: Set(None),
        }
        .insert(&txn)
        .await?;
        let new = NewKey {
            name,
            scopes: Scopes::ADMIN,
            expires_at: None,
        };
        let created = self.insert(&txn, id, new).await?;
        txn.commit().await?;
        Ok(created)
    }
}
