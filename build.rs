//! Two jobs before the server compiles:
//!
//! - Builds the web app (`web/` → `web/dist`, which the server embeds)
//!   when Node.js is installed and the build is missing or older than its
//!   sources. Without Node, or when the build fails, the server still
//!   builds: it serves the API, and `/` says how to build the app (a
//!   warning says so here too). `STOWAGE_SKIP_WEB_BUILD=1` skips it.
//! - Compiles the tests that need what is not here as *ignored* (reported
//!   so, never as passed): the services variants unless the services are
//!   configured (`.ci/run` sets these), the web app's tests unless it was
//!   built, the browser tests unless Chromium is installed too.

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

const SERVICE_VARS: [&str; 5] = [
    "STOWAGE_TEST_DATABASE_URL",
    "STOWAGE_TEST_S3_ENDPOINT",
    "STOWAGE_TEST_S3_ACCESS_KEY",
    "STOWAGE_TEST_S3_SECRET_KEY",
    "STOWAGE_TEST_NATS_URL",
];

/// What the web build reads: a change to any of them builds it again.
const WEB_SOURCES: [&str; 6] = [
    "web/src",
    "web/index.html",
    "web/public",
    "web/package-lock.json",
    "web/openapi.json",
    "web/vite.config.ts",
];

const CHROMIUM: &str = "/usr/bin/chromium";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(stowage_services)");
    println!("cargo::rustc-check-cfg=cfg(stowage_web_app)");
    println!("cargo::rustc-check-cfg=cfg(stowage_browser)");
    for var in SERVICE_VARS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if SERVICE_VARS.iter().all(|v| std::env::var_os(v).is_some()) {
        println!("cargo::rustc-cfg=stowage_services");
    }

    println!("cargo::rerun-if-env-changed=STOWAGE_SKIP_WEB_BUILD");
    for source in WEB_SOURCES {
        println!("cargo::rerun-if-changed={source}");
    }
    println!("cargo::rerun-if-changed=web/dist/index.html");
    if std::env::var_os("STOWAGE_SKIP_WEB_BUILD").is_none() {
        build_web();
    }
    let built = Path::new("web/dist/index.html").exists();
    if built {
        println!("cargo::rustc-cfg=stowage_web_app");
    }
    if built
        && Path::new(CHROMIUM).exists()
        && Path::new("web/node_modules/playwright-core").exists()
    {
        println!("cargo::rustc-cfg=stowage_browser");
    }
}

/// Builds `web/dist` if it is missing or stale and Node can build it.
fn build_web() {
    let built = modified(Path::new("web/dist/index.html"));
    let newest = WEB_SOURCES
        .iter()
        .filter_map(|s| newest_in(Path::new(s)))
        .max();
    if built.is_some() && built >= newest {
        return;
    }
    if Command::new("npm").arg("--version").output().is_err() {
        println!(
            "cargo::warning=the web app is not built (no Node.js here): the server serves the API, and / says how to build the app"
        );
        return;
    }
    let installed = modified(Path::new("web/node_modules/.package-lock.json"));
    let locked = modified(Path::new("web/package-lock.json"));
    if (installed.is_none() || installed < locked)
        && let Err(why) = npm(&["ci", "--no-audit", "--no-fund"])
    {
        println!("cargo::warning=the web app's dependencies were not installed: {why}");
        return;
    }
    if let Err(why) = npm(&["run", "build"]) {
        println!("cargo::warning=the web app did not build: {why}");
    }
}

fn npm(args: &[&str]) -> Result<(), String> {
    let out = Command::new("npm")
        .args(args)
        .current_dir("web")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    let tail: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let skip = tail.chars().count().saturating_sub(600);
    let tail: String = tail.chars().skip(skip).collect();
    Err(format!("npm {}: {tail}", args.join(" ")))
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file, or of any file below a directory.
fn newest_in(path: &Path) -> Option<SystemTime> {
    let meta = path.metadata().ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| newest_in(&e.path()))
        .max()
}
