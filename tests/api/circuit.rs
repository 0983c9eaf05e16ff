//! The circuit breaker around S3: when the store stops answering, calls
//! fail fast with 503 and `Retry-After`; once it answers again, a probe
//! closes the circuit.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Stack, assert_problem, spawn_app_with};

/// A TCP relay to S3 that can be cut: cutting closes the open connections,
/// and while cut it closes every connection it accepts.
async fn relay(target: String) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
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
async fn a_failing_store_trips_the_circuit_and_a_probe_closes_it() {
    if Stack::Services.skip() {
        return;
    }
    let s3 = std::env::var("STOWAGE_TEST_S3_ENDPOINT").unwrap();
    let (endpoint, cut) = relay(s3.trim_start_matches("http://").to_owned()).await;
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
