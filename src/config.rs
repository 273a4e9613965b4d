//! Typed settings, layered lowest first: built-in defaults < `orgwall.toml` (or the file named
//! by `ORGWALL_CONFIG`) < `.env` < the process environment. Keys are the variable names in lower
//! case; `.env.example` documents every one.
//!
//! Two steps: serde reads the merged layers into [`RawSettings`] (one optional, typed field per
//! variable), then one `TryFrom` applies the defaults and the rules that involve several
//! variables. Either step stops start-up with one line that names the variable
//! (`PORT: invalid digit found in string`).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de};
use url::Url;

use crate::auth::SigningAlgorithm;
pub use crate::client_addr::TrustedProxies;

/// Everything the service needs to start; built once and handed to [`crate::startup`].
#[derive(Clone, Debug)]
pub struct Settings {
    /// `DATABASE_URL`: the request pool's connections.
    pub database_url: SecretString,
    /// `DATABASE_LISTEN_URL` (default: `DATABASE_URL`): the one direct connection each instance
    /// keeps for notifications, so that `DATABASE_URL` may point at a transaction-mode pooler.
    pub database_listen_url: SecretString,
    /// `migrate` creates this login role for the service when set (with its password).
    pub runtime_role: Option<(String, SecretString)>,
    pub host: String,
    pub port: u16,
    /// The built-in issuer's URL: the `iss` it writes and the base of its endpoints, as written
    /// (no trailing `/`). Default `http://HOST:PORT`, with `localhost` for an unspecified HOST.
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
    /// `LOG_FORMAT`: how log lines are written to stderr.
    pub log_format: LogFormat,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client (default: none).
    pub trusted_proxies: TrustedProxies,
    /// `METRICS_ADDR`: where the Prometheus listener binds; `None` when set to `off`.
    pub metrics_addr: Option<SocketAddr>,
    /// PUBLIC_URL was not set and HOST listens on every interface.
    public_url_guessed: bool,
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
    /// `DATABASE_STATEMENT_CACHE` (default true): `false` means no named prepared statements,
    /// as PgBouncer before 1.21 requires in transaction mode.
    pub statement_cache: bool,
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

/// `LOG_FORMAT`: `pretty` (default, for people) or `json` (one object per line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err(format!("`{s}` is not pretty or json")),
        }
    }
}

/// A configuration problem, already phrased as the one line `main` prints.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(var: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError(format!("{var}: {why}"))
}

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/orgwall";
const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// One optional field per variable, as the layers give it; `None` means "not set" (a blank
/// value counts as not set). Types do the parsing: serde reports a bad value with its key.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSettings {
    database_url: Option<SecretString>,
    database_listen_url: Option<SecretString>,
    database_statement_cache: Option<bool>,
    database_runtime_role: Option<String>,
    database_runtime_password: Option<SecretString>,
    #[serde(deserialize_with = "parsed")]
    db_max_connections: Option<u32>,
    #[serde(deserialize_with = "duration")]
    db_acquire_timeout: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    db_statement_timeout: Option<Duration>,

    host: Option<String>,
    #[serde(deserialize_with = "parsed")]
    port: Option<u16>,
    #[serde(deserialize_with = "parsed")]
    workers: Option<usize>,
    #[serde(deserialize_with = "parsed")]
    body_limit: Option<usize>,
    #[serde(deserialize_with = "duration")]
    shutdown_grace: Option<Duration>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(deserialize_with = "list")]
    trusted_proxies: Option<TrustedProxies>,
    #[serde(deserialize_with = "parsed")]
    metrics_addr: Option<MetricsAddr>,

    // `iss` is compared byte for byte, so PUBLIC_URL and AUTH_ISSUER are kept as written
    // (a `Url` would normalise them) and only checked to be URLs.
    public_url: Option<String>,
    issuer_enabled: Option<bool>,
    #[serde(deserialize_with = "duration")]
    token_lifetime: Option<Duration>,
    #[serde(deserialize_with = "parsed")]
    token_max_failures_per_client: Option<u32>,
    #[serde(deserialize_with = "parsed")]
    token_max_failures_per_address: Option<u32>,
    #[serde(deserialize_with = "duration")]
    token_failure_window: Option<Duration>,

    auth_issuer: Option<String>,
    auth_audience: Option<String>,
    auth_jwks_url: Option<Url>,
    #[serde(deserialize_with = "list")]
    auth_algorithms: Option<CommaList<SigningAlgorithm>>,
    #[serde(deserialize_with = "duration")]
    auth_jwks_ttl: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    auth_jwks_cooldown: Option<Duration>,
    #[serde(deserialize_with = "duration")]
    auth_jwks_timeout: Option<Duration>,
    auth_in_process_keys: Option<bool>,
    auth_jwks_ca_file: Option<PathBuf>,
    auth_allow_insecure_http: Option<bool>,

    admin_token: Option<SecretString>,
    #[serde(deserialize_with = "parsed")]
    log_format: Option<LogFormat>,
}

impl Settings {
    /// Loads the layers in order and parses every value.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("ORGWALL_CONFIG").ok();
        // `.env` never overrides the process environment: dotenvy only sets missing variables.
        match dotenvy::from_path(".env") {
            Ok(()) => {}
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError(format!(".env: {e}"))),
        }
        let (builder, origin) = match &file {
            Some(path) => (
                config::Config::builder().add_source(config::File::with_name(path).required(true)),
                "ORGWALL_CONFIG",
            ),
            None => (
                config::Config::builder()
                    .add_source(config::File::with_name("orgwall.toml").required(false)),
                "orgwall.toml",
            ),
        };
        let layered = builder
            .add_source(config::Environment::default())
            .build()
            .map_err(|e| bad(origin, without_snippet(&e.to_string())))?;
        let table: config::Map<String, config::Value> =
            layered.try_deserialize().map_err(|e| bad(origin, e))?;
        Self::from_table(table)
    }

    /// Parses settings from lower-case variable names to raw strings, as one layer over the
    /// defaults; the tests build settings this way.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_table(
            vars.iter()
                .map(|(k, v)| (k.clone(), config::Value::from(v.as_str())))
                .collect(),
        )
    }

    fn from_table(table: config::Map<String, config::Value>) -> Result<Self, ConfigError> {
        // Keys in lower case; strings trimmed, and a blank one is as good as unset.
        let table: config::Map<String, config::Value> = table
            .into_iter()
            .filter_map(|(key, value)| {
                let value = match value.kind {
                    config::ValueKind::String(s) if s.trim().is_empty() => return None,
                    config::ValueKind::String(s) => config::Value::from(s.trim()),
                    _ => value,
                };
                Some((key.to_lowercase(), value))
            })
            .collect();
        let raw =
            RawSettings::deserialize(config::Value::new(None, config::ValueKind::Table(table)))
                .map_err(one_line)?;
        Self::try_from(raw)
    }

    /// Start-up warnings about settings that work but are probably not what is wanted: a
    /// database reached over the network without TLS, an issuer URL guessed from a wildcard
    /// listen address. They never contain a password.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        // The guess matters only where the URL is used: as this issuer's `iss`, or as the
        // issuer the resource API trusts.
        if self.public_url_guessed && (self.issuer_enabled || self.auth.issuer == self.public_url) {
            warnings.push(format!(
                "PUBLIC_URL: not set while HOST={} listens on every interface; the issuer calls \
                 itself {} (its `iss`): set PUBLIC_URL to the URL clients use",
                self.host, self.public_url
            ));
        }
        let main = self.database_url.expose_secret();
        warnings.extend(unencrypted_database("DATABASE_URL", main));
        let listen = self.database_listen_url.expose_secret();
        if listen != main {
            warnings.extend(unencrypted_database("DATABASE_LISTEN_URL", listen));
        }
        warnings
    }
}

/// Cross-field rules and defaults, with file checks (TLS and CA files must exist).
impl TryFrom<RawSettings> for Settings {
    type Error = ConfigError;

    fn try_from(raw: RawSettings) -> Result<Self, ConfigError> {
        let database_url = raw
            .database_url
            .unwrap_or_else(|| SecretString::from(DEFAULT_DATABASE_URL));
        postgres_url("DATABASE_URL", &database_url)?;
        let database_listen_url = raw
            .database_listen_url
            .unwrap_or_else(|| database_url.clone());
        postgres_url("DATABASE_LISTEN_URL", &database_listen_url)?;

        let runtime_role = match (raw.database_runtime_role, raw.database_runtime_password) {
            (Some(role), Some(password)) => {
                crate::roles::parse_role_name(&role).map_err(|e| ConfigError(e.to_string()))?;
                Some((role, password))
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

        let host = raw.host.unwrap_or_else(|| "127.0.0.1".into());
        let port = raw.port.unwrap_or(3000);
        let tls = match (raw.tls_cert_file, raw.tls_key_file) {
            (Some(cert_file), Some(key_file)) => {
                must_exist("TLS_CERT_FILE", &cert_file)?;
                must_exist("TLS_KEY_FILE", &key_file)?;
                Some(TlsSettings {
                    cert_file,
                    key_file,
                })
            }
            (Some(_), None) => return Err(bad("TLS_KEY_FILE", "must be set with TLS_CERT_FILE")),
            (None, Some(_)) => return Err(bad("TLS_CERT_FILE", "must be set with TLS_KEY_FILE")),
            (None, None) => None,
        };

        // A wildcard listen address is no address to call: `http://0.0.0.0:3000` as `iss` would
        // match nothing a client can reach, so the guess is `localhost` (and a warning says so).
        let public_url_guessed = raw.public_url.is_none() && is_unspecified(&host);
        let public_url = match raw.public_url {
            Some(url) => http_url("PUBLIC_URL", &url)?,
            None => {
                let scheme = if tls.is_some() { "https" } else { "http" };
                let name = if public_url_guessed {
                    "localhost".to_string()
                } else {
                    url_host(&host)
                };
                format!("{scheme}://{name}:{port}")
            }
        };
        let public_url = public_url.trim_end_matches('/').to_string();
        let issuer_enabled = raw.issuer_enabled.unwrap_or(true);

        let explicit_jwks_url = raw.auth_jwks_url.is_some();
        let issuer = raw.auth_issuer.unwrap_or_else(|| public_url.clone());
        Url::parse(&issuer).map_err(|e| bad("AUTH_ISSUER", e))?;
        let jwks_url = match raw.auth_jwks_url {
            Some(url) => url,
            None => Url::parse(&format!(
                "{}/.well-known/jwks.json",
                issuer.trim_end_matches('/')
            ))
            .map_err(|e| bad("AUTH_ISSUER", e))?,
        };
        if !matches!(jwks_url.scheme(), "http" | "https") {
            return Err(bad("AUTH_JWKS_URL", "must be an http(s) URL"));
        }
        let algorithms = match raw.auth_algorithms {
            Some(CommaList(list)) if list.is_empty() => {
                return Err(bad("AUTH_ALGORITHMS", "names no algorithm"));
            }
            Some(CommaList(list)) => list,
            None => vec![SigningAlgorithm::RS256],
        };
        let in_process_keys = raw
            .auth_in_process_keys
            .unwrap_or(issuer_enabled && issuer == public_url && !explicit_jwks_url);

        // Keys fetched over plain HTTP can be swapped by anyone on the path: only loopback, or
        // when explicitly permitted (and then `serve` warns).
        let allow_insecure_http = raw.auth_allow_insecure_http.unwrap_or(false);
        if !in_process_keys
            && jwks_url.scheme() == "http"
            && !is_loopback(&jwks_url)
            && !allow_insecure_http
        {
            let var = if explicit_jwks_url {
                "AUTH_JWKS_URL"
            } else {
                "AUTH_ISSUER"
            };
            return Err(bad(
                var,
                "plain http is allowed only for a loopback host; use https or set AUTH_ALLOW_INSECURE_HTTP=true",
            ));
        }
        if let Some(path) = &raw.auth_jwks_ca_file {
            must_exist("AUTH_JWKS_CA_FILE", path)?;
        }

        if raw
            .admin_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().len() < 16)
        {
            return Err(bad("ADMIN_TOKEN", "must be at least 16 characters"));
        }

        let db = DbSettings {
            max_connections: raw.db_max_connections.unwrap_or(10),
            acquire_timeout: raw.db_acquire_timeout.unwrap_or(Duration::from_secs(5)),
            statement_timeout: raw.db_statement_timeout.unwrap_or(Duration::from_secs(10)),
            statement_cache: raw.database_statement_cache.unwrap_or(true),
        };
        if db.max_connections == 0 {
            return Err(bad("DB_MAX_CONNECTIONS", "must be at least 1"));
        }

        let defaults = IssuerSettings::default();
        let issuer_settings = IssuerSettings {
            token_lifetime: raw.token_lifetime.unwrap_or(defaults.token_lifetime),
            max_failures_per_client: raw
                .token_max_failures_per_client
                .unwrap_or(defaults.max_failures_per_client),
            max_failures_per_address: raw
                .token_max_failures_per_address
                .unwrap_or(defaults.max_failures_per_address),
            failure_window: raw.token_failure_window.unwrap_or(defaults.failure_window),
        };
        if !(60..=86_400).contains(&issuer_settings.token_lifetime.as_secs()) {
            return Err(bad("TOKEN_LIFETIME", "must be between 60s and 24h"));
        }

        Ok(Settings {
            database_url,
            database_listen_url,
            runtime_role,
            host,
            port,
            public_url,
            issuer_enabled,
            auth: AuthSettings {
                issuer,
                audience: raw
                    .auth_audience
                    .unwrap_or_else(|| "https://api.yourapp.com".into()),
                jwks_url,
                algorithms,
                jwks_ttl: raw.auth_jwks_ttl.unwrap_or(Duration::from_secs(600)),
                jwks_cooldown: raw.auth_jwks_cooldown.unwrap_or(Duration::from_secs(30)),
                jwks_timeout: raw.auth_jwks_timeout.unwrap_or(Duration::from_secs(5)),
                in_process_keys,
                jwks_ca_file: raw.auth_jwks_ca_file,
                allow_insecure_http,
            },
            tls,
            admin_token: raw.admin_token,
            db,
            workers: raw.workers.unwrap_or(0),
            body_limit: raw.body_limit.unwrap_or(64 * 1024),
            shutdown_grace: raw.shutdown_grace.unwrap_or(Duration::from_secs(30)),
            issuer: issuer_settings,
            log_format: raw.log_format.unwrap_or_default(),
            trusted_proxies: raw.trusted_proxies.unwrap_or_default(),
            metrics_addr: raw
                .metrics_addr
                .map_or(Some(DEFAULT_METRICS_ADDR), |MetricsAddr(addr)| addr),
            public_url_guessed,
        })
    }
}

/// serde's error for one field, as `VARIABLE: what is wrong`.
fn one_line(error: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    let describe = |error: E| match error {
        E::Message(message) => message,
        E::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        other => other.to_string(),
    };
    match error {
        E::At {
            error,
            key: Some(key),
            ..
        } => bad(&key.to_uppercase(), describe(*error)),
        E::Type {
            unexpected,
            expected,
            key: Some(key),
            ..
        } => bad(
            &key.to_uppercase(),
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        other => ConfigError(format!("configuration: {other}")),
    }
}

/// A TOML parse error on one line: its message without the quoted source lines.
fn without_snippet(message: &str) -> String {
    let is_snippet = |line: &str| {
        let line = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        line.starts_with('|')
    };
    let mut one = String::new();
    for line in message.lines().map(str::trim) {
        if line.is_empty() || is_snippet(line) {
            continue;
        }
        if !one.is_empty() {
            one.push_str(if line.starts_with("in ") { " " } else { ": " });
        }
        one.push_str(line);
    }
    one
}

/// For numbers and other `FromStr` types: the text (a TOML number or boolean counts as its
/// text), parsed, so that the error is the type's own (`invalid digit found in string`).
fn parsed<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    Option::<String>::deserialize(deserializer)?
        .map(|text| text.parse().map_err(de::Error::custom))
        .transpose()
}

/// A comma-separated string, or (in orgwall.toml) an array of strings.
fn list<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        Text(String),
        Array(Vec<String>),
    }
    Option::<Items>::deserialize(deserializer)?
        .map(|items| match items {
            Items::Text(text) => text,
            Items::Array(items) => items.join(","),
        })
        .map(|text| text.parse().map_err(de::Error::custom))
        .transpose()
}

/// Any humantime duration (`250ms`, `30s`, `10m`, `1h30m`, `2d`) or a bare number of seconds.
fn duration<'de, D>(deserializer: D) -> Result<Option<Duration>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer)?
        .map(|text| {
            if text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse()
                    .map(Duration::from_secs)
                    .map_err(de::Error::custom)
            } else {
                humantime::parse_duration(&text).map_err(|e| {
                    de::Error::custom(format!(
                        "`{text}` is not a duration such as 30s, 10m or 24h ({e})"
                    ))
                })
            }
        })
        .transpose()
}

/// Values separated by commas; blanks between commas are skipped.
#[derive(Debug)]
struct CommaList<T>(Vec<T>);

impl<T: FromStr> FromStr for CommaList<T> {
    type Err = T::Err;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// `METRICS_ADDR`: a socket address, or `off`.
#[derive(Debug)]
struct MetricsAddr(Option<SocketAddr>);

impl FromStr for MetricsAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.parse().map(|addr| Self(Some(addr))).map_err(|_| {
            format!("`{s}` is not an address and port such as 127.0.0.1:9464 (or off)")
        })
    }
}

/// A `postgres://` URL; a parse error never repeats the URL, which may hold a password.
fn postgres_url(var: &str, url: &SecretString) -> Result<(), ConfigError> {
    let parsed = Url::parse(url.expose_secret()).map_err(|e| bad(var, e))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(bad(var, "must be a postgres:// URL"));
    }
    Ok(())
}

fn must_exist(var: &str, path: &std::path::Path) -> Result<(), ConfigError> {
    std::fs::metadata(path)
        .map(drop)
        .map_err(|e| bad(var, format!("{}: {e}", path.display())))
}

/// The warning for a database URL whose connection may go unencrypted over the network.
fn unencrypted_database(var: &str, url: &str) -> Option<String> {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    // sqlx's own reading of the URL (including PGSSLMODE and PGHOST), so that the warning
    // speaks of the connection that will really be made.
    let options = PgConnectOptions::from_str(url).ok()?;
    if options.get_socket().is_some() {
        return None;
    }
    let host = options
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    let mode = options.get_ssl_mode();
    let encrypted = matches!(
        mode,
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    );
    (!loopback && !encrypted).then(|| {
        let mode = format!("{mode:?}").to_lowercase();
        format!(
            "{var}: the database server {host} is not on this machine and sslmode is {mode}, so \
             the connection may be unencrypted; add sslmode=require (or verify-full) to the URL"
        )
    })
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

/// `0.0.0.0` or `::` (bracketed or not): every interface.
fn is_unspecified(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
}

/// Brackets an IPv6 literal so that it can stand in a URL.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn http_url(var: &str, value: &str) -> Result<String, ConfigError> {
    let url = Url::parse(value).map_err(|e| bad(var, e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(var, "must be an http(s) URL with a host"));
    }
    Ok(value.to_string())
}

/// Parses `30s`, `10m`, `24h`, `2d`, `250ms` or a bare number of seconds: the durations of the
/// command line and the admin API (`--grace`, `--token-lifetime`).
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

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_map(&vars(pairs)).unwrap()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        Settings::from_map(&vars(pairs)).unwrap_err().0
    }

    /// Settings from an orgwall.toml text alone, through the same path as `load`.
    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let table = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        Settings::from_table(table)
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
    fn every_other_default() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(s.database_listen_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.runtime_role.is_none());
        assert_eq!(s.host, "127.0.0.1");
        assert!(s.auth.in_process_keys);
        assert!(!s.auth.allow_insecure_http);
        assert!(s.auth.jwks_ca_file.is_none());
        assert_eq!(s.auth.jwks_ttl, Duration::from_secs(600));
        assert_eq!(s.auth.jwks_cooldown, Duration::from_secs(30));
        assert_eq!(s.auth.jwks_timeout, Duration::from_secs(5));
        assert!(s.tls.is_none());
        assert_eq!(s.db.max_connections, 10);
        assert_eq!(s.db.acquire_timeout, Duration::from_secs(5));
        assert_eq!(s.db.statement_timeout, Duration::from_secs(10));
        assert!(s.db.statement_cache);
        assert_eq!(s.workers, 0);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.issuer.token_lifetime, Duration::from_secs(3600));
        assert_eq!(s.issuer.max_failures_per_client, 10);
        assert_eq!(s.issuer.max_failures_per_address, 50);
        assert_eq!(s.issuer.failure_window, Duration::from_secs(60));
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(s.warnings().is_empty(), "{:?}", s.warnings());
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
    fn each_bad_value_is_one_line_naming_its_variable() {
        for (var, value, expected) in [
            ("PORT", "eighty", "PORT: invalid digit found in string"),
            (
                "PORT",
                "70000",
                "PORT: number too large to fit in target type",
            ),
            ("PORT", "yes", "PORT: invalid digit found in string"),
            ("WORKERS", "-1", "WORKERS: invalid digit found in string"),
            (
                "BODY_LIMIT",
                "64k",
                "BODY_LIMIT: invalid digit found in string",
            ),
            (
                "DB_MAX_CONNECTIONS",
                "0",
                "DB_MAX_CONNECTIONS: must be at least 1",
            ),
            (
                "ISSUER_ENABLED",
                "maybe",
                r#"ISSUER_ENABLED: invalid type: string "maybe", expected a boolean"#,
            ),
            (
                "DATABASE_STATEMENT_CACHE",
                "sometimes",
                r#"DATABASE_STATEMENT_CACHE: invalid type: string "sometimes", expected a boolean"#,
            ),
            (
                "SHUTDOWN_GRACE",
                "soon",
                "SHUTDOWN_GRACE: `soon` is not a duration",
            ),
            (
                "AUTH_JWKS_TTL",
                "-1s",
                "AUTH_JWKS_TTL: `-1s` is not a duration",
            ),
            (
                "TOKEN_LIFETIME",
                "10s",
                "TOKEN_LIFETIME: must be between 60s and 24h",
            ),
            (
                "TOKEN_LIFETIME",
                "2d",
                "TOKEN_LIFETIME: must be between 60s and 24h",
            ),
            (
                "PUBLIC_URL",
                "not a url",
                "PUBLIC_URL: relative URL without a base",
            ),
            (
                "PUBLIC_URL",
                "ftp://x",
                "PUBLIC_URL: must be an http(s) URL with a host",
            ),
            (
                "AUTH_ISSUER",
                "::",
                "AUTH_ISSUER: relative URL without a base",
            ),
            (
                "AUTH_JWKS_URL",
                "jwks.json",
                "AUTH_JWKS_URL: relative URL without a base",
            ),
            (
                "AUTH_JWKS_URL",
                "ftp://x/jwks",
                "AUTH_JWKS_URL: must be an http(s) URL",
            ),
            (
                "AUTH_ALGORITHMS",
                ",",
                "AUTH_ALGORITHMS: names no algorithm",
            ),
            (
                "AUTH_JWKS_CA_FILE",
                "/nonexistent/ca.pem",
                "AUTH_JWKS_CA_FILE: /nonexistent/ca.pem",
            ),
            (
                "ADMIN_TOKEN",
                "short",
                "ADMIN_TOKEN: must be at least 16 characters",
            ),
            (
                "DATABASE_URL",
                "mysql://x/db",
                "DATABASE_URL: must be a postgres:// URL",
            ),
            (
                "DATABASE_LISTEN_URL",
                "nope",
                "DATABASE_LISTEN_URL: relative URL without a base",
            ),
            (
                "DATABASE_RUNTIME_ROLE",
                "app",
                "DATABASE_RUNTIME_PASSWORD: must be set with",
            ),
            (
                "DATABASE_RUNTIME_PASSWORD",
                "pw",
                "DATABASE_RUNTIME_ROLE: must be set with",
            ),
            (
                "LOG_FORMAT",
                "xml",
                "LOG_FORMAT: `xml` is not pretty or json",
            ),
            (
                "TRUSTED_PROXIES",
                "10.0.0.1,lb",
                "TRUSTED_PROXIES: `lb` is not an IP address",
            ),
            (
                "METRICS_ADDR",
                "9464",
                "METRICS_ADDR: `9464` is not an address and port",
            ),
        ] {
            let err = error(&[(var, value)]);
            assert!(err.starts_with(expected), "{var}={value}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn a_bad_database_url_never_repeats_its_password() {
        let err = error(&[("DATABASE_URL", "postgres://app:s3cret@db host/orgwall")]);
        assert!(err.starts_with("DATABASE_URL: "), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err = error(&[("DATABASE_URL", "mysql://app:s3cret@db/orgwall")]);
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn blank_values_count_as_unset_and_values_are_trimmed() {
        let s = settings(&[
            ("PORT", " 8080 "),
            ("PUBLIC_URL", ""),
            ("ADMIN_TOKEN", "  "),
        ]);
        assert_eq!(s.port, 8080);
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert!(s.admin_token.is_none());
    }

    #[test]
    fn durations_take_humantime_forms_and_bare_seconds() {
        let s = settings(&[
            ("SHUTDOWN_GRACE", "0s"),
            ("AUTH_JWKS_TTL", "45"),
            ("AUTH_JWKS_COOLDOWN", "250ms"),
            ("DB_ACQUIRE_TIMEOUT", "1m 30s"),
            ("TOKEN_LIFETIME", "24h"),
            ("TOKEN_FAILURE_WINDOW", "10m"),
        ]);
        assert_eq!(s.shutdown_grace, Duration::ZERO);
        assert_eq!(s.auth.jwks_ttl, Duration::from_secs(45));
        assert_eq!(s.auth.jwks_cooldown, Duration::from_millis(250));
        assert_eq!(s.db.acquire_timeout, Duration::from_secs(90));
        assert_eq!(s.issuer.token_lifetime, Duration::from_secs(86_400));
        assert_eq!(s.issuer.failure_window, Duration::from_secs(600));
    }

    #[test]
    fn booleans_read_as_before() {
        for (text, value) in [("true", true), ("ON", true), ("1", true), ("no", false)] {
            let s = settings(&[("ISSUER_ENABLED", text), ("DATABASE_STATEMENT_CACHE", text)]);
            assert_eq!(s.issuer_enabled, value, "{text}");
            assert_eq!(s.db.statement_cache, value, "{text}");
        }
    }

    #[test]
    fn algorithms_are_a_comma_list() {
        let s = settings(&[("AUTH_ALGORITHMS", " rs256, ES256 ,EdDSA,")]);
        assert_eq!(
            s.auth.algorithms,
            vec![
                SigningAlgorithm::RS256,
                SigningAlgorithm::ES256,
                SigningAlgorithm::EdDSA
            ]
        );
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
    fn the_issuer_and_public_url_are_kept_as_written() {
        let s = settings(&[
            ("PUBLIC_URL", "https://Auth.Example.com:443/"),
            ("AUTH_ISSUER", "https://Auth.Example.com:443"),
        ]);
        assert_eq!(s.public_url, "https://Auth.Example.com:443");
        assert_eq!(s.auth.issuer, "https://Auth.Example.com:443");
        assert!(s.auth.in_process_keys, "the issuer is this instance");
    }

    #[test]
    fn public_url_follows_host_port_and_tls() {
        let s = settings(&[("HOST", "::1"), ("PORT", "8443")]);
        assert_eq!(s.public_url, "http://[::1]:8443");
        let dir = std::env::temp_dir();
        let file = dir.to_str().unwrap();
        let s = settings(&[("TLS_CERT_FILE", file), ("TLS_KEY_FILE", file)]);
        assert_eq!(s.public_url, "https://127.0.0.1:3000");
        assert_eq!(s.auth.issuer, "https://127.0.0.1:3000");
    }

    #[test]
    fn a_wildcard_host_never_becomes_the_issuer_url() {
        for host in ["0.0.0.0", "::", "[::]"] {
            let s = settings(&[("HOST", host)]);
            assert_eq!(s.public_url, "http://localhost:3000", "{host}");
            assert_eq!(s.auth.issuer, "http://localhost:3000");
            assert!(s.auth.in_process_keys);
            let warnings = s.warnings();
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].starts_with("PUBLIC_URL: not set"),
                "{warnings:?}"
            );
        }
        let external = settings(&[
            ("HOST", "0.0.0.0"),
            ("ISSUER_ENABLED", "false"),
            ("AUTH_ISSUER", "https://acme.kinde.com"),
        ]);
        assert!(external.warnings().is_empty(), "{:?}", external.warnings());
        let s = settings(&[
            ("HOST", "0.0.0.0"),
            ("PUBLIC_URL", "https://auth.example.com"),
        ]);
        assert_eq!(s.public_url, "https://auth.example.com");
        assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    }

    #[test]
    fn a_remote_database_without_tls_is_warned_about_without_its_password() {
        let remote = "postgres://app:s3cret@db.example.com:5432/orgwall";
        let warnings = settings(&[("DATABASE_URL", remote)]).warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("DATABASE_URL: the database server db.example.com"),
            "{warnings:?}"
        );
        assert!(!warnings[0].contains("s3cret"), "{warnings:?}");

        for quiet in [
            "postgres://app:s3cret@db.example.com/orgwall?sslmode=require",
            "postgres://app:s3cret@db.example.com/orgwall?sslmode=verify-full",
            "postgres://app@127.0.0.1/orgwall",
            "postgres://app@localhost/orgwall",
            "postgres://app@[::1]/orgwall",
            "postgres://app@[::ffff:127.0.0.1]/orgwall",
            "postgres:///orgwall?host=/var/run/postgresql",
        ] {
            let warnings = settings(&[("DATABASE_URL", quiet)]).warnings();
            assert!(warnings.is_empty(), "{quiet}: {warnings:?}");
        }

        let warnings = settings(&[
            (
                "DATABASE_URL",
                "postgres://app@pgbouncer.internal/orgwall?sslmode=require",
            ),
            (
                "DATABASE_LISTEN_URL",
                "postgres://app@db.internal/orgwall?sslmode=prefer",
            ),
        ])
        .warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("DATABASE_LISTEN_URL: "),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_listen_url_and_statement_cache_for_a_pooler() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://app@127.0.0.1:6432/orgwall"),
            (
                "DATABASE_LISTEN_URL",
                "postgres://app@127.0.0.1:5432/orgwall",
            ),
            ("DATABASE_STATEMENT_CACHE", "false"),
        ]);
        assert_eq!(
            s.database_listen_url.expose_secret(),
            "postgres://app@127.0.0.1:5432/orgwall"
        );
        assert!(!s.db.statement_cache);
        let s = settings(&[("DATABASE_URL", "postgres://app@127.0.0.1:6432/orgwall")]);
        assert_eq!(
            s.database_listen_url.expose_secret(),
            "postgres://app@127.0.0.1:6432/orgwall",
            "defaults to DATABASE_URL"
        );
    }

    #[test]
    fn metrics_addr_is_an_address_or_off() {
        assert_eq!(settings(&[("METRICS_ADDR", "off")]).metrics_addr, None);
        assert_eq!(settings(&[("METRICS_ADDR", "OFF")]).metrics_addr, None);
        assert_eq!(
            settings(&[("METRICS_ADDR", "[::]:9100")]).metrics_addr,
            Some("[::]:9100".parse().unwrap())
        );
    }

    #[test]
    fn trusted_proxies_and_log_format_are_read() {
        let s = settings(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
            ("LOG_FORMAT", "JSON"),
        ]);
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies.contains("192.0.2.1".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("192.0.2.2".parse().unwrap()));
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn orgwall_toml_takes_native_types_and_arrays() {
        let s = from_toml(
            r#"
            port = 8080
            issuer_enabled = false
            auth_issuer = "https://acme.kinde.com"
            auth_algorithms = ["RS256", "ES256"]
            trusted_proxies = ["10.0.0.0/8", "fd00::/8"]
            shutdown_grace = 5
            token_lifetime = "2h"
            log_format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(s.port, 8080);
        assert!(!s.issuer_enabled);
        assert_eq!(
            s.auth.algorithms,
            vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256]
        );
        assert!(s.trusted_proxies.contains("fd00::1".parse().unwrap()));
        assert_eq!(s.shutdown_grace, Duration::from_secs(5));
        assert_eq!(s.issuer.token_lifetime, Duration::from_secs(7200));
        assert_eq!(s.log_format, LogFormat::Json);

        let err = from_toml("port = -1").unwrap_err();
        assert_eq!(err.0, "PORT: invalid digit found in string");
        let err = from_toml("trusted_proxies = [\"10.0.0.0/8\", \"nope\"]").unwrap_err();
        assert!(err.0.starts_with("TRUSTED_PROXIES: `nope`"), "{err}");
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
    fn every_example_in_env_example_is_accepted() {
        let examples: HashMap<String, String> = include_str!("../.env.example")
            .lines()
            .filter_map(|line| line.strip_prefix("# ")?.split_once('='))
            .filter(|(name, _)| name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            // Files that exist only on a deployed machine.
            .filter(|(name, _)| !name.ends_with("_FILE"))
            .map(|(name, value)| (name.to_lowercase(), value.to_string()))
            .collect();
        assert!(examples.len() > 30, "{examples:?}");
        let s = Settings::from_map(&examples).unwrap();
        assert_eq!(s.trusted_proxies.to_string(), "10.0.0.0/8,fd00::/8");
    }

    #[test]
    fn a_toml_syntax_error_is_one_line() {
        let err = config::Config::builder()
            .add_source(config::File::from_str(
                "port = [\n",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap_err();
        let line = without_snippet(&err.to_string());
        assert!(line.starts_with("TOML parse error at line 1"), "{line}");
        assert!(line.contains("unclosed array"), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
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
