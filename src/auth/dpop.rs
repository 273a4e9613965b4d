//! DPoP proofs (RFC 9449 §4): a client proves, request by request, that it holds the private
//! key a token is bound to.
//!
//! [`verify_proof`] checks one proof against one request and costs at most one signature
//! check: the `jwk` is parsed for the header's `alg` only, and the cheap claim checks run
//! first. Nothing about a proof is cached, except its `jti` in the [`ReplayCache`], which only
//! refuses.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use url::Url;

use super::SigningAlgorithm;
use super::jose::{self, CompactJws, JwsError};
use super::jwk::{JwkError, KEY_ALGORITHMS, PublicJwk};

/// Proofs longer than this are refused before any decoding.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// `iat` may be this many seconds before or after now.
pub const IAT_WINDOW_SECS: i64 = 60;
/// The `algs` of a `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1).
pub const CHALLENGE_ALGS: &str = "RS256 PS256 ES256 EdDSA";
/// Longest `jti` accepted.
pub const MAX_JTI_CHARS: usize = 255;
/// Remembered proofs per instance; see [`ReplayCache`] for what happens beyond.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The proof algorithms, as `dpop_signing_alg_values_supported` lists them.
pub fn signing_algorithms() -> impl Iterator<Item = &'static str> {
    KEY_ALGORITHMS.iter().map(|a| a.name())
}

/// Why a proof was refused (logged; the client learns only `invalid_dpop_proof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopError {
    Missing,
    /// More than one `DPoP` header field.
    Multiple,
    TooLong,
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    AlgorithmNotAllowed,
    CriticalHeader,
    /// `jwk` missing or not an object.
    MissingJwk,
    /// The `jwk` is not an acceptable public key (private members included).
    Jwk(JwkError),
    BadSignature,
    /// A claim missing or of the wrong type.
    BadClaim(&'static str),
    WrongMethod,
    WrongUrl,
    /// `iat` more than the window away from now.
    IatOutOfWindow,
    /// An access token came with the proof but the proof has no `ath`.
    MissingAth,
    WrongAth,
    /// The proof's key is not the one the token is bound to.
    KeyMismatch,
    Replay,
}

/// The single `DPoP` header value of a request (RFC 9449 §4.3: not more than one).
pub fn single_header<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<&'a str, DpopError> {
    let mut values = values.into_iter();
    let first = values.next().ok_or(DpopError::Missing)?;
    if values.next().is_some() {
        return Err(DpopError::Multiple);
    }
    if first.len() > MAX_PROOF_BYTES {
        return Err(DpopError::TooLong);
    }
    std::str::from_utf8(first).map_err(|_| DpopError::Malformed)
}

/// The external URL of this service (`PUBLIC_URL`), which every `htu` must name.
#[derive(Clone, Debug)]
pub struct ExternalUrl {
    base: String,
}

impl ExternalUrl {
    /// `public_url` is an absolute http(s) URL; a path in it is the prefix under which a proxy
    /// exposes the service (so the token endpoint is `PUBLIC_URL/oauth2/token`).
    pub fn new(public_url: &str) -> Result<Self, String> {
        let url = Url::parse(public_url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err("must be an http(s) URL with a host, and nothing after its path".into());
        }
        Ok(Self {
            base: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The external URL of a request for `path` (as received, starting with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// RFC 9449 §4.3: `htu` names the request's URL, query and fragment ignored, compared
    /// after RFC 3986 syntax- and scheme-based normalization (case of scheme and host, an
    /// explicit default port, dot segments). Anything else differing is a mismatch: scheme,
    /// host, port, or a single trailing slash.
    pub fn matches(&self, htu: &str, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        let (Ok(expected), Ok(claimed)) = (Url::parse(&self.url_for(path)), Url::parse(htu)) else {
            return false;
        };
        claimed.username().is_empty()
            && claimed.password().is_none()
            && claimed.scheme() == expected.scheme()
            && claimed.host() == expected.host()
            && claimed.port_or_known_default() == expected.port_or_known_default()
            && claimed.path() == expected.path()
    }
}

/// The request a proof must be for.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The request's method, compared case-sensitively (RFC 9110 §9.1).
    pub method: &'a str,
    pub url: &'a ExternalUrl,
    /// The request's path as received, without its query.
    pub path: &'a str,
    /// The access token the request presents, which `ath` must hash (resource requests).
    pub access_token: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// An accepted proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key: what `cnf.jkt` binds a token to.
    pub jkt: String,
    pub jti: String,
    /// The last second (since the epoch) at which this proof is still within its window:
    /// its `jti` must be remembered until then.
    pub valid_until: i64,
}

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    jose::sha256_b64(token.as_bytes())
}

/// Checks everything RFC 9449 §4.3 asks of a proof except replay (see [`ReplayCache`]) and
/// the binding to a token's `cnf.jkt` (the caller compares [`VerifiedProof::jkt`]).
pub fn verify_proof(proof: &str, expected: &Expected<'_>) -> Result<VerifiedProof, DpopError> {
    let jws = CompactJws::parse(proof, MAX_PROOF_BYTES).map_err(|e| match e {
        JwsError::TooLong => DpopError::TooLong,
        JwsError::Malformed | JwsError::BadJson => DpopError::Malformed,
    })?;

    let header = &jws.header;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(DpopError::WrongType);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(SigningAlgorithm::from_jose)
        .filter(|a| KEY_ALGORITHMS.contains(a))
        .ok_or(DpopError::AlgorithmNotAllowed)?;
    if header.contains_key("crit") {
        return Err(DpopError::CriticalHeader);
    }
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(DpopError::MissingJwk)?;

    let claims = &jws.claims;
    let claim_str = |name: &'static str| {
        jose::opt_str(claims, name)
            .ok()
            .flatten()
            .ok_or(DpopError::BadClaim(name))
    };
    let jti = claim_str("jti")?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS {
        return Err(DpopError::BadClaim("jti"));
    }
    if claim_str("htm")? != expected.method {
        return Err(DpopError::WrongMethod);
    }
    if !expected.url.matches(claim_str("htu")?, expected.path) {
        return Err(DpopError::WrongUrl);
    }
    let iat = jose::opt_numeric_date(claims, "iat")
        .ok()
        .flatten()
        .ok_or(DpopError::BadClaim("iat"))?;
    let window = IAT_WINDOW_SECS as f64;
    if (iat - expected.now as f64).abs() > window {
        return Err(DpopError::IatOutOfWindow);
    }
    if let Some(token) = expected.access_token {
        let ath = jose::opt_str(claims, "ath")
            .map_err(DpopError::BadClaim)?
            .ok_or(DpopError::MissingAth)?;
        if ath != access_token_hash(token) {
            return Err(DpopError::WrongAth);
        }
    }

    let key = PublicJwk::for_algorithm(jwk, alg).map_err(DpopError::Jwk)?;
    if !key.verify(alg, jws.signing_input(), jws.signature()) {
        return Err(DpopError::BadSignature);
    }
    Ok(VerifiedProof {
        jkt: key.thumbprint().to_owned(),
        jti: jti.to_owned(),
        valid_until: (iat + window).ceil() as i64,
    })
}

/// What the resource API needs to check proofs: where they must point, and what it has seen.
pub struct DpopGuard {
    pub url: ExternalUrl,
    pub replay: ReplayCache,
}

impl DpopGuard {
    pub fn new(public_url: &str, replay_capacity: usize) -> Result<Self, String> {
        Ok(Self {
            url: ExternalUrl::new(public_url).map_err(|e| format!("PUBLIC_URL: {e}"))?,
            replay: ReplayCache::new(replay_capacity),
        })
    }
}

/// The proofs this instance has accepted, by (key thumbprint, `jti`), each remembered until
/// its `iat` window closes, at most `capacity` at a time.
///
/// Full, it forgets the oldest entry rather than refusing new proofs. Refusing would let one
/// client that holds a valid token (only such proofs are remembered) deny DPoP to every
/// tenant by sending unique proofs faster than they expire. Forgetting means that beyond
/// `capacity` proofs within a window, the oldest ones could be replayed: by someone who has
/// captured such a proof together with its token, for the same method and URL, within the
/// same minute. [`ReplayCache::forgotten_live`] counts those entries so that an operator can
/// see it happen and raise the capacity (about 100 bytes an entry).
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<ReplayEntries>,
    forgotten_live: AtomicU64,
}

#[derive(Default)]
struct ReplayEntries {
    until: HashMap<[u8; 32], i64>,
    /// Insertion order; an entry whose `until` no longer matches the map's is stale.
    order: VecDeque<([u8; 32], i64)>,
}

impl ReplayEntries {
    fn pop_oldest(&mut self) -> Option<i64> {
        let (key, until) = self.order.pop_front()?;
        if self.until.get(&key) == Some(&until) {
            self.until.remove(&key);
            return Some(until);
        }
        None
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(ReplayEntries::default()),
            forgotten_live: AtomicU64::new(0),
        }
    }

    /// Remembers `proof`, or refuses it as a replay of one remembered. Call it last, once the
    /// request is otherwise authenticated, so that only proofs bound to a valid token (not
    /// anyone's junk) take room.
    pub fn check_and_remember(&self, proof: &VerifiedProof, now: i64) -> Result<(), DpopError> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(proof.jkt.as_bytes());
        ctx.update(b"\0");
        ctx.update(proof.jti.as_bytes());
        let key: [u8; 32] = ctx
            .finish()
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");

        let mut entries = self.inner.lock().expect("replay cache poisoned");
        while entries.order.front().is_some_and(|(_, until)| *until < now) {
            entries.pop_oldest();
        }
        if entries.until.get(&key).is_some_and(|until| *until >= now) {
            return Err(DpopError::Replay);
        }
        while entries.order.len() >= self.capacity {
            if entries.pop_oldest().is_some_and(|until| until >= now) {
                self.forgotten_live.fetch_add(1, Ordering::Relaxed);
            }
        }
        entries.until.insert(key, proof.valid_until);
        entries.order.push_back((key, proof.valid_until));
        Ok(())
    }

    /// Proofs remembered now (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("replay cache poisoned")
            .until
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries forgotten to make room while their proof was still within its window.
    pub fn forgotten_live(&self) -> u64 {
        self.forgotten_live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    use super::super::jwk::test_keys::{TestKey, ec, ed25519, rsa, rsa_other};
    use super::*;
    use DpopError as E;
    use SigningAlgorithm::{ES256, EdDSA, PS256, RS256};

    /// RFC 9449 Figure 2 (§4.1): a proof for a token request, with the RFC 8792 folding undone.
    const RFC_TOKEN_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
    /// RFC 9449 Figure 13 (§7.1): a proof for a resource request, with `ath`.
    const RFC_RESOURCE_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA";
    /// The access token of RFC 9449 Figure 12, and the jkt of Figures 8 and 9.
    const RFC_ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    const PUBLIC_URL: &str = "https://api.example.com";
    const PATH: &str = "/orgs/org_acme/data";
    const NOW: i64 = 1_800_000_000;
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";

    fn base() -> ExternalUrl {
        ExternalUrl::new(PUBLIC_URL).unwrap()
    }

    fn check(proof: &str) -> Result<VerifiedProof, DpopError> {
        let url = base();
        verify_proof(
            proof,
            &Expected {
                method: "GET",
                url: &url,
                path: PATH,
                access_token: Some(TOKEN),
                now: NOW,
            },
        )
    }

    fn claims() -> Value {
        json!({
            "jti": "e1j3V_bKic8-LAEB",
            "htm": "GET",
            "htu": format!("{PUBLIC_URL}{PATH}"),
            "iat": NOW,
            "ath": access_token_hash(TOKEN),
        })
    }

    fn header(key: &TestKey, alg: SigningAlgorithm) -> Value {
        json!({"typ": "dpop+jwt", "alg": alg.name(), "jwk": key.jwk})
    }

    fn proof(key: &TestKey, alg: SigningAlgorithm, claims: &Value) -> String {
        key.jws(alg, &header(key, alg), claims)
    }

    fn with(mut v: Value, name: &str, value: Value) -> Value {
        v.as_object_mut().unwrap().insert(name.into(), value);
        v
    }

    fn without(mut v: Value, name: &str) -> Value {
        v.as_object_mut().unwrap().remove(name);
        v
    }

    #[test]
    fn the_rfc_9449_example_proofs_verify() {
        let url = ExternalUrl::new("https://server.example.com").unwrap();
        let token_request = Expected {
            method: "POST",
            url: &url,
            path: "/token",
            access_token: None,
            now: 1_562_262_616,
        };
        let ok = verify_proof(RFC_TOKEN_PROOF, &token_request).unwrap();
        assert_eq!(ok.jkt, RFC_JKT);
        assert_eq!(ok.jti, "-BwC3ESc6acc2lTc");
        assert_eq!(ok.valid_until, 1_562_262_616 + 60);
        let late = Expected {
            now: 1_562_262_616 + 61,
            ..token_request
        };
        assert_eq!(verify_proof(RFC_TOKEN_PROOF, &late), Err(E::IatOutOfWindow));

        let url = ExternalUrl::new("https://resource.example.org").unwrap();
        let mut resource_request = Expected {
            method: "GET",
            url: &url,
            path: "/protectedresource",
            access_token: Some(RFC_ACCESS_TOKEN),
            now: 1_562_262_618,
        };
        assert_eq!(
            access_token_hash(RFC_ACCESS_TOKEN),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
        assert_eq!(
            verify_proof(RFC_RESOURCE_PROOF, &resource_request)
                .unwrap()
                .jkt,
            RFC_JKT
        );
        resource_request.access_token = Some("another token");
        assert_eq!(
            verify_proof(RFC_RESOURCE_PROOF, &resource_request),
            Err(E::WrongAth)
        );
    }

    #[test]
    fn proofs_signed_with_each_algorithm_verify_and_report_the_key_thumbprint() {
        let (e, d) = (ec(), ed25519());
        for (key, alg) in [(rsa(), RS256), (rsa(), PS256), (&e, ES256), (&d, EdDSA)] {
            let ok = check(&proof(key, alg, &claims())).unwrap();
            let expected = PublicJwk::parse(key.jwk.to_string().as_bytes()).unwrap();
            assert_eq!(ok.jkt, expected.thumbprint(), "{alg}");
            assert_eq!(ok.jti, "e1j3V_bKic8-LAEB");
            assert_eq!(ok.valid_until, NOW + 60);
        }
    }

    /// A proof shaped like RFC 9449 §4.1's, built by jsonwebtoken (not by this crate).
    #[test]
    fn proofs_built_by_jsonwebtoken_verify() {
        let (e, d) = (ec(), ed25519());
        for (key, alg, encoding) in [
            (&e, Algorithm::ES256, EncodingKey::from_ec_der(&e.pkcs8)),
            (&d, Algorithm::EdDSA, EncodingKey::from_ed_der(&d.pkcs8)),
        ] {
            let mut header = Header::new(alg);
            header.typ = Some("dpop+jwt".into());
            header.jwk = Some(serde_json::from_value(key.jwk.clone()).unwrap());
            let token = jsonwebtoken::encode(&header, &claims(), &encoding).unwrap();
            let ok = check(&token).unwrap();
            assert_eq!(
                ok.jkt,
                PublicJwk::parse(key.jwk.to_string().as_bytes())
                    .unwrap()
                    .thumbprint()
            );
        }
    }

    #[test]
    fn the_header_must_be_a_dpop_jwt_with_an_accepted_alg_and_public_jwk() {
        let e = ec();
        let with_header = |h: Value| check(&e.jws(ES256, &h, &claims()));
        for typ in [
            json!("JWT"),
            json!("DPOP+JWT"),
            json!("application/dpop+jwt"),
            json!(1),
        ] {
            assert_eq!(
                with_header(with(header(&e, ES256), "typ", typ)),
                Err(E::WrongType)
            );
        }
        assert_eq!(
            with_header(without(header(&e, ES256), "typ")),
            Err(E::WrongType)
        );
        for alg in ["none", "HS256", "RS512", "ES384", "es256"] {
            assert_eq!(
                with_header(with(header(&e, ES256), "alg", json!(alg))),
                Err(E::AlgorithmNotAllowed)
            );
        }
        assert_eq!(
            with_header(with(header(&e, ES256), "crit", json!(["x"]))),
            Err(E::CriticalHeader)
        );
        assert_eq!(
            with_header(without(header(&e, ES256), "jwk")),
            Err(E::MissingJwk)
        );
        assert_eq!(
            with_header(with(header(&e, ES256), "jwk", json!("key"))),
            Err(E::MissingJwk)
        );

        let private = with(e.jwk.clone(), "d", json!("AAAA"));
        assert_eq!(
            with_header(with(header(&e, ES256), "jwk", private)),
            Err(E::Jwk(JwkError::PrivateMember("d")))
        );
        let off_curve = with(e.jwk.clone(), "y", e.jwk["x"].clone());
        assert_eq!(
            with_header(with(header(&e, ES256), "jwk", off_curve)),
            Err(E::Jwk(JwkError::NotOnCurve))
        );
        let pinned = with(e.jwk.clone(), "alg", json!("EdDSA"));
        assert!(matches!(
            with_header(with(header(&e, ES256), "jwk", pinned)),
            Err(E::Jwk(JwkError::AlgorithmMismatch { .. }))
        ));
        // An RSA jwk under ES256, an EC jwk under RS256: the key does not fit the alg.
        assert!(matches!(
            check(&e.jws(
                ES256,
                &json!({"typ":"dpop+jwt","alg":"ES256","jwk":rsa().jwk}),
                &claims()
            )),
            Err(E::Jwk(JwkError::AlgorithmMismatch { .. }))
        ));
    }

    #[test]
    fn the_signature_must_come_from_the_jwk() {
        let (a, b) = (ec(), ec());
        let signed_by_a_showing_b = a.jws(ES256, &header(&b, ES256), &claims());
        assert_eq!(check(&signed_by_a_showing_b), Err(E::BadSignature));
        let rsa_swapped = rsa_other().jws(RS256, &header(rsa(), RS256), &claims());
        assert_eq!(check(&rsa_swapped), Err(E::BadSignature));
        let good = proof(&a, ES256, &claims());
        let other = proof(&a, ES256, &with(claims(), "jti", json!("another")));
        let (head, _) = good.rsplit_once('.').unwrap();
        let (_, other_sig) = other.rsplit_once('.').unwrap();
        assert_eq!(check(&format!("{head}.{other_sig}")), Err(E::BadSignature));
    }

    #[test]
    fn claims_must_name_this_request() {
        let e = ec();
        let c = |claims: Value| check(&proof(&e, ES256, &claims));
        assert!(c(claims()).is_ok());
        assert_eq!(c(without(claims(), "jti")), Err(E::BadClaim("jti")));
        assert_eq!(c(with(claims(), "jti", json!(""))), Err(E::BadClaim("jti")));
        assert_eq!(
            c(with(claims(), "jti", json!("j".repeat(256)))),
            Err(E::BadClaim("jti"))
        );
        assert_eq!(c(with(claims(), "jti", json!(5))), Err(E::BadClaim("jti")));
        assert_eq!(c(with(claims(), "htm", json!("POST"))), Err(E::WrongMethod));
        assert_eq!(c(with(claims(), "htm", json!("get"))), Err(E::WrongMethod));
        assert_eq!(c(without(claims(), "htm")), Err(E::BadClaim("htm")));
        assert_eq!(c(without(claims(), "htu")), Err(E::BadClaim("htu")));
        assert_eq!(c(without(claims(), "iat")), Err(E::BadClaim("iat")));
        assert_eq!(
            c(with(claims(), "iat", json!(NOW.to_string()))),
            Err(E::BadClaim("iat"))
        );
        assert!(c(with(claims(), "iat", json!(NOW - 60))).is_ok());
        assert!(c(with(claims(), "iat", json!(NOW + 60))).is_ok());
        assert!(c(with(claims(), "iat", json!(NOW as f64 + 0.25))).is_ok());
        assert_eq!(
            c(with(claims(), "iat", json!(NOW - 61))),
            Err(E::IatOutOfWindow)
        );
        assert_eq!(
            c(with(claims(), "iat", json!(NOW + 61))),
            Err(E::IatOutOfWindow)
        );
        assert_eq!(c(without(claims(), "ath")), Err(E::MissingAth));
        assert_eq!(
            c(with(claims(), "ath", json!(access_token_hash("other")))),
            Err(E::WrongAth)
        );
        assert_eq!(c(with(claims(), "ath", json!(7))), Err(E::BadClaim("ath")));
    }

    #[test]
    fn without_an_access_token_ath_is_not_required() {
        let e = ec();
        let url = base();
        let token_request = Expected {
            method: "POST",
            url: &url,
            path: "/oauth2/token",
            access_token: None,
            now: NOW,
        };
        let c = without(with(claims(), "htm", json!("POST")), "ath");
        let c = with(c, "htu", json!(format!("{PUBLIC_URL}/oauth2/token")));
        assert!(verify_proof(&proof(&e, ES256, &c), &token_request).is_ok());
    }

    #[test]
    fn htu_must_name_this_url_exactly_up_to_normalization() {
        let e = ec();
        let c = |htu: &str| check(&proof(&e, ES256, &with(claims(), "htu", json!(htu))));
        for same in [
            format!("{PUBLIC_URL}{PATH}"),
            format!("HTTPS://API.Example.COM{PATH}"),
            format!("https://api.example.com:443{PATH}"),
            format!("{PUBLIC_URL}{PATH}?limit=5"),
            format!("{PUBLIC_URL}{PATH}#x"),
            format!("{PUBLIC_URL}/orgs/./org_acme/data"),
        ] {
            assert!(c(&same).is_ok(), "{same}");
        }
        for other in [
            format!("http://api.example.com{PATH}"),
            format!("https://api.example.com:8443{PATH}"),
            format!("https://api.example.com:80{PATH}"),
            format!("{PUBLIC_URL}{PATH}/"),
            format!("{PUBLIC_URL}/orgs/org_beta/data"),
            format!("{PUBLIC_URL}/ORGS/org_acme/data"),
            format!("https://evil.example{PATH}"),
            format!("https://api.example.com.evil.example{PATH}"),
            format!("https://user@api.example.com{PATH}"),
            PATH.to_owned(),
            "".to_owned(),
            "https://".to_owned(),
        ] {
            assert_eq!(c(&other), Err(E::WrongUrl), "{other}");
        }
    }

    #[test]
    fn a_public_url_with_a_path_prefixes_the_request_path() {
        let url = ExternalUrl::new("https://example.com/orgwall/").unwrap();
        assert_eq!(
            url.url_for("/oauth2/token"),
            "https://example.com/orgwall/oauth2/token"
        );
        assert!(url.matches("https://example.com/orgwall/oauth2/token", "/oauth2/token"));
        assert!(!url.matches("https://example.com/oauth2/token", "/oauth2/token"));
        assert!(!url.matches("https://example.com/orgwall/oauth2/token", "oauth2/token"));
        for bad in [
            "ftp://x",
            "https://x?q",
            "https://u:p@x",
            "/relative",
            "https://x#f",
        ] {
            assert!(ExternalUrl::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oversized_and_malformed_proofs_are_refused_before_parsing() {
        let huge = "e".repeat(100 * 1024);
        assert_eq!(check(&huge), Err(E::TooLong));
        assert_eq!(single_header([huge.as_bytes()]), Err(E::TooLong));
        let e = ec();
        let padded = proof(
            &e,
            ES256,
            &with(claims(), "pad", json!("p".repeat(8 * 1024))),
        );
        assert_eq!(check(&padded), Err(E::TooLong));
        assert_eq!(check("a.b.c"), Err(E::Malformed));
        assert_eq!(check("a.b"), Err(E::Malformed));

        let text = claims().to_string().replacen('{', r#"{"htm":"POST","#, 1);
        let head = jose::b64(header(&e, ES256).to_string().as_bytes());
        let input = format!("{head}.{}", jose::b64(text.as_bytes()));
        let dup = format!("{input}.{}", jose::b64(&e.sign(ES256, input.as_bytes())));
        assert_eq!(check(&dup), Err(E::Malformed));
    }

    #[test]
    fn exactly_one_dpop_header_is_read() {
        assert_eq!(single_header(std::iter::empty()), Err(E::Missing));
        assert_eq!(single_header([&b"a.b.c"[..]]), Ok("a.b.c"));
        assert_eq!(
            single_header([&b"a.b.c"[..], &b"a.b.c"[..]]),
            Err(E::Multiple)
        );
        assert_eq!(single_header([&[0xff, 0xfe][..]]), Err(E::Malformed));
    }

    fn verified(jkt: &str, jti: &str, valid_until: i64) -> VerifiedProof {
        VerifiedProof {
            jkt: jkt.into(),
            jti: jti.into(),
            valid_until,
        }
    }

    #[test]
    fn a_replayed_proof_is_refused_until_its_window_closes() {
        let cache = ReplayCache::new(100);
        let p = verified("k1", "j1", NOW + 60);
        assert_eq!(cache.check_and_remember(&p, NOW), Ok(()));
        assert_eq!(cache.check_and_remember(&p, NOW + 1), Err(E::Replay));
        assert_eq!(cache.check_and_remember(&p, NOW + 60), Err(E::Replay));
        // The jti is the key's: another key may use the same string.
        assert_eq!(
            cache.check_and_remember(&verified("k2", "j1", NOW + 60), NOW),
            Ok(())
        );
        // Past its window the proof itself is refused by `iat`; the entry may go.
        assert_eq!(
            cache.check_and_remember(&verified("k3", "j", NOW + 200), NOW + 61),
            Ok(())
        );
        assert_eq!(cache.len(), 1, "expired entries are swept");
        assert_eq!(cache.forgotten_live(), 0);
    }

    #[test]
    fn a_full_cache_forgets_its_oldest_entries_and_counts_them() {
        let cache = ReplayCache::new(3);
        for jti in ["a", "b", "c", "d"] {
            cache
                .check_and_remember(&verified("k", jti, NOW + 60), NOW)
                .unwrap();
        }
        assert_eq!(cache.len(), 3, "bounded");
        assert_eq!(cache.forgotten_live(), 1);
        // The documented degradation: the oldest live proof is forgotten...
        assert_eq!(
            cache.check_and_remember(&verified("k", "a", NOW + 60), NOW),
            Ok(())
        );
        // ...while the newer ones are still refused.
        assert_eq!(
            cache.check_and_remember(&verified("k", "d", NOW + 60), NOW),
            Err(E::Replay)
        );
        assert_eq!(
            cache.check_and_remember(&verified("k", "c", NOW + 60), NOW),
            Err(E::Replay)
        );
    }

    #[test]
    fn a_replay_through_verify_proof_is_refused() {
        let e = ec();
        let cache = ReplayCache::default();
        let p = proof(&e, ES256, &claims());
        let first = check(&p).unwrap();
        assert_eq!(cache.check_and_remember(&first, NOW), Ok(()));
        let again = check(&p).unwrap();
        assert_eq!(cache.check_and_remember(&again, NOW + 30), Err(E::Replay));
        let fresh = check(&proof(&e, ES256, &with(claims(), "jti", json!("new")))).unwrap();
        assert_eq!(cache.check_and_remember(&fresh, NOW + 30), Ok(()));
    }
}
