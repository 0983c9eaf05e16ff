//! `/api/v1/me`.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use stowage_actors::accounts::Accounts;
use stowage_actors::files::Files;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBody {
    /// Live files the user owns.
    pub files: u64,
    /// Stored bytes: every file, the trash included.
    pub bytes: u64,
    /// Bytes reserved by unfinished uploads.
    pub reserved_bytes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeBody {
    pub id: Uuid,
    /// `null` for a user an admin created without an address.
    pub email: Option<String>,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub usage: UsageBody,
    /// `null`: no quota. Stored and reserved bytes together stay within it.
    pub quota_bytes: Option<i64>,
}

/// The caller's account and usage.
#[utoipa::path(get, path = "/api/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = MeBody), (status = 401, body = Problem)))]
pub async fn me(
    caller: Authenticated,
    accounts: web::Data<Accounts>,
    files: web::Data<Files>,
) -> Result<web::Json<MeBody>, ApiError> {
    let user = accounts.user(caller.0.user_id).await?;
    let usage = files.usage(user.id).await?;
    Ok(web::Json(MeBody {
        id: user.id,
        email: Some(user.email).filter(|e| !e.is_empty()),
        display_name: user.display_name,
        created_at: user.created_at,
        usage: UsageBody {
            files: usage.files,
            bytes: usage.bytes,
            reserved_bytes: usage.reserved_bytes,
        },
        quota_bytes: user.quota_bytes,
    }))
}
