//! Who a request acts as, and by what right: a login's access token, or a
//! key with its scopes (an admin key possibly acting for another user).

use uuid::Uuid;

use super::AuthError;

/// What a key may do. `files:write` includes reading, `admin` everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    read: bool,
    write: bool,
    admin: bool,
}

/// The names of the scopes, as the API spells them.
pub const SCOPE_NAMES: [&str; 3] = ["files:read", "files:write", "admin"];

impl Scopes {
    pub const ADMIN: Scopes = Scopes {
        read: false,
        write: false,
        admin: true,
    };

    /// From their names; unknown ones are `Err(name)`.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut s = Self::default();
        for name in names {
            match name {
                "files:read" => s.read = true,
                "files:write" => s.write = true,
                "admin" => s.admin = true,
                other => return Err(other.to_owned()),
            }
        }
        Ok(s)
    }

    pub fn names(self) -> Vec<&'static str> {
        [self.read, self.write, self.admin]
            .into_iter()
            .zip(SCOPE_NAMES)
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }

    pub fn is_empty(self) -> bool {
        self == Self::default()
    }

    pub fn admin(self) -> bool {
        self.admin
    }

    /// Whether these scopes reach what a route needs.
    pub fn allow(self, need: Need) -> bool {
        match need {
            Need::Read => self.read || self.write || self.admin,
            Need::Write => self.write || self.admin,
            Need::Admin => self.admin,
        }
    }
}

/// What a route needs of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A reading route.
    Read,
    /// Any other files, folders, uploads, shares, links or webhooks route.
    Write,
    /// The admin routes, minting keys with `admin`, acting for another user.
    Admin,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Read => "files:read",
            Need::Write => "files:write",
            Need::Admin => "admin",
        }
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A login's access token.
    Session { session_id: Uuid },
    /// A token of the configured OpenID Connect issuer.
    Identity,
    /// A key: its id, scopes, and the user it belongs to (who differs from
    /// the caller's `user_id` when an admin key acts for someone).
    Key {
        key_id: Uuid,
        scopes: Scopes,
        holder: Uuid,
    },
    /// A verified client certificate named in `STOWAGE_MTLS_SERVICES`: a
    /// service with those scopes, acting as its own user (`holder`) or,
    /// with `admin`, for another.
    Certificate { scopes: Scopes, holder: Uuid },
}

/// The caller of an authenticated route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The user the request acts as.
    pub user_id: Uuid,
    pub via: Via,
}

impl Caller {
    /// `Ok` if the caller may use a route that needs `need`: a login may
    /// do everything its user may (but no admin route), a key what its
    /// scopes allow; else 403 `insufficient_scope`.
    pub fn require(&self, need: Need) -> Result<(), AuthError> {
        let ok = match self.via {
            Via::Session { .. } | Via::Identity => need != Need::Admin,
            Via::Key { scopes, .. } | Via::Certificate { scopes, .. } => scopes.allow(need),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(need.as_str()))
        }
    }

    /// `Ok` for a login, or a key with the admin scope: who may manage keys
    /// (a plain key minting more keys would outlive its own revocation).
    pub fn require_login_or_admin(&self) -> Result<(), AuthError> {
        match self.via {
            Via::Session { .. } | Via::Identity => Ok(()),
            Via::Key { scopes, .. } | Via::Certificate { scopes, .. } if scopes.admin() => Ok(()),
            Via::Key { .. } | Via::Certificate { .. } => Err(AuthError::LoginRequired),
        }
    }

    /// The key that made the request, if a key did.
    pub fn key_id(&self) -> Option<Uuid> {
        match self.via {
            Via::Key { key_id, .. } => Some(key_id),
            Via::Session { .. } | Via::Identity | Via::Certificate { .. } => None,
        }
    }

    /// Whether the caller is a key or service acting as its own user (not
    /// for another).
    pub fn as_itself(&self) -> bool {
        match self.via {
            Via::Key { holder, .. } | Via::Certificate { holder, .. } => holder == self.user_id,
            Via::Session { .. } | Via::Identity => true,
        }
    }

    /// Whether the caller holds the admin scope.
    pub fn is_admin(&self) -> bool {
        matches!(self.via, Via::Key { scopes, .. } | Via::Certificate { scopes, .. } if scopes.admin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_includes_read_and_admin_everything() {
        let read = Scopes::from_names(["files:read"]).unwrap();
        let write = Scopes::from_names(["files:write"]).unwrap();
        assert!(read.allow(Need::Read) && !read.allow(Need::Write) && !read.allow(Need::Admin));
        assert!(write.allow(Need::Read) && write.allow(Need::Write) && !write.allow(Need::Admin));
        assert!(Scopes::ADMIN.allow(Need::Write) && Scopes::ADMIN.allow(Need::Admin));
        assert_eq!(
            Scopes::from_names(["files:exec"]),
            Err("files:exec".to_owned())
        );
        let both = Scopes::from_names(["admin", "files:read"]).unwrap();
        assert_eq!(both.names(), ["files:read", "admin"]);
        assert_eq!(Scopes::from_names(both.names()).unwrap(), both);
    }
}
