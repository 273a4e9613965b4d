//! The test harness: each test gets its own database (migrated by orgwall's own `migrate`), its
//! own orgwall on a random port, connected the way production is, and an in-process fake
//! issuer that publishes a JWKS and mints real RS256 tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orgwall::config::Settings;
use orgwall::startup::Application;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool};

pub const AUDIENCE: &str = "https://api.yourapp.com";

/// Where tests find PostgreSQL: a superuser URL without a database name.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Log output of every test server in this process, for "no secret in any log line" checks.
pub fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

#[derive(Clone)]
struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured_logs().lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        // The whole suite's log, for .ci/run's final search for tokens and keys.
        if let Some(path) = std::env::var_os("ORGWALL_TEST_LOG_FILE") {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?
                .write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Debug level, so that the secret checks also cover debug-only log lines.
        // SAFETY: called once, before any test spawns threads that read the environment.
        if std::env::var_os("RUST_LOG").is_none() {
            unsafe { std::env::set_var("RUST_LOG", "debug,sqlx=info,actix_server=info,h2=info,hyper=info,rustls=info,reqwest=info,hyper_util=info") };
        }
        orgwall::telemetry::init(false, || CaptureWriter);
    });
}

/// An RSA signing key with its JWK.
pub struct TestKey {
    pub kid: String,
    pair: KeyPair,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("rsa keygen"),
        }
    }

    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// Signs `header.payload` as given (raw JSON texts), RS256.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(payload_json)
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut sig,
            )
            .expect("sign");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

/// Keys are slow to make; tests share a few.
pub fn issuer_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("test-key-1"))
}

pub fn attacker_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("test-key-1"))
}

pub fn second_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::generate("test-key-2"))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An issuer that publishes a JWKS over real HTTP and mints tokens.
pub struct FakeIssuer {
    pub url: String,
    pub jwks: Arc<Mutex<Value>>,
    pub hits: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    /// Milliseconds each JWKS answer is delayed.
    pub delay_ms: Arc<AtomicU64>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeIssuer {
    pub async fn start() -> Self {
        let jwks = Arc::new(Mutex::new(json!({"keys": [issuer_key().jwk()]})));
        let hits = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (j, h, d, dl) = (jwks.clone(), hits.clone(), down.clone(), delay_ms.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(move || {
            let (j, h, d, dl) = (j.clone(), h.clone(), d.clone(), dl.clone());
            actix_web::App::new().route(
                "/.well-known/jwks.json",
                actix_web::web::get().to(move || {
                    let (j, h, d, dl) = (j.clone(), h.clone(), d.clone(), dl.clone());
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        let delay = dl.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        if d.load(Ordering::SeqCst) {
                            return actix_web::HttpResponse::ServiceUnavailable().finish();
                        }
                        let body = j.lock().unwrap().clone();
                        actix_web::HttpResponse::Ok().json(body)
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            jwks,
            hits,
            down,
            delay_ms,
            handle,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.url)
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }

    /// Claims in the tutorial's shape: `sub`, `scp` as a string, `aud` as an array.
    pub fn claims(&self, org: Option<&str>, scopes: &str) -> Value {
        let mut c = json!({
            "iss": self.url,
            "sub": "client_test_1",
            "aud": [AUDIENCE],
            "iat": now(),
            "exp": now() + 3600,
            "scp": scopes,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(org) = org {
            c["org_code"] = json!(org);
        }
        c
    }

    pub fn header() -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": issuer_key().kid})
    }

    pub fn mint(&self, claims: &Value) -> String {
        issuer_key().sign(&Self::header(), claims)
    }

    /// A valid token for `org` with `scopes` (space-separated).
    pub fn token(&self, org: &str, scopes: &str) -> String {
        self.mint(&self.claims(Some(org), scopes))
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

pub struct TestApp {
    pub address: String,
    pub db_name: String,
    /// A superuser pool on the test's database, for arranging and inspecting.
    pub admin_pool: PgPool,
    pub issuer: FakeIssuer,
    pub http: reqwest::Client,
    pub settings: Settings,
    /// The metrics listener's port, unless `metrics_addr` is `off`.
    pub metrics_port: Option<u16>,
    server: actix_web::dev::ServerHandle,
}

/// Creates a fresh database and applies the migrations through orgwall's own `migrate`.
pub async fn create_database() -> (String, String) {
    let db_name = format!("orgwall_test_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{db_name}", server_url());
    let settings =
        Settings::from_map(&HashMap::from([("database_url".into(), url.clone())])).unwrap();
    orgwall::commands::migrate(&settings)
        .await
        .expect("migrate");
    (db_name, url)
}

pub fn base_vars(database_url: &str, issuer: &FakeIssuer) -> HashMap<String, String> {
    HashMap::from([
        ("database_url".into(), database_url.to_string()),
        ("port".into(), "0".into()),
        ("workers".into(), "1".into()),
        // Metrics on, as in production, on a port of their own.
        ("metrics_addr".into(), "127.0.0.1:0".into()),
        ("issuer_enabled".into(), "false".into()),
        ("auth_issuer".into(), issuer.url.clone()),
        ("auth_jwks_url".into(), issuer.jwks_url()),
        ("auth_audience".into(), AUDIENCE.into()),
        ("db_max_connections".into(), "5".into()),
    ])
}

/// A port that was free a moment ago, for a server whose URL must be known before it binds.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

impl TestApp {
    /// orgwall as its own issuer (the defaults: issuer on, trusting itself), admin API on.
    pub async fn spawn_issuer() -> Self {
        Self::spawn_issuer_with(|_| {}).await
    }

    pub async fn spawn_issuer_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let port = free_port();
        Self::spawn_with(|vars| {
            vars.insert("port".into(), port.to_string());
            vars.insert("issuer_enabled".into(), "true".into());
            vars.remove("auth_issuer");
            vars.remove("auth_jwks_url");
            vars.insert("admin_token".into(), ADMIN_TOKEN.into());
            customize(vars);
        })
        .await
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with extra or changed variables (lower-case names, as in orgwall.toml).
    pub async fn spawn_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        init_tracing();
        let issuer = FakeIssuer::start().await;
        let (db_name, url) = create_database().await;
        let mut vars = base_vars(&url, &issuer);
        customize(&mut vars);
        let settings = Settings::from_map(&vars).expect("settings");
        let app = Application::build(settings.clone())
            .await
            .expect("build app");
        let port = app.port();
        let metrics_port = app.metrics_port();
        let server = app.handle();
        tokio::spawn(app.run_until_stopped());
        let admin_pool = PgPool::connect(&url).await.expect("admin pool");
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            db_name,
            admin_pool,
            issuer,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            settings,
            metrics_port,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Creates a record as `org` through the API and returns its id.
    pub async fn create_record(&self, org: &str, name: &str, value: Value) -> i64 {
        let token = self.issuer.token(org, "write:data");
        let res = self
            .post_json(
                &format!("/orgs/{org}/data"),
                Some(&token),
                &json!({"name": name, "value": value}),
            )
            .await;
        assert_eq!(res.status(), 201, "create failed");
        let body: Value = res.json().await.unwrap();
        body["record"]["id"].as_i64().unwrap()
    }

    /// The tutorial's mock database: Acme Record A (100), B (200); Beta Record A (50).
    pub async fn seed_tutorial_records(&self) {
        self.create_record("org_acme", "Acme Record A", json!(100))
            .await;
        self.create_record("org_acme", "Acme Record B", json!(200))
            .await;
        self.create_record("org_beta", "Beta Record A", json!(50))
            .await;
    }

    /// Every row of `org`'s records as the superuser sees them (RLS bypassed), for "nothing
    /// else changed" checks.
    pub async fn rows_of(&self, org: &str) -> Vec<(i64, String, Value)> {
        sqlx::query_as("select id, name, value from records where org_code = $1 order by id")
            .bind(org)
            .fetch_all(&self.admin_pool)
            .await
            .unwrap()
    }

    pub async fn count_all_records(&self) -> i64 {
        sqlx::query_scalar("select count(*) from records")
            .fetch_one(&self.admin_pool)
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command; awaiting it here would block the runtime the server runs on.
        drop(self.server.stop(false));
        let db_name = self.db_name.clone();
        // Drop runs outside async context: use a thread with its own runtime. `with (force)`
        // ends the server's and the test's connections.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            r#"drop database if exists "{db_name}" with (force)"#
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Asserts the contract's error body and returns it.
pub async fn assert_error(
    res: reqwest::Response,
    status: u16,
    message: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(res.status().as_u16(), status, "status");
    let headers = res.headers().clone();
    let body: Value = res.json().await.expect("error body is JSON");
    let reason = reqwest::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    assert_eq!(body, json!({"error": reason, "message": message}));
    headers
}

pub fn www_authenticate(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
}
