//! What the token endpoint reads about a client, cached per (client id, audience) so that a
//! token costs a signature and no SQL.
//!
//! Correctness rests on invalidation: a trigger on every catalogue table the lookup reads
//! NOTIFYs `orgwall_catalogue`, and every instance LISTENs and drops its whole cache. The cache
//! serves only while the LISTEN connection is up (it fails closed to the database otherwise),
//! an entry read before an invalidation is never stored after it, and secret expiry (rotation
//! grace) is checked at use, not at caching time. The admin API also drops the cache itself
//! after every change, so its own effects need no round trip through NOTIFY.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;

use super::token::ClientLookup;

/// Bound on cached clients × audiences; reaching it empties the cache.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct LookupCache {
    entries: Mutex<HashMap<(String, String), Arc<ClientLookup>>>,
    generation: AtomicU64,
    /// True while the LISTEN connection is up.
    listening: AtomicBool,
}

impl LookupCache {
    pub fn get(&self, client_id: &str, audience: &str) -> Option<Arc<ClientLookup>> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.lock().expect("cache lock poisoned");
        entries
            .get(&(client_id.to_owned(), audience.to_owned()))
            .cloned()
    }

    /// Read before querying the database; pass to [`LookupCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `value` unless the cache was invalidated since `generation` was read.
    pub fn insert(
        &self,
        generation: u64,
        client_id: &str,
        audience: &str,
        value: Arc<ClientLookup>,
    ) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.lock().expect("cache lock poisoned");
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((client_id.to_owned(), audience.to_owned()), value);
    }

    pub fn invalidate(&self) {
        let mut entries = self.entries.lock().expect("cache lock poisoned");
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Listens for catalogue changes for as long as the cache lives.
    pub fn spawn_listener(self: &Arc<Self>, pool: PgPool) {
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let listener = async {
                    let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    l.listen("orgwall_catalogue").await?;
                    Ok::<_, sqlx::Error>(l)
                }
                .await;
                let Some(this) = cache.upgrade() else { return };
                let mut listener = match listener {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::debug!(error = %e, "catalogue listener not connected; cache off");
                        drop(this);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                };
                // Whatever changed while we were not listening is unknown: start empty.
                this.invalidate();
                this.listening.store(true, Ordering::Release);
                drop(this);
                loop {
                    let event = listener.recv().await;
                    let Some(this) = cache.upgrade() else { return };
                    this.invalidate();
                    if event.is_err() {
                        this.listening.store(false, Ordering::Release);
                        break;
                    }
                }
            }
        });
    }
}
