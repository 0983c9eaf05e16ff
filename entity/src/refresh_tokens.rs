use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    /// SHA-256 of the token, lower-case hex.
    pub token_hash: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set when the token was exchanged; a second exchange is a reuse.
    pub spent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::login_sessions::Entity",
        from = "Column::SessionId",
        to = "super::login_sessions::Column::Id",
        on_delete = "Cascade"
    )]
    LoginSession,
}

impl Related<super::login_sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LoginSession.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
