//! An organization's users.

use serde::Serialize;

use super::TenantTx;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgUser {
    pub id: i64,
    pub email: String,
    pub name: String,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_users(tx: &mut TenantTx) -> Result<Vec<OrgUser>, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    sqlx::query_as!(
        OrgUser,
        "select id, email, name from org_users where org_code = $1 order by id",
        org
    )
    .fetch_all(tx.conn())
    .await
}

/// Adds a user to the transaction's organization with the org's next user id.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert_user(
    tx: &mut TenantTx,
    email: &str,
    name: &str,
) -> Result<OrgUser, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    sqlx::query_as!(
        OrgUser,
        "insert into org_users (org_code, id, email, name)
         values ($1, (tenant_take_ids($1, 0, 1, 0)).user_id, $2, $3)
         returning id, email, name",
        org,
        email,
        name,
    )
    .fetch_one(tx.conn())
    .await
}
