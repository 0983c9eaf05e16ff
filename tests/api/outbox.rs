//! The transactional outbox: a domain event commits with its change and
//! reaches NATS even if the process dies between the commit and the
//! publish; the relay that publishes it survives losing its own table.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::circuit::{behind_cuttable_nats, wait_for_events, watch_renames};
use crate::helpers::{Stack, TestApp, spawn_app};
use crate::process::client;

crate::on_both_stacks!(the_relay_restarts_when_its_table_goes_and_loses_no_event,);

/// Renames made while NATS is away are committed with their events; the
/// process is killed with all of them unsent; restarted with NATS back, it
/// publishes every one, in order.
#[actix_web::test]
#[cfg_attr(
    not(stowage_services),
    ignore = "needs PostgreSQL, S3 and NATS: set STOWAGE_TEST_* (see .ci/run)"
)]
async fn events_committed_before_kill_9_are_published_after_the_restart() {
    Stack::Services.require();
    let (server, cut, token, file) = behind_cuttable_nats().await;
    let mut renamed = watch_renames().await;

    cut.send_replace(true);
    wait_for_events(&server, false).await;
    let names: Vec<String> = (0..20).map(|i| format!("before-kill-{i:02}.txt")).collect();
    for name in &names {
        let res = client()
            .patch(format!("{}/api/v1/files/{file}", server.base))
            .bearer_auth(&token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let mut server = server;
    server.kill_9();
    cut.send_replace(false);
    // Starting waits for the server; the NATS relay runs on this runtime.
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.len() < names.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, renamed.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of the events arrived: {seen:?}", seen.len()))
            .unwrap();
        let event: Value = serde_json::from_slice(&message.payload).unwrap();
        if event["file_id"] == file.as_str() {
            seen.push(event["data"]["new_name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, names, "every event, once, in order");
    drop(server);
}

/// The relay's lease table disappears: the relay fails, stops itself and is
/// restarted by its supervisor (counted); renames go on meanwhile and their
/// events wait. Once the table is back, every event is delivered, in order.
async fn the_relay_restarts_when_its_table_goes_and_loses_no_event(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let file = app.upload_file(&user, "report.txt", b"quarterly").await;
    let id = file["id"].as_str().unwrap().to_owned();
    let mut events = app.bus.subscribe();
    let restarts = r#"stowage_actor_restarts_total{actor="outbox"}"#;
    let before = app.metric(restarts).await;

    let db = database(&app).await;
    db.execute_unprepared("ALTER TABLE outbox_relay RENAME TO outbox_relay_gone")
        .await
        .unwrap();
    let names: Vec<String> = (0..5).map(|i| format!("while-down-{i}.txt")).collect();
    for name in &names {
        let res = app
            .patch_file(&user.access_token, &id, &json!({ "name": name }), None)
            .await;
        assert_eq!(res.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metric(restarts).await < before + 1.0 {
        assert!(Instant::now() < deadline, "the relay was never restarted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.execute_unprepared("ALTER TABLE outbox_relay_gone RENAME TO outbox_relay")
        .await
        .unwrap();

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < names.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} events arrived: {seen:?}", seen.len()))
            .unwrap();
        if event.file_id.to_string() == id && event.kind == "file.renamed" {
            seen.push(event.data["new_name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, names);
}

/// The test app's own database.
pub(crate) async fn database(app: &TestApp) -> sea_orm::DatabaseConnection {
    let url = match &app.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", app.data_dir.join("stowage.db").display()),
    };
    Database::connect(url).await.unwrap()
}
