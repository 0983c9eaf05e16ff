//! Stowage's domain: the types that user input is parsed into, the queries,
//! and (as they arrive) storage, events and the actors that do the work.
//! Nothing here knows about HTTP; the server in `src/` maps these types and
//! errors onto routes and problem+json.

pub mod accounts;
pub mod circuit;
pub mod domain;
pub mod events;
pub mod files;
pub mod ingest;
pub mod janitor;
pub mod keys;
pub mod links;
pub mod metrics;
pub mod outbox;
pub mod sharing;
pub mod storage;
pub mod time;
pub mod trace;
pub mod tus;
pub mod uploads;
pub mod webhooks;
