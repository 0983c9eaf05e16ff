//! Health, readiness, metrics and the OpenAPI document.

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use serde::Serialize;
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
pub async fn readyz(db: web::Data<DatabaseConnection>) -> HttpResponse {
    let database = match db.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            "unreachable".to_owned()
        }
    };
    // The local blob store and the in-process event bus live in this process:
    // while it answers, they do.
    let report = Readiness {
        database,
        storage: "ok".into(),
        events: "ok".into(),
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
