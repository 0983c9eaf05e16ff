use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use stowage::Application;
use stowage::config::Cli;
use uuid::Uuid;

/// The HMAC secret test apps sign with, so tests can forge tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery";

/// Which deployment a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite and the local blob store in a temporary data dir.
    Embedded,
    /// PostgreSQL at `STOWAGE_TEST_DATABASE_URL` (a fresh database per test).
    Services,
}

impl Stack {
    /// Whether to skip a services test: only outside CI, and only when the
    /// services are not configured. In CI a missing service fails the test.
    pub fn skip(self) -> bool {
        if self == Stack::Embedded || std::env::var_os("STOWAGE_TEST_DATABASE_URL").is_some() {
            return false;
        }
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set but STOWAGE_TEST_DATABASE_URL is not: the services stack must be tested in CI"
            );
        }
        eprintln!("skipped: set STOWAGE_TEST_DATABASE_URL (see .ci/run) to run against PostgreSQL");
        true
    }
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
                async fn $name() {
                    if $crate::helpers::Stack::Services.skip() {
                        return;
                    }
                    super::$name($crate::helpers::Stack::Services).await
                }
            )+
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    data_dir: PathBuf,
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
    if stack == Stack::Services {
        push("--database-url", &fresh_postgres_database().await);
    }
    for (k, v) in options {
        push(k, v);
    }
    let cli = Cli::try_parse_from(args).expect("test options parse");
    let app = Application::build(cli.settings)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    TestApp {
        address,
        client,
        data_dir,
    }
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
