//! The authentication contract: signup, login, refresh, logout, me, and
//! every way a token can be wrong.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{
    JWT_SECRET, PASSWORD, Stack, User, assert_problem, spawn_app, spawn_app_with,
};

crate::on_both_stacks!(
    signup_returns_a_session_and_me_shows_the_account,
    an_email_taken_in_another_case_is_409,
    invalid_signups_are_400_and_create_nothing,
    wrong_password_and_unknown_email_are_the_same_401,
    login_is_case_insensitive_and_opens_a_new_session,
    bad_access_tokens_are_401,
    refresh_rotates_and_reuse_revokes_the_whole_login,
    concurrent_refreshes_share_one_new_pair_and_late_reuse_still_revokes,
    logout_ends_the_login_and_only_the_callers,
    no_body_makes_the_auth_routes_fail_with_5xx,
);

async fn signup_returns_a_session_and_me_shows_the_account(stack: Stack) {
    let app = spawn_app(stack).await;
    let res = app
        .post_json(
            "/api/v1/auth/signup",
            &json!({"email": "Ada.Lovelace@Example.com", "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    assert_eq!(session["user"]["email"], "Ada.Lovelace@Example.com");
    assert_eq!(session["user"]["display_name"], "Ada");
    let id = session["user"]["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert!(
        chrono::DateTime::parse_from_rfc3339(session["user"]["created_at"].as_str().unwrap())
            .is_ok()
    );
    let user = User::from_session(&session);
    assert_ne!(user.access_token, user.refresh_token);

    let res = app.get_authed("/api/v1/me", &user.access_token).await;
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], "Ada.Lovelace@Example.com");
    assert_eq!(me["display_name"], "Ada");
    assert_eq!(me["created_at"], session["user"]["created_at"]);
    assert_eq!(
        me["usage"],
        json!({"files": 0, "bytes": 0, "reserved_bytes": 0})
    );
    assert!(me.get("quota_bytes").is_some());

    // Without a display name, the part before the '@' is used.
    let res = app.signup("grace@example.com", PASSWORD).await;
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["user"]["display_name"], "grace");
}

async fn an_email_taken_in_another_case_is_409(stack: Stack) {
    let app = spawn_app(stack).await;
    assert_eq!(app.signup("ada@example.com", PASSWORD).await.status(), 201);
    let body = assert_problem(
        app.signup("ADA@Example.COM", "another password").await,
        409,
        "email_taken",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("already exists"));
    // The first account is untouched: its password still works, the second does not.
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    assert_problem(
        app.login("ada@example.com", "another password").await,
        401,
        "invalid_credentials",
    )
    .await;
}

async fn invalid_signups_are_400_and_create_nothing(stack: Stack) {
    let app = spawn_app(stack).await;
    let cases = [
        json!({"email": "ada@example.com", "password": "short"}),
        json!({"email": "ada@example.com", "password": "x".repeat(1025)}),
        json!({"email": "not-an-email", "password": PASSWORD}),
        json!({"email": "", "password": PASSWORD}),
        json!({"email": "ada@example.com", "password": PASSWORD, "display_name": "   "}),
        json!({"email": "ada@example.com", "password": PASSWORD, "display_name": "a\u{0}b"}),
    ];
    for body in cases {
        let res = app.post_json("/api/v1/auth/signup", &body).await;
        let problem = assert_problem(res, 400, "invalid_field").await;
        assert!(
            problem["detail"].as_str().unwrap().starts_with('`'),
            "{problem}"
        );
    }
    // Nothing was created: the address is still free.
    assert_eq!(app.signup("ada@example.com", PASSWORD).await.status(), 201);
    // Exactly 8 and 1024 characters are fine.
    assert_eq!(app.signup("b@example.com", "12345678").await.status(), 201);
    assert_eq!(
        app.signup("c@example.com", &"é".repeat(1024))
            .await
            .status(),
        201
    );
}

async fn wrong_password_and_unknown_email_are_the_same_401(stack: Stack) {
    // A realistic cost, so that skipping the hash would show in the timing.
    let app = spawn_app_with(stack, &[("--pbkdf2-rounds", "200000")]).await;
    let user = app.new_user().await;
    let wrong = assert_problem(
        app.login(&user.email, "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_problem(
        app.login("nobody@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong["detail"], unknown["detail"]);

    // An unknown email costs as much as a wrong password: the fastest of
    // three attempts each (interference only ever adds time).
    let (mut wrong_min, mut unknown_min) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        app.login(&user.email, "wrong password").await;
        wrong_min = wrong_min.min(t.elapsed());
        let t = Instant::now();
        app.login("nobody@example.com", "wrong password").await;
        unknown_min = unknown_min.min(t.elapsed());
    }
    assert!(
        unknown_min * 2 > wrong_min,
        "unknown email answered in {unknown_min:?}, wrong password in {wrong_min:?}"
    );
}

async fn login_is_case_insensitive_and_opens_a_new_session(stack: Stack) {
    let app = spawn_app(stack).await;
    let first = app.new_user().await;
    let res = app.login(&first.email.to_uppercase(), PASSWORD).await;
    assert_eq!(res.status(), 200);
    let second = User::from_session(&res.json().await.unwrap());
    assert_eq!(second.id, first.id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        app.get_authed("/api/v1/me", &second.access_token)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get_authed("/api/v1/me", &first.access_token)
            .await
            .status(),
        200
    );
}

fn forge(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn bad_access_tokens_are_401(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let me = "/api/v1/me";

    // Missing.
    let res = app.client.get(app.url(me)).send().await.unwrap();
    assert!(
        res.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_problem(res, 401, "missing_token").await;
    let res = app
        .client
        .get(app.url(me))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "missing_token").await;

    // Tampered: one character of the signature changed, or of the claims.
    let (head, rest) = user.access_token.split_once('.').unwrap();
    let (claims, sig) = rest.split_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered_sig = format!("{head}.{claims}.{flipped}{}", &sig[1..]);
    assert_problem(
        app.get_authed(me, &tampered_sig).await,
        401,
        "invalid_token",
    )
    .await;
    let mut decoded: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    decoded["sub"] = json!(uuid::Uuid::now_v7());
    let tampered_claims = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(decoded.to_string())
    );
    assert_problem(
        app.get_authed(me, &tampered_claims).await,
        401,
        "invalid_token",
    )
    .await;

    // alg: none, with valid-looking claims.
    let now = chrono::Utc::now().timestamp();
    let original: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!(
        "{none_header}.{}.",
        URL_SAFE_NO_PAD.encode(original.to_string())
    );
    assert_problem(app.get_authed(me, &unsigned).await, 401, "invalid_token").await;

    // Signed with another key.
    assert_problem(
        app.get_authed(me, &forge(&original, b"some other secret of decent length"))
            .await,
        401,
        "invalid_token",
    )
    .await;

    // Expired, properly signed.
    let mut expired = original.clone();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    assert_problem(
        app.get_authed(me, &forge(&expired, JWT_SECRET.as_bytes()))
            .await,
        401,
        "token_expired",
    )
    .await;

    // Properly signed for a session that does not exist.
    let mut stray = original.clone();
    stray["sid"] = json!(uuid::Uuid::now_v7());
    assert_problem(
        app.get_authed(me, &forge(&stray, JWT_SECRET.as_bytes()))
            .await,
        401,
        "session_revoked",
    )
    .await;

    // Garbage.
    assert_problem(
        app.get_authed(me, "not-a-token").await,
        401,
        "invalid_token",
    )
    .await;

    // And the real one still works.
    assert_eq!(app.get_authed(me, &user.access_token).await.status(), 200);
}

async fn refresh_rotates_and_reuse_revokes_the_whole_login(stack: Stack) {
    let app = spawn_app(stack).await;
    let first = app.new_user().await;
    let other_login = User::from_session(
        &app.login(&first.email, PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
    );

    let res = app.refresh(&first.refresh_token).await;
    assert_eq!(res.status(), 200);
    let second = User::from_session(&res.json().await.unwrap());
    assert_eq!(second.id, first.id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        app.get_authed("/api/v1/me", &second.access_token)
            .await
            .status(),
        200
    );

    // The login goes on; then the first token comes back, after its
    // successor was spent (so no grace): 401, and the whole login is revoked.
    let res = app.refresh(&second.refresh_token).await;
    assert_eq!(res.status(), 200);
    let third = User::from_session(&res.json().await.unwrap());
    assert_problem(
        app.refresh(&first.refresh_token).await,
        401,
        "refresh_token_reused",
    )
    .await;
    assert_problem(
        app.refresh(&third.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_problem(
        app.get_authed("/api/v1/me", &third.access_token).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.get_authed("/api/v1/me", &second.access_token).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.get_authed("/api/v1/me", &first.access_token).await,
        401,
        "session_revoked",
    )
    .await;

    // Another login of the same user is not affected.
    assert_eq!(
        app.get_authed("/api/v1/me", &other_login.access_token)
            .await
            .status(),
        200
    );
    assert_eq!(app.refresh(&other_login.refresh_token).await.status(), 200);

    // Unknown tokens.
    assert_problem(
        app.refresh("srt_nonsense").await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_problem(app.refresh("").await, 401, "invalid_refresh_token").await;
}

async fn logout_ends_the_login_and_only_the_callers(stack: Stack) {
    let app = spawn_app(stack).await;
    let ada = app.new_user().await;
    let bob = app.new_user().await;
    let logout = |token: Option<&str>, refresh: &str| {
        let mut req = app
            .client
            .post(app.url("/api/v1/auth/logout"))
            .json(&json!({"refresh_token": refresh}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    // Needs the caller's access token.
    assert_problem(
        logout(None, &ada.refresh_token).await.unwrap(),
        401,
        "missing_token",
    )
    .await;
    // Someone else's refresh token: refused, and Bob stays logged in.
    assert_problem(
        logout(Some(&ada.access_token), &bob.refresh_token)
            .await
            .unwrap(),
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(
        app.get_authed("/api/v1/me", &bob.access_token)
            .await
            .status(),
        200
    );

    let res = logout(Some(&ada.access_token), &ada.refresh_token)
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_problem(
        app.get_authed("/api/v1/me", &ada.access_token).await,
        401,
        "session_revoked",
    )
    .await;
    assert_eq!(app.refresh(&ada.refresh_token).await.status(), 401);
    // Logging in again works.
    assert_eq!(app.login(&ada.email, PASSWORD).await.status(), 200);
}

async fn no_body_makes_the_auth_routes_fail_with_5xx(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let huge = format!(
        "{{\"email\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(100_000)
    );
    let bodies: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("application/json"), b"".to_vec()),
        (Some("application/json"), b"{".to_vec()),
        (Some("application/json"), b"null".to_vec()),
        (Some("application/json"), b"[]".to_vec()),
        (Some("application/json"), b"42".to_vec()),
        (
            Some("application/json"),
            br#"{"email": 5, "password": true}"#.to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"email": ["a"], "password": {"b": 1}}"#.to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"refresh_token": null}"#.to_vec(),
        ),
        (
            Some("application/json"),
            b"{\"email\":\"\xff\xfe\",\"password\":\"\xc3\x28\"}".to_vec(),
        ),
        (
            Some("application/json"),
            br#"{"email":"a@b.c","password":"12345678","extra":1}"#.to_vec(),
        ),
        (Some("application/json"), huge.into_bytes()),
        (
            Some("text/plain"),
            br#"{"email":"a@b.c","password":"12345678"}"#.to_vec(),
        ),
        (None, b"\x00\x01\x02".to_vec()),
    ];
    for route in ["signup", "login", "refresh", "logout"] {
        for (content_type, body) in &bodies {
            let mut req = app
                .client
                .post(app.url(&format!("/api/v1/auth/{route}")))
                .bearer_auth(&user.access_token)
                .body(body.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", *ct);
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            assert!(
                status.is_client_error(),
                "{route} with {:?} answered {status}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
            assert_eq!(
                res.headers().get("content-type").unwrap(),
                "application/problem+json",
                "{route}"
            );
        }
    }
    // Specific codes for the common mistakes.
    let post = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert_problem(
        post("", "application/json").await.unwrap(),
        400,
        "empty_body",
    )
    .await;
    assert_problem(
        post("{", "application/json").await.unwrap(),
        400,
        "malformed_json",
    )
    .await;
    assert_problem(
        post(
            r#"{"email":"a","password":"b","admin":true}"#,
            "application/json",
        )
        .await
        .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    assert_problem(
        post(r#"{"email":1,"password":"b"}"#, "application/json")
            .await
            .unwrap(),
        400,
        "invalid_body",
    )
    .await;
    assert_problem(
        post("email=a", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body(vec![b' '; 20_000])
        .send()
        .await
        .unwrap();
    assert_problem(res, 413, "payload_too_large").await;
    // The server is still fine.
    assert_eq!(
        app.get_authed("/api/v1/me", &user.access_token)
            .await
            .status(),
        200
    );
}

/// Two tabs refresh with the same token at once: both get the same new pair
/// and the login lives on. The spent token replayed after the grace period
/// is reuse: the login is revoked.
async fn concurrent_refreshes_share_one_new_pair_and_late_reuse_still_revokes(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let (a, b) = futures_util::future::join(
        app.refresh(&user.refresh_token),
        app.refresh(&user.refresh_token),
    )
    .await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["refresh_token"], b["refresh_token"]);
    assert_eq!(a["access_token"], b["access_token"]);
    assert_ne!(a["refresh_token"], user.refresh_token.as_str());
    let next = User::from_session(&a);
    assert_eq!(
        app.get_authed("/api/v1/me", &next.access_token)
            .await
            .status(),
        200
    );
    // Still within the grace period, a third tab gets it too.
    let c: Value = app.refresh(&user.refresh_token).await.json().await.unwrap();
    assert_eq!(c["refresh_token"], a["refresh_token"]);

    actix_web::rt::time::sleep(std::time::Duration::from_millis(5_500)).await;
    assert_problem(
        app.refresh(&user.refresh_token).await,
        401,
        "refresh_token_reused",
    )
    .await;
    assert_problem(
        app.get_authed("/api/v1/me", &next.access_token).await,
        401,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.refresh(&next.refresh_token).await,
        401,
        "invalid_refresh_token",
    )
    .await;
}
