//! Bearer token verification: RFC 8725 practices, contract §3 "Accepted tokens".

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};

use super::SigningAlgorithm;
use super::claims::{JoseHeader, TokenClaims, VerifiedToken};
use super::jwks::{JwksCache, VerifyKey};

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
}

impl KeySource {
    async fn key(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        match self {
            KeySource::Remote(cache) => cache.key(kid).await,
            KeySource::Local(keys) => keys.verify_key(kid),
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
}

pub struct Verifier {
    keys: KeySource,
    validations: HashMap<Algorithm, Validation>,
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
                (alg.jwt(), v)
            })
            .collect();
        Self { keys, validations }
    }

    pub fn key_source(&self) -> &KeySource {
        &self.keys
    }

    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLong);
        }
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

        let data = jsonwebtoken::decode::<TokenClaims>(token, &key.key, validation)
            .map_err(|_| Rejection::SignatureOrClaims)?;
        data.claims.into_verified().ok_or(Rejection::NoClientId)
    }
}
