//! One typed configuration, built once at start-up. Precedence, highest first:
//! command-line flags, environment variables, `stowage.toml`, built-in
//! defaults. Anything malformed fails here, before the server listens, with a
//! message that names the variable.

mod values;

pub use values::{ByteSize, DatabaseUrl, LogFormat, Rate, parse_duration};
use values::{
    http_url, parse_database_url, parse_issuer, parse_network, parse_origin, parse_public_url,
    parse_secret,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Parser)]
#[command(
    name = "stowage",
    version,
    args_override_self = true,
    about = "Stowage: file storage with direct, multipart and tus uploads, sharing and a trash",
    long_about = "Stowage: file storage with direct, multipart and tus uploads, sharing and a trash.\n\n\
        With no configuration it serves on 127.0.0.1:8080 with SQLite and local blobs under ./data.\n\
        Every option can also be set in the environment (shown below) or in a stowage.toml \
        (in the working directory, or where STOWAGE_CONFIG points) with the same names: \
        `listen = \"0.0.0.0:8080\"` or `STOWAGE_LISTEN = \"0.0.0.0:8080\"`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API (what `stowage` does with no command).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Administration from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The local store's encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document (what /api/v1/openapi.json serves), for
    /// code generators: `stowage openapi > web/openapi.json`.
    Openapi,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every object's data key under a new key-encryption key,
    /// without rewriting objects: the first of STOWAGE_ENCRYPTION_KEY (put
    /// the new key first, the old after it, on every server, then rotate),
    /// or else a new key generated into the data dir's key file. Servers
    /// may keep running; an interrupted rotation goes on when run again.
    Rotate,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AdminCommand {
    /// Create a service user and an `admin` key for it; prints the key
    /// (stk_…), which is shown only this once. Uses the server's database
    /// and secret (STOWAGE_DATABASE_URL, STOWAGE_JWT_SECRET or the data dir).
    CreateKey {
        /// What the key is for, e.g. "billing back end".
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to serve on.
    #[arg(long, env = "STOWAGE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Base of the URLs the server hands out (signed URLs, public links),
    /// e.g. https://files.example.com. Default: http://<listen>.
    #[arg(long, env = "STOWAGE_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Directory for the SQLite file, local blobs and generated secrets.
    #[arg(long, env = "STOWAGE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `sqlite://…` or `postgres://…`. Default: SQLite in the data dir.
    #[arg(long, env = "STOWAGE_DATABASE_URL", value_parser = parse_database_url)]
    pub database_url: Option<DatabaseUrl>,

    /// S3 or MinIO endpoint (e.g. http://127.0.0.1:9000); with a bucket, replaces the local blob store.
    #[arg(long, env = "STOWAGE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 bucket name.
    #[arg(long, env = "STOWAGE_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 region.
    #[arg(long, env = "STOWAGE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Server-side encryption on every S3 write, presigned PUTs and
    /// multipart uploads included: AES256 or aws:kms.
    #[arg(long, env = "STOWAGE_S3_SSE", value_parser = stowage_actors::storage::Sse::parse)]
    pub s3_sse: Option<stowage_actors::storage::Sse>,

    /// Key-encryption key of the local store: base64, 32 bytes (e.g.
    /// `openssl rand -base64 32`); several, comma separated, while rotating
    /// (the first wraps, all unwrap). Default: generated once into the data
    /// dir (blobs/encryption.key).
    #[arg(long, env = "STOWAGE_ENCRYPTION_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub encryption_key: Option<SecretString>,

    /// S3 access key.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_parser = parse_secret, hide_env_values = true)]
    pub aws_access_key_id: Option<SecretString>,

    /// S3 secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub aws_secret_access_key: Option<SecretString>,

    /// NATS server URL; uses NATS JetStream for events instead of the in-process bus.
    #[arg(long, env = "STOWAGE_NATS_URL")]
    pub nats_url: Option<String>,

    /// PEM CA to verify the NATS server with: the connection must be TLS.
    #[arg(long, env = "STOWAGE_NATS_CA")]
    pub nats_ca: Option<PathBuf>,

    /// Subject of incoming object-store events.
    #[arg(
        long,
        env = "STOWAGE_NATS_INGEST_SUBJECT",
        default_value = "stowage.ingest"
    )]
    pub nats_ingest_subject: String,

    /// HMAC secret for tokens and signed URLs, at least 32 bytes. Default:
    /// generated once and kept in the data dir. Several instances must share one.
    #[arg(long, env = "STOWAGE_JWT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,

    /// PBKDF2-HMAC-SHA256 rounds for password hashes (at least 1000).
    #[arg(long, env = "STOWAGE_PBKDF2_ROUNDS", default_value_t = 600_000,
          value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
    pub pbkdf2_rounds: u32,

    /// How long deleted files stay restorable in the trash.
    #[arg(long, env = "STOWAGE_TRASH_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub trash_retention: Duration,

    /// How long an unfinished upload session lives after its last activity.
    #[arg(long, env = "STOWAGE_UPLOAD_EXPIRY", default_value = "24h", value_parser = parse_duration)]
    pub upload_expiry: Duration,

    /// PEM certificate chain: serve HTTPS (reloaded on SIGHUP). Needs STOWAGE_TLS_KEY.
    #[arg(long, env = "STOWAGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of STOWAGE_TLS_CERT.
    #[arg(long, env = "STOWAGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA: verify client certificates against it (mutual TLS).
    #[arg(long, env = "STOWAGE_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Whether a client certificate is `optional` or `required`.
    #[arg(
        long,
        env = "STOWAGE_TLS_CLIENT_AUTH",
        value_enum,
        default_value = "optional"
    )]
    pub tls_client_auth: crate::tls::ClientAuth,

    /// `name=scope+scope,…`: a verified client certificate whose subject CN
    /// or DNS name is `name` acts as a service with those scopes (admin
    /// included, with Stowage-On-Behalf-Of).
    #[arg(long, env = "STOWAGE_MTLS_SERVICES", value_parser = crate::tls::Services::parse)]
    pub mtls_services: Option<crate::tls::Services>,

    /// OpenID Connect issuer whose bearer JWTs are accepted (its `iss`,
    /// exactly), e.g. https://accounts.example.com. Needs STOWAGE_OIDC_AUDIENCE.
    #[arg(long, env = "STOWAGE_OIDC_ISSUER", value_parser = parse_issuer)]
    pub oidc_issuer: Option<String>,

    /// The `aud` the issuer's tokens must carry (your client id).
    #[arg(long, env = "STOWAGE_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// The issuer's JWKS; default: the `jwks_uri` of its discovery document.
    #[arg(long, env = "STOWAGE_OIDC_JWKS_URL", value_parser = parse_issuer)]
    pub oidc_jwks_url: Option<String>,

    /// Let webhooks point at loopback and private addresses (a trusted
    /// network, tests); refused otherwise.
    #[arg(long, env = "STOWAGE_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// Delay before a failed webhook delivery's first retry; each next one
    /// doubles, at most an hour apart, for 24 h.
    #[arg(long, env = "STOWAGE_WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = parse_duration)]
    pub webhook_retry_base: Duration,

    /// Earlier revisions the janitor keeps per file (the newest ones).
    #[arg(long, env = "STOWAGE_REVISIONS_KEEP", default_value_t = 50)]
    pub revisions_keep: u64,

    /// Earlier revisions older than this (since they were uploaded) are deleted.
    #[arg(long, env = "STOWAGE_REVISIONS_MAX_AGE", default_value = "90d", value_parser = parse_duration)]
    pub revisions_max_age: Duration,

    /// Time between janitor sweeps.
    #[arg(long, env = "STOWAGE_JANITOR_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub janitor_interval: Duration,

    /// Largest file accepted (e.g. 5TiB, 64MiB, or plain bytes).
    #[arg(long, env = "STOWAGE_MAX_UPLOAD_SIZE", default_value = "5TiB")]
    pub max_upload_size: ByteSize,

    /// Storage quota of each new account (e.g. 10GiB); unset: unlimited.
    /// Every revision, the trash and unfinished uploads count.
    #[arg(long, env = "STOWAGE_DEFAULT_QUOTA")]
    pub default_quota: Option<ByteSize>,

    /// Requests to /api/v1/auth/* per client IP (N/s, N/min or N/h).
    #[arg(long, env = "STOWAGE_RATE_LIMIT_AUTH", default_value = "30/min")]
    pub rate_limit_auth: Rate,

    /// Other /api/v1 requests per user (N/s, N/min or N/h).
    #[arg(long, env = "STOWAGE_RATE_LIMIT_API", default_value = "1200/min")]
    pub rate_limit_api: Rate,

    /// Comma-separated origins allowed to call the API from a browser
    /// (e.g. https://app.example.com), or `*` for any.
    #[arg(long, env = "STOWAGE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Comma-separated networks (CIDRs or addresses) of the reverse proxies
    /// in front of Stowage: their `X-Forwarded-For` names the client for rate
    /// limits and logs (e.g. 10.0.0.0/8,127.0.0.1). Default: none, every
    /// client is its TCP peer.
    #[arg(long, env = "STOWAGE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Log filter, e.g. `info` or `stowage=debug,info`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub log: String,

    /// Log line format: `text` or `json`.
    #[arg(long, env = "STOWAGE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// HTTP worker threads. Default: one per core.
    #[arg(long, env = "STOWAGE_WORKERS")]
    pub workers: Option<usize>,
}

impl Cli {
    /// Parses flags and environment over the defaults that `stowage.toml`
    /// sets, if there is one.
    pub fn load() -> anyhow::Result<Self> {
        let mut command = Cli::command();
        let file = std::env::var_os("STOWAGE_CONFIG")
            .map(PathBuf::from)
            .map(|p| (p, true))
            .unwrap_or_else(|| (PathBuf::from("stowage.toml"), false));
        if file.0.exists() || file.1 {
            for (id, value) in read_config_file(&file.0)? {
                command = command.mut_arg(id, |arg| arg.default_value(value));
            }
        }
        let matches = command.get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.settings.validate()?;
        Ok(cli)
    }
}

/// Reads `stowage.toml` into (argument id, value) pairs. Keys are option names
/// (`listen`) or their environment variables (`STOWAGE_LISTEN`).
fn read_config_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let table: BTreeMap<String, toml::Value> =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let known: Vec<(String, Option<String>)> = Cli::command()
        .get_arguments()
        .map(|a| {
            (
                a.get_id().to_string(),
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (key, value) in table {
        let id = known
            .iter()
            .find(|(id, env)| {
                id.eq_ignore_ascii_case(&key)
                    || env.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(&key))
            })
            .map(|(id, _)| id.clone())
            .with_context(|| {
                format!(
                    "{}: unknown key `{key}`; `stowage --help` lists the options",
                    path.display()
                )
            })?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{}: `{key}` must be a list of strings", path.display()))?
                .join(","),
            other => bail!(
                "{}: `{key}` must be a string or number, not a {}",
                path.display(),
                other.type_str()
            ),
        };
        out.push((id, value));
    }
    Ok(out)
}

impl Settings {
    /// Checks the combinations that no single value can check alone.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|secret| secret.expose_secret().len() < 32)
        {
            bail!(
                "STOWAGE_JWT_SECRET is shorter than 32 bytes; use a long random string (e.g. `openssl rand -hex 32`)"
            );
        }
        match (&self.s3_endpoint, &self.s3_bucket) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => bail!(
                "set both STOWAGE_S3_ENDPOINT and STOWAGE_S3_BUCKET to use S3, or neither to keep objects locally"
            ),
            (Some(endpoint), Some(_)) => {
                if let Err(e) = http_url(endpoint) {
                    bail!("STOWAGE_S3_ENDPOINT {e} (got {endpoint:?})");
                }
                if self.aws_access_key_id.is_none() || self.aws_secret_access_key.is_none() {
                    bail!("S3 needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
                }
            }
        }
        if self.nats_ca.is_some() && self.nats_url.is_none() {
            bail!("STOWAGE_NATS_CA applies to NATS: set STOWAGE_NATS_URL too");
        }
        if self.s3_sse.is_some() && self.s3_endpoint.is_none() {
            bail!(
                "STOWAGE_S3_SSE applies to S3: set STOWAGE_S3_ENDPOINT and STOWAGE_S3_BUCKET too"
            );
        }
        if self
            .nats_url
            .as_ref()
            .is_some_and(|url| url.trim().is_empty() || url.contains(' '))
        {
            bail!("STOWAGE_NATS_URL is not a NATS URL such as nats://127.0.0.1:4222");
        }
        if self.nats_ingest_subject.is_empty() || self.nats_ingest_subject.contains([' ', '*', '>'])
        {
            bail!("STOWAGE_NATS_INGEST_SUBJECT must be a plain subject such as stowage.ingest");
        }
        if self.workers == Some(0) {
            bail!("STOWAGE_WORKERS must be at least 1");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) | (None, Some(_)) => {
                bail!("set both STOWAGE_TLS_CERT and STOWAGE_TLS_KEY to serve HTTPS, or neither")
            }
            _ => {}
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            bail!("STOWAGE_TLS_CLIENT_CA needs HTTPS: set STOWAGE_TLS_CERT and STOWAGE_TLS_KEY");
        }
        if self.mtls_services.is_some() && self.tls_client_ca.is_none() {
            bail!("STOWAGE_MTLS_SERVICES needs STOWAGE_TLS_CLIENT_CA to verify the certificates");
        }
        match (&self.oidc_issuer, &self.oidc_audience) {
            (Some(_), None) => bail!(
                "STOWAGE_OIDC_ISSUER needs STOWAGE_OIDC_AUDIENCE: the `aud` its tokens carry for Stowage (your client id)"
            ),
            (None, Some(_)) => bail!("STOWAGE_OIDC_AUDIENCE is set without STOWAGE_OIDC_ISSUER"),
            _ => {}
        }
        if self.oidc_jwks_url.is_some() && self.oidc_issuer.is_none() {
            bail!("STOWAGE_OIDC_JWKS_URL is set without STOWAGE_OIDC_ISSUER");
        }
        Ok(())
    }

    /// The listener's TLS files, when it serves HTTPS.
    pub fn tls(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
            client_auth: self.tls_client_auth,
        })
    }

    /// The OpenID Connect issuer to trust, when one is configured.
    pub fn oidc(&self) -> Option<stowage_actors::accounts::OidcConfig> {
        Some(stowage_actors::accounts::OidcConfig {
            issuer: self.oidc_issuer.clone()?,
            audience: self.oidc_audience.clone()?,
            jwks_url: self.oidc_jwks_url.clone(),
        })
    }

    /// The S3 bucket to use, when one is configured.
    pub fn s3(&self) -> Option<stowage_actors::storage::S3Config> {
        Some(stowage_actors::storage::S3Config {
            endpoint: self.s3_endpoint.clone()?,
            bucket: self.s3_bucket.clone()?,
            region: self.s3_region.clone(),
            access_key: self.aws_access_key_id.clone()?,
            secret_key: self.aws_secret_access_key.clone()?,
            sse: self.s3_sse,
        })
    }

    /// The database to use: the configured one, or SQLite in the data dir.
    pub fn database_url(&self) -> DatabaseUrl {
        self.database_url.clone().unwrap_or_else(|| {
            DatabaseUrl(SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("stowage.db").display()
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("512KiB".parse::<ByteSize>().unwrap().0, 512 * 1024);
        assert_eq!("64MiB".parse::<ByteSize>().unwrap().0, 64 << 20);
        assert_eq!("5TiB".parse::<ByteSize>().unwrap().0, 5 << 40);
        assert_eq!("1048576".parse::<ByteSize>().unwrap().0, 1 << 20);
        assert_eq!("10MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        for bad in ["", "MiB", "5 XB", "-1", "0", "99999999999TiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(
            "30/min".parse::<Rate>().unwrap(),
            Rate {
                count: 30,
                per: Duration::from_secs(60)
            }
        );
        assert_eq!("5/s".parse::<Rate>().unwrap().per, Duration::from_secs(1));
        assert_eq!("1000/h".parse::<Rate>().unwrap().count, 1000);
        for bad in ["30", "0/s", "x/min", "5/day"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn defaults_need_no_variable_and_secrets_never_print() {
        let cli = Cli::try_parse_from([
            "stowage",
            "--jwt-secret",
            "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t",
        ])
        .unwrap();
        let s = &cli.settings;
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.trash_retention, Duration::from_secs(7 * 86400));
        assert_eq!(s.max_upload_size.0, 5 << 40);
        assert!(s.database_url().is_sqlite());
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(s.validate().is_ok());
    }

    #[test]
    fn public_urls_and_origins() {
        assert_eq!(parse_public_url("https://x.io/").unwrap(), "https://x.io");
        assert!(parse_public_url("ftp://x.io").is_err());
        assert!(parse_origin("https://app.example.com:8443").is_ok());
        assert!(parse_origin("https://app.example.com/path").is_err());
        assert_eq!(
            parse_origin("https://App.Example.com:443/").unwrap(),
            "https://app.example.com"
        );
        assert!(parse_public_url("https://x .io").is_err());
        assert!(parse_public_url("https://x.io/?a=1").is_err());
        assert_eq!(
            parse_public_url("https://x.io/files/").unwrap(),
            "https://x.io/files"
        );
        assert!(parse_origin("app.example.com").is_err());
    }

    #[test]
    fn config_file_keys_map_to_options() {
        let dir = std::env::temp_dir().join(format!("stowage-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stowage.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nSTOWAGE_PBKDF2_ROUNDS = 2000\n",
        )
        .unwrap();
        let pairs = read_config_file(&path).unwrap();
        assert!(pairs.contains(&("listen".into(), "0.0.0.0:9000".into())));
        assert!(pairs.contains(&("pbkdf2_rounds".into(), "2000".into())));
        std::fs::write(&path, "no_such_option = 1\n").unwrap();
        assert!(
            read_config_file(&path)
                .unwrap_err()
                .to_string()
                .contains("unknown key")
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
