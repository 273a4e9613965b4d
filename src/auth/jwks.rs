//! A JWKS cache for an external issuer, in the manner of jwks-rsa's `cache` + `rateLimit`:
//!
//! - fetched lazily, on the first token that names a `kid`;
//! - kept for `ttl`, then refreshed in the background while the old keys keep serving, so a
//!   slow or dead issuer never slows a request whose `kid` is known;
//! - refreshed for an unknown `kid` at most once per `cooldown`, concurrent misses sharing the
//!   one fetch, so random `kid`s cannot turn us into a flood against the issuer;
//! - every fetch bounded by `timeout`; on failure the last good keys stay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

/// Largest JWKS document accepted; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A public key ready to verify signatures, decoded once per fetch.
pub struct VerifyKey {
    pub key: DecodingKey,
    /// JWK `kty`: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// JWK `alg`, when the issuer pins one.
    pub alg: Option<Algorithm>,
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
        Some((
            kid,
            VerifyKey {
                key,
                kty: kty.to_string(),
                alg,
            },
        ))
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
    state: RwLock<Arc<Snapshot>>,
    /// Held while a fetch is in flight; waiters reuse its result.
    refresh: Arc<tokio::sync::Mutex<()>>,
    /// Bumped after every fetch attempt, so a waiter can tell that one happened meanwhile.
    generation: AtomicU64,
    fetches: crate::metrics::JwksFetches,
}

impl JwksCache {
    pub fn new(url: Url, http: reqwest::Client, ttl: Duration, cooldown: Duration) -> Self {
        Self {
            url,
            http,
            ttl,
            cooldown,
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
            if snap.fetched_at.is_some_and(|t| t.elapsed() >= self.ttl) {
                self.refresh_in_background(&snap);
            }
            return Some(key.clone());
        }
        self.refresh_for_unknown_kid(kid).await
    }

    fn cooling_down(&self, snap: &Snapshot) -> bool {
        snap.attempted_at
            .is_some_and(|t| t.elapsed() < self.cooldown)
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
        let started = Instant::now();
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
