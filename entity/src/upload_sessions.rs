use sea_orm::entity::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum UploadKind {
    #[sea_orm(string_value = "direct")]
    Direct,
    #[sea_orm(string_value = "multipart")]
    Multipart,
    #[sea_orm(string_value = "tus")]
    Tus,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Multipart => "multipart",
            Self::Tus => "tus",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum UploadState {
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "aborted")]
    Aborted,
    #[sea_orm(string_value = "expired")]
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upload_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub file_id: Uuid,
    pub kind: UploadKind,
    pub state: UploadState,
    pub size: Option<i64>,
    pub offset: i64,
    pub parts_received: i32,
    pub part_size: Option<i64>,
    pub s3_upload_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub metadata: Option<String>,
    /// tus: the SHA-256 state after `offset` bytes (hex), so any instance
    /// can go on hashing where the last one stopped.
    #[sea_orm(column_type = "Text", nullable)]
    pub hash_state: Option<String>,
    /// tus on S3: bytes after the last stored part, kept in a tail object
    /// until they fill a part.
    pub tail_size: i64,
    /// The instance writing to this upload now, and until when.
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
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
    #[sea_orm(has_many = "super::upload_parts::Entity")]
    Parts,
}

impl Related<super::upload_parts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Parts.def()
    }
}

impl Related<super::files::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::File.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
