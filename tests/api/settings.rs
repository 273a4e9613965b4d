//! The real binary's start-up: settings from the environment and orgwall.toml, one-line
//! refusals, the log format, and a closed stdout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::TestApp;

/// An empty working directory (no `.env`, no `orgwall.toml` unless a test writes one).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("orgwall-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.0.join(name), text).unwrap();
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `orgwall ARGS` in `dir` with only `env` in its environment.
fn orgwall(dir: &WorkDir, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orgwall"));
    command
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        // Tests run side by side: none of them may take the default metrics port.
        .env("METRICS_ADDR", "off")
        .envs(env.iter().copied());
    command
}

fn run(command: &mut Command) -> (Output, String) {
    let out = command.output().expect("run orgwall");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out, stderr)
}

fn database_url(app: &TestApp) -> String {
    app.db.url.clone()
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_the_variable() {
    let dir = WorkDir::new();
    for (env, expected) in [
        (
            vec![("PORT", "eighty")],
            "orgwall: PORT: invalid digit found in string\n",
        ),
        (
            vec![("TRUSTED_PROXIES", "10.0.0.0/8, lb.internal")],
            "orgwall: TRUSTED_PROXIES: `lb.internal` is not an IP address or CIDR range such as 10.0.0.0/8\n",
        ),
        (
            vec![("METRICS_ADDR", "everywhere")],
            "orgwall: METRICS_ADDR: `everywhere` is not an address and port such as 127.0.0.1:9464 (or off)\n",
        ),
        (
            vec![("DATABASE_URL", "postgres://app:s3cret@db host/orgwall")],
            "orgwall: DATABASE_URL: invalid domain character\n",
        ),
    ] {
        let (out, stderr) = run(&mut orgwall(&dir, &["serve"], &env));
        assert!(!out.status.success(), "{env:?} must not start");
        assert_eq!(stderr, expected, "{env:?}");
        assert!(out.stdout.is_empty());
    }

    // The same through orgwall.toml, and the environment wins over the file.
    dir.write("orgwall.toml", "port = \"eighty\"\n");
    let (out, stderr) = run(&mut orgwall(&dir, &["serve"], &[]));
    assert!(!out.status.success());
    assert_eq!(stderr, "orgwall: PORT: invalid digit found in string\n");
    dir.write("orgwall.toml", "port = 3000\nlog_format = \"xml\"\n");
    let (out, stderr) = run(&mut orgwall(&dir, &["serve"], &[("LOG_FORMAT", "csv")]));
    assert!(!out.status.success());
    assert_eq!(stderr, "orgwall: LOG_FORMAT: `csv` is not pretty or json\n");

    let (out, stderr) = run(&mut orgwall(
        &dir,
        &["serve"],
        &[("ORGWALL_CONFIG", "/nonexistent/orgwall.toml")],
    ));
    assert!(!out.status.success());
    assert!(stderr.starts_with("orgwall: ORGWALL_CONFIG: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn log_format_json_in_orgwall_toml_makes_every_log_line_json() {
    let app = TestApp::spawn().await;
    let dir = WorkDir::new();
    let env = [("RUST_LOG", "info")];

    dir.write(
        "orgwall.toml",
        &format!(
            "database_url = \"{}\"\nlog_format = \"json\"\n",
            database_url(&app)
        ),
    );
    let (out, stderr) = run(&mut orgwall(&dir, &["migrate"], &env));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "migrations applied"),
        "{stderr}"
    );

    // Without it, the same run logs for people.
    dir.write(
        "orgwall.toml",
        &format!("database_url = \"{}\"\n", database_url(&app)),
    );
    let (out, stderr) = run(&mut orgwall(&dir, &["migrate"], &env));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("migrations applied"), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "{stderr}"
    );
}

#[tokio::test]
async fn start_up_warns_about_an_unencrypted_remote_database_without_its_password() {
    let app = TestApp::spawn().await;
    let dir = WorkDir::new();
    // The listen URL is only read by `serve`: the warning is checked without reaching out to a
    // remote host, and the command itself runs on the local test database.
    let (out, stderr) = run(&mut orgwall(
        &dir,
        &["org", "list"],
        &[
            ("DATABASE_URL", &database_url(&app)),
            (
                "DATABASE_LISTEN_URL",
                "postgres://app:s3cret@db.example.com/orgwall?sslmode=prefer",
            ),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "warn"),
        ],
    ));
    assert!(out.status.success(), "{stderr}");
    let warning: Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    assert_eq!(warning["level"], "WARN", "{stderr}");
    let message = warning["fields"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "DATABASE_LISTEN_URL: the database server db.example.com is not on this machine"
        ),
        "{message}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[tokio::test]
async fn the_cli_exits_quietly_when_its_reader_is_gone() {
    let app = TestApp::spawn().await;
    let dir = WorkDir::new();
    let url = database_url(&app);
    for args in [
        &["keys", "rotate"][..],
        &["app", "create", "--name", "Piped"][..],
    ] {
        let mut child = orgwall(&dir, args, &[("DATABASE_URL", &url), ("RUST_LOG", "warn")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| true`: the reader is gone before the command has anything to print.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    let apps: i64 = sqlx::query_scalar("select count(*) from m2m_apps where name = 'Piped'")
        .fetch_one(&app.admin_pool)
        .await
        .unwrap();
    assert_eq!(apps, 1, "the command did its work");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_logs_name_the_forwarded_client() {
    let logged_client = |app: &TestApp, forwarded: &'static str| {
        let url = app.url("/health");
        let http = app.http.clone();
        async move {
            let res = http
                .get(url)
                .header("x-forwarded-for", forwarded)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let logs = crate::helpers::captured_logs().lock().unwrap().clone();
            let logs = String::from_utf8_lossy(&logs).to_string();
            without_colours(&logs).contains(&format!("http.client_ip={forwarded} "))
        }
    };

    let trusting = TestApp::spawn_with(|v| {
        v.insert("trusted_proxies".into(), "127.0.0.1, ::1".into());
    })
    .await;
    assert!(logged_client(&trusting, "198.51.100.77").await);

    let untrusting = TestApp::spawn().await;
    assert!(
        !logged_client(&untrusting, "198.51.100.78").await,
        "an untrusted peer's header is its own word"
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
