use sea_orm::entity::prelude::*;

/// A receiver of domain events.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    /// Made with an admin key: receives every user's events.
    pub all_users: bool,
    pub url: String,
    /// Space-separated event types, or `*`.
    pub events: String,
    pub description: Option<String>,
    /// `whsec_…`: signs every delivery (Standard Webhooks).
    pub secret: String,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
