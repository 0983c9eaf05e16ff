//! The layers every route passes through: request ids, problem+json for
//! every error, security headers, CORS, rate limits, and blocking work kept
//! off the async workers.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PASSWORD, Stack, assert_problem, spawn_app, spawn_app_with};

crate::on_both_stacks!(
    request_ids_are_echoed_or_generated,
    unknown_routes_and_wrong_methods_are_problem_json,
    security_headers_are_on_every_response,
    cors_allows_configured_origins_only,
    auth_routes_are_limited_per_client_ip,
    api_routes_are_limited_per_user,
    a_burst_of_logins_does_not_stall_other_requests,
);

async fn request_ids_are_echoed_or_generated(stack: Stack) {
    let app = spawn_app(stack).await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("x-request-id", "client-chosen-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-chosen-123");
    let body = assert_problem(res, 401, "missing_token").await;
    assert_eq!(body["request_id"], "client-chosen-123");

    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let again = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), generated);

    // An unusable client id (too long, or with spaces) is replaced.
    for bad in ["x".repeat(200), "has spaces in it".to_owned()] {
        let res = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", &bad)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(id).is_ok());
    }
}

async fn unknown_routes_and_wrong_methods_are_problem_json(stack: Stack) {
    let app = spawn_app(stack).await;
    let body = assert_problem(
        app.client
            .get(app.url("/no/such/route"))
            .send()
            .await
            .unwrap(),
        404,
        "route_not_found",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("/no/such/route"));
    assert_problem(
        app.client
            .get(app.url("/api/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
        404,
        "route_not_found",
    )
    .await;
    assert_problem(
        app.client
            .delete(app.url("/api/v1/me"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_problem(
        app.client
            .get(app.url("/api/v1/auth/login"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_problem(
        app.client.post(app.url("/healthz")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

async fn security_headers_are_on_every_response(stack: Stack) {
    let app = spawn_app(stack).await;
    for res in [
        app.client.get(app.url("/healthz")).send().await.unwrap(),
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.signup("ada@example.com", PASSWORD).await,
    ] {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert_eq!(h["cache-control"], "no-store");
    }
}

async fn cors_allows_configured_origins_only(stack: Stack) {
    let app = spawn_app_with(
        stack,
        &[(
            "--cors-origins",
            "https://app.example.com,https://admin.example.com",
        )],
    )
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
    };
    let res = preflight("https://app.example.com").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );

    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://admin.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://admin.example.com"
    );
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for h in [
        "etag",
        "location",
        "x-request-id",
        "upload-offset",
        "tus-resumable",
    ] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }

    let res = preflight("https://evil.example.com").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert!(res.status().is_client_error());
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

async fn auth_routes_are_limited_per_client_ip(stack: Stack) {
    let app = spawn_app_with(stack, &[("--rate-limit-auth", "3/min")]).await;
    for _ in 0..3 {
        assert_eq!(
            app.login("nobody@example.com", PASSWORD).await.status(),
            401
        );
    }
    let res = app.login("nobody@example.com", PASSWORD).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_problem(res, 429, "rate_limited").await;
    // Every auth route shares the budget; other routes do not spend it.
    assert_eq!(app.signup("ada@example.com", PASSWORD).await.status(), 429);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stowage_rate_limited_total{scope=\"auth\"}")),
        "{metrics}"
    );
}

async fn api_routes_are_limited_per_user(stack: Stack) {
    let app = spawn_app_with(stack, &[("--rate-limit-api", "4/min")]).await;
    let ada = app.new_user().await;
    let bob = app.new_user().await;
    for _ in 0..4 {
        assert_eq!(
            app.get_authed("/api/v1/me", &ada.access_token)
                .await
                .status(),
            200
        );
    }
    let res = app.get_authed("/api/v1/me", &ada.access_token).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429, "rate_limited").await;
    // Bob has a budget of his own, from the same address.
    assert_eq!(
        app.get_authed("/api/v1/me", &bob.access_token)
            .await
            .status(),
        200
    );
}

async fn a_burst_of_logins_does_not_stall_other_requests(stack: Stack) {
    // The production cost: each hash takes a noticeable time.
    let app = spawn_app_with(stack, &[("--pbkdf2-rounds", "600000")]).await;
    let user = app.new_user().await;
    let started = Instant::now();
    let logins: Vec<_> = (0..10)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/v1/auth/login");
            let body = json!({"email": user.email, "password": PASSWORD});
            actix_web::rt::spawn(async move {
                client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let res = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        slowest = slowest.max(t.elapsed());
    }
    let health_done = started.elapsed();
    for login in logins {
        assert_eq!(login.await.unwrap(), 200);
    }
    let logins_done = started.elapsed();
    assert!(
        health_done * 2 < logins_done,
        "/healthz answered 5 times by {health_done:?} (slowest {slowest:?}), logins finished at {logins_done:?}"
    );
}
