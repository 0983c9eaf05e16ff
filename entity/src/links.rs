use sea_orm::entity::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum LinkMode {
    /// Read: a file's bytes, a folder's listing.
    #[sea_orm(string_value = "view")]
    View,
    /// A drop folder: anyone with the link uploads into it; it lists nothing.
    #[sea_orm(string_value = "upload")]
    Upload,
}

/// A share link to a file or folder, answered at `/s/{token}`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The unguessable part of the URL.
    pub token: String,
    pub item_id: Uuid,
    pub owner_id: Uuid,
    pub mode: LinkMode,
    /// PBKDF2, like account passwords; `None`: no password.
    pub password_hash: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::files::Entity",
        from = "Column::ItemId",
        to = "super::files::Column::Id",
        on_delete = "Cascade"
    )]
    Item,
}

impl Related<super::files::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Item.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
