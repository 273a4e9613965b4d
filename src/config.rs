//! Typed settings, layered as shared/CONTRACT.md §2 says: built-in defaults < `orgwall.toml`
//! (or `ORGWALL_CONFIG`) < `.env` < the process environment.
//!
//! Every value is read as a string and parsed here, so that a bad value stops start-up with
//! one line that names the variable (`PORT: invalid digit found in string`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::auth::SigningAlgorithm;

/// Everything the service needs to start; built once and handed to [`crate::startup`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: SecretString,
    /// `migrate` creates this login role for the service when set (with its password).
    pub runtime_role: Option<(String, SecretString)>,
    pub host: String,
    pub port: u16,
    /// The built-in issuer's URL: the `iss` it writes and the base of its endpoints.
    pub public_url: String,
    pub issuer_enabled: bool,
    pub auth: AuthSettings,
    pub tls: Option<TlsSettings>,
    pub admin_token: Option<SecretString>,
    pub db: DbSettings,
    /// Actix worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    pub shutdown_grace: Duration,
    pub issuer: IssuerSettings,
}

/// What the resource API trusts.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// The exact `iss` accepted.
    pub issuer: String,
    /// The audience required in `aud`.
    pub audience: String,
    pub jwks_url: Url,
    pub algorithms: Vec<SigningAlgorithm>,
    /// How long fetched keys are trusted before a background refresh.
    pub jwks_ttl: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    pub jwks_cooldown: Duration,
    pub jwks_timeout: Duration,
    /// Take keys from the built-in issuer in-process instead of fetching its JWKS over HTTP.
    pub in_process_keys: bool,
    /// Extra CA certificates (PEM bundle) trusted for the JWKS fetch, beside the system roots.
    pub jwks_ca_file: Option<PathBuf>,
    /// Allow fetching keys over plain `http` from a non-loopback host.
    pub allow_insecure_http: bool,
}

#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug)]
pub struct DbSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` for every session.
    pub statement_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct IssuerSettings {
    /// Default access-token lifetime when an API sets none.
    pub token_lifetime: Duration,
    /// Failed client authentications allowed per (client id, address) in one window.
    pub max_failures_per_client: u32,
    /// Failed client authentications allowed per address in one window.
    pub max_failures_per_address: u32,
    pub failure_window: Duration,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            max_failures_per_client: 10,
            max_failures_per_address: 50,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// A configuration problem, already phrased as the one line `main` prints.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(var: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{var}: {why}"))
}

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/orgwall";

impl Settings {
    /// Loads the layers in contract order and parses every value.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("ORGWALL_CONFIG").ok();
        // `.env` never overrides the process environment: dotenvy only sets missing variables.
        match dotenvy::from_path(".env") {
            Ok(()) => {}
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError(format!(".env: {e}"))),
        }
        let mut builder = config::Config::builder();
        builder = match &file {
            Some(path) => builder.add_source(config::File::with_name(path).required(true)),
            None => builder.add_source(config::File::with_name("orgwall.toml").required(false)),
        };
        let layered = builder
            .add_source(config::Environment::default())
            .build()
            .map_err(|e| ConfigError(format!("ORGWALL_CONFIG: {e}")))?;
        let raw: HashMap<String, config::Value> = layered
            .try_deserialize()
            .map_err(|e| ConfigError(format!("configuration: {e}")))?;
        let values = raw
            .into_iter()
            .filter_map(|(k, v)| v.into_string().ok().map(|s| (k.to_lowercase(), s)))
            .collect();
        Self::from_map(&values)
    }

    /// Parses settings from lower-case variable names to raw strings; the unit tests and
    /// [`Settings::load`] share it.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(&name.to_lowercase())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let parsed = Url::parse(&database_url).map_err(|e| bad("DATABASE_URL", e))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad("DATABASE_URL", "must be a postgres:// URL"));
        }

        let runtime_role = match (
            get("DATABASE_RUNTIME_ROLE"),
            get("DATABASE_RUNTIME_PASSWORD"),
        ) {
            (Some(role), Some(password)) => {
                crate::roles::parse_role_name(&role).map_err(|e| ConfigError(e.to_string()))?;
                Some((role, SecretString::from(password)))
            }
            (Some(_), None) => {
                return Err(bad(
                    "DATABASE_RUNTIME_PASSWORD",
                    "must be set with DATABASE_RUNTIME_ROLE",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "DATABASE_RUNTIME_ROLE",
                    "must be set with DATABASE_RUNTIME_PASSWORD",
                ));
            }
            (None, None) => None,
        };

        let host = get("HOST").unwrap_or_else(|| "127.0.0.1".into());
        let port = match get("PORT") {
            Some(p) => p.parse::<u16>().map_err(|e| bad("PORT", e))?,
            None => 3000,
        };
        let scheme_default = if get("TLS_CERT_FILE").is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = match get("PUBLIC_URL") {
            Some(u) => parse_http_url("PUBLIC_URL", &u)?,
            None => format!("{scheme_default}://{}:{port}", url_host(&host)),
        };
        let public_url = public_url.trim_end_matches('/').to_string();
        let issuer_enabled = parse_bool("ISSUER_ENABLED", get("ISSUER_ENABLED"), true)?;

        let issuer = get("AUTH_ISSUER").unwrap_or_else(|| public_url.clone());
        Url::parse(&issuer).map_err(|e| bad("AUTH_ISSUER", e))?;
        let audience = get("AUTH_AUDIENCE").unwrap_or_else(|| "https://api.yourapp.com".into());
        let jwks_url = match get("AUTH_JWKS_URL") {
            Some(u) => Url::parse(&u).map_err(|e| bad("AUTH_JWKS_URL", e))?,
            None => Url::parse(&format!(
                "{}/.well-known/jwks.json",
                issuer.trim_end_matches('/')
            ))
            .map_err(|e| bad("AUTH_ISSUER", e))?,
        };
        if !matches!(jwks_url.scheme(), "http" | "https") {
            return Err(bad("AUTH_JWKS_URL", "must be an http(s) URL"));
        }
        let algorithms = match get("AUTH_ALGORITHMS") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|a| {
                    a.parse::<SigningAlgorithm>()
                        .map_err(|e| bad("AUTH_ALGORITHMS", e))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![SigningAlgorithm::RS256],
        };
        if algorithms.is_empty() {
            return Err(bad("AUTH_ALGORITHMS", "names no algorithm"));
        }
        let in_process_keys = parse_bool(
            "AUTH_IN_PROCESS_KEYS",
            get("AUTH_IN_PROCESS_KEYS"),
            issuer_enabled && issuer == public_url && get("AUTH_JWKS_URL").is_none(),
        )?;

        // Keys fetched over plain HTTP can be swapped by anyone on the path: only loopback, or
        // when explicitly permitted (and then `serve` warns).
        let allow_insecure_http = parse_bool(
            "AUTH_ALLOW_INSECURE_HTTP",
            get("AUTH_ALLOW_INSECURE_HTTP"),
            false,
        )?;
        if !in_process_keys
            && jwks_url.scheme() == "http"
            && !is_loopback(&jwks_url)
            && !allow_insecure_http
        {
            let var = if get("AUTH_JWKS_URL").is_some() {
                "AUTH_JWKS_URL"
            } else {
                "AUTH_ISSUER"
            };
            return Err(bad(
                var,
                "plain http is allowed only for a loopback host; use https or set AUTH_ALLOW_INSECURE_HTTP=true",
            ));
        }
        let jwks_ca_file = get("AUTH_JWKS_CA_FILE").map(PathBuf::from);
        if let Some(path) = &jwks_ca_file {
            std::fs::metadata(path)
                .map_err(|e| bad("AUTH_JWKS_CA_FILE", format!("{}: {e}", path.display())))?;
        }

        let tls = match (get("TLS_CERT_FILE"), get("TLS_KEY_FILE")) {
            (Some(cert), Some(key)) => {
                for (var, path) in [("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &key)] {
                    std::fs::metadata(path).map_err(|e| bad(var, format!("{path}: {e}")))?;
                }
                Some(TlsSettings {
                    cert_file: cert.into(),
                    key_file: key.into(),
                })
            }
            (Some(_), None) => return Err(bad("TLS_KEY_FILE", "must be set with TLS_CERT_FILE")),
            (None, Some(_)) => return Err(bad("TLS_CERT_FILE", "must be set with TLS_KEY_FILE")),
            (None, None) => None,
        };

        let admin_token = get("ADMIN_TOKEN").map(SecretString::from);
        if admin_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            return Err(bad("ADMIN_TOKEN", "must be at least 16 characters"));
        }

        let db = DbSettings {
            max_connections: parse_num("DB_MAX_CONNECTIONS", get("DB_MAX_CONNECTIONS"), 10)?,
            acquire_timeout: parse_duration_var(
                "DB_ACQUIRE_TIMEOUT",
                get("DB_ACQUIRE_TIMEOUT"),
                5,
            )?,
            statement_timeout: parse_duration_var(
                "DB_STATEMENT_TIMEOUT",
                get("DB_STATEMENT_TIMEOUT"),
                10,
            )?,
        };
        if db.max_connections == 0 {
            return Err(bad("DB_MAX_CONNECTIONS", "must be at least 1"));
        }

        let defaults = IssuerSettings::default();
        let issuer_settings = IssuerSettings {
            token_lifetime: parse_duration_var("TOKEN_LIFETIME", get("TOKEN_LIFETIME"), 3600)?,
            max_failures_per_client: parse_num(
                "TOKEN_MAX_FAILURES_PER_CLIENT",
                get("TOKEN_MAX_FAILURES_PER_CLIENT"),
                defaults.max_failures_per_client,
            )?,
            max_failures_per_address: parse_num(
                "TOKEN_MAX_FAILURES_PER_ADDRESS",
                get("TOKEN_MAX_FAILURES_PER_ADDRESS"),
                defaults.max_failures_per_address,
            )?,
            failure_window: parse_duration_var(
                "TOKEN_FAILURE_WINDOW",
                get("TOKEN_FAILURE_WINDOW"),
                60,
            )?,
        };

        if !(60..=86_400).contains(&issuer_settings.token_lifetime.as_secs()) {
            return Err(bad("TOKEN_LIFETIME", "must be between 60s and 24h"));
        }

        Ok(Settings {
            database_url: SecretString::from(database_url),
            runtime_role,
            host,
            port,
            public_url,
            issuer_enabled,
            auth: AuthSettings {
                issuer,
                audience,
                jwks_url,
                algorithms,
                jwks_ttl: parse_duration_var("AUTH_JWKS_TTL", get("AUTH_JWKS_TTL"), 600)?,
                jwks_cooldown: parse_duration_var(
                    "AUTH_JWKS_COOLDOWN",
                    get("AUTH_JWKS_COOLDOWN"),
                    30,
                )?,
                jwks_timeout: parse_duration_var("AUTH_JWKS_TIMEOUT", get("AUTH_JWKS_TIMEOUT"), 5)?,
                in_process_keys,
                jwks_ca_file,
                allow_insecure_http,
            },
            tls,
            admin_token,
            db,
            workers: parse_num("WORKERS", get("WORKERS"), 0)?,
            body_limit: parse_num("BODY_LIMIT", get("BODY_LIMIT"), 64 * 1024)?,
            shutdown_grace: parse_duration_var("SHUTDOWN_GRACE", get("SHUTDOWN_GRACE"), 30)?,
            issuer: issuer_settings,
        })
    }
}

/// `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Brackets an IPv6 literal so that it can stand in a URL.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn parse_http_url(var: &str, value: &str) -> Result<String, ConfigError> {
    let url = Url::parse(value).map_err(|e| bad(var, e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(var, "must be an http(s) URL with a host"));
    }
    Ok(value.to_string())
}

fn parse_bool(var: &str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(bad(var, format!("`{other}` is not true or false"))),
    }
}

fn parse_num<T: std::str::FromStr>(
    var: &str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.map_or(Ok(default), |v| v.parse().map_err(|e| bad(var, e)))
}

fn parse_duration_var(
    var: &str,
    value: Option<String>,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    value.map_or(Ok(Duration::from_secs(default_secs)), |v| {
        parse_duration(&v).map_err(|e| bad(var, e))
    })
}

/// Parses `30s`, `10m`, `24h`, `2d`, `250ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s, 10m or 24h"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long"))
    };
    match unit {
        "" | "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "`{text}` is not a duration such as 30s, 10m or 24h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.port, 3000);
        assert_eq!(s.public_url, "http://127.0.0.1:3000");
        assert_eq!(s.auth.issuer, "http://127.0.0.1:3000");
        assert_eq!(s.auth.audience, "https://api.yourapp.com");
        assert_eq!(
            s.auth.jwks_url.as_str(),
            "http://127.0.0.1:3000/.well-known/jwks.json"
        );
        assert_eq!(s.auth.algorithms, vec![SigningAlgorithm::RS256]);
        assert!(s.issuer_enabled);
        assert!(s.admin_token.is_none());
        assert_eq!(s.body_limit, 65536);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Settings::from_map(&vars(&[("PORT", "eighty")])).unwrap_err();
        assert!(err.0.starts_with("PORT: "), "{err}");
        let err = Settings::from_map(&vars(&[("AUTH_ALGORITHMS", "RS256,HS256")])).unwrap_err();
        assert!(err.0.starts_with("AUTH_ALGORITHMS: "), "{err}");
        let err = Settings::from_map(&vars(&[("DATABASE_URL", "not a url")])).unwrap_err();
        assert!(err.0.starts_with("DATABASE_URL: "), "{err}");
        let err =
            Settings::from_map(&vars(&[("TLS_CERT_FILE", "/nonexistent/cert.pem")])).unwrap_err();
        assert!(err.0.starts_with("TLS_KEY_FILE: "), "{err}");
    }

    #[test]
    fn jwks_url_defaults_to_the_issuer_well_known_path() {
        let s = Settings::from_map(&vars(&[("AUTH_ISSUER", "https://acme.kinde.com/")])).unwrap();
        assert_eq!(
            s.auth.jwks_url.as_str(),
            "https://acme.kinde.com/.well-known/jwks.json"
        );
        assert!(!s.auth.in_process_keys);
    }

    #[test]
    fn plain_http_keys_only_from_loopback_unless_permitted() {
        let remote = [
            ("AUTH_ISSUER", "http://issuer.example.com"),
            ("ISSUER_ENABLED", "false"),
        ];
        let err = Settings::from_map(&vars(&remote)).unwrap_err();
        assert!(err.0.starts_with("AUTH_ISSUER: plain http"), "{err}");
        let mut permitted = remote.to_vec();
        permitted.push(("AUTH_ALLOW_INSECURE_HTTP", "true"));
        assert!(
            Settings::from_map(&vars(&permitted))
                .unwrap()
                .auth
                .allow_insecure_http
        );
        let local = [
            ("AUTH_ISSUER", "http://localhost:4000"),
            ("ISSUER_ENABLED", "false"),
        ];
        assert!(Settings::from_map(&vars(&local)).is_ok());
        let https = [
            ("AUTH_ISSUER", "https://issuer.example.com"),
            ("ISSUER_ENABLED", "false"),
        ];
        assert!(Settings::from_map(&vars(&https)).is_ok());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10y").is_err());
    }
}
