//! `/api/v1/files/{id}/shares…` and `/api/v1/shortcuts…`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::domain::ValidationError;
use stowage_actors::files::{FileError, Files};
use stowage_actors::sharing::{ListShares, Revoke, Share, Sharing};
use stowage_entity::files::ItemKind;
use stowage_entity::shares::{self, ShareRole};
use stowage_entity::users;
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::FileBody;
use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// The email of the account to share with.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `viewer` or `editor`.
    #[schema(inline, value_type = crate::http::schema::ShareRole)]
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareBody {
    pub user_id: Uuid,
    pub email: String,
    #[schema(example = "viewer")]
    pub role: &'static str,
    pub created_at: DateTime<Utc>,
}

impl ShareBody {
    fn new(share: &shares::Model, user: &users::Model) -> Self {
        Self {
            user_id: user.id,
            email: user.email.clone(),
            role: match share.role {
                ShareRole::Viewer => "viewer",
                ShareRole::Editor => "editor",
            },
            created_at: share.created_at,
        }
    }
}

/// Share with a user (201), or change their role (200).
#[utoipa::path(post, path = "/api/v1/files/{id}/shares", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ShareRequest,
    responses((status = 201, body = ShareBody), (status = 200, body = ShareBody, description = "already shared: role set"),
        (status = 403, body = Problem), (status = 404, body = Problem, description = "`file_not_found` or `user_not_found`"),
        (status = 409, body = Problem, description = "`file_pending`: a file is shared once its upload has finished")))]
pub async fn share(
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    id: web::Path<Uuid>,
    body: JsonObject<ShareRequest>,
) -> Result<HttpResponse, ApiError> {
    share_item(ItemKind::File, caller, sharing, *id, body.into_inner()).await
}

/// Shares a file or folder: the handlers of both routes.
pub async fn share_item(
    kind: ItemKind,
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    id: Uuid,
    body: ShareRequest,
) -> Result<HttpResponse, ApiError> {
    let ShareRequest { email, role } = body;
    let role = match role.as_str() {
        "viewer" => ShareRole::Viewer,
        "editor" => ShareRole::Editor,
        _ => return Err(ValidationError::new("role", "must be `viewer` or `editor`").into()),
    };
    let outcome = sharing
        .share(Share {
            caller: caller.0.user_id,
            file_id: id,
            kind,
            email,
            role,
        })
        .await?;
    let body = ShareBody::new(&outcome.share, &outcome.user);
    Ok(if outcome.created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareList {
    pub items: Vec<ShareBody>,
}

/// Who the file is shared with (owner only).
#[utoipa::path(get, path = "/api/v1/files/{id}/shares", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ShareList), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ShareList>, ApiError> {
    list_item(ItemKind::File, caller, sharing, *id).await
}

/// The shares of a file or folder.
pub async fn list_item(
    kind: ItemKind,
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    id: Uuid,
) -> Result<web::Json<ShareList>, ApiError> {
    let rows = sharing
        .list(ListShares {
            caller: caller.0.user_id,
            file_id: id,
            kind,
        })
        .await?;
    Ok(web::Json(ShareList {
        items: rows.iter().map(|(s, u)| ShareBody::new(s, u)).collect(),
    }))
}

/// End a share: the owner revoking, or the sharee leaving. Their shortcuts to the file go too.
#[utoipa::path(delete, path = "/api/v1/files/{id}/shares/{user_id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (file_id, user_id) = path.into_inner();
    revoke_item(ItemKind::File, caller, sharing, file_id, user_id).await
}

/// Ends a share of a file or folder.
pub async fn revoke_item(
    kind: ItemKind,
    caller: Authenticated,
    sharing: web::Data<Sharing>,
    file_id: Uuid,
    user_id: Uuid,
) -> Result<HttpResponse, ApiError> {
    sharing
        .revoke(Revoke {
            caller: caller.0.user_id,
            file_id,
            kind,
            user_id,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShortcutRequest {
    pub file_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShortcutBody {
    pub shortcut_id: Uuid,
    pub file: FileBody,
}

/// A shortcut to a file you own or that is shared with you.
#[utoipa::path(post, path = "/api/v1/shortcuts", tag = "sharing", security(("bearer" = [])),
    request_body = ShortcutRequest,
    responses((status = 201, body = ShortcutBody), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "`shortcut_exists`")))]
pub async fn add_shortcut(
    caller: Authenticated,
    files: web::Data<Files>,
    base: web::Data<PublicBase>,
    body: JsonObject<ShortcutRequest>,
) -> Result<HttpResponse, ApiError> {
    let view = files.add_shortcut(caller.0.user_id, body.file_id).await?;
    let shortcut_id = view
        .shortcut_id
        .ok_or_else(|| ApiError::from(FileError::Conflict))?;
    let mut file = FileBody::new(view, &base);
    file.shortcut_id = None;
    Ok(HttpResponse::Created().json(ShortcutBody { shortcut_id, file }))
}

/// Remove one of your shortcuts.
#[utoipa::path(delete, path = "/api/v1/shortcuts/{shortcut_id}", tag = "sharing", security(("bearer" = [])),
    params(("shortcut_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove_shortcut(
    caller: Authenticated,
    files: web::Data<Files>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    files.remove_shortcut(caller.0.user_id, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
