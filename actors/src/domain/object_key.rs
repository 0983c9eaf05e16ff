use std::fmt;

use uuid::Uuid;

/// Where a file's bytes live in the object store: chosen by the server,
/// never derived from a user's file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    owner_id: Uuid,
    file_id: Uuid,
}

impl ObjectKey {
    pub const PREFIX: &'static str = "users/";

    pub fn new(owner_id: Uuid, file_id: Uuid) -> Self {
        Self { owner_id, file_id }
    }

    /// Reads a key the store reported. Accepts `users/<owner>/files/<file>`,
    /// optionally followed by one more segment (stores that append the file
    /// name); anything else is not ours.
    pub fn parse(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(Self::PREFIX)?;
        let mut parts = rest.splitn(4, '/');
        let owner_id = Uuid::parse_str(parts.next()?).ok()?;
        if parts.next()? != "files" {
            return None;
        }
        let file_id = Uuid::parse_str(parts.next()?).ok()?;
        match parts.next() {
            None => {}
            Some(tail) if !tail.is_empty() && !tail.contains('/') => {}
            Some(_) => return None,
        }
        Some(Self { owner_id, file_id })
    }

    pub fn owner_id(&self) -> Uuid {
        self.owner_id
    }

    pub fn file_id(&self) -> Uuid {
        self.file_id
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "users/{}/files/{}", self.owner_id, self.file_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_refused() {
        let k = ObjectKey::new(Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(ObjectKey::parse(&k.to_string()), Some(k.clone()));
        let with_name = format!("{k}/Quarterly Report (final).pdf");
        assert_eq!(ObjectKey::parse(&with_name), Some(k.clone()));
        for bad in [
            "",
            "users/",
            "other/x/files/y",
            "users/not-a-uuid/files/0190e0a0-0000-7000-8000-000000000000",
            &format!("users/{}/blobs/{}", k.owner_id(), k.file_id()),
            &format!("{k}/a/b"),
            &format!("{k}/"),
            "../../etc/passwd",
        ] {
            assert_eq!(ObjectKey::parse(bad), None, "{bad:?}");
        }
    }
}
