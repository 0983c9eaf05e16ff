//! The API test suite. Every test runs the real application on port 0 with a
//! database of its own, once on the embedded default (SQLite, local store)
//! and once on the services stack (PostgreSQL at `STOWAGE_TEST_DATABASE_URL`).

mod helpers;

mod at_rest;
mod attacks;
mod auth;
mod circuit;
mod clients;
mod crash;
mod cross_cutting;
mod files;
mod folders;
mod ingest;
mod instances;
mod janitor;
mod keys;
mod links;
mod multipart;
mod oidc;
mod ops;
mod outbox;
mod process;
mod protection;
mod quotas;
mod revisions;
mod sharing;
mod tls;
mod tls_deps;
mod traces;
mod trash;
mod tus;
mod tus_parts;
mod uploads;
mod webapp;
mod webhooks;
