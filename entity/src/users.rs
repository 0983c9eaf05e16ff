use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The address as the user typed it at signup.
    pub email: String,
    /// The address folded to lower case; unique.
    pub email_key: String,
    pub display_name: String,
    /// PHC string (`$pbkdf2-sha256$i=…`).
    pub password_hash: String,
    /// `None`: no quota.
    pub quota_bytes: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
