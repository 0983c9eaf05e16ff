//! File-system steps of the local store: atomic writes, moves that never
//! replace, private directories, and keys that cannot leave the store.

use std::path::Path;

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

/// Runs `f` holding the store's lock (an exclusive `flock` on `lock_file`,
/// across threads and processes): what writes a file's key material and
/// the file together, and what re-wraps keys, never interleave. Blocking.
pub(super) fn locked<T>(
    lock_file: &Path,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::fs::OpenOptionsExt;
    // A handle of its own each time: a lock shared through one handle
    // would not keep this process's own threads apart.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(lock_file)?;
    lock.lock()?;
    let result = f();
    drop(lock);
    result
}

/// Writes a small file through a temp file in `tmp_dir` and a rename.
/// Blocking.
pub(super) fn replace_file(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)?;
    Ok(())
}
