//! Compiles the services variants of the API tests as ignored (so they are
//! reported as ignored, never as passed) unless the services they need are
//! configured when the tests are built: `.ci/run` sets these.

const SERVICE_VARS: [&str; 5] = [
    "STOWAGE_TEST_DATABASE_URL",
    "STOWAGE_TEST_S3_ENDPOINT",
    "STOWAGE_TEST_S3_ACCESS_KEY",
    "STOWAGE_TEST_S3_SECRET_KEY",
    "STOWAGE_TEST_NATS_URL",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(stowage_services)");
    for var in SERVICE_VARS {
        println!("cargo::rerun-if-env-changed={var}");
    }
    if SERVICE_VARS.iter().all(|v| std::env::var_os(v).is_some()) {
        println!("cargo::rustc-cfg=stowage_services");
    }
}
