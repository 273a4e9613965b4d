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
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
///
/// A connection in steady use is handed out without a ping (`test_before_acquire(false)`):
/// the ping cost every request a round trip of its own, as many as the statement. What it
/// guarded against is covered otherwise: a connection only goes back to the pool outside any
/// transaction (`after_release`, and [`Tx`] closes one dropped unfinished), sqlx pings every
/// connection as it is released, and [`needs_ping`] still pings one that sat idle long
/// enough for the database to have restarted meanwhile, or any while connections are
/// failing. A dead connection that slips through fails its one statement (an I/O or
/// "terminating connection" error: a 503 for that request) and is dropped, not pooled again.
pub fn pool(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.db.max_connections)
        .acquire_timeout(settings.db.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                // A connection that does not answer is closed; the pool hands out another.
                Ok(!needs_ping(meta.idle_for) || conn.ping().await.is_ok())
            })
        })
        .after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .connect_lazy_with(connect_options(settings)?))
}

/// A pooled connection idle at least this long is pinged before use.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// After a connection failed, every pooled connection is pinged before use for this long:
/// when the database restarted, all the idle ones are dead, not just the one that failed.
const PING_AFTER_FAILURE_FOR: Duration = Duration::from_secs(10);

/// When a connection last failed, in milliseconds since [`CLOCK_START`] plus one (0: never).
static LAST_CONNECTION_FAILURE: AtomicU64 = AtomicU64::new(0);
static CLOCK_START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn clock_ms() -> u64 {
    u64::try_from(CLOCK_START.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// Records that a statement failed because its connection is broken (see
/// [`is_connection_failure`]): pooled connections are pinged before use for a while.
pub fn note_connection_failure() {
    LAST_CONNECTION_FAILURE.store(clock_ms(), Ordering::Relaxed);
}

/// Whether a pooled connection idle for `idle_for` is pinged before it is handed out.
fn needs_ping(idle_for: Duration) -> bool {
    if idle_for >= PING_WHEN_IDLE_FOR {
        return true;
    }
    let failed_at = LAST_CONNECTION_FAILURE.load(Ordering::Relaxed);
    failed_at != 0
        && clock_ms().saturating_sub(failed_at)
            < u64::try_from(PING_AFTER_FAILURE_FOR.as_millis()).unwrap_or(u64::MAX)
}

/// The connection itself is broken (not the statement, not the pool): I/O errors, and the
/// server's "terminating connection" (57P01..57P03) and connection exceptions (08xxx).
pub fn is_connection_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_is_not_pinged_an_idle_one_or_any_after_a_failure_is() {
        // Only this test notes failures in the unit tests' process.
        assert!(!needs_ping(Duration::ZERO), "a connection in steady use");
        assert!(!needs_ping(PING_WHEN_IDLE_FOR - Duration::from_millis(1)));
        assert!(
            needs_ping(PING_WHEN_IDLE_FOR),
            "idle long enough to have died"
        );
        note_connection_failure();
        assert!(needs_ping(Duration::ZERO), "while connections are failing");
    }

    #[test]
    fn connection_failures_are_told_from_statement_and_pool_errors() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_failure(&io));
        assert!(!is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(!is_connection_failure(&sqlx::Error::RowNotFound));
    }
}
