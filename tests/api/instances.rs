//! Several orgwall instances on one database: a revocation made on one is enforced by the
//! others within 5 seconds, also when an instance's LISTEN connection was killed or silently
//! black-holed. The instances are the real binary (`orgwall serve`), each with its own port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, ServeProcess, TestApp, server_url};
use crate::lifecycle::{CONVERGE, assert_revoked, orgwall, until_status};

/// One `orgwall serve` process, killed when dropped.
struct Instance(ServeProcess);

impl std::ops::Deref for Instance {
    type Target = ServeProcess;
    fn deref(&self) -> &ServeProcess {
        &self.0
    }
}

impl Instance {
    /// Serves `database` with the issuer and admin API on; its LISTEN connection is named
    /// `listen_name` in `pg_stat_activity`.
    async fn start(database: &str, listen_name: &str) -> Self {
        Self(
            ServeProcess::start(&[
                ("DATABASE_URL", database.to_owned()),
                (
                    "DATABASE_LISTEN_URL",
                    format!("{database}?application_name={listen_name}"),
                ),
                ("WORKERS", "1".into()),
                ("DB_MAX_CONNECTIONS", "4".into()),
            ])
            .await,
        )
    }

    async fn admin(&self, path: &str) -> Value {
        let res = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    async fn token(&self, id: &str, secret: &str) -> String {
        let res = self
            .http
            .post(self.url("/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("audience", AUDIENCE)])
            .basic_auth(id, Some(secret))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn read(&self, token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/orgs/org_acme/data"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

/// A migrated database (owned by a TestApp, which drops it) and two instances on it; the
/// tutorial's org_acme app, set up through the first.
async fn two_instances() -> (TestApp, Instance, Instance, String, String) {
    let owner = TestApp::spawn().await;
    let database = owner.db.url.clone();
    let a = Instance::start(&database, "orgwall-listen-a").await;
    let b = Instance::start(&database, "orgwall-listen-b").await;
    let (id, secret) = owner
        .setup_tutorial_over(&a.http, &a.base, "read:data")
        .await;
    (owner, a, b, id, secret)
}

async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// How long until `b` refuses `token`; asserts the revoked answer and at most 5 s.
async fn measure(b: &Instance, token: &str, case: &str) -> Duration {
    let took = until_status(&b.http, &b.url("/orgs/org_acme/data"), token, 401)
        .await
        .unwrap_or_else(|| panic!("{case}: not refused within {CONVERGE:?}"));
    println!(
        "{case}: refused by the other instance after {} ms",
        took.as_millis()
    );
    took
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_enforced_by_another_within_5_seconds() {
    let (owner, a, b, id, secret) = two_instances().await;

    // Notifications up.
    let token = a.token(&id, &secret).await;
    assert_eq!(b.read(&token).await.status(), 200, "remembered by b");
    a.admin(&format!("/admin/apps/{id}/revoke-tokens")).await;
    measure(&b, &token, "LISTEN up").await;
    assert_revoked(b.read(&token).await).await;

    // b's LISTEN connection killed just before the revocation.
    next_second().await;
    let token = a.token(&id, &secret).await;
    assert_eq!(b.read(&token).await.status(), 200);
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = 'orgwall-listen-b'",
    )
    .fetch_all(&owner.admin_pool)
    .await
    .unwrap();
    assert_eq!(killed, [true], "b's LISTEN connection");
    a.admin(&format!("/admin/apps/{id}/revoke-tokens")).await;
    measure(&b, &token, "LISTEN killed").await;
    assert_revoked(b.read(&token).await).await;

    // An org switched off on a is refused by b too, and so are its apps at b's token endpoint.
    next_second().await;
    let token = a.token(&id, &secret).await;
    assert_eq!(b.read(&token).await.status(), 200);
    a.admin("/admin/orgs/org_acme/disable").await;
    measure(&b, &token, "org disabled").await;
    let started = Instant::now();
    loop {
        let res = b
            .http
            .post(b.url("/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("audience", AUDIENCE)])
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        if res.status() == 401 {
            break;
        }
        assert!(
            started.elapsed() <= CONVERGE,
            "b still issues for a disabled org"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_key_revoked_on_one_instance_is_refused_by_another_within_5_seconds() {
    let (_owner, a, b, id, secret) = two_instances().await;
    let token = a.token(&id, &secret).await;
    assert_eq!(b.read(&token).await.status(), 200, "remembered by b");
    let jwks: Value = a
        .http
        .get(a.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();

    let out = a.admin(&format!("/admin/keys/{kid}/revoke")).await;
    let new_kid = out["replaced_by"].as_str().unwrap().to_owned();
    let took = until_status(&b.http, &b.url("/orgs/org_acme/data"), &token, 401).await;
    let took = took.expect("b refuses the revoked key's token within 5 s");
    println!(
        "key revoked: refused by the other instance after {} ms",
        took.as_millis()
    );

    // b publishes only the new key and accepts what it signs.
    let started = Instant::now();
    loop {
        let jwks: Value = b
            .http
            .get(b.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if jwks["keys"] == json!([]) || jwks["keys"][0]["kid"] == json!(new_kid) {
            assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
            break;
        }
        assert!(started.elapsed() <= CONVERGE, "b still publishes {kid}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let fresh = a.token(&id, &secret).await;
    let took = until_status(&b.http, &b.url("/orgs/org_acme/data"), &fresh, 200).await;
    assert!(took.is_some(), "b accepts the new key's tokens");
}

/// A TCP proxy to PostgreSQL that can silently stop forwarding (a "black hole": no reset, no
/// close), as a NAT or firewall that dropped the connection's state does.
struct BlackHole {
    port: u16,
    on: Arc<AtomicBool>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = server_url()
            .trim_start_matches("postgres://")
            .rsplit('@')
            .next()
            .unwrap()
            .to_owned();
        let on = Arc::new(AtomicBool::new(false));
        let flag = on.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, flag.clone()));
                tokio::spawn(pipe(sr, cw, flag.clone()));
            }
        });
        Self { port, on }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    black_hole: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if black_hole.load(Ordering::SeqCst) {
            // Swallow this and everything after it, keeping both sockets open.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_black_holed_listen_connection_stops_the_client_cache_within_5_seconds() {
    let proxy = BlackHole::start().await;
    let app = TestApp::spawn_issuer_with(|vars| {
        let database = vars["database_url"].clone();
        let name = database.rsplit('/').next().unwrap().to_owned();
        vars.insert(
            "database_listen_url".into(),
            format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port),
        );
    })
    .await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    // The LISTEN connection goes through the proxy; the request pool does not.
    let through_proxy: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where application_name = 'orgwall-listen' and datname = current_database()",
    )
    .fetch_one(&app.admin_pool)
    .await
    .unwrap();
    assert_eq!(through_proxy, 1);
    // Served from the client cache from now on.
    for _ in 0..3 {
        assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 200);
    }

    proxy.on.store(true, Ordering::SeqCst);
    // Deleted by another process: this instance hears of it only through notifications, which
    // now vanish.
    let black_holed = Instant::now();
    let (ok, _, err) = orgwall(&app, &["app", "delete", "--client-id", &id]);
    assert!(ok, "{err}");
    let started = Instant::now();
    while app.token_by_post(&id, &secret, None).await.status() != 401 {
        assert!(
            started.elapsed() <= CONVERGE,
            "the deleted app still gets tokens after {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    println!(
        "black-holed LISTEN: deleted app refused {} ms after the delete ({} ms after the black hole)",
        started.elapsed().as_millis(),
        black_holed.elapsed().as_millis()
    );
    // Its tokens are refused too: the periodic re-read goes through the request pool.
    let took = until_status(&app.http, &app.url("/orgs/org_acme/data"), &token, 401).await;
    assert!(took.is_some(), "the deleted app's token is still accepted");
    println!(
        "black-holed LISTEN: the deleted app's token refused {} ms after the delete",
        started.elapsed().as_millis()
    );
}
