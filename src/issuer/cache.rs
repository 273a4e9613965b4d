//! What the token endpoint reads about a client, cached per (client id, audience) so that a
//! token costs a signature and no SQL.
//!
//! Correctness rests on invalidation: a trigger on every catalogue table the lookup reads
//! NOTIFYs `orgwall_catalogue`, and every instance LISTENs and drops its whole cache. The cache
//! serves only while the LISTEN connection is up (it fails closed to the database otherwise),
//! an entry read before an invalidation is never stored after it, and secret expiry (rotation
//! grace) is checked at use, not at caching time. The admin API also drops the cache itself
//! after every change, so its own effects need no round trip through NOTIFY.

use super::clients::ClientLookup;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

    /// Serve from the cache only while changes are being heard.
    pub fn set_listening(&self, on: bool) {
        self.listening.store(on, Ordering::Release);
    }
}
