//! `/orgs/{org_code}/users`: the organization's users (`read:users`).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::auth::Authorized;
use crate::auth::scope::ReadUsers;
use crate::error::ApiError;
use crate::tenant::{Db, TenantTx};

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrgUser {
    pub id: i64,
    pub email: String,
    pub name: String,
}

pub async fn list(
    auth: Authorized<ReadUsers>,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = TenantTx::begin(&db, &auth).await?;
    let result = list_users(&mut tx).await;
    let users = tx.finish(result).await?;
    Ok(HttpResponse::Ok().json(json!({
        "org_code": auth.org_code(),
        "total": users.len(),
        "users": users,
    })))
}

#[tracing::instrument(skip_all)]
pub async fn list_users(tx: &mut TenantTx) -> Result<Vec<OrgUser>, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    sqlx::query_as("select id, email, name from org_users where org_code = $1 order by id")
        .bind(org)
        .fetch_all(tx.conn())
        .await
}

/// Adds a user to the transaction's organization with the org's next user id.
#[tracing::instrument(skip_all)]
pub async fn insert_user(
    tx: &mut TenantTx,
    email: &str,
    name: &str,
) -> Result<OrgUser, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    sqlx::query_as(
        "with next as (
           insert into tenant_counters as c (org_code, counter, last_value)
           values ($1, 'org_users', 1)
           on conflict (org_code, counter) do update set last_value = c.last_value + 1
           returning last_value
         )
         insert into org_users (org_code, id, email, name)
         select $1, last_value, $2, $3 from next
         returning id, email, name",
    )
    .bind(org)
    .bind(email)
    .bind(name)
    .fetch_one(tx.conn())
    .await
}
