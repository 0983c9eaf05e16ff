use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The address as the user typed it at signup; empty for a user an
    /// admin created without one.
    pub email: String,
    /// The address folded to lower case; unique. `user:<id>` (no `@`)
    /// for a user without an address.
    pub email_key: String,
    pub display_name: String,
    /// PHC string (`$pbkdf2-sha256$i=…`); empty: no password (a user an
    /// admin created, or a service), who cannot log in with one.
    pub password_hash: String,
    /// `None`: no quota.
    pub quota_bytes: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Set: refused everywhere (its logins, tokens and keys).
    pub disabled_at: Option<DateTimeUtc>,
    /// The id a product's back end knows this user by.
    pub external_id: Option<String>,
    /// A user who arrived with an OpenID Connect token: its issuer and
    /// `sub` (unique together).
    pub identity_issuer: Option<String>,
    pub identity_subject: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::login_sessions::Entity")]
    LoginSessions,
}

impl Related<super::login_sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LoginSessions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
