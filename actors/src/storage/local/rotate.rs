//! Re-wrapping data keys: `stowage keys rotate`, and the server's own check
//! after it writes key material (which a rotation in flight may have just
//! passed by). Only the small metadata files change; objects are never
//! rewritten.

use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::SecretString;
use serde_json::Value;

use super::fs::{locked, replace_file};
use super::keyring::{KEY_FILE, Keyring, WrappedKey, key_file_lines, new_key, write_key_file};

/// The file the store's writers and rotations lock, in the store's directory.
pub(super) const LOCK_FILE: &str = ".lock";

/// What re-wrapping one file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rewrap {
    Done,
    Already,
    /// The file went (completed, deleted) before its turn.
    Gone,
    /// It holds no key: an object stored before encryption.
    Plain,
}

/// Re-wraps the data key recorded in `path` (an object's metadata, a
/// part's record or a staged upload's key file) under the current KEK,
/// holding the store's lock. Blocking.
pub(super) fn rewrap(root: &Path, keyring: &Keyring, path: &Path) -> std::io::Result<Rewrap> {
    locked(&root.join(LOCK_FILE), || {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Rewrap::Gone),
            Err(e) => return Err(e),
        };
        let mut doc: Value = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        let Some(slot) = key_slot(&mut doc) else {
            return Ok(Rewrap::Plain);
        };
        let wrapped: WrappedKey =
            serde_json::from_value(slot.clone()).map_err(std::io::Error::other)?;
        if keyring.is_current(&wrapped.kek)? {
            return Ok(Rewrap::Already);
        }
        let data_key = keyring.unwrap(&wrapped)?;
        *slot = serde_json::to_value(keyring.wrap(&data_key)?).map_err(std::io::Error::other)?;
        let json = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
        replace_file(&root.join("tmp"), path, &json)?;
        Ok(Rewrap::Done)
    })
}

/// After writing key material wrapped by `kek` to `path`: if a rotation
/// began meanwhile (and may have passed the file by), re-wraps it now. One
/// `stat` of the key file otherwise. Blocking.
pub(super) fn keep_current(
    root: &Path,
    keyring: &Keyring,
    kek: &str,
    path: &Path,
) -> std::io::Result<()> {
    if !keyring.is_current(kek)? {
        rewrap(root, keyring, path)?;
    }
    Ok(())
}

/// Where a key-material document keeps its wrapped key: `crypt.key` in
/// metadata and part records, `key` in a staged upload's key file.
fn key_slot(doc: &mut Value) -> Option<&mut Value> {
    if doc.get("crypt").is_some_and(Value::is_object) {
        return doc.get_mut("crypt")?.get_mut("key");
    }
    if doc.get("epochs").is_some() {
        return doc.get_mut("key");
    }
    None
}

/// What a rotation did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Rotation {
    /// The KEK every data key is wrapped by now (its fingerprint).
    pub kek: String,
    pub rewrapped: u64,
    pub already_current: u64,
    /// Objects stored before encryption, left as they are.
    pub unencrypted: u64,
}

/// Re-wraps every data key in the store under a new KEK: the first of
/// `configured` (STOWAGE_ENCRYPTION_KEY), or a new key generated into the
/// key file. Resumable: run again after an interruption, it goes on with
/// the same new key and skips what is done. Servers may run meanwhile.
pub fn rotate_keys(root: &Path, configured: Option<&SecretString>) -> anyhow::Result<Rotation> {
    let file = root.join(KEY_FILE);
    let lines = if configured.is_none() {
        let mut lines = key_file_lines(&file).with_context(|| {
            format!(
                "reading {}: is STOWAGE_DATA_DIR the server's?",
                file.display()
            )
        })?;
        if lines.len() < 2 {
            // Not yet begun: the new key goes first, the old stays to unwrap.
            lines.insert(0, new_key());
            write_key_file(&file, &lines)?;
        }
        lines
    } else {
        Vec::new()
    };
    let keyring = Keyring::open(root, configured)?;
    let mut report = Rotation {
        kek: keyring.current_id()?,
        ..Rotation::default()
    };
    for path in key_material(root)? {
        match rewrap(root, &keyring, &path)
            .with_context(|| format!("re-wrapping the key in {}", path.display()))?
        {
            Rewrap::Done => report.rewrapped += 1,
            Rewrap::Already => report.already_current += 1,
            Rewrap::Plain => report.unencrypted += 1,
            Rewrap::Gone => {}
        }
    }
    match lines.first() {
        // Done: the old keys leave the file.
        Some(new) => write_key_file(&file, std::slice::from_ref(new))?,
        // Every key is under the configured one: the generated file has
        // nothing left to open.
        None => match std::fs::remove_file(&file) {
            Ok(()) => tracing::info!(path = %file.display(), "removed the retired key file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(report)
}

/// Every file in the store that holds a wrapped data key.
fn key_material(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.join("meta")];
    while let Some(dir) = stack.pop() {
        for entry in read_dir(&dir)? {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                found.push(path);
            }
        }
    }
    for upload in read_dir(&root.join("multipart"))? {
        for entry in read_dir(&upload.path())? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".json") && name != "manifest.json" {
                found.push(entry.path());
            }
        }
    }
    for entry in read_dir(&root.join("staging"))? {
        if entry.path().extension().is_some_and(|e| e == "crypt") {
            found.push(entry.path());
        }
    }
    Ok(found)
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
