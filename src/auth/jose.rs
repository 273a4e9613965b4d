//! Reading compact JWS made by clients (assertions, DPoP proofs) before trusting any of it.
//!
//! Every JSON object is read with the claims parser's duplicate-member check, at every depth,
//! so a `jwk` or an `aud` cannot mean one thing here and another to a different parser.
//! Base64url must be canonical (no padding, no stray bits): one proof has one encoding.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::claims::SeenKeys;

/// A JSON value in which no object, however deep, names a member twice.
pub struct StrictJson(pub Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::Null))
            }
            fn visit_none<E>(self) -> Result<StrictJson, E> {
                Ok(StrictJson(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictJson, D::Error> {
                StrictJson::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
                let mut items = Vec::new();
                while let Some(StrictJson(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(StrictJson(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
                let mut seen = SeenKeys(Vec::with_capacity(8));
                let mut object = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    seen.insert::<A::Error>(&key)?;
                    let StrictJson(v) = map.next_value()?;
                    object.insert(key, v);
                }
                Ok(StrictJson(Value::Object(object)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a JSON object, refusing a member named twice at any depth.
pub fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<StrictJson>(bytes) {
        Ok(StrictJson(Value::Object(o))) => Ok(o),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a compact JWS could not be read (before any key is involved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    TooLong,
    /// Not three base64url segments.
    Malformed,
    /// Header or payload is not a strict JSON object.
    BadJson,
}

/// A compact JWS split and decoded, its signature not yet checked.
pub struct CompactJws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Refuses anything longer than `max_len` before decoding a byte of it.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        if token.len() > max_len {
            return Err(JwsError::TooLong);
        }
        let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let (header_b64, claims_b64) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
        if claims_b64.contains('.') {
            return Err(JwsError::Malformed);
        }
        let header = decode_object(header_b64)?;
        let claims = decode_object(claims_b64)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwsError::Malformed)?;
        if signature.is_empty() {
            return Err(JwsError::Malformed);
        }
        Ok(Self {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// The bytes the signature covers: `base64url(header) "." base64url(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Reads the payload alone, trusting nothing (no signature, no header): for finding out who
/// claims to have sent a token before looking up their keys.
pub fn peek_claims(token: &str, max_len: usize) -> Option<Map<String, Value>> {
    if token.len() > max_len {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    decode_object(claims).ok()
}

fn decode_object(b64: &str) -> Result<Map<String, Value>, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| JwsError::Malformed)?;
    strict_object(&bytes).map_err(|_| JwsError::BadJson)
}

/// A member that, when present, must be a string. `Err` names the member.
pub fn opt_str<'m>(
    map: &'m Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'m str>, &'static str> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(name),
    }
}

/// A NumericDate member (RFC 7519 §2: a JSON number, possibly fractional), when present.
pub fn opt_numeric_date(
    map: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, &'static str> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()).map(Some).ok_or(name),
        Some(_) => Err(name),
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(bytes)).
pub fn sha256_b64(bytes: &[u8]) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(header: &str, claims: &str) -> String {
        format!("{}.{}.c2ln", b64(header.as_bytes()), b64(claims.as_bytes()))
    }

    #[test]
    fn duplicates_are_refused_at_every_depth_even_when_escaped() {
        assert!(strict_object(br#"{"a":1,"a":2}"#).is_err());
        assert!(strict_object(br#"{"jwk":{"x":"1","x":"2"}}"#).is_err());
        assert!(strict_object(br#"{"jwk":{"kty":"EC","k\u0074y":"RSA"}}"#).is_err());
        assert!(strict_object(br#"{"aud":[{"a":1,"a":1}]}"#).is_err());
        let ok = strict_object(br#"{"a":{"b":[1,2.5,"c",null,true]},"b":{"b":1}}"#).unwrap();
        assert_eq!(ok["a"]["b"][1], 2.5);
        assert!(strict_object(b"[1]").is_err());
        assert!(strict_object(b"{} x").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(strict_object(deep.as_bytes()).is_err());
    }

    #[test]
    fn a_compact_jws_has_exactly_three_canonical_segments() {
        let t = jws(r#"{"alg":"ES256"}"#, r#"{"iss":"a"}"#);
        let parsed = CompactJws::parse(&t, 8192).unwrap();
        assert_eq!(parsed.header["alg"], "ES256");
        assert_eq!(parsed.signature(), b"sig");
        assert_eq!(
            parsed.signing_input(),
            t.rsplit_once('.').unwrap().0.as_bytes()
        );

        assert_eq!(CompactJws::parse(&t, 10).err(), Some(JwsError::TooLong));
        for bad in [
            format!("{t}.x"),
            t.replacen('.', "", 1),
            format!("{t}="),
            format!("{}.", t.rsplit_once('.').unwrap().0),
            // "si" with non-zero trailing bits: not the canonical encoding ("c2k").
            format!("{}.c2l", t.rsplit_once('.').unwrap().0),
        ] {
            assert!(CompactJws::parse(&bad, 8192).is_err(), "{bad}");
        }
        let dup = jws(r#"{"alg":"ES256","alg":"none"}"#, "{}");
        assert_eq!(CompactJws::parse(&dup, 8192).err(), Some(JwsError::BadJson));
    }

    #[test]
    fn peeking_reads_the_payload_only() {
        let t = jws("not json", r#"{"iss":"client-1"}"#);
        assert_eq!(peek_claims(&t, 8192).unwrap()["iss"], "client-1");
        assert!(peek_claims(&t, 8).is_none());
        assert!(peek_claims("a.b", 8192).is_none());
    }

    #[test]
    fn member_type_helpers_name_the_member() {
        let m = strict_object(br#"{"s":"x","n":5,"f":1.5,"b":true}"#).unwrap();
        assert_eq!(opt_str(&m, "s"), Ok(Some("x")));
        assert_eq!(opt_str(&m, "none"), Ok(None));
        assert_eq!(opt_str(&m, "n"), Err("n"));
        assert_eq!(opt_numeric_date(&m, "n"), Ok(Some(5.0)));
        assert_eq!(opt_numeric_date(&m, "f"), Ok(Some(1.5)));
        assert_eq!(opt_numeric_date(&m, "s"), Err("s"));
        assert_eq!(opt_numeric_date(&m, "b"), Err("b"));
    }
}
