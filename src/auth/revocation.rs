//! Revocations of the built-in issuer's tokens, held in memory so that checking one costs no
//! SQL. The issuer side ([`crate::issuer::revocation`]) reads them from the database, on every
//! notification and every couple of seconds, and swaps in a whole new [`Revocations`] snapshot;
//! a request reads the current snapshot without waiting for a writer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::claims::VerifiedToken;

/// Everything revoked, as of one read of the database.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Revocations {
    /// Client id → unix second: tokens of that app issued at or before it are revoked.
    pub apps: HashMap<String, i64>,
    /// org_code → unix second: tokens carrying that org issued at or before it are revoked.
    pub orgs: HashMap<String, i64>,
    /// Organizations switched off: every token carrying their code is refused.
    pub disabled_orgs: HashSet<String>,
    /// Revoked jti → the token's `exp` (forgotten once that has passed).
    pub jtis: HashMap<String, i64>,
    /// Signing keys revoked in an emergency: every token they signed is refused.
    pub kids: HashSet<String>,
}

impl Revocations {
    /// Whether a token with these claims, signed by `kid`, is revoked. A token without `iat`
    /// cannot show that it was issued after a cutoff, so a cutoff revokes it.
    pub fn revokes(&self, token: &VerifiedToken, kid: &str) -> bool {
        let before = |cutoff: Option<&i64>| {
            cutoff.is_some_and(|&cutoff| token.iat.is_none_or(|iat| iat <= cutoff))
        };
        self.kids.contains(kid)
            || before(self.apps.get(&token.client_id))
            || token
                .org_code
                .as_ref()
                .is_some_and(|org| self.disabled_orgs.contains(org) || before(self.orgs.get(org)))
            || token
                .jti
                .as_ref()
                .is_some_and(|j| self.jtis.contains_key(j))
    }
}

/// How old the last successful read of the revocations may be before this instance stops
/// trusting it. Every instance must refuse a revoked token within 5 seconds: an instance that
/// has not managed to re-read them for that long (the database unreachable, the pool
/// exhausted) cannot promise it, so it answers 503 rather than accept a token it may no longer
/// know to be revoked. The refresher re-reads every 2 s, so a healthy instance never gets near.
pub const MAX_SNAPSHOT_AGE: Duration = Duration::from_secs(5);

/// The current [`Revocations`] of this process: an immutable snapshot, replaced whole, and when
/// it was read. Until the first read there is none, and no token is accepted.
#[derive(Default)]
pub struct RevocationState {
    current: RwLock<Option<Loaded>>,
}

struct Loaded {
    revocations: Arc<Revocations>,
    at: Instant,
}

impl RevocationState {
    /// The revocations as last read, if that read is recent enough to rely on.
    pub fn snapshot(&self) -> Option<Arc<Revocations>> {
        self.snapshot_at(Instant::now())
    }

    fn snapshot_at(&self, now: Instant) -> Option<Arc<Revocations>> {
        let current = self.current.read().expect("revocations poisoned");
        current
            .as_ref()
            .filter(|l| now.saturating_duration_since(l.at) <= MAX_SNAPSHOT_AGE)
            .map(|l| l.revocations.clone())
    }

    /// Installs a fresh read of the database.
    pub fn replace(&self, next: Revocations) {
        self.replace_at(next, Instant::now());
    }

    fn replace_at(&self, next: Revocations, at: Instant) {
        let next = Some(Loaded {
            revocations: Arc::new(next),
            at,
        });
        *self.current.write().expect("revocations poisoned") = next;
    }

    /// Whether the token is revoked; `None` when this instance cannot tell (no recent read).
    pub fn revokes(&self, token: &VerifiedToken, kid: &str) -> Option<bool> {
        self.snapshot().map(|r| r.revokes(token, kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(client: &str, org: Option<&str>, iat: Option<i64>, jti: &str) -> VerifiedToken {
        VerifiedToken {
            org_code: org.map(str::to_owned),
            client_id: client.into(),
            scopes: Vec::new(),
            iat,
            jti: Some(jti.into()),
            jkt: None,
        }
    }

    #[test]
    fn each_kind_of_revocation_applies_to_its_tokens_only() {
        let mut r = Revocations::default();
        let t = token("app1", Some("org_acme"), Some(1000), "j1");
        assert!(!r.revokes(&t, "k1"));

        r.apps.insert("app1".into(), 1000);
        assert!(r.revokes(&t, "k1"), "issued in the cutoff's second");
        assert!(!r.revokes(&token("app1", None, Some(1001), "j"), "k1"));
        assert!(r.revokes(&token("app1", None, None, "j"), "k1"), "no iat");
        assert!(!r.revokes(&token("app2", None, Some(1), "j"), "k1"));

        let mut r = Revocations::default();
        r.orgs.insert("org_acme".into(), 1000);
        assert!(r.revokes(&t, "k1"));
        assert!(!r.revokes(&token("app1", Some("org_acme"), Some(1001), "j"), "k1"));
        assert!(!r.revokes(&token("app1", Some("org_beta"), Some(10), "j"), "k1"));

        let mut r = Revocations::default();
        r.disabled_orgs.insert("org_acme".into());
        assert!(r.revokes(&token("app1", Some("org_acme"), Some(i64::MAX), "j"), "k"));

        let mut r = Revocations::default();
        r.jtis.insert("j1".into(), 2000);
        assert!(r.revokes(&t, "k1"));
        assert!(!r.revokes(&token("app1", Some("org_acme"), Some(1000), "j2"), "k1"));

        let mut r = Revocations::default();
        r.kids.insert("k1".into());
        assert!(r.revokes(&t, "k1"));
        assert!(!r.revokes(&t, "k2"));
    }

    #[test]
    fn a_snapshot_taken_before_a_replace_stays_as_it_was() {
        let state = RevocationState::default();
        state.replace(Revocations::default());
        let before = state.snapshot().unwrap();
        let mut next = Revocations::default();
        next.kids.insert("k".into());
        state.replace(next);
        assert!(before.kids.is_empty());
        assert!(state.snapshot().unwrap().kids.contains("k"));
    }

    #[test]
    fn without_a_recent_read_nothing_is_known_to_be_unrevoked() {
        let state = RevocationState::default();
        let t = token("app1", Some("org_acme"), Some(1000), "j1");
        assert_eq!(state.revokes(&t, "k1"), None, "never read");

        let read_at = Instant::now();
        state.replace_at(Revocations::default(), read_at);
        assert!(state.snapshot_at(read_at + MAX_SNAPSHOT_AGE).is_some());
        assert!(
            state
                .snapshot_at(read_at + MAX_SNAPSHOT_AGE + Duration::from_millis(1))
                .is_none(),
            "a read older than the bound is not relied on"
        );
        assert_eq!(state.revokes(&t, "k1"), Some(false));
    }
}
