//! Faults, load and bad bodies: the database unreachable, its backends killed, a
//! lock that never lets go, an exhausted pool, SIGTERM with a request in flight; 200
//! concurrent writers; bodies that break parsers. Every bound below is a "does not hang"
//! timeout, not a performance claim. JWKS faults are in jwks.rs; an abandoned request
//! mid-transaction is in second_wall.rs.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::future::join_all;
use orgwall::config::Settings;
use orgwall::startup::Application;
use serde_json::{Value, json};

use crate::helpers::{FakeIssuer, TestApp, assert_error, base_vars, free_port};

/// The answer while the database is away: a 503 with the usual JSON error body and no
/// internal detail.
fn unavailable() -> Value {
    json!({"error": "Service Unavailable", "message": "Service temporarily unavailable"})
}

/// No request may take longer than this while the database misbehaves.
const BOUND: Duration = Duration::from_secs(5);

async fn within_bound(req: reqwest::RequestBuilder, what: &str) -> (u16, Value) {
    let res = tokio::time::timeout(BOUND, req.send())
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {BOUND:?}"))
        .expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    for detail in [
        "127.0.0.1:1",
        "refused",
        "sqlx",
        "pool",
        "timed out",
        "57014",
        "lock",
    ] {
        assert!(!text.contains(detail), "{what} leaks {detail:?}: {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Builds orgwall the way `serve` does, against a database server that refuses every
/// connection (so a short acquire timeout cannot fail a query that would have succeeded).
async fn app_without_database(
    issuer: &FakeIssuer,
    extra: &[(&str, &str)],
) -> (String, actix_web::dev::ServerHandle) {
    let mut vars = base_vars("postgres://postgres@127.0.0.1:1/orgwall_nowhere", issuer);
    vars.insert("db_acquire_timeout".into(), "250ms".into());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let app = Application::build(Settings::from_map(&vars).unwrap())
        .await
        .expect("orgwall starts while the database is down");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    (address, handle)
}

#[tokio::test]
async fn with_postgres_unreachable_health_is_up_and_every_other_answer_is_a_prompt_503() {
    let issuer = FakeIssuer::start().await;
    let (address, handle) = app_without_database(&issuer, &[]).await;
    let http = reqwest::Client::new();
    let token = issuer.token("org_acme", "read:data write:data delete:data read:users");
    let url = |p: &str| format!("{address}{p}");

    let (status, body) = within_bound(http.get(url("/health")), "/health").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = within_bound(http.get(url("/ready")), "/ready").await;
    assert_eq!(
        (status, body["error"].clone()),
        (503, json!("Service Unavailable"))
    );

    let record = json!({"name": "n", "value": 1});
    for (method, path, body) in [
        ("GET", "/orgs/org_acme/data", None),
        ("POST", "/orgs/org_acme/data", Some(&record)),
        ("GET", "/orgs/org_acme/data/1", None),
        ("PATCH", "/orgs/org_acme/data/1", Some(&record)),
        ("DELETE", "/orgs/org_acme/data/1", None),
        ("GET", "/orgs/org_acme/users", None),
    ] {
        let mut req = http
            .request(method.parse().unwrap(), url(path))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let what = format!("{method} {path}");
        assert_eq!(
            within_bound(req, &what).await,
            (503, unavailable()),
            "{what}"
        );
    }
    // The token is checked before the database is needed: a bad one is still a 401.
    let (status, _) = within_bound(
        http.get(url("/orgs/org_acme/data")).bearer_auth("x.y.z"),
        "bad token",
    )
    .await;
    assert_eq!(status, 401);
    handle.stop(false).await;
}

/// Found by this suite: a first-use initialiser shared by tenant requests (a role check behind a
/// `tokio::sync::OnceCell`) let one attempt run at a time, so while the database was down the
/// N-th of N concurrent tenant requests waited N × DB_ACQUIRE_TIMEOUT. Each request must try on
/// its own and fail within one acquire timeout.
#[tokio::test]
async fn concurrent_requests_in_an_outage_each_fail_within_the_bound() {
    let issuer = FakeIssuer::start().await;
    let (address, handle) = app_without_database(&issuer, &[]).await;
    let http = reqwest::Client::new();
    let token = issuer.token("org_acme", "read:data read:users");
    let answers = join_all((0..8).map(|i| {
        let path = if i % 2 == 0 {
            "/orgs/org_acme/data"
        } else {
            "/orgs/org_acme/users"
        };
        let req = http.get(format!("{address}{path}")).bearer_auth(&token);
        async move { within_bound(req, &format!("concurrent request {i}")).await }
    }))
    .await;
    for answer in answers {
        assert_eq!(answer, (503, unavailable()));
    }
    handle.stop(false).await;
}

#[tokio::test]
async fn with_postgres_unreachable_the_token_endpoint_is_a_prompt_503() {
    let issuer = FakeIssuer::start().await;
    let port = free_port().to_string();
    let (address, handle) = app_without_database(
        &issuer,
        &[
            ("issuer_enabled", "true"),
            ("port", &port),
            ("auth_issuer", ""),
            ("auth_jwks_url", ""),
        ],
    )
    .await;
    let req = reqwest::Client::new()
        .post(format!("{address}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("audience", "https://api.yourapp.com"),
        ]);
    let (status, body) = within_bound(req, "POST /oauth2/token").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    handle.stop(false).await;
}

/// Ends every backend orgwall holds on the test database, as a PostgreSQL restart would.
async fn terminate_orgwall_backends(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "select count(*) from (
           select pg_terminate_backend(pid) from pg_stat_activity
            where datname = current_database() and application_name = 'orgwall'
              and pid <> pg_backend_pid()) t",
    )
    .fetch_one(&app.admin_pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn killed_database_connections_are_replaced_and_the_service_recovers_by_itself() {
    let app = TestApp::spawn_with(|v| {
        v.insert("db_acquire_timeout".into(), "1s".into());
    })
    .await;
    app.create_record("org_acme", "before", json!(1)).await;
    let token = app.issuer.token("org_acme", "read:data write:data");
    let list = || {
        app.http
            .get(app.url("/orgs/org_acme/data"))
            .bearer_auth(&token)
    };

    for round in 0..3 {
        // Requests in flight while the backends die: each a 200 or a 503.
        let (statuses, killed) = tokio::join!(
            join_all((0..20).map(|_| within_bound(list(), "list during termination"))),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                terminate_orgwall_backends(&app).await
            }
        );
        for (status, body) in &statuses {
            assert!(
                *status == 200 || (*status == 503 && *body == unavailable()),
                "round {round}: {status} {body}"
            );
        }
        assert!(killed >= 1 || round > 0, "nothing was terminated");
        // Then, within a few tries, all is well again without a restart.
        let mut status = 0;
        for _ in 0..5 {
            status = within_bound(list(), "list after termination").await.0;
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status, 200, "round {round}: no recovery");
    }
    assert_eq!(
        within_bound(app.http.get(app.url("/ready")), "/ready")
            .await
            .0,
        200
    );
    let id = app.create_record("org_acme", "after", json!(2)).await;
    assert_eq!(id, 2);
}

#[tokio::test]
async fn after_its_idle_connections_are_killed_at_most_one_request_fails() {
    // Connections are handed out without a ping while in steady use; once one is found dead,
    // the others are pinged before use, so a restart costs one request, not one per
    // pooled connection.
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "read:data");
    let list = || {
        app.http
            .get(app.url("/orgs/org_acme/data"))
            .bearer_auth(&token)
    };
    let warm = join_all((0..16).map(|_| within_bound(list(), "list to open connections"))).await;
    assert!(warm.iter().all(|(status, _)| *status == 200));
    let killed = terminate_orgwall_backends(&app).await;
    assert!(
        killed >= 3,
        "only {killed} pooled connections: nothing to show"
    );

    let mut statuses = Vec::new();
    for _ in 0..killed {
        statuses.push(within_bound(list(), "list after termination").await);
    }
    let failed = statuses.iter().filter(|(status, _)| *status != 200).count();
    assert!(failed <= 1, "{failed} of {killed} failed: {statuses:?}");
    for (status, body) in &statuses {
        assert!(*status == 200 || (*status == 503 && *body == unavailable()));
    }
}

/// Holds an access-exclusive lock on `records` until the returned connection is dropped.
async fn lock_records(app: &TestApp) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut blocker = app.admin_pool.acquire().await.unwrap();
    sqlx::raw_sql("begin; lock table records in access exclusive mode")
        .execute(&mut *blocker)
        .await
        .unwrap();
    blocker
}

#[tokio::test]
async fn a_statement_stuck_behind_a_lock_fails_503_within_the_statement_timeout() {
    let app = TestApp::spawn_with(|v| {
        v.insert("db_statement_timeout".into(), "1s".into());
    })
    .await;
    let token = app.issuer.token("org_acme", "read:data write:data");
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    let mut blocker = lock_records(&app).await;

    let read = app
        .http
        .get(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token);
    assert_eq!(
        within_bound(read, "read behind a lock").await,
        (503, unavailable())
    );
    let write = app
        .http
        .post(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token)
        .json(&json!({"name": "n", "value": 1}));
    assert_eq!(
        within_bound(write, "write behind a lock").await,
        (503, unavailable())
    );

    sqlx::raw_sql("rollback")
        .execute(&mut *blocker)
        .await
        .unwrap();
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    assert_eq!(
        app.count_all_records().await,
        0,
        "the timed-out write left nothing"
    );
}

/// Waits until one of orgwall's backends is blocked on a lock, so that "in flight" is a fact
/// rather than a guess about timing.
async fn wait_for_a_lock_waiter(pool: &sqlx::PgPool) {
    for _ in 0..100 {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
              where datname = current_database() and application_name = 'orgwall'
                and wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no orgwall request reached the lock");
}

/// Kills the child process if the test ends early.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_after_the_acquire_timeout() {
    let app = TestApp::spawn_with(|v| {
        v.insert("db_max_connections".into(), "1".into());
        v.insert("db_acquire_timeout".into(), "1s".into());
        v.insert("db_statement_timeout".into(), "4s".into());
    })
    .await;
    let token = app.issuer.token("org_acme", "read:data read:users");
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    let mut blocker = lock_records(&app).await;

    // The first request takes the only connection and waits on the lock...
    let first = tokio::spawn({
        let req = app
            .http
            .get(app.url("/orgs/org_acme/data"))
            .bearer_auth(&token);
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    wait_for_a_lock_waiter(&app.admin_pool).await;
    // ...so the second, which needs no lock, waits for a connection: 503 after 1 s.
    let second = app
        .http
        .get(app.url("/orgs/org_acme/users"))
        .bearer_auth(&token);
    assert_eq!(
        within_bound(second, "request on an exhausted pool").await,
        (503, unavailable())
    );

    sqlx::raw_sql("rollback")
        .execute(&mut *blocker)
        .await
        .unwrap();
    assert_eq!(
        first.await.unwrap().unwrap(),
        200,
        "the lock holder's victim completes"
    );
    assert_eq!(
        app.get("/orgs/org_acme/users", Some(&token)).await.status(),
        200
    );
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_refuses_new_ones_and_exits_0() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let vars = base_vars(&app.db.url, &app.issuer);
    let mut serve = Reap(
        std::process::Command::new(env!("CARGO_BIN_EXE_orgwall"))
            .arg("serve")
            .current_dir(std::env::temp_dir())
            .envs(vars.iter().map(|(k, v)| (k.to_uppercase(), v)))
            .env("PORT", port.to_string())
            .env("RUST_LOG", "error")
            .env_remove("ORGWALL_CONFIG")
            .spawn()
            .unwrap(),
    );
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let mut up = false;
    for _ in 0..100 {
        up = fresh().get(url("/health")).send().await.is_ok();
        if up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "orgwall serve did not come up");
    let mut blocker = lock_records(&app).await;
    let token = app.issuer.token("org_acme", "read:data");
    let in_flight = tokio::spawn(
        fresh()
            .get(url("/orgs/org_acme/data"))
            .bearer_auth(token)
            .send(),
    );
    wait_for_a_lock_waiter(&app.admin_pool).await;

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut refused = false;
    for _ in 0..40 {
        refused = fresh().get(url("/health")).send().await.is_err();
        if refused {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections are still accepted after SIGTERM");
    assert!(
        !in_flight.is_finished(),
        "the in-flight request did not wait for its lock"
    );
    sqlx::raw_sql("rollback")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(res.status(), 200);
    let mut exit = None;
    for _ in 0..100 {
        exit = serve.0.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = exit.expect("orgwall did not exit within 5 s of draining");
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
async fn two_hundred_concurrent_writers_over_four_orgs_store_each_write_exactly_once() {
    let app = TestApp::spawn().await;
    let orgs = ["org_w0", "org_w1", "org_w2", "org_w3"];
    let tokens: HashMap<&str, String> = orgs
        .iter()
        .map(|o| (*o, app.issuer.token(o, "read:data write:data")))
        .collect();

    let created = join_all((0..200).map(|i| {
        let org = orgs[i % 4];
        let req = app
            .http
            .post(app.url(&format!("/orgs/{org}/data")))
            .bearer_auth(&tokens[org])
            .json(&json!({"name": format!("{org} #{i}"), "value": i}));
        async move {
            let res = tokio::time::timeout(Duration::from_secs(30), req.send())
                .await
                .expect("writer hung")
                .unwrap();
            assert_eq!(res.status(), 201, "writer {i}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["org_code"], org);
            (org, body["record"]["id"].as_i64().unwrap(), i as i64)
        }
    }))
    .await;

    assert_eq!(app.count_all_records().await, 200);
    for org in orgs {
        let mut ids: Vec<i64> = created.iter().filter(|c| c.0 == org).map(|c| c.1).collect();
        ids.sort();
        assert_eq!(
            ids,
            (1..=50).collect::<Vec<_>>(),
            "{org}: ids dense and unique"
        );
        let sent: BTreeSet<i64> = created.iter().filter(|c| c.0 == org).map(|c| c.2).collect();
        // Stored exactly once: the rows hold each value sent, no more, no fewer.
        let rows = app.rows_of(org).await;
        let stored: Vec<i64> = rows.iter().map(|r| r.2.as_i64().unwrap()).collect();
        assert_eq!(stored.len(), 50);
        assert_eq!(stored.iter().copied().collect::<BTreeSet<_>>(), sent);
        // Each org sees its own and only its own.
        let res = app
            .get(&format!("/orgs/{org}/data?limit=1000"), Some(&tokens[org]))
            .await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["total"], 50);
        let names = body["records"].as_array().unwrap();
        assert_eq!(names.len(), 50);
        assert!(
            names
                .iter()
                .all(|r| r["name"].as_str().unwrap().starts_with(&format!("{org} #"))),
            "{org} sees another org's record"
        );
    }
}

/// Every column of org_acme's records, as PostgreSQL prints them.
async fn acme_rows(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("select r::text from records r where org_code = 'org_acme' order by id")
        .fetch_all(&app.admin_pool)
        .await
        .unwrap()
}

async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.http
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts a 400 whose message contains each of `says` (case-insensitive).
async fn assert_400_saying(res: reqwest::Response, says: &[&str], case: &str) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("Bad Request")),
        "{case}: {body}"
    );
    let message = body["message"].as_str().unwrap_or("").to_lowercase();
    for s in says {
        assert!(
            message.contains(&s.to_lowercase()),
            "{case}: {message:?} should say {s:?}"
        );
    }
}

fn nested(depth: usize) -> Vec<u8> {
    format!(
        r#"{{"name":"deep","value":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

/// org_acme with record 1, a token that may read and write it, and the record as it was.
async fn one_record_to_protect() -> (TestApp, String, Vec<String>) {
    let app = TestApp::spawn().await;
    app.create_record("org_acme", "original", json!({"keep": true}))
        .await;
    let token = app.issuer.token("org_acme", "read:data write:data");
    let before = acme_rows(&app).await;
    (app, token, before)
}

/// Record 1 is as it was, nothing else was stored, and no id was burned.
async fn assert_nothing_changed(app: &TestApp, before: &[String]) {
    assert_eq!(acme_rows(app).await, before, "a bad body changed a record");
    assert_eq!(
        app.count_all_records().await,
        1,
        "a bad body stored something"
    );
    // No id was burned by a refused write.
    assert_eq!(app.create_record("org_acme", "next", json!(1)).await, 2);
}

#[tokio::test]
async fn a_body_that_is_not_valid_json_is_a_400_that_says_why_and_changes_nothing() {
    let (app, token, before) = one_record_to_protect().await;

    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "truncated JSON",
            br#"{"name":"x","value":"#.to_vec(),
            vec!["not valid JSON"],
        ),
        (
            "trailing garbage",
            br#"{"name":"x","value":1} x"#.to_vec(),
            vec!["not valid JSON", "trailing"],
        ),
        (
            "trailing comma",
            br#"{"name":"x","value":1,}"#.to_vec(),
            vec!["not valid JSON"],
        ),
        (
            "single quotes",
            br#"{'name':'x','value':1}"#.to_vec(),
            vec!["not valid JSON"],
        ),
        (
            "NaN",
            br#"{"name":"x","value":NaN}"#.to_vec(),
            vec!["not valid JSON"],
        ),
        (
            "nested 30,000 deep",
            nested(30_000),
            vec!["recursion limit"],
        ),
        (
            "1e400",
            br#"{"name":"x","value":1e400}"#.to_vec(),
            vec!["number out of range"],
        ),
        (
            "-1e400",
            br#"{"name":"x","value":-1e400}"#.to_vec(),
            vec!["number out of range"],
        ),
        (
            "an integer of 400 digits",
            format!(r#"{{"name":"x","value":1{}}}"#, "0".repeat(400)).into_bytes(),
            vec!["number out of range"],
        ),
        (
            "invalid UTF-8 in name",
            b"{\"name\":\"\xff\xfe\",\"value\":1}".to_vec(),
            vec!["not valid JSON", "invalid unicode"],
        ),
        (
            "invalid UTF-8 in value",
            b"{\"name\":\"x\",\"value\":\"\xc3\x28\"}".to_vec(),
            vec!["not valid JSON", "invalid unicode"],
        ),
        (
            "invalid UTF-8 outside strings",
            b"{\"name\":\"x\",\"value\":1}\xff".to_vec(),
            vec!["not valid JSON"],
        ),
        (
            "lone surrogate",
            br#"{"name":"x","value":"\ud800"}"#.to_vec(),
            vec!["not valid JSON", "escape"],
        ),
        (
            "NUL in name",
            br#"{"name":"a\u0000b","value":1}"#.to_vec(),
            vec!["'name'", "NUL"],
        ),
        (
            "NUL in a value string",
            br#"{"name":"x","value":"a\u0000b"}"#.to_vec(),
            vec!["'value'", "NUL"],
        ),
        (
            "NUL in a value key",
            br#"{"name":"x","value":{"a\u0000":1}}"#.to_vec(),
            vec!["'value'", "NUL"],
        ),
        (
            "duplicate name",
            br#"{"name":"a","name":"b","value":1}"#.to_vec(),
            vec!["duplicate field `name`"],
        ),
        (
            "unknown field in another case",
            br#"{"Name":"x","value":1}"#.to_vec(),
            vec!["unknown field `Name`"],
        ),
        (
            "name of 201 characters",
            format!(r#"{{"name":"{}","value":1}}"#, "é".repeat(201)).into_bytes(),
            vec!["'name'", "200"],
        ),
        (
            "blank name",
            br#"{"name":"   ","value":1}"#.to_vec(),
            vec!["'name' must not be empty"],
        ),
        ("null body", b"null".to_vec(), vec!["wrong shape"]),
        ("a string body", br#""x""#.to_vec(), vec!["wrong shape"]),
        ("empty body", Vec::new(), vec!["empty"]),
    ];
    for (case, body, says) in &cases {
        let res = send_raw(&app, "POST", "/orgs/org_acme/data", &token, body.clone()).await;
        assert_400_saying(res, says, &format!("POST {case}")).await;
        let res = send_raw(&app, "PATCH", "/orgs/org_acme/data/1", &token, body.clone()).await;
        assert_400_saying(res, says, &format!("PATCH {case}")).await;
    }

    assert_nothing_changed(&app, &before).await;
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_a_400_that_names_the_field_and_changes_nothing() {
    let (app, token, before) = one_record_to_protect().await;

    for (case, body, says) in [
        ("missing value", json!({"name": "x"}), vec!["'value'"]),
        (
            "name null",
            json!({"name": null, "value": 1}),
            vec!["'name' must be a string"],
        ),
    ] {
        let res = app
            .post_json("/orgs/org_acme/data", Some(&token), &body)
            .await;
        assert_400_saying(res, &says, case).await;
    }
    for (case, body, says) in [
        (
            "nothing to change",
            json!({}),
            vec!["'name' and/or 'value'"],
        ),
        (
            "empty name",
            json!({"name": ""}),
            vec!["'name' must not be empty"],
        ),
        (
            "unknown field",
            json!({"extra": 1}),
            vec!["unknown field `extra`"],
        ),
    ] {
        let res = send_raw(
            &app,
            "PATCH",
            "/orgs/org_acme/data/1",
            &token,
            body.to_string().into_bytes(),
        )
        .await;
        assert_400_saying(res, &says, case).await;
    }

    assert_nothing_changed(&app, &before).await;
}

#[tokio::test]
async fn a_bad_query_parameter_or_record_id_is_a_400_that_names_it() {
    let (app, token, before) = one_record_to_protect().await;

    // Query strings and ids beyond what records.rs covers.
    for query in [
        "limit=",
        "limit=1e3",
        "limit=5.0",
        "limit=9223372036854775808",
        "after=99999999999999999999",
        "after=1.5",
        "limit=5&limit=6",
        "after=%FF",
    ] {
        let res = app
            .get(&format!("/orgs/org_acme/data?{query}"), Some(&token))
            .await;
        let says = if query.starts_with("after") {
            "'after'"
        } else {
            "'limit'"
        };
        assert_400_saying(res, &[says], query).await;
    }
    for id in ["0", "-1", "abc", "1.0", "99999999999999999999", "1%00"] {
        let res = app
            .get(&format!("/orgs/org_acme/data/{id}"), Some(&token))
            .await;
        assert_error(res, 400, "Record id must be a positive integer").await;
    }

    assert_nothing_changed(&app, &before).await;
}

#[tokio::test]
async fn json_nested_100000_deep_is_refused_without_overflowing_the_stack() {
    // Within the default 64 KiB limit such a body cannot even be sent: 413.
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "write:data");
    let res = send_raw(&app, "POST", "/orgs/org_acme/data", &token, nested(100_000)).await;
    assert_error(res, 413, "Request body exceeds 65536 bytes").await;
    // With a 1 MiB limit it reaches the parser, which stops at its depth limit.
    let roomy = TestApp::spawn_with(|v| {
        v.insert("body_limit".into(), (1024 * 1024).to_string());
    })
    .await;
    let token = roomy.issuer.token("org_acme", "write:data");
    for body in [
        nested(100_000),
        format!(
            r#"{{"name":"deep","value":{}1{}}}"#,
            r#"{"a":"#.repeat(100_000),
            "}".repeat(100_000)
        )
        .into_bytes(),
    ] {
        let res = send_raw(&roomy, "POST", "/orgs/org_acme/data", &token, body).await;
        assert_400_saying(res, &["recursion limit"], "100,000 deep").await;
    }
    assert_eq!(roomy.count_all_records().await, 0);
    // Still serving.
    assert_eq!(roomy.create_record("org_acme", "ok", json!(1)).await, 1);
}
