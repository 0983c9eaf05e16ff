//! The `stowage` binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stowage");

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stowage-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command with none of the caller's STOWAGE_* settings.
fn stowage() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STOWAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn help_documents_every_variable_of_the_contract() {
    let out = stowage().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "STOWAGE_LISTEN",
        "STOWAGE_PUBLIC_URL",
        "STOWAGE_DATA_DIR",
        "STOWAGE_DATABASE_URL",
        "STOWAGE_S3_ENDPOINT",
        "STOWAGE_S3_BUCKET",
        "STOWAGE_S3_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "STOWAGE_NATS_URL",
        "STOWAGE_JWT_SECRET",
        "STOWAGE_PBKDF2_ROUNDS",
        "STOWAGE_TRASH_RETENTION",
        "STOWAGE_UPLOAD_EXPIRY",
        "STOWAGE_JANITOR_INTERVAL",
        "STOWAGE_MAX_UPLOAD_SIZE",
        "STOWAGE_RATE_LIMIT_AUTH",
        "STOWAGE_RATE_LIMIT_API",
        "STOWAGE_CORS_ORIGINS",
        "STOWAGE_NATS_INGEST_SUBJECT",
        "STOWAGE_DEFAULT_QUOTA",
        "STOWAGE_REVISIONS_KEEP",
        "STOWAGE_REVISIONS_MAX_AGE",
        "STOWAGE_OIDC_ISSUER",
        "STOWAGE_OIDC_AUDIENCE",
        "STOWAGE_OIDC_JWKS_URL",
        "STOWAGE_WEBHOOK_ALLOW_PRIVATE",
        "STOWAGE_S3_SSE",
        "STOWAGE_TLS_CERT",
        "STOWAGE_TLS_KEY",
        "STOWAGE_TLS_CLIENT_CA",
        "STOWAGE_TLS_CLIENT_AUTH",
        "STOWAGE_MTLS_SERVICES",
        "STOWAGE_NATS_CA",
        "RUST_LOG",
    ] {
        assert!(
            help.contains(&format!("env: {var}")),
            "--help does not document {var}"
        );
    }
    assert!(help.contains("migrate"));
    assert!(help.contains("admin"));
}

#[test]
fn bad_configuration_fails_at_start_with_the_variable_named() {
    let out = stowage()
        .env("STOWAGE_TRASH_RETENTION", "a while")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("trash-retention") && err.contains("a while"),
        "{err}"
    );

    let out = stowage()
        .env("STOWAGE_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("32 bytes"));
}

#[test]
fn migrate_applies_the_schema_and_exits() {
    let dir = temp_dir();
    let out = stowage()
        .arg("migrate")
        .env("STOWAGE_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("stowage.db").exists());
    // Again: nothing to do, still fine.
    let again = stowage()
        .arg("migrate")
        .env("STOWAGE_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert!(again.status.success());
    std::fs::remove_dir_all(dir).ok();
}

/// Starts the server on a free port; returns it and its base URL.
fn serve(dir: &std::path::Path, rounds: &str) -> (Child, String) {
    let mut child = stowage()
        .env("STOWAGE_DATA_DIR", dir)
        .env("STOWAGE_LISTEN", "127.0.0.1:0")
        .env("STOWAGE_PBKDF2_ROUNDS", rounds)
        .env("STOWAGE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        assert!(
            Instant::now() < deadline,
            "server did not report its address"
        );
        let line = lines.next().expect("server exited early").unwrap();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "stowage listening" {
            break v["address"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{address}"))
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let dir = temp_dir();
    // A costly hash keeps the login in flight while the signal arrives.
    let (mut child, base) = serve(&dir, "3000000");
    let client = reqwest::Client::new();
    let body = serde_json::json!({"email": "ada@example.com", "password": "correct horse"});
    let res = client
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let login = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/api/v1/auth/login");
        async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let status = login
        .await
        .unwrap()
        .expect("the in-flight login was answered");
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "server still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    std::fs::remove_dir_all(dir).ok();
}
