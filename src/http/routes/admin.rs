//! `/api/v1/admin/users…`: a product's back end manages its users with an
//! admin key (the `admin` scope; every route here checks it again).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::accounts::{
    AccountError, Accounts, Need, NewUser, UserFilter, UserPatch, external_id,
};
use stowage_actors::domain::{DisplayName, Email};
use stowage_actors::files::Files;
use stowage_entity::users;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::account::UsageBody;
use super::files::present;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: Option<String>,
    /// The id your product knows the user by (unique).
    #[schema(
        example = "crm-4711",
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub external_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub display_name: Option<String>,
    /// Bytes; `null`: unlimited; absent: `STOWAGE_DEFAULT_QUOTA`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 0)]
    pub quota_bytes: Option<Option<u64>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchRequest {
    /// Bytes; `null`: unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 0)]
    pub quota_bytes: Option<Option<u64>>,
    /// A disabled user gets 401 everywhere, their logins, tokens and keys too.
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    pub email: Option<String>,
    pub external_id: Option<String>,
}

/// A user as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserBody {
    pub id: Uuid,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub quota_bytes: Option<i64>,
    pub disabled: bool,
    pub usage: UsageBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserList {
    pub items: Vec<AdminUserBody>,
}

async fn body(files: &Files, user: users::Model) -> Result<AdminUserBody, ApiError> {
    let usage = files.usage(user.id).await?;
    Ok(AdminUserBody {
        id: user.id,
        email: Some(user.email).filter(|e| !e.is_empty()),
        external_id: user.external_id,
        display_name: user.display_name,
        created_at: user.created_at,
        quota_bytes: user.quota_bytes,
        disabled: user.disabled_at.is_some(),
        usage: UsageBody {
            files: usage.files,
            bytes: usage.bytes,
            reserved_bytes: usage.reserved_bytes,
        },
    })
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found("user_not_found", format!("user {id} does not exist"))
}

/// Create a user (no password): one of your product's users.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    request_body = NewUserRequest,
    responses((status = 201, body = AdminUserBody), (status = 400, body = Problem),
        (status = 403, body = Problem, description = "`insufficient_scope`: not an admin key"),
        (status = 409, body = Problem, description = "`email_taken` or `external_id_taken`")))]
pub async fn create(
    caller: Authenticated,
    accounts: web::Data<Accounts>,
    files: web::Data<Files>,
    body_in: JsonObject<NewUserRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.0.require(Need::Admin)?;
    let r = body_in.into_inner();
    let new = NewUser {
        email: r.email.as_deref().map(Email::parse).transpose()?,
        external_id: r.external_id.as_deref().map(external_id).transpose()?,
        display_name: r
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()?,
        quota_bytes: r.quota_bytes,
    };
    let user = accounts.create_user(new).await?;
    Ok(HttpResponse::Created().json(body(&files, user).await?))
}

/// Find users by email or external id.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserQuery),
    responses((status = 200, body = AdminUserList), (status = 403, body = Problem)))]
pub async fn find(
    caller: Authenticated,
    accounts: web::Data<Accounts>,
    files: web::Data<Files>,
    query: web::Query<UserQuery>,
) -> Result<web::Json<AdminUserList>, ApiError> {
    caller.0.require(Need::Admin)?;
    let q = query.into_inner();
    let users = accounts
        .find_users(UserFilter {
            email: q.email,
            external_id: q.external_id,
        })
        .await?;
    let mut items = Vec::with_capacity(users.len());
    for u in users {
        items.push(body(&files, u).await?);
    }
    Ok(web::Json(AdminUserList { items }))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = AdminUserBody), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    caller: Authenticated,
    accounts: web::Data<Accounts>,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AdminUserBody>, ApiError> {
    caller.0.require(Need::Admin)?;
    let user = match accounts.user(*id).await {
        Err(AccountError::UserGone) => return Err(not_found(*id)),
        other => other?,
    };
    Ok(web::Json(body(&files, user).await?))
}

/// Set a user's quota, or disable (and enable) them.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UserPatchRequest,
    responses((status = 200, body = AdminUserBody), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn patch(
    caller: Authenticated,
    accounts: web::Data<Accounts>,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
    body_in: JsonObject<UserPatchRequest>,
) -> Result<web::Json<AdminUserBody>, ApiError> {
    caller.0.require(Need::Admin)?;
    let r = body_in.into_inner();
    let patch = UserPatch {
        quota_bytes: r.quota_bytes,
        disabled: r.disabled,
    };
    let user = match accounts.patch_user(*id, patch).await {
        Err(AccountError::UserGone) => return Err(not_found(*id)),
        other => other?,
    };
    Ok(web::Json(body(&files, user).await?))
}
