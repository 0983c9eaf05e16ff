use sea_orm::entity::prelude::*;

/// A part of an S3 multipart upload that a tus upload has stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_parts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub part_number: i32,
    pub size: i64,
    pub etag: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::upload_sessions::Entity",
        from = "Column::SessionId",
        to = "super::upload_sessions::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
}

impl Related<super::upload_sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
