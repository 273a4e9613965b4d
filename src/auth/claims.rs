//! Strict parsing of a JWT's header and claims.
//!
//! serde_json keeps the last of two equal keys, so a token carrying `org_code` twice could mean
//! one tenant to us and another to a different parser. These visitors see every key, escapes
//! decoded, and reject any that repeats (RFC 8725 §3.2: reject what is ambiguous).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The header fields the verifier acts on.
#[derive(Debug, Default)]
pub struct JoseHeader {
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// `crit` present at all: we understand no extension, so any is refused (RFC 7515 §4.1.11).
    pub has_crit: bool,
}

/// The claims the resource API acts on; `iss`, `aud`, `exp` and `nbf` are checked by
/// jsonwebtoken's validation, which this type is deserialized alongside.
#[derive(Debug, Default)]
pub struct TokenClaims {
    pub org_code: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub azp: Option<String>,
    pub scope: Option<String>,
    pub scp: Option<Vec<String>>,
    /// `cnf.jkt` (RFC 9449 §6.1): the token is bound to the DPoP key with this thumbprint.
    pub jkt: Option<String>,
    /// NumericDates, kept so that a cached verification can re-check time.
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    /// Issued-at, compared with revocation cutoffs.
    pub iat: Option<f64>,
    pub jti: Option<String>,
}

/// What a verified token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `None` for a global (not org-scoped) M2M token.
    pub org_code: Option<String>,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Set for a DPoP-bound token: the thumbprint of the key every request must prove.
    pub jkt: Option<String>,
    /// `iat`, whole seconds; what revocations by time compare with.
    pub iat: Option<i64>,
    /// `jti`, what single-token revocations name.
    pub jti: Option<String>,
}

impl TokenClaims {
    /// Applies the contract's precedence: client id from `client_id`, else `sub`, else `azp`
    /// (Kinde M2M tokens carry `azp` only); scopes from `scope`, else `scp`.
    pub fn into_verified(self) -> Option<VerifiedToken> {
        let client_id = [self.client_id, self.sub, self.azp]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())?;
        let scopes = match (self.scope, self.scp) {
            (Some(scope), _) => split_scopes(&scope),
            (None, Some(scp)) => scp,
            (None, None) => Vec::new(),
        };
        Some(VerifiedToken {
            org_code: self.org_code.filter(|o| !o.is_empty()),
            client_id,
            scopes,
            jkt: self.jkt,
            iat: self.iat.map(|t| t.floor() as i64),
            jti: self.jti,
        })
    }
}

pub fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Records keys seen so far and fails on a repeat.
pub(crate) struct SeenKeys(pub(crate) Vec<String>);

impl SeenKeys {
    pub(crate) fn insert<E: de::Error>(&mut self, key: &str) -> Result<(), E> {
        if self.0.iter().any(|k| k == key) {
            return Err(E::custom(format_args!("duplicate member `{key}`")));
        }
        self.0.push(key.to_owned());
        Ok(())
    }
}

/// A string, or `null` read as absent.
fn nullable_string<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    map.next_value::<Option<String>>()
}

/// `cnf` (RFC 7800): only `jkt` is understood. A binding we cannot check (an mTLS `x5t#S256`,
/// a `jwk`) makes the token invalid rather than a bearer token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    jkt: Option<String>,
}

/// `scp` is a space-separated string (the tutorial) or an array of strings (real Kinde).
#[derive(Deserialize)]
#[serde(untagged)]
enum ScpValue {
    Text(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for JoseHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JoseHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JoseHeader, A::Error> {
                let mut seen = SeenKeys(Vec::with_capacity(4));
                let mut h = JoseHeader::default();
                while let Some(key) = map.next_key::<String>()? {
                    seen.insert(&key)?;
                    match key.as_str() {
                        "alg" => h.alg = Some(map.next_value()?),
                        "kid" => h.kid = Some(map.next_value()?),
                        "typ" => h.typ = nullable_string(&mut map)?,
                        "crit" => {
                            map.next_value::<IgnoredAny>()?;
                            h.has_crit = true;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for TokenClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TokenClaims;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JWT claims object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TokenClaims, A::Error> {
                let mut seen = SeenKeys(Vec::with_capacity(16));
                let mut c = TokenClaims::default();
                let mut has_exp = false;
                while let Some(key) = map.next_key::<String>()? {
                    seen.insert(&key)?;
                    match key.as_str() {
                        "org_code" => c.org_code = nullable_string(&mut map)?,
                        "client_id" => c.client_id = nullable_string(&mut map)?,
                        "sub" => c.sub = nullable_string(&mut map)?,
                        "azp" => c.azp = nullable_string(&mut map)?,
                        // Only read, never required: another issuer's jti may be any JSON.
                        "jti" => {
                            c.jti = match map.next_value::<serde_json::Value>()? {
                                serde_json::Value::String(s) => Some(s),
                                _ => None,
                            }
                        }
                        "scope" => c.scope = nullable_string(&mut map)?,
                        "scp" => {
                            c.scp = map.next_value::<Option<ScpValue>>()?.map(|v| match v {
                                ScpValue::Text(s) => split_scopes(&s),
                                ScpValue::List(l) => l,
                            })
                        }
                        "cnf" => {
                            c.jkt = map
                                .next_value::<Option<Confirmation>>()?
                                .and_then(|cnf| cnf.jkt)
                        }
                        "iss" => {
                            // RFC 7519 §4.1.1: one StringOrURI. jsonwebtoken would also take
                            // an array holding the issuer; the contract wants `iss` exact.
                            map.next_value::<String>()
                                .map_err(|_| de::Error::custom("`iss` must be a string"))?;
                        }
                        "exp" | "nbf" | "iat" => {
                            // A NumericDate must be a JSON number; jsonwebtoken ≥ 10.3 also
                            // refuses strings, and we do not rely on that alone.
                            let n = map.next_value::<serde_json::Number>().map_err(|_| {
                                de::Error::custom(format_args!("`{key}` must be a number"))
                            })?;
                            match key.as_str() {
                                "exp" => {
                                    has_exp = true;
                                    c.exp = n.as_f64();
                                }
                                "nbf" => c.nbf = n.as_f64(),
                                _ => c.iat = n.as_f64(),
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if !has_exp {
                    return Err(de::Error::missing_field("exp"));
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Result<TokenClaims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn duplicated_claims_are_rejected_even_when_escaped() {
        assert!(claims(r#"{"exp":1,"org_code":"a","org_code":"b"}"#).is_err());
        assert!(claims(r#"{"exp":1,"org_code":"a","org\u005fcode":"b"}"#).is_err());
        assert!(claims(r#"{"exp":1,"x":1,"x":2}"#).is_err());
        let h: Result<JoseHeader, _> = serde_json::from_str(r#"{"alg":"RS256","alg":"none"}"#);
        assert!(h.is_err());
    }

    #[test]
    fn iss_must_be_a_single_string() {
        assert!(claims(r#"{"exp":1,"iss":"https://a"}"#).is_ok());
        assert!(claims(r#"{"exp":1,"iss":["https://a"]}"#).is_err());
        assert!(claims(r#"{"exp":1,"iss":null}"#).is_err());
    }

    #[test]
    fn exp_must_be_a_present_number() {
        assert!(claims(r#"{"exp":"9999999999"}"#).is_err());
        assert!(claims(r#"{"sub":"x"}"#).is_err());
        assert!(claims(r#"{"exp":1.5}"#).is_ok());
    }

    #[test]
    fn tutorial_shape_uses_sub_and_scp_string() {
        let v =
            claims(r#"{"exp":1,"sub":"app1","scp":"read:data write:data","org_code":"org_acme"}"#)
                .unwrap()
                .into_verified()
                .unwrap();
        assert_eq!(v.client_id, "app1");
        assert_eq!(v.scopes, ["read:data", "write:data"]);
        assert_eq!(v.org_code.as_deref(), Some("org_acme"));
    }

    #[test]
    fn kinde_shape_uses_azp_and_prefers_scope_over_scp_array() {
        let v =
            claims(r#"{"exp":1,"azp":"m2m1","scp":["read:data"],"scope":"read:data read:users"}"#)
                .unwrap()
                .into_verified()
                .unwrap();
        assert_eq!(v.client_id, "m2m1");
        assert_eq!(v.scopes, ["read:data", "read:users"]);
        assert_eq!(v.org_code, None);
        let v = claims(r#"{"exp":1,"azp":"m2m1","scp":["read:data","write:data"]}"#)
            .unwrap()
            .into_verified()
            .unwrap();
        assert_eq!(v.scopes, ["read:data", "write:data"]);
    }

    #[test]
    fn client_id_precedence_and_absence() {
        let v = claims(r#"{"exp":1,"client_id":"c","sub":"s","azp":"a"}"#).unwrap();
        assert_eq!(v.into_verified().unwrap().client_id, "c");
        assert!(claims(r#"{"exp":1}"#).unwrap().into_verified().is_none());
        assert!(
            claims(r#"{"exp":1,"org_code":""}"#)
                .unwrap()
                .into_verified()
                .is_none()
        );
    }

    #[test]
    fn empty_org_code_is_no_org() {
        let v = claims(r#"{"exp":1,"sub":"s","org_code":""}"#)
            .unwrap()
            .into_verified()
            .unwrap();
        assert_eq!(v.org_code, None);
        assert!(claims(r#"{"exp":1,"sub":"s","org_code":42}"#).is_err());
    }
}
