//! orgwall behind PgBouncer 1.18 in transaction mode, as a deployment at scale runs it:
//! `DATABASE_URL` through the pooler, `DATABASE_STATEMENT_CACHE=false`, `DATABASE_LISTEN_URL`
//! direct, the service logging in as its runtime role. Each test starts its own PgBouncer
//! (`pool_mode = transaction`, 4 server connections, `ignore_startup_parameters =
//! extra_float_digits`, nothing else special) and the real binary (`orgwall serve`).
//!
//! Without `/usr/sbin/pgbouncer` these tests skip with a message, unless `CI` is set: then
//! they fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use orgwall::config::Settings;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, ServeProcess, TestDb, free_port, server_url};
use crate::lifecycle::CONVERGE;

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";
/// `default_pool_size`: the server connections PgBouncer opens per database and role.
const SERVER_CONNECTIONS: usize = 4;
/// What `migrate` stores as the runtime role's `statement_timeout` (not the default, 10s).
const STATEMENT_TIMEOUT: &str = "7s";

/// One PgBouncer process in transaction mode in front of the test server, killed (and its
/// directory removed) when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts PgBouncer for `users` (trust authentication, as the test server has). `None`,
    /// with a message, when PgBouncer is not installed and `CI` is not set.
    async fn start(users: &[&str]) -> Option<Self> {
        if !Path::new(PGBOUNCER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and {PGBOUNCER} is missing: install pgbouncer (apt-get install pgbouncer)"
            );
            eprintln!("skipped: {PGBOUNCER} is missing (apt-get install pgbouncer)");
            return None;
        }
        let server = PgConnectOptions::from_str(&server_url()).unwrap();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "orgwall-pgbouncer-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).unwrap();
        let userlist: String = users.iter().map(|u| format!("\"{u}\" \"\"\n")).collect();
        std::fs::write(dir.join("userlist.txt"), userlist).unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {userlist}\n\
             pool_mode = transaction\n\
             default_pool_size = {SERVER_CONNECTIONS}\n\
             max_client_conn = 1000\n\
             ignore_startup_parameters = extra_float_digits\n",
            host = server.get_host(),
            server_port = server.get_port(),
            userlist = dir.join("userlist.txt").display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        let mut command = Command::new(PGBOUNCER);
        // PgBouncer refuses to run as root; it then needs a user to switch to.
        if running_as_root() {
            use std::os::unix::fs::PermissionsExt;
            for file in ["", "userlist.txt", "pgbouncer.ini"] {
                let mode = if file.is_empty() { 0o755 } else { 0o644 };
                std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(mode))
                    .unwrap();
            }
            command.args(["-u", "postgres"]);
        }
        let log = std::fs::File::create(dir.join("pgbouncer.log")).unwrap();
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pgbouncer");
        let mut bouncer = Self { child, port, dir };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            let exited = bouncer.child.try_wait().unwrap();
            if exited.is_some() || started.elapsed() > Duration::from_secs(10) {
                panic!("pgbouncer did not start: {}", bouncer.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(bouncer)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// A URL for `role` on `database` through this PgBouncer.
    fn url(&self, role: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{role}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A runtime login role of this test's own (roles are cluster-wide), dropped at the end.
struct RuntimeRole {
    name: String,
    password: String,
}

impl Drop for RuntimeRole {
    fn drop(&mut self) {
        let role = self.name.clone();
        // Drop runs outside async context: a thread with its own runtime, as helpers.rs does.
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
                            r#"drop owned by "{role}"; drop role if exists "{role}""#
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A database migrated by `orgwall migrate` with a runtime role, and PgBouncer in front of it.
/// Fields drop in order: the pooler, then the role, then the database.
struct Deployment {
    bouncer: PgBouncer,
    role: RuntimeRole,
    db: TestDb,
}

impl Deployment {
    async fn start() -> Option<Self> {
        let db = TestDb::create().await;
        let role = RuntimeRole {
            name: format!(
                "orgwall_test_rt_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            password: uuid::Uuid::new_v4().simple().to_string(),
        };
        // The clone lacks what `migrate` sets per database (grants, the role's settings).
        let settings = Settings::from_map(&HashMap::from([
            ("database_url".into(), db.url.clone()),
            ("database_runtime_role".into(), role.name.clone()),
            ("database_runtime_password".into(), role.password.clone()),
            ("db_statement_timeout".into(), STATEMENT_TIMEOUT.into()),
        ]))
        .unwrap();
        orgwall::commands::migrate(&settings)
            .await
            .expect("migrate");
        let bouncer = PgBouncer::start(&[&role.name]).await?;
        Some(Self { bouncer, role, db })
    }

    fn pooled_url(&self) -> String {
        self.bouncer
            .url(&self.role.name, &self.role.password, &self.db.name)
    }

    fn direct_url(&self) -> String {
        let server = server_url();
        let host = server.rsplit('@').next().unwrap();
        format!(
            "postgres://{}:{}@{host}/{}",
            self.role.name, self.role.password, self.db.name
        )
    }

    /// A connection through PgBouncer as the runtime role. Only simple-protocol statements
    /// (`raw_sql`) are sent on it: it must not leave prepared statements of its own.
    async fn through_pooler(&self) -> PgConnection {
        PgConnection::connect(&self.pooled_url())
            .await
            .expect("connect through pgbouncer")
    }

    /// `orgwall serve` through the pooler (`pooled`) or directly, the LISTEN connection
    /// direct in both cases, named `listen_name` in `pg_stat_activity`.
    async fn serve(&self, pooled: bool, listen_name: &str) -> Instance {
        let url = if pooled {
            self.pooled_url()
        } else {
            self.direct_url()
        };
        Instance::start(&[
            ("DATABASE_URL", url),
            (
                "DATABASE_LISTEN_URL",
                format!("{}?application_name={listen_name}", self.direct_url()),
            ),
            ("DATABASE_STATEMENT_CACHE", (!pooled).to_string()),
            // More client connections than server connections: PgBouncer multiplexes them.
            ("DB_MAX_CONNECTIONS", "16".into()),
            ("WORKERS", "2".into()),
        ])
        .await
    }
}

/// Simple-protocol statements on `conn`; the text of the first column of the last row.
async fn last_text(conn: &mut PgConnection, sql: &'static str) -> String {
    let rows = sqlx::raw_sql(sql).fetch_all(conn).await.expect(sql);
    rows.last().expect("a row").get::<String, _>(0)
}

/// One `orgwall serve` process with the issuer and admin API on, killed when dropped.
struct Instance(ServeProcess);

impl std::ops::Deref for Instance {
    type Target = ServeProcess;
    fn deref(&self) -> &ServeProcess {
        &self.0
    }
}

impl Instance {
    async fn start(env: &[(&str, String)]) -> Self {
        Self(ServeProcess::start(env).await)
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let out: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status == 200 || status == 201, "{path}: {status} {out}");
        out
    }

    /// The tutorial's API (every scope) and, for each org, the org and an app granted it all;
    /// returns (client id, secret) per org.
    async fn tutorial_world(&self, orgs: &[&str]) -> Vec<(String, String)> {
        self.admin(
            "/admin/apis",
            json!({"audience": AUDIENCE, "name": "Multi-Tenant Data API", "scopes": [
                {"name": "read:data"}, {"name": "write:data"}, {"name": "delete:data"}]}),
        )
        .await;
        let mut apps = Vec::new();
        for org in orgs {
            self.admin("/admin/orgs", json!({"code": org, "name": org}))
                .await;
            let app = self
                .admin(
                    "/admin/apps",
                    json!({"name": format!("{org} client"), "org_code": org}),
                )
                .await;
            let id = app["client_id"].as_str().unwrap().to_owned();
            self.admin(
                &format!("/admin/apps/{id}/authorize"),
                json!({"audience": AUDIENCE, "scopes": "read:data write:data delete:data"}),
            )
            .await;
            apps.push((id, app["client_secret"].as_str().unwrap().to_owned()));
        }
        apps
    }

    async fn token_response(&self, id: &str, secret: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("audience", AUDIENCE)])
            .basic_auth(id, Some(secret))
            .send()
            .await
            .unwrap()
    }

    async fn token(&self, id: &str, secret: &str) -> String {
        let res = self.token_response(id, secret).await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn the_tutorial_flow_works_through_pgbouncer_in_transaction_mode() {
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    let app = deployment.serve(true, "orgwall-listen-pooled").await;
    let apps = app.tutorial_world(&["org_acme", "org_beta"]).await;
    let acme = app.token(&apps[0].0, &apps[0].1).await;
    let beta = app.token(&apps[1].0, &apps[1].1).await;
    use reqwest::Method;

    let (status, list) = app
        .send(Method::GET, "/orgs/org_acme/data", &acme, None)
        .await;
    assert_eq!((status, list["total"].clone()), (200, json!(0)), "{list}");
    let (status, created) = app
        .send(
            Method::POST,
            "/orgs/org_acme/data",
            &acme,
            Some(json!({"name": "Acme Record A", "value": {"amount": 100, "note": "it's"}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["record"]["id"], json!(1));
    let (status, got) = app
        .send(Method::GET, "/orgs/org_acme/data/1", &acme, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        got["record"]["value"],
        json!({"amount": 100, "note": "it's"})
    );
    let (status, updated) = app
        .send(
            Method::PATCH,
            "/orgs/org_acme/data/1",
            &acme,
            Some(json!({"value": 150})),
        )
        .await;
    assert_eq!(
        (status, updated["record"]["value"].clone()),
        (200, json!(150))
    );
    let (status, list) = app
        .send(Method::GET, "/orgs/org_acme/data", &acme, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], json!(1));
    assert_eq!(list["records"][0]["name"], json!("Acme Record A"));

    // The first wall: another org's token is refused, and it reads only its own org.
    let (status, refused) = app
        .send(Method::GET, "/orgs/org_acme/data", &beta, None)
        .await;
    assert_eq!(status, 403, "{refused}");
    let (status, list) = app
        .send(Method::GET, "/orgs/org_beta/data", &beta, None)
        .await;
    assert_eq!((status, list["total"].clone()), (200, json!(0)));
    let (status, _) = app
        .send(Method::GET, "/orgs/org_beta/data/1", &beta, None)
        .await;
    assert_eq!(status, 404);

    // The second wall through the pooler: as orgwall_tenant, RLS shows one org or nothing.
    let mut conn = deployment.through_pooler().await;
    let as_beta = "begin; set local role orgwall_tenant;
                   select set_config('app.org_code', 'org_beta', true);
                   select count(*)::text from records; commit";
    assert_eq!(last_text(&mut conn, as_beta).await, "0");
    let as_acme = "begin; set local role orgwall_tenant;
                   select set_config('app.org_code', 'org_acme', true);
                   select count(*)::text from records; commit";
    assert_eq!(last_text(&mut conn, as_acme).await, "1");
    let no_context = "begin; set local role orgwall_tenant;
                      select count(*)::text from records; commit";
    assert_eq!(last_text(&mut conn, no_context).await, "0");

    let (status, _) = app
        .send(Method::DELETE, "/orgs/org_acme/data/1", &acme, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(Method::GET, "/orgs/org_acme/data/1", &acme, None)
        .await;
    assert_eq!(status, 404);
    let (status, list) = app
        .send(Method::GET, "/orgs/org_acme/data", &acme, None)
        .await;
    assert_eq!((status, list["total"].clone()), (200, json!(0)));
}

#[tokio::test]
async fn concurrent_orgs_over_four_server_connections_see_only_their_rows_and_leave_nothing_behind()
{
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    let app = deployment.serve(true, "orgwall-listen-pooled").await;
    let orgs = ["org_one", "org_two", "org_three", "org_four"];
    let apps = app.tutorial_world(&orgs).await;
    let mut tokens = Vec::new();
    for (org, (id, secret)) in orgs.iter().zip(&apps) {
        tokens.push((*org, app.token(id, secret).await));
    }
    let marker = |org: &str| format!("marker {org} {}", &deployment.db.name);
    for (org, token) in &tokens {
        let (status, _) = app
            .send(
                reqwest::Method::POST,
                &format!("/orgs/{org}/data"),
                token,
                Some(json!({"name": marker(org), "value": org})),
            )
            .await;
        assert_eq!(status, 201);
    }

    // 200 requests at once, reads and writes of four orgs, over 16 client connections that
    // PgBouncer serves with 4 server connections.
    let requests = (0..200).map(|i| {
        let (org, token) = &tokens[i % tokens.len()];
        let app = &app;
        async move {
            let path = format!("/orgs/{org}/data?limit=1000");
            if i % 5 == 0 {
                let body = json!({"name": marker(org), "value": i});
                let (status, out) = app
                    .send(
                        reqwest::Method::POST,
                        &format!("/orgs/{org}/data"),
                        token,
                        Some(body),
                    )
                    .await;
                assert_eq!(status, 201, "request {i}: {out}");
                assert_eq!(out["org_code"], json!(org));
            } else {
                let (status, out) = app.send(reqwest::Method::GET, &path, token, None).await;
                assert_eq!(status, 200, "request {i}: {out}");
                assert_eq!(out["org_code"], json!(org));
                let records = out["records"].as_array().unwrap();
                assert!(!records.is_empty(), "request {i}: {out}");
                for record in records {
                    assert_eq!(record["name"], json!(marker(org)), "request {i} of {org}");
                }
            }
        }
    });
    futures_util::future::join_all(requests).await;

    // Every write landed in its own org (as the superuser sees the table, RLS bypassed).
    let admin = sqlx::PgPool::connect(&deployment.db.url).await.unwrap();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("select org_code, name, count(*) from records group by 1, 2 order by 1")
            .fetch_all(&admin)
            .await
            .unwrap();
    assert_eq!(rows.len(), orgs.len(), "{rows:?}");
    for (org, name, count) in &rows {
        assert_eq!(name, &marker(org));
        assert_eq!(*count, 1 + 10, "{org}");
    }

    // The pooler's server connections for the runtime role: at most four...
    let servers: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where datname = current_database() and usename = $1
            and application_name <> 'orgwall-listen-pooled'",
    )
    .bind(&deployment.role.name)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(
        (1..=SERVER_CONNECTIONS as i64).contains(&servers),
        "{servers} server connections"
    );
    // ...and on each of them, taken all at once by four transactions of our own: no tenant
    // context, the login role (not orgwall_tenant), no prepared statement left.
    let mut conns = Vec::new();
    for _ in 0..SERVER_CONNECTIONS {
        let mut conn = deployment.through_pooler().await;
        sqlx::raw_sql("begin").execute(&mut conn).await.unwrap();
        conns.push(conn);
    }
    let mut pids = Vec::new();
    for conn in &mut conns {
        let row = sqlx::raw_sql(
            "select pg_backend_pid()::text,
                    coalesce(current_setting('app.org_code', true), ''),
                    current_user::text,
                    (select count(*) from pg_prepared_statements)::text",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let (pid, org, user, prepared): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(org, "", "a tenant context survived on server {pid}");
        assert_eq!(user, deployment.role.name, "the role on server {pid}");
        assert_eq!(prepared, "0", "prepared statements left on server {pid}");
        pids.push(pid);
        sqlx::raw_sql("commit").execute(&mut *conn).await.unwrap();
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), SERVER_CONNECTIONS, "four server connections");
}

#[tokio::test]
async fn the_timeouts_apply_through_the_pooler() {
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    let mut conn = deployment.through_pooler().await;
    assert_eq!(
        last_text(&mut conn, "show statement_timeout").await,
        STATEMENT_TIMEOUT
    );
    assert_eq!(
        last_text(&mut conn, "show idle_in_transaction_session_timeout").await,
        "30s"
    );
}

#[tokio::test]
async fn an_app_disabled_on_one_instance_is_refused_by_another_within_5_seconds_with_or_without_the_pooler()
 {
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    for (round, pooled) in [("direct", false), ("pooled", true)] {
        let a = deployment
            .serve(pooled, &format!("orgwall-listen-a-{round}"))
            .await;
        let b = deployment
            .serve(pooled, &format!("orgwall-listen-b-{round}"))
            .await;
        let org = format!("org_{round}");
        let apps = if pooled {
            // The API exists since the first round.
            let out = a
                .admin("/admin/orgs", json!({"code": org, "name": org}))
                .await;
            assert_eq!(out["code"], json!(org));
            let app = a
                .admin(
                    "/admin/apps",
                    json!({"name": "pooled client", "org_code": org}),
                )
                .await;
            let id = app["client_id"].as_str().unwrap().to_owned();
            a.admin(
                &format!("/admin/apps/{id}/authorize"),
                json!({"audience": AUDIENCE, "scopes": "read:data"}),
            )
            .await;
            vec![(id, app["client_secret"].as_str().unwrap().to_owned())]
        } else {
            a.tutorial_world(&[&org]).await
        };
        let (id, secret) = &apps[0];
        // b has looked the app up (and may remember it).
        b.token(id, secret).await;

        a.admin(&format!("/admin/apps/{id}/disable"), json!({}))
            .await;
        let started = Instant::now();
        loop {
            if b.token_response(id, secret).await.status() == 401 {
                break;
            }
            assert!(
                started.elapsed() <= CONVERGE,
                "{round}: b still issues tokens to the disabled app"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        println!(
            "{round}: app disabled on a, refused by b after {} ms",
            started.elapsed().as_millis()
        );
    }
}
