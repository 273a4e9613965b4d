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

/// The `application_name` of the request pool's connections in pooler mode
/// (`DATABASE_STATEMENT_CACHE=false`); [`pooled`] reads the mode back from it.
const POOLED_APPLICATION_NAME: &str = "orgwall-pooled";

/// The request pool's connection options (`serve`, the CLI, the tests).
///
/// Direct mode sends the session timeouts as the startup `options` and keeps sqlx's statement
/// cache. Pooler mode (`DATABASE_STATEMENT_CACHE=false`, `DATABASE_URL` through PgBouncer in
/// transaction mode) sends no `options`, which PgBouncer refuses: `migrate` stores the same
/// timeouts as the runtime role's settings in the database instead. It caches no statement, and
/// every statement runs in an explicit transaction ([`Tx`], [`Work`]) that leaves no prepared
/// statement behind on the server connection.
pub fn connect_options(settings: &Settings) -> Result<PgConnectOptions, sqlx::Error> {
    if settings.db.statement_cache {
        direct_options(settings)
    } else {
        Ok(
            PgConnectOptions::from_str(settings.database_url.expose_secret())?
                .application_name(POOLED_APPLICATION_NAME)
                .statement_cache_capacity(0),
        )
    }
}

/// Options for a direct connection to PostgreSQL (never through a pooler): `migrate` always
/// uses these.
pub fn direct_options(settings: &Settings) -> Result<PgConnectOptions, sqlx::Error> {
    let statement_ms = settings.db.statement_timeout.as_millis().to_string();
    Ok(
        PgConnectOptions::from_str(settings.database_url.expose_secret())?
            .application_name("orgwall")
            .options([
                ("statement_timeout", statement_ms.as_str()),
                (
                    "idle_in_transaction_session_timeout",
                    IDLE_IN_TRANSACTION_TIMEOUT,
                ),
            ]),
    )
}

/// The server-side `idle_in_transaction_session_timeout` of every request connection.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "30000";

/// Whether `pool` goes through a transaction-mode pooler (its connections were made by
/// [`connect_options`] with `DATABASE_STATEMENT_CACHE=false`).
pub fn pooled(pool: &PgPool) -> bool {
    pool.connect_options().get_application_name() == Some(POOLED_APPLICATION_NAME)
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
    /// Through a transaction-mode pooler: the transaction starts and ends with
    /// `deallocate all`, so no prepared statement outlives it on the server connection.
    pooled: bool,
}

impl Tx {
    /// Acquires a connection and runs `begin_sql` (which must start with `begin`) as one
    /// simple-protocol round trip.
    pub(crate) async fn begin(pool: &PgPool, begin_sql: String) -> Result<Self, sqlx::Error> {
        debug_assert!(begin_sql.starts_with("begin"));
        let pooled = pooled(pool);
        let begin_sql = if pooled {
            // Another client of the pooler may have left statements on this server connection;
            // sqlx names its own `sqlx_s_<n>` per client connection, so they would collide.
            begin_sql + "; deallocate all"
        } else {
            begin_sql
        };
        let conn = pool.acquire().await?;
        // The guard exists before BEGIN is sent, so a cancellation from here on closes the
        // connection instead of pooling it.
        let mut tx = Tx {
            conn: Some(conn),
            finished: false,
            pooled,
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
    // Through a pooler, `deallocate all` follows in the same message (one ReadyForQuery, so
    // the same server connection): the next client of that server connection finds none of
    // this transaction's named statements. It follows rather than precedes, so that it also
    // runs after a failed statement (an aborted transaction refuses everything but its end).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let sql = if self.pooled {
            "commit; deallocate all"
        } else {
            "commit"
        };
        sqlx::raw_sql(sql).execute(self.conn()).await?;
        self.finished = true;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let sql = if self.pooled {
            "rollback; deallocate all"
        } else {
            "rollback"
        };
        sqlx::raw_sql(sql).execute(self.conn()).await?;
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

/// A connection for statements that need no transaction of their own (reads and one-statement
/// writes on the pool). Directly, it is a plain pooled connection: each statement is its own
/// implicit transaction, one round trip, as on the pool. Through a pooler it is a [`Tx`]: sqlx
/// sends a statement in two round trips (Parse, then Bind and Execute), which a
/// transaction-mode pooler may hand to two different server connections unless a transaction
/// holds them together.
pub enum Work {
    Direct(PoolConnection<Postgres>),
    Pooled(Tx),
}

impl Work {
    pub async fn start(pool: &PgPool) -> Result<Self, sqlx::Error> {
        if pooled(pool) {
            Ok(Work::Pooled(Tx::begin_plain(pool).await?))
        } else {
            Ok(Work::Direct(pool.acquire().await?))
        }
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        match self {
            Work::Direct(conn) => conn,
            Work::Pooled(tx) => tx.conn(),
        }
    }

    /// Ends the work: through a pooler, commits on `Ok` and rolls back on `Err`; returns
    /// `result`.
    pub async fn finish<T, E: From<sqlx::Error>>(self, result: Result<T, E>) -> Result<T, E> {
        match self {
            Work::Direct(_) => result,
            Work::Pooled(tx) => tx.finish(result).await,
        }
    }
}

/// One round trip to the database (readiness; three through a pooler).
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut work = Work::start(pool).await?;
    let result = sqlx::query_scalar!("select 1 as one")
        .fetch_one(work.conn())
        .await
        .map(drop);
    work.finish(result).await
}

/// The versions of the migrations applied successfully.
pub async fn applied_migrations(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let mut work = Work::start(pool).await?;
    let result = sqlx::query_scalar!("select version from _sqlx_migrations where success")
        .fetch_all(work.conn())
        .await;
    work.finish(result).await
}

/// Runs one statement on a connection of `$pool` as [`Work`]: `on_pool!(pool, |conn|
/// sqlx::query!(...).fetch_one(conn).await)` is `sqlx::query!(...).fetch_one(pool).await`,
/// pooler-safe. Evaluates to the statement's `Result<_, sqlx::Error>`.
macro_rules! on_pool {
    ($pool:expr, |$conn:ident| $statement:expr) => {
        match $crate::db::Work::start($pool).await {
            Ok(mut work) => {
                let result = {
                    let $conn = work.conn();
                    $statement
                };
                work.finish(result).await
            }
            Err(e) => Err(e),
        }
    };
}
pub(crate) use on_pool;
