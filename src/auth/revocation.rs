//! Revocations of the built-in issuer's tokens, held in memory so that checking one costs no
//! SQL. The issuer side ([`crate::issuer::revocation`]) reads them from the database, on every
//! notification and every couple of seconds, and swaps in a whole new [`Revocations`] snapshot;
//! a request reads the current snapshot without waiting for a writer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

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

/// The current [`Revocations`] of this process: an immutable snapshot, replaced whole.
#[derive(Default)]
pub struct RevocationState {
    current: RwLock<Arc<Revocations>>,
}

impl RevocationState {
    pub fn snapshot(&self) -> Arc<Revocations> {
        self.current.read().expect("revocations poisoned").clone()
    }

    pub fn replace(&self, next: Revocations) {
        let next = Arc::new(next);
        *self.current.write().expect("revocations poisoned") = next;
    }

    pub fn revokes(&self, token: &VerifiedToken, kid: &str) -> bool {
        self.snapshot().revokes(token, kid)
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
        let before = state.snapshot();
        let mut next = Revocations::default();
        next.kids.insert("k".into());
        state.replace(next);
        assert!(before.kids.is_empty());
        assert!(state.snapshot().kids.contains("k"));
    }
}
