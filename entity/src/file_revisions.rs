use sea_orm::entity::prelude::*;

/// An earlier revision of a file (the current one is the file's own row).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "file_revisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub file_id: Uuid,
    pub owner_id: Uuid,
    pub number: i64,
    /// A real object; a restored revision may share it with this one.
    pub object_key: String,
    pub size: i64,
    pub sha256: Option<String>,
    pub content_type: String,
    pub created_at: DateTimeUtc,
    /// Who uploaded it (`None`: before revisions were recorded).
    pub created_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::files::Entity",
        from = "Column::FileId",
        to = "super::files::Column::Id",
        on_delete = "Cascade"
    )]
    File,
}

impl Related<super::files::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::File.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
