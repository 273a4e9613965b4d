//! Inputs parsed into types that cannot hold a bad value ("parse, don't validate").

use std::fmt;

/// An organization code: 1–100 of `A-Z a-z 0-9 _ - .`, as Kinde's `org_1a2b3c` and Auth0's
/// `org_AbC123` are. The narrow alphabet also keeps it safe inside a SQL literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct OrgCode(String);

impl OrgCode {
    pub const MAX_LEN: usize = 100;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(format!(
                "org code must be 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err("org code may contain only letters, digits, '_', '-' and '.'".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record's name: 1–200 characters (Unicode scalar values, not bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordName(String);

impl RecordName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(s: String) -> Result<Self, String> {
        let n = s.chars().count();
        if n == 0 || s.trim().is_empty() {
            return Err("'name' must not be empty".into());
        }
        if n > Self::MAX_CHARS {
            return Err(format!(
                "'name' must be at most {} characters, got {n}",
                Self::MAX_CHARS
            ));
        }
        if s.contains('\0') {
            return Err("'name' must not contain NUL characters".into());
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_codes() {
        assert!(OrgCode::parse("org_acme").is_ok());
        assert!(OrgCode::parse("org_1a2B3c-x.y").is_ok());
        for bad in [
            "",
            "org acme",
            "org'acme",
            "org;drop",
            "ørg",
            &"a".repeat(101),
        ] {
            assert!(OrgCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_names() {
        assert!(RecordName::parse("Acme Record A".into()).is_ok());
        assert!(RecordName::parse("é".repeat(200)).is_ok());
        assert!(RecordName::parse("é".repeat(201)).is_err());
        assert!(RecordName::parse(String::new()).is_err());
        assert!(RecordName::parse("   ".into()).is_err());
        assert!(RecordName::parse("a\0b".into()).is_err());
    }
}
