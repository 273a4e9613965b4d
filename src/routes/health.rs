use actix_web::{HttpResponse, web};
use serde_json::json;
use sqlx::PgPool;

use crate::error::ApiError;

/// Liveness: answers without touching the database.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when the database answers, 503 otherwise.
pub async fn ready(db: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    crate::db::ping(&db)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}
