//! The tenant transaction: the second wall.
//!
//! Only an [`OrgContext`] opens one. It begins a transaction, drops to the `orgwall_tenant`
//! role when the login role could bypass row-level security, and sets `app.org_code`
//! transaction-locally, all in one round trip. Tenant query functions take `&mut TenantTx`, so a
//! query that forgot its tenant does not compile; RLS holds even if one forgot its `where`.

use sqlx::{PgConnection, PgPool};
use std::sync::OnceLock;

use crate::auth::OrgContext;
use crate::db::Tx;
use crate::domain::OrgCode;

/// Whether the login role must switch to `orgwall_tenant` for tenant work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleMode {
    /// The login role is neither superuser, nor BYPASSRLS, nor owner of an RLS table.
    AlreadyLimited,
    /// Each tenant transaction runs `set local role orgwall_tenant`.
    SwitchToTenant,
}

/// The pool plus what tenant transactions need to know about it.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    role_mode: std::sync::Arc<OnceLock<RoleMode>>,
}

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            role_mode: Default::default(),
        }
    }

    /// The pool, for the issuer's catalogue (not tenant data) and health checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Decided on first use from the login role's attributes, then remembered. While the
    /// database is down every caller tries for itself (the answer is the same whoever stores
    /// it), so that requests fail in parallel within the acquire timeout instead of queueing
    /// behind one another's attempts.
    pub async fn role_mode(&self) -> Result<RoleMode, sqlx::Error> {
        if let Some(mode) = self.role_mode.get() {
            return Ok(*mode);
        }
        let privileged: bool = sqlx::query_scalar(
            "select r.rolsuper or r.rolbypassrls or exists (
                 select 1 from pg_class c
                  where c.relowner = r.oid and c.relrowsecurity)
               from pg_roles r where r.rolname = current_user",
        )
        .fetch_one(&self.pool)
        .await?;
        let mode = if privileged {
            RoleMode::SwitchToTenant
        } else {
            RoleMode::AlreadyLimited
        };
        if self.role_mode.set(mode).is_ok() {
            tracing::info!(?mode, "tenant transactions role mode decided");
        }
        Ok(mode)
    }
}

/// A transaction in which `app.org_code` names exactly one organization.
pub struct TenantTx {
    tx: Tx,
    org: OrgCode,
}

impl TenantTx {
    pub async fn begin(db: &Db, ctx: &OrgContext) -> Result<Self, sqlx::Error> {
        let mode = db.role_mode().await?;
        let org = ctx.org_code().clone();
        let tx = Tx::begin(&db.pool, begin_sql(mode, &org)).await?;
        Ok(Self { tx, org })
    }

    /// The organization this transaction is scoped to.
    pub fn org(&self) -> &OrgCode {
        &self.org
    }

    /// The connection, inside the tenant context.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.tx.conn()
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Commits on `Ok`, rolls back on `Err`; returns `result`.
    pub async fn finish<T, E: From<sqlx::Error>>(self, result: Result<T, E>) -> Result<T, E> {
        self.tx.finish(result).await
    }
}

/// A single tenant statement, for the hot paths: one of the `tenant_*` SQL functions, which
/// switches role and sets `app.org_code` itself inside the statement's implicit transaction
/// (migration 20261127000005). One round trip where [`TenantTx`] costs three; the same
/// guarantees: transaction-local context, RLS on, nothing left on the connection. Only an
/// [`OrgContext`] opens one.
pub struct TenantCall<'a> {
    db: &'a Db,
    org: OrgCode,
    switch_role: bool,
}

impl<'a> TenantCall<'a> {
    pub async fn new(db: &'a Db, ctx: &OrgContext) -> Result<Self, sqlx::Error> {
        let switch_role = db.role_mode().await? == RoleMode::SwitchToTenant;
        Ok(Self {
            db,
            org: ctx.org_code().clone(),
            switch_role,
        })
    }

    pub fn org(&self) -> &OrgCode {
        &self.org
    }

    /// Whether the function must drop to `orgwall_tenant` (its `p_switch` argument).
    pub fn switch_role(&self) -> bool {
        self.switch_role
    }

    /// Where the statement runs: the pool, never inside another transaction.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

/// One simple-protocol round trip: BEGIN, the role switch, the context. The org code's alphabet
/// (letters, digits, `_-.`) cannot end the literal; quotes are doubled all the same.
fn begin_sql(mode: RoleMode, org: &OrgCode) -> String {
    let literal = org.as_str().replace('\'', "''");
    let role = match mode {
        RoleMode::SwitchToTenant => "set local role orgwall_tenant; ",
        RoleMode::AlreadyLimited => "",
    };
    format!("begin; {role}select set_config('app.org_code', '{literal}', true)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_sql_sets_context_locally() {
        let org = OrgCode::parse("org_acme").unwrap();
        assert_eq!(
            begin_sql(RoleMode::SwitchToTenant, &org),
            "begin; set local role orgwall_tenant; select set_config('app.org_code', 'org_acme', true)"
        );
        assert_eq!(
            begin_sql(RoleMode::AlreadyLimited, &org),
            "begin; select set_config('app.org_code', 'org_acme', true)"
        );
    }
}
