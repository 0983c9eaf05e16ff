//! Listing with keyset pagination: a cursor names the last row returned, so
//! pages stay correct while files are added or removed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, Condition, Order, QueryFilter, QueryOrder, QuerySelect, Select};
use serde::{Deserialize, Serialize};
use stowage_entity::files;
use uuid::Uuid;

use crate::domain::ValidationError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Owned,
    /// Live files others shared with the caller.
    Shared,
    /// The caller's shortcuts, to files they can still see.
    Shortcuts,
    /// The caller's deleted files, until they are purged.
    Trash,
}

impl View {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "owned" => Ok(Self::Owned),
            "shared" => Ok(Self::Shared),
            "shortcuts" => Ok(Self::Shortcuts),
            "trash" => Ok(Self::Trash),
            _ => Err(ValidationError::new(
                "view",
                "must be owned, shared, shortcuts or trash",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "-name")]
    NameDesc,
    #[serde(rename = "created_at")]
    Created,
    #[default]
    #[serde(rename = "-created_at")]
    CreatedDesc,
    #[serde(rename = "size")]
    Size,
    #[serde(rename = "-size")]
    SizeDesc,
}

impl Sort {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        Ok(match raw {
            "name" => Self::Name,
            "-name" => Self::NameDesc,
            "created_at" => Self::Created,
            "-created_at" => Self::CreatedDesc,
            "size" => Self::Size,
            "-size" => Self::SizeDesc,
            _ => {
                return Err(ValidationError::new(
                    "sort",
                    "must be one of name, -name, created_at, -created_at, size, -size",
                ));
            }
        })
    }

    fn descending(self) -> bool {
        matches!(self, Self::NameDesc | Self::CreatedDesc | Self::SizeDesc)
    }
}

/// The sort key of the last row of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum SortKey {
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "d")]
    Time(DateTime<Utc>),
    #[serde(rename = "n")]
    Number(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    sort: Sort,
    #[serde(rename = "k")]
    key: SortKey,
    #[serde(rename = "i")]
    id: Uuid,
    /// In a folder's children (folders first): the row was a folder.
    #[serde(rename = "f", default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) folder: bool,
}

impl Cursor {
    pub fn after(sort: Sort, file: &files::Model) -> Self {
        let key = match sort {
            Sort::Name | Sort::NameDesc => SortKey::Text(file.name_lower.clone()),
            Sort::Created | Sort::CreatedDesc => SortKey::Time(file.created_at),
            Sort::Size | Sort::SizeDesc => SortKey::Number(file.size),
        };
        Self {
            sort,
            key,
            id: file.id,
            folder: file.kind == files::ItemKind::Folder,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a cursor that must belong to a listing sorted by `sort`.
    pub fn decode(raw: &str, sort: Sort) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "cursor",
                "is not a cursor from this listing; pass `next_cursor` back unchanged, with the same sort",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let fits = matches!(
            (cursor.sort, &cursor.key),
            (Sort::Name | Sort::NameDesc, SortKey::Text(_))
                | (Sort::Created | Sort::CreatedDesc, SortKey::Time(_))
                | (Sort::Size | Sort::SizeDesc, SortKey::Number(_))
        );
        if cursor.sort != sort || !fits {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

/// A parsed listing request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub view: View,
    pub limit: u64,
    pub cursor: Option<Cursor>,
    /// Lower-cased name prefix.
    pub prefix: Option<String>,
    pub sort: Sort,
}

/// Orders `select` by the sort, starts it after the cursor and filters by
/// the prefix; fetches one row more than the limit, to know if there is more.
pub(crate) fn apply(select: Select<files::Entity>, q: &ListQuery) -> Select<files::Entity> {
    let column = match q.sort {
        Sort::Name | Sort::NameDesc => files::Column::NameLower,
        Sort::Created | Sort::CreatedDesc => files::Column::CreatedAt,
        Sort::Size | Sort::SizeDesc => files::Column::Size,
    };
    let order = if q.sort.descending() {
        Order::Desc
    } else {
        Order::Asc
    };
    let mut select = select
        .order_by(column, order.clone())
        .order_by(files::Column::Id, order)
        .limit(q.limit + 1);
    if let Some(prefix) = &q.prefix {
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        select = select.filter(
            Expr::col(files::Column::NameLower)
                .like(LikeExpr::new(format!("{escaped}%")).escape('\\')),
        );
    }
    if let Some(cursor) = &q.cursor {
        let value: sea_orm::Value = match &cursor.key {
            SortKey::Text(s) => s.clone().into(),
            SortKey::Time(t) => (*t).into(),
            SortKey::Number(n) => (*n).into(),
        };
        // (key, id) strictly after the cursor in the listing's order. The
        // bare bound on the key comes first: it is what lets the index
        // start the scan at the cursor instead of at the folder's first row.
        let after = if q.sort.descending() {
            Condition::all().add(column.lte(value.clone())).add(
                Condition::any()
                    .add(column.lt(value))
                    .add(files::Column::Id.lt(cursor.id)),
            )
        } else {
            Condition::all().add(column.gte(value.clone())).add(
                Condition::any()
                    .add(column.gt(value))
                    .add(files::Column::Id.gt(cursor.id)),
            )
        };
        select = select.filter(after);
    }
    select
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let c = Cursor {
            sort: Sort::Size,
            key: SortKey::Number(42),
            id: Uuid::now_v7(),
            folder: true,
        };
        assert_eq!(Cursor::decode(&c.encode(), Sort::Size).unwrap(), c);
        assert!(Cursor::decode(&c.encode(), Sort::Name).is_err());
        assert!(Cursor::decode("garbage", Sort::Size).is_err());
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"s":"size","k":{"t":"text"},"i":"0190e0a0-0000-7000-8000-000000000000"}"#);
        assert!(Cursor::decode(&forged, Sort::Size).is_err());
    }

    #[test]
    fn time_keys_stay_time_keys() {
        let file_time = "2026-11-21T07:01:32.329507Z"
            .parse::<DateTime<Utc>>()
            .unwrap();
        let c = Cursor {
            sort: Sort::CreatedDesc,
            key: SortKey::Time(file_time),
            id: Uuid::now_v7(),
            folder: false,
        };
        assert_eq!(Cursor::decode(&c.encode(), Sort::CreatedDesc).unwrap(), c);
        // A name that looks like a time is still a name.
        let n = Cursor {
            sort: Sort::Name,
            key: SortKey::Text("2026-11-21T07:01:32Z".into()),
            id: Uuid::now_v7(),
            folder: false,
        };
        assert_eq!(Cursor::decode(&n.encode(), Sort::Name).unwrap(), n);
    }

    #[test]
    fn sorts_and_views_parse() {
        for s in [
            "name",
            "-name",
            "created_at",
            "-created_at",
            "size",
            "-size",
        ] {
            assert!(Sort::parse(s).is_ok());
        }
        assert!(Sort::parse("owner").is_err());
        assert!(View::parse("owned").is_ok());
        assert!(View::parse("trash").is_ok());
        assert!(View::parse("everything").is_err());
    }
}
