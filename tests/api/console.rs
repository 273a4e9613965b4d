//! The web console's server side: the page and its assets with their security headers, only
//! when the admin API is on; and the signing-key listing it shows (`GET /admin/keys`,
//! `orgwall keys list`). The page itself is driven in a real browser by tests/browser/.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_console_page_and_assets_carry_strict_security_headers() {
    let app = TestApp::spawn_issuer().await;
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/dom.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            header(&res, "content-type").starts_with(content_type),
            "{path}"
        );
        let csp = header(&res, "content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(header(&res, "x-frame-options"), "DENY");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(
            res.headers().get("set-cookie").is_none(),
            "{path} sets a cookie"
        );
    }
}

#[tokio::test]
async fn the_console_has_no_inline_code_and_never_parses_data_as_html() {
    let app = TestApp::spawn_issuer().await;
    let html = app.get("/console", None).await.text().await.unwrap();
    // Every script comes from a file on this origin; no style attribute or element, no
    // inline handler, no absolute URL (so nothing from another origin).
    for script in html.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap()];
        assert!(
            tag.contains("src=\"console/"),
            "inline script: <script{tag}>"
        );
    }
    for forbidden in [
        "<style",
        "style=",
        " onclick=",
        " onload=",
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!html.contains(forbidden), "the page contains {forbidden}");
    }
    for asset in ["console.js", "dom.js"] {
        let js = app
            .get(&format!("/console/{asset}"), None)
            .await
            .text()
            .await
            .unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "{asset} uses {sink}");
        }
        assert!(!js.contains("document.cookie") && !js.contains("localStorage"));
    }
}

#[tokio::test]
async fn the_console_is_absent_without_an_admin_token() {
    let app = TestApp::spawn_issuer_with(|vars| {
        vars.remove("admin_token");
    })
    .await;
    assert_error(
        app.get("/console", None).await,
        404,
        "No route matches this path",
    )
    .await;
    assert_error(
        app.get("/console/console.js", None).await,
        404,
        "No route matches this path",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_console_asset_is_a_json_404() {
    let app = TestApp::spawn_issuer().await;
    assert_error(
        app.get("/console/../Cargo.toml", None).await,
        404,
        "No route matches this path",
    )
    .await;
    assert_error(
        app.get("/console/secret.js", None).await,
        404,
        "No route matches this path",
    )
    .await;
}

#[tokio::test]
async fn admin_keys_lists_the_signing_key_then_the_retired_one_after_rotation() {
    let app = TestApp::spawn_issuer().await;
    assert_error(
        app.get("/admin/keys", None).await,
        401,
        "A valid admin token is required",
    )
    .await;

    let (status, before) = app.admin(Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200, "{before}");
    let keys = before["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{before}");
    let first = &keys[0];
    let mut fields: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["alg", "created_at", "kid", "retired_at", "status"],
        "nothing private is listed"
    );
    assert_eq!(first["alg"], "RS256");
    assert_eq!(first["status"], "signing");
    assert_eq!(first["retired_at"], Value::Null);
    chrono::DateTime::parse_from_rfc3339(first["created_at"].as_str().unwrap()).unwrap();
    let old_kid = first["kid"].as_str().unwrap().to_string();

    let rotated = app.admin_post("/admin/keys/rotate", json!({})).await;
    let new_kid = rotated["kid"].as_str().unwrap();

    let (_, after) = app.admin(Method::GET, "/admin/keys", None).await;
    let keys = after["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{after}");
    assert_eq!(keys[0]["kid"], new_kid, "newest first");
    assert_eq!(keys[0]["status"], "signing");
    assert_eq!(keys[0]["retired_at"], Value::Null);
    assert_eq!(keys[1]["kid"], old_kid.as_str());
    assert_eq!(keys[1]["status"], "retired");
    chrono::DateTime::parse_from_rfc3339(keys[1]["retired_at"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn keys_list_prints_what_admin_keys_answers() {
    let app = TestApp::spawn_issuer().await;
    app.admin_post("/admin/keys/rotate", json!({})).await;
    let (_, over_http) = app.admin(Method::GET, "/admin/keys", None).await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .args(["keys", "list"])
        .env("DATABASE_URL", app.db.url.clone())
        .env("RUST_LOG", "warn")
        .env_remove("ORGWALL_CONFIG")
        .env_remove("ADMIN_TOKEN")
        .output()
        .expect("run orgwall");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(printed, over_http);
    assert_eq!(printed["keys"].as_array().unwrap().len(), 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("private") && !stdout.contains("\"d\""));
}
