//! Health, readiness, metrics and the OpenAPI document.

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use stowage_actors::events::EventBus;
use stowage_actors::files::Files;
use utoipa::{OpenApi, ToSchema};

/// 200 while the process serves.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `"ok"` or what is wrong.
    pub database: String,
    pub storage: String,
    pub events: String,
}

impl Readiness {
    fn ready(&self) -> bool {
        [&self.database, &self.storage, &self.events]
            .iter()
            .all(|s| s.as_str() == "ok")
    }
}

/// 200 when every dependency answers, 503 naming the ones that do not.
pub async fn readyz(
    db: web::Data<DatabaseConnection>,
    files: web::Data<Files>,
    bus: web::Data<EventBus>,
) -> HttpResponse {
    let (database, storage) = tokio::join!(db.ping(), files.storage().ping());
    let verdict = |what: &str, r: Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: {what} not ready");
            e
        }
    };
    let report = Readiness {
        database: verdict("database", database.map_err(|_| "unreachable".to_owned())),
        storage: verdict("storage", storage.map_err(|_| "unreachable".to_owned())),
        events: verdict("events", bus.health()),
    };
    if report.ready() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// Prometheus text exposition.
pub async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::http::openapi::ApiDoc::openapi())
}
