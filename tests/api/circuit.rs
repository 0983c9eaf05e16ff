//! The circuit breakers around S3 and NATS. When the store stops
//! answering, calls fail fast with 503 and `Retry-After`; when NATS goes
//! away, requests go on unhindered while its circuit shows open. Once the
//! dependency answers again, a probe closes the circuit.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Stack, assert_problem, spawn_app_with};
use crate::process::{Server, client};

/// A TCP relay to `target` that can be cut; returns its `host:port`.
/// Cutting closes the open connections, and while cut the relay closes
/// every connection it accepts.
pub(crate) async fn relay(target: String) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (cut, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut watch = watch.clone();
            if *watch.borrow() {
                drop(inbound);
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                }
            });
        }
    });
    (address, cut)
}

#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn a_failing_store_trips_the_circuit_and_a_probe_closes_it() {
    Stack::Services.require();
    let s3 = std::env::var("STOWAGE_TEST_S3_ENDPOINT").unwrap();
    let (address, cut) = relay(s3.trim_start_matches("http://").to_owned()).await;
    let endpoint = format!("http://{address}");
    let app = spawn_app_with(Stack::Services, &[("--s3-endpoint", &endpoint)]).await;
    let user = app.new_user().await;
    let created: Value = app
        .post_authed(
            "/api/v1/uploads",
            &user.access_token,
            &json!({"name": "waiting.txt", "size": 5}),
        )
        .await
        .json()
        .await
        .unwrap();
    let confirm = format!(
        "/api/v1/files/{}/confirm",
        created["file"]["id"].as_str().unwrap()
    );
    // The store answers: no object yet.
    let res = app
        .post_authed(&confirm, &user.access_token, &json!({}))
        .await;
    assert_problem(res, 409, "upload_incomplete").await;

    cut.send_replace(true);
    let mut tripped = None;
    for attempt in 0..10 {
        let started = Instant::now();
        let res = app
            .post_authed(&confirm, &user.access_token, &json!({}))
            .await;
        let retry_after = res.headers().get("retry-after").cloned();
        let body = assert_problem(res, 503, "storage_unavailable").await;
        assert!(retry_after.is_some(), "503 without Retry-After");
        if body["detail"].as_str().unwrap().contains("not tried") {
            tripped = Some((attempt, started.elapsed()));
            break;
        }
    }
    let (attempt, took) = tripped.expect("the circuit never opened");
    assert!(attempt >= 5, "opened after {attempt} failures, not 5");
    assert!(
        took < Duration::from_millis(200),
        "an open circuit took {took:?}"
    );
    assert!(
        app.metrics_text()
            .await
            .contains("# HELP stowage_circuit_open"),
        "the circuit gauge is described"
    );

    // The store is back; after the cool-down one probe closes the circuit.
    cut.send_replace(false);
    tokio::time::sleep(stowage_actors::circuit::COOL_DOWN + Duration::from_millis(200)).await;
    let res = app
        .post_authed(&confirm, &user.access_token, &json!({}))
        .await;
    assert_problem(res, 409, "upload_incomplete").await;
    let res = app
        .post_authed(&confirm, &user.access_token, &json!({}))
        .await;
    assert_problem(res, 409, "upload_incomplete").await;
}

/// NATS going away never holds a request up: domain events made meanwhile
/// wait in the outbox, the relay's failed deliveries open the circuit (this
/// process's `/metrics` shows it), and once NATS is back the relay's probe
/// closes it and the waiting events arrive, in order.
#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn nats_going_away_opens_its_circuit_without_holding_requests_up() {
    Stack::Services.require();
    let (server, cut, token, file) = behind_cuttable_nats().await;
    let open = r#"stowage_circuit_open{dependency="nats"}"#;
    assert_eq!(server.metric(open).await, Some(0.0));
    let rename = |name: String| {
        let url = format!("{}/api/v1/files/{file}", server.base);
        let token = token.clone();
        async move {
            let started = Instant::now();
            let res = client()
                .patch(url)
                .bearer_auth(token)
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{:?}", res.text().await);
            started.elapsed()
        }
    };
    let mut renamed = watch_renames().await;

    cut.send_replace(true);
    wait_for_events(&server, false).await;
    let names: Vec<String> = (0..8).map(|i| format!("away-{i}.txt")).collect();
    for name in &names {
        let took = rename(name.clone()).await;
        assert!(
            took < Duration::from_millis(500),
            "a rename took {took:?} while NATS was away"
        );
    }
    wait_for_metric(&server, open, 1.0, "the circuit opened").await;

    // NATS is back: after the cool-down the relay's probe goes through,
    // closes the circuit, and what waited arrives, in order.
    cut.send_replace(false);
    wait_for_events(&server, true).await;
    let mut seen = Vec::new();
    while seen.len() < names.len() {
        let message = tokio::time::timeout(Duration::from_secs(40), renamed.next())
            .await
            .expect("waiting events arrive once NATS is back")
            .unwrap();
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        if event["file_id"] == file.as_str() {
            seen.push(event["data"]["new_name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, names);
    wait_for_metric(&server, open, 0.0, "the probe closed it").await;
    wait_for_metric(
        &server,
        "stowage_outbox_backlog",
        0.0,
        "nothing waits in the outbox",
    )
    .await;
}

/// Polls this server's `/metrics` until `series` reads `value`.
async fn wait_for_metric(server: &Server, series: &str, value: f64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric(series).await != Some(value) {
        assert!(Instant::now() < deadline, "{what}: {series} is not {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real binary on the services stack, reaching NATS through a relay
/// that can be cut, with a user and a pending file to rename: the server,
/// the relay's switch, the user's token and the file's id.
pub(crate) async fn behind_cuttable_nats()
-> (Server, tokio::sync::watch::Sender<bool>, String, String) {
    let nats_url = std::env::var("STOWAGE_TEST_NATS_URL").unwrap();
    let (scheme, target) = nats_url.split_once("://").unwrap();
    let (address, cut) = relay(target.to_owned()).await;
    let server = Server::start_with(
        Stack::Services,
        &[("STOWAGE_NATS_URL", &format!("{scheme}://{address}"))],
    )
    .await;
    let token = server.sign_up().await;
    let created: Value = client()
        .post(format!("{}/api/v1/uploads", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "draft.txt", "size": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = created["file"]["id"].as_str().unwrap().to_owned();
    (server, cut, token, file)
}

/// Polls `/readyz` until its `events` check is (or is not) `ok`.
pub(crate) async fn wait_for_events(server: &Server, ok: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report: Value = server.get("/readyz").await.json().await.unwrap();
        if (report["events"] == "ok") == ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "events still {} after 30 s",
            report["events"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `file.renamed` events as NATS itself delivers them (not through a relay).
pub(crate) async fn watch_renames() -> async_nats::Subscriber {
    let watcher = crate::helpers::nats_client().await;
    let renamed = watcher
        .subscribe(format!(
            "{}.file.renamed",
            stowage_actors::events::EVENTS_PREFIX
        ))
        .await
        .unwrap();
    // Subscribed on the server before anything is published.
    watcher.flush().await.unwrap();
    renamed
}
