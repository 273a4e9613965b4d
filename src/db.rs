//! The connection pool and a cancellation-safe transaction guard.
//!
//! sqlx 0.9.0 (the newest release) can return a pooled Postgres connection that is still inside
//! a transaction when the future running `BEGIN` is dropped mid-flight (sqlx issues 4385 and
//! 4393; the fix, PR 4394, is not released yet). So transactions here do not use sqlx's
//! `begin()`: [`Tx`] sends `BEGIN` itself and, if it is dropped before `COMMIT` or `ROLLBACK`
//! completed (a cancelled request, a panic, an early return), closes the connection instead of
//! returning it, so the server rolls back and no pooled connection ever carries a transaction
//! or a tenant context. The pool also refuses connections that sqlx itself knows to be inside a
//! transaction, and every session has `idle_in_transaction_session_timeout` as a last resort.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres};

use crate::config::Settings;

/// Connection options shared by `serve`, `migrate` and the tests.
pub fn connect_options(settings: &Settings) -> Result<PgConnectOptions, sqlx::Error> {
    let statement_ms = settings.db.statement_timeout.as_millis().to_string();
    Ok(
        PgConnectOptions::from_str(settings.database_url.expose_secret())?
            .application_name("orgwall")
            .options([
                ("statement_timeout", statement_ms.as_str()),
                ("idle_in_transaction_session_timeout", "30000"),
            ]),
    )
}

/// The service's pool. Connections are opened lazily so that `serve` starts (and answers
/// `/health`, and `/ready` with 503) while the database is down.
pub fn pool(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.db.max_connections)
        .acquire_timeout(settings.db.acquire_timeout)
        .after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .connect_lazy_with(connect_options(settings)?))
}

/// A transaction on a pooled connection that can never go back to the pool unfinished.
pub struct Tx {
    conn: Option<PoolConnection<Postgres>>,
    finished: bool,
}

impl Tx {
    /// Acquires a connection and runs `begin_sql` (which must start with `begin`) as one
    /// simple-protocol round trip.
    pub(crate) async fn begin(pool: &PgPool, begin_sql: String) -> Result<Self, sqlx::Error> {
        debug_assert!(begin_sql.starts_with("begin"));
        let conn = pool.acquire().await?;
        // The guard exists before BEGIN is sent, so a cancellation from here on closes the
        // connection instead of pooling it.
        let mut tx = Tx {
            conn: Some(conn),
            finished: false,
        };
        // Not a macro: a batch of statements in one simple-protocol round trip, built at run time.
        sqlx::raw_sql(AssertSqlSafe(begin_sql))
            .execute(tx.conn())
            .await?;
        Ok(tx)
    }

    /// A plain `begin` (catalogue work, not tenant data).
    pub(crate) async fn begin_plain(pool: &PgPool) -> Result<Self, sqlx::Error> {
        Self::begin(pool, "begin".into()).await
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("BUG: Tx used after finish")
    }

    // `commit` and `rollback` are plain simple-protocol statements, like the `begin` they end.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql("commit").execute(self.conn()).await?;
        self.finished = true;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        sqlx::raw_sql("rollback").execute(self.conn()).await?;
        self.finished = true;
        Ok(())
    }

    /// Commits when `result` is `Ok`, rolls back when it is `Err`, and returns `result`
    /// (or the commit's own error).
    pub async fn finish<T, E: From<sqlx::Error>>(self, result: Result<T, E>) -> Result<T, E> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // A failed rollback leaves `finished` false, so the guard closes the connection.
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.finished
            && let Some(mut conn) = self.conn.take()
        {
            conn.close_on_drop();
        }
    }
}

/// One round trip to the database (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("select 1 as one")
        .fetch_one(pool)
        .await
        .map(drop)
}

/// The versions of the migrations applied successfully.
pub async fn applied_migrations(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar!("select version from _sqlx_migrations where success")
        .fetch_all(pool)
        .await
}
