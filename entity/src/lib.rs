//! Stowage's database models. Plain sea-orm entities and nothing else: the
//! rules about them live in `stowage-actors`, the schema in `stowage-migration`.

pub mod api_keys;
pub mod file_revisions;
pub mod files;
pub mod links;
pub mod login_sessions;
pub mod outbox;
pub mod outbox_relay;
pub mod refresh_tokens;
pub mod shares;
pub mod shortcuts;
pub mod upload_parts;
pub mod upload_sessions;
pub mod users;
pub mod webhook_deliveries;
pub mod webhooks;
