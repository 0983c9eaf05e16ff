//! Health, readiness, metrics and the OpenAPI document.

use serde_json::Value;

use crate::helpers::{Stack, spawn_app};

crate::on_both_stacks!(
    health_and_readiness,
    metrics_are_labelled_by_route_pattern,
    openapi_describes_every_api_route,
    upload_metrics_move_when_uploads_finish_or_fail,
    every_metric_family_is_described_and_moves,
);

/// API.md's metric list: each is described once, with its base unit.
const FAMILIES: [&str; 17] = [
    "stowage_http_requests_total",
    "stowage_http_request_duration_seconds",
    "stowage_upload_bytes_total",
    "stowage_uploads_active",
    "stowage_uploads_completed_total",
    "stowage_uploads_failed_total",
    "stowage_ingest_events_total",
    "stowage_ingest_lag_seconds",
    "stowage_janitor_sweeps_total",
    "stowage_janitor_items_total",
    "stowage_janitor_backlog",
    "stowage_actor_restarts_total",
    "stowage_storage_requests_total",
    "stowage_storage_request_duration_seconds",
    "stowage_auth_attempts_total",
    "stowage_rate_limited_total",
    "stowage_circuit_open",
];

async fn every_metric_family_is_described_and_moves(stack: Stack) {
    let app = crate::helpers::spawn_app_with(stack, &[("--janitor-interval", "200ms")]).await;
    let text = app.metrics_text().await;
    // Closed label sets are there before anything happens (at zero in a
    // fresh process; the tests share one recorder, so not the value here).
    for series in [
        r#"stowage_circuit_open{dependency="s3"} "#,
        r#"stowage_circuit_open{dependency="nats"} "#,
        r#"stowage_actor_restarts_total{actor="ingest"} "#,
        r#"stowage_rate_limited_total{scope="api"} "#,
    ] {
        assert!(text.contains(series), "{series} missing");
    }
    let stored = r#"stowage_storage_requests_total{op="presign_put",result="ok"}"#;
    let timed = r#"stowage_storage_request_duration_seconds_count{op="presign_put"}"#;
    let ingested = "stowage_ingest_lag_seconds_count";
    let (s0, t0, i0) = (
        app.metric(stored).await,
        app.metric(timed).await,
        app.metric(ingested).await,
    );
    // Do the things: sign up, upload, abandon a multipart upload, let the janitor sweep.
    let user = app.new_user().await;
    app.upload_file(&user, "measured.bin", &[1u8; 10]).await;
    let created: Value = app
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &serde_json::json!({"name": "dropped", "size": 10}),
        )
        .await
        .json()
        .await
        .unwrap();
    let dropped = app
        .client
        .delete(app.url(&format!(
            "/api/v1/uploads/multipart/{}",
            created["upload_id"].as_str().unwrap()
        )))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 204);
    assert!(app.metric(stored).await >= s0 + 1.0, "{stored}");
    assert!(app.metric(timed).await >= t0 + 1.0, "{timed}");
    if stack == Stack::Embedded {
        // The local store announces the PUT to ingest, which times the lag.
        assert!(app.metric(ingested).await >= i0 + 1.0, "{ingested}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let text = app.metrics_text().await;
    for family in FAMILIES {
        let help = format!("# HELP {family} ");
        assert_eq!(text.matches(&help).count(), 1, "{family} is described once");
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} has a series"
        );
    }
    assert!(text.contains(r#"stowage_janitor_backlog{sweep="purge"}"#));
}

async fn health_and_readiness(stack: Stack) {
    let app = spawn_app(stack).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], "ok");
    assert_eq!(body["events"], "ok");
}

async fn metrics_are_labelled_by_route_pattern(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    app.get_authed("/api/v1/me", &user.access_token).await;
    app.client
        .get(app.url(&format!("/api/v1/users/{}", user.id)))
        .send()
        .await
        .unwrap();
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# HELP stowage_http_requests_total"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"stowage_http_requests_total{method="GET",route="/api/v1/me",status="200"}"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"stowage_http_requests_total{method="POST",route="/api/v1/auth/signup",status="201"}"#
    ));
    assert!(text.contains(r#"route="unmatched""#));
    assert!(
        text.contains("stowage_http_request_duration_seconds_bucket{"),
        "histogram, not summary"
    );
    assert!(text.contains(r#"stowage_auth_attempts_total{kind="signup",result="success"}"#));
    // No raw ids in labels.
    assert!(!text.contains(&user.id), "a user id leaked into a label");
}

async fn openapi_describes_every_api_route(stack: Stack) {
    let app = spawn_app(stack).await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/signup", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/me", "get"),
        ("/api/v1/tus", "options"),
        ("/api/v1/tus", "post"),
        ("/api/v1/tus/{id}", "head"),
        ("/api/v1/tus/{id}", "patch"),
        ("/api/v1/tus/{id}", "delete"),
        ("/api/v1/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

async fn upload_metrics_move_when_uploads_finish_or_fail(stack: Stack) {
    let app = crate::helpers::spawn_app_with(stack, &[("--janitor-interval", "300ms")]).await;
    let user = app.new_user().await;
    let completed = r#"stowage_uploads_completed_total{kind="direct"}"#;
    let bytes = r#"stowage_upload_bytes_total{kind="direct"}"#;
    let aborted = r#"stowage_uploads_failed_total{kind="multipart",reason="aborted"}"#;
    let (c0, b0, a0) = (
        app.metric(completed).await,
        app.metric(bytes).await,
        app.metric(aborted).await,
    );
    app.upload_file(&user, "counted.bin", &[7u8; 1000]).await;
    assert!(app.metric(completed).await >= c0 + 1.0);
    assert!(app.metric(bytes).await >= b0 + 1000.0);

    let created: Value = app
        .post_authed(
            "/api/v1/uploads/multipart",
            &user.access_token,
            &serde_json::json!({"name": "m", "size": 10}),
        )
        .await
        .json()
        .await
        .unwrap();
    let upload = created["upload_id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app
        .metric(r#"stowage_uploads_active{kind="multipart"}"#)
        .await
        < 1.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the active gauge never counted the session"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/uploads/multipart/{upload}")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(app.metric(aborted).await >= a0 + 1.0);
    let text = app.metrics_text().await;
    for family in [
        "stowage_uploads_active",
        "stowage_upload_bytes_total",
        "stowage_uploads_completed_total",
        "stowage_uploads_failed_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {family}")),
            "{family} is described"
        );
    }
}
