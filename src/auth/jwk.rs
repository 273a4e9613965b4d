//! Public JWKs supplied by clients: the keys an app registers for `private_key_jwt`, and the
//! `jwk` header of a DPoP proof. Parsed strictly and once, into a key ready to verify, so a
//! verification costs one signature check and nothing else.
//!
//! Accepted: RSA of 2048 to 8192 bits (RS256, PS256), EC P-256 (ES256), OKP Ed25519 (EdDSA).
//! Sizes are checked on the base64url text before anything is decoded, and the EC point is
//! checked to be on the curve by parsing it with aws-lc. A key with a private member is refused
//! by name: whoever sent it has leaked it and should know.

use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::SigningAlgorithm;
use super::jose::{self, sha256_b64};

/// The algorithms a client key may sign with.
pub const KEY_ALGORITHMS: [SigningAlgorithm; 4] = [
    SigningAlgorithm::RS256,
    SigningAlgorithm::PS256,
    SigningAlgorithm::ES256,
    SigningAlgorithm::EdDSA,
];

/// Most keys an app may register (enough for a rotation with room to spare).
pub const MAX_KEYS: usize = 10;
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
const MAX_KID_CHARS: usize = 128;

/// Members that only a private or symmetric key has (RFC 7518 §6.3.2, §6.4, §6.2.2; RFC 8037).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a JWK or JWKS was refused; `Display` is a one-line message fit for an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("not a JSON object without repeated members: {0}")]
    Json(String),
    #[error("the key set is larger than {} KiB", MAX_JWKS_BYTES / 1024)]
    TooLarge,
    #[error("a JWK must be a JSON object")]
    NotAnObject,
    #[error("`keys` must be an array of JWKs")]
    KeysNotArray,
    #[error("a key set holds 1 to {MAX_KEYS} keys, not {0}")]
    KeyCount(usize),
    #[error("keys[{index}]: {error}")]
    InKey { index: usize, error: Box<JwkError> },
    #[error("two keys have the kid `{0}`")]
    DuplicateKid(String),
    #[error(
        "the key has the private member `{0}`: register only the public key (and replace this one, it has been exposed)"
    )]
    PrivateMember(&'static str),
    #[error("`{0}` is missing")]
    Missing(&'static str),
    #[error("`{0}` must be a string")]
    NotAString(&'static str),
    #[error("`{0}` is not base64url without padding")]
    NotBase64Url(&'static str),
    #[error("key type `{0}` is not accepted (RSA, EC P-256 or OKP Ed25519)")]
    UnsupportedKeyType(String),
    #[error("curve `{0}` is not accepted (P-256 for EC, Ed25519 for OKP)")]
    UnsupportedCurve(String),
    #[error(
        "the RSA modulus must be {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, without leading zero octets"
    )]
    RsaModulus,
    #[error("the RSA exponent must be odd, at least 3 and below 2^32, without leading zero octets")]
    RsaExponent,
    #[error("`{0}` must be exactly 32 bytes")]
    Length(&'static str),
    #[error("the EC point is not on the P-256 curve")]
    NotOnCurve,
    #[error("the key was refused by the cryptographic library")]
    Rejected,
    #[error("`alg` `{0}` is not accepted (RS256, PS256, ES256, EdDSA)")]
    UnsupportedAlgorithm(String),
    #[error("`alg` `{alg}` does not fit a `{kty}` key")]
    AlgorithmMismatch {
        alg: SigningAlgorithm,
        kty: &'static str,
    },
    #[error("`use` must be `sig`")]
    Use,
    #[error("`key_ops` must be [\"verify\"]")]
    KeyOps,
    #[error("`kid` must be 1 to {MAX_KID_CHARS} visible ASCII characters")]
    Kid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ec,
    Okp,
}

impl KeyType {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::Ec => "EC",
            Self::Okp => "OKP",
        }
    }

    /// The algorithms a key of this type may sign with, when its JWK pins none.
    const fn algorithms(self) -> &'static [SigningAlgorithm] {
        match self {
            Self::Rsa => &[SigningAlgorithm::RS256, SigningAlgorithm::PS256],
            Self::Ec => &[SigningAlgorithm::ES256],
            Self::Okp => &[SigningAlgorithm::EdDSA],
        }
    }
}

/// The key material, decoded and checked.
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point: 0x04 || x || y.
    Ec {
        point: Vec<u8>,
    },
    Okp {
        x: Vec<u8>,
    },
}

/// A client's public key, ready to verify: one parsed aws-lc key per algorithm it allows.
#[derive(Clone)]
pub struct PublicJwk {
    kid: String,
    kty: KeyType,
    alg: Option<SigningAlgorithm>,
    thumbprint: String,
    /// The public members, `kid` included: what is stored and shown.
    public: Value,
    verifiers: Vec<(SigningAlgorithm, ParsedPublicKey)>,
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicJwk")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl PublicJwk {
    /// Parses one JWK document.
    pub fn parse(json: &[u8]) -> Result<Self, JwkError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwkError::TooLarge);
        }
        Self::from_object(&jose::strict_object(json).map_err(JwkError::Json)?)
    }

    /// A key for every algorithm it allows (its `alg`, else every one its type allows).
    pub fn from_object(jwk: &Map<String, Value>) -> Result<Self, JwkError> {
        Self::build(jwk, None)
    }

    /// A key for `alg` alone, refused if the JWK does not allow it: what a DPoP proof needs,
    /// parsing no more than the one key it is verified with.
    pub fn for_algorithm(
        jwk: &Map<String, Value>,
        alg: SigningAlgorithm,
    ) -> Result<Self, JwkError> {
        Self::build(jwk, Some(alg))
    }

    fn build(jwk: &Map<String, Value>, only: Option<SigningAlgorithm>) -> Result<Self, JwkError> {
        if let Some(member) = PRIVATE_MEMBERS.into_iter().find(|m| jwk.contains_key(*m)) {
            return Err(JwkError::PrivateMember(member));
        }
        let kty = match required_str(jwk, "kty")? {
            "RSA" => KeyType::Rsa,
            "EC" => KeyType::Ec,
            "OKP" => KeyType::Okp,
            other => return Err(JwkError::UnsupportedKeyType(other.to_owned())),
        };
        let key_use = optional_str(jwk, "use")?;
        if key_use.is_some_and(|u| u != "sig") {
            return Err(JwkError::Use);
        }
        let key_ops = jwk.get("key_ops").map(Value::as_array);
        if key_ops.is_some_and(|ops| ops.is_none_or(|ops| ops.len() != 1 || ops[0] != "verify")) {
            return Err(JwkError::KeyOps);
        }
        let alg = match optional_str(jwk, "alg")? {
            None => None,
            Some(name) => Some(
                SigningAlgorithm::from_jose(name)
                    .filter(|a| KEY_ALGORITHMS.contains(a))
                    .ok_or_else(|| JwkError::UnsupportedAlgorithm(name.to_owned()))?,
            ),
        };
        if let Some(alg) = alg.filter(|a| !kty.algorithms().contains(a)) {
            return Err(JwkError::AlgorithmMismatch {
                alg,
                kty: kty.name(),
            });
        }
        let kid = optional_str(jwk, "kid")?;
        if kid.is_some_and(|k| {
            k.is_empty() || k.len() > MAX_KID_CHARS || !k.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return Err(JwkError::Kid);
        }

        let (material, mut public, canonical) = match kty {
            KeyType::Rsa => {
                // Sizes are judged on the text first: a megabyte modulus costs no decoding.
                let n_b64 = b64_member(jwk, "n", MAX_RSA_BITS / 8)?;
                let e_b64 = b64_member(jwk, "e", 4).map_err(|e| match e {
                    JwkError::Length(_) => JwkError::RsaExponent,
                    other => other,
                })?;
                let n = decode(n_b64, "n")?;
                let e = decode(e_b64, "e")?;
                check_modulus(&n)?;
                check_exponent(&e)?;
                let canonical = format!(r#"{{"e":"{e_b64}","kty":"RSA","n":"{n_b64}"}}"#);
                let public = json!({"kty": "RSA", "n": n_b64, "e": e_b64});
                (Material::Rsa { n, e }, public, canonical)
            }
            KeyType::Ec => {
                let crv = required_str(jwk, "crv")?;
                if crv != "P-256" {
                    return Err(JwkError::UnsupportedCurve(crv.to_owned()));
                }
                let x_b64 = b64_member(jwk, "x", 32)?;
                let y_b64 = b64_member(jwk, "y", 32)?;
                let (x, y) = (decode(x_b64, "x")?, decode(y_b64, "y")?);
                if x.len() != 32 {
                    return Err(JwkError::Length("x"));
                }
                if y.len() != 32 {
                    return Err(JwkError::Length("y"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let canonical =
                    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x_b64}","y":"{y_b64}"}}"#);
                let public = json!({"kty": "EC", "crv": "P-256", "x": x_b64, "y": y_b64});
                (Material::Ec { point }, public, canonical)
            }
            KeyType::Okp => {
                let crv = required_str(jwk, "crv")?;
                if crv != "Ed25519" {
                    return Err(JwkError::UnsupportedCurve(crv.to_owned()));
                }
                let x_b64 = b64_member(jwk, "x", 32)?;
                let x = decode(x_b64, "x")?;
                if x.len() != 32 {
                    return Err(JwkError::Length("x"));
                }
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_b64}"}}"#);
                let public = json!({"kty": "OKP", "crv": "Ed25519", "x": x_b64});
                (Material::Okp { x }, public, canonical)
            }
        };

        let allowed: Vec<SigningAlgorithm> = match (only, alg) {
            (Some(wanted), Some(pinned)) if wanted != pinned => {
                return Err(JwkError::AlgorithmMismatch {
                    alg: wanted,
                    kty: kty.name(),
                });
            }
            (Some(wanted), _) if !kty.algorithms().contains(&wanted) => {
                return Err(JwkError::AlgorithmMismatch {
                    alg: wanted,
                    kty: kty.name(),
                });
            }
            (Some(wanted), _) => vec![wanted],
            (None, Some(pinned)) => vec![pinned],
            (None, None) => kty.algorithms().to_vec(),
        };
        let verifiers = allowed
            .into_iter()
            .map(|a| Ok((a, verifier(&material, a)?)))
            .collect::<Result<Vec<_>, JwkError>>()?;

        let thumbprint = sha256_b64(canonical.as_bytes());
        let kid = kid.map_or_else(|| thumbprint.clone(), str::to_owned);
        let fields = public.as_object_mut().expect("built as an object");
        fields.insert("kid".into(), Value::String(kid.clone()));
        if let Some(alg) = alg {
            fields.insert("alg".into(), Value::String(alg.name().into()));
        }
        if key_use.is_some() {
            fields.insert("use".into(), Value::String("sig".into()));
        }
        Ok(Self {
            kid,
            kty,
            alg,
            thumbprint,
            public,
            verifiers,
        })
    }

    /// The JWK's `kid`, or its thumbprint when it had none.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn key_type(&self) -> KeyType {
        self.kty
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url (DPoP's `jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The public members and the `kid`; never anything else the document carried.
    pub fn to_json(&self) -> &Value {
        &self.public
    }

    pub fn allows(&self, alg: SigningAlgorithm) -> bool {
        self.verifiers.iter().any(|(a, _)| *a == alg)
    }

    /// One signature check; `false` for an algorithm this key does not allow.
    pub fn verify(&self, alg: SigningAlgorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

/// An app's registered keys.
#[derive(Clone, Debug)]
pub struct PublicJwks {
    keys: Vec<PublicJwk>,
}

impl PublicJwks {
    /// Parses a JWKS (`{"keys":[...]}`) or a single JWK.
    pub fn parse(json: &[u8]) -> Result<Self, JwkError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwkError::TooLarge);
        }
        Self::from_object(&jose::strict_object(json).map_err(JwkError::Json)?)
    }

    pub fn from_object(doc: &Map<String, Value>) -> Result<Self, JwkError> {
        let keys = match doc.get("keys") {
            None => vec![PublicJwk::from_object(doc)?],
            Some(Value::Array(keys)) => {
                if keys.is_empty() || keys.len() > MAX_KEYS {
                    return Err(JwkError::KeyCount(keys.len()));
                }
                keys.iter()
                    .enumerate()
                    .map(|(index, key)| {
                        key.as_object()
                            .ok_or(JwkError::NotAnObject)
                            .and_then(PublicJwk::from_object)
                            .map_err(|error| JwkError::InKey {
                                index,
                                error: Box::new(error),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => return Err(JwkError::KeysNotArray),
        };
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(JwkError::DuplicateKid(key.kid.clone()));
            }
        }
        Ok(Self { keys })
    }

    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    pub fn get(&self, kid: &str) -> Option<&PublicJwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The keys that may have signed with `alg`: the one `kid` names (if it allows `alg`),
    /// else every key that allows it.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: SigningAlgorithm,
    ) -> impl Iterator<Item = &'a PublicJwk> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid == kid) && k.allows(alg))
    }

    /// `{"keys":[...]}` with public members and `kid`s only: what is stored.
    pub fn to_json(&self) -> Value {
        json!({"keys": self.keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>()})
    }
}

fn optional_str<'m>(
    jwk: &'m Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'m str>, JwkError> {
    jose::opt_str(jwk, name).map_err(JwkError::NotAString)
}

fn required_str<'m>(jwk: &'m Map<String, Value>, name: &'static str) -> Result<&'m str, JwkError> {
    optional_str(jwk, name)?.ok_or(JwkError::Missing(name))
}

/// A base64url member whose decoded length may not exceed `max_bytes`, judged on its text.
fn b64_member<'m>(
    jwk: &'m Map<String, Value>,
    name: &'static str,
    max_bytes: usize,
) -> Result<&'m str, JwkError> {
    let text = required_str(jwk, name)?;
    if text.len() > (max_bytes * 4).div_ceil(3) {
        return Err(match name {
            "n" => JwkError::RsaModulus,
            _ => JwkError::Length(name),
        });
    }
    Ok(text)
}

fn decode(text: &str, name: &'static str) -> Result<Vec<u8>, JwkError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwkError::NotBase64Url(name))
}

fn check_modulus(n: &[u8]) -> Result<(), JwkError> {
    let (Some(&first), Some(&last)) = (n.first(), n.last()) else {
        return Err(JwkError::RsaModulus);
    };
    let bits = n.len() * 8 - first.leading_zeros() as usize;
    // An RSA modulus is odd; a leading zero octet would give one key two thumbprints.
    if first == 0 || last & 1 == 0 || !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(JwkError::RsaModulus);
    }
    Ok(())
}

fn check_exponent(e: &[u8]) -> Result<(), JwkError> {
    if e.is_empty() || e.len() > 4 || e[0] == 0 {
        return Err(JwkError::RsaExponent);
    }
    let value = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if value < 3 || value & 1 == 0 {
        return Err(JwkError::RsaExponent);
    }
    Ok(())
}

fn verifier(material: &Material, alg: SigningAlgorithm) -> Result<ParsedPublicKey, JwkError> {
    match (material, alg) {
        (Material::Rsa { n, e }, SigningAlgorithm::RS256 | SigningAlgorithm::PS256) => {
            let params = if alg == SigningAlgorithm::RS256 {
                &RSA_PKCS1_2048_8192_SHA256
            } else {
                &RSA_PSS_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .map_err(|_| JwkError::Rejected)
        }
        (Material::Ec { point }, SigningAlgorithm::ES256) => {
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| JwkError::NotOnCurve)
        }
        (Material::Okp { x }, SigningAlgorithm::EdDSA) => {
            ParsedPublicKey::new(&ED25519, x).map_err(|_| JwkError::Rejected)
        }
        _ => Err(JwkError::Rejected),
    }
}

/// Key pairs for tests: real keys, real signatures.
#[cfg(test)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
        RSA_PSS_SHA256,
    };
    use serde_json::{Value, json};

    use super::super::SigningAlgorithm;
    use super::super::jose::b64;

    pub enum Pair {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    pub struct TestKey {
        pub pair: Pair,
        /// The public JWK, without `kid` or `alg`.
        pub jwk: Value,
        /// PKCS#8 DER (EC and Ed25519 only), for jsonwebtoken's `EncodingKey`.
        pub pkcs8: Vec<u8>,
    }

    impl TestKey {
        pub fn sign(&self, alg: SigningAlgorithm, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.pair {
                Pair::Rsa(p) => {
                    let mut sig = vec![0; p.public_modulus_len()];
                    let padding = match alg {
                        SigningAlgorithm::PS256 => &RSA_PSS_SHA256,
                        _ => &RSA_PKCS1_SHA256,
                    };
                    p.sign(padding, &rng, message, &mut sig).unwrap();
                    sig
                }
                Pair::Ec(p) => p.sign(&rng, message).unwrap().as_ref().to_vec(),
                Pair::Ed(p) => p.sign(message).as_ref().to_vec(),
            }
        }

        /// A compact JWS of `header` and `claims`, signed with `alg`.
        pub fn jws(&self, alg: SigningAlgorithm, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(&serde_json::to_vec(header).unwrap()),
                b64(&serde_json::to_vec(claims).unwrap())
            );
            let sig = self.sign(alg, input.as_bytes());
            format!("{input}.{}", b64(&sig))
        }
    }

    fn rsa_new() -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        let pkcs8 = pair.as_der().unwrap().as_ref().to_vec();
        TestKey {
            pair: Pair::Rsa(pair),
            jwk,
            pkcs8,
        }
    }

    /// RSA key generation takes a while: tests share two keys.
    pub fn rsa() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(rsa_new)
    }

    pub fn rsa_other() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(rsa_new)
    }

    pub fn ec() -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref();
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        let pkcs8 = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        TestKey {
            pair: Pair::Ec(pair),
            jwk,
            pkcs8,
        }
    }

    pub fn ed25519() -> TestKey {
        let pair = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
        let pkcs8 = pair.to_pkcs8().unwrap().as_ref().to_vec();
        TestKey {
            pair: Pair::Ed(pair),
            jwk,
            pkcs8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{ec, ed25519, rsa};
    use super::*;
    use SigningAlgorithm::{ES256, EdDSA, PS256, RS256};

    /// RFC 7638 §3.1's example key, and the thumbprint the RFC gives for it.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    fn parse(v: Value) -> Result<PublicJwk, JwkError> {
        PublicJwk::parse(v.to_string().as_bytes())
    }

    fn with(mut jwk: Value, name: &str, value: Value) -> Value {
        jwk.as_object_mut().unwrap().insert(name.into(), value);
        jwk
    }

    #[test]
    fn the_rfc7638_example_has_the_rfcs_thumbprint_and_keeps_its_kid() {
        let key =
            parse(json!({"kty":"RSA","n":RFC7638_N,"e":"AQAB","alg":"RS256","kid":"2011-04-29"}))
                .unwrap();
        assert_eq!(key.thumbprint(), RFC7638_THUMBPRINT);
        assert_eq!(key.kid(), "2011-04-29");
        assert!(key.allows(RS256) && !key.allows(PS256), "alg pins RS256");

        let key = parse(json!({"kty":"RSA","n":RFC7638_N,"e":"AQAB"})).unwrap();
        assert_eq!(key.kid(), RFC7638_THUMBPRINT, "no kid: the thumbprint");
        assert!(key.allows(RS256) && key.allows(PS256) && !key.allows(ES256));
    }

    #[test]
    fn real_keys_verify_their_own_signatures_and_nothing_else() {
        let cases = [
            (rsa().jwk.clone(), rsa(), RS256),
            (rsa().jwk.clone(), rsa(), PS256),
        ];
        for (jwk, key, alg) in cases {
            let parsed = parse(jwk).unwrap();
            let sig = key.sign(alg, b"message");
            assert!(parsed.verify(alg, b"message", &sig), "{alg}");
            assert!(!parsed.verify(alg, b"messagf", &sig), "{alg}");
            let other = if alg == RS256 { PS256 } else { RS256 };
            assert!(!parsed.verify(other, b"message", &sig), "{alg} as {other}");
            assert!(!parsed.verify(ES256, b"message", &sig));
        }
        for (key, alg) in [(ec(), ES256), (ed25519(), EdDSA)] {
            let parsed = parse(key.jwk.clone()).unwrap();
            assert_eq!(parsed.kid(), parsed.thumbprint());
            let sig = key.sign(alg, b"message");
            assert!(parsed.verify(alg, b"message", &sig), "{alg}");
            assert!(!parsed.verify(alg, b"messagf", &sig), "{alg}");
            assert!(!parsed.verify(RS256, b"message", &sig), "{alg}");
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!parsed.verify(alg, b"message", &bad), "{alg}");
        }
    }

    #[test]
    fn a_private_member_is_refused_by_name() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            for jwk in [rsa().jwk.clone(), ec().jwk.clone(), ed25519().jwk.clone()] {
                let err = parse(with(jwk, member, json!("AQAB"))).unwrap_err();
                assert_eq!(err, JwkError::PrivateMember(member));
                assert!(err.to_string().contains(&format!("`{member}`")), "{err}");
            }
        }
        let err = parse(json!({"kty":"oct","k":"c2VjcmV0"})).unwrap_err();
        assert_eq!(err, JwkError::PrivateMember("k"));
        assert_eq!(
            parse(json!({"kty":"oct"})).unwrap_err(),
            JwkError::UnsupportedKeyType("oct".into())
        );
    }

    #[test]
    fn repeated_members_are_refused() {
        let ec = ec();
        let text = ec.jwk.to_string();
        let doubled = text.replacen('{', r#"{"kty":"RSA","#, 1);
        assert!(matches!(
            PublicJwk::parse(doubled.as_bytes()),
            Err(JwkError::Json(_))
        ));
        let escaped = text.replacen('{', r#"{"\u0078":"AAAA","#, 1);
        assert!(matches!(
            PublicJwk::parse(escaped.as_bytes()),
            Err(JwkError::Json(_))
        ));
        assert!(matches!(
            PublicJwks::parse(format!(r#"{{"keys":[{text}],"keys":[]}}"#).as_bytes()),
            Err(JwkError::Json(_))
        ));
    }

    #[test]
    fn rsa_sizes_are_bounded_before_any_crypto() {
        let n_of = |bytes: usize| {
            let mut n = vec![0xc5; bytes];
            n[bytes - 1] = 0x01;
            jose::b64(&n)
        };
        assert!(parse(json!({"kty":"RSA","n":n_of(256),"e":"AQAB"})).is_ok());
        for bytes in [128, 255, 1025] {
            let err = parse(json!({"kty":"RSA","n":n_of(bytes),"e":"AQAB"})).unwrap_err();
            assert_eq!(err, JwkError::RsaModulus, "{bytes} bytes");
        }
        // A 1 MiB modulus is refused on its length: the document limit, or the modulus's.
        let huge = "A".repeat(60 * 1024);
        assert_eq!(
            parse(json!({"kty":"RSA","n":huge,"e":"AQAB"})).unwrap_err(),
            JwkError::RsaModulus
        );
        let too_big = "A".repeat(1024 * 1024);
        assert_eq!(
            parse(json!({"kty":"RSA","n":too_big,"e":"AQAB"})).unwrap_err(),
            JwkError::TooLarge
        );
        // Leading zero octet, even modulus.
        let mut n = vec![0xc5; 257];
        n[0] = 0;
        assert_eq!(
            parse(json!({"kty":"RSA","n":jose::b64(&n),"e":"AQAB"})).unwrap_err(),
            JwkError::RsaModulus
        );
        assert_eq!(
            parse(json!({"kty":"RSA","n":jose::b64(&[0xc4; 256]),"e":"AQAB"})).unwrap_err(),
            JwkError::RsaModulus
        );
    }

    #[test]
    fn rsa_exponents_must_be_small_odd_and_minimal() {
        let jwk = |e: &[u8]| json!({"kty":"RSA","n":RFC7638_N,"e":jose::b64(e)});
        assert!(parse(jwk(&[3])).is_ok());
        assert!(parse(jwk(&[0xff, 0xff, 0xff, 0xff])).is_ok());
        for e in [
            &[1u8][..],
            &[2],
            &[0x01, 0x00, 0x00],
            &[0x00, 0x01, 0x00, 0x01],
            &[0x01, 0x00, 0x00, 0x00, 0x01],
            &[],
        ] {
            assert_eq!(parse(jwk(e)).unwrap_err(), JwkError::RsaExponent, "{e:?}");
        }
        let long = "A".repeat(60_000);
        assert_eq!(
            parse(json!({"kty":"RSA","n":RFC7638_N,"e":long})).unwrap_err(),
            JwkError::RsaExponent
        );
    }

    #[test]
    fn ec_keys_must_be_p256_points_on_the_curve() {
        let good = ec().jwk;
        assert!(parse(good.clone()).is_ok());
        assert_eq!(
            parse(with(good.clone(), "crv", json!("P-384"))).unwrap_err(),
            JwkError::UnsupportedCurve("P-384".into())
        );
        // Flip one bit of y: (x, y') is not on the curve.
        let mut y = URL_SAFE_NO_PAD.decode(good["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        assert_eq!(
            parse(with(good.clone(), "y", json!(jose::b64(&y)))).unwrap_err(),
            JwkError::NotOnCurve
        );
        let one = {
            let mut b = [0u8; 32];
            b[31] = 1;
            jose::b64(&b)
        };
        assert_eq!(
            parse(json!({"kty":"EC","crv":"P-256","x":one,"y":one})).unwrap_err(),
            JwkError::NotOnCurve
        );
        let beyond_p = jose::b64(&[0xff; 32]);
        assert_eq!(
            parse(with(good.clone(), "x", json!(beyond_p))).unwrap_err(),
            JwkError::NotOnCurve
        );
        assert_eq!(
            parse(with(good.clone(), "x", json!(jose::b64(&[7; 31])))).unwrap_err(),
            JwkError::Length("x")
        );
        assert_eq!(
            parse(with(good.clone(), "y", json!(jose::b64(&[7; 33])))).unwrap_err(),
            JwkError::Length("y")
        );
        assert_eq!(
            parse(with(good.clone(), "x", json!(5))).unwrap_err(),
            JwkError::NotAString("x")
        );
        assert_eq!(
            parse(with(good, "x", json!("AA=="))).unwrap_err(),
            JwkError::NotBase64Url("x")
        );
    }

    #[test]
    fn okp_keys_must_be_ed25519() {
        let good = ed25519().jwk;
        assert!(parse(good.clone()).is_ok());
        for crv in ["X25519", "Ed448", "ed25519"] {
            assert_eq!(
                parse(with(good.clone(), "crv", json!(crv))).unwrap_err(),
                JwkError::UnsupportedCurve(crv.into())
            );
        }
        assert_eq!(
            parse(with(good, "x", json!(jose::b64(&[1; 31])))).unwrap_err(),
            JwkError::Length("x")
        );
    }

    #[test]
    fn alg_use_key_ops_and_kid_are_checked() {
        let key = ec().jwk;
        assert!(parse(with(key.clone(), "alg", json!("ES256"))).is_ok());
        for alg in ["RS256", "EdDSA"] {
            assert!(matches!(
                parse(with(key.clone(), "alg", json!(alg))).unwrap_err(),
                JwkError::AlgorithmMismatch { kty: "EC", .. }
            ));
        }
        for alg in ["none", "HS256", "ES384", "es256", "RS512"] {
            assert_eq!(
                parse(with(key.clone(), "alg", json!(alg))).unwrap_err(),
                JwkError::UnsupportedAlgorithm(alg.into())
            );
        }
        assert!(parse(with(key.clone(), "use", json!("sig"))).is_ok());
        assert_eq!(
            parse(with(key.clone(), "use", json!("enc"))).unwrap_err(),
            JwkError::Use
        );
        assert!(parse(with(key.clone(), "key_ops", json!(["verify"]))).is_ok());
        for ops in [
            json!(["sign"]),
            json!(["verify", "sign"]),
            json!("verify"),
            json!([]),
        ] {
            assert_eq!(
                parse(with(key.clone(), "key_ops", ops)).unwrap_err(),
                JwkError::KeyOps
            );
        }
        for kid in [json!(""), json!("a b"), json!("x".repeat(129)), json!(7)] {
            assert!(parse(with(key.clone(), "kid", kid)).is_err());
        }
        assert_eq!(
            parse(json!({"n":"x"})).unwrap_err(),
            JwkError::Missing("kty")
        );
    }

    #[test]
    fn for_algorithm_builds_only_the_one_verifier_the_header_names() {
        let key = rsa();
        let obj = key.jwk.as_object().unwrap().clone();
        let ps = PublicJwk::for_algorithm(&obj, PS256).unwrap();
        assert!(ps.allows(PS256) && !ps.allows(RS256));
        let pinned = with(key.jwk.clone(), "alg", json!("RS256"));
        assert!(PublicJwk::for_algorithm(pinned.as_object().unwrap(), PS256).is_err());
        assert!(PublicJwk::for_algorithm(&obj, ES256).is_err());
    }

    #[test]
    fn stored_form_carries_public_members_and_kid_only() {
        let key = with(
            with(ec().jwk, "x5u", json!("https://evil/")),
            "use",
            json!("sig"),
        );
        let parsed = parse(key).unwrap();
        let stored = parsed.to_json();
        let mut names: Vec<&str> = stored
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["crv", "kid", "kty", "use", "x", "y"]);
        let again = PublicJwk::parse(stored.to_string().as_bytes()).unwrap();
        assert_eq!(again.kid(), parsed.kid());
        assert_eq!(again.thumbprint(), parsed.thumbprint());
    }

    #[test]
    fn a_key_set_is_one_to_ten_keys_with_unique_kids() {
        let (a, b) = (ec().jwk, ed25519().jwk);
        let set = PublicJwks::parse(
            json!({"keys":[a.clone(), b.clone()]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(set.keys().len(), 2);
        let kid_b = set.keys()[1].kid().to_owned();
        assert!(set.get(&kid_b).is_some());
        assert_eq!(set.candidates(None, EdDSA).count(), 1);
        assert_eq!(set.candidates(Some(&kid_b), ES256).count(), 0);
        assert_eq!(set.candidates(Some("nope"), EdDSA).count(), 0);
        let again = PublicJwks::parse(set.to_json().to_string().as_bytes()).unwrap();
        assert_eq!(again.keys()[1].kid(), kid_b);

        let single = PublicJwks::parse(a.to_string().as_bytes()).unwrap();
        assert_eq!(single.keys().len(), 1);

        let parse_set = |v: Value| PublicJwks::parse(v.to_string().as_bytes());
        assert_eq!(
            parse_set(json!({"keys":[]})).unwrap_err(),
            JwkError::KeyCount(0)
        );
        let eleven: Vec<Value> = (0..11).map(|_| ec().jwk).collect();
        assert_eq!(
            parse_set(json!({"keys":eleven})).unwrap_err(),
            JwkError::KeyCount(11)
        );
        assert_eq!(
            parse_set(json!({"keys":[a.clone(), a.clone()]})).unwrap_err(),
            JwkError::DuplicateKid(single.keys()[0].kid().into())
        );
        assert_eq!(
            parse_set(json!({"keys":a.clone()})).unwrap_err(),
            JwkError::KeysNotArray
        );
        let err =
            parse_set(json!({"keys":[b.clone(), with(a.clone(), "d", json!("x"))]})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "keys[1]: ".to_owned() + &JwkError::PrivateMember("d").to_string()
        );
        assert_eq!(
            parse_set(json!({"keys":[1]})).unwrap_err(),
            JwkError::InKey {
                index: 0,
                error: Box::new(JwkError::NotAnObject)
            }
        );
        assert!(matches!(PublicJwks::parse(b"[]"), Err(JwkError::Json(_))));
    }
}
