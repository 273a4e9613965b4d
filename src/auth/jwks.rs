//! A JWKS cache for an external issuer, in the manner of jwks-rsa's `cache` + `rateLimit`:
//!
//! - fetched lazily, on the first token that names a `kid`;
//! - kept for `ttl`, then refreshed in the background while the old keys keep serving, so a
//!   slow or dead issuer never slows a request whose `kid` is known;
//! - refreshed for an unknown `kid` at most once per `cooldown`, concurrent misses sharing the
//!   one fetch, so random `kid`s cannot turn us into a flood against the issuer;
//! - every fetch bounded by `timeout`; on failure the last good keys stay.
//!
//! The cache reads the time from a [`Clock`], so that its windows are tested by moving a clock
//! instead of waiting for one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, TokenData, Validation};
use serde::de::DeserializeOwned;
use url::Url;

use super::SigningAlgorithm;

/// Largest JWKS document accepted; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A public key ready to verify signatures, decoded once per fetch.
pub struct VerifyKey {
    pub key: DecodingKey,
    /// JWK `kty`: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// JWK `alg`, when the issuer pins one.
    pub alg: Option<Algorithm>,
    /// The key parsed by aws-lc for each algorithm it can verify, once, when the key set is
    /// loaded: jsonwebtoken would rebuild it from its components on every verification (an
    /// EC point is decoded and checked on the curve each time). It lives and dies with this
    /// `VerifyKey`, that is with the key set it came in: a rotated or withdrawn key takes its
    /// parsed form with it.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

/// A `Validation` of the claims alone, for [`VerifyKey::decode`], which checks the signature
/// itself with the parsed key before any claim is read. Only that function can use one.
pub struct ClaimsValidation(Validation);

impl ClaimsValidation {
    pub fn new(mut validation: Validation) -> Self {
        // The signature is verified by `VerifyKey::decode` (with the key parsed once) before
        // `jsonwebtoken::decode` sees the token, and this value is private to that path.
        #[allow(deprecated)]
        validation.insecure_disable_signature_validation();
        Self(validation)
    }
}

impl VerifyKey {
    /// Builds a verification key from a JWK, refusing private or encryption-only keys.
    pub fn from_jwk(jwk: &Jwk) -> Option<(String, Self)> {
        let kid = jwk.common.key_id.clone()?;
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            return None;
        }
        let kty = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => "RSA",
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => "EC",
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => "OKP",
            // Symmetric keys never verify anything here.
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => return None,
        };
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
            None => None,
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        // Every algorithm this key may verify under; one whose parse fails (an EC point on
        // another curve, an RSA modulus aws-lc refuses) is left out, so its tokens are refused.
        let parsed = SigningAlgorithm::ALL
            .into_iter()
            .filter(|a| a.key_type() == kty && alg.is_none_or(|pinned| pinned == a.jwt()))
            .filter_map(|a| Some((a.jwt(), parse_public_key(a, &key)?)))
            .collect();
        Some((
            kid,
            VerifyKey {
                key,
                kty: kty.to_string(),
                alg,
                parsed,
            },
        ))
    }

    /// `jsonwebtoken::decode` for a token whose header names `alg` (the caller has checked it
    /// is allowed and fits this key): the signature is verified with the parsed key first,
    /// then the header and claims are read and the claims validated by jsonwebtoken.
    pub fn decode<T: DeserializeOwned>(
        &self,
        token: &str,
        alg: Algorithm,
        validation: &ClaimsValidation,
    ) -> jsonwebtoken::errors::Result<TokenData<T>> {
        let (message, signature) = token.rsplit_once('.').ok_or(ErrorKind::InvalidToken)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| ErrorKind::InvalidSignature)?;
        let (_, parsed) = self
            .parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .ok_or(ErrorKind::InvalidAlgorithm)?;
        parsed
            .verify_sig(message.as_bytes(), &signature)
            .map_err(|_| ErrorKind::InvalidSignature)?;
        let data = jsonwebtoken::decode::<T>(token, &self.key, &validation.0)?;
        if data.header.alg != alg {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Ok(data)
    }
}

/// The aws-lc form of `key` for `alg`, with the parameters jsonwebtoken's aws-lc backend uses
/// for that algorithm.
fn parse_public_key(alg: SigningAlgorithm, key: &DecodingKey) -> Option<ParsedPublicKey> {
    let rsa = |params: &'static sig::RsaParameters| match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => sig::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(params)
            .ok(),
        DecodingKeyKind::SecretOrDer(_) => None,
    };
    let raw = |algorithm: &'static dyn sig::VerificationAlgorithm| match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(algorithm, bytes).ok(),
        DecodingKeyKind::RsaModulusExponent { .. } => None,
    };
    match alg {
        SigningAlgorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        SigningAlgorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        SigningAlgorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        SigningAlgorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        SigningAlgorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        SigningAlgorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        SigningAlgorithm::ES256 => raw(&sig::ECDSA_P256_SHA256_FIXED),
        SigningAlgorithm::ES384 => raw(&sig::ECDSA_P384_SHA384_FIXED),
        SigningAlgorithm::EdDSA => raw(&sig::ED25519),
    }
}

/// Parses `{"keys":[...]}`, skipping (not failing on) keys we cannot use.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    Ok(doc
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| VerifyKey::from_jwk(&jwk))
        .map(|(kid, k)| (kid, Arc::new(k)))
        .collect())
}

/// Where the cache reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Arc<VerifyKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

pub struct JwksCache {
    url: Url,
    http: reqwest::Client,
    ttl: Duration,
    cooldown: Duration,
    clock: Arc<dyn Clock>,
    state: RwLock<Arc<Snapshot>>,
    /// Held while a fetch is in flight; waiters reuse its result.
    refresh: Arc<tokio::sync::Mutex<()>>,
    /// Bumped after every fetch attempt, so a waiter can tell that one happened meanwhile.
    generation: AtomicU64,
    fetches: crate::metrics::JwksFetches,
}

impl JwksCache {
    pub fn new(url: Url, http: reqwest::Client, ttl: Duration, cooldown: Duration) -> Self {
        Self::with_clock(url, http, ttl, cooldown, Arc::new(SystemClock))
    }

    /// As [`JwksCache::new`], reading the time from `clock`.
    pub fn with_clock(
        url: Url,
        http: reqwest::Client,
        ttl: Duration,
        cooldown: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            url,
            http,
            ttl,
            cooldown,
            clock,
            state: RwLock::new(Arc::new(Snapshot::default())),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
            generation: AtomicU64::new(0),
            fetches: Default::default(),
        }
    }

    /// Counts every fetch by its result.
    pub fn with_metrics(self, fetches: crate::metrics::JwksFetches) -> Self {
        Self { fetches, ..self }
    }

    /// Changes after every fetch attempt: verifications cached under another generation are
    /// done again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.state.read().expect("jwks lock poisoned").clone()
    }

    /// The key for `kid`, fetching the JWKS when the `kid` is unknown and the cooldown allows.
    pub async fn key(self: &Arc<Self>, kid: &str) -> Option<Arc<VerifyKey>> {
        let snap = self.snapshot();
        if let Some(key) = snap.keys.get(kid) {
            if snap.fetched_at.is_some_and(|t| self.since(t) >= self.ttl) {
                self.refresh_in_background(&snap);
            }
            return Some(key.clone());
        }
        self.refresh_for_unknown_kid(kid).await
    }

    fn cooling_down(&self, snap: &Snapshot) -> bool {
        snap.attempted_at
            .is_some_and(|t| self.since(t) < self.cooldown)
    }

    fn since(&self, then: Instant) -> Duration {
        self.clock.now().saturating_duration_since(then)
    }

    fn refresh_in_background(self: &Arc<Self>, snap: &Snapshot) {
        if self.cooling_down(snap) {
            return;
        }
        let Ok(guard) = self.refresh.clone().try_lock_owned() else {
            return; // a fetch is already running
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            this.fetch_and_store().await;
        });
    }

    async fn refresh_for_unknown_kid(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.refresh.lock().await;
        let snap = self.snapshot();
        let fetched_meanwhile = self.generation.load(Ordering::Acquire) != seen;
        if fetched_meanwhile || self.cooling_down(&snap) {
            return snap.keys.get(kid).cloned();
        }
        self.fetch_and_store().await;
        self.snapshot().keys.get(kid).cloned()
    }

    /// One fetch; on success the key set is replaced, on failure the last good one stays.
    async fn fetch_and_store(&self) {
        let started = self.clock.now();
        let result = self.fetch().await;
        self.fetches.record(result.is_ok());
        let mut state = self.state.write().expect("jwks lock poisoned");
        let mut next = Snapshot {
            keys: state.keys.clone(),
            fetched_at: state.fetched_at,
            attempted_at: Some(started),
        };
        match result {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched JWKS");
                next.keys = keys;
                next.fetched_at = Some(started);
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, kept = next.keys.len(), "JWKS fetch failed; keeping the last good keys");
            }
        }
        *state = Arc::new(next);
        self.generation.fetch_add(1, Ordering::Release);
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
        let mut response = self
            .http
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("issuer answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("read failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("JWKS larger than 1 MiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use super::*;

    mod parsed_keys {
        use serde_json::json;

        use super::super::*;
        use crate::issuer::keys::{Signer, generate};

        fn signed(alg: SigningAlgorithm) -> (Arc<VerifyKey>, String) {
            let (kid, der, jwk) = generate(alg).unwrap();
            let signer = Signer::from_pkcs8(kid.clone(), alg, &der).unwrap();
            let keys = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
            let header = json!({"alg": alg.name(), "typ": "at+jwt", "kid": kid});
            let claims = json!({"iss": "https://issuer.test", "exp": 4_000_000_000u64, "sub": "c"});
            (keys[&kid].clone(), signer.sign(&header, &claims).unwrap())
        }

        fn validation(alg: SigningAlgorithm) -> ClaimsValidation {
            let mut v = Validation::new(alg.jwt());
            v.set_issuer(&["https://issuer.test"]);
            v.set_required_spec_claims(&["exp", "iss"]);
            v.validate_aud = false;
            ClaimsValidation::new(v)
        }

        #[test]
        fn the_parsed_key_verifies_its_signatures_and_nothing_else() {
            for alg in [
                SigningAlgorithm::RS256,
                SigningAlgorithm::ES256,
                SigningAlgorithm::EdDSA,
            ] {
                let (key, token) = signed(alg);
                let v = validation(alg);
                let data = key.decode::<serde_json::Value>(&token, alg.jwt(), &v);
                assert_eq!(data.unwrap().claims["sub"], "c", "{alg}");

                // One bit of the signature, of the claims, or another key: refused.
                let (message, signature) = token.rsplit_once('.').unwrap();
                let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
                sig[3] ^= 1;
                let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(&sig));
                let err = key.decode::<serde_json::Value>(&forged, alg.jwt(), &v);
                assert_eq!(
                    err.unwrap_err().kind(),
                    &ErrorKind::InvalidSignature,
                    "{alg}"
                );
                let (header, claims) = message.split_once('.').unwrap();
                let mut claims = URL_SAFE_NO_PAD.decode(claims).unwrap();
                claims[2] ^= 1;
                let altered = format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(&claims));
                let err = key.decode::<serde_json::Value>(&altered, alg.jwt(), &v);
                assert_eq!(
                    err.unwrap_err().kind(),
                    &ErrorKind::InvalidSignature,
                    "{alg}"
                );
                let (other, _) = signed(alg);
                assert!(
                    other
                        .decode::<serde_json::Value>(&token, alg.jwt(), &v)
                        .is_err()
                );

                // The claims are still validated once the signature holds.
                let mut strict = Validation::new(alg.jwt());
                strict.set_issuer(&["https://another.test"]);
                strict.validate_aud = false;
                let err = key.decode::<serde_json::Value>(
                    &token,
                    alg.jwt(),
                    &ClaimsValidation::new(strict),
                );
                assert_eq!(err.unwrap_err().kind(), &ErrorKind::InvalidIssuer, "{alg}");
            }
        }

        #[test]
        fn a_key_verifies_only_under_the_algorithms_of_its_type_and_curve() {
            let (ec, token) = signed(SigningAlgorithm::ES256);
            let v = validation(SigningAlgorithm::ES384);
            assert!(
                ec.decode::<serde_json::Value>(&token, Algorithm::ES384, &v)
                    .is_err(),
                "a P-256 key is no ES384 key"
            );
            let (rsa, _) = signed(SigningAlgorithm::RS256);
            let v = validation(SigningAlgorithm::ES256);
            assert!(
                rsa.decode::<serde_json::Value>(&token, Algorithm::ES256, &v)
                    .is_err()
            );
            // The header must name the algorithm the signature was checked under.
            let v = validation(SigningAlgorithm::RS256);
            let (rsa, rsa_token) = signed(SigningAlgorithm::RS256);
            assert!(
                rsa.decode::<serde_json::Value>(&rsa_token, Algorithm::PS256, &v)
                    .is_err()
            );
        }
    }

    /// A clock that only moves when the test says so.
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    /// A JWKS endpoint on a thread of its own, counting its requests.
    struct Issuer {
        url: Url,
        hits: Arc<AtomicUsize>,
        down: Arc<AtomicBool>,
        kids: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Issuer {
        fn start(kids: &[&'static str]) -> Self {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            let hits = Arc::new(AtomicUsize::new(0));
            let down = Arc::new(AtomicBool::new(false));
            let kids = Arc::new(Mutex::new(kids.to_vec()));
            let (h, d, k) = (hits.clone(), down.clone(), kids.clone());
            std::thread::spawn(move || {
                for mut stream in listener.incoming().flatten() {
                    let mut head = Vec::new();
                    let mut byte = [0u8];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let answer = if d.load(Ordering::SeqCst) {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
                    } else {
                        let keys: Vec<String> = k
                            .lock()
                            .unwrap()
                            .iter()
                            .map(|kid| {
                                format!(r#"{{"kty":"RSA","kid":"{kid}","n":"wAsgZw","e":"AQAB"}}"#)
                            })
                            .collect();
                        let body = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let _ = stream.write_all(answer.as_bytes());
                }
            });
            Self {
                url: url.parse().unwrap(),
                hits,
                down,
                kids,
            }
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    const TTL: Duration = Duration::from_secs(600);
    const COOLDOWN: Duration = Duration::from_secs(30);

    fn cache(issuer: &Issuer) -> (Arc<JwksCache>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let cache = JwksCache::with_clock(issuer.url.clone(), http, TTL, COOLDOWN, clock.clone());
        (Arc::new(cache), clock)
    }

    /// Waits (in real time, briefly) until a background fetch has been attempted.
    async fn fetch_attempts_reach(cache: &JwksCache, generation: u64) {
        for _ in 0..500 {
            if cache.generation() >= generation {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no background fetch");
    }

    #[tokio::test]
    async fn known_keys_are_served_without_a_fetch_until_the_ttl_has_passed() {
        let issuer = Issuer::start(&["k1"]);
        let (cache, clock) = cache(&issuer);
        assert_eq!(issuer.hits(), 0, "nothing fetched before the first kid");
        assert!(cache.key("k1").await.is_some());
        assert_eq!(issuer.hits(), 1);

        clock.advance(TTL - Duration::from_millis(1));
        assert!(cache.key("k1").await.is_some());
        assert_eq!(issuer.hits(), 1, "fresh keys are not fetched again");

        clock.advance(Duration::from_millis(1));
        assert!(cache.key("k1").await.is_some(), "stale keys keep serving");
        fetch_attempts_reach(&cache, 2).await;
        assert_eq!(issuer.hits(), 2, "refreshed in the background once stale");
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_at_most_once_per_cooldown() {
        let issuer = Issuer::start(&["k1"]);
        let (cache, clock) = cache(&issuer);
        assert!(cache.key("k1").await.is_some());
        issuer.kids.lock().unwrap().push("k2");

        clock.advance(COOLDOWN - Duration::from_millis(1));
        for _ in 0..5 {
            assert!(cache.key("k2").await.is_none(), "still cooling down");
        }
        assert_eq!(issuer.hits(), 1);

        clock.advance(Duration::from_millis(1));
        assert!(
            cache.key("k2").await.is_some(),
            "fetched once the cooldown passed"
        );
        assert_eq!(issuer.hits(), 2);
        for _ in 0..5 {
            assert!(cache.key("k3").await.is_none());
        }
        assert_eq!(issuer.hits(), 2, "the next cooldown began with that fetch");
    }

    #[tokio::test]
    async fn a_failed_fetch_starts_a_cooldown_and_keeps_the_last_good_keys() {
        let issuer = Issuer::start(&["k1"]);
        let (cache, clock) = cache(&issuer);
        assert!(cache.key("k1").await.is_some());
        issuer.down.store(true, Ordering::SeqCst);

        clock.advance(TTL);
        assert!(cache.key("k1").await.is_some());
        fetch_attempts_reach(&cache, 2).await;
        assert_eq!(issuer.hits(), 2);
        assert!(cache.key("k1").await.is_some(), "the last good keys stay");
        assert!(cache.key("k2").await.is_none());
        assert_eq!(issuer.hits(), 2, "a failed fetch also starts a cooldown");

        issuer.down.store(false, Ordering::SeqCst);
        clock.advance(COOLDOWN);
        assert!(cache.key("k1").await.is_some());
        fetch_attempts_reach(&cache, 3).await;
        assert_eq!(
            issuer.hits(),
            3,
            "stale keys are refreshed again after the cooldown"
        );
    }

    #[tokio::test]
    async fn a_key_withdrawn_by_the_issuer_is_gone_after_the_refresh() {
        let issuer = Issuer::start(&["k1"]);
        let (cache, clock) = cache(&issuer);
        assert!(cache.key("k1").await.is_some());
        *issuer.kids.lock().unwrap() = vec!["k2"];

        clock.advance(TTL);
        assert!(
            cache.key("k1").await.is_some(),
            "served until the refresh lands"
        );
        fetch_attempts_reach(&cache, 2).await;
        assert!(cache.key("k2").await.is_some());
        assert!(cache.key("k1").await.is_none());
    }
}
