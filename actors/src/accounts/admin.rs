//! What an admin does with users: create them for a product's own users
//! (no password; an email, an external id, or neither), find them, set
//! their quota, disable them. A disabled user is refused everywhere at
//! once: every login of theirs is ended in the same transaction, and their
//! keys are checked against it on every request.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
    TransactionTrait,
};
use stowage_entity::{login_sessions, users};
use uuid::Uuid;

use super::{AccountError, Accounts};
use crate::domain::{DisplayName, Email, ValidationError};
use crate::time::now;

/// The longest external id.
pub const MAX_EXTERNAL_ID: usize = 255;

/// A user an admin creates.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub email: Option<Email>,
    pub external_id: Option<String>,
    pub display_name: Option<DisplayName>,
    /// `None`: the default quota; `Some(None)`: unlimited.
    pub quota_bytes: Option<Option<u64>>,
}

/// How an admin looks users up (both given: both must match).
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub email: Option<String>,
    pub external_id: Option<String>,
}

/// What an admin changes of a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// `Some(None)`: unlimited.
    pub quota_bytes: Option<Option<u64>>,
    pub disabled: Option<bool>,
}

/// Checks an external id: 1 to 255 printable characters.
pub fn external_id(raw: &str) -> Result<String, ValidationError> {
    let ok = !raw.is_empty() && raw.len() <= MAX_EXTERNAL_ID && !raw.chars().any(char::is_control);
    ok.then(|| raw.to_owned()).ok_or_else(|| {
        ValidationError::new(
            "external_id",
            format!("must be 1 to {MAX_EXTERNAL_ID} bytes without control characters"),
        )
    })
}

fn stored_quota(q: Option<u64>) -> Option<i64> {
    q.map(|q| i64::try_from(q).unwrap_or(i64::MAX))
}

impl Accounts {
    /// Creates a user who has no password (a product's back end acts for
    /// them with an admin key, or they arrive through the product's login).
    pub async fn create_user(&self, new: NewUser) -> Result<users::Model, AccountError> {
        let id = Uuid::now_v7();
        let at = now();
        let display_name = match (&new.display_name, &new.email, &new.external_id) {
            (Some(d), _, _) => d.as_str().to_owned(),
            (None, Some(e), _) => DisplayName::parse(e.local_part())
                .map(|d| d.as_str().to_owned())
                .unwrap_or_else(|_| e.as_str().to_owned()),
            (None, None, Some(x)) => DisplayName::parse(x)
                .map(|d| d.as_str().to_owned())
                .unwrap_or_else(|_| "user".to_owned()),
            (None, None, None) => "user".to_owned(),
        };
        let quota = match new.quota_bytes {
            Some(q) => stored_quota(q),
            None => stored_quota(self.default_quota),
        };
        let user = users::ActiveModel {
            id: Set(id),
            email: Set(new
                .email
                .as_ref()
                .map_or_else(String::new, |e| e.as_str().to_owned())),
            email_key: Set(new
                .email
                .as_ref()
                .map_or_else(|| format!("user:{id}"), |e| e.key().to_owned())),
            display_name: Set(display_name),
            password_hash: Set(String::new()),
            quota_bytes: Set(quota),
            created_at: Set(at),
            updated_at: Set(at),
            disabled_at: Set(None),
            external_id: Set(new.external_id.clone()),
            identity_issuer: Set(None),
            identity_subject: Set(None),
        };
        match user.insert(&self.db).await {
            Ok(user) => Ok(user),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(if new.email.is_some() {
                    AccountError::EmailTaken
                } else {
                    AccountError::ExternalIdTaken
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user a service (a client certificate's name) acts as: found
    /// by that name, created on first sight.
    pub async fn service_user(&self, name: &str) -> Result<users::Model, AccountError> {
        const ISSUER: &str = "stowage:mtls";
        let find = || {
            users::Entity::find()
                .filter(users::Column::IdentityIssuer.eq(ISSUER))
                .filter(users::Column::IdentitySubject.eq(name))
        };
        if let Some(user) = find().one(&self.db).await? {
            return Ok(user);
        }
        let id = Uuid::now_v7();
        let at = now();
        let display = DisplayName::parse(name)
            .map(|d| d.as_str().to_owned())
            .unwrap_or_else(|_| "service".to_owned());
        let user = users::ActiveModel {
            id: Set(id),
            email: Set(String::new()),
            email_key: Set(format!("user:{id}")),
            display_name: Set(display),
            password_hash: Set(String::new()),
            quota_bytes: Set(None),
            created_at: Set(at),
            updated_at: Set(at),
            disabled_at: Set(None),
            external_id: Set(None),
            identity_issuer: Set(Some(ISSUER.to_owned())),
            identity_subject: Set(Some(name.to_owned())),
        };
        match user.insert(&self.db).await {
            Ok(user) => Ok(user),
            // Two first requests at once: the other one made it.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                find().one(&self.db).await?.ok_or(AccountError::UserGone)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Users matching `filter`, oldest first, at most 100.
    pub async fn find_users(&self, filter: UserFilter) -> Result<Vec<users::Model>, AccountError> {
        let mut select = users::Entity::find();
        if let Some(email) = &filter.email {
            select = select.filter(users::Column::EmailKey.eq(Email::key_of(email)));
        }
        if let Some(external) = &filter.external_id {
            select = select.filter(users::Column::ExternalId.eq(external.as_str()));
        }
        Ok(select
            .order_by_asc(users::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?)
    }

    /// Changes a user's quota or whether they are disabled; disabling ends
    /// every login of theirs in the same transaction.
    pub async fn patch_user(
        &self,
        id: Uuid,
        patch: UserPatch,
    ) -> Result<users::Model, AccountError> {
        let at = now();
        let txn = self.db.begin().await?;
        let user = users::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(AccountError::UserGone)?;
        let mut active: users::ActiveModel = user.clone().into();
        if let Some(q) = patch.quota_bytes {
            active.quota_bytes = Set(stored_quota(q));
        }
        match patch.disabled {
            Some(true) if user.disabled_at.is_none() => {
                active.disabled_at = Set(Some(at));
                login_sessions::Entity::update_many()
                    .col_expr(login_sessions::Column::RevokedAt, Expr::value(at))
                    .col_expr(
                        login_sessions::Column::RevokedReason,
                        Expr::value("disabled"),
                    )
                    .filter(login_sessions::Column::UserId.eq(id))
                    .filter(login_sessions::Column::RevokedAt.is_null())
                    .exec(&txn)
                    .await?;
            }
            Some(false) => active.disabled_at = Set(None),
            _ => {}
        }
        active.updated_at = Set(at);
        let user = active.update(&txn).await?;
        txn.commit().await?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_printable_and_bounded() {
        assert!(external_id("crm-42").is_ok());
        assert!(external_id("").is_err());
        assert!(external_id("a\nb").is_err());
        assert!(external_id(&"x".repeat(256)).is_err());
    }
}
