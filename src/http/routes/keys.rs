//! `/api/v1/keys`: personal and service keys.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::keys::{KeyView, Keys, NewKey};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    #[schema(
        example = "billing back end",
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub name: String,
    /// `files:read`, `files:write` (every files route, reading included) and/or `admin`.
    #[schema(inline, value_type = Vec<crate::http::schema::KeyScope>, min_items = 1)]
    pub scopes: Vec<String>,
    /// When the key stops working; default: never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyBody {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters, to tell it apart.
    #[schema(example = "stk_3q2-Xa9f")]
    pub prefix: String,
    #[schema(inline, value_type = Vec<crate::http::schema::KeyScope>)]
    pub scopes: Vec<&'static str>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// To the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key itself: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyBody {
    fn new(view: KeyView, secret: Option<String>) -> Self {
        let k = view.key;
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: view.scopes.names(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            key: secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyBody>,
}

/// Create a key (shown once). With a login or an admin key; only an admin may mint `admin`.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", security(("bearer" = [])),
    request_body = KeyRequest,
    responses((status = 201, body = KeyBody), (status = 400, body = Problem),
        (status = 403, body = Problem, description = "`insufficient_scope`")))]
pub async fn create(
    caller: Authenticated,
    keys: web::Data<Keys>,
    body: JsonObject<KeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let r = body.into_inner();
    let new = NewKey::parse(&r.name, &r.scopes, r.expires_at)?;
    let (view, secret) = keys.create(&caller.0, new).await?;
    Ok(HttpResponse::Created().json(KeyBody::new(view, Some(secret))))
}

/// The caller's keys (no key material).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 403, body = Problem)))]
pub async fn list(
    caller: Authenticated,
    keys: web::Data<Keys>,
) -> Result<web::Json<KeyList>, ApiError> {
    let items = keys.list(&caller.0).await?;
    Ok(web::Json(KeyList {
        items: items.into_iter().map(|k| KeyBody::new(k, None)).collect(),
    }))
}

/// Delete a key: refused from the next request on, on every instance.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke(
    caller: Authenticated,
    keys: web::Data<Keys>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    keys.revoke(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
