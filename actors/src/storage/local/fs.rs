//! File-system steps of the local store: atomic writes, moves that never
//! replace, private directories, and keys that cannot leave the store.

use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::storage::StorageError;

/// Writes a small file so that readers see all of it or none of it.
pub(super) async fn write_atomically(
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let (tmp_dir, path, bytes) = (tmp_dir.to_owned(), path.to_owned(), bytes.to_owned());
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
        std::io::Write::write_all(&mut tmp, &bytes)?;
        tmp.persist(path)?;
        Ok(())
    })
    .await
    .map_err(StorageError::unavailable)?;
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StorageError::not_found(
            "object_not_found",
            "the place this was to be written to is gone",
        ),
        _ => StorageError::unavailable(e),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replace {
    Yes,
    No,
}

/// Moves a finished temp file to `path`. With [`Replace::No`] an existing
/// file there is left alone and the call is a 409: the move is atomic
/// (`link` + `unlink`), so of two racing writers exactly one wins. A missing
/// parent directory is "not found"; the temp file is removed on any failure.
pub(super) async fn persist(
    tmp: TempPath,
    path: PathBuf,
    replace: Replace,
) -> Result<(), StorageError> {
    let moved = tokio::task::spawn_blocking(move || match replace {
        Replace::Yes => tmp.persist(&path),
        Replace::No => tmp.persist_noclobber(&path),
    })
    .await
    .map_err(StorageError::unavailable)?;
    moved.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => StorageError::conflict(
            "already_uploaded",
            "this URL has already stored its object, and an object is stored only once; \
             start a new upload to send other bytes",
        ),
        std::io::ErrorKind::NotFound => StorageError::not_found(
            "object_not_found",
            "the place this was to be stored is gone",
        ),
        _ => StorageError::unavailable(e.error),
    })
}

/// Creates `dir` and its missing parents with mode 0700, and makes `dir`
/// itself 0700 if it was there already.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub(super) async fn private_dir_async(dir: &Path) -> Result<(), StorageError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || private_dir(&dir))
        .await
        .map_err(StorageError::unavailable)?
        .map_err(StorageError::unavailable)
}

/// A key as a relative path that cannot leave the store's directory.
pub(super) fn safe_relative(key: &str) -> Result<&str, StorageError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\0', '\\']));
    if ok {
        Ok(key)
    } else {
        Err(StorageError::rejected(
            "invalid_object_key",
            "the object key is not a safe relative path",
        ))
    }
}
