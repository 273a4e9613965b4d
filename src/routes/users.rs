//! `/orgs/{org_code}/users`: the organization's users (`read:users`).

use actix_web::{HttpResponse, web};
use serde_json::json;
use sqlx::PgPool;

use crate::auth::Authorized;
use crate::auth::scope::ReadUsers;
use crate::error::ApiError;
use crate::tenant::{TenantTx, users};

pub async fn list(
    auth: Authorized<ReadUsers>,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = TenantTx::begin(&db, &auth).await?;
    let result = users::list_users(&mut tx).await;
    let users = tx.finish(result).await?;
    Ok(HttpResponse::Ok().json(json!({
        "org_code": auth.org_code(),
        "total": users.len(),
        "users": users,
    })))
}
