//! Folders: rows of `files` with `kind = folder`, so a folder and a file
//! share one namespace per parent. Creating, reading, listing children
//! (folders first), resolving a path, and where an item may be put.

use sea_orm::sea_query::ExprTrait;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use stowage_entity::files::{self, FileStatus, ItemKind, Visibility};
use stowage_entity::shares;
use uuid::Uuid;

use super::access::access_item;
use super::{Action, Cursor, FileError, FileView, Files, ListQuery, Page, Role, insert_file, list};
use crate::domain::{FileName, ValidationError};
use crate::events::{DomainEvent, Happened, item_event};
use crate::time::now;

/// At most this many names in a path given to `resolve`.
pub const MAX_PATH_SEGMENTS: usize = 256;

/// A folder to create; `parent: None` is the caller's root.
#[derive(Debug, Clone)]
pub struct NewFolder {
    pub name: FileName,
    pub parent: Option<Uuid>,
}

/// Where a new item goes: the folder's owner (who will own it), the
/// folder (`None` = the caller's root), and the caller's role there.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub owner: Uuid,
    pub parent: Option<Uuid>,
    pub role: Role,
    /// Who is putting it there (`None`: someone with a drop-folder link).
    pub by: Option<Uuid>,
}

impl Files {
    /// Where `caller` may put a new item: see [`placement`].
    pub async fn placement(
        &self,
        caller: Uuid,
        parent: Option<Uuid>,
    ) -> Result<Placement, FileError> {
        placement(&self.db, caller, parent).await
    }

    /// Creates a folder in the caller's root or in a folder they may add to.
    #[tracing::instrument(skip_all, fields(owner_id = %caller))]
    pub async fn create_folder(&self, caller: Uuid, new: NewFolder) -> Result<FileView, FileError> {
        let place = self.placement(caller, new.parent).await?;
        let at = now();
        let id = Uuid::now_v7();
        let row = files::ActiveModel {
            id: Set(id),
            owner_id: Set(place.owner),
            name: Set(new.name.as_str().to_owned()),
            name_lower: Set(new.name.lower()),
            size: Set(0),
            content_type: Set(FOLDER_TYPE.to_owned()),
            sha256: Set(None),
            status: Set(FileStatus::Available),
            visibility: Set(Visibility::Private),
            public_token: Set(None),
            object_key: Set(String::new()),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            available_at: Set(Some(at)),
            expires_at: Set(None),
            deleted_at: Set(None),
            purge_at: Set(None),
            kind: Set(ItemKind::Folder),
            parent_id: Set(place.parent),
            trashed_with: Set(None),
            revision: Set(1),
            base_revision: Set(None),
            uploaded_by: Set(Some(caller)),
            conflict_of: Set(None),
        };
        let txn = self.db.begin().await?;
        super::reserve(&txn, place.owner, 0, "folder").await?;
        enter(&txn, &place).await?;
        let folder = insert_file(&txn, row, new.name.as_str()).await?;
        let event = DomainEvent::new(
            item_event(ItemKind::Folder, Happened::Created),
            folder.id,
            folder.owner_id,
            Some(caller),
            serde_json::json!({"name": folder.name, "parent_id": folder.parent_id}),
        );
        crate::outbox::record(&txn, &[event]).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(FileView::new(folder, place.role))
    }

    /// A folder the caller may see.
    pub async fn folder(&self, caller: Uuid, id: Uuid) -> Result<FileView, FileError> {
        access_item(&self.db, caller, id, ItemKind::Folder).await
    }

    /// A page of a folder's live children (`None` = the caller's root):
    /// folders first, then files, each in the query's sort. Keyset pages,
    /// each one index range scan however many children there are.
    pub async fn children(
        &self,
        caller: Uuid,
        folder: Option<Uuid>,
        query: &ListQuery,
    ) -> Result<Page, FileError> {
        let (owner, role) = match folder {
            None => (caller, Role::Owner),
            Some(id) => {
                let view = self.folder(caller, id).await?;
                (view.file.owner_id, view.role)
            }
        };
        self.list_children(owner, folder, role, Some(caller), query)
            .await
    }

    /// A page of children of `owner`'s `folder` for someone in `role` there
    /// (`caller: None` behind a share link: no shares of their own).
    pub(crate) async fn list_children(
        &self,
        owner: Uuid,
        folder: Option<Uuid>,
        role: Role,
        caller: Option<Uuid>,
        query: &ListQuery,
    ) -> Result<Page, FileError> {
        let select = |kind: ItemKind| {
            let mut s = files::Entity::find()
                .filter(files::Column::OwnerId.eq(owner))
                .filter(files::Column::DeletedAt.is_null())
                .filter(files::Column::Kind.eq(kind));
            s = match folder {
                None => s.filter(files::Column::ParentId.is_null()),
                Some(id) => s.filter(files::Column::ParentId.eq(id)),
            };
            if role != Role::Owner {
                // Pending files are their owner's alone.
                s = s.filter(files::Column::Status.eq(FileStatus::Available));
            }
            s
        };
        let in_files = query.cursor.as_ref().is_some_and(|c| !c.folder);
        let mut rows = Vec::new();
        if !in_files {
            rows = list::apply(select(ItemKind::Folder), query)
                .all(&self.db)
                .await?;
        }
        if (rows.len() as u64) <= query.limit {
            // The folders are done: files follow, from their first.
            let rest = ListQuery {
                limit: query.limit - rows.len() as u64,
                cursor: query.cursor.clone().filter(|_| in_files),
                ..query.clone()
            };
            rows.extend(
                list::apply(select(ItemKind::File), &rest)
                    .all(&self.db)
                    .await?,
            );
        }
        let more = rows.len() as u64 > query.limit;
        rows.truncate(query.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|f| Cursor::after(query.sort, f).encode()))
            .flatten();
        let items = match caller {
            Some(caller) => self.with_roles(caller, role, rows).await?,
            None => rows.into_iter().map(|f| FileView::new(f, role)).collect(),
        };
        Ok(Page { items, next_cursor })
    }

    /// Rows in one folder, with the caller's role on each: the folder's,
    /// raised by a share of the item itself.
    async fn with_roles(
        &self,
        caller: Uuid,
        role: Role,
        rows: Vec<files::Model>,
    ) -> Result<Vec<FileView>, FileError> {
        if role == Role::Owner || role == Role::Editor || rows.is_empty() {
            return Ok(rows.into_iter().map(|f| FileView::new(f, role)).collect());
        }
        let editors: Vec<Uuid> = shares::Entity::find()
            .filter(shares::Column::UserId.eq(caller))
            .filter(shares::Column::FileId.is_in(rows.iter().map(|f| f.id)))
            .filter(shares::Column::Role.eq(shares::ShareRole::Editor))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| s.file_id)
            .collect();
        Ok(rows
            .into_iter()
            .map(|f| {
                let role = if editors.contains(&f.id) {
                    Role::Editor
                } else {
                    role
                };
                FileView::new(f, role)
            })
            .collect())
    }

    /// The live file or folder at `path` (`/Reports/2026/q1.pdf`) in the
    /// caller's own tree: one query walks it, however deep.
    pub async fn resolve(&self, caller: Uuid, path: &str) -> Result<FileView, FileError> {
        let names = parse_path(path)?;
        let names: Vec<&str> = names.iter().map(FileName::as_str).collect();
        let id = super::tree::walk(&self.db, caller, &names)
            .await?
            .ok_or(FileError::PathNotFound)?;
        let item = files::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(FileError::PathNotFound)?;
        Ok(FileView::new(item, Role::Owner))
    }
}

/// Where `caller` may put a new item: their root, or a live folder they
/// own or edit (what they create there belongs to the folder's owner).
pub(crate) async fn placement(
    db: &impl ConnectionTrait,
    caller: Uuid,
    parent: Option<Uuid>,
) -> Result<Placement, FileError> {
    let Some(parent) = parent else {
        return Ok(Placement {
            owner: caller,
            parent: None,
            role: Role::Owner,
            by: Some(caller),
        });
    };
    let folder = access_item(db, caller, parent, ItemKind::Folder).await?;
    folder.require(Action::AddChildren)?;
    Ok(Placement {
        owner: folder.file.owner_id,
        parent: Some(parent),
        role: folder.role,
        by: Some(caller),
    })
}

/// The content type folders carry (never served: a folder has no bytes).
pub const FOLDER_TYPE: &str = "inode/directory";

/// Inside a new item's transaction, once [`reserve`](super::reserve) holds
/// the owner's tree: a folder to put it in must still be live (no item
/// lands in a folder that is on its way to the trash).
pub(crate) async fn enter(txn: &impl ConnectionTrait, place: &Placement) -> Result<(), FileError> {
    let Some(parent) = place.parent else {
        return Ok(());
    };
    files::Entity::find_by_id(parent)
        .filter(files::Column::DeletedAt.is_null())
        .filter(files::Column::Kind.eq(ItemKind::Folder))
        .one(txn)
        .await?
        .ok_or(FileError::FolderNotFound(parent))?;
    Ok(())
}

/// Inside a new item's transaction, with the owner's tree held: `name`
/// if it is free in `place`, else the first free `stem (n).ext` (how a
/// drop folder keeps every upload).
pub(crate) async fn free_name(
    txn: &impl ConnectionTrait,
    place: &Placement,
    name: FileName,
) -> Result<FileName, FileError> {
    let in_place = || {
        let s = files::Entity::find()
            .filter(files::Column::OwnerId.eq(place.owner))
            .filter(files::Column::DeletedAt.is_null());
        match place.parent {
            None => s.filter(files::Column::ParentId.is_null()),
            Some(p) => s.filter(files::Column::ParentId.eq(p)),
        }
    };
    let taken = in_place()
        .filter(files::Column::Name.eq(name.as_str()))
        .one(txn)
        .await?
        .is_some();
    if !taken {
        return Ok(name);
    }
    let (stem, ext) = split_extension(name.as_str());
    let prefix = format!("{stem} (");
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let siblings: std::collections::HashSet<String> = in_place()
        .filter(
            sea_orm::sea_query::Expr::col(files::Column::Name)
                .like(sea_orm::sea_query::LikeExpr::new(format!("{escaped}%")).escape('\\')),
        )
        .all(txn)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    (1..=siblings.len() + 1)
        .map(|n| format!("{stem} ({n}){ext}"))
        .find(|candidate| !siblings.contains(candidate))
        .map(|candidate| FileName::parse(&candidate))
        .unwrap_or_else(|| Ok(name.clone()))
        .map_err(|_| FileError::NameTaken(name.as_str().to_owned()))
}

/// `report.pdf` → (`report`, `.pdf`); a leading dot is no extension.
pub(super) fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(at) if at > 0 => name.split_at(at),
        _ => (name, ""),
    }
}

/// `/a/b/c.pdf` → its names; each must be a valid name. One trailing `/`
/// is allowed; empty names (`//`) are not.
pub fn parse_path(raw: &str) -> Result<Vec<FileName>, ValidationError> {
    let invalid = |why: &str| ValidationError::new("path", why.to_owned());
    let rest = raw
        .strip_prefix('/')
        .ok_or_else(|| invalid("must start with `/`, e.g. /Reports/2026"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid("must name a file or folder, not the root"));
    }
    let names: Vec<&str> = rest.split('/').collect();
    if names.len() > MAX_PATH_SEGMENTS {
        return Err(invalid("has too many names (at most 256)"));
    }
    names
        .into_iter()
        .map(|n| {
            FileName::parse(n).map_err(|_| {
                invalid("holds a name that is empty, `.`, `..` or has control characters")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// A valid name: no `/`, no control characters, not `.` or `..`.
    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._()\\-\u{e9}\u{4e2d}\u{1f600}]{1,40}"
            .prop_filter("not . or ..", |n| n != "." && n != "..")
    }

    proptest! {
        #[test]
        fn any_path_of_valid_names_parses_back_to_them(
            names in prop::collection::vec(name(), 1..40),
            trailing in any::<bool>(),
        ) {
            let mut path = format!("/{}", names.join("/"));
            if trailing {
                path.push('/');
            }
            let parsed: Vec<String> = parse_path(&path)
                .unwrap()
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect();
            prop_assert_eq!(parsed, names);
        }

        #[test]
        fn an_empty_or_dot_name_anywhere_is_refused(
            before in prop::collection::vec(name(), 0..5),
            after in prop::collection::vec(name(), 1..5),
            bad in prop::sample::select(vec!["", ".", ".."]),
        ) {
            let mut names = before;
            names.push(bad.to_owned());
            names.extend(after);
            let path = format!("/{}", names.join("/"));
            prop_assert!(parse_path(&path).is_err(), "{:?} parsed", path);
        }

        #[test]
        fn a_renamed_copy_keeps_stem_and_extension(name in name(), n in 1usize..100_000) {
            let (stem, ext) = split_extension(&name);
            prop_assert_eq!(format!("{stem}{ext}"), name.clone());
            let one_dot = ext.starts_with('.') && !ext[1..].contains('.');
            prop_assert!(ext.is_empty() || one_dot, "extension {:?}", ext);
            prop_assert!(!stem.is_empty());
            let copy = format!("{stem} ({n}){ext}");
            prop_assert!(FileName::parse(&copy).is_ok(), "{:?}", copy);
        }
    }

    #[test]
    fn extensions_split_off_the_last_dot() {
        assert_eq!(split_extension("report.pdf"), ("report", ".pdf"));
        assert_eq!(split_extension("archive.tar.gz"), ("archive.tar", ".gz"));
        assert_eq!(split_extension(".bashrc"), (".bashrc", ""));
        assert_eq!(split_extension("README"), ("README", ""));
    }

    #[test]
    fn paths_parse_into_names() {
        let names: Vec<String> = parse_path("/Reports/2026/q1.pdf")
            .unwrap()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        assert_eq!(names, ["Reports", "2026", "q1.pdf"]);
        assert_eq!(parse_path("/Reports/").unwrap().len(), 1);
        for bad in ["", "/", "Reports", "/a//b", "/a/../b", "/a/./b", "/a/\u{1}"] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
        let deep = "/a".repeat(MAX_PATH_SEGMENTS + 1);
        assert!(parse_path(&deep).is_err());
        assert!(parse_path(&"/a".repeat(MAX_PATH_SEGMENTS)).is_ok());
    }
}
