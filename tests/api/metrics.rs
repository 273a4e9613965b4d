//! The metrics listener: every family from start-up, counters that move by exactly the traffic
//! sent, label values that never carry a tenant's org code, client id, token, key id or path,
//! and `METRICS_ADDR=off`.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, base_vars, free_port};

/// One sample: its name and its labels in order.
type Series = (String, Vec<(String, String)>);

/// The samples of an OpenMetrics text, parsed strictly enough to read label values that hold
/// braces (route templates) and to fail on anything malformed.
fn samples(text: &str) -> BTreeMap<Series, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("malformed sample: {line}"),
        };
        let (labels, rest) = match rest.strip_prefix('{') {
            Some(body) => parse_labels(body),
            None => (Vec::new(), rest),
        };
        let value: f64 = rest
            .trim()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        out.insert((name.to_string(), labels), value);
    }
    out
}

/// `k="v",k2="v2"}rest` -> the labels and `rest`.
fn parse_labels(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut labels = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return (labels, rest);
        }
        s = s.strip_prefix(',').unwrap_or(s);
        let eq = s.find("=\"").expect("label without value");
        let key = s[..eq].to_string();
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s[eq + 2..].char_indices() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(eq + 2 + i);
                    break;
                }
                _ => {
                    value.push(c);
                    escaped = false;
                }
            }
        }
        let end = end.expect("unterminated label value");
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

impl TestApp {
    async fn scrape_response(&self) -> reqwest::Response {
        let port = self.metrics_port.expect("metrics are on in tests");
        self.http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
    }

    async fn scrape(&self) -> (String, BTreeMap<Series, f64>) {
        let res = self.scrape_response().await;
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let parsed = samples(&text);
        (text, parsed)
    }
}

/// What changed between two scrapes (series that appeared count from zero).
fn delta(before: &BTreeMap<Series, f64>, after: &BTreeMap<Series, f64>) -> BTreeMap<Series, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

fn only(d: &BTreeMap<Series, f64>, name: &str) -> BTreeMap<Series, f64> {
    d.iter()
        .filter(|((n, _), _)| n == name)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[tokio::test]
async fn every_family_is_there_from_start_up_with_its_closed_label_sets_at_zero() {
    let app = TestApp::spawn().await;

    let res = app.scrape_response().await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = res.text().await.unwrap();
    for (family, kind) in [
        ("orgwall_http_requests", "counter"),
        ("orgwall_http_request_duration_seconds", "histogram"),
        ("orgwall_tokens_issued", "counter"),
        ("orgwall_token_errors", "counter"),
        ("orgwall_auth_rejections", "counter"),
        ("orgwall_jwks_fetches", "counter"),
        ("orgwall_db_pool_connections", "gauge"),
        ("orgwall_build_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} {kind}\n"))
                || text.starts_with(&format!("# TYPE {family} {kind}\n")),
            "no {kind} {family} in\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no help"
        );
    }
    let found = samples(&text);
    let zero = |name: &str, labels: &[(&str, &str)]| {
        assert_eq!(
            found.get(&series(name, labels)),
            Some(&0.0),
            "{name} {labels:?}"
        );
    };
    for reason in [
        "no_token",
        "invalid_token",
        "revoked",
        "no_org",
        "wrong_org",
        "insufficient_scope",
        "invalid_dpop_proof",
    ] {
        zero("orgwall_auth_rejections_total", &[("reason", reason)]);
    }
    for result in ["ok", "error"] {
        zero("orgwall_jwks_fetches_total", &[("result", result)]);
    }
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        for token_type in ["Bearer", "DPoP"] {
            zero(
                "orgwall_tokens_issued_total",
                &[("alg", alg), ("token_type", token_type)],
            );
        }
    }
    for error in ["invalid_request", "invalid_client", "invalid_scope"] {
        zero("orgwall_token_errors_total", &[("error", error)]);
    }
    assert_eq!(
        found.get(&series(
            "orgwall_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        )),
        Some(&1.0)
    );
    for state in ["idle", "in_use"] {
        assert!(
            found.contains_key(&series("orgwall_db_pool_connections", &[("state", state)])),
            "pool gauge {state}"
        );
    }
    // Only the metrics path answers there; the rest is a JSON 404.
    let port = app.metrics_port.unwrap();
    let res = app
        .http
        .get(format!("http://127.0.0.1:{port}/orgs/org_acme/data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        json!("Not Found")
    );
}

#[tokio::test]
async fn resource_api_counters_move_by_exactly_the_requests_sent_with_their_route_templates() {
    let app = TestApp::spawn().await;
    let read = app.issuer.token("org_acme", "read:data");
    let write_only = app.issuer.token("org_acme", "write:data");
    let other_org = app.issuer.token("org_beta", "read:data");
    let no_org = app.issuer.mint(&app.issuer.claims(None, "read:data"));
    let (_, before) = app.scrape().await;

    for _ in 0..3 {
        assert_eq!(
            app.get("/orgs/org_acme/data", Some(&read)).await.status(),
            200
        );
    }
    assert_eq!(
        app.get("/orgs/org_acme/data/7", Some(&read)).await.status(),
        404
    );
    assert_eq!(app.get("/orgs/org_acme/data", None).await.status(), 401);
    assert_eq!(
        app.get("/orgs/org_acme/data", Some("not.a.token"))
            .await
            .status(),
        401
    );
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&no_org)).await.status(),
        403
    );
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&other_org))
            .await
            .status(),
        403
    );
    for _ in 0..2 {
        assert_eq!(
            app.get("/orgs/org_acme/data", Some(&write_only))
                .await
                .status(),
            403
        );
    }
    assert_eq!(app.get("/no/such/path", None).await.status(), 404);
    let res = app
        .http
        .put(app.url("/orgs/org_acme/data"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let res = app
        .http
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            app.url("/health"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    let (_, after) = app.scrape().await;
    let d = delta(&before, &after);
    let data = "/orgs/{org_code}/data";
    let requests = |m: &str, r: &str, s: &str| {
        series(
            "orgwall_http_requests_total",
            &[("method", m), ("route", r), ("status", s)],
        )
    };
    assert_eq!(
        only(&d, "orgwall_http_requests_total"),
        BTreeMap::from([
            (requests("GET", data, "200"), 3.0),
            (requests("GET", "/orgs/{org_code}/data/{id}", "404"), 1.0),
            (requests("GET", data, "401"), 2.0),
            (requests("GET", data, "403"), 4.0),
            (requests("GET", "unmatched", "404"), 1.0),
            (requests("PUT", data, "405"), 1.0),
            (requests("other", "/health", "405"), 1.0),
        ])
    );
    let reasons = |r: &str| series("orgwall_auth_rejections_total", &[("reason", r)]);
    assert_eq!(
        only(&d, "orgwall_auth_rejections_total"),
        BTreeMap::from([
            (reasons("no_token"), 1.0),
            (reasons("invalid_token"), 1.0),
            (reasons("no_org"), 1.0),
            (reasons("wrong_org"), 1.0),
            (reasons("insufficient_scope"), 2.0),
        ])
    );
    let count = |m: &str, r: &str| {
        series(
            "orgwall_http_request_duration_seconds_count",
            &[("method", m), ("route", r)],
        )
    };
    assert_eq!(
        only(&d, "orgwall_http_request_duration_seconds_count"),
        BTreeMap::from([
            (count("GET", data), 9.0),
            (count("GET", "/orgs/{org_code}/data/{id}"), 1.0),
            (count("GET", "unmatched"), 1.0),
            (count("PUT", data), 1.0),
            (count("other", "/health"), 1.0),
        ])
    );
    // The first token made the verifier fetch the issuer's keys, once.
    assert_eq!(
        only(&d, "orgwall_jwks_fetches_total"),
        BTreeMap::from([(
            series("orgwall_jwks_fetches_total", &[("result", "ok")]),
            1.0
        )])
    );
    assert!(only(&d, "orgwall_token_errors_total").is_empty());
    assert!(only(&d, "orgwall_tokens_issued_total").is_empty());
}

#[tokio::test]
async fn token_endpoint_counters_move_by_exactly_the_tokens_issued_and_the_errors_answered() {
    let app = TestApp::spawn_issuer_with(|vars| {
        vars.insert("metrics_addr".into(), "127.0.0.1:0".into());
    })
    .await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let (_, before) = app.scrape().await;

    for _ in 0..2 {
        assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 200);
    }
    // The admin API issues through the same path, and is counted too.
    app.admin_post(
        &format!("/admin/apps/{id}/token"),
        json!({"audience": crate::helpers::AUDIENCE}),
    )
    .await;
    assert_eq!(app.token_by_post(&id, "wrong", None).await.status(), 401);
    assert_eq!(
        app.token_by_post(&id, &secret, Some("delete:data"))
            .await
            .status(),
        400
    );
    let res = app
        .token_request(&[("grant_type", "password")], Some((&id, &secret)))
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://unknown.example"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(res.status(), 400);

    let (_, after) = app.scrape().await;
    let d = delta(&before, &after);
    assert_eq!(
        only(&d, "orgwall_tokens_issued_total"),
        BTreeMap::from([(
            series(
                "orgwall_tokens_issued_total",
                &[("alg", "RS256"), ("token_type", "Bearer")]
            ),
            3.0
        )])
    );
    let errors = |e: &str| series("orgwall_token_errors_total", &[("error", e)]);
    assert_eq!(
        only(&d, "orgwall_token_errors_total"),
        BTreeMap::from([
            (errors("invalid_client"), 1.0),
            (errors("invalid_scope"), 1.0),
            (errors("unsupported_grant_type"), 1.0),
            (errors("invalid_target"), 1.0),
        ])
    );
    let requests = |s: &str| {
        series(
            "orgwall_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/oauth2/token"),
                ("status", s),
            ],
        )
    };
    assert_eq!(
        only(&d, "orgwall_http_requests_total"),
        BTreeMap::from([
            (requests("200"), 2.0),
            (requests("400"), 3.0),
            (requests("401"), 1.0),
            (
                series(
                    "orgwall_http_requests_total",
                    &[
                        ("method", "POST"),
                        ("route", "/admin/apps/{client_id}/token"),
                        ("status", "200")
                    ]
                ),
                1.0
            ),
        ])
    );
    assert!(only(&d, "orgwall_auth_rejections_total").is_empty());
}

#[tokio::test]
async fn no_label_value_ever_holds_an_org_code_client_id_token_key_id_or_path() {
    let app = TestApp::spawn_issuer_with(|vars| {
        vars.insert("metrics_addr".into(), "127.0.0.1:0".into());
    })
    .await;
    let org = "org_zq7distinctive";
    let (id, secret) = app.setup_tutorial(org).await;
    let token = app.access_token(&id, &secret).await;
    let data = format!("/orgs/{org}/data");
    let res = app
        .post_json(&data, Some(&token), &json!({"name": "n", "value": 424242}))
        .await;
    assert_eq!(res.status(), 201);
    let record: Value = res.json().await.unwrap();
    let record_path = format!("{data}/{}", record["record"]["id"]);
    assert_eq!(app.get(&record_path, Some(&token)).await.status(), 200);
    assert_eq!(
        app.get(&format!("{data}/987654321"), Some(&token))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get("/orgs/org_qx9otherorg/data", Some(&token))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get("/zz-private-path-31337/x", Some(&token))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.token_by_post(&id, "wrong-secret-xyz", None)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.token_by_post("client-zq7-unknown", &secret, None)
            .await
            .status(),
        401
    );
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert!(!kids.is_empty());

    let (text, found) = app.scrape().await;
    let mut secrets = vec![
        org.to_string(),
        "org_qx9otherorg".into(),
        id.clone(),
        secret.clone(),
        token.clone(),
        "client-zq7-unknown".into(),
        "987654321".into(),
        "424242".into(),
        "zz-private-path".into(),
        "wrong-secret-xyz".into(),
    ];
    secrets.extend(kids);
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "{s} reached the metrics:\n{text}"
        );
    }
    // And every label value is from a closed set or a route template.
    let labels: HashSet<(&str, &str)> = found
        .keys()
        .flat_map(|(_, labels)| labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    for (key, v) in labels {
        let allowed = match key {
            "route" => v == "unmatched" || is_template(v),
            "status" => v.len() == 3 && v.parse::<u16>().is_ok(),
            "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
            "version" => v == env!("CARGO_PKG_VERSION"),
            "method" | "alg" | "token_type" | "error" | "reason" | "result" | "state" => {
                v.len() <= 32 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            _ => false,
        };
        assert!(allowed, "label {key}={v:?}");
    }
}

/// A route template: `{placeholders}` and fixed words (not a number, not an org code).
fn is_template(v: &str) -> bool {
    v.starts_with('/')
        && v.split('/').skip(1).all(|segment| {
            (segment.starts_with('{') && segment.ends_with('}'))
                || segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
                    && !segment.starts_with("org_")
                    && !segment.chars().all(|c| c.is_ascii_digit())
        })
}

/// Kills the child when the test ends, whatever happens.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The TCP ports `pid` listens on: its socket inodes matched against the kernel's tables.
fn listening_ports(pid: u32) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().to_string();
            t.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                let port = fields[1].rsplit(':').next().unwrap();
                ports.insert(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// `orgwall serve` with the test's database and `metrics_addr`, once it answers `/health`.
async fn serve(app: &TestApp, metrics_addr: &str) -> (Reap, u16) {
    let port = free_port();
    let mut vars = base_vars(&app.db.url.clone(), &app.issuer);
    vars.insert("metrics_addr".into(), metrics_addr.into());
    let child = Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .arg("serve")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.to_uppercase(), v)))
        .env("PORT", port.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reap(child);
    for _ in 0..200 {
        if let Ok(res) = app
            .http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            && res.status() == 200
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("orgwall serve did not start");
}

#[tokio::test]
async fn metrics_addr_off_opens_no_listener_and_an_address_opens_exactly_that_one() {
    let app = TestApp::spawn().await;

    let (off, port) = serve(&app, "off").await;
    assert_eq!(listening_ports(off.0.id()), HashSet::from([port]));
    drop(off);

    let metrics_port = free_port();
    let (on, port) = serve(&app, &format!("127.0.0.1:{metrics_port}")).await;
    assert_eq!(
        listening_ports(on.0.id()),
        HashSet::from([port, metrics_port])
    );
    let text = app
        .http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("orgwall_build_info{version=\""), "{text}");

    // A taken address stops start-up with one line naming the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .arg("serve")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("DATABASE_URL", app.db.url.clone())
        .env("PORT", free_port().to_string())
        .env("ISSUER_ENABLED", "false")
        .env("AUTH_ISSUER", &app.issuer.url)
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().last().unwrap_or("").starts_with(&format!(
            "orgwall: METRICS_ADDR: cannot listen on 127.0.0.1:{metrics_port}"
        )),
        "{stderr}"
    );
}
