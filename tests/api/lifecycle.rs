//! The token lifecycle on one instance: revocation by app (revoke-tokens, disable, delete), by
//! organization (disable / enable), by single token (admin, CLI and RFC 7009) and the refusals
//! of what is not a token of ours, with the exact bodies and headers of each answer.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, assert_error, www_authenticate};

/// Revocations reach the resource API within this (notifications, else the re-read).
pub const CONVERGE: Duration = Duration::from_secs(5);

/// Polls `GET path` with `token` until it answers `status`, or `CONVERGE` passes; returns how
/// long it took.
pub async fn until_status(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    status: u16,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() <= CONVERGE {
        let res = http.get(url).bearer_auth(token).send().await.unwrap();
        if res.status().as_u16() == status {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Asserts the revoked-token answer: 401, its message, `Bearer error="invalid_token"`.
pub async fn assert_revoked(res: reqwest::Response) {
    let headers = assert_error(res, 401, "Token has been revoked").await;
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
}

/// Waits until `token` is refused as revoked by `app`'s resource API at `path`, then checks
/// the answer.
pub async fn wait_revoked_at(app: &TestApp, path: &str, token: &str) {
    let took = until_status(&app.http, &app.url(path), token, 401).await;
    assert!(took.is_some(), "not revoked within {CONVERGE:?}");
    assert_revoked(app.get(path, Some(token)).await).await;
}

async fn wait_revoked(app: &TestApp, token: &str) {
    wait_revoked_at(app, "/orgs/org_acme/data", token).await;
}

/// Sleeps into the next second, so that a token issued now has an `iat` after a cutoff.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

fn unix_now() -> i64 {
    crate::helpers::now()
}

/// Runs the real binary against `app`'s database and PUBLIC_URL.
pub fn orgwall(app: &TestApp, args: &[&str]) -> (bool, Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", &app.db.url)
        .env("PUBLIC_URL", &app.settings.public_url)
        .env("RUST_LOG", "warn")
        .env_remove("ORGWALL_CONFIG")
        .output()
        .expect("run orgwall");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn admin_raw(app: &TestApp, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.http.post(app.url(path)).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn revoked_jtis(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from revoked_tokens")
        .fetch_one(&app.admin_pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn revoke_tokens_refuses_the_apps_earlier_tokens_even_when_remembered() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&id, &secret).await;
    // Verified once, so the next use is answered from the verified-token memo.
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );

    let (status, out) = app
        .admin(
            Method::POST,
            &format!("/admin/apps/{id}/revoke-tokens"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let revoked_at = out["revoked_at"].as_i64().expect("revoked_at is a number");
    assert_eq!(out, json!({"client_id": id, "revoked_at": revoked_at}));
    assert!(
        (revoked_at - unix_now()).abs() <= 2,
        "unix seconds: {revoked_at}"
    );
    wait_revoked(&app, &token).await;
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events
          where org_code = 'org_acme' and action = 'app.tokens_revoked'",
    )
    .fetch_one(&app.admin_pool)
    .await
    .unwrap();
    assert_eq!(audited, 1, "written to the organization's audit log");

    next_second().await;
    let fresh = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&fresh)).await.status(),
        200
    );

    let (status, out) = app
        .admin(Method::POST, "/admin/apps/no-such-app/revoke-tokens", None)
        .await;
    assert_eq!(status, 404, "{out}");
}

#[tokio::test]
async fn disable_and_delete_revoke_outstanding_tokens_and_enable_does_not_restore_them() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let before = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&before)).await.status(),
        200
    );

    app.admin_post(&format!("/admin/apps/{id}/disable"), json!({}))
        .await;
    wait_revoked(&app, &before).await;
    app.admin_post(&format!("/admin/apps/{id}/enable"), json!({}))
        .await;
    next_second().await;
    assert_revoked(app.get("/orgs/org_acme/data", Some(&before)).await).await;

    let after = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&after)).await.status(),
        200
    );

    let (status, _) = app
        .admin(Method::DELETE, &format!("/admin/apps/{id}"), None)
        .await;
    assert_eq!(status, 200);
    wait_revoked(&app, &after).await;
    assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 401);
    // The cutoff outlives the app.
    let kept: i64 =
        sqlx::query_scalar("select count(*) from app_token_cutoffs where client_id = $1")
            .bind(&id)
            .fetch_one(&app.admin_pool)
            .await
            .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_disabled_org_gets_no_tokens_its_tokens_are_refused_and_stay_revoked_after_enable() {
    let app = TestApp::spawn_issuer().await;
    let (acme, acme_secret) = app.setup_tutorial("org_acme").await;
    let (beta, beta_secret) = app.setup_tutorial("org_beta").await;
    let acme_token = app.access_token(&acme, &acme_secret).await;
    let beta_token = app.access_token(&beta, &beta_secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&acme_token))
            .await
            .status(),
        200
    );
    // What a wrong secret gets: the body a disabled org's app must get too.
    let wrong = app.token_by_post(&acme, "wrong-secret", None).await;
    assert_eq!(wrong.status(), 401);
    let wrong_body: Value = wrong.json().await.unwrap();

    let (status, out) = app
        .admin(Method::POST, "/admin/orgs/org_acme/disable", None)
        .await;
    assert_eq!(status, 200);
    let revoked_at = out["revoked_at"].as_i64().unwrap();
    assert_eq!(
        out,
        json!({"code": "org_acme", "disabled": true, "revoked_at": revoked_at})
    );
    wait_revoked(&app, &acme_token).await;
    assert_eq!(
        app.get("/orgs/org_beta/data", Some(&beta_token))
            .await
            .status(),
        200,
        "another org is not affected"
    );
    let refused = app.token_by_post(&acme, &acme_secret, None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["cache-control"], "no-store");
    assert_eq!(refused.json::<Value>().await.unwrap(), wrong_body);
    assert_eq!(
        app.token_by_post(&beta, &beta_secret, None).await.status(),
        200
    );

    let (status, out) = app
        .admin(Method::POST, "/admin/orgs/org_acme/enable", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(out, json!({"code": "org_acme", "disabled": false}));
    next_second().await;
    assert_revoked(app.get("/orgs/org_acme/data", Some(&acme_token)).await).await;
    let fresh = app.access_token(&acme, &acme_secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&fresh)).await.status(),
        200
    );

    let (status, _) = app
        .admin(Method::POST, "/admin/orgs/org_nope/disable", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_admin_revokes_one_token_and_refuses_what_is_not_ours_with_a_clear_400() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let one = app.access_token(&id, &secret).await;
    let other = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&one)).await.status(),
        200
    );

    let res = admin_raw(&app, "/admin/tokens/revoke", Some(json!({"token": one}))).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let jti = out["jti"].as_str().unwrap().to_owned();
    let until = out["revoked_until"].as_i64().unwrap();
    assert_eq!(
        out,
        json!({"jti": jti, "client_id": id, "revoked_until": until})
    );
    assert!(until > unix_now() + 3000, "the token's exp");
    wait_revoked(&app, &one).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&other)).await.status(),
        200,
        "only that token"
    );

    let foreign = app.issuer.token("org_acme", "read:data");
    let not_ours = "token is not one this issuer signed (malformed, bad signature, another \
                    issuer, or an unknown or revoked key)";
    for bad in [foreign.as_str(), "garbage", "a\u{0}b", ""] {
        let res = admin_raw(&app, "/admin/tokens/revoke", Some(json!({"token": bad}))).await;
        assert_error(res, 400, not_ours).await;
    }
    let huge = "a".repeat(1024 * 1024);
    let res = admin_raw(&app, "/admin/tokens/revoke", Some(json!({"token": huge}))).await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], "Payload Too Large");
    assert_eq!(revoked_jtis(&app).await, 1, "nothing else stored");

    // The CLI does the same through the same issuer function.
    let (ok, out, err) = orgwall(&app, &["token", "revoke", "--token", &other]);
    assert!(ok, "{err}");
    assert_eq!(out["client_id"], json!(id));
    wait_revoked(&app, &other).await;
    let (ok, _, err) = orgwall(&app, &["token", "revoke", "--token", &foreign]);
    assert!(!ok);
    assert!(err.contains("token is not one this issuer signed"), "{err}");
}

#[tokio::test]
async fn the_cli_mirrors_revoke_tokens_org_disable_and_enable_and_keys_revoke() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&id, &secret).await;

    let (ok, out, err) = orgwall(&app, &["app", "revoke-tokens", "--client-id", &id]);
    assert!(ok, "{err}");
    assert_eq!(out["client_id"], json!(id));
    assert!(out["revoked_at"].is_i64());
    wait_revoked(&app, &token).await;

    next_second().await;
    let token = app.access_token(&id, &secret).await;
    let (ok, out, err) = orgwall(&app, &["org", "disable", "--code", "org_acme"]);
    assert!(ok, "{err}");
    assert_eq!(out["disabled"], json!(true));
    wait_revoked(&app, &token).await;
    // The org's apps are refused from this instance as soon as the notification arrives.
    let mut refused = false;
    for _ in 0..100 {
        if app.token_by_post(&id, &secret, None).await.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a disabled org's app still gets tokens");
    let (ok, out, _) = orgwall(&app, &["org", "enable", "--code", "org_acme"]);
    assert!(ok);
    assert_eq!(out, json!({"code": "org_acme", "disabled": false}));

    next_second().await;
    let token = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    let (_, keys) = app.admin(Method::GET, "/admin/keys", None).await;
    let kid = keys["keys"][0]["kid"].as_str().unwrap().to_owned();
    let (ok, out, err) = orgwall(&app, &["keys", "revoke", "--kid", &kid]);
    assert!(ok, "{err}");
    assert_eq!(out["kid"], json!(kid));
    assert!(out["replaced_by"].is_string(), "{out}");
    let url = app.url("/orgs/org_acme/data");
    assert!(until_status(&app.http, &url, &token, 401).await.is_some());
    let (ok, _, err) = orgwall(&app, &["keys", "revoke", "--kid", "no-such-kid"]);
    assert!(!ok);
    assert!(err.contains("no signing key 'no-such-kid'"), "{err}");
}

async fn revoke_request(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app.http.post(app.url("/oauth2/revoke")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

async fn assert_oauth_error(res: reqwest::Response, status: u16, error: &str) {
    assert_eq!(res.status().as_u16(), status, "expected {error}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

async fn assert_empty_200(res: reqwest::Response) {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.bytes().await.unwrap().len(), 0);
}

#[tokio::test]
async fn the_revocation_endpoint_follows_rfc_7009() {
    let app = TestApp::spawn_issuer().await;
    let (acme, acme_secret) = app.setup_tutorial("org_acme").await;
    let (beta, beta_secret) = app.setup_tutorial("org_beta").await;
    let acme_token = app.access_token(&acme, &acme_secret).await;
    let beta_token = app.access_token(&beta, &beta_secret).await;
    let creds = Some((acme.as_str(), acme_secret.as_str()));

    // Client authentication as at the token endpoint.
    assert_oauth_error(
        revoke_request(&app, &[("token", &acme_token)], None).await,
        401,
        "invalid_client",
    )
    .await;
    assert_oauth_error(
        revoke_request(&app, &[("token", &acme_token)], Some((&acme, "wrong"))).await,
        401,
        "invalid_client",
    )
    .await;
    assert_oauth_error(
        revoke_request(
            &app,
            &[("token", &acme_token), ("client_secret", &acme_secret)],
            creds,
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        revoke_request(&app, &[], creds).await,
        400,
        "invalid_request",
    )
    .await;

    // Another client's valid token: refused, and it keeps working.
    assert_oauth_error(
        revoke_request(&app, &[("token", &beta_token)], creds).await,
        400,
        "unauthorized_client",
    )
    .await;

    // What is not a live token of ours changes nothing.
    let foreign = app.issuer.token("org_acme", "read:data");
    for nothing in [foreign.as_str(), "garbage", "a.b.c", ""] {
        assert_empty_200(revoke_request(&app, &[("token", nothing)], creds).await).await;
    }
    assert_oauth_error(
        revoke_request(&app, &[("token", "a\u{0}b")], creds).await,
        400,
        "invalid_request",
    )
    .await;
    let huge = "a".repeat(1024 * 1024);
    assert_oauth_error(
        revoke_request(&app, &[("token", &huge)], creds).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(revoked_jtis(&app).await, 0, "nothing stored");
    assert_eq!(
        app.get("/orgs/org_beta/data", Some(&beta_token))
            .await
            .status(),
        200
    );

    // Its own token: revoked, with token_type_hint accepted and ignored.
    assert_empty_200(
        revoke_request(
            &app,
            &[("token", &acme_token), ("token_type_hint", "refresh_token")],
            creds,
        )
        .await,
    )
    .await;
    wait_revoked(&app, &acme_token).await;
    // Revoking it again is no error.
    assert_empty_200(revoke_request(&app, &[("token", &acme_token)], creds).await).await;
    assert_eq!(revoked_jtis(&app).await, 1);
}

#[tokio::test]
async fn discovery_advertises_revocation_and_introspection() {
    let app = TestApp::spawn_issuer().await;
    let meta: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    let base = &app.settings.public_url;
    assert_eq!(
        meta["revocation_endpoint"],
        json!(format!("{base}/oauth2/revoke"))
    );
    assert_eq!(
        meta["introspection_endpoint"],
        json!(format!("{base}/oauth2/introspect"))
    );
    let methods = json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt"
    ]);
    assert_eq!(meta["revocation_endpoint_auth_methods_supported"], methods);
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        methods
    );
    assert_eq!(meta["token_endpoint_auth_methods_supported"], methods);
}

#[tokio::test]
async fn a_revoked_key_leaves_the_jwks_its_tokens_are_refused_and_a_new_key_signs() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "the only key");

    let (status, out) = app
        .admin(Method::POST, &format!("/admin/keys/{kid}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{out}");
    let new_kid = out["replaced_by"].as_str().expect("a new key").to_owned();
    assert_eq!(
        out,
        json!({"kid": kid, "revoked": true, "replaced_by": new_kid})
    );
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str()], "out of the JWKS at once");
    let took = until_status(&app.http, &app.url("/orgs/org_acme/data"), &token, 401).await;
    assert!(took.is_some());
    let fresh = app.access_token(&id, &secret).await;
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&fresh)).await.status(),
        200
    );

    let (status, _) = app
        .admin(Method::POST, "/admin/keys/no-such-kid/revoke", None)
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.admin(Method::GET, "/admin/keys", None).await;
    let revoked = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .unwrap()
        .clone();
    assert_eq!(revoked["status"], "revoked");
    let signed: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select last_signed_at from signing_keys where kid = $1")
            .bind(&kid)
            .fetch_one(&app.admin_pool)
            .await
            .unwrap();
    assert!(signed.is_some(), "when the key last signed is recorded");
}

#[tokio::test]
async fn revocations_are_forgotten_once_nothing_they_reject_can_still_be_valid() {
    let app = TestApp::spawn_issuer().await;
    let (id, _) = app.setup_tutorial("org_acme").await;
    let now = unix_now();
    sqlx::query(
        "insert into revoked_tokens (jti, client_id, expires_at)
         values ('expired', 'c', $1), ('live', 'c', $2)",
    )
    .bind(now - 120)
    .bind(now + 3600)
    .execute(&app.admin_pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into app_token_cutoffs (client_id, revoked_before)
         values ('older-than-any-token', $1), ('recent', $2)",
    )
    .bind(now - 86_400 - 120)
    .bind(now - 10)
    .execute(&app.admin_pool)
    .await
    .unwrap();

    // Any revocation forgets what expired.
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/admin/apps/{id}/revoke-tokens"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let jtis: Vec<String> = sqlx::query_scalar("select jti from revoked_tokens order by jti")
        .fetch_all(&app.admin_pool)
        .await
        .unwrap();
    assert_eq!(jtis, ["live"]);
    let mut apps: Vec<String> = sqlx::query_scalar("select client_id from app_token_cutoffs")
        .fetch_all(&app.admin_pool)
        .await
        .unwrap();
    apps.sort();
    let mut expected = vec![id.clone(), "recent".to_owned()];
    expected.sort();
    assert_eq!(apps, expected);
}

/// An instance that has not managed to re-read the revocations for longer than a revocation
/// may take to reach it cannot promise to refuse a revoked token: it answers 503 for the
/// issuer's tokens instead of accepting them, and serves them again once it reads again.
#[tokio::test]
async fn an_instance_that_cannot_read_the_revocations_refuses_tokens_until_it_can_again() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&id, &secret).await;
    let path = "/orgs/org_acme/data";
    assert_eq!(app.get(path, Some(&token)).await.status(), 200);

    // From now on the service's reads of the revocations fail (one of their tables is gone
    // from under its name); the tenant read itself does not touch it.
    sqlx::query("alter table app_token_cutoffs rename to app_token_cutoffs_away")
        .execute(&app.admin_pool)
        .await
        .unwrap();
    let started = Instant::now();
    let limit = Duration::from_secs(10);
    let mut status = 200;
    while status != 503 && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = app.get(path, Some(&token)).await.status().as_u16();
        assert!(status == 200 || status == 503, "got {status}");
    }
    let took = started.elapsed();
    println!("refusing tokens {took:?} after the revocations became unreadable");
    assert_eq!(status, 503, "still accepting tokens after {limit:?}");
    assert_error(
        app.get(path, Some(&token)).await,
        503,
        "Service temporarily unavailable",
    )
    .await;

    sqlx::query("alter table app_token_cutoffs_away rename to app_token_cutoffs")
        .execute(&app.admin_pool)
        .await
        .unwrap();
    assert!(
        until_status(&app.http, &app.url(path), &token, 200)
            .await
            .is_some(),
        "not serving again within {CONVERGE:?} of the revocations being readable"
    );
}
