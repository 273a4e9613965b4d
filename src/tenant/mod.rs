//! Tenant data: the second wall, and the only place tenant SQL lives.
//!
//! Every tenant statement runs inside a tenant context that only an [`OrgContext`] opens:
//! either a [`TenantTx`] (a transaction) or a [`TenantCall`] (one `tenant_*` SQL function, which
//! enters the context itself). Both drop to the `orgwall_tenant` role (`set local role`),
//! whatever role `DATABASE_URL` logs in as, and set `app.org_code` transaction-locally. Inside,
//! row-level security limits every table to the one organization, and the issuer's catalogue
//! (signing keys, secrets, apps) cannot be read at all: `orgwall_tenant` holds no privilege on
//! it. Query functions in [`records`] and [`users`] take one of the two, so a query that forgot
//! its tenant does not compile; RLS holds even if one forgot its `where`.

pub mod audit;
pub mod records;
pub mod users;

use sqlx::{PgConnection, PgPool};

use crate::auth::OrgContext;
use crate::db::Tx;
use crate::domain::OrgCode;

/// A transaction in which the role is `orgwall_tenant` and `app.org_code` names exactly one
/// organization.
pub struct TenantTx {
    tx: Tx,
    org: OrgCode,
    client_id: Option<String>,
}

impl TenantTx {
    pub async fn begin(pool: &PgPool, ctx: &OrgContext) -> Result<Self, sqlx::Error> {
        let org = ctx.org_code().clone();
        let tx = Tx::begin(pool, begin_sql(&org)).await?;
        Ok(Self {
            tx,
            org,
            client_id: ctx.client_id().map(str::to_owned),
        })
    }

    /// The organization this transaction is scoped to.
    pub fn org(&self) -> &OrgCode {
        &self.org
    }

    /// The client acting (its token's client id), `None` for an operator: what the audit
    /// events of this transaction record.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The connection, inside the tenant context (for the query functions of this module, and
    /// for tests that prove the second wall with queries of their own).
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
/// switches to `orgwall_tenant` and sets `app.org_code` itself inside the statement's implicit
/// transaction (through `tenant_enter`). One round trip where [`TenantTx`] costs three; the
/// same guarantees: transaction-local role and context, RLS on, nothing left on the
/// connection. Only an [`OrgContext`] opens one; the query functions of this module bind its
/// organization as the function's first argument, and nothing else can reach its pool.
pub struct TenantCall<'a> {
    pool: &'a PgPool,
    org: &'a OrgCode,
    client_id: Option<&'a str>,
}

impl<'a> TenantCall<'a> {
    pub fn new(pool: &'a PgPool, ctx: &'a OrgContext) -> Self {
        Self {
            pool,
            org: ctx.org_code(),
            client_id: ctx.client_id(),
        }
    }

    pub fn org(&self) -> &OrgCode {
        self.org
    }

    /// The client acting, `None` for an operator (see [`TenantTx::client_id`]).
    pub fn client_id(&self) -> Option<&str> {
        self.client_id
    }
}

/// One simple-protocol round trip: BEGIN, the role switch, the context. The org code's alphabet
/// (letters, digits, `_-.`) cannot end the literal; quotes are doubled all the same.
fn begin_sql(org: &OrgCode) -> String {
    let literal = org.as_str().replace('\'', "''");
    format!(
        "begin; set local role orgwall_tenant; select set_config('app.org_code', '{literal}', true)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_sql_switches_role_and_sets_context_locally() {
        let org = OrgCode::parse("org_acme").unwrap();
        assert_eq!(
            begin_sql(&org),
            "begin; set local role orgwall_tenant; select set_config('app.org_code', 'org_acme', true)"
        );
    }
}
