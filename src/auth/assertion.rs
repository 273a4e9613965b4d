//! Client assertions (`private_key_jwt`, RFC 7523 §2.2 and §3): a client authenticates with a
//! short-lived JWT signed by one of its registered keys instead of a shared secret.
//!
//! This module checks one assertion against one app's keys; finding the app (see
//! [`peek_issuer`]), refusing a replayed `jti` and answering `invalid_client` are the token
//! endpoint's. Every refusal has its own [`AssertionError`] for the log; a client is told
//! none of them apart.

use serde_json::Value;

use super::SigningAlgorithm;
use super::jose::{self, CompactJws, JwsError};
use super::jwk::{KEY_ALGORITHMS, PublicJwks};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Assertions longer than this are refused before any decoding.
pub const MAX_ASSERTION_BYTES: usize = 8 * 1024;
/// Clock leeway on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// Longest lifetime accepted (plus the leeway): common client libraries default to one hour,
/// and a `jti` is remembered for as long as its assertion could still be valid.
pub const MAX_LIFETIME_SECS: i64 = 3600;
/// Longest `jti` accepted.
pub const MAX_JTI_CHARS: usize = 255;

/// Why an assertion was refused (logged, never shown: the client gets `invalid_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionError {
    TooLong,
    Malformed,
    /// `alg` missing, `none`, HMAC, or not one a client key may use.
    AlgorithmNotAllowed,
    /// `typ` present and not a plain JWT or a client-authentication JWT.
    TypeNotAllowed,
    CriticalHeader,
    /// A header member of the wrong type.
    BadHeader(&'static str),
    /// A claim missing or of the wrong type.
    BadClaim(&'static str),
    IssuerMismatch,
    SubjectMismatch,
    AudienceMismatch,
    Expired,
    /// `exp` further ahead than the longest accepted lifetime.
    LivesTooLong,
    NotYetValid,
    /// `kid` names no registered key.
    UnknownKey,
    /// No registered key (or not the one `kid` names) allows the assertion's `alg`.
    NoKeyForAlgorithm,
    BadSignature,
    /// The app has no registered keys (it uses a secret).
    NoRegisteredKeys,
    /// The app is disabled.
    Disabled,
}

/// What the assertion must say.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The app the keys belong to: `iss` and `sub` must both be this.
    pub client_id: &'a str,
    /// Accepted `aud` values: the token endpoint URL and the issuer.
    pub audiences: &'a [&'a str],
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// An accepted assertion: the caller refuses its `jti` again until `exp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    /// Seconds since the Unix epoch, rounded up.
    pub exp: i64,
    /// The key that verified it.
    pub kid: String,
}

/// The `iss` an assertion claims, read without trusting anything: for finding which app's keys
/// to verify it with. `None` when it is not even shaped like an assertion.
pub fn peek_issuer(assertion: &str) -> Option<String> {
    let claims = jose::peek_claims(assertion, MAX_ASSERTION_BYTES)?;
    match claims.get("iss") {
        Some(Value::String(iss)) if !iss.is_empty() => Some(iss.clone()),
        _ => None,
    }
}

/// Checks everything RFC 7523 §3 asks of an assertion except `jti` replay: header, issuer,
/// subject, audience, lifetime, then the signature (the cheap checks first). At most one
/// signature check per registered key that could have signed it (`kid` narrows it to one).
pub fn verify(
    assertion: &str,
    keys: &PublicJwks,
    expected: &Expected<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    let jws = CompactJws::parse(assertion, MAX_ASSERTION_BYTES).map_err(|e| match e {
        JwsError::TooLong => AssertionError::TooLong,
        JwsError::Malformed | JwsError::BadJson => AssertionError::Malformed,
    })?;

    let header = &jws.header;
    let alg = jose::opt_str(header, "alg")
        .map_err(AssertionError::BadHeader)?
        .and_then(SigningAlgorithm::from_jose)
        .filter(|a| KEY_ALGORITHMS.contains(a))
        .ok_or(AssertionError::AlgorithmNotAllowed)?;
    if header.contains_key("crit") {
        return Err(AssertionError::CriticalHeader);
    }
    if let Some(typ) = jose::opt_str(header, "typ").map_err(AssertionError::BadHeader)? {
        // RFC 7515 §4.1.9: the "application/" prefix may be left out; case does not matter.
        // A token of another kind (an access token, a DPoP proof) is not an assertion.
        let typ = typ.to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if !matches!(typ, "jwt" | "client-authentication+jwt") {
            return Err(AssertionError::TypeNotAllowed);
        }
    }
    let kid = jose::opt_str(header, "kid").map_err(AssertionError::BadHeader)?;

    let claims = &jws.claims;
    let claim_str = |name: &'static str| {
        jose::opt_str(claims, name)
            .ok()
            .flatten()
            .ok_or(AssertionError::BadClaim(name))
    };
    if claim_str("iss")? != expected.client_id {
        return Err(AssertionError::IssuerMismatch);
    }
    if claim_str("sub")? != expected.client_id {
        return Err(AssertionError::SubjectMismatch);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => expected.audiences.contains(&aud.as_str()),
        Some(Value::Array(auds)) => {
            if !auds.iter().all(Value::is_string) {
                return Err(AssertionError::BadClaim("aud"));
            }
            auds.iter()
                .filter_map(Value::as_str)
                .any(|aud| expected.audiences.contains(&aud))
        }
        _ => return Err(AssertionError::BadClaim("aud")),
    };
    if !audience_ok {
        return Err(AssertionError::AudienceMismatch);
    }

    let now = expected.now as f64;
    let leeway = LEEWAY_SECS as f64;
    let exp = jose::opt_numeric_date(claims, "exp")
        .map_err(AssertionError::BadClaim)?
        .ok_or(AssertionError::BadClaim("exp"))?;
    if exp < now - leeway {
        return Err(AssertionError::Expired);
    }
    if exp > now + (MAX_LIFETIME_SECS + LEEWAY_SECS) as f64 {
        return Err(AssertionError::LivesTooLong);
    }
    let nbf = jose::opt_numeric_date(claims, "nbf").map_err(AssertionError::BadClaim)?;
    if nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(AssertionError::NotYetValid);
    }
    jose::opt_numeric_date(claims, "iat").map_err(AssertionError::BadClaim)?;
    let jti = claim_str("jti")?;
    if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS {
        return Err(AssertionError::BadClaim("jti"));
    }

    if kid.is_some_and(|kid| keys.get(kid).is_none()) {
        return Err(AssertionError::UnknownKey);
    }
    let mut candidates = keys.candidates(kid, alg).peekable();
    if candidates.peek().is_none() {
        return Err(AssertionError::NoKeyForAlgorithm);
    }
    let key = candidates
        .find(|key| key.verify(alg, jws.signing_input(), jws.signature()))
        .ok_or(AssertionError::BadSignature)?;
    Ok(VerifiedAssertion {
        jti: jti.to_owned(),
        exp: exp.ceil() as i64,
        kid: key.kid().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    use super::super::jwk::test_keys::{TestKey, ec, ed25519, rsa, rsa_other};
    use super::*;
    use AssertionError as E;
    use SigningAlgorithm::{ES256, EdDSA, PS256, RS256};

    const CLIENT: &str = "app_7f3c";
    const TOKEN_URL: &str = "https://auth.example.com/oauth2/token";
    const ISSUER: &str = "https://auth.example.com";
    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            client_id: CLIENT,
            audiences: &[TOKEN_URL, ISSUER],
            now: NOW,
        }
    }

    fn claims() -> Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": NOW + 300, "iat": NOW, "jti": "a1b2c3"})
    }

    fn keys_of(keys: &[&TestKey]) -> PublicJwks {
        let set = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        PublicJwks::parse(set.to_string().as_bytes()).unwrap()
    }

    fn sign(key: &TestKey, alg: SigningAlgorithm, claims: &Value) -> String {
        key.jws(alg, &json!({"alg": alg.name(), "typ": "JWT"}), claims)
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
    fn assertions_signed_with_each_accepted_algorithm_verify() {
        let (e, d) = (ec(), ed25519());
        let keys = keys_of(&[rsa(), &e, &d]);
        for (key, alg) in [(rsa(), RS256), (rsa(), PS256), (&e, ES256), (&d, EdDSA)] {
            let ok = verify(&sign(key, alg, &claims()), &keys, &expected()).unwrap();
            assert_eq!(ok.jti, "a1b2c3", "{alg}");
            assert_eq!(ok.exp, NOW + 300, "{alg}");
            // With the kid, the one key is tried.
            let kid = keys.candidates(None, alg).next().unwrap().kid();
            let header = json!({"alg": alg.name(), "kid": kid});
            let ok = verify(&key.jws(alg, &header, &claims()), &keys, &expected()).unwrap();
            assert_eq!(ok.kid, kid, "{alg}");
        }
    }

    #[test]
    fn none_hmac_and_other_algorithms_are_refused() {
        let keys = keys_of(&[rsa()]);
        let body = |alg: &str| {
            format!(
                "{}.{}",
                jose::b64(json!({"alg": alg}).to_string().as_bytes()),
                jose::b64(claims().to_string().as_bytes())
            )
        };
        for alg in ["none", "HS256", "RS384", "PS512", "ES384", "rs256", ""] {
            let token = format!("{}.c2ln", body(alg));
            assert_eq!(
                verify(&token, &keys, &expected()),
                Err(E::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        let no_alg = rsa().jws(RS256, &json!({"typ": "JWT"}), &claims());
        assert_eq!(
            verify(&no_alg, &keys, &expected()),
            Err(E::AlgorithmNotAllowed)
        );
        // An HMAC keyed with the public key's text (the classic confusion) gets nowhere.
        let input = body("HS256");
        let mac_key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            rsa().jwk.to_string().as_bytes(),
        );
        let tag = aws_lc_rs::hmac::sign(&mac_key, input.as_bytes());
        let token = format!("{input}.{}", jose::b64(tag.as_ref()));
        assert_eq!(
            verify(&token, &keys, &expected()),
            Err(E::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn the_key_must_allow_the_algorithm() {
        let e = ec();
        assert_eq!(
            verify(&sign(&e, ES256, &claims()), &keys_of(&[rsa()]), &expected()),
            Err(E::NoKeyForAlgorithm)
        );
        let pinned = with(rsa().jwk.clone(), "alg", json!("RS256"));
        let keys = PublicJwks::parse(pinned.to_string().as_bytes()).unwrap();
        assert_eq!(
            verify(&sign(rsa(), PS256, &claims()), &keys, &expected()),
            Err(E::NoKeyForAlgorithm)
        );
        assert!(verify(&sign(rsa(), RS256, &claims()), &keys, &expected()).is_ok());
    }

    #[test]
    fn kid_selects_the_key() {
        let (a, b) = (ec(), ec());
        let keys = keys_of(&[&a, &b]);
        let kid_b = keys.keys()[1].kid().to_owned();
        let signed_by_a_named_b = a.jws(ES256, &json!({"alg": "ES256", "kid": kid_b}), &claims());
        assert_eq!(
            verify(&signed_by_a_named_b, &keys, &expected()),
            Err(E::BadSignature)
        );
        let unknown = a.jws(ES256, &json!({"alg": "ES256", "kid": "gone"}), &claims());
        assert_eq!(verify(&unknown, &keys, &expected()), Err(E::UnknownKey));
        // Without a kid, either registered key is found (a rotation in progress).
        assert_eq!(
            verify(&sign(&b, ES256, &claims()), &keys, &expected())
                .unwrap()
                .kid,
            kid_b
        );
    }

    #[test]
    fn a_signature_by_another_key_or_over_other_bytes_is_refused() {
        let keys = keys_of(&[rsa()]);
        assert_eq!(
            verify(&sign(rsa_other(), RS256, &claims()), &keys, &expected()),
            Err(E::BadSignature)
        );
        let good = sign(rsa(), RS256, &claims());
        let (_, sig) = good.rsplit_once('.').unwrap();
        let other_claims = with(claims(), "jti", json!("zzz"));
        let forged = format!(
            "{}.{}.{sig}",
            good.split('.').next().unwrap(),
            jose::b64(other_claims.to_string().as_bytes())
        );
        assert_eq!(verify(&forged, &keys, &expected()), Err(E::BadSignature));
    }

    #[test]
    fn issuer_subject_and_audience_must_match() {
        let e = ec();
        let keys = keys_of(&[&e]);
        let check = |c: Value| verify(&sign(&e, ES256, &c), &keys, &expected());
        assert_eq!(
            check(with(claims(), "iss", json!("other"))),
            Err(E::IssuerMismatch)
        );
        assert_eq!(
            check(with(claims(), "sub", json!("other"))),
            Err(E::SubjectMismatch)
        );
        assert_eq!(check(without(claims(), "iss")), Err(E::BadClaim("iss")));
        assert_eq!(check(without(claims(), "sub")), Err(E::BadClaim("sub")));
        assert_eq!(
            check(with(claims(), "iss", json!([CLIENT]))),
            Err(E::BadClaim("iss"))
        );

        assert!(check(with(claims(), "aud", json!(ISSUER))).is_ok());
        assert!(check(with(claims(), "aud", json!(["https://x", TOKEN_URL]))).is_ok());
        for aud in [
            json!("https://auth.example.com/"),
            json!("https://x"),
            json!([]),
            json!([format!("{TOKEN_URL}?")]),
        ] {
            assert_eq!(
                check(with(claims(), "aud", aud.clone())),
                Err(E::AudienceMismatch),
                "{aud}"
            );
        }
        assert_eq!(
            check(with(claims(), "aud", json!(7))),
            Err(E::BadClaim("aud"))
        );
        assert_eq!(
            check(with(claims(), "aud", json!([TOKEN_URL, 7]))),
            Err(E::BadClaim("aud"))
        );
        assert_eq!(check(without(claims(), "aud")), Err(E::BadClaim("aud")));
    }

    #[test]
    fn lifetime_is_bounded_with_a_minute_of_leeway() {
        let e = ec();
        let keys = keys_of(&[&e]);
        let check = |c: Value| verify(&sign(&e, ES256, &c), &keys, &expected());
        assert!(check(with(claims(), "exp", json!(NOW - 60))).is_ok());
        assert_eq!(
            check(with(claims(), "exp", json!(NOW - 61))),
            Err(E::Expired)
        );
        assert!(check(with(claims(), "exp", json!(NOW + 3660))).is_ok());
        assert_eq!(
            check(with(claims(), "exp", json!(NOW + 3661))),
            Err(E::LivesTooLong)
        );
        assert_eq!(
            check(with(claims(), "exp", json!(NOW as f64 + 0.5)))
                .unwrap()
                .exp,
            NOW + 1
        );
        assert_eq!(check(without(claims(), "exp")), Err(E::BadClaim("exp")));
        assert_eq!(
            check(with(claims(), "exp", json!((NOW + 60).to_string()))),
            Err(E::BadClaim("exp"))
        );
        assert!(check(with(claims(), "nbf", json!(NOW + 60))).is_ok());
        assert_eq!(
            check(with(claims(), "nbf", json!(NOW + 61))),
            Err(E::NotYetValid)
        );
        assert_eq!(
            check(with(claims(), "nbf", json!("0"))),
            Err(E::BadClaim("nbf"))
        );
        assert_eq!(
            check(with(claims(), "iat", json!("now"))),
            Err(E::BadClaim("iat"))
        );
    }

    #[test]
    fn jti_is_required() {
        let e = ec();
        let keys = keys_of(&[&e]);
        let check = |c: Value| verify(&sign(&e, ES256, &c), &keys, &expected());
        assert_eq!(check(without(claims(), "jti")), Err(E::BadClaim("jti")));
        assert_eq!(
            check(with(claims(), "jti", json!(""))),
            Err(E::BadClaim("jti"))
        );
        assert_eq!(
            check(with(claims(), "jti", json!(42))),
            Err(E::BadClaim("jti"))
        );
        assert_eq!(
            check(with(claims(), "jti", json!("j".repeat(256)))),
            Err(E::BadClaim("jti"))
        );
        assert!(check(with(claims(), "jti", json!("j".repeat(255)))).is_ok());
    }

    #[test]
    fn header_type_crit_size_and_duplicates() {
        let e = ec();
        let keys = keys_of(&[&e]);
        let with_header = |h: Value| verify(&e.jws(ES256, &h, &claims()), &keys, &expected());
        for typ in [
            "JWT",
            "jwt",
            "client-authentication+jwt",
            "application/client-authentication+jwt",
        ] {
            assert!(
                with_header(json!({"alg": "ES256", "typ": typ})).is_ok(),
                "{typ}"
            );
        }
        for typ in ["dpop+jwt", "at+jwt", "JOSE"] {
            assert_eq!(
                with_header(json!({"alg": "ES256", "typ": typ})),
                Err(E::TypeNotAllowed),
                "{typ}"
            );
        }
        assert_eq!(
            with_header(json!({"alg": "ES256", "typ": 1})),
            Err(E::BadHeader("typ"))
        );
        assert_eq!(
            with_header(json!({"alg": "ES256", "kid": 1})),
            Err(E::BadHeader("kid"))
        );
        assert_eq!(
            with_header(json!({"alg": "ES256", "crit": ["exp"], "exp": 1})),
            Err(E::CriticalHeader)
        );

        let padded = with(claims(), "pad", json!("x".repeat(8 * 1024)));
        assert_eq!(
            verify(&sign(&e, ES256, &padded), &keys, &expected()),
            Err(E::TooLong)
        );
        let huge = "a".repeat(100 * 1024);
        assert_eq!(verify(&huge, &keys, &expected()), Err(E::TooLong));
        assert_eq!(peek_issuer(&huge), None);

        let text = claims()
            .to_string()
            .replacen('{', &format!(r#"{{"iss":"{CLIENT}","#), 1);
        let input = format!(
            "{}.{}",
            jose::b64(br#"{"alg":"ES256"}"#),
            jose::b64(text.as_bytes())
        );
        let token = format!("{input}.{}", jose::b64(&e.sign(ES256, input.as_bytes())));
        assert_eq!(verify(&token, &keys, &expected()), Err(E::Malformed));
        assert_eq!(verify("a.b", &keys, &expected()), Err(E::Malformed));
        assert_eq!(verify("", &keys, &expected()), Err(E::Malformed));
    }

    #[test]
    fn peek_issuer_trusts_nothing_but_reads_iss() {
        let e = ec();
        assert_eq!(
            peek_issuer(&sign(&e, ES256, &claims())).as_deref(),
            Some(CLIENT)
        );
        let unsigned = format!("e30.{}.", jose::b64(claims().to_string().as_bytes()));
        assert_eq!(peek_issuer(&unsigned).as_deref(), Some(CLIENT));
        assert_eq!(
            peek_issuer(&sign(&e, ES256, &with(claims(), "iss", json!(1)))),
            None
        );
        assert_eq!(
            peek_issuer(&sign(&e, ES256, &with(claims(), "iss", json!("")))),
            None
        );
        assert_eq!(peek_issuer("not a jwt"), None);
    }

    /// An assertion built by jsonwebtoken the way client libraries build one (Authlib's
    /// `private_key_jwt`: `typ: JWT`, `kid` when the key has one, `iat`, one-hour `exp`).
    #[test]
    fn assertions_built_by_jsonwebtoken_verify() {
        let (e, d) = (ec(), ed25519());
        let keys = keys_of(&[&e, &d]);
        let claims = json!({
            "iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL,
            "iat": NOW, "exp": NOW + 3600, "jti": "q0rhUdvhBU7Wm0ZrkhnYuSqUkmMPVm7U5BxJTsTsCvM",
        });
        for (key, alg, encoding) in [
            (&e, Algorithm::ES256, EncodingKey::from_ec_der(&e.pkcs8)),
            (&d, Algorithm::EdDSA, EncodingKey::from_ed_der(&d.pkcs8)),
        ] {
            let mut header = Header::new(alg);
            header.kid = Some(keys_of(&[key]).keys()[0].kid().to_owned());
            let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
            let ok = verify(&token, &keys, &expected()).unwrap();
            assert_eq!(ok.exp, NOW + 3600);
            let token = jsonwebtoken::encode(&Header::new(alg), &claims, &encoding).unwrap();
            assert!(
                verify(&token, &keys, &expected()).is_ok(),
                "{alg:?} without kid"
            );
        }
    }

    /// Assertions made by Authlib 1.9 (`authlib.oauth2.rfc7523.PrivateKeyJWT`, which signs
    /// with joserfc: `typ: JWT`, no `kid`, `iat`, `exp` one hour later, a random `jti`),
    /// with the public half of the key each was signed with.
    const AUTHLIB_ASSERTIONS: [(&str, &str); 3] = [
        (
            r#"{"n": "lrg4Grq0eEicd9-QY9HeZcSSqHt0n8zYrnXKV8WGHXu4fNRuuuXGz8OIDaGmwFSjQTXun7LKH9ha8sD_Tyd29tOXyeppLct2kZj6vK_SaHMAf4EehDAIYB0iZ0qM5F8Xty6R9cJHCNWmcGPYdM_VgMgt2znpOI1xsYjaQ3XBiI4LCFAgRpw1e1jp95t6B-SmRZ037bl26jCslIVuKYIatGEOMw90opXNQmvXMRvWZQCsFy6hcoNYKutnPDIRVMYXXug1aOSfWYVgpHl1_zu97PiC6pk9x4v-Ru8X5EbGsAQZAHqEoAclP6hT09OsCqe1qTueRYT9Xy0zun0UhD0Fhw", "e": "AQAB", "kty": "RSA"}"#,
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhcHBfN2YzYyIsImF1ZCI6Imh0dHBzOi8vYXV0aC5leGFtcGxlLmNvbS9vYXV0aDIvdG9rZW4iLCJzdWIiOiJhcHBfN2YzYyIsImlhdCI6MTc5NjE0MDM1MCwiZXhwIjoxNzk2MTQzOTUwLCJqdGkiOiI0SkIzZTVBUUFCTHJrM3N5VDh6WER5VmtHZkU2VHJsWmZwaWoifQ.lXKm0hkPk0_v-gDO5s2tFwbNBq6AfrjuqUluEwOhafcJfeeBCGtJ8MDpI7mCpx7M3nX-WiX_unHsnftCmJc_kY17sKGl3sS8ASEB29-byye5uluzjsnv885wP1fxkOLGFnbgoOkoryvRSm2c_YezWMSFzv13oEufXS2O1XaGeQGgUVWSG28maPBgqOSyamGGV_sfTFslhIhc5t5dyS3dn3btIibFGNuaoZmP_xdSHOHX1qNXVcCzOTNWE4vUY4FvkCbBq9rOFnFwcxoyZMmn4UKCJhAFtrS7VSox47myX-1Ij7dnzOQpiJohv3o-_2o9VwfhyzfLWhIUPB5JTbI0gw",
        ),
        (
            r#"{"crv": "P-256", "x": "Glhn8ejKoad1_wVUDtHS2oHh7KzcA9vXpvVVofvxCc4", "y": "DVfyE8ZtzMeQpOkSgprVfkJaIC0t5gKSUFiozjUBYS4", "kty": "EC"}"#,
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJhcHBfN2YzYyIsImF1ZCI6Imh0dHBzOi8vYXV0aC5leGFtcGxlLmNvbS9vYXV0aDIvdG9rZW4iLCJzdWIiOiJhcHBfN2YzYyIsImlhdCI6MTc5NjE0MDM1MCwiZXhwIjoxNzk2MTQzOTUwLCJqdGkiOiJnRjN1UDZlSVNVdjRPSGtvTDhSNUJSQldCNUcyTTYzMUxJWmsifQ.kJC6hSxAyEj-exrhKtV_i96F3ZcCZwgKc5SzJZmE99Tvp99xHKW69UaslIDK0YnQvPybeAZA_9fMkAPNm2-9mg",
        ),
        (
            r#"{"crv": "Ed25519", "x": "zx4TXr4KmrF3y8b8me4zEyWQ5gmslioygVmgMs3oskU", "kty": "OKP"}"#,
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJpc3MiOiJhcHBfN2YzYyIsImF1ZCI6Imh0dHBzOi8vYXV0aC5leGFtcGxlLmNvbS9vYXV0aDIvdG9rZW4iLCJzdWIiOiJhcHBfN2YzYyIsImlhdCI6MTc5NjE0MDM1MCwiZXhwIjoxNzk2MTQzOTUwLCJqdGkiOiJId3ZaOGF4aFNqRmFqeFVoVVhWdDBYT2lzYmxYbGlWQkU1alYifQ.8f0yVNphQh7z4TG121GZjC2gbPMvMbPdK95g2siL_8mD36wrqeI2rQcrzCNKm3uzhiG2NwL2pZzvJBhNjEp9AA",
        ),
    ];

    #[test]
    fn assertions_made_by_authlib_verify() {
        for (jwk, assertion) in AUTHLIB_ASSERTIONS {
            let keys = PublicJwks::parse(jwk.as_bytes()).unwrap();
            let at_issue = Expected {
                now: 1796140350,
                ..expected()
            };
            let ok = verify(assertion, &keys, &at_issue).unwrap();
            assert_eq!(ok.exp, 1796140350 + 3600);
            assert_eq!(peek_issuer(assertion).as_deref(), Some(CLIENT));
            let later = Expected {
                now: 1796140350 + 3600 + 61,
                ..expected()
            };
            assert_eq!(verify(assertion, &keys, &later), Err(E::Expired));
        }
    }
}
