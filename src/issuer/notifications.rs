//! One LISTEN connection per instance, on its own (not taken from the request pool), for the
//! two things other processes can change under us: signing keys (`orgwall_keys`) and the
//! catalogue the token endpoint caches (`orgwall_catalogue`). Keys are also re-read every
//! minute, so that retired keys leave the JWKS on time.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};

use super::cache::LookupCache;
use super::keys::KeyStore;

pub fn spawn(pool: &PgPool, keys: &Arc<KeyStore>, cache: &Arc<LookupCache>) {
    let options = (*pool.connect_options()).clone();
    let listen_pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options);
    let (keys, cache) = (Arc::downgrade(keys), Arc::downgrade(cache));
    tokio::spawn(run(listen_pool, keys, cache));
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all(["orgwall_keys", "orgwall_catalogue"])
        .await?;
    Ok(listener)
}

async fn run(pool: PgPool, keys: Weak<KeyStore>, cache: Weak<LookupCache>) {
    loop {
        let listener = connect(&pool).await;
        let (Some(k), Some(c)) = (keys.upgrade(), cache.upgrade()) else {
            return;
        };
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "not listening for changes; retrying");
                c.set_listening(false);
                k.refresh().await;
                drop((k, c));
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        // Whatever changed while nobody listened is unknown: start from the database.
        k.refresh().await;
        c.invalidate();
        c.set_listening(true);
        drop((k, c));
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), listener.try_recv()).await;
            let (Some(k), Some(c)) = (keys.upgrade(), cache.upgrade()) else {
                return;
            };
            match event {
                Ok(Ok(Some(n))) if n.channel() == "orgwall_keys" => k.refresh().await,
                Ok(Ok(Some(_))) => c.invalidate(),
                Err(_elapsed) => k.refresh().await,
                // The connection was lost (notifications may have been missed) or failed.
                Ok(Ok(None)) | Ok(Err(_)) => {
                    c.set_listening(false);
                    c.invalidate();
                    break;
                }
            }
        }
    }
}
