//! One LISTEN connection per instance, on its own (not taken from the request pool, and to
//! `DATABASE_LISTEN_URL`, so that the pool may go through a transaction-mode pooler), for what
//! other processes change under us: signing keys (`orgwall_keys`), the catalogue the token
//! endpoint caches (`orgwall_catalogue`) and revocations (`orgwall_revocations`).
//!
//! A connection that died silently (a proxy or firewall dropping it without a reset) would
//! otherwise look alive for as long as the kernel keeps retrying: so while it is quiet, a
//! heartbeat (`select 1`, bounded by a timeout) runs on it every [`HEARTBEAT_EVERY`], and a
//! failed one counts as lost, within 5 seconds. While it is lost, the client-lookup cache
//! serves nothing, and revocations and keys rely on their periodic re-reads. sqlx 0.9 offers
//! no client-side TCP keepalive option; the server-side one (`tcp_keepalives_*`) is set on
//! the connection, so the server drops a dead session too.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout};

use super::cache::LookupCache;
use super::keys::KeyStore;
use crate::auth::revocation::RevocationState;

/// A quiet connection is probed this often.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(1500);
/// A probe unanswered for this long means the connection is lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting (and LISTEN) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys are re-read this often even without a notification, so that retired keys leave the
/// JWKS on time.
const KEYS_REREAD_EVERY: Duration = Duration::from_secs(60);

/// The `application_name` of the LISTEN connection (operators can find it in
/// `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "orgwall-listen";

/// What the notifications keep current; each is held weakly, and the task ends once all of
/// them are gone.
#[derive(Default)]
pub struct Targets {
    pub keys: Option<Weak<KeyStore>>,
    pub cache: Option<Weak<LookupCache>>,
    /// The revocation state and the signal that makes its refresher re-read at once.
    pub revocations: Option<(Weak<RevocationState>, Arc<Notify>)>,
}

impl Targets {
    fn alive(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| k.strong_count() > 0)
            || self.cache.as_ref().is_some_and(|c| c.strong_count() > 0)
            || self
                .revocations
                .as_ref()
                .is_some_and(|(r, _)| r.strong_count() > 0)
    }

    async fn refresh_keys(&self) {
        if let Some(k) = self.keys.as_ref().and_then(Weak::upgrade) {
            k.refresh().await;
        }
    }

    fn invalidate_cache(&self) {
        if let Some(c) = self.cache.as_ref().and_then(Weak::upgrade) {
            c.invalidate();
        }
    }

    fn set_listening(&self, on: bool) {
        if let Some(c) = self.cache.as_ref().and_then(Weak::upgrade) {
            c.set_listening(on);
            if !on {
                c.invalidate();
            }
        }
    }

    fn reread_revocations(&self) {
        if let Some((_, wake)) = &self.revocations {
            wake.notify_one();
        }
    }
}

/// Options for the LISTEN connection: `DATABASE_LISTEN_URL`, named [`APPLICATION_NAME`]
/// unless the URL names it, with server-side TCP keepalive.
pub fn listen_options(
    url: &str,
    statement_timeout: Duration,
) -> Result<PgConnectOptions, sqlx::Error> {
    let statement_ms = statement_timeout.as_millis().to_string();
    let options = url.parse::<PgConnectOptions>()?;
    let name = options
        .get_application_name()
        .unwrap_or(APPLICATION_NAME)
        .to_owned();
    Ok(options.application_name(&name).options([
        ("statement_timeout", statement_ms.as_str()),
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "2"),
        ("tcp_keepalives_count", "2"),
    ]))
}

pub fn spawn(options: PgConnectOptions, targets: Targets) {
    tokio::spawn(run(options, targets));
}

/// A new connection in a pool of its own: a lost one is abandoned with its pool (sqlx's
/// `UNLISTEN` on drop may hang on a dead socket, and must not hold up the next connection).
async fn connect(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection is this loop's business, not a hidden reconnect inside try_recv.
    listener.eager_reconnect(false);
    listener
        .listen_all(["orgwall_keys", "orgwall_catalogue", "orgwall_revocations"])
        .await?;
    Ok(listener)
}

/// `select 1` on the listener's own connection, bounded by [`HEARTBEAT_TIMEOUT`].
async fn heartbeat(listener: &mut PgListener) -> bool {
    let probe = sqlx::query_scalar!("select 1 as one").fetch_one(&mut *listener);
    matches!(timeout(HEARTBEAT_TIMEOUT, probe).await, Ok(Ok(_)))
}

async fn run(options: PgConnectOptions, targets: Targets) {
    while targets.alive() {
        let mut listener = match timeout(CONNECT_TIMEOUT, connect(&options)).await {
            Ok(Ok(l)) => l,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::debug!(%error, "not listening for changes; retrying");
                targets.set_listening(false);
                targets.refresh_keys().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Whatever changed while nobody listened is unknown: start from the database.
        targets.refresh_keys().await;
        targets.invalidate_cache();
        targets.reread_revocations();
        targets.set_listening(true);
        tracing::debug!("listening for changes");
        let mut keys_read = Instant::now();
        let mut last_heard = Instant::now();
        loop {
            if !targets.alive() {
                return;
            }
            let wait = HEARTBEAT_EVERY.saturating_sub(last_heard.elapsed());
            let alive = match timeout(wait, listener.try_recv()).await {
                Ok(Ok(Some(n))) => {
                    match n.channel() {
                        "orgwall_keys" => targets.refresh_keys().await,
                        "orgwall_revocations" => targets.reread_revocations(),
                        _ => targets.invalidate_cache(),
                    }
                    last_heard = Instant::now();
                    true
                }
                // The connection was lost (notifications may have been missed) or failed.
                Ok(Ok(None)) | Ok(Err(_)) => false,
                Err(_quiet) => {
                    let ok = heartbeat(&mut listener).await;
                    last_heard = Instant::now();
                    ok
                }
            };
            if !alive {
                tracing::warn!("the LISTEN connection was lost; caches off until it is back");
                targets.set_listening(false);
                // Close it in the background: a black-holed socket must not block us here.
                drop(listener);
                break;
            }
            if keys_read.elapsed() >= KEYS_REREAD_EVERY {
                keys_read = Instant::now();
                targets.refresh_keys().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_connection_is_named_unless_its_url_names_it() {
        let timeout = Duration::from_secs(10);
        let named = listen_options("postgres://u@db/orgwall?application_name=mine", timeout);
        assert_eq!(named.unwrap().get_application_name(), Some("mine"));
        let default = listen_options("postgres://u@db/orgwall", timeout).unwrap();
        assert_eq!(default.get_application_name(), Some(APPLICATION_NAME));
        let options = default.get_options().unwrap_or_default().to_owned();
        assert!(options.contains("tcp_keepalives_idle"), "{options}");
    }
}
