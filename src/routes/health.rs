use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::tenant::Db;

/// Liveness: answers without touching the database.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when the database answers, 503 otherwise.
pub async fn ready(db: web::Data<Db>) -> Result<HttpResponse, ApiError> {
    sqlx::query("select 1")
        .execute(db.pool())
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}
