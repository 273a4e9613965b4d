//! Failed client authentications, limited per (client id, address) and per address.
//!
//! Keyed on the address too, so that nobody can lock a tenant out by guessing against its
//! client id from elsewhere: only the guessing address is slowed. Successful authentications
//! are never counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Client(IpAddr, String),
    Address(IpAddr),
}

struct Window {
    started: Instant,
    failures: u32,
}

pub struct FailureLimiter {
    max_per_client: u32,
    max_per_address: u32,
    window: Duration,
    entries: Mutex<HashMap<Key, Window>>,
}

/// Bound on remembered keys; expired windows are swept when it is reached.
const MAX_ENTRIES: usize = 100_000;

impl FailureLimiter {
    pub fn new(max_per_client: u32, max_per_address: u32, window: Duration) -> Self {
        Self {
            max_per_client,
            max_per_address,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(addr: IpAddr, client_id: &str) -> [(Key, u32); 2] {
        [
            (Key::Client(addr, client_id.to_owned()), 0),
            (Key::Address(addr), 1),
        ]
    }

    fn limit(&self, which: u32) -> u32 {
        if which == 0 {
            self.max_per_client
        } else {
            self.max_per_address
        }
    }

    /// `Err(retry_after)` while this address, or this client id from this address, is over
    /// its limit.
    pub fn check(&self, addr: IpAddr, client_id: &str) -> Result<(), Duration> {
        let entries = self.entries.lock().expect("limiter lock poisoned");
        let mut wait = None;
        for (key, which) in Self::keys(addr, client_id) {
            if let Some(w) = entries.get(&key) {
                let elapsed = w.started.elapsed();
                if elapsed < self.window && w.failures > self.limit(which) {
                    let left = self.window - elapsed;
                    wait = Some(wait.map_or(left, |d: Duration| d.max(left)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts one failure; `Err(retry_after)` when it crossed a limit.
    pub fn record_failure(&self, addr: IpAddr, client_id: &str) -> Result<(), Duration> {
        {
            let mut entries = self.entries.lock().expect("limiter lock poisoned");
            if entries.len() >= MAX_ENTRIES {
                let window = self.window;
                entries.retain(|_, w| w.started.elapsed() < window);
            }
            for (key, _) in Self::keys(addr, client_id) {
                let w = entries.entry(key).or_insert(Window {
                    started: Instant::now(),
                    failures: 0,
                });
                if w.started.elapsed() >= self.window {
                    *w = Window {
                        started: Instant::now(),
                        failures: 0,
                    };
                }
                w.failures += 1;
            }
        }
        self.check(addr, client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_address_and_recovers() {
        let l = FailureLimiter::new(2, 3, Duration::from_millis(200));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.record_failure(a, "c1").is_ok());
        assert!(l.record_failure(a, "c1").is_ok());
        assert!(
            l.record_failure(a, "c1").is_err(),
            "third failure crosses 2"
        );
        assert!(l.check(a, "c1").is_err());
        assert!(l.check(b, "c1").is_ok(), "another address is not affected");
        assert!(
            l.check(a, "c2").is_ok(),
            "another client from a is fine until the address limit"
        );
        assert!(
            l.record_failure(a, "c2").is_err(),
            "fourth failure from a crosses 3"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.check(a, "c1").is_ok());
    }
}
