//! The built-in issuer end to end over real HTTP: the tutorial's flow without Kinde, every
//! error answer of the token endpoint, rotation, revocation, keys, brute force, the CLI and
//! `demo`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, TestApp, assert_error, captured_logs};

fn jwt_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn assert_oauth_error(
    res: reqwest::Response,
    status: u16,
    error: &str,
) -> reqwest::header::HeaderMap {
    assert_eq!(res.status().as_u16(), status, "expected {error}");
    let headers = res.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    headers
}

#[tokio::test]
async fn the_tutorial_flow_works_without_kinde() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let beta = app.setup_tutorial("org_beta").await;

    // Token by HTTP Basic and by form post.
    let res = app
        .token_request(
            &[
                ("grant_type", "client_credentials"),
                ("audience", AUDIENCE),
                ("scope", "read:data write:data"),
            ],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read:data write:data");
    let by_basic = body["access_token"].as_str().unwrap().to_string();
    let by_form = app.access_token(&id, &secret).await;

    // The access token's header and claims.
    let header = jwt_part(&by_form, 0);
    let claims = jwt_part(&by_form, 1);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], app.settings.public_url);
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["aud"], json!([AUDIENCE]));
    assert_eq!(claims["org_code"], "org_acme");
    assert_eq!(claims["scp"], "read:data write:data");
    assert_eq!(claims["scope"], "read:data write:data");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_ne!(
        claims["jti"],
        jwt_part(&by_basic, 1)["jti"],
        "jti is unique"
    );

    // The resource API accepts it; isolation holds.
    let res = app.get("/orgs/org_acme/data", Some(&by_basic)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"org_code": "org_acme", "records": [], "total": 0})
    );
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&by_form),
            &json!({"name": "Acme Record A", "value": 100}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app.get("/orgs/org_beta/data", Some(&by_form)).await;
    assert_error(res, 403, "Token does not have access to this organization").await;
    let beta_token = app.access_token(&beta.0, &beta.1).await;
    let res = app.get("/orgs/org_beta/data", Some(&beta_token)).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["total"],
        0,
        "Beta sees none of Acme's records"
    );
    assert_error(
        app.get("/orgs/org_acme/data", None).await,
        401,
        "No token provided",
    )
    .await;

    // No secret or token reached the logs.
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).to_string();
    for needle in [&secret, &beta.1, &by_basic, &by_form, &beta_token] {
        assert!(
            !logs.contains(needle.as_str()),
            "a secret or token was logged"
        );
        let signature = needle.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature));
    }
}

#[tokio::test]
async fn a_token_from_the_oauth2_crate_verifies_with_the_jwks_alone() {
    use oauth2::{
        AuthUrl, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl, basic::BasicClient,
    };
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;

    let http = reqwest::Client::new();
    let send = |request: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = request.into_parts();
            let res = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut out = http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            Ok::<_, reqwest::Error>(out.body(res.bytes().await?.to_vec()).unwrap())
        }
    };
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret))
        .set_auth_uri(AuthUrl::new(app.url("/unused")).unwrap())
        .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read:data".into()))
        .add_extra_param("audience", AUDIENCE)
        .request_async(&send)
        .await
        .expect("oauth2 client-credentials exchange");
    let access = token.access_token().secret().clone();

    // Verify with nothing but the published JWKS.
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&access).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("kid published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[&app.settings.public_url]);
    let data = jsonwebtoken::decode::<Value>(
        &access,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["org_code"], "org_acme");
    assert_eq!(data.claims["scope"], "read:data");
    for key in &jwks.keys {
        let raw = serde_json::to_value(key).unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                raw.get(private).is_none(),
                "JWKS leaks private member {private}"
            );
        }
    }
    // Discovery at both well-known paths.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta: Value = app.get(path, None).await.json().await.unwrap();
        assert_eq!(meta["issuer"], app.settings.public_url);
        assert_eq!(
            meta["token_endpoint"],
            format!("{}/oauth2/token", app.settings.public_url)
        );
        assert_eq!(meta["grant_types_supported"], json!(["client_credentials"]));
        assert_eq!(
            meta["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        assert!(
            meta["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("read:data"))
        );
    }
    let kinde_path: Value = app
        .get("/.well-known/jwks", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kinde_path["keys"][0]["kid"], kid);
}

/// The tutorial's issuer, with a second API that the tutorial's app is not authorized for.
async fn issuer_with_an_unauthorized_api() -> (TestApp, String, String) {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    app.admin_post(
        "/admin/apis",
        json!({"audience": "https://other.example", "name": "Other", "scopes": [{"name": "x"}]}),
    )
    .await;
    (app, id, secret)
}

const CC: (&str, &str) = ("grant_type", "client_credentials");

#[tokio::test]
async fn a_missing_or_repeated_parameter_or_a_second_authentication_is_an_invalid_request() {
    let (app, id, secret) = issuer_with_an_unauthorized_api().await;

    // missing / duplicated parameter, two client authentications
    for (case, form, basic) in [
        (
            "no grant_type",
            vec![
                ("client_id", id.as_str()),
                ("client_secret", &secret),
                ("audience", AUDIENCE),
            ],
            None,
        ),
        (
            "grant_type twice",
            vec![
                CC,
                CC,
                ("client_id", &id),
                ("client_secret", &secret),
                ("audience", AUDIENCE),
            ],
            None,
        ),
        (
            "Basic and client_secret",
            vec![CC, ("client_secret", &secret), ("audience", AUDIENCE)],
            Some((id.as_str(), secret.as_str())),
        ),
    ] {
        let res = app.token_request(&form, basic).await;
        assert_eq!(res.status(), 400, "{case}");
        assert_oauth_error(res, 400, "invalid_request").await;
    }
    // no client authentication at all
    let res = app.token_request(&[CC, ("audience", AUDIENCE)], None).await;
    assert_oauth_error(res, 401, "invalid_client").await;
    // unsupported grant
    let res = app
        .token_request(
            &[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_oauth_error(res, 400, "unsupported_grant_type").await;
}

#[tokio::test]
async fn an_unknown_client_a_wrong_secret_and_a_disabled_app_get_the_same_answer() {
    let (app, id, secret) = issuer_with_an_unauthorized_api().await;

    // unknown client, wrong secret, disabled app: the same body
    let unknown = app.token_by_post("no-such-client", &secret, None).await;
    let unknown_body: Value = {
        assert_eq!(unknown.status(), 401);
        unknown.json().await.unwrap()
    };
    let wrong: Value = app
        .token_by_post(&id, "wrong-secret", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unknown_body, wrong);
    let res = app
        .token_request(&[CC, ("audience", AUDIENCE)], Some((&id, "wrong")))
        .await;
    let headers = assert_oauth_error(res, 401, "invalid_client").await;
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    app.admin_post(&format!("/admin/apps/{id}/disable"), json!({}))
        .await;
    let disabled: Value = app
        .token_by_post(&id, &secret, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(disabled, unknown_body);
}

#[tokio::test]
async fn a_token_needs_a_known_authorized_audience_and_granted_scopes() {
    let (app, id, secret) = issuer_with_an_unauthorized_api().await;

    // missing audience, unknown audience, unauthorized API, ungranted scope
    let res = app
        .token_request(&[CC, ("client_id", &id), ("client_secret", &secret)], None)
        .await;
    assert_oauth_error(res, 400, "invalid_request").await;
    for (audience, error) in [
        ("https://API.yourapp.com", "invalid_target"),
        ("https://other.example", "unauthorized_client"),
    ] {
        let res = app
            .token_request(
                &[
                    CC,
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("audience", audience),
                ],
                None,
            )
            .await;
        assert_oauth_error(res, 400, error).await;
    }
    let res = app
        .token_by_post(&id, &secret, Some("read:data delete:data"))
        .await;
    assert_oauth_error(res, 400, "invalid_scope").await;
    // RFC 8707 resource works like audience
    let res = app
        .token_request(
            &[
                CC,
                ("client_id", &id),
                ("client_secret", &secret),
                ("resource", AUDIENCE),
            ],
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    // Basic credentials are form-decoded (RFC 6749 §2.3.1)
    let encoded = STANDARD.encode(format!("{id}:{}", secret.replace('-', "%2D")));
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .header("authorization", format!("Basic {encoded}"))
        .form(&[CC, ("audience", AUDIENCE)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Rotates `id`'s secret through the admin API and returns the new one.
async fn rotate_secret(app: &TestApp, id: &str, body: Value) -> String {
    app.admin_post(&format!("/admin/apps/{id}/rotate-secret"), body)
        .await["client_secret"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_secret_rotated_without_grace_stops_working_at_once() {
    let app = TestApp::spawn_issuer().await;
    let (id, first) = app.setup_tutorial("org_acme").await;

    let second = rotate_secret(&app, &id, json!({})).await;

    assert_eq!(app.token_by_post(&id, &first, None).await.status(), 401);
    assert_eq!(app.token_by_post(&id, &second, None).await.status(), 200);
}

#[tokio::test]
async fn a_secret_rotated_with_grace_works_beside_the_new_one_until_the_grace_ends() {
    let app = TestApp::spawn_issuer().await;
    let (id, old) = app.setup_tutorial("org_acme").await;

    let new = rotate_secret(&app, &id, json!({"grace": "2s"})).await;

    assert_eq!(app.token_by_post(&id, &old, None).await.status(), 200);
    assert_eq!(app.token_by_post(&id, &new, None).await.status(), 200);
    // The grace ends by the database's clock.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.token_by_post(&id, &old, None).await.status(), 401);
    assert_eq!(app.token_by_post(&id, &new, None).await.status(), 200);
}

#[tokio::test]
async fn a_disabled_app_gets_tokens_again_once_enabled_and_a_deleted_one_never() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;

    app.admin_post(&format!("/admin/apps/{id}/disable"), json!({}))
        .await;
    assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 401);
    app.admin_post(&format!("/admin/apps/{id}/enable"), json!({}))
        .await;
    assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 200);
    let (status, _) = app
        .admin(reqwest::Method::DELETE, &format!("/admin/apps/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 401);
}

#[tokio::test]
async fn a_global_apps_token_is_refused_by_tenant_routes() {
    let app = TestApp::spawn_issuer().await;
    app.setup_tutorial("org_acme").await;

    let global = app
        .admin_post("/admin/apps", json!({"name": "global"}))
        .await;
    let gid = global["client_id"].as_str().unwrap();
    app.admin_post(
        &format!("/admin/apps/{gid}/authorize"),
        json!({"audience": AUDIENCE, "scopes": "read:data"}),
    )
    .await;
    let token = app
        .access_token(gid, global["client_secret"].as_str().unwrap())
        .await;
    assert!(jwt_part(&token, 1).get("org_code").is_none());
    let res = app.get("/orgs/org_acme/data", Some(&token)).await;
    assert_error(res, 403, "Token is not scoped to an organization").await;
}

#[tokio::test]
async fn key_rotation_publishes_both_keys_and_old_tokens_still_pass() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    let before = app.access_token(&id, &secret).await;
    let old_kid = jwt_part(&before, 0)["kid"].as_str().unwrap().to_string();

    let rotated = app.admin_post("/admin/keys/rotate", json!({})).await;
    let new_kid = rotated["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);

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
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    let after = app.access_token(&id, &secret).await;
    assert_eq!(jwt_part(&after, 0)["kid"], new_kid);
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&before)).await.status(),
        200
    );
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&after)).await.status(),
        200
    );
}

/// The end-to-end check of the failure window (unit-tested in src/issuer/ratelimit.rs).
#[tokio::test]
async fn brute_force_is_slowed_per_client_and_address_then_recovers() {
    let app = TestApp::spawn_issuer_with(|v| {
        v.insert("token_max_failures_per_client".into(), "3".into());
        v.insert("token_failure_window".into(), "2s".into());
    })
    .await;
    let (id, secret) = app.setup_tutorial("org_acme").await;

    for _ in 0..3 {
        assert_eq!(app.token_by_post(&id, "guess", None).await.status(), 401);
    }
    let res = app.token_by_post(&id, "guess", None).await;
    let headers = assert_oauth_error(res, 429, "slow_down").await;
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Even the right secret waits out the window from this address...
    assert_oauth_error(
        app.token_by_post(&id, &secret, None).await,
        429,
        "slow_down",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // ...then works again.
    assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 200);
}

#[tokio::test]
async fn the_admin_api_needs_the_exact_admin_token() {
    let app = TestApp::spawn_issuer().await;
    for token in [
        None,
        Some("wrong"),
        Some(&ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
        Some("test-admin-token-0123456780"),
    ] {
        let mut req = app.http.get(app.url("/admin/apps"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{token:?}");
        assert!(res.json::<Value>().await.unwrap()["message"].is_string());
    }
    let (status, _) = app.admin(reqwest::Method::GET, "/admin/apps", None).await;
    assert_eq!(status, 200);

    // Without ADMIN_TOKEN there is no admin API at all.
    let plain = TestApp::spawn_issuer_with(|v| {
        v.remove("admin_token");
    })
    .await;
    let res = plain
        .http
        .get(plain.url("/admin/apps"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// A second orgwall, issuer off, trusting `issuer` through its JWKS over HTTP.
async fn resource_api_trusting(issuer: &TestApp) -> TestApp {
    TestApp::spawn_with(|v| {
        v.insert("auth_issuer".into(), issuer.settings.public_url.clone());
        v.insert(
            "auth_jwks_url".into(),
            format!("{}/.well-known/jwks.json", issuer.settings.public_url),
        );
    })
    .await
}

/// `token` (of org_acme) reads org_acme's records at `api`, and not org_beta's.
async fn assert_reads_org_acme_only(api: &TestApp, token: &str) {
    assert_eq!(
        api.get("/orgs/org_acme/data", Some(token)).await.status(),
        200
    );
    assert_error(
        api.get("/orgs/org_beta/data", Some(token)).await,
        403,
        "Token does not have access to this organization",
    )
    .await;
}

#[tokio::test]
async fn a_separate_resource_api_trusts_the_issuer_through_its_jwks() {
    let issuer = TestApp::spawn_issuer().await;
    let (id, secret) = issuer.setup_tutorial("org_acme").await;
    // A second orgwall, issuer off, fetching the first one's JWKS over HTTP.
    let api = resource_api_trusting(&issuer).await;

    let token = issuer.access_token(&id, &secret).await;

    assert_reads_org_acme_only(&api, &token).await;
    assert_eq!(
        api.get("/.well-known/jwks.json", None).await.status(),
        404,
        "issuer routes are off"
    );
}

/// Runs the real binary configured like `app` (same database, same PUBLIC_URL).
pub fn orgwall(app: &TestApp, args: &[&str]) -> (bool, Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgwall"))
        .args(args)
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

#[tokio::test]
async fn the_cli_sets_up_the_tutorial_and_issues_tokens() {
    let app = TestApp::spawn_issuer().await;

    let (ok, api, err) = orgwall(
        &app,
        &[
            "api",
            "create",
            "--audience",
            AUDIENCE,
            "--name",
            "Data API",
            "--scope",
            "read:data=Read records",
            "--scope",
            "write:data",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        api["scopes"][0],
        json!({"name": "read:data", "description": "Read records"})
    );
    let (ok, _, err) = orgwall(
        &app,
        &[
            "api",
            "add-scope",
            "--audience",
            AUDIENCE,
            "--scope",
            "read:users",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = orgwall(
        &app,
        &["org", "create", "--code", "org_acme", "--name", "Acme Corp"],
    );
    assert!(ok, "{err}");
    let (ok, created, err) = orgwall(
        &app,
        &[
            "app",
            "create",
            "--name",
            "Acme client",
            "--org",
            "org_acme",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(created["org_code"], "org_acme");
    let id = created["client_id"].as_str().unwrap().to_string();
    let (ok, _, err) = orgwall(
        &app,
        &[
            "app",
            "authorize",
            "--client-id",
            &id,
            "--audience",
            AUDIENCE,
            "--scopes",
            "read:data write:data",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = orgwall(
        &app,
        &[
            "user",
            "add",
            "--org",
            "org_acme",
            "--email",
            "ada@acme.test",
            "--name",
            "Ada",
        ],
    );
    assert!(ok, "{err}");

    // The secret printed once works at the endpoint; `orgwall token` issues without it.
    let secret = created["client_secret"].as_str().unwrap();
    assert_eq!(app.token_by_post(&id, secret, None).await.status(), 200);
    let (ok, token, err) = orgwall(
        &app,
        &[
            "token",
            "--client-id",
            &id,
            "--audience",
            AUDIENCE,
            "--scope",
            "read:data",
        ],
    );
    assert!(ok, "{err}");
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(access)).await.status(),
        200
    );

    // Errors: non-zero exit, one line on stderr.
    let (ok, _, err) = orgwall(
        &app,
        &["org", "create", "--code", "org_acme", "--name", "Again"],
    );
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("exists"), "{err}");
    let (ok, _, err) = orgwall(
        &app,
        &[
            "app",
            "rotate-secret",
            "--client-id",
            &id,
            "--grace",
            "soon",
        ],
    );
    assert!(!ok && err.contains("--grace"), "{err}");
}

#[tokio::test]
async fn demo_twice_neither_fails_nor_duplicates_and_prints_working_secrets() {
    let app = TestApp::spawn_issuer().await;
    let first = orgwall::commands::demo::ensure_world(&app.admin_pool)
        .await
        .unwrap();
    let second = orgwall::commands::demo::ensure_world(&app.admin_pool)
        .await
        .unwrap();

    let count = |sql: &'static str| {
        let pool = app.admin_pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("select count(*) from apis").await, 1);
    // The tutorial's four, and read:audit for the audit log.
    assert_eq!(count("select count(*) from api_scopes").await, 5);
    assert_eq!(count("select count(*) from organizations").await, 3);
    assert_eq!(count("select count(*) from m2m_apps").await, 3);
    assert_eq!(count("select count(*) from records").await, 3);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.client_id, b.client_id);
        assert_eq!(
            app.token_by_post(&a.client_id, &a.client_secret, None)
                .await
                .status(),
            401,
            "rotated away"
        );
        assert_eq!(
            app.token_by_post(&b.client_id, &b.client_secret, None)
                .await
                .status(),
            200
        );
    }
    let acme = app
        .access_token(&second[0].client_id, &second[0].client_secret)
        .await;
    let res = app.get("/orgs/org_acme/data", Some(&acme)).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["total"], 2);
    assert_eq!(body["records"][0]["name"], "Acme Record A");
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&acme),
            &json!({"name": "Acme Record C", "value": 350}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["record"]["id"], 3);
}

#[tokio::test]
async fn apis_can_sign_with_es256_or_eddsa_and_verifiers_must_allow_them() {
    for alg in ["ES256", "EdDSA"] {
        let app = TestApp::spawn_issuer_with(|v| {
            v.insert("auth_algorithms".into(), "RS256,ES256,EdDSA".into());
        })
        .await;
        let api = app
            .admin_post("/admin/apis", json!({"audience": AUDIENCE, "name": "API", "signing_alg": alg, "scopes": [{"name": "read:data"}, {"name": "write:data"}]}))
            .await;
        assert_eq!(api["signing_alg"], alg);
        let (id, secret) = app.setup_tutorial("org_acme").await;

        let token = app.access_token(&id, &secret).await;

        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg);
        let jwks: Value = app
            .get("/.well-known/jwks.json", None)
            .await
            .json()
            .await
            .unwrap();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .expect("kid published")
            .clone();
        assert_eq!(key["kty"], if alg == "ES256" { "EC" } else { "OKP" });
        assert!(key.get("d").is_none(), "no private part");
        assert_reads_org_acme_only(&app, &token).await;

        // A resource API left at the default (RS256 only) refuses it.
        let strict = resource_api_trusting(&app).await;
        assert_eq!(
            strict
                .get("/orgs/org_acme/data", Some(&token))
                .await
                .status(),
            401
        );
    }
}

#[tokio::test]
async fn disabling_an_app_from_another_process_takes_effect_on_this_instance() {
    let app = TestApp::spawn_issuer().await;
    let (id, secret) = app.setup_tutorial("org_acme").await;
    // Warm this instance's client cache.
    for _ in 0..3 {
        assert_eq!(app.token_by_post(&id, &secret, None).await.status(), 200);
    }

    let (ok, _, err) = orgwall(&app, &["app", "disable", "--client-id", &id]);
    assert!(ok, "{err}");

    // The change reaches this instance through NOTIFY: within moments, never a stale success
    // for long.
    let mut refused = false;
    for _ in 0..40 {
        if app.token_by_post(&id, &secret, None).await.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "a disabled app still gets tokens");
    // And rotation from another process retires the old secret the same way.
    let (ok, _, _) = orgwall(&app, &["app", "enable", "--client-id", &id]);
    assert!(ok);
    let (ok, rotated, _) = orgwall(&app, &["app", "rotate-secret", "--client-id", &id]);
    assert!(ok);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    let mut switched = false;
    for _ in 0..40 {
        let old = app.token_by_post(&id, &secret, None).await.status();
        let new = app.token_by_post(&id, new_secret, None).await.status();
        if old == 401 && new == 200 {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        switched,
        "rotation from another process did not take effect"
    );
}

#[tokio::test]
async fn a_refused_api_creation_leaves_no_signing_key_behind() {
    let app = TestApp::spawn_issuer().await;
    app.admin_post("/admin/apis", json!({"audience": AUDIENCE, "name": "API"}))
        .await;
    let es256_keys = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from signing_keys where alg = 'ES256'")
            .fetch_one(&app.admin_pool)
            .await
            .unwrap()
    };

    // The audience is taken: the API is refused after its input was found valid.
    let (status, body) = app
        .admin(
            reqwest::Method::POST,
            "/admin/apis",
            Some(json!({"audience": AUDIENCE, "name": "Again", "signing_alg": "ES256"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // A scope name that breaks the rules: refused before anything is written.
    let (status, body) = app
        .admin(
            reqwest::Method::POST,
            "/admin/apis",
            Some(json!({"audience": "https://other.example", "name": "Other",
                        "signing_alg": "ES256", "scopes": [{"name": "bad scope"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    assert_eq!(es256_keys().await, 0, "a refused request made an ES256 key");
    app.admin_post(
        "/admin/apis",
        json!({"audience": "https://other.example", "name": "Other", "signing_alg": "ES256"}),
    )
    .await;
    assert_eq!(es256_keys().await, 1);
}

#[tokio::test]
async fn the_token_endpoint_reads_forms_up_to_the_configured_body_limit() {
    let form = |id: &str, secret: &str, padding: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".into(), id.into()),
            ("client_secret".into(), secret.into()),
            ("audience".into(), AUDIENCE.into()),
            ("padding".into(), padding.into()),
        ]
    };
    let roomy = TestApp::spawn_issuer_with(|v| {
        v.insert("body_limit".into(), (256 * 1024).to_string());
    })
    .await;
    let (id, secret) = roomy.setup_tutorial("org_acme").await;
    let res = roomy
        .http
        .post(roomy.url("/oauth2/token"))
        .form(&form(&id, &secret, &"x".repeat(100 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a 100 KiB form within a 256 KiB limit");

    let tight = TestApp::spawn_issuer_with(|v| {
        v.insert("body_limit".into(), "1024".into());
    })
    .await;
    let (id, secret) = tight.setup_tutorial("org_acme").await;
    let res = tight
        .http
        .post(tight.url("/oauth2/token"))
        .form(&form(&id, &secret, &"x".repeat(2048)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_description"], "The request body is too large");
}
