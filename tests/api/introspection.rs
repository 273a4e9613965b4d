//! `POST /oauth2/introspect` (RFC 7662): who may see what. An app sees its own tokens; a global
//! app sees tokens for an API it is authorized for (a resource server's own credentials);
//! another organization's app sees nothing; the operator sees everything. Whatever is not
//! visible, or not active, is `{"active": false}` and nothing more.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, AUDIENCE, TestApp};
use crate::lifecycle::wait_revoked_at;

enum Who<'a> {
    App(&'a str, &'a str),
    Admin,
    Bearer(&'a str),
    Nobody,
}

async fn introspect(app: &TestApp, who: Who<'_>, form: &[(&str, &str)]) -> reqwest::Response {
    let req = app.http.post(app.url("/oauth2/introspect")).form(form);
    let req = match who {
        Who::App(id, secret) => req.basic_auth(id, Some(secret)),
        Who::Admin => req.bearer_auth(ADMIN_TOKEN),
        Who::Bearer(t) => req.bearer_auth(t),
        Who::Nobody => req,
    };
    req.send().await.unwrap()
}

/// The 200 answer's body, after checking its headers.
async fn answer(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// A global app (no org), authorized for `audience` with `scopes`, or for nothing.
async fn global_app(app: &TestApp, name: &str, audience: Option<&str>) -> (String, String) {
    let out = app.admin_post("/admin/apps", json!({"name": name})).await;
    let id = out["client_id"].as_str().unwrap().to_owned();
    if let Some(audience) = audience {
        app.admin_post(
            &format!("/admin/apps/{id}/authorize"),
            json!({"audience": audience, "scopes": ""}),
        )
        .await;
    }
    (id, out["client_secret"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn introspection_shows_a_token_to_its_app_its_resource_server_and_the_admin_only() {
    let app = TestApp::spawn_issuer().await;
    let (acme, acme_secret) = app.setup_tutorial("org_acme").await;
    let (beta, beta_secret) = app.setup_tutorial("org_beta").await;
    app.admin_post(
        "/admin/apis",
        json!({"audience": "https://other.example", "name": "Other", "scopes": []}),
    )
    .await;
    let (server, server_secret) = global_app(&app, "resource server", Some(AUDIENCE)).await;
    let (elsewhere, elsewhere_secret) =
        global_app(&app, "other API's server", Some("https://other.example")).await;
    let token = app.access_token(&acme, &acme_secret).await;
    let c = claims(&token);
    let active = json!({
        "active": true,
        "iss": app.settings.public_url,
        "sub": acme,
        "client_id": acme,
        "aud": [AUDIENCE],
        "scope": "read:data write:data",
        "iat": c["iat"],
        "exp": c["exp"],
        "jti": c["jti"],
        "token_type": "Bearer",
        "org_code": "org_acme",
    });
    let inactive = json!({"active": false});
    let form = [("token", token.as_str())];

    let seen = answer(introspect(&app, Who::App(&acme, &acme_secret), &form).await).await;
    assert_eq!(seen, active, "its own app");
    let seen = answer(introspect(&app, Who::App(&server, &server_secret), &form).await).await;
    assert_eq!(seen, active, "a global app authorized for its audience");
    let seen = answer(introspect(&app, Who::Admin, &form).await).await;
    assert_eq!(seen, active, "the admin");
    let seen = answer(introspect(&app, Who::App(&beta, &beta_secret), &form).await).await;
    assert_eq!(seen, inactive, "another organization's app");
    let seen = answer(introspect(&app, Who::App(&elsewhere, &elsewhere_secret), &form).await).await;
    assert_eq!(seen, inactive, "a global app of another API");

    // Form-posted credentials work the same as Basic.
    let res = app
        .http
        .post(app.url("/oauth2/introspect"))
        .form(&[
            ("token", token.as_str()),
            ("client_id", acme.as_str()),
            ("client_secret", acme_secret.as_str()),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(res).await, active);

    // Revoked: inactive for everyone, the admin included.
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/admin/apps/{acme}/revoke-tokens"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    for who in [Who::App(&acme, &acme_secret), Who::Admin] {
        assert_eq!(answer(introspect(&app, who, &form).await).await, inactive);
    }
    wait_revoked_at(&app, "/orgs/org_acme/data", &token).await;
}

#[tokio::test]
async fn introspection_refuses_unauthenticated_callers_and_says_inactive_for_anything_not_ours() {
    let app = TestApp::spawn_issuer().await;
    let (acme, acme_secret) = app.setup_tutorial("org_acme").await;
    let token = app.access_token(&acme, &acme_secret).await;
    let form = [("token", token.as_str())];

    for who in [
        Who::Nobody,
        Who::Bearer("not-the-admin-token-at-all"),
        Who::Bearer(&token),
        Who::App(&acme, "wrong-secret"),
    ] {
        let res = introspect(&app, who, &form).await;
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{body}");
    }
    let res = introspect(&app, Who::App(&acme, &acme_secret), &[]).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let res = introspect(&app, Who::Admin, &[]).await;
    assert_eq!(res.status(), 400);

    let foreign = app.issuer.token("org_acme", "read:data");
    let mut tampered = token.clone();
    tampered.push('A');
    let long = "x".repeat(20_000);
    for not_ours in [
        foreign.as_str(),
        tampered.as_str(),
        "garbage",
        "a.b.c",
        "",
        long.as_str(),
    ] {
        for who in [Who::Admin, Who::App(&acme, &acme_secret)] {
            let seen = answer(introspect(&app, who, &[("token", not_ours)]).await).await;
            assert_eq!(seen, json!({"active": false}));
        }
    }
    let nul = introspect(&app, Who::Admin, &[("token", "a\u{0}b")]).await;
    assert_eq!(nul.status(), 400);
    let huge = "a".repeat(1024 * 1024);
    let res = introspect(&app, Who::App(&acme, &acme_secret), &[("token", &huge)]).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let stored: i64 = sqlx::query_scalar("select count(*) from revoked_tokens")
        .fetch_one(&app.admin_pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "introspection stores nothing");
}
