//! The local store's key-encryption keys (KEKs). Every object's data key is
//! kept wrapped (AES-256-GCM) by one of them; the wrapped key names its KEK
//! by a fingerprint, so the ring can hold the keys of a rotation in flight.
//!
//! Where the keys come from:
//! - `STOWAGE_ENCRYPTION_KEY`: one or more base64 32-byte keys, comma
//!   separated; the first wraps, every one unwraps. Keys in the data dir's
//!   key file (below) still unwrap, so moving to a configured key loses
//!   nothing.
//! - otherwise the key file `encryption.key` in the store's directory,
//!   generated once (mode 0600): a key a line, the first current. Rotation
//!   puts the new key first, re-wraps, then leaves it alone in the file; a
//!   running server sees the file change (a `stat` before each wrap) and
//!   wraps with the new key from then on.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aead::AeadInOut;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::gcm::Aes256Gcm;

/// A data key as stored: sealed by the KEK `kek` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The KEK's fingerprint (hex, 16 digits).
    pub kek: String,
    /// base64, 12 bytes.
    pub nonce: String,
    /// base64: the 32-byte key and its 16-byte tag.
    pub sealed: String,
}

/// What binds a wrapped key to its purpose.
const WRAP_AAD: &[u8] = b"stowage data key v1";

/// The name of the generated key file in the store's directory.
pub const KEY_FILE: &str = "encryption.key";

#[derive(Clone)]
struct Kek {
    id: String,
    cipher: Aes256Gcm,
}

impl Kek {
    fn new(key: &[u8; 32]) -> Self {
        let digest = Sha256::new_with_prefix(b"stowage kek id").chain_update(key);
        Self {
            id: hex::encode(&digest.finalize()[..8]),
            cipher: Aes256Gcm::new(key),
        }
    }

    fn wrap(&self, data_key: &[u8; 32]) -> WrappedKey {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = data_key.to_vec();
        self.cipher
            .encrypt_in_place(&nonce.into(), WRAP_AAD, &mut buf)
            .expect("a Vec grows to take the tag");
        WrappedKey {
            kek: self.id.clone(),
            nonce: B64.encode(nonce),
            sealed: B64.encode(buf),
        }
    }

    fn unwrap(&self, wrapped: &WrappedKey) -> std::io::Result<[u8; 32]> {
        let bad = || damaged("a wrapped data key does not open with its key-encryption key");
        let nonce: [u8; 12] = B64
            .decode(&wrapped.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(bad)?;
        let mut buf = B64.decode(&wrapped.sealed).map_err(|_| bad())?;
        self.cipher
            .decrypt_in_place(&nonce.into(), WRAP_AAD, &mut buf)
            .map_err(|_| bad())?;
        buf.try_into().map_err(|_| bad())
    }
}

/// The state of the key file when last read: a changed file is re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified_ns: i128,
    len: u64,
}

struct Ring {
    /// Every key seen, current or not: a key leaves memory only with the process.
    known: Vec<Kek>,
    current: Kek,
    stamp: Option<Stamp>,
}

pub struct Keyring {
    /// The configured keys, if any (they win over the file).
    configured: Vec<Kek>,
    file: PathBuf,
    ring: Mutex<Ring>,
}

impl Keyring {
    /// The configured keys, or the store's key file (made if missing).
    pub fn open(dir: &Path, configured: Option<&SecretString>) -> anyhow::Result<Self> {
        let configured = match configured {
            Some(keys) => parse_keys(keys.expose_secret()).context(
                "STOWAGE_ENCRYPTION_KEY must be base64 32-byte keys, comma separated \
                 (make one with `openssl rand -base64 32`)",
            )?,
            None => Vec::new(),
        };
        let file = dir.join(KEY_FILE);
        if configured.is_empty() {
            generate_key_file(&file)?;
        }
        let mut known = configured.clone();
        let (from_file, stamp) = read_key_file(&file)?;
        known.extend(from_file.iter().cloned());
        let current = configured
            .first()
            .or(from_file.first())
            .cloned()
            .with_context(|| format!("the key file {} holds no key", file.display()))?;
        Ok(Self {
            configured,
            file,
            ring: Mutex::new(Ring {
                known,
                current,
                stamp,
            }),
        })
    }

    /// Wraps a data key with the current KEK.
    pub fn wrap(&self, data_key: &[u8; 32]) -> std::io::Result<WrappedKey> {
        self.refresh()?;
        Ok(self.lock().current.wrap(data_key))
    }

    pub fn unwrap(&self, wrapped: &WrappedKey) -> std::io::Result<[u8; 32]> {
        if let Some(kek) = self.find(&wrapped.kek) {
            return kek.unwrap(wrapped);
        }
        self.refresh()?;
        match self.find(&wrapped.kek) {
            Some(kek) => kek.unwrap(wrapped),
            None => Err(damaged(&format!(
                "the data key is wrapped by key-encryption key {}, which this server does not \
                 have; configure it in STOWAGE_ENCRYPTION_KEY (after the current key)",
                wrapped.kek
            ))),
        }
    }

    /// Whether `kek` is the key new data keys are wrapped with now.
    pub fn is_current(&self, kek: &str) -> std::io::Result<bool> {
        self.refresh()?;
        Ok(self.lock().current.id == kek)
    }

    /// The current KEK's fingerprint.
    pub fn current_id(&self) -> std::io::Result<String> {
        self.refresh()?;
        Ok(self.lock().current.id.clone())
    }

    /// Re-reads the key file if it changed on disk (one `stat` otherwise).
    fn refresh(&self) -> std::io::Result<()> {
        let stamp = stamp_of(&self.file)?;
        if stamp == self.lock().stamp {
            return Ok(());
        }
        let (from_file, stamp) = read_key_file(&self.file).map_err(std::io::Error::other)?;
        let mut ring = self.lock();
        for kek in &from_file {
            if !ring.known.iter().any(|k| k.id == kek.id) {
                ring.known.push(kek.clone());
            }
        }
        if self.configured.is_empty()
            && let Some(first) = from_file.first()
        {
            ring.current = first.clone();
        }
        ring.stamp = stamp;
        Ok(())
    }

    fn find(&self, id: &str) -> Option<Kek> {
        self.lock().known.iter().find(|k| k.id == id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stored object's key material cannot be used: damage, not the client's fault.
pub(super) fn damaged(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn parse_keys(text: &str) -> anyhow::Result<Vec<Kek>> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| {
            let bytes: [u8; 32] = B64
                .decode(k)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("a key is not 32 bytes of base64")?;
            Ok(Kek::new(&bytes))
        })
        .collect()
}

/// A new random key, base64.
pub(super) fn new_key() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    B64.encode(key)
}

/// The keys in the key file, and the file's stamp (none if it is absent).
fn read_key_file(file: &Path) -> anyhow::Result<(Vec<Kek>, Option<Stamp>)> {
    let stamp = stamp_of(file)?;
    if stamp.is_none() {
        return Ok((Vec::new(), None));
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the key file {}", file.display()))?;
    let keys = parse_keys(&text).with_context(|| format!("the key file {}", file.display()))?;
    Ok((keys, stamp))
}

fn stamp_of(file: &Path) -> std::io::Result<Option<Stamp>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(file) {
        Ok(m) => Ok(Some(Stamp {
            inode: m.ino(),
            modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            len: m.len(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a first key to `file` unless one is there (0600, never replaced).
fn generate_key_file(file: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(mut f) => {
            writeln!(f, "{}", new_key())?;
            f.sync_all()?;
            tracing::info!(path = %file.display(), "generated the key-encryption key");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the key file {}", file.display())),
    }
}

/// Replaces the key file's keys (atomically, 0600).
pub(super) fn write_key_file(file: &Path, keys: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    std::io::Write::write_all(&mut tmp, format!("{}\n", keys.join("\n")).as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(file)?;
    Ok(())
}

/// The key file's lines, as written.
pub(super) fn key_file_lines(file: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(file)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_with_its_kek() {
        let (a, b) = (Kek::new(&[1; 32]), Kek::new(&[2; 32]));
        let wrapped = a.wrap(&[7; 32]);
        assert_eq!(a.unwrap(&wrapped).unwrap(), [7; 32]);
        assert_ne!(a.id, b.id);
        assert!(b.unwrap(&wrapped).is_err());
        let mut tampered = wrapped.clone();
        tampered.sealed = B64.encode([0u8; 48]);
        assert!(a.unwrap(&tampered).is_err());
    }

    #[test]
    fn configured_keys_are_checked() {
        assert!(parse_keys("not base64!").is_err());
        assert!(parse_keys(&B64.encode([0u8; 16])).is_err());
        let two = format!("{}, {}", B64.encode([1u8; 32]), B64.encode([2u8; 32]));
        assert_eq!(parse_keys(&two).unwrap().len(), 2);
    }

    #[test]
    fn a_server_follows_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path(), None).unwrap();
        let first = ring.current_id().unwrap();
        let old = ring.wrap(&[9; 32]).unwrap();
        let file = dir.path().join(KEY_FILE);
        let mut lines = key_file_lines(&file).unwrap();
        lines.insert(0, new_key());
        write_key_file(&file, &lines).unwrap();
        assert_ne!(ring.current_id().unwrap(), first);
        assert!(!ring.is_current(&old.kek).unwrap());
        // The old key leaves the file; the server still opens what it wrapped.
        write_key_file(&file, &lines[..1]).unwrap();
        assert_eq!(ring.unwrap(&old).unwrap(), [9; 32]);
        let fresh = Keyring::open(dir.path(), None).unwrap();
        assert!(fresh.unwrap(&old).is_err());
    }
}
