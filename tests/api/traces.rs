//! OpenTelemetry: the real binary exports its spans over OTLP/HTTP to a
//! receiver the test runs (`tests/fixtures/otlp_receiver.py`, decoding the
//! protobuf with opentelemetry-proto), continuing the trace a caller's
//! `traceparent` names, with database and storage spans under the request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Stack, python_packages, random_bytes, sha256_hex};
use crate::process::{Server, client};

/// The receiver, killed when dropped; spans land in `out`, a JSON line each.
struct Receiver {
    child: Child,
    out: PathBuf,
    url: String,
}

impl Receiver {
    async fn start() -> Self {
        python_packages(&[("opentelemetry.proto", "opentelemetry-proto")]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out =
            std::env::temp_dir().join(format!("stowage-spans-{}.jsonl", uuid::Uuid::new_v4()));
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/otlp_receiver.py"
        );
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .spawn()
            .expect("python3 runs the receiver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the OTLP receiver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            out,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The spans of `trace`, once every name in `names` is among them (see
    /// [`is_named`]).
    async fn wait_for(&self, trace: &str, names: &[&str]) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| s["trace_id"] == trace)
                .collect();
            if names.iter().all(|n| spans.iter().any(|s| is_named(s, n))) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "spans {names:?} of trace {trace} never arrived; got {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

/// Whether `span` is called `name`, where one `*` stands for anything.
fn is_named(span: &Value, name: &str) -> bool {
    let actual = span["name"].as_str().unwrap_or_default();
    match name.split_once('*') {
        Some((head, tail)) => {
            actual.len() >= head.len() + tail.len()
                && actual.starts_with(head)
                && actual.ends_with(tail)
        }
        None => actual == name,
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| is_named(s, name))
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

/// Whether `span` is below `ancestor` in the tree the spans make.
fn descends(spans: &[Value], span: &Value, ancestor: &Value) -> bool {
    let parents: HashMap<&str, &str> = spans
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap(),
                s["parent_span_id"].as_str().unwrap(),
            )
        })
        .collect();
    let mut at = span["span_id"].as_str().unwrap();
    while let Some(parent) = parents.get(at) {
        if *parent == ancestor["span_id"] {
            return true;
        }
        at = parent;
    }
    false
}

#[actix_web::test]
async fn a_traced_upload_arrives_at_the_receiver_as_one_tree() {
    let receiver = Receiver::start().await;
    let server = Server::start_with(
        Stack::Embedded,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url),
            ("OTEL_SERVICE_NAME", "stowage-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let token = server.sign_up().await;
    let http = client();
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let caller = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let traceparent = format!("00-{trace}-{caller}-01");

    let bytes = random_bytes(70_000);
    let res = http
        .post(format!("{}/api/v1/uploads", server.base))
        .bearer_auth(&token)
        .header("traceparent", &traceparent)
        .json(&json!({"name": "traced.bin", "size": bytes.len(), "sha256": sha256_hex(&bytes)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let mut put = http
        .put(created["upload"]["url"].as_str().unwrap())
        .header("traceparent", &traceparent)
        .body(bytes);
    for (k, v) in created["upload"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    let id = created["file"]["id"].as_str().unwrap();
    let res = http
        .post(format!("{}/api/v1/files/{id}/confirm", server.base))
        .bearer_auth(&token)
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let spans = receiver
        .wait_for(
            &trace,
            &[
                "POST /api/v1/uploads",
                "POST /api/v1/files/{id}/confirm",
                "storage presign_put",
                "storage head",
            ],
        )
        .await;
    let create = named(&spans, "POST /api/v1/uploads");
    assert_eq!(create["service"], "stowage-under-test");
    assert_eq!(
        create["parent_span_id"], *caller,
        "the caller's span is the parent"
    );
    assert_eq!(create["kind"], 2, "a server span");
    assert_eq!(create["attributes"]["request_id"], request_id.as_str());
    assert_eq!(create["attributes"]["http.route"], "/api/v1/uploads");
    assert!(descends(
        &spans,
        named(&spans, "storage presign_put"),
        create
    ));
    let database: Vec<&Value> = spans
        .iter()
        .filter(|s| s["attributes"]["db.system"] == "sqlite" && descends(&spans, s, create))
        .collect();
    assert!(
        !database.is_empty(),
        "no database span under the request: {spans:#?}"
    );
    let confirm = named(&spans, "POST /api/v1/files/{id}/confirm");
    assert!(descends(&spans, named(&spans, "storage head"), confirm));
    assert!(
        spans
            .iter()
            .any(|s| s["name"].as_str().unwrap().starts_with("PUT /blobs")),
        "the upload to the signed URL is in the trace"
    );

    // A tus PATCH: the upload-session actor's handling of its messages is
    // under the request that sent them.
    let res = http
        .post(format!("{}/api/v1/tus", server.base))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "5")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let tus_trace = uuid::Uuid::new_v4().simple().to_string();
    let res = http
        .patch(location)
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .header("traceparent", format!("00-{tus_trace}-{caller}-01"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let spans = receiver
        .wait_for(
            &tus_trace,
            &[
                "PATCH *",
                "upload session acquire",
                "upload session release",
            ],
        )
        .await;
    let patch = named(&spans, "PATCH *");
    let acquire = named(&spans, "upload session acquire");
    assert!(descends(&spans, acquire, patch), "{spans:#?}");
    assert_eq!(acquire["attributes"]["outcome"], "fresh");
    assert!(descends(
        &spans,
        named(&spans, "upload session release"),
        patch
    ));

    // Without a traceparent, a request starts a trace of its own.
    let res = http
        .get(format!("{}/api/v1/files", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let own = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        if let Some(span) = receiver
            .spans()
            .into_iter()
            .find(|s| s["attributes"]["request_id"] == own.as_str())
        {
            break span;
        }
        assert!(
            Instant::now() < deadline,
            "the listing's span never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed["parent_span_id"], "");
    assert_ne!(listed["trace_id"], trace.as_str());
}

crate::on_both_stacks!(an_ingested_upload_is_one_trace_to_its_announcements);

/// A presigned upload's PUT, the object-created event it publishes (the
/// in-process bus, or NATS JetStream on the services stack: PostgreSQL,
/// NATS and the local store, whose events travel over NATS), ingest's
/// handling of it, and what the resulting `file.available` reaches (NATS
/// subscribers, a webhook) are one trace, continued across every hop by
/// `traceparent` (a NATS header, an outbox column, a webhook header).
async fn an_ingested_upload_is_one_trace_to_its_announcements(stack: Stack) {
    let receiver = Receiver::start().await;
    let mut vars: Vec<(String, String)> = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ("STOWAGE_WEBHOOK_ALLOW_PRIVATE".into(), "true".into()),
    ];
    if stack == Stack::Services {
        // The services stack without S3: the local store announces over NATS.
        vars.extend(
            crate::helpers::fresh_service_settings()
                .await
                .into_iter()
                .filter(|(k, _)| k.contains("DATABASE") || k.contains("NATS")),
        );
    }
    let overrides: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(Stack::Embedded, &overrides).await;
    let token = server.sign_up().await;
    let http = client();
    let hook = crate::webhooks::Receiver::start(0);
    let res = http
        .post(format!("{}/api/v1/webhooks", server.base))
        .bearer_auth(&token)
        .json(&json!({"url": hook.url, "events": ["file.available"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut announced = match stack {
        Stack::Services => Some(
            crate::helpers::nats_client()
                .await
                .subscribe("stowage.events.file.available")
                .await
                .unwrap(),
        ),
        Stack::Embedded => None,
    };

    let trace = uuid::Uuid::new_v4().simple().to_string();
    let caller = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let traceparent = format!("00-{trace}-{caller}-01");
    let bytes = random_bytes(50_000);
    let created: Value = http
        .post(format!("{}/api/v1/uploads", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "ingested.bin", "size": bytes.len(), "sha256": sha256_hex(&bytes)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = http
        .put(created["upload"]["url"].as_str().unwrap())
        .header("traceparent", &traceparent)
        .body(bytes);
    for (k, v) in created["upload"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    let id = created["file"]["id"].as_str().unwrap();

    // Ingest makes the file available on its own (no confirm), and the
    // webhook hears of it with the trace in its headers.
    let delivery = hook.wait_for(1, 30).await.remove(0);
    assert_eq!(delivery.event()["file_id"], id);
    let webhook_parent = delivery.header("traceparent").to_owned();
    assert!(
        webhook_parent.starts_with(&format!("00-{trace}-")),
        "the webhook carries the upload's trace: {webhook_parent:?}"
    );

    let mut names = vec![
        "PUT /blobs*",
        "publish *ingest",
        "ingest object",
        "webhook file.available",
    ];
    if stack == Stack::Services {
        names.push("publish stowage.events.file.available");
    }
    let spans = receiver.wait_for(&trace, &names).await;
    let put = named(&spans, "PUT /blobs*");
    assert_eq!(put["parent_span_id"], *caller);
    let published = named(&spans, "publish *ingest");
    assert_eq!(published["kind"], 4, "a producer span: {published}");
    assert!(descends(&spans, published, put));
    let ingested = named(&spans, "ingest object");
    assert_eq!(ingested["kind"], 5, "a consumer span: {ingested}");
    assert_eq!(
        ingested["parent_span_id"], published["span_id"],
        "ingest continues the publisher's span"
    );
    let webhook = named(&spans, "webhook file.available");
    assert_eq!(webhook["kind"], 3, "a client span: {webhook}");
    assert!(descends(&spans, webhook, ingested));
    assert_eq!(
        webhook_parent,
        format!("00-{trace}-{}-01", webhook["span_id"].as_str().unwrap()),
        "the receiver's parent is the webhook span"
    );

    if let Some(subscriber) = &mut announced {
        // Other tests' servers publish here too: find this file's event.
        let message = loop {
            let m = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
                .await
                .expect("file.available on NATS")
                .unwrap();
            let event: Value = serde_json::from_slice(&m.payload).unwrap();
            if event["file_id"] == id {
                break m;
            }
        };
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get("traceparent"))
            .map(|v| v.as_str().to_owned())
            .expect("a traceparent header on the NATS message");
        let relayed = named(&spans, "publish stowage.events.file.available");
        assert_eq!(
            header,
            format!("00-{trace}-{}-01", relayed["span_id"].as_str().unwrap())
        );
        assert!(descends(&spans, relayed, ingested));
    }
}
