//! The values of settings: how each is parsed and checked.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// A database URL; may carry a password, so it never prints.
#[derive(Clone)]
pub struct DatabaseUrl(pub(super) SecretString);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_sqlite(&self) -> bool {
        self.expose().starts_with("sqlite:")
    }

    /// The kind of database, for logs.
    pub fn kind(&self) -> &'static str {
        if self.is_sqlite() {
            "sqlite"
        } else {
            "postgres"
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://<redacted>)", self.kind())
    }
}

pub(super) fn parse_database_url(s: &str) -> Result<DatabaseUrl, String> {
    if s.starts_with("sqlite:") || s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(DatabaseUrl(SecretString::from(s.to_owned())))
    } else {
        Err("must start with sqlite:, postgres:// or postgresql://".into())
    }
}

pub(super) fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// An `http(s)` URL with a host, parsed by the `url` crate.
pub(super) fn http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s.trim()).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("must start with http:// or https:// and name a host".into());
    }
    Ok(url)
}

/// An http(s) URL, kept as written (an issuer is compared with `iss` exactly).
pub(super) fn parse_issuer(s: &str) -> Result<String, String> {
    http_url(s)?;
    Ok(s.to_owned())
}

pub(super) fn parse_public_url(s: &str) -> Result<String, String> {
    let url = http_url(s)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "must be a base URL such as https://files.example.com, without query or fragment"
                .into(),
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (a /32 or /128).
pub(super) fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not a network (10.0.0.0/8) or an address (10.0.0.1)"))
}

pub(super) fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s == "*" {
        return Ok(s.to_owned());
    }
    let url = http_url(s).map_err(|e| format!("origin `{s}` {e}"))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "origin `{s}` must be scheme://host[:port], without a path"
        ));
    }
    // As browsers send it: no trailing slash, the default port left out.
    Ok(url.origin().ascii_serialization())
}

/// Parses `500ms`, `30s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration such as 500ms, 30s, 15m, 24h or 7d ({e})"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// A size in bytes, written `512KiB`, `64MiB`, `5TiB`, `10MB` or plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    /// Parsed by the `bytesize` crate (binary and decimal units).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| {
                format!("`{s}` is not a size such as 512KiB, 64MiB, 5TiB or 1048576 ({e})")
            })?
            .as_u64();
        match bytes {
            0 => Err("must be larger than zero".into()),
            u64::MAX => Err(format!("`{s}` is too large")),
            n => Ok(Self(n)),
        }
    }
}

/// A request budget: `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a rate such as 30/min, 5/s or 1000/h");
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err("must allow at least one request".into());
        }
        Ok(Self { count, per })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
