//! The Stowage server: configuration, the HTTP API, telemetry and start-up
//! wiring. The domain lives in `stowage-actors`.

pub mod config;
pub mod db;
pub mod http;
pub mod startup;
pub mod telemetry;
pub mod tls;

pub use startup::Application;
