//! Failed client authentications, limited per (client id, address) and per address.
//!
//! Keyed on the address too, so that nobody can lock a tenant out by guessing against its
//! client id from elsewhere: only the guessing address is slowed. Successful authentications
//! are never counted.
//!
//! Bounded: an IPv6 peer is counted per /64 (one host usually holds a whole /64 and could
//! otherwise rotate through it), windows that have ended are forgotten, and at most
//! `max_entries` windows are remembered, the oldest forgotten first, so that no stream of
//! requests, however many distinct addresses or client ids it carries, grows memory without
//! bound.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest `client_id` the token endpoint accepts (in bytes); a longer one is refused before it
/// is counted here or logged.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// Windows remembered at most, unless the constructor says otherwise: about 20 MB at the
/// longest client ids.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Whom a failure is counted against: an IPv4 address, or the /64 an IPv6 address is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Peer {
    V4([u8; 4]),
    V6Net([u8; 8]),
}

impl Peer {
    fn of(addr: IpAddr) -> Self {
        // An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is that IPv4 address.
        match addr.to_canonical() {
            IpAddr::V4(v4) => Peer::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut net = [0; 8];
                net.copy_from_slice(&v6.octets()[..8]);
                Peer::V6Net(net)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Client(Peer, Box<str>),
    Address(Peer),
}

impl Key {
    fn pair(addr: IpAddr, client_id: &str) -> [Key; 2] {
        let peer = Peer::of(addr);
        // The endpoint refuses longer ids first; cutting here keeps the bound on memory
        // independent of every caller.
        let mut end = client_id.len().min(MAX_CLIENT_ID_LEN);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        [
            Key::Client(peer, client_id[..end].into()),
            Key::Address(peer),
        ]
    }
}

struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Default)]
struct Entries {
    windows: HashMap<Key, Window>,
    /// Every window by the time it started, oldest first. A window that ended and started again
    /// leaves its first record behind; such records are skipped when they come up.
    order: VecDeque<(Instant, Key)>,
}

impl Entries {
    /// Forgets the window `order` names at its front, if that record is still the current one.
    fn forget_front(&mut self) {
        if let Some((started, key)) = self.order.pop_front()
            && self.windows.get(&key).is_some_and(|w| w.started == started)
        {
            self.windows.remove(&key);
        }
    }
}

pub struct FailureLimiter {
    max_per_client: u32,
    max_per_address: u32,
    window: Duration,
    max_entries: usize,
    entries: Mutex<Entries>,
}

impl FailureLimiter {
    pub fn new(max_per_client: u32, max_per_address: u32, window: Duration) -> Self {
        Self {
            max_per_client,
            max_per_address,
            window,
            max_entries: DEFAULT_MAX_ENTRIES,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Remembers at most `max_entries` windows (at least 2: one failure makes two).
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(2);
        self
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::Client(..) => self.max_per_client,
            Key::Address(_) => self.max_per_address,
        }
    }

    /// `Err(retry_after)` while this address, or this client id from this address, is over
    /// its limit.
    pub fn check(&self, addr: IpAddr, client_id: &str) -> Result<(), Duration> {
        self.check_at(Instant::now(), addr, client_id)
    }

    /// Counts one failure; `Err(retry_after)` when it crossed a limit.
    pub fn record_failure(&self, addr: IpAddr, client_id: &str) -> Result<(), Duration> {
        self.record_failure_at(Instant::now(), addr, client_id)
    }

    fn check_at(&self, now: Instant, addr: IpAddr, client_id: &str) -> Result<(), Duration> {
        let entries = self.entries.lock().expect("limiter lock poisoned");
        let mut wait = None;
        for key in Key::pair(addr, client_id) {
            if let Some(w) = entries.windows.get(&key) {
                let elapsed = now.saturating_duration_since(w.started);
                if elapsed < self.window && w.failures > self.limit(&key) {
                    let left = self.window - elapsed;
                    wait = Some(wait.map_or(left, |d: Duration| d.max(left)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    fn record_failure_at(
        &self,
        now: Instant,
        addr: IpAddr,
        client_id: &str,
    ) -> Result<(), Duration> {
        {
            let mut entries = self.entries.lock().expect("limiter lock poisoned");
            // Windows start in time order, so the ended ones are at the front.
            while entries
                .order
                .front()
                .is_some_and(|(started, _)| now.saturating_duration_since(*started) >= self.window)
            {
                entries.forget_front();
            }
            for key in Key::pair(addr, client_id) {
                let current = entries.windows.get_mut(&key).filter(|w| {
                    // An ended window whose record was skipped: it starts again below.
                    now.saturating_duration_since(w.started) < self.window
                });
                if let Some(w) = current {
                    w.failures += 1;
                    continue;
                }
                while entries.windows.len() >= self.max_entries && !entries.order.is_empty() {
                    entries.forget_front();
                }
                entries.windows.insert(
                    key.clone(),
                    Window {
                        started: now,
                        failures: 1,
                    },
                );
                entries.order.push_back((now, key));
            }
        }
        self.check_at(now, addr, client_id)
    }

    /// Windows remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_third_failure_slows_that_client_from_that_address_only() {
        let l = FailureLimiter::new(2, 3, Duration::from_secs(60));
        let t = Instant::now();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert!(l.record_failure_at(t, a, "c1").is_ok());
        assert!(l.record_failure_at(t, a, "c1").is_ok());
        assert!(
            l.record_failure_at(t, a, "c1").is_err(),
            "third failure crosses 2"
        );
        assert!(l.check_at(t, a, "c1").is_err());
        assert!(
            l.check_at(t, b, "c1").is_ok(),
            "another address is not affected"
        );
        assert!(
            l.check_at(t, a, "c2").is_ok(),
            "another client from a is fine until the address limit"
        );
        assert!(
            l.record_failure_at(t, a, "c2").is_err(),
            "fourth failure from a crosses 3"
        );
    }

    #[test]
    fn a_slowed_address_waits_out_the_rest_of_its_window_and_no_longer() {
        let window = Duration::from_secs(60);
        let l = FailureLimiter::new(1, 100, window);
        let t = Instant::now();
        let a = ip("10.0.0.1");
        l.record_failure_at(t, a, "c1").unwrap();
        let wait = l.record_failure_at(t, a, "c1").unwrap_err();
        assert_eq!(wait, window);

        let later = t + Duration::from_secs(45);
        assert_eq!(l.check_at(later, a, "c1"), Err(Duration::from_secs(15)));
        assert_eq!(
            l.check_at(t + window - Duration::from_millis(1), a, "c1"),
            Err(Duration::from_millis(1))
        );
        assert_eq!(l.check_at(t + window, a, "c1"), Ok(()));
        // A failure after the window starts a new count.
        assert!(l.record_failure_at(t + window, a, "c1").is_ok());
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_count_as_one_peer() {
        let l = FailureLimiter::new(100, 3, Duration::from_secs(60));
        let t = Instant::now();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            assert!(l.record_failure_at(t, ip(host), host).is_ok());
        }
        assert!(
            l.record_failure_at(t, ip("2001:db8:1:2:abcd::1"), "another")
                .is_err(),
            "a fourth address of the same /64 crosses 3"
        );
        assert!(
            l.check_at(t, ip("2001:db8:1:3::1"), "x").is_ok(),
            "the next /64 is another peer"
        );
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_that_ipv4_address() {
        let l = FailureLimiter::new(1, 100, Duration::from_secs(60));
        let t = Instant::now();
        l.record_failure_at(t, ip("192.0.2.7"), "c").unwrap();
        assert!(l.record_failure_at(t, ip("::ffff:192.0.2.7"), "c").is_err());
        assert!(l.check_at(t, ip("192.0.2.8"), "c").is_ok());
    }

    #[test]
    fn at_capacity_the_oldest_window_is_forgotten_first() {
        let l = FailureLimiter::new(1, 100, Duration::from_secs(60)).with_max_entries(4);
        let t = Instant::now();
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        l.record_failure_at(t, a, "x").unwrap();
        assert!(l.record_failure_at(t, a, "x").is_err());
        let t1 = t + Duration::from_secs(1);
        l.record_failure_at(t1, b, "x").unwrap();
        assert!(l.record_failure_at(t1, b, "x").is_err());
        assert_eq!(l.len(), 4);

        // A third address needs two windows: a's two, the oldest, go.
        l.record_failure_at(t1 + Duration::from_secs(1), c, "x")
            .unwrap();
        assert_eq!(l.len(), 4);
        assert!(l.check_at(t1, a, "x").is_ok(), "a was forgotten");
        assert!(l.check_at(t1, b, "x").is_err(), "b is still slowed");
    }

    #[test]
    fn ended_windows_are_forgotten_on_the_next_failure() {
        let window = Duration::from_secs(60);
        let l = FailureLimiter::new(10, 100, window);
        let t = Instant::now();
        for i in 0..50 {
            l.record_failure_at(t, ip(&format!("10.0.1.{i}")), "c")
                .unwrap();
        }
        assert_eq!(l.len(), 100);
        l.record_failure_at(t + window, ip("10.0.2.1"), "c")
            .unwrap();
        assert_eq!(l.len(), 2, "only the new failure's two windows are left");
    }

    #[test]
    fn a_stream_of_distinct_addresses_and_long_client_ids_stays_within_the_bound() {
        let l = FailureLimiter::new(10, 100, Duration::from_secs(60)).with_max_entries(1_000);
        let t = Instant::now();
        let long_id = "x".repeat(60_000);
        for i in 0..20_000u32 {
            let [_, _, hi, lo] = i.to_be_bytes();
            let v6 = ip(&format!("2001:db8:{hi:x}:{lo:x}::1"));
            let v4 = ip(&format!("10.1.{hi}.{lo}"));
            let now = t + Duration::from_millis(u64::from(i));
            let _ = l.record_failure_at(now, v6, &long_id);
            let _ = l.record_failure_at(now, v4, &format!("client-{i}"));
            let entries = l.entries.lock().unwrap();
            assert!(entries.windows.len() <= 1_000);
            assert!(entries.order.len() <= 1_000);
        }
        let entries = l.entries.lock().unwrap();
        assert!(entries.windows.keys().all(|k| match k {
            Key::Client(_, id) => id.len() <= MAX_CLIENT_ID_LEN,
            Key::Address(_) => true,
        }));
    }

    #[test]
    fn a_window_started_again_leaves_no_stale_record_that_evicts_it() {
        let window = Duration::from_secs(10);
        let l = FailureLimiter::new(1, 100, window).with_max_entries(2);
        let t = Instant::now();
        let a = ip("10.0.0.1");
        l.record_failure_at(t, a, "c").unwrap();
        // The window ends and starts again with the next failure.
        let t2 = t + window;
        l.record_failure_at(t2, a, "c").unwrap();
        assert!(l.record_failure_at(t2, a, "c").is_err());
        assert_eq!(l.len(), 2);
        assert!(l.entries.lock().unwrap().order.len() <= 2);
        assert!(l.check_at(t2 + Duration::from_secs(5), a, "c").is_err());
    }
}
