//! Real tus clients that nobody here wrote: tuspy (PyPI) and tus-js-client
//! (npm, under Node) upload, pause, resume and finish, on both stacks.
//! `.ci/run` installs them; outside CI a missing client skips its test.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::helpers::{Stack, random_bytes, sha256_hex, spawn_app};

crate::on_both_stacks!(
    tuspy_uploads_pauses_and_resumes,
    tus_js_client_uploads_pauses_and_resumes
);

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// Whether a client is installed; in CI a missing one fails the test.
fn available(name: &str, probe: &mut Command) -> bool {
    let ok = probe.output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed; .ci/run installs it"
        );
        eprintln!("skipped: {name} is not installed (see .ci/run)");
    }
    ok
}

async fn upload_with(stack: Stack, program: &str, script: &str) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let bytes = random_bytes(9 << 20);
    let file = app.data_dir.with_extension("client-upload.bin");
    std::fs::write(&file, &bytes).unwrap();
    let mut cmd = Command::new(program);
    cmd.current_dir(CLIENTS)
        .arg(Path::new(CLIENTS).join(script))
        .arg(&app.address)
        .arg(&user.access_token)
        .arg(&file);
    // The client blocks; the server runs on this test's runtime.
    let out = actix_web::rt::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let id = url.rsplit('/').next().unwrap();
    let session: Value = app
        .get_authed(&format!("/api/v1/uploads/{id}"), &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["kind"], "tus");
    assert_eq!(session["state"], "completed", "{session}");
    let file_id = session["file_id"].as_str().unwrap();
    let meta: Value = app
        .get_file(&user.access_token, file_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["sha256"], sha256_hex(&bytes));
    assert!(meta["name"].as_str().unwrap().ends_with(".bin"), "{meta}");
    assert_eq!(app.download(&user.access_token, file_id).await, bytes);
}

async fn tuspy_uploads_pauses_and_resumes(stack: Stack) {
    if available(
        "tuspy",
        Command::new("python3").args(["-c", "import tusclient"]),
    ) {
        upload_with(stack, "python3", "tuspy_upload.py").await;
    }
}

async fn tus_js_client_uploads_pauses_and_resumes(stack: Stack) {
    if available(
        "tus-js-client",
        Command::new("node")
            .current_dir(CLIENTS)
            .args(["-e", "require.resolve('tus-js-client')"]),
    ) {
        upload_with(stack, "node", "tus_js_upload.mjs").await;
    }
}
