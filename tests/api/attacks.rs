//! Regression tests for what an attacker found: each failed before its fix.

use crate::helpers::{Stack, assert_problem, spawn_app};

crate::on_both_stacks!(a_tus_metadata_flood_is_refused_cheaply,);

/// An `Upload-Metadata` header of ~34,000 keys once cost seconds of CPU on
/// an HTTP worker (a quadratic duplicate check); now it is refused at once,
/// and so is a header over the key or size cap.
async fn a_tus_metadata_flood_is_refused_cheaply(stack: Stack) {
    let app = spawn_app(stack).await;
    let user = app.new_user().await;
    let post = async |metadata: String| {
        app.client
            .post(app.url("/api/v1/tus"))
            .bearer_auth(&user.access_token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "10")
            .header("Upload-Metadata", metadata)
            .send()
            .await
            .unwrap()
    };
    let keys = |n: usize| -> String {
        (0..n)
            .map(|i| format!("k{i} dg=="))
            .collect::<Vec<_>>()
            .join(",")
    };
    // 34,000 unique short keys in ~130 KB, so only the caps can refuse it
    // (it was 201, after seconds of CPU, before them).
    let short = |mut i: usize| {
        let mut key = String::new();
        loop {
            key.push(char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]));
            i /= 36;
            if i == 0 {
                break key;
            }
        }
    };
    let flood = (0..34_000).map(short).collect::<Vec<_>>().join(",");
    assert!((100_000..140_000).contains(&flood.len()), "{}", flood.len());
    assert_problem(post(flood).await, 400, "invalid_header").await;
    assert_problem(post(keys(65)).await, 400, "invalid_header").await;
    let fine = post(format!("filename {},{}", "YS50eHQ=", keys(63))).await;
    assert_eq!(fine.status(), 201, "{:?}", fine.text().await);
}
