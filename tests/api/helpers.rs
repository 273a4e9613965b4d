//! The test harness: each test gets its own database (a clone of one migrated by orgwall's own
//! `migrate` once per migration set), its own orgwall on a random port, connected the way production is, and an in-process fake
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
use orgwall::auth::OrgContext;
use orgwall::config::Settings;
use orgwall::domain::OrgCode;
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

/// The tenant context of `org`, as an operator (not a token) enters it.
pub fn ctx(org: &str) -> OrgContext {
    OrgContext::for_operator(OrgCode::parse(org).unwrap())
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
    /// A superuser pool on the test's database, for arranging and inspecting.
    pub admin_pool: PgPool,
    pub issuer: FakeIssuer,
    pub http: reqwest::Client,
    pub settings: Settings,
    /// The metrics listener's port, unless `metrics_addr` is `off`.
    pub metrics_port: Option<u16>,
    server: actix_web::dev::ServerHandle,
    /// Declared last: dropped after the pool and the server.
    pub db: TestDb,
}

/// A database of its own for one test, cloned from the migrated template, and dropped (with
/// `force`, ending every session on it) when the guard goes, even when the test fails.
///
/// PostgreSQL checkpoints on every `drop database`, which takes from a third of a second to
/// seconds on a busy server, so the guard hands the drop to [`Janitor`]'s thread instead of
/// waiting for it.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Clones the migrated template: a copy of the files, no migration replayed.
    ///
    /// `create database ... template` copies everything `migrate` writes inside the database,
    /// and the roles it creates are cluster-wide; what it does not copy is database-level
    /// settings and grants (`grant connect on database`), so a test that needs `migrate`'s
    /// database-level setup (a runtime role, for one) runs `migrate` on its clone.
    pub async fn create() -> Self {
        let template = migrated_template().await;
        let janitor = Janitor::get();
        let name = format!(
            "{TEST_DB_PREFIX}{}_{}",
            janitor.run,
            uuid::Uuid::new_v4().simple()
        );
        let mut conn = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("connect to the postgres database");
        conn.execute(sqlx::AssertSqlSafe(format!(
            r#"create database "{name}" template "{template}""#
        )))
        .await
        .expect("create the test database from the template");
        let _ = conn.close().await;
        let url = format!("{}/{name}", server_url());
        Self { name, url }
    }
}

impl TestDb {
    /// Gives up the guard: the name and URL of a database the caller now drops itself (after
    /// a role it granted database privileges to, say).
    pub fn detach(mut self) -> (String, String) {
        (
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.url),
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            Janitor::get().drop_later(std::mem::take(&mut self.name));
        }
    }
}

/// Test databases are `orgwall_test_r<run>_<random>`, `<run>` naming the process that made them.
const TEST_DB_PREFIX: &str = "orgwall_test_r";

/// Drops test databases on a thread of its own, several at a time: PostgreSQL serves
/// concurrent drops with one checkpoint.
///
/// Each test process is a run, with a random number that its databases' names carry, and
/// holds an advisory lock on that number for as long as it lives (on the janitor's
/// connection). Drops still queued when the process exits are done by the next run: when it
/// starts, the janitor drops every test database whose run holds no lock any more (ended,
/// crashed or killed), never one of a live run. A test's guard waits while more than
/// [`Janitor::MAX_BACKLOG`] drops are queued, so that no more are ever left behind.
pub struct Janitor {
    run: u32,
    queue: tokio::sync::mpsc::UnboundedSender<String>,
    backlog: Arc<AtomicUsize>,
}

impl Janitor {
    const MAX_BACKLOG: usize = 4;
    /// The first key of the runs' advisory locks (the second is the run).
    const LOCK_CLASS: i32 = 0x6f72_6774; // "orgt"

    fn get() -> &'static Janitor {
        static JANITOR: OnceLock<Janitor> = OnceLock::new();
        JANITOR.get_or_init(|| {
            let run = loop {
                let n = uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff;
                if n != 0 {
                    break n;
                }
            };
            let (queue, mut names) = tokio::sync::mpsc::unbounded_channel::<String>();
            let backlog = Arc::new(AtomicUsize::new(0));
            let (locked_tx, locked) = std::sync::mpsc::channel();
            let pending = backlog.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut conn = PgConnection::connect(&format!("{}/postgres", server_url()))
                        .await
                        .expect("janitor: connect to the postgres database");
                    sqlx::query("select pg_advisory_lock($1, $2)")
                        .bind(Self::LOCK_CLASS)
                        .bind(run as i32)
                        .execute(&mut conn)
                        .await
                        .expect("janitor: lock this run");
                    let _ = locked_tx.send(());
                    Self::drop_ended_runs(&mut conn, run).await;
                    while let Some(name) = names.recv().await {
                        let pending = pending.clone();
                        tokio::spawn(async move {
                            drop_database(&name).await;
                            pending.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    // Keeps the connection, and with it the run's lock, to the end.
                    drop(conn);
                });
            });
            locked.recv().expect("janitor started");
            Janitor {
                run,
                queue,
                backlog,
            }
        })
    }

    /// Queues the drop of `name`; waits (blocking: this runs in `Drop`) while more than
    /// [`Self::MAX_BACKLOG`] drops are queued.
    fn drop_later(&self, name: String) {
        self.backlog.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(name).is_err() {
            self.backlog.fetch_sub(1, Ordering::SeqCst);
        }
        while self.backlog.load(Ordering::SeqCst) > Self::MAX_BACKLOG {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Drops the databases of runs that hold no lock: they have ended.
    async fn drop_ended_runs(conn: &mut PgConnection, this_run: u32) {
        let names: Vec<String> =
            sqlx::query_scalar("select datname::text from pg_database where datname ~ $1")
                .bind(format!("^{TEST_DB_PREFIX}[0-9]+_[0-9a-f]+$"))
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default();
        let mut runs: HashMap<u32, Vec<String>> = HashMap::new();
        for name in names {
            let run = name[TEST_DB_PREFIX.len()..]
                .split('_')
                .next()
                .and_then(|r| r.parse::<u32>().ok());
            if let Some(run) = run.filter(|r| *r != this_run && *r <= i32::MAX as u32) {
                runs.entry(run).or_default().push(name);
            }
        }
        for (run, names) in runs {
            let ended: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, $2)")
                .bind(Self::LOCK_CLASS)
                .bind(run as i32)
                .fetch_one(&mut *conn)
                .await
                .unwrap_or(false);
            if !ended {
                continue;
            }
            futures_util::future::join_all(names.iter().map(|name| drop_database(name))).await;
            let _ = sqlx::query("select pg_advisory_unlock($1, $2)")
                .bind(Self::LOCK_CLASS)
                .bind(run as i32)
                .execute(&mut *conn)
                .await;
        }
    }
}

async fn drop_database(name: &str) {
    if let Ok(mut conn) = PgConnection::connect(&format!("{}/postgres", server_url())).await {
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                r#"drop database if exists "{name}" with (force)"#
            )))
            .await;
        let _ = conn.close().await;
    }
}

/// The name of a database holding every migration, built once per migration set.
///
/// Named by a digest of the embedded migrations, so any number of test processes, from this
/// checkout or another one with the same migrations, share one; a changed migration gets a new
/// name. A template is complete once it is marked `is_template` (the last step of building
/// it), so one left half-built by an aborted run is dropped and built again. Building is
/// serialized across processes by an advisory lock, and within this process by the `OnceCell`.
/// Templates of other migration sets that were built more than a day ago are dropped then.
async fn migrated_template() -> &'static str {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE.get_or_init(build_template).await
}

const TEMPLATE_PREFIX: &str = "orgwall_test_template_";

async fn build_template() -> String {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for m in orgwall::MIGRATOR.iter() {
        digest.update(&m.version.to_le_bytes());
        digest.update(&m.checksum);
    }
    let hex: String = digest.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!("{TEMPLATE_PREFIX}{hex}");

    let mut conn = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("connect to the postgres database");
    conn.execute("select pg_advisory_lock(hashtext('orgwall_test_template'))")
        .await
        .expect("template lock");
    let complete: Option<bool> =
        sqlx::query_scalar("select datistemplate from pg_database where datname = $1")
            .bind(&name)
            .fetch_optional(&mut conn)
            .await
            .expect("look up the template");
    if complete != Some(true) {
        if complete == Some(false) {
            drop_template(&mut conn, &name).await;
        }
        let url = format!("{}/{name}", server_url());
        let settings = Settings::from_map(&HashMap::from([("database_url".into(), url)])).unwrap();
        orgwall::commands::migrate(&settings)
            .await
            .expect("migrate");
        // No connections from now on: cloning needs a template nobody is connected to.
        conn.execute(sqlx::AssertSqlSafe(format!(
            r#"alter database "{name}" with is_template true allow_connections false"#
        )))
        .await
        .expect("mark the template complete");
        conn.execute(sqlx::AssertSqlSafe(format!(
            r#"comment on database "{name}" is '{}'"#,
            now()
        )))
        .await
        .expect("date the template");
        let stale: Vec<String> = sqlx::query_scalar(
            "select d.datname from pg_database d
               join pg_shdescription s on s.objoid = d.oid
              where d.datname like $1 || '%' and d.datname <> $2
                and case when s.description ~ '^[0-9]{1,18}$'
                         then s.description::bigint end < $3",
        )
        .bind(TEMPLATE_PREFIX)
        .bind(&name)
        .bind(now() - 86_400)
        .fetch_all(&mut conn)
        .await
        .expect("list stale templates");
        for old in stale {
            drop_template(&mut conn, &old).await;
        }
    }
    conn.execute("select pg_advisory_unlock(hashtext('orgwall_test_template'))")
        .await
        .expect("template unlock");
    let _ = conn.close().await;
    name
}

async fn drop_template(conn: &mut PgConnection, name: &str) {
    conn.execute(sqlx::AssertSqlSafe(format!(
        r#"alter database "{name}" with is_template false allow_connections true"#
    )))
    .await
    .expect("unmark a template");
    conn.execute(sqlx::AssertSqlSafe(format!(
        r#"drop database "{name}" with (force)"#
    )))
    .await
    .expect("drop a template");
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
///
/// Taken below the kernel's ephemeral range (32768 and up here), where no server of this suite
/// that binds port 0 can be handed it between this check and the real bind, and never twice in
/// one test process; each process starts at its own offset.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 131) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
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
        let db = TestDb::create().await;
        let mut vars = base_vars(&db.url, &issuer);
        customize(&mut vars);
        let settings = Settings::from_map(&vars).expect("settings");
        let app = Application::build(settings.clone())
            .await
            .expect("build app");
        let port = app.port();
        let metrics_port = app.metrics_port();
        let server = app.handle();
        tokio::spawn(app.run_until_stopped());
        let admin_pool = PgPool::connect(&db.url).await.expect("admin pool");
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            admin_pool,
            issuer,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            settings,
            metrics_port,
            server,
            db,
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

    pub async fn patch_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
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

/// The admin API and the token endpoint, as a client of the built-in issuer uses them.
impl TestApp {
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        let (status, out) = self.admin(reqwest::Method::POST, path, Some(body)).await;
        assert!(status == 200 || status == 201, "{path}: {status} {out}");
        out
    }

    /// The tutorial's setup: API with four scopes, org, org-scoped app with read+write.
    pub async fn setup_tutorial(&self, org: &str) -> (String, String) {
        let (status, _) = self.admin(reqwest::Method::GET, "/admin/apis", None).await;
        assert_eq!(status, 200);
        let _ = self
            .admin(
                reqwest::Method::POST,
                "/admin/apis",
                Some(
                    json!({"audience": AUDIENCE, "name": "Multi-Tenant Data API", "scopes": [
                    {"name": "read:data", "description": "Read records"},
                    {"name": "write:data", "description": "Create and update records"},
                    {"name": "delete:data", "description": "Delete records"},
                    {"name": "read:users", "description": "Read users"}]}),
                ),
            )
            .await;
        let _ = self
            .admin(
                reqwest::Method::POST,
                "/admin/orgs",
                Some(json!({"code": org, "name": org})),
            )
            .await;
        let app = self
            .admin_post(
                "/admin/apps",
                json!({"name": format!("{org} client"), "org_code": org}),
            )
            .await;
        let id = app["client_id"].as_str().unwrap().to_string();
        let secret = app["client_secret"].as_str().unwrap().to_string();
        self.admin_post(
            &format!("/admin/apps/{id}/authorize"),
            json!({"audience": AUDIENCE, "scopes": "read:data write:data"}),
        )
        .await;
        (id, secret)
    }

    /// The tutorial's setup for org_acme through the admin API of an orgwall at `base` (over
    /// HTTPS, say): an API with `scopes` (space-separated), all granted to a new app.
    pub async fn setup_tutorial_over(
        &self,
        client: &reqwest::Client,
        base: &str,
        scopes: &str,
    ) -> (String, String) {
        let post = |path: String, body: Value| {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
        };
        let api_scopes: Vec<Value> = scopes
            .split(' ')
            .map(|name| json!({"name": name}))
            .collect();
        post(
            "/admin/apis".into(),
            json!({"audience": AUDIENCE, "name": "API", "scopes": api_scopes}),
        )
        .await
        .unwrap();
        post(
            "/admin/orgs".into(),
            json!({"code": "org_acme", "name": "Acme"}),
        )
        .await
        .unwrap();
        let app: Value = post(
            "/admin/apps".into(),
            json!({"name": "acme", "org_code": "org_acme"}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let id = app["client_id"].as_str().unwrap().to_string();
        post(
            format!("/admin/apps/{id}/authorize"),
            json!({"audience": AUDIENCE, "scopes": scopes}),
        )
        .await
        .unwrap();
        (id, app["client_secret"].as_str().unwrap().to_string())
    }

    pub async fn token_request(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url("/oauth2/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.unwrap()
    }

    pub async fn token_by_post(
        &self,
        id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", AUDIENCE),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token_request(&form, None).await
    }

    pub async fn access_token(&self, id: &str, secret: &str) -> String {
        let res = self.token_by_post(id, secret, None).await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command; awaiting it here would block the runtime the server runs on.
        // The database goes with the `db` field, after this.
        drop(self.server.stop(false));
    }
}

/// Asserts the status and the JSON error body every refusal has (`error`: the status's
/// reason phrase, `message`), and returns the headers.
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

/// PUBLIC_URL (and so `iss`) of the `orgwall serve` processes that multi-instance tests start.
pub const SERVE_PUBLIC_URL: &str = "https://orgwall.test";

/// One `orgwall serve` process of the real binary on its own port, with the issuer and the admin
/// API on and the settings of `env` on top; ready (its `/ready` answered 200) once started,
/// killed when dropped.
pub struct ServeProcess {
    child: std::process::Child,
    pub base: String,
    pub http: reqwest::Client,
}

impl ServeProcess {
    pub async fn start(env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orgwall"));
        command
            .arg("serve")
            .current_dir(std::env::temp_dir())
            .env_remove("ORGWALL_CONFIG")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("PUBLIC_URL", SERVE_PUBLIC_URL)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("METRICS_ADDR", "off")
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("start orgwall serve");
        let process = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            if let Ok(res) = process.http.get(process.url("/ready")).send().await
                && res.status() == 200
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("orgwall serve did not come up");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
