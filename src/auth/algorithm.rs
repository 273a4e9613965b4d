use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;

/// An asymmetric JWS algorithm that configuration may allow. `none` and the HMAC family cannot
/// be named here, so no configuration can make the verifier accept them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl SigningAlgorithm {
    pub const fn jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The JWK `kty` a key for this algorithm must have.
    pub const fn key_type(self) -> &'static str {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                "RSA"
            }
            Self::ES256 | Self::ES384 => "EC",
            Self::EdDSA => "OKP",
        }
    }

    /// Every algorithm, in the order above.
    pub const ALL: [Self; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// Exact, case-sensitive match of a JOSE `alg` value (RFC 7515 §4.1.1).
    pub fn from_jose(alg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == alg)
    }

    /// [`Self::from_jose`] with an error that names the choices: the command line's value
    /// parser and the serde form (JSON names an algorithm exactly as JOSE does).
    pub fn parse_jose(alg: &str) -> Result<Self, String> {
        Self::from_jose(alg).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
            format!(
                "`{}` is not a JOSE algorithm name ({})",
                alg.chars().take(40).collect::<String>(),
                names.join(", ")
            )
        })
    }
}

impl serde::Serialize for SigningAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for SigningAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_jose(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;

    /// Configuration is forgiving about case (`rs256`); tokens are not (see [`Self::from_jose`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("`{s}` is not an allowed algorithm (asymmetric only: RS256, PS256, ES256, EdDSA, ...)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_none_cannot_be_configured() {
        for bad in ["none", "HS256", "HS512", "", "RSA"] {
            assert!(bad.parse::<SigningAlgorithm>().is_err(), "{bad}");
        }
        assert_eq!(
            "rs256".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::RS256
        );
        assert_eq!(
            "EdDSA".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::EdDSA
        );
    }

    #[test]
    fn json_names_an_algorithm_exactly() {
        let alg: SigningAlgorithm = serde_json::from_str(r#""ES256""#).unwrap();
        assert_eq!(alg, SigningAlgorithm::ES256);
        assert_eq!(serde_json::to_string(&alg).unwrap(), r#""ES256""#);
        assert!(serde_json::from_str::<SigningAlgorithm>(r#""es256""#).is_err());
        assert!(serde_json::from_str::<SigningAlgorithm>(r#""HS256""#).is_err());
        assert!(SigningAlgorithm::parse_jose("none").is_err());
    }

    #[test]
    fn token_alg_is_case_sensitive() {
        assert_eq!(
            SigningAlgorithm::from_jose("RS256"),
            Some(SigningAlgorithm::RS256)
        );
        assert_eq!(SigningAlgorithm::from_jose("rs256"), None);
        assert_eq!(SigningAlgorithm::from_jose("none"), None);
    }
}
