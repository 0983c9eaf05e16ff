//! Webhooks: registration, Standard Webhooks signatures checked by an
//! independent implementation (the `standardwebhooks` package from PyPI),
//! retries, the deliveries log, SSRF refusals, one delivery per event on
//! several instances, and deliveries that survive `kill -9`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, User, assert_problem, spawn_app_with, spawn_cluster};

crate::on_both_stacks!(
    deliveries_are_signed_scoped_and_logged,
    a_failing_receiver_is_retried_until_it_answers,
    webhooks_may_not_point_inside_the_network,
    pending_deliveries_survive_kill_9,
    a_back_end_with_only_an_admin_key_hears_its_users_uploads,
    a_slow_receiver_holds_up_no_one,
    the_sender_restarts_when_its_database_goes_and_then_goes_on,
);

/// One POST the receiver took.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub(crate) fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Answer 500 to this many requests first.
    fail_first: usize,
    answered: usize,
    /// Take this long over every answer.
    delay: Duration,
}

/// A webhook receiver on a port of its own.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<Mutex<ReceiverState>>,
    server: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let server = self.server.clone();
        actix_web::rt::spawn(async move { server.stop(false).await });
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<ReceiverState>>>,
) -> HttpResponse {
    let delay = state.lock().unwrap().delay;
    actix_web::rt::time::sleep(delay).await;
    let mut s = state.lock().unwrap();
    s.answered += 1;
    if s.answered <= s.fail_first {
        return HttpResponse::InternalServerError().finish();
    }
    s.received.push(Received {
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    HttpResponse::NoContent().finish()
}

impl Receiver {
    pub(crate) fn start(fail_first: usize) -> Self {
        Self::start_on("127.0.0.1:0", fail_first)
    }

    fn start_on(address: &str, fail_first: usize) -> Self {
        Self::start_with(address, fail_first, Duration::ZERO)
    }

    fn start_with(address: &str, fail_first: usize, delay: Duration) -> Self {
        let state = Arc::new(Mutex::new(ReceiverState {
            fail_first,
            delay,
            ..Default::default()
        }));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .bind(address)
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
            server: handle,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn answered(&self) -> usize {
        self.state.lock().unwrap().answered
    }

    /// Waits until `n` deliveries arrived (or panics after `secs`).
    pub(crate) async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries after {secs} s",
                got.len()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Verifies a delivery with the `standardwebhooks` package (not Stowage's
/// own signer): true if the signature holds.
fn verified(secret: &str, r: &Received) -> bool {
    crate::helpers::python_packages(&[("standardwebhooks", "standardwebhooks")]);
    let script = r#"
import json, sys
from standardwebhooks import Webhook
data = json.load(sys.stdin)
Webhook(data["secret"]).verify(data["body"], data["headers"])
"#;
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let input = json!({"secret": secret, "body": r.body, "headers": headers});
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with standardwebhooks (pip install standardwebhooks)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("standardwebhooks: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

fn allowing(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut options = vec![("--webhook-allow-private", "true")];
    options.extend_from_slice(extra);
    options
}

async fn register(app: &TestApp, token: &str, url: &str, events: Value) -> Value {
    let res = app
        .post_authed(
            "/api/v1/webhooks",
            token,
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn deliveries(app: &TestApp, user: &User, hook: &str) -> Vec<Value> {
    let res = app
        .get_authed(
            &format!("/api/v1/webhooks/{hook}/deliveries"),
            &user.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn deliveries_are_signed_scoped_and_logged(stack: Stack) {
    let app = spawn_app_with(stack, &allowing(&[])).await;
    let receiver = Receiver::start(0);
    let everything = Receiver::start(0);
    let ada = app.new_user().await;
    let bob = app.new_user().await;
    let hook = register(
        &app,
        &ada.access_token,
        &receiver.url,
        json!(["file.available"]),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // An admin key's webhook hears everyone.
    let admin = crate::keys::admin_key(&app);
    let res = app
        .post_authed(
            "/api/v1/webhooks",
            &admin,
            &json!({"url": everything.url, "events": ["*"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let file = app.upload_file(&ada, "report.pdf", b"quarterly").await;
    app.upload_file(&bob, "bobs.txt", b"not ada's").await;

    let got = receiver.wait_for(1, 20).await;
    let delivery = &got[0];
    assert!(verified(&secret, delivery), "{delivery:?}");
    let event = delivery.event();
    assert_eq!(event["type"], "file.available");
    assert_eq!(event["file_id"], file["id"]);
    assert_eq!(
        delivery.header("webhook-id"),
        event["event_id"].as_str().unwrap()
    );
    // A tampered body fails the same check.
    let mut forged = delivery.clone();
    forged.body = forged.body.replace("report.pdf", "invoice.pdf");
    assert!(!verified(&secret, &forged));
    // Bob's file is not Ada's business; the admin's webhook has both.
    let owners: Vec<String> = everything
        .wait_for(2, 20)
        .await
        .iter()
        .map(|r| r.event()["owner_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        owners.contains(&ada.id) && owners.contains(&bob.id),
        "{owners:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "only Ada's file.available");

    let hook_id = hook["id"].as_str().unwrap();
    let log = deliveries(&app, &ada, hook_id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (
            &log[0]["status"],
            &log[0]["attempts"],
            &log[0]["last_status_code"]
        ),
        (&json!("delivered"), &json!(1), &json!(204))
    );
    // The secret is shown once; others see no webhook of Ada's.
    let shown: Value = app
        .get_authed(&format!("/api/v1/webhooks/{hook_id}"), &ada.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert!(shown.get("secret").is_none());
    for res in [
        app.get_authed(&format!("/api/v1/webhooks/{hook_id}"), &bob.access_token)
            .await,
        app.get_authed(
            &format!("/api/v1/webhooks/{hook_id}/deliveries"),
            &bob.access_token,
        )
        .await,
        app.delete_authed(&format!("/api/v1/webhooks/{hook_id}"), &bob.access_token)
            .await,
    ] {
        assert_problem(res, 404, "webhook_not_found").await;
    }
    // Disabled, it hears nothing new; deleted, it is gone.
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/webhooks/{hook_id}")))
        .bearer_auth(&ada.access_token)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["enabled"], false);
    app.upload_file(&ada, "later.txt", b"later").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 1);
    let res = app
        .delete_authed(&format!("/api/v1/webhooks/{hook_id}"), &ada.access_token)
        .await;
    assert_eq!(res.status(), 204);
}

async fn a_failing_receiver_is_retried_until_it_answers(stack: Stack) {
    let app = spawn_app_with(stack, &allowing(&[("--webhook-retry-base", "100ms")])).await;
    let receiver = Receiver::start(3);
    let user = app.new_user().await;
    let hook = register(&app, &user.access_token, &receiver.url, json!(["*"])).await;
    let hook_id = hook["id"].as_str().unwrap();
    let retries = r#"stowage_webhook_deliveries_total{result="retry"}"#;
    let before = app.metric(retries).await;
    let folder = app
        .post_authed(
            "/api/v1/folders",
            &user.access_token,
            &json!({"name": "inbox"}),
        )
        .await;
    assert_eq!(folder.status(), 201);
    let folder: Value = folder.json().await.unwrap();
    let id = folder["id"].as_str().unwrap();
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/folders/{id}")))
        .bearer_auth(&user.access_token)
        .json(&json!({"name": "outbox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .delete_authed(&format!("/api/v1/folders/{id}"), &user.access_token)
        .await;
    assert_eq!(res.status(), 204);
    // The first is refused three times; the others wait their turn.
    let got = receiver.wait_for(3, 30).await;
    assert_eq!(
        receiver.answered(),
        6,
        "three failures, then three deliveries"
    );
    let kinds: Vec<Value> = got.iter().map(|r| r.event()["type"].clone()).collect();
    assert_eq!(
        kinds,
        [
            json!("folder.created"),
            json!("folder.renamed"),
            json!("folder.deleted")
        ]
    );
    assert!(verified(hook["secret"].as_str().unwrap(), &got[0]));
    let log = deliveries(&app, &user, hook_id).await;
    let first = log.last().unwrap();
    assert_eq!(
        (&first["status"], &first["attempts"]),
        (&json!("delivered"), &json!(4))
    );
    assert!(app.metric(retries).await >= before + 3.0);
    // Sent again on request, with the same webhook-id.
    let delivery = first["id"].as_str().unwrap();
    let res = app
        .post_authed(
            &format!("/api/v1/webhooks/{hook_id}/deliveries/{delivery}/retry"),
            &user.access_token,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let again = receiver.wait_for(4, 20).await;
    assert_eq!(again[3].header("webhook-id"), again[0].header("webhook-id"));
    let res = app
        .post_authed(
            &format!(
                "/api/v1/webhooks/{hook_id}/deliveries/{}/retry",
                uuid::Uuid::now_v7()
            ),
            &user.access_token,
            &json!({}),
        )
        .await;
    assert_problem(res, 404, "delivery_not_found").await;
}

async fn webhooks_may_not_point_inside_the_network(stack: Stack) {
    let app = spawn_app_with(stack, &[]).await;
    let user = app.new_user().await;
    let token = &user.access_token;
    for inside in [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://[::1]:9000/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let res = app
            .post_authed(
                "/api/v1/webhooks",
                token,
                &json!({"url": inside, "events": ["*"]}),
            )
            .await;
        assert_problem(res, 400, "webhook_url_forbidden").await;
    }
    for (body, what) in [
        (
            json!({"url": "ftp://example.com/", "events": ["*"]}),
            "scheme",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "form"),
        (json!({"url": "http://8.8.8.8/", "events": []}), "no events"),
        (
            json!({"url": "http://8.8.8.8/", "events": ["file.exploded"]}),
            "unknown event",
        ),
    ] {
        let res = app.post_authed("/api/v1/webhooks", token, &body).await;
        assert_eq!(res.status(), 400, "{what}");
    }
    // A key with files:read may not register one.
    let key = app
        .post_authed(
            "/api/v1/keys",
            token,
            &json!({"name": "r", "scopes": ["files:read"]}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let res = app
        .post_authed(
            "/api/v1/webhooks",
            key["key"].as_str().unwrap(),
            &json!({"url": "http://8.8.8.8/", "events": ["*"]}),
        )
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
}

async fn upload(server: &crate::process::Server, token: &str, name: &str) {
    let client = crate::process::client();
    let created: Value = client
        .post(format!("{}/api/v1/uploads", server.base))
        .bearer_auth(token)
        .json(&json!({"name": name, "size": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = client.put(created["upload"]["url"].as_str().unwrap());
    for (k, v) in created["upload"]["headers"].as_object().unwrap() {
        put = put.header(k, v.as_str().unwrap());
    }
    assert_eq!(put.body("bytes").send().await.unwrap().status(), 200);
    let id = created["file"]["id"].as_str().unwrap();
    let res = client
        .post(format!("{}/api/v1/files/{id}/confirm", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn pending_deliveries_survive_kill_9(stack: Stack) {
    // The receiver's port, taken now and let go: nothing answers there yet.
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut server = crate::process::Server::start_with(
        stack,
        &[
            ("STOWAGE_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("STOWAGE_WEBHOOK_RETRY_BASE", "200ms"),
        ],
    )
    .await;
    let token = server.sign_up().await;
    let client = crate::process::client();
    let res = client
        .post(format!("{}/api/v1/webhooks", server.base))
        .bearer_auth(&token)
        .json(&json!({"url": format!("http://{address}/hook"), "events": ["file.available"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let hook: Value = res.json().await.unwrap();
    let hook_id = hook["id"].as_str().unwrap();
    for name in ["a.txt", "b.txt", "c.txt"] {
        upload(&server, &token, name).await;
    }
    // Tried and pending: the receiver is down.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log: Value = client
            .get(format!(
                "{}/api/v1/webhooks/{hook_id}/deliveries",
                server.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = log["items"].as_array().unwrap();
        if items.len() == 3 && items.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            assert!(items.iter().all(|d| d["status"] == "pending"), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "not tried yet: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill_9();
    let receiver = Receiver::start_on(&address.to_string(), 0);
    server.restart();
    let got = receiver.wait_for(3, 30).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each event once");
    assert!(
        got.iter()
            .all(|r| verified(hook["secret"].as_str().unwrap(), r))
    );
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn two_instances_deliver_each_event_once() {
    Stack::Services.require();
    let apps = spawn_cluster(2, &allowing(&[])).await;
    let receiver = Receiver::start(0);
    let user = apps[0].new_user().await;
    register(
        &apps[0],
        &user.access_token,
        &receiver.url,
        json!(["folder.created"]),
    )
    .await;
    for i in 0..20 {
        let app = &apps[i % 2];
        let res = app
            .post_authed(
                "/api/v1/folders",
                &user.access_token,
                &json!({"name": format!("f{i}")}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    receiver.wait_for(20, 30).await;
    // A while longer: nothing comes twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.received();
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (20, 20));
}

async fn a_back_end_with_only_an_admin_key_hears_its_users_uploads(stack: Stack) {
    let app = spawn_app_with(stack, &allowing(&[])).await;
    let back_end = Receiver::start(0);
    let admin = crate::keys::admin_key(&app);
    let res = app
        .post_authed(
            "/api/v1/webhooks",
            &admin,
            &json!({"url": back_end.url, "events": ["file.available"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let secret = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let user: Value = app
        .post_authed(
            "/api/v1/admin/users",
            &admin,
            &json!({"external_id": "u-1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let user_id = user["id"].as_str().unwrap();
    let created: Value = app
        .client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(&admin)
        .header("Stowage-On-Behalf-Of", user_id)
        .json(&json!({"name": "photo.jpg", "size": 4, "content_type": "image/jpeg"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The user's browser PUTs; the store says so (MinIO's event on S3).
    let res = app
        .put_to_ticket(&created["upload"], b"JPEG".to_vec())
        .await;
    assert_eq!(res.status(), 200);
    let id = created["file"]["id"].as_str().unwrap();
    app.announce_put(user_id, id, 4).await;
    let got = back_end.wait_for(1, 20).await;
    assert!(verified(&secret, &got[0]));
    let event = got[0].event();
    assert_eq!(
        (&event["type"], &event["file_id"], &event["owner_id"]),
        (&json!("file.available"), &json!(id), &json!(user_id))
    );
}

async fn a_slow_receiver_holds_up_no_one(stack: Stack) {
    let app = spawn_app_with(stack, &allowing(&[])).await;
    let slow = Receiver::start_with("127.0.0.1:0", 0, Duration::from_secs(8));
    let fast = Receiver::start(0);
    let user = app.new_user().await;
    register(&app, &user.access_token, &slow.url, json!(["*"])).await;
    register(&app, &user.access_token, &fast.url, json!(["*"])).await;
    let started = Instant::now();
    for name in ["a", "b", "c"] {
        let res = app
            .post_authed(
                "/api/v1/folders",
                &user.access_token,
                &json!({"name": name}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "requests wait for no receiver"
    );
    fast.wait_for(3, 5).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the fast receiver heard everything while the slow one still answers"
    );
    assert!(slow.received().is_empty());
}

/// The sender's ticks fail while its table is gone: it stops and its
/// supervisor restarts it (counted); once the table is back, what waited
/// is delivered.
async fn the_sender_restarts_when_its_database_goes_and_then_goes_on(stack: Stack) {
    let app = spawn_app_with(stack, &allowing(&[])).await;
    let receiver = Receiver::start(0);
    let user = app.new_user().await;
    register(
        &app,
        &user.access_token,
        &receiver.url,
        json!(["folder.created"]),
    )
    .await;
    // Metrics are the test process's: other tests count too.
    let restarts = r#"stowage_actor_restarts_total{actor="webhooks"}"#;
    let before = app.metric(restarts).await;
    use sea_orm::ConnectionTrait;
    let db = crate::outbox::database(&app).await;
    db.execute_unprepared("ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_gone")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metric(restarts).await < before + 1.0 {
        assert!(Instant::now() < deadline, "the sender did not restart");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    db.execute_unprepared("ALTER TABLE webhook_deliveries_gone RENAME TO webhook_deliveries")
        .await
        .unwrap();
    let res = app
        .post_authed(
            "/api/v1/folders",
            &user.access_token,
            &json!({"name": "after"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let got = receiver.wait_for(1, 30).await;
    assert_eq!(got[0].event()["data"]["name"], "after");
}
