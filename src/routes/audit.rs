//! `/orgs/{org_code}/audit`: the organization's audit log (`read:audit`), paged like records.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sqlx::PgPool;

use crate::auth::Authorized;
use crate::auth::scope::ReadAudit;
use crate::error::ApiError;
use crate::routes::records::page_from_query;
use crate::tenant::{TenantTx, audit};

pub async fn list(
    auth: Authorized<ReadAudit>,
    req: HttpRequest,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let page = page_from_query(req.query_string())?;
    let mut tx = TenantTx::begin(&db, &auth).await?;
    let result = audit::list(&mut tx, &page).await;
    let (events, total) = tx.finish(result).await?;
    Ok(HttpResponse::Ok().json(json!({
        "org_code": auth.org_code(),
        "events": events,
        "total": total,
    })))
}
