use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stowage::Application;
use stowage::config::Cli;
use stowage_actors::events::EventBus;
use stowage_actors::ingest::IngestActor;
use uuid::Uuid;

/// The HMAC secret test apps sign with, so tests can forge tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery";

/// Which deployment a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite and the local blob store in a temporary data dir.
    Embedded,
    /// PostgreSQL, S3 and NATS at `STOWAGE_TEST_DATABASE_URL`,
    /// `STOWAGE_TEST_S3_ENDPOINT` and `STOWAGE_TEST_NATS_URL`: a fresh
    /// database, bucket and ingest subject per test.
    Services,
}

/// What the services stack needs.
const SERVICE_VARS: [&str; 5] = [
    "STOWAGE_TEST_DATABASE_URL",
    "STOWAGE_TEST_S3_ENDPOINT",
    "STOWAGE_TEST_S3_ACCESS_KEY",
    "STOWAGE_TEST_S3_SECRET_KEY",
    "STOWAGE_TEST_NATS_URL",
];

impl Stack {
    /// Fails a services test whose services are not configured at run time.
    /// (Without them at build time, `build.rs` compiles these tests as
    /// ignored, so they are reported as ignored, never as passed.)
    pub fn require(self) {
        if self == Stack::Embedded {
            return;
        }
        let missing: Vec<&str> = SERVICE_VARS
            .iter()
            .copied()
            .filter(|v| std::env::var_os(v).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "the tests were built for the services stack but {missing:?} are not set now (see .ci/run)"
        );
    }
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"))
}

/// Defines each named `async fn(Stack)` as two tests, one per stack.
#[macro_export]
macro_rules! on_both_stacks {
    ($($name:ident),+ $(,)?) => {
        mod embedded {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Stack::Embedded).await
                }
            )+
        }
        mod services {
            $(
                #[actix_web::test]
                #[cfg_attr(
                    not(stowage_services),
                    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
                )]
                async fn $name() {
                    $crate::helpers::Stack::Services.require();
                    super::$name($crate::helpers::Stack::Services).await
                }
            )+
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub stack: Stack,
    /// The supervised ingest actor.
    pub ingest: actix::Addr<IngestActor>,
    /// The bus the app's ingest reads: tests publish object-store events here,
    /// in-process or over NATS exactly as MinIO would.
    pub bus: EventBus,
    /// The bucket object events name.
    pub bucket: String,
    pub data_dir: PathBuf,
    /// The PostgreSQL database (services stack).
    pub database_url: Option<String>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The application with test defaults: cheap password hashing, generous
/// rate limits, one worker.
pub async fn spawn_app(stack: Stack) -> TestApp {
    spawn_app_with(stack, &[]).await
}

/// The application with extra command-line options, e.g.
/// `&[("--rate-limit-auth", "3/min")]`.
pub async fn spawn_app_with(stack: Stack, options: &[(&str, &str)]) -> TestApp {
    let shared = Shared::new(stack).await;
    start(stack, options, &shared).await
}

/// `count` instances sharing one PostgreSQL database, bucket and NATS
/// ingest subject, as several instances behind a load balancer would.
pub async fn spawn_cluster(count: usize, options: &[(&str, &str)]) -> Vec<TestApp> {
    let shared = Shared::new(Stack::Services).await;
    let mut apps = Vec::with_capacity(count);
    for _ in 0..count {
        apps.push(start(Stack::Services, options, &shared).await);
    }
    apps
}

/// What the instances of one test share.
struct Shared {
    database_url: Option<String>,
    bucket: String,
    ingest_subject: String,
}

impl Shared {
    async fn new(stack: Stack) -> Self {
        let run = Uuid::new_v4().simple().to_string();
        match stack {
            Stack::Embedded => Self {
                database_url: None,
                bucket: "stowage".into(),
                ingest_subject: "stowage.ingest".into(),
            },
            Stack::Services => Self {
                database_url: Some(fresh_postgres_database().await),
                bucket: format!("stowage-t-{}", &run[..20]),
                ingest_subject: format!("stowage.t{run}.ingest"),
            },
        }
    }
}

async fn start(stack: Stack, options: &[(&str, &str)], shared: &Shared) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        stowage::telemetry::init_tracing("debug", stowage::config::LogFormat::Text);
    }
    let data_dir = std::env::temp_dir().join(format!("stowage-test-{}", Uuid::new_v4()));
    let mut args: Vec<String> = vec!["stowage".into()];
    let mut push = |k: &str, v: &str| {
        args.push(k.into());
        args.push(v.into());
    };
    push("--listen", "127.0.0.1:0");
    push("--data-dir", data_dir.to_str().unwrap());
    push("--jwt-secret", JWT_SECRET);
    push("--pbkdf2-rounds", "1000");
    push("--workers", "1");
    push("--rate-limit-auth", "100000/min");
    push("--rate-limit-api", "100000/min");
    let bucket = shared.bucket.clone();
    if let Some(database_url) = &shared.database_url {
        push("--database-url", database_url);
        push("--s3-endpoint", &env("STOWAGE_TEST_S3_ENDPOINT"));
        push("--s3-bucket", &bucket);
        push("--aws-access-key-id", &env("STOWAGE_TEST_S3_ACCESS_KEY"));
        push(
            "--aws-secret-access-key",
            &env("STOWAGE_TEST_S3_SECRET_KEY"),
        );
        push("--nats-url", &env("STOWAGE_TEST_NATS_URL"));
        if let Some(ca) = nats_ca() {
            push("--nats-ca", &ca);
        }
        push("--nats-ingest-subject", &shared.ingest_subject);
    }
    for (k, v) in options {
        push(k, v);
    }
    let cli = Cli::try_parse_from(args).expect("test options parse");
    let app = Application::build(cli.settings)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let ingest = app.ingest();
    // The app's own bus: in-process, or its NATS connection.
    let bus = app.events();
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        stack,
        ingest,
        bus,
        bucket,
        data_dir,
        database_url: shared.database_url.clone(),
    }
}

/// Settings (environment variables) for a server process of its own on the
/// services stack: a fresh database, bucket and ingest subject.
pub async fn fresh_service_settings() -> Vec<(String, String)> {
    let run = Uuid::new_v4().simple().to_string();
    vec![
        (
            "STOWAGE_DATABASE_URL".into(),
            fresh_postgres_database().await,
        ),
        (
            "STOWAGE_S3_ENDPOINT".into(),
            env("STOWAGE_TEST_S3_ENDPOINT"),
        ),
        (
            "STOWAGE_S3_BUCKET".into(),
            format!("stowage-t-{}", &run[..20]),
        ),
        (
            "AWS_ACCESS_KEY_ID".into(),
            env("STOWAGE_TEST_S3_ACCESS_KEY"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            env("STOWAGE_TEST_S3_SECRET_KEY"),
        ),
        ("STOWAGE_NATS_URL".into(), env("STOWAGE_TEST_NATS_URL")),
        (
            "STOWAGE_NATS_INGEST_SUBJECT".into(),
            format!("stowage.t{run}.ingest"),
        ),
    ]
    .into_iter()
    .chain(nats_ca().map(|ca| ("STOWAGE_NATS_CA".into(), ca)))
    .collect()
}

/// The CA of the test NATS server when it speaks only TLS
/// (`STOWAGE_TEST_NATS_CA`, as `scripts/tls-services.sh` sets it).
pub fn nats_ca() -> Option<String> {
    std::env::var("STOWAGE_TEST_NATS_CA").ok()
}

/// A client of the test NATS server, as an outside consumer connects.
pub async fn nats_client() -> async_nats::Client {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(ca) = nats_ca() {
        options = options.add_root_certificates(ca.into()).require_tls(true);
    }
    options
        .connect(env("STOWAGE_TEST_NATS_URL"))
        .await
        .expect("the test NATS server at STOWAGE_TEST_NATS_URL answers")
}

/// Creates an empty database on the test PostgreSQL server; returns its URL.
async fn fresh_postgres_database() -> String {
    let admin_url = std::env::var("STOWAGE_TEST_DATABASE_URL").expect("STOWAGE_TEST_DATABASE_URL");
    let name = format!("stowage_t_{}", Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at STOWAGE_TEST_DATABASE_URL is unreachable: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    admin.close().await.ok();
    with_database_name(&admin_url, &name)
}

/// `postgres://u@h:p/old?x` with the database name replaced.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that differ from test to test.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let seed = Uuid::new_v4();
    (0..len)
        .map(|i| seed.as_bytes()[i % 16].wrapping_add((i / 16) as u8))
        .collect()
}

/// A random 32-byte key, base64 (as `openssl rand -base64 32` makes).
pub fn random_key_b64() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A signed-up user.
pub struct User {
    pub id: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_authed(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/signup",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    pub async fn post_authed(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_file(
        &self,
        token: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Response {
        let mut req = self
            .client
            .patch(self.url(&format!("/api/v1/files/{id}")))
            .bearer_auth(token)
            .json(body);
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        req.send().await.unwrap()
    }

    /// `POST /api/v1/uploads`; asserts 201 and returns the body.
    pub async fn create_upload(&self, token: &str, body: &Value) -> Value {
        let res = self.post_authed("/api/v1/uploads", token, body).await;
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        res.json().await.unwrap()
    }

    /// PUTs bytes to an upload ticket's URL with its headers.
    pub async fn put_to_ticket(&self, upload: &Value, bytes: Vec<u8>) -> Response {
        let mut req = self.client.put(upload["url"].as_str().unwrap());
        for (k, v) in upload["headers"].as_object().unwrap() {
            if !k.eq_ignore_ascii_case("content-length") {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        req.body(bytes).send().await.unwrap()
    }

    /// What MinIO publishes after a PUT of `size` bytes at `key`.
    pub fn minio_event(&self, key: &str, size: u64) -> Vec<u8> {
        let template: Value =
            serde_json::from_str(include_str!("../fixtures/minio-put.json")).unwrap();
        let mut event = template;
        let escaped: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
        event["Key"] = json!(format!("{}/{key}", self.bucket));
        let record = &mut event["Records"][0];
        record["eventTime"] = json!(
            chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        );
        record["s3"]["bucket"]["name"] = json!(self.bucket);
        record["s3"]["object"]["key"] = json!(escaped);
        record["s3"]["object"]["size"] = json!(size);
        serde_json::to_vec(&event).unwrap()
    }

    /// Publishes an object-store event where the app's ingest reads.
    pub async fn publish_event(&self, payload: Vec<u8>) {
        self.bus
            .publish_object_event(payload)
            .await
            .expect("event published");
    }

    /// Does what the store does after a PUT: on the embedded stack the local
    /// store has already announced it; on S3 the test plays MinIO's part.
    pub async fn announce_put(&self, owner_id: &str, file_id: &str, size: u64) {
        if self.stack == Stack::Services {
            let key = format!("users/{owner_id}/files/{file_id}");
            self.publish_event(self.minio_event(&key, size)).await;
        }
    }

    pub async fn get_file(&self, token: &str, id: &str) -> Response {
        self.get_authed(&format!("/api/v1/files/{id}"), token).await
    }

    /// Polls until the file is available (or panics after `secs`).
    pub async fn wait_available(&self, token: &str, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let file: Value = self.get_file(token, id).await.json().await.unwrap();
            if file["status"] == "available" {
                return file;
            }
            assert!(
                Instant::now() < deadline,
                "file {id} still {} after {secs} s",
                file["status"]
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Uploads `bytes` as a new file and waits until it is available.
    pub async fn upload_file(&self, user: &User, name: &str, bytes: &[u8]) -> Value {
        let created = self
            .create_upload(
                &user.access_token,
                &json!({"name": name, "size": bytes.len(), "content_type": "application/octet-stream"}),
            )
            .await;
        let res = self.put_to_ticket(&created["upload"], bytes.to_vec()).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let id = created["file"]["id"].as_str().unwrap();
        self.announce_put(&user.id, id, bytes.len() as u64).await;
        self.wait_available(&user.access_token, id, 20).await
    }

    /// Follows `GET /api/v1/files/{id}/content` to the bytes.
    pub async fn download(&self, token: &str, id: &str) -> Vec<u8> {
        let res = self
            .get_authed(&format!("/api/v1/files/{id}/content"), token)
            .await;
        assert_eq!(res.status(), 302);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let res = self.client.get(location).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap().to_vec()
    }

    /// The Prometheus text the app exposes.
    pub async fn metrics_text(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// The value of the first metric line starting with `line_start` (0 if none).
    pub async fn metric(&self, line_start: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Signs up a user with a fresh address and [`PASSWORD`].
    pub async fn new_user(&self) -> User {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let res = self.signup(&email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        User::from_session(&res.json().await.unwrap())
    }
}

impl User {
    pub fn from_session(session: &Value) -> Self {
        Self {
            id: session["user"]["id"].as_str().unwrap().to_owned(),
            email: session["user"]["email"].as_str().unwrap().to_owned(),
            access_token: session["access_token"].as_str().unwrap().to_owned(),
            refresh_token: session["refresh_token"].as_str().unwrap().to_owned(),
        }
    }
}

/// Asserts that `res` is a problem+json error with this status and code,
/// whose `request_id` is the one in the `x-request-id` header; returns the body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    let headers: HeaderMap = res.headers().clone();
    assert_eq!(res.status().as_u16(), status, "status of {}", res.url());
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "content type"
    );
    let body: Value = res.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], "about:blank");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    let header_id = headers
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap();
    assert_eq!(body["request_id"], header_id, "{body}");
    body
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(
        with_database_name("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database_name("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database_name("postgres://h:1", "x"),
        "postgres://h:1/x"
    );
}

/// Makes sure the Python packages a test drives are importable, installing
/// the missing ones from PyPI once (so `cargo test` works on a fresh
/// machine with python3 and pip). `modules`: (import name, package name).
pub fn python_packages(modules: &[(&str, &str)]) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = modules
        .iter()
        .filter(|(module, _)| {
            !std::process::Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet"])
        .args(&missing)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the tests need the Python packages {missing:?} and pip could not install them: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
