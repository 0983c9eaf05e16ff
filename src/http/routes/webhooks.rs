//! `/api/v1/webhooks…`: signed deliveries of the domain events.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::webhooks::{NewWebhook, WebhookPatch, Webhooks};
use stowage_entity::{webhook_deliveries, webhooks};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where deliveries are POSTed: http or https, not inside the network.
    #[schema(example = "https://hooks.example.com/stowage", max_length = 2048)]
    pub url: String,
    /// Event types (`file.available`, …), or `["*"]` for all.
    #[schema(inline, value_type = Vec<crate::http::schema::WebhookEvent>, min_items = 1)]
    pub events: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchRequest {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[schema(inline, value_type = Option<Vec<crate::http::schema::WebhookEvent>>, min_items = 1)]
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookBody {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// `whsec_…`: only in the answer that created the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookBody {
    fn new(w: webhooks::Model, with_secret: bool) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events.split(' ').map(str::to_owned).collect(),
            description: w.description,
            enabled: w.enabled,
            created_at: w.created_at,
            secret: with_secret.then_some(w.secret),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryBody {
    pub id: Uuid,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(example = "delivered")]
    pub status: &'static str,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<webhook_deliveries::Model> for DeliveryBody {
    fn from(d: webhook_deliveries::Model) -> Self {
        let pending = d.status == webhook_deliveries::DeliveryStatus::Pending;
        Self {
            id: d.id,
            event_id: d.event_id,
            kind: d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            next_attempt_at: pending.then_some(d.next_attempt_at),
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryBody>,
}

/// Register a webhook (its secret is shown once).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = WebhookRequest,
    responses((status = 201, body = WebhookBody),
        (status = 400, body = Problem, description = "`webhook_url_forbidden`, `invalid_field`")))]
pub async fn create(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
    body: JsonObject<WebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let r = body.into_inner();
    let new = NewWebhook {
        url: r.url,
        events: r.events,
        description: r.description,
    };
    let hook = hooks.create(&caller.0, new).await?;
    Ok(HttpResponse::Created().json(WebhookBody::new(hook, true)))
}

/// The caller's webhooks.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList)))]
pub async fn list(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
) -> Result<web::Json<WebhookList>, ApiError> {
    let items = hooks.list(&caller.0).await?;
    Ok(web::Json(WebhookList {
        items: items
            .into_iter()
            .map(|w| WebhookBody::new(w, false))
            .collect(),
    }))
}

/// One webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = WebhookBody), (status = 404, body = Problem)))]
pub async fn get(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
    id: web::Path<Uuid>,
) -> Result<web::Json<WebhookBody>, ApiError> {
    Ok(web::Json(WebhookBody::new(
        hooks.get(&caller.0, *id).await?,
        false,
    )))
}

/// Change a webhook's URL, events, or whether it is enabled.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = WebhookPatchRequest,
    responses((status = 200, body = WebhookBody), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn patch(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
    id: web::Path<Uuid>,
    body: JsonObject<WebhookPatchRequest>,
) -> Result<web::Json<WebhookBody>, ApiError> {
    let r = body.into_inner();
    let patch = WebhookPatch {
        url: r.url,
        events: r.events,
        enabled: r.enabled,
    };
    Ok(web::Json(WebhookBody::new(
        hooks.update(&caller.0, *id, patch).await?,
        false,
    )))
}

/// Delete a webhook and its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    hooks.delete(&caller.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The webhook's latest deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem)))]
pub async fn deliveries(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
    id: web::Path<Uuid>,
) -> Result<web::Json<DeliveryList>, ApiError> {
    let items = hooks.deliveries(&caller.0, *id).await?;
    Ok(web::Json(DeliveryList {
        items: items.into_iter().map(DeliveryBody::from).collect(),
    }))
}

/// Send a delivery again.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 202), (status = 404, body = Problem)))]
pub async fn retry(
    caller: Authenticated,
    hooks: web::Data<Webhooks>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery) = path.into_inner();
    hooks.retry(&caller.0, id, delivery).await?;
    Ok(HttpResponse::Accepted().finish())
}
