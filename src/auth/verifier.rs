//! Bearer token verification: RFC 8725 practices, and the "Accepted tokens" rules of docs/api.md.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};

use super::SigningAlgorithm;
use super::claims::{JoseHeader, TokenClaims, VerifiedToken};
use super::jwks::{ClaimsValidation, JwksCache, VerifyKey};
use super::revocation::RevocationState;

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Leeway on `exp` and `nbf`, in seconds (RFC 8725 recommends a small one).
const LEEWAY_SECS: u64 = 60;

/// Where verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A JWKS fetched over HTTP(S) and cached.
    Remote(Arc<JwksCache>),
    /// The built-in issuer's own keys, read in-process.
    Local(Arc<dyn LocalKeys>),
}

/// Keys held in this process (the built-in issuer's).
pub trait LocalKeys: Send + Sync {
    fn verify_key(&self, kid: &str) -> Option<Arc<VerifyKey>>;
    /// Changes whenever the key set may have changed.
    fn generation(&self) -> u64 {
        0
    }
}

impl KeySource {
    async fn key(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        match self {
            KeySource::Remote(cache) => cache.key(kid).await,
            KeySource::Local(keys) => keys.verify_key(kid),
        }
    }

    fn generation(&self) -> u64 {
        match self {
            KeySource::Remote(cache) => cache.generation(),
            KeySource::Local(keys) => keys.generation(),
        }
    }
}

/// Why a token was refused; logged at debug level, never shown to the client, who only
/// learns "Invalid or expired token".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    TooLong,
    Malformed,
    BadHeader,
    AlgorithmNotAllowed,
    TypeNotAllowed,
    CriticalHeader,
    MissingKid,
    UnknownKid,
    KeyMismatch,
    SignatureOrClaims,
    NoClientId,
    /// Verified, then found revoked (by app, org, jti or signing key).
    Revoked,
    /// Verified, but this instance has no recent read of the revocations to check it against.
    RevocationsUnknown,
}

pub struct Verifier {
    keys: KeySource,
    validations: HashMap<Algorithm, ClaimsValidation>,
    /// Tokens already verified, by SHA-256 of their bytes. An M2M client presents the same
    /// token for up to an hour: the signature and claims of the same bytes under the same keys
    /// verify the same way, so only the clock is checked again. Each entry lasts until its
    /// token's `exp`; an entry made under another key generation is verified again.
    accepted: RwLock<Remembered>,
    /// The built-in issuer's revocations, when the resource API trusts that issuer: checked
    /// after every verification, remembered or not.
    revocations: Option<Arc<RevocationState>>,
}

/// Verified tokens, each kept until its own expiry. At capacity, expired entries go first,
/// then the one that expires soonest, so a burst of new tokens never empties the memo of the
/// live ones.
#[derive(Default)]
struct Remembered {
    entries: HashMap<[u8; 32], Accepted>,
}

impl Remembered {
    fn get(&self, fingerprint: &[u8; 32]) -> Option<&Accepted> {
        self.entries.get(fingerprint)
    }

    fn insert(&mut self, fingerprint: [u8; 32], accepted: Accepted, now: f64) {
        if self.entries.len() >= MAX_ACCEPTED && !self.entries.contains_key(&fingerprint) {
            self.entries.retain(|_, a| !expired(a.exp, now));
            if self.entries.len() >= MAX_ACCEPTED {
                let soonest = self
                    .entries
                    .iter()
                    .min_by(|a, b| a.1.exp.total_cmp(&b.1.exp))
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(fingerprint, accepted);
    }
}

struct Accepted {
    token: VerifiedToken,
    kid: String,
    exp: f64,
    nbf: Option<f64>,
    generation: u64,
}

/// Bound on remembered tokens.
const MAX_ACCEPTED: usize = 10_000;

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// jsonwebtoken's rule, with the same leeway: expired when `exp < now - leeway`, premature
/// when `nbf > now + leeway`.
fn in_time(exp: f64, nbf: Option<f64>, now: f64) -> bool {
    let leeway = LEEWAY_SECS as f64;
    !expired(exp, now) && nbf.is_none_or(|nbf| nbf <= now + leeway)
}

fn expired(exp: f64, now: f64) -> bool {
    exp < now - LEEWAY_SECS as f64
}

impl Verifier {
    pub fn new(
        keys: KeySource,
        issuer: &str,
        audience: &str,
        algorithms: &[SigningAlgorithm],
    ) -> Self {
        let validations = algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(alg.jwt());
                v.set_issuer(&[issuer]);
                v.set_audience(&[audience]);
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.leeway = LEEWAY_SECS;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                (alg.jwt(), ClaimsValidation::new(v))
            })
            .collect();
        Self {
            keys,
            validations,
            accepted: RwLock::new(Remembered::default()),
            revocations: None,
        }
    }

    /// Refuses tokens that `revocations` names, even when their verification is remembered.
    pub fn with_revocations(mut self, revocations: Arc<RevocationState>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    fn check_revoked(&self, token: VerifiedToken, kid: &str) -> Result<VerifiedToken, Rejection> {
        match self.revocations.as_ref().map(|r| r.revokes(&token, kid)) {
            None | Some(Some(false)) => Ok(token),
            Some(Some(true)) => Err(Rejection::Revoked),
            Some(None) => Err(Rejection::RevocationsUnknown),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLong);
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let fingerprint: [u8; 32] = digest.as_ref().try_into().expect("SHA-256 is 32 bytes");
        let generation = self.keys.generation();
        let hit = self
            .accepted
            .read()
            .expect("verifier cache poisoned")
            .get(&fingerprint)
            .filter(|hit| hit.generation == generation && in_time(hit.exp, hit.nbf, now_secs()))
            .map(|hit| (hit.token.clone(), hit.kid.clone()));
        if let Some((verified, kid)) = hit {
            // Asking the source for the key keeps the JWKS refreshed on schedule (a hit would
            // otherwise never reach it), and a key withdrawn since is noticed here.
            if self.keys.key(&kid).await.is_some() && self.keys.generation() == generation {
                return self.check_revoked(verified, &kid);
            }
        }
        let (verified, kid, exp, nbf) = self.verify_fully(token).await?;
        let entry = Accepted {
            token: verified.clone(),
            kid: kid.clone(),
            exp,
            nbf,
            generation,
        };
        self.accepted
            .write()
            .expect("verifier cache poisoned")
            .insert(fingerprint, entry, now_secs());
        self.check_revoked(verified, &kid)
    }

    /// The whole verification, without the remembered-token shortcut (benchmarks use it to
    /// time the first sight of a token). Returns the token, its kid, `exp` and `nbf`.
    pub async fn verify_fully(
        &self,
        token: &str,
    ) -> Result<(VerifiedToken, String, f64, Option<f64>), Rejection> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| Rejection::Malformed)?;
        let header: JoseHeader =
            serde_json::from_slice(&header_json).map_err(|_| Rejection::BadHeader)?;

        // The algorithm comes from configuration: the token's `alg` only picks among those.
        let signing = header
            .alg
            .as_deref()
            .and_then(SigningAlgorithm::from_jose)
            .ok_or(Rejection::AlgorithmNotAllowed)?;
        let alg = signing.jwt();
        let validation = self
            .validations
            .get(&alg)
            .ok_or(Rejection::AlgorithmNotAllowed)?;
        if header.has_crit {
            return Err(Rejection::CriticalHeader);
        }
        if let Some(typ) = &header.typ {
            // RFC 9068 §4: "at+jwt" (or its full media type); plain "JWT" for older issuers.
            let typ = typ.to_ascii_lowercase();
            if !matches!(typ.as_str(), "jwt" | "at+jwt" | "application/at+jwt") {
                return Err(Rejection::TypeNotAllowed);
            }
        }
        // `jku`, `x5u`, `jwk` and `x5c` are never read: the key comes only from our source.
        let kid = header.kid.as_deref().ok_or(Rejection::MissingKid)?;
        let key = self.keys.key(kid).await.ok_or(Rejection::UnknownKid)?;
        if signing.key_type() != key.kty || key.alg.is_some_and(|pinned| pinned != alg) {
            return Err(Rejection::KeyMismatch);
        }

        let data = key
            .decode::<TokenClaims>(token, alg, validation)
            .map_err(|_| Rejection::SignatureOrClaims)?;
        let (exp, nbf) = (data.claims.exp, data.claims.nbf);
        let exp = exp.ok_or(Rejection::SignatureOrClaims)?;
        let verified = data.claims.into_verified().ok_or(Rejection::NoClientId)?;
        Ok((verified, kid.to_owned(), exp, nbf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(exp: f64) -> Accepted {
        Accepted {
            token: VerifiedToken {
                client_id: "c".into(),
                org_code: None,
                scopes: Vec::new(),
                jkt: None,
                iat: None,
                jti: None,
            },
            kid: "k".into(),
            exp,
            nbf: None,
            generation: 0,
        }
    }

    fn key(i: usize) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        k
    }

    #[test]
    fn a_full_memo_drops_expired_tokens_then_the_soonest_to_expire_never_everything() {
        let now = 1_000_000.0;
        let mut memo = Remembered::default();
        for i in 0..MAX_ACCEPTED {
            // Every tenth token expired long ago; the others expire later the higher i is.
            let exp = if i % 10 == 0 {
                now - 3600.0
            } else {
                now + i as f64
            };
            memo.insert(key(i), accepted(exp), now);
        }
        memo.insert(key(MAX_ACCEPTED), accepted(now + 10.0), now);
        assert_eq!(memo.entries.len(), MAX_ACCEPTED - MAX_ACCEPTED / 10 + 1);
        assert!(memo.get(&key(0)).is_none(), "an expired token stayed");
        assert!(memo.get(&key(1)).is_some(), "a live token was dropped");

        while memo.entries.len() < MAX_ACCEPTED {
            let i = MAX_ACCEPTED + 1 + memo.entries.len();
            memo.insert(key(i), accepted(now + 100_000.0), now);
        }
        memo.insert(key(usize::MAX), accepted(now + 100_000.0), now);
        assert_eq!(memo.entries.len(), MAX_ACCEPTED);
        assert!(
            memo.get(&key(1)).is_none(),
            "the soonest to expire goes first"
        );
        assert!(memo.get(&key(2)).is_some());
    }

    #[test]
    fn a_remembered_token_is_rechecked_against_the_clock_with_the_same_leeway() {
        let now = 1_000_000.0;
        assert!(in_time(now + 10.0, None, now));
        assert!(in_time(now - 60.0, None, now), "within the leeway");
        assert!(!in_time(now - 61.0, None, now), "expired beyond the leeway");
        assert!(in_time(now + 10.0, Some(now + 60.0), now));
        assert!(!in_time(now + 10.0, Some(now + 61.0), now), "not yet valid");
    }
}
