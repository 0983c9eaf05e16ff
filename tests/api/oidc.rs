//! Outside identity: bearer JWTs from a real issuer the test runs
//! (`tests/fixtures/oidc_issuer.py`: discovery, a JWKS of RSA, P-256 and
//! Ed25519 keys, rotation, and tokens signed by PyJWT).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp, assert_problem, spawn_app_with};

crate::on_both_stacks!(
    an_issuers_tokens_work_on_every_route_with_each_algorithm,
    forged_expired_and_foreign_tokens_are_401,
    a_rotated_key_works_and_unknown_keys_do_not_hammer_the_issuer,
);

/// The issuer, killed when dropped.
struct Issuer {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Issuer {
    fn start() -> Self {
        crate::helpers::python_packages(&[("jwt", "pyjwt"), ("cryptography", "cryptography")]);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc_issuer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test issuer (pip install pyjwt cryptography)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        assert!(url.starts_with("http://"), "the issuer said {line:?}");
        Self {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn token(&self, body: Value) -> String {
        self.post("/token", body).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn fetches(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["jwks_fetches"].as_u64().unwrap()
    }
}

async fn app_for(stack: Stack, issuer: &Issuer) -> TestApp {
    spawn_app_with(
        stack,
        &[
            ("--oidc-issuer", &issuer.url),
            ("--oidc-audience", "stowage-test"),
        ],
    )
    .await
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.get_authed("/api/v1/me", token).await
}

async fn an_issuers_tokens_work_on_every_route_with_each_algorithm(stack: Stack) {
    let issuer = Issuer::start();
    let app = app_for(stack, &issuer).await;
    let token = issuer
        .token(
            json!({"alg": "RS256", "sub": "ada", "email": "ada@example.com",
                      "email_verified": true, "name": "Ada L."}),
        )
        .await;
    let res = me(&app, &token).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let ada: Value = res.json().await.unwrap();
    assert_eq!(
        (&ada["email"], &ada["display_name"]),
        (&json!("ada@example.com"), &json!("Ada L."))
    );
    // The same subject is the same user, whichever key signs.
    for alg in ["ES256", "EdDSA"] {
        let again = issuer.token(json!({"alg": alg, "sub": "ada"})).await;
        let res = me(&app, &again).await;
        assert_eq!(res.status(), 200, "{alg}: {:?}", res.text().await);
        assert_eq!(res.json::<Value>().await.unwrap()["id"], ada["id"], "{alg}");
    }
    // Every route: an upload, a folder, a key.
    let created = app
        .create_upload(&token, &json!({"name": "from-sso.txt", "size": 3}))
        .await;
    assert_eq!(created["file"]["owner_id"], ada["id"]);
    let res = app
        .post_authed("/api/v1/folders", &token, &json!({"name": "sso"}))
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .post_authed(
            "/api/v1/keys",
            &token,
            &json!({"name": "ci", "scopes": ["files:read"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // Not a Stowage login: nothing to log out of.
    let res = app
        .post_authed(
            "/api/v1/auth/logout",
            &token,
            &json!({"refresh_token": "srt_x"}),
        )
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    // An unverified email is not taken; nor is one another account has.
    let bob = issuer
        .token(json!({"sub": "bob", "email": "bob@example.com", "email_verified": false}))
        .await;
    let body: Value = me(&app, &bob).await.json().await.unwrap();
    assert_eq!(body["email"], Value::Null);
    let owner = app.new_user().await;
    let taker = issuer
        .token(json!({"sub": "mallory", "email": owner.email, "email_verified": true}))
        .await;
    let body: Value = me(&app, &taker).await.json().await.unwrap();
    assert_ne!(body["id"], owner.id.as_str());
    assert_eq!(body["email"], Value::Null);
    // Passwords still work beside it.
    assert_eq!(me(&app, &owner.access_token).await.status(), 200);
}

async fn forged_expired_and_foreign_tokens_are_401(stack: Stack) {
    let issuer = Issuer::start();
    let app = app_for(stack, &issuer).await;
    let refused = [
        (
            "expired",
            issuer.token(json!({"exp_in": -120})).await,
            "token_expired",
        ),
        (
            "not yet valid",
            issuer.token(json!({"nbf_in": 600})).await,
            "invalid_token",
        ),
        (
            "another audience",
            issuer.token(json!({"aud": "someone-else"})).await,
            "invalid_token",
        ),
        (
            "another issuer",
            issuer.token(json!({"iss": "https://evil.example"})).await,
            "invalid_token",
        ),
        (
            "an unknown key",
            issuer.token(json!({"kid": "nobody"})).await,
            "invalid_token",
        ),
        (
            "alg none",
            issuer.post("/forge", json!({"kind": "none"})).await["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            "invalid_token",
        ),
        (
            "HS256 keyed with the public key",
            issuer.post("/forge", json!({"kind": "hs256-public"})).await["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            "invalid_token",
        ),
    ];
    for (what, token, code) in refused {
        let res = me(&app, &token).await;
        assert_eq!(res.status(), 401, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], code, "{what}: {body}");
    }
    // A token signed with a key whose alg it does not claim.
    let es = issuer.token(json!({"alg": "ES256"})).await;
    let mut parts: Vec<String> = es.split('.').map(str::to_owned).collect();
    let rsa_kid = issuer.token(json!({"alg": "RS256"})).await;
    parts[0] = rsa_kid.split('.').next().unwrap().to_owned();
    assert_eq!(me(&app, &parts.join(".")).await.status(), 401);
    // Within the leeway, a token just expired still works.
    let fresh = issuer.token(json!({"exp_in": -5})).await;
    assert_eq!(me(&app, &fresh).await.status(), 200);
    // A disabled user's tokens are refused.
    let admin = crate::keys::admin_key(&app);
    let user: Value = me(&app, &fresh).await.json().await.unwrap();
    let res = app
        .client
        .patch(app.url(&format!(
            "/api/v1/admin/users/{}",
            user["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_problem(me(&app, &fresh).await, 401, "account_disabled").await;
}

async fn a_rotated_key_works_and_unknown_keys_do_not_hammer_the_issuer(stack: Stack) {
    let issuer = Issuer::start();
    let app = app_for(stack, &issuer).await;
    let before = issuer.token(json!({"sub": "carol"})).await;
    assert_eq!(me(&app, &before).await.status(), 200);
    let fetched = issuer.fetches().await;
    assert_eq!(fetched, 1, "discovery, then the JWKS once");
    // Tokens naming unknown keys, many at once: the JWKS is fetched at
    // most once more, not once per token.
    for i in 0..20 {
        let token = issuer.token(json!({"kid": format!("unknown-{i}")})).await;
        assert_eq!(me(&app, &token).await.status(), 401);
    }
    assert!(issuer.fetches().await <= fetched + 1);
    // Rotation: a token of the new key works once the refetch is allowed.
    issuer.post("/rotate", json!({})).await;
    tokio::time::sleep(stowage_actors::accounts::OIDC_REFETCH_EVERY).await;
    let after = issuer.token(json!({"sub": "carol"})).await;
    let res = me(&app, &after).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(
        res.json::<Value>().await.unwrap()["id"],
        me(&app, &after).await.json::<Value>().await.unwrap()["id"]
    );
}
