//! Wiring: from a validated `Settings` to a bound, running server.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use actix_web::dev::Server;
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretSlice};
use stowage_actors::accounts::{Accounts, Oidc, PasswordHasher, TokenKeys};
use stowage_actors::events::EventBus;
use stowage_actors::files::{Files, Retention};
use stowage_actors::ingest::{Ingest, IngestActor};
use stowage_actors::janitor::{Janitor, JanitorActor, Shutdown};
use stowage_actors::keys::Keys;
use stowage_actors::links::{Links, UnlockKey};
use stowage_actors::outbox::{OutboxRelayActor, Relay};
use stowage_actors::sharing::Sharing;
use stowage_actors::storage::signing::UrlSigner;
use stowage_actors::storage::{LocalStore, S3Store, Storage, private_dir};
use stowage_actors::tus::Tus;
use stowage_actors::uploads::Uploads;
use stowage_actors::webhooks::{Sender, WebhookActor, Webhooks};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::db;
use crate::http::auth::Identity;
use crate::http::client_ip::{self, TrustedProxies};
use crate::http::rate_limit::RateLimits;
use crate::http::{self, PublicBase, problem, request_id};
use crate::telemetry::{self, StowageRootSpan};

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The bucket name the local store reports in its events.
const LOCAL_BUCKET: &str = "stowage";

pub struct Application {
    port: u16,
    public_url: String,
    server: Server,
    ingest: Addr<IngestActor>,
    janitor: Addr<JanitorActor>,
    janitor_stopping: Arc<std::sync::atomic::AtomicBool>,
    events: EventBus,
    relay: Relay,
    outbox: Addr<OutboxRelayActor>,
    /// Kept so the sender lives as long as the server.
    _webhooks: Addr<WebhookActor>,
}

impl Application {
    /// Opens the database (migrating it), binds the listener and builds the
    /// server. Listening on port 0 picks a free port: see [`Application::port`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Private: the SQLite file, blobs and generated secrets live here.
        private_dir(&settings.data_dir).with_context(|| {
            format!(
                "creating the data directory {}",
                settings.data_dir.display()
            )
        })?;
        let secret = server_secret(&settings)?;
        let database_url = settings.database_url();
        if settings.jwt_secret.is_none() && !database_url.is_sqlite() {
            tracing::warn!(
                "STOWAGE_JWT_SECRET is not set: tokens are signed with a secret kept in this \
                 instance's data dir; set one shared secret when several instances serve together"
            );
        }
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}; is another server using it?", settings.listen))?;
        let addr = listener.local_addr()?;
        let tls = settings.tls();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"));

        let conn = db::connect(&database_url).await?;
        db::migrate(&conn).await?;

        let bus = match &settings.nats_url {
            Some(url) => {
                let ca = settings.nats_ca.as_deref();
                EventBus::connect_nats(url, &settings.nats_ingest_subject, ca).await?
            }
            None => EventBus::in_process(),
        };
        let (storage, bucket, blobs) = match settings.s3() {
            Some(s3) => (
                Storage::S3(Arc::new(S3Store::connect(&s3).await?)),
                s3.bucket,
                None,
            ),
            None => {
                let local = Arc::new(LocalStore::open(
                    &settings.data_dir.join("blobs"),
                    UrlSigner::derive(&secret),
                    &public_url,
                    LOCAL_BUCKET,
                    bus.clone(),
                    settings.encryption_key.as_ref(),
                )?);
                let blobs = web::Data::new(local.clone());
                (Storage::Local(local), LOCAL_BUCKET.to_owned(), Some(blobs))
            }
        };
        let storage = Arc::new(storage);
        let files = Files::new(
            conn.clone(),
            storage.clone(),
            bus.clone(),
            settings.max_upload_size.0,
            settings.trash_retention,
        );
        let uploads = Uploads::new(
            conn.clone(),
            storage.clone(),
            bus.clone(),
            settings.max_upload_size.0,
            settings.upload_expiry,
        );
        let tus = web::Data::new(Tus::new(
            conn.clone(),
            storage.clone(),
            bus.clone(),
            settings.max_upload_size.0,
            settings.upload_expiry,
            settings.data_dir.join("spool"),
        ));
        let ingest = {
            let ingest = Ingest {
                db: conn.clone(),
                storage: storage.clone(),
                bus: bus.clone(),
                bucket,
                verifying: Arc::new(tokio::sync::Semaphore::new(
                    stowage_actors::ingest::VERIFY_CONCURRENCY,
                )),
            };
            Supervisor::start(move |_| IngestActor::new(ingest))
        };

        let hasher = PasswordHasher::new(settings.pbkdf2_rounds)?;
        let links = web::Data::new(Links::new(
            conn.clone(),
            files.clone(),
            hasher.clone(),
            UnlockKey::derive(&secret),
        ));
        let keys = web::Data::new(Keys::new(conn.clone(), &secret));
        let services = web::Data::new(settings.mtls_services.clone().unwrap_or_default());
        let webhooks = web::Data::new(Webhooks::new(conn.clone(), settings.webhook_allow_private));
        let webhook_sender = {
            let sender = Sender::new(
                conn.clone(),
                settings.webhook_allow_private,
                settings.webhook_retry_base,
            );
            Supervisor::start(move |_| WebhookActor::new(sender))
        };
        let identity =
            web::Data::new(Identity(settings.oidc().map(|config| {
                Oidc::new(config, conn.clone(), settings.default_quota.map(|q| q.0))
            })));
        let accounts = web::Data::new(
            Accounts::new(conn.clone(), hasher, TokenKeys::new(&secret))
                .with_default_quota(settings.default_quota.map(|q| q.0)),
        );
        let limits = web::Data::new(RateLimits::new(
            settings.rate_limit_auth,
            settings.rate_limit_api,
            &conn,
        ));
        spawn_limit_pruner(&limits);
        let janitor_stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let janitor = {
            let janitor = Janitor {
                db: conn.clone(),
                storage: storage.clone(),
                bus: bus.clone(),
                trash_retention: settings.trash_retention,
                revisions: Retention {
                    keep: settings.revisions_keep,
                    max_age: settings.revisions_max_age,
                },
                reconcile_after: settings.janitor_interval,
                // Nothing younger than an upload session's lifetime.
                orphan_grace: settings.upload_expiry,
                orphan_cursor: Default::default(),
                retry_after: settings.janitor_interval,
                stopping: janitor_stopping.clone(),
            };
            let interval = settings.janitor_interval;
            Supervisor::start(move |_| JanitorActor::new(janitor, interval))
        };
        let relay = Relay::new(conn.clone(), bus.clone());
        let outbox = {
            let relay = relay.clone();
            Supervisor::start(move |_| OutboxRelayActor::new(relay))
        };
        let sharing = web::Data::new(Sharing::new(conn.clone(), bus.clone()));
        let metrics = web::Data::new(telemetry::metrics_handle());
        let storage_kind = storage.kind();
        let events_handle = bus.clone();
        let events_kind = bus.kind();
        let conn = web::Data::new(conn);
        let files = web::Data::new(files);
        let uploads = web::Data::new(uploads);
        let bus = web::Data::new(bus);
        let storage = web::Data::new(storage);
        let base = web::Data::new(PublicBase(public_url.clone()));
        let proxies = web::Data::new(TrustedProxies::new(settings.trusted_proxies.clone()));
        let cors_origins = cors_origins(&settings.cors_origins, &public_url);
        // The app previews files from signed URLs: the public URL's, or S3's.
        let store_origins: Vec<String> =
            [Some(public_url.as_str()), settings.s3_endpoint.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(origin_of)
                .collect();
        let webapp = web::Data::new(http::webapp::WebApp::new(&store_origins));
        let janitor_addr = web::Data::new(janitor.clone());

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(accounts.clone())
                .app_data(keys.clone())
                .app_data(services.clone())
                .app_data(webhooks.clone())
                .app_data(identity.clone())
                .app_data(limits.clone())
                .app_data(metrics.clone())
                .app_data(conn.clone())
                .app_data(files.clone())
                .app_data(uploads.clone())
                .app_data(tus.clone())
                .app_data(sharing.clone())
                .app_data(links.clone())
                .app_data(bus.clone())
                .app_data(storage.clone())
                .app_data(base.clone())
                .app_data(proxies.clone())
                .app_data(webapp.clone())
                .app_data(janitor_addr.clone())
                .app_data(http::path_config())
                .app_data(http::query_config())
                .configure(http::configure)
                .configure(|cfg| {
                    if let Some(store) = &blobs {
                        http::configure_blobs(cfg, store.clone());
                    }
                })
                .default_service(web::to(http::webapp::fallback))
                .wrap(from_fn(http::rate_limit::middleware))
                .wrap(Condition::new(
                    !cors_origins.is_empty(),
                    http::cors(&cors_origins),
                ))
                .wrap(http::security_headers())
                .wrap(from_fn(http::metrics::middleware))
                .wrap(from_fn(problem::middleware))
                .wrap(TracingLogger::<StowageRootSpan>::new())
                .wrap(from_fn(client_ip::middleware))
                .wrap(from_fn(request_id::middleware))
        })
        .on_connect(crate::tls::on_connect)
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
        server = match &tls {
            Some(files) => {
                let (config, resolver) = crate::tls::server_config(files)?;
                crate::tls::reload_on_sighup(resolver, files.clone())?;
                server.listen_rustls_0_23(listener, config)?
            }
            None => server.listen(listener)?,
        };
        if let Some(n) = settings.workers {
            server = server.workers(n);
        }
        tracing::info!(
            address = %addr,
            public_url = %public_url,
            database = database_url.kind(),
            storage = storage_kind,
            events = events_kind,
            data_dir = %settings.data_dir.display(),
            "stowage listening"
        );
        Ok(Self {
            port: addr.port(),
            public_url,
            server: server.run(),
            ingest,
            janitor,
            janitor_stopping,
            events: events_handle,
            relay,
            outbox,
            _webhooks: webhook_sender,
        })
    }

    /// The event bus (tests publish object-store events on it).
    pub fn events(&self) -> EventBus {
        self.events.clone()
    }

    /// The supervised ingest actor (tests stop it to watch it come back).
    pub fn ingest(&self) -> Addr<IngestActor> {
        self.ingest.clone()
    }

    /// The supervised outbox relay (tests stop it to watch it come back).
    pub fn outbox(&self) -> Addr<OutboxRelayActor> {
        self.outbox.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests and lets
    /// the janitor finish the batch at hand.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await?;
        self.janitor_stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.janitor.send(Shutdown).await;
        // Another instance takes over the outbox at once, not after the lease.
        if let Err(e) = self.relay.resign().await {
            tracing::warn!(error = %e, "could not hand the outbox relay lease back");
        }
        tracing::info!("stowage stopped");
        Ok(())
    }
}

/// The configured origins, plus the server's own when any are configured, so
/// a page served from the public URL can always call the API.
fn cors_origins(configured: &[String], public_url: &str) -> Vec<String> {
    let mut origins = configured.to_vec();
    if !origins.is_empty()
        && !origins.iter().any(|o| o == "*")
        && let Some(own) = origin_of(public_url).filter(|o| !origins.contains(o))
    {
        origins.push(own);
    }
    origins
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    url.split_once("://")
        .map(|(scheme, rest)| format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)))
}

/// Drops idle rate-limit state every minute while the server runs.
fn spawn_limit_pruner(limits: &web::Data<RateLimits>) {
    let weak = Arc::downgrade(&limits.clone().into_inner());
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(limits) => limits.prune().await,
                None => break,
            }
        }
    });
}

/// The server secret: `STOWAGE_JWT_SECRET`, or the one kept in the data
/// dir (created on first use). Tokens, keys' hashes and link grants derive
/// from it.
pub fn server_secret(settings: &Settings) -> anyhow::Result<SecretSlice<u8>> {
    match &settings.jwt_secret {
        Some(s) => Ok(SecretSlice::from(s.expose_secret().as_bytes().to_vec())),
        None => {
            private_dir(&settings.data_dir).with_context(|| {
                format!(
                    "creating the data directory {}",
                    settings.data_dir.display()
                )
            })?;
            load_or_create_secret(&settings.data_dir)
        }
    }
}

/// The signing secret kept in the data dir: read it, or create it once
/// (mode 0600) on first start.
fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<SecretSlice<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = data_dir.join("jwt_secret");
    let read = |path: &Path| -> anyhow::Result<SecretSlice<u8>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let text = text.trim();
        if text.len() < 32 {
            bail!(
                "{} holds fewer than 32 characters; delete it to generate a new one",
                path.display()
            );
        }
        Ok(SecretSlice::from(text.as_bytes().to_vec()))
    };
    if path.exists() {
        return read(&path);
    }
    let mut raw = [0u8; 48];
    rand::fill(&mut raw);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match created {
        Ok(mut file) => {
            file.write_all(hex::encode(raw).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a token signing secret");
            read(&path)
        }
        // Another process created it first.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origin_joins_configured_ones() {
        let o = cors_origins(
            &["https://app.example.com".into()],
            "https://files.example.com/base",
        );
        assert_eq!(o, ["https://app.example.com", "https://files.example.com"]);
        assert!(cors_origins(&[], "http://127.0.0.1:8080").is_empty());
        assert_eq!(cors_origins(&["*".into()], "http://x"), ["*"]);
    }

    #[test]
    fn the_secret_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("stowage-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = load_or_create_secret(&dir).unwrap();
        let b = load_or_create_secret(&dir).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        let mode = std::fs::metadata(dir.join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).ok();
    }
}
