//! The folder tree in SQL: one recursive query walks up from an item (its
//! inherited role, whether it lies below a folder) or down from a folder
//! (what goes to the trash with it), however deep, on SQLite and
//! PostgreSQL alike. Items point at their parent only, so a move rewrites
//! one row.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use uuid::Uuid;

use super::Role;

/// No walk goes further than this: the tree has no cycles (moves check),
/// so the bound only stops a walk over a row that a bug left looping.
const MAX_DEPTH: i64 = 10_000;

/// `sql` with `?` placeholders, numbered `$1, $2, …` on PostgreSQL.
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The item (first `?`) and every folder above it, as `up(id, parent_id, depth)`.
fn up() -> String {
    format!(
        "WITH RECURSIVE up(id, parent_id, depth) AS ( \
           SELECT id, parent_id, 0 FROM files WHERE id = ? \
           UNION ALL \
           SELECT f.id, f.parent_id, up.depth + 1 FROM files f JOIN up ON f.id = up.parent_id \
           WHERE up.depth < {MAX_DEPTH}) "
    )
}

/// The caller's highest share on the item or on any folder above it.
pub(crate) async fn inherited_role(
    db: &impl ConnectionTrait,
    caller: Uuid,
    id: Uuid,
) -> Result<Option<Role>, DbErr> {
    let sql = format!(
        "{} SELECT s.role AS role FROM shares s JOIN up ON s.file_id = up.id WHERE s.user_id = ?",
        up()
    );
    let rows = db
        .query_all_raw(statement(
            db.get_database_backend(),
            &sql,
            vec![id.into(), caller.into()],
        ))
        .await?;
    let mut best = None;
    for row in rows {
        let role = match row.try_get::<String>("", "role")?.as_str() {
            "editor" => Role::Editor,
            _ => Role::Viewer,
        };
        if best != Some(Role::Editor) {
            best = Some(role);
        }
    }
    Ok(best)
}

/// Whether `folder` is `id` itself or a folder above it.
pub(crate) async fn is_within(
    db: &impl ConnectionTrait,
    id: Uuid,
    folder: Uuid,
) -> Result<bool, DbErr> {
    let sql = format!("{} SELECT COUNT(*) AS n FROM up WHERE id = ?", up());
    let row = db
        .query_one_raw(statement(
            db.get_database_backend(),
            &sql,
            vec![id.into(), folder.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0)
        > 0)
}

/// The live item at `names` from `owner`'s root (each name but the last a
/// folder), in one recursive query however deep the path.
pub(crate) async fn walk(
    db: &impl ConnectionTrait,
    owner: Uuid,
    names: &[&str],
) -> Result<Option<Uuid>, DbErr> {
    if names.is_empty() {
        return Ok(None);
    }
    let rows: Vec<String> = (1..=names.len()).map(|d| format!("({d}, ?)")).collect();
    let sql = format!(
        "WITH RECURSIVE names(depth, name) AS (VALUES {}), \
         walk(id, kind, depth) AS ( \
           SELECT f.id, f.kind, 1 FROM files f JOIN names n ON n.depth = 1 AND f.name = n.name \
           WHERE f.owner_id = ? AND COALESCE(f.parent_id, f.owner_id) = ? \
             AND f.deleted_at IS NULL \
           UNION ALL \
           SELECT f.id, f.kind, w.depth + 1 FROM walk w \
           JOIN names n ON n.depth = w.depth + 1 \
           JOIN files f ON f.owner_id = ? AND COALESCE(f.parent_id, f.owner_id) = w.id \
             AND f.name = n.name AND f.deleted_at IS NULL \
           WHERE w.kind = 'folder') \
         SELECT id FROM walk WHERE depth = {}",
        rows.join(", "),
        names.len()
    );
    // Each step is one lookup in the live-name index: (owner, parent or
    // the owner for the root, name).
    let mut values: Vec<Value> = names.iter().map(|n| (*n).into()).collect();
    values.extend([owner.into(), owner.into(), owner.into()]);
    let row = db
        .query_one_raw(statement(db.get_database_backend(), &sql, values))
        .await?;
    row.map(|r| r.try_get::<Uuid>("", "id")).transpose()
}

/// Sends a live item and everything live below it to the trash as one unit
/// (`trashed_with` names the item); returns how many rows went.
pub(crate) async fn trash(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: DateTime<Utc>,
    purge_at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let sql = "UPDATE files SET deleted_at = ?, purge_at = ?, trashed_with = ?, \
                 version = version + 1, updated_at = ? \
               WHERE deleted_at IS NULL AND id IN ( \
                 WITH RECURSIVE down(id) AS ( \
                   SELECT id FROM files WHERE id = ? AND deleted_at IS NULL \
                   UNION ALL \
                   SELECT f.id FROM files f JOIN down ON f.parent_id = down.id \
                   WHERE f.deleted_at IS NULL) \
                 SELECT id FROM down)";
    let result = db
        .execute_raw(statement(
            db.get_database_backend(),
            sql,
            vec![at.into(), purge_at.into(), id.into(), at.into(), id.into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// Structural changes to one owner's tree (creating in a folder, moving,
/// trashing, restoring) and reservations against their quota go one at a
/// time: each transaction writes the owner's row first. On PostgreSQL that
/// row lock orders them, and every later statement sees what the one
/// before committed; on SQLite the write takes the database's write lock
/// up front. Without it, a file could land in a folder being trashed, two
/// moves could make a cycle, or two uploads could both take the last of a
/// quota. Returns the owner's quota (`None`: unlimited, or no such user).
pub(crate) async fn lock_tree(
    db: &impl ConnectionTrait,
    owner: Uuid,
) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(statement(
            db.get_database_backend(),
            "UPDATE users SET updated_at = updated_at WHERE id = ? RETURNING quota_bytes",
            vec![owner.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<Option<i64>>("", "quota_bytes"))
        .transpose()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        let pg = statement(DbBackend::Postgres, "a = ? AND b = ?", vec![]);
        assert_eq!(pg.sql, "a = $1 AND b = $2");
        let lite = statement(DbBackend::Sqlite, "a = ? AND b = ?", vec![]);
        assert_eq!(lite.sql, "a = ? AND b = ?");
    }
}
