//! Inputs parsed into types that cannot hold a bad value ("parse, don't validate"). Each rule
//! lives here once; the command line (clap value parsers, through `FromStr`), the admin API
//! (serde, through `TryFrom<String>`) and the catalogue all use these types. (An API's token
//! lifetime is the catalogue's own: `issuer::catalogue::TokenLifetime`.)

use std::fmt;
use std::str::FromStr;

/// Implements `FromStr`, `TryFrom<String>`, `Display`, `as_str` and serde for a string newtype
/// whose `parse(&str) -> Result<Self, String>` holds the rule.
macro_rules! string_type {
    ($ty:ident) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An organization code: 1–100 of `A-Z a-z 0-9 _ - .`, as Kinde's `org_1a2b3c` and Auth0's
/// `org_AbC123` are. The narrow alphabet also keeps it safe inside a SQL literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
}

string_type!(OrgCode);

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

/// The rule every catalogue name follows (an API's, an organization's, an app's, a user's):
/// 1–200 characters, not blank.
const NAME_MAX_CHARS: usize = 200;

fn parse_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.chars().count() > NAME_MAX_CHARS || s.contains('\0') {
        return Err(format!("name must be 1 to {NAME_MAX_CHARS} characters"));
    }
    Ok(s.to_owned())
}

macro_rules! name_type {
    ($($(#[$doc:meta])* $ty:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Eq)]
            pub struct $ty(String);

            impl $ty {
                pub fn parse(s: &str) -> Result<Self, String> {
                    parse_name(s).map(Self)
                }
            }

            string_type!($ty);
        )*
    };
}

name_type! {
    /// An API's display name.
    ApiName,
    /// An organization's display name.
    OrgName,
    /// An M2M application's name.
    AppName,
    /// An organization user's name.
    UserName,
}

/// An API's audience, matched exactly (case-sensitive): 1–2048 bytes, no whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience(String);

impl Audience {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || s.chars().any(|c| c.is_whitespace() || c == '\0')
        {
            return Err(format!(
                "audience must be 1 to {} characters without spaces",
                Self::MAX_LEN
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

string_type!(Audience);

/// A scope name as RFC 6749 §3.3 defines a scope-token (at most 128 bytes here).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScopeName(String);

impl ScopeName {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "scope '{}' must be 1 to {} printable ASCII characters without spaces, quotes or backslashes",
                s.chars().take(40).collect::<String>(),
                Self::MAX_LEN
            ))
        }
    }
}

string_type!(ScopeName);

/// A scope with its description, written `NAME[=DESCRIPTION]` on the command line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeDef {
    pub name: ScopeName,
    #[serde(default)]
    pub description: String,
}

impl FromStr for ScopeDef {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let (name, description) = arg.split_once('=').unwrap_or((arg, ""));
        Ok(Self {
            name: ScopeName::parse(name.trim())?,
            description: description.trim().to_owned(),
        })
    }
}

/// An e-mail address, loosely: 3 characters or more and at most 320 bytes around an `@`, no
/// whitespace; surrounding spaces are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.chars().count() < 3
            || s.len() > 320
            || !s.contains('@')
            || s.chars().any(|c| c.is_whitespace() || c == '\0')
        {
            return Err("email must look like name@example.com".into());
        }
        Ok(Self(s.to_owned()))
    }
}

string_type!(Email);

/// The OpenAPI schema of a string type: the same rule as its `parse`, as far as JSON Schema can
/// say it (the document at `/openapi.json` is built from these).
macro_rules! string_schema {
    ($ty:ident, $description:expr, $min:expr, $max:expr, $pattern:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .pattern($pattern)
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {}
    };
}

string_schema!(
    OrgCode,
    "An organization code: letters, digits, '_', '-' and '.'",
    1,
    OrgCode::MAX_LEN,
    Some("^[A-Za-z0-9_.-]+$")
);
string_schema!(
    ApiName,
    "An API's display name, not blank",
    1,
    NAME_MAX_CHARS,
    Some("\\S")
);
string_schema!(
    OrgName,
    "An organization's display name, not blank",
    1,
    NAME_MAX_CHARS,
    Some("\\S")
);
string_schema!(
    AppName,
    "An M2M application's name, not blank",
    1,
    NAME_MAX_CHARS,
    Some("\\S")
);
string_schema!(
    UserName,
    "A user's name, not blank",
    1,
    NAME_MAX_CHARS,
    Some("\\S")
);
string_schema!(
    Audience,
    "An API's audience, matched exactly (case-sensitive); at most 2048 bytes, no whitespace",
    1,
    Audience::MAX_LEN,
    Some("^\\S+$")
);
string_schema!(
    ScopeName,
    "A scope (RFC 6749 section 3.3 scope-token)",
    1,
    ScopeName::MAX_LEN,
    Some("^[!#-\\[\\]-~]+$")
);
string_schema!(
    Email,
    "An e-mail address (loosely checked: something around an '@', no whitespace)",
    3,
    320,
    Some("^\\s*\\S*@\\S*\\s*$")
);

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

    #[test]
    fn catalogue_names_are_1_to_200_characters_and_not_blank() {
        assert!(AppName::parse("Acme Corp API Client").is_ok());
        assert!(ApiName::parse(&"é".repeat(200)).is_ok());
        assert!(OrgName::parse(&"é".repeat(201)).is_err());
        assert!(UserName::parse("  ").is_err());
        assert!(AppName::parse("").is_err());
    }

    #[test]
    fn audiences_are_exact_strings_without_spaces() {
        assert_eq!(
            Audience::parse("https://api.yourapp.com").unwrap().as_str(),
            "https://api.yourapp.com"
        );
        for bad in ["", "a b", "a\tb", &"a".repeat(2049)] {
            assert!(Audience::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_names_are_rfc_6749_scope_tokens() {
        assert!(ScopeName::parse("read:data").is_ok());
        assert!(ScopeName::parse("!#[]~").is_ok());
        for bad in ["", "a b", "a\"b", "a\\b", "é", &"a".repeat(129)] {
            assert!(ScopeName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_definitions_read_name_equals_description() {
        let def: ScopeDef = "read:data = Read records".parse().unwrap();
        assert_eq!(def.name.as_str(), "read:data");
        assert_eq!(def.description, "Read records");
        let bare: ScopeDef = "write:data".parse().unwrap();
        assert_eq!(bare.description, "");
        assert!("bad scope=x".parse::<ScopeDef>().is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" ada@acme.test ").unwrap().as_str(),
            "ada@acme.test"
        );
        // Three characters, not three bytes: what the table's check counts.
        for bad in ["", "ab", "no-at-sign", "a b@c.d", "@\u{1F600}"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_values_deserialize_through_their_rules() {
        assert!(serde_json::from_str::<Audience>(r#""https://a""#).is_ok());
        assert!(serde_json::from_str::<Audience>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<OrgCode>(r#""org;drop""#).is_err());
    }
}
