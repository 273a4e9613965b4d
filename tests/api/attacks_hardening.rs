//! Attacks from the security review, each reproduced as it was found: a flood of very long client
//! ids against the real binary (memory and log size), locking tenants out from behind a proxy,
//! a form with sixteen thousand keys, a client id that writes a log line of its own, a chunked
//! admin body, and the stack's defaults.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, TestApp, captured_logs, free_port, server_url};

const CC: (&str, &str) = ("grant_type", "client_credentials");

/// A superuser URL for `app`'s database, for a separately spawned orgwall.
async fn database_url(app: &TestApp) -> String {
    let name: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&app.admin_pool)
        .await
        .unwrap();
    format!("{}/{name}", server_url())
}

/// Kills the child process if the test ends early.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident set of process `pid`, in KiB (`VmRSS` in /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A token request for `client_id` with a wrong secret, as a raw form.
fn guess_form(client_id: &str) -> String {
    format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret=guess&audience={}",
        AUDIENCE.replace(':', "%3A").replace('/', "%2F")
    )
}

#[tokio::test]
async fn a_flood_of_long_client_ids_from_forty_addresses_grows_neither_memory_nor_the_log() {
    // The real binary, so that its resident set is its own: behind a trusted proxy (this test),
    // X-Forwarded-For gives the limiter forty client addresses.
    let app = TestApp::spawn_issuer().await;
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("orgwall-flood-{}.log", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let serve = Reap(
        Command::new(env!("CARGO_BIN_EXE_orgwall"))
            .arg("serve")
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", database_url(&app).await)
            .env("PORT", port.to_string())
            .env("WORKERS", "2")
            .env("TRUSTED_PROXIES", "127.0.0.1")
            .env("METRICS_ADDR", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let pid = serve.0.id();
    let url = format!("http://127.0.0.1:{port}/oauth2/token");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        up = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "orgwall serve did not come up");

    // Warm up every worker and the pool with ordinary failures, then take the baseline.
    for i in 0..20 {
        let res = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .body(guess_form(&format!("warm-up-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let rss_before = rss_kib(pid);
    let log_before = std::fs::metadata(&log_path).unwrap().len();

    // 40 addresses x 52 requests, each with its own 60,000-character client id: the limiter
    // would lock each address after 51 failures, having remembered (and logged) every id.
    let mut floods = tokio::task::JoinSet::new();
    for address in 0..40 {
        let (http, url) = (http.clone(), url.clone());
        floods.spawn(async move {
            let mut statuses = Vec::new();
            for request in 0..52 {
                let prefix = format!("flood-{address}-{request}-");
                let id = format!("{prefix}{}", "x".repeat(60_000 - prefix.len()));
                let res = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-forwarded-for", format!("198.51.100.{address}"))
                    .body(guess_form(&id))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap();
                statuses.push((status, body["error"].as_str().unwrap().to_string()));
            }
            statuses
        });
    }
    let mut answers = Vec::new();
    while let Some(statuses) = floods.join_next().await {
        answers.extend(statuses.unwrap());
    }

    let rss_after = rss_kib(pid);
    let logged = std::fs::metadata(&log_path).unwrap().len() - log_before;
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    println!(
        "long-id flood: RSS {rss_before} KiB -> {rss_after} KiB (+{} KiB); {logged} bytes of log for 2,080 requests",
        rss_after.saturating_sub(rss_before)
    );
    // Refused before the limiter: never counted, so never slowed down either.
    for (status, error) in answers {
        assert_eq!((status, error.as_str()), (401, "invalid_client"));
    }
    assert!(
        rss_after <= rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Each request still writes its one "request finished" line (about 600 bytes with the
    // default format's colours); a counted and logged 60,000-character id added 60 KB more.
    assert!(
        logged < 2_080 * 1024,
        "{logged} bytes of log: more than the request lines"
    );
    assert!(
        !log_text.contains("flood-"),
        "a refused client id reached the log"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_guessing_locks_only_the_forwarded_address() {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("trusted_proxies".into(), "127.0.0.1, ::1".into());
    })
    .await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let from = |forwarded: &'static str, secret: String| {
        let req = app
            .http
            .post(app.url("/oauth2/token"))
            .header("x-forwarded-for", forwarded)
            .form(&[
                CC,
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("audience", AUDIENCE),
            ]);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body["error"].as_str().map(str::to_string))
        }
    };

    // Ten failures are allowed per client id and address; the eleventh locks.
    for i in 0..10 {
        let (status, _) = from("198.51.100.10", "guess".into()).await;
        assert_eq!(status, 401, "guess {i}");
    }
    assert_eq!(
        from("198.51.100.10", "guess".into()).await,
        (429, Some("slow_down".into()))
    );
    assert_eq!(
        from("198.51.100.10", secret.clone()).await,
        (429, Some("slow_down".into())),
        "the guessing address waits, even with the right secret"
    );
    // The proxy's other clients are not locked out.
    assert_eq!(from("198.51.100.20", secret.clone()).await.0, 200);
    // The log names the forwarded client, not the proxy.
    let logs = without_colours(&String::from_utf8_lossy(&captured_logs().lock().unwrap()));
    assert!(
        logs.lines()
            .any(|l| l.contains("client authentication failed")
                && l.contains(&id)
                && l.contains("addr=198.51.100.10")),
        "no failure line names the forwarded address"
    );

    // From a peer that is not a trusted proxy, the header is its own word and is ignored: the
    // peer itself is locked, whatever address it claims next.
    let untrusting = TestApp::spawn_issuer().await;
    let (id, secret) = untrusting.setup_tutorial("org_acme").await;
    let from = |forwarded: &'static str, secret: &str| {
        untrusting
            .http
            .post(untrusting.url("/oauth2/token"))
            .header("x-forwarded-for", forwarded)
            .form(&[
                CC,
                ("client_id", id.as_str()),
                ("client_secret", secret),
                ("audience", AUDIENCE),
            ])
            .send()
    };
    for i in 0..11 {
        let res = from("198.51.100.10", "guess").await.unwrap();
        assert!(
            [401, 429].contains(&res.status().as_u16()),
            "guess {i}: {}",
            res.status()
        );
    }
    assert_eq!(
        from("198.51.100.20", &secret).await.unwrap().status(),
        429,
        "an untrusted peer cannot pick a fresh address"
    );
}

/// Median of `runs` timings of `request`, each answered with `status`.
async fn median_time<F, Fut>(runs: usize, status: u16, mut request: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let res = request().await;
        assert_eq!(res.status().as_u16(), status);
        let _ = res.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[runs / 2]
}

#[tokio::test]
async fn a_form_with_sixteen_thousand_keys_is_refused_in_linear_time() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;

    // 16,250 distinct three-letter keys, "abc&" each: 65,000 bytes, within the 64 KiB limit.
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let mut keys = HashSet::new();
    let mut many = String::with_capacity(65_000);
    'outer: for a in &letters {
        for b in &letters {
            for c in &letters {
                if keys.len() == 16_250 {
                    break 'outer;
                }
                let key = format!("{a}{b}{c}");
                many.push_str(&key);
                many.push('&');
                keys.insert(key);
            }
        }
    }
    assert_eq!(many.len(), 65_000);

    // The one timing ratio: the 16,250-key form against a normal token request (which looks up
    // the client and signs a token), the median of several each, in the same test.
    let normal = median_time(7, 200, || app.token_by_post(&id, &secret, None)).await;
    let flood = median_time(7, 400, || async {
        app.http
            .post(app.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(many.clone())
            .send()
            .await
            .unwrap()
    })
    .await
    .max(Duration::from_micros(1));
    let ratio = flood.as_secs_f64() / normal.as_secs_f64();
    println!("16,250-key form: {flood:?}; normal token request: {normal:?}; ratio {ratio:.2}");
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(many.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("more than 100 parameters"),
        "{body}"
    );
    // The bound itself: a good request padded to 100 parameters gets its token, to 101 not.
    let padded = |total: usize| {
        let mut form = vec![
            CC,
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
            ("audience", AUDIENCE),
        ];
        let padding: Vec<String> = (form.len()..total).map(|i| format!("pad{i}")).collect();
        form.extend(padding.iter().map(|k| (k.as_str(), "")));
        let req = app.http.post(app.url("/oauth2/token")).form(&form);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(padded(100).await.0, 200);
    let (status, body) = padded(101).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error_description"],
        "The form has more than 100 parameters"
    );

    assert!(
        ratio < 20.0,
        "16,250-key form {flood:?} vs normal {normal:?}"
    );
}

#[tokio::test]
async fn a_client_id_with_a_newline_cannot_write_a_log_line_of_its_own() {
    let app = TestApp::spawn_issuer().await;
    let forged = format!(
        "forger-{}\nINFO access token issued kid=FORGED",
        uuid::Uuid::new_v4().simple()
    );
    let marker = forged.lines().next().unwrap().to_string();
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .form(&[
            CC,
            ("client_id", forged.as_str()),
            ("client_secret", "guess"),
            ("audience", AUDIENCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // The same through HTTP Basic, where the id is form-decoded (%0A is a newline).
    let basic_id = forged.replace('\n', "%0A").replace(' ', "+");
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(basic_id, Some("guess"))
        .form(&[CC, ("audience", AUDIENCE)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    let plain = without_colours(&logs);
    let failures = plain
        .lines()
        .filter(|l| l.contains("client authentication failed") && l.contains(&marker))
        .count();
    assert_eq!(failures, 2, "both attempts were logged, on one line each");
    assert!(
        plain.contains(&format!("{marker}\\nINFO access token issued kid=FORGED")),
        "the newline is written escaped"
    );
    assert!(
        !plain.lines().any(|l| l
            .trim_start()
            .starts_with("INFO access token issued kid=FORGED")),
        "a forged line reached the log"
    );
}

#[tokio::test]
async fn a_chunked_admin_body_is_read_like_any_other() {
    let app = TestApp::spawn_issuer().await;
    let (id, old_secret) = app.setup_tutorial("org_acme").await;

    // rotate-secret with {"grace":"1h"} sent with Transfer-Encoding: chunked (no Content-Length).
    let json = br#"{"grace":"1h"}"#;
    let mut request = format!(
        "POST /admin/apps/{id}/rotate-secret HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for part in [&json[..6], &json[6..]] {
        request.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        request.extend_from_slice(part);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("client_secret"), "{response}");

    assert_eq!(
        app.token_by_post(&id, &old_secret, None).await.status(),
        200,
        "the old secret keeps working through its hour of grace"
    );
    let expires: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        sqlx::query_scalar("select expires_at from client_secrets where client_id = $1")
            .bind(&id)
            .fetch_all(&app.admin_pool)
            .await
            .unwrap();
    assert_eq!(expires.len(), 2, "the old secret and the new one");
    let graced = expires
        .iter()
        .flatten()
        .next()
        .expect("the old one expires");
    let left = *graced - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(59) && left <= chrono::Duration::hours(1),
        "{left}"
    );

    // An empty chunked body is no body: the default grace (none).
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let empty = format!(
        "POST /admin/apps/{id}/rotate-secret HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {ADMIN_TOKEN}\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n0\r\n\r\n"
    );
    stream.write_all(empty.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(
        app.token_by_post(&id, &old_secret, None).await.status(),
        401,
        "without a grace, the earlier secrets end at once"
    );
}

/// The log text without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

/// `KEY=value` pairs of the image's `ENV` lines in the Dockerfile.
fn image_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `orgwall serve` with the image's environment (its port replaced, `without` left out), until its
/// discovery document answers; returns that document's `issuer` and the log so far.
async fn serve_like_the_image(app: &TestApp, without: &[&str]) -> (String, String) {
    let port = free_port();
    let log_path = std::env::temp_dir().join(format!("orgwall-image-{}.log", uuid::Uuid::new_v4()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_orgwall"));
    command
        .arg("serve")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(
            image_env()
                .into_iter()
                .filter(|(k, _)| !without.contains(&k.as_str())),
        )
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database_url(app).await)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env("METRICS_ADDR", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let _serve = Reap(command.spawn().unwrap());
    let url = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    let mut issuer = None;
    for _ in 0..200 {
        if let Ok(res) = reqwest::get(&url).await
            && res.status() == 200
        {
            let doc: Value = res.json().await.unwrap();
            issuer = doc["issuer"].as_str().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    (issuer.expect("orgwall serve did not come up"), log)
}

#[tokio::test]
async fn the_stack_defaults_publish_on_loopback_and_never_issue_for_the_wildcard_address() {
    // docker-compose.yml publishes every port on 127.0.0.1 only.
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    let mut in_ports = false;
    let mut published = Vec::new();
    for line in compose.lines() {
        let trimmed = line.trim();
        if trimmed == "ports:" {
            in_ports = true;
        } else if in_ports && let Some(entry) = trimmed.strip_prefix("- ") {
            published.push(entry.trim_matches('"').to_string());
        } else {
            in_ports = false;
        }
    }
    assert!(!published.is_empty(), "the compose file publishes a port");
    for entry in &published {
        assert!(
            entry.starts_with("127.0.0.1:"),
            "published beyond loopback: {entry}"
        );
    }

    // The image listens on every interface and names itself by PUBLIC_URL.
    let env = image_env();
    assert!(env.contains(&("HOST".into(), "0.0.0.0".into())), "{env:?}");
    let public_url = env
        .iter()
        .find(|(k, _)| k == "PUBLIC_URL")
        .map(|(_, v)| v.clone())
        .expect("the image sets PUBLIC_URL");
    let app = TestApp::spawn_issuer().await;
    let (issuer, log) = serve_like_the_image(&app, &[]).await;
    assert_eq!(issuer, public_url);
    assert!(!log.contains("PUBLIC_URL"), "{log}");

    // Even without it, the issuer never calls itself http://0.0.0.0:..., and start-up says why.
    let (issuer, log) = serve_like_the_image(&app, &["PUBLIC_URL"]).await;
    assert!(issuer.starts_with("http://localhost:"), "{issuer}");
    assert!(!issuer.contains("0.0.0.0"), "{issuer}");
    let warning = log
        .lines()
        .find(|l| l.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(
        warning.contains("PUBLIC_URL: not set while HOST=0.0.0.0 listens on every interface"),
        "{warning}"
    );
}

#[tokio::test]
async fn every_function_orgwall_defines_pins_its_search_path() {
    let app = TestApp::spawn().await;
    // Functions from the migrations (not from extensions), with their SET search_path if any.
    let functions: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "select p.oid::regprocedure::text, p.proconfig::text[]
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where n.nspname not in ('pg_catalog', 'information_schema')
            and n.nspname not like 'pg_toast%'
            and not exists (select 1 from pg_depend d
                             where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                               and d.deptype = 'e')
          order by 1",
    )
    .fetch_all(&app.admin_pool)
    .await
    .unwrap();
    assert!(
        functions.iter().any(|(f, _)| f.starts_with("tenant_")),
        "{functions:?}"
    );
    let unpinned: Vec<&String> = functions
        .iter()
        .filter(|(_, config)| {
            !config
                .iter()
                .flatten()
                .any(|setting| setting.starts_with("search_path="))
        })
        .map(|(f, _)| f)
        .collect();
    assert!(unpinned.is_empty(), "search_path not pinned: {unpinned:?}");
}
