use sea_orm::entity::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum FileStatus {
    /// Created; its bytes have not been seen in the store yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "available")]
    Available,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Visibility {
    #[sea_orm(string_value = "private")]
    Private,
    #[sea_orm(string_value = "public")]
    Public,
}

/// A row is a file or a folder: they share one namespace per parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum ItemKind {
    #[sea_orm(string_value = "file")]
    File,
    #[sea_orm(string_value = "folder")]
    Folder,
    /// An upload of a file's next revision, hidden under that file until
    /// its bytes are in.
    #[sea_orm(string_value = "revision")]
    Revision,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub name_lower: String,
    pub size: i64,
    pub content_type: String,
    /// Lower-case hex; the client's expectation while pending, the checked
    /// digest once available (when known).
    pub sha256: Option<String>,
    pub status: FileStatus,
    pub visibility: Visibility,
    /// Set while public: the unguessable part of `/public/{token}`.
    pub public_token: Option<String>,
    pub object_key: String,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub available_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    pub purge_at: Option<DateTimeUtc>,
    pub kind: ItemKind,
    /// The folder it is in; `None` is the owner's root.
    pub parent_id: Option<Uuid>,
    /// In the trash: the item whose deletion took this one there (itself,
    /// or a folder above it).
    pub trashed_with: Option<Uuid>,
    /// A file's current revision.
    pub revision: i64,
    /// A revision upload: the revision it was based on (`None`: any).
    pub base_revision: Option<i64>,
    /// Who uploaded the current revision (`None`: before this was recorded).
    pub uploaded_by: Option<Uuid>,
    /// A conflicted copy: the file whose revision it could not become.
    pub conflict_of: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::OwnerId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    Owner,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Owner.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
