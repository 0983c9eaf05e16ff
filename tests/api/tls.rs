//! HTTPS and mutual TLS on the listener, with a PKI the test makes
//! (`tests/fixtures/pki.sh`, openssl), checked with curl and with reqwest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, spawn_app_with};

crate::on_both_stacks!(
    https_and_client_certificates_with_curl_and_reqwest,
    a_required_client_certificate_is_required,
);

/// A fresh PKI in a directory of its own.
pub(crate) fn pki() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stowage-pki-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pki.sh");
    let status = Command::new("bash").arg(script).arg(&dir).status().unwrap();
    assert!(status.success(), "openssl made the test PKI");
    dir
}

pub(crate) fn file(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// A client trusting the test CA, with a client certificate if named.
pub(crate) fn client(dir: &Path, identity: Option<&str>) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none());
    if let Some(name) = identity {
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn https(app: &TestApp) -> String {
    app.address.replace("http://", "https://")
}

async fn tls_app(stack: Stack, dir: &Path, extra: &[(&str, &str)]) -> TestApp {
    let (cert, key, ca) = (
        file(dir, "server.pem"),
        file(dir, "server.key"),
        file(dir, "ca.pem"),
    );
    let mut options: Vec<(&str, &str)> = vec![
        ("--tls-cert", &cert),
        ("--tls-key", &key),
        ("--tls-client-ca", &ca),
        ("--mtls-services", "billing=admin"),
    ];
    options.extend_from_slice(extra);
    spawn_app_with(stack, &options).await
}

/// `curl` with the test CA (and a client certificate, if named): the
/// status. Off the test's runtime, which serves the app meanwhile.
async fn curl(dir: &Path, url: &str, identity: Option<&str>) -> String {
    let (dir, url, identity) = (dir.to_owned(), url.to_owned(), identity.map(str::to_owned));
    tokio::task::spawn_blocking(move || curl_now(&dir, &url, identity.as_deref()))
        .await
        .unwrap()
}

fn curl_now(dir: &Path, url: &str, identity: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(dir.join("ca.pem"));
    if let Some(name) = identity {
        cmd.arg("--cert")
            .arg(dir.join(format!("{name}.pem")))
            .arg("--key")
            .arg(dir.join(format!("{name}.key")));
    }
    let out = cmd.arg(url).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

async fn https_and_client_certificates_with_curl_and_reqwest(stack: Stack) {
    let dir = pki();
    let app = tls_app(stack, &dir, &[]).await;
    let base = https(&app);
    // Plain HTTPS, with curl and with reqwest.
    assert_eq!(curl(&dir, &format!("{base}/healthz"), None).await, "200");
    let anonymous = client(&dir, None);
    let res = anonymous
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        anonymous
            .get(format!("{base}/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Plain HTTP is not spoken there.
    assert!(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .is_err()
    );

    // The billing service's certificate is its credential.
    let billing = client(&dir, Some("billing"));
    let me: Value = billing
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["display_name"], "billing");
    assert_eq!(
        curl(&dir, &format!("{base}/api/v1/me"), Some("billing")).await,
        "200"
    );
    // With admin, it creates a user and an upload on their behalf.
    let user: Value = billing
        .post(format!("{base}/api/v1/admin/users"))
        .json(&json!({"external_id": "from-mtls"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = user["id"].as_str().unwrap();
    let res = billing
        .post(format!("{base}/api/v1/uploads"))
        .header("Stowage-On-Behalf-Of", user_id)
        .json(&json!({"name": "invoice.pdf", "size": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let upload: Value = res.json().await.unwrap();
    assert_eq!(upload["file"]["owner_id"], user_id);

    // A verified certificate no service is named after: anonymous.
    let nobody = client(&dir, Some("nobody"));
    let res = nobody
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Expired, or signed by another CA: no connection at all.
    for bad in ["expired", "rogue"] {
        let res = client(&dir, Some(bad))
            .get(format!("{base}/api/v1/me"))
            .send()
            .await;
        assert!(res.is_err(), "{bad}: {:?}", res.map(|r| r.status()));
        assert_eq!(
            curl(&dir, &format!("{base}/api/v1/me"), Some(bad)).await,
            "000",
            "{bad}"
        );
    }
    // A bearer token wins over the certificate: the user, not the service.
    let session: Value = billing
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": "person@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let person = session["access_token"].as_str().unwrap().to_owned();
    let me: Value = billing
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&person)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(me["display_name"], "billing");
}

async fn a_required_client_certificate_is_required(stack: Stack) {
    let dir = pki();
    let app = tls_app(stack, &dir, &[("--tls-client-auth", "required")]).await;
    let base = https(&app);
    assert!(
        client(&dir, None)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    assert_eq!(curl(&dir, &format!("{base}/healthz"), None).await, "000");
    let res = client(&dir, Some("billing"))
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The subject of the certificate the server shows now.
fn served_subject(address: &str) -> String {
    let script = format!(
        "openssl s_client -connect {address} </dev/null 2>/dev/null | openssl x509 -noout -subject"
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[actix_web::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = pki();
    let (cert, key) = (file(&dir, "live.pem"), file(&dir, "live.key"));
    std::fs::copy(dir.join("server.pem"), &cert).unwrap();
    std::fs::copy(dir.join("server.key"), &key).unwrap();
    let server = crate::process::Server::start_with(
        Stack::Embedded,
        &[("STOWAGE_TLS_CERT", &cert), ("STOWAGE_TLS_KEY", &key)],
    )
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    assert!(served_subject(&address).contains("server-one"));
    let kept = client(&dir, None);
    let base = format!("https://{address}");
    assert_eq!(
        kept.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    std::fs::copy(dir.join("server2.pem"), &cert).unwrap();
    std::fs::copy(dir.join("server2.key"), &key).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served_subject(&address).contains("server-two") {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened before goes on.
    assert_eq!(
        kept.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A broken pair on the next reload leaves the working one in place.
    std::fs::write(&cert, "not a certificate").unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served_subject(&address).contains("server-two"));
}

/// A NATS server of the test's own that speaks only TLS, killed when dropped.
struct TlsNats(std::process::Child, String);

impl Drop for TlsNats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn events_travel_to_nats_over_tls() {
    Stack::Services.require();
    let dir = pki();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = std::env::temp_dir().join(format!("stowage-nats-{}", uuid::Uuid::new_v4()));
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .args([
            "--tls",
            "--tlscert",
            &file(&dir, "server.pem"),
            "--tlskey",
            &file(&dir, "server.key"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server runs");
    let _nats = TlsNats(child, store.display().to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("tls://127.0.0.1:{port}");
    let ca = file(&dir, "ca.pem");
    // Listening there over TLS, trusting the test CA.
    let listener = async_nats::ConnectOptions::new()
        .add_root_certificates(ca.clone().into())
        .require_tls(true)
        .connect(&url)
        .await
        .unwrap();
    let mut events = listener
        .subscribe("stowage.events.folder.created")
        .await
        .unwrap();
    listener.flush().await.unwrap();
    let server = crate::process::Server::start_with(
        Stack::Services,
        &[("STOWAGE_NATS_URL", &url), ("STOWAGE_NATS_CA", &ca)],
    )
    .await;
    let token = server.sign_up().await;
    let res = crate::process::client()
        .post(format!("{}/api/v1/folders", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "over tls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    use futures_util::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .expect("folder.created arrives over TLS")
        .unwrap();
    let event: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["data"]["name"], "over tls");
}
