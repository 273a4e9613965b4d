//! Every check a tenant route makes (token, organization, scope, body), in that order, with the
//! status, message and headers of each refusal; both token shapes (the tutorial's and Kinde's).

use serde_json::{Value, json};

use crate::helpers::{
    AUDIENCE, FakeIssuer, TestApp, assert_error, attacker_key, issuer_key, now, second_key,
    www_authenticate,
};

const INVALID: &str = "Invalid or expired token";

async fn assert_invalid_token(app: &TestApp, token: &str) {
    let res = app.get("/orgs/org_acme/data", Some(token)).await;
    let headers = assert_error(res, 401, INVALID).await;
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
}

#[tokio::test]
async fn tokens_that_fail_verification_get_401_invalid_token() {
    let app = TestApp::spawn().await;
    let issuer = &app.issuer;
    let good = issuer.claims(Some("org_acme"), "read:data");

    // bad signature: another key under the right kid
    assert_invalid_token(&app, &attacker_key().sign(&FakeIssuer::header(), &good)).await;
    // malformed
    assert_invalid_token(&app, "not-a-jwt").await;
    assert_invalid_token(&app, "a.b.c").await;
    // payload changed after signing
    let token = issuer.mint(&good);
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = good.clone();
    forged["org_code"] = json!("org_beta");
    let forged_payload = base64_url(&forged.to_string());
    assert_invalid_token(
        &app,
        &format!("{}.{}.{}", parts[0], forged_payload, parts[2]),
    )
    .await;
    // expired beyond the 60 s leeway; not yet valid
    let mut c = good.clone();
    c["exp"] = json!(now() - 61);
    assert_invalid_token(&app, &issuer.mint(&c)).await;
    let mut c = good.clone();
    c["nbf"] = json!(now() + 300);
    assert_invalid_token(&app, &issuer.mint(&c)).await;
    // wrong iss, wrong aud, missing aud
    let mut c = good.clone();
    c["iss"] = json!("https://evil.example.com");
    assert_invalid_token(&app, &issuer.mint(&c)).await;
    let mut c = good.clone();
    c["aud"] = json!(["https://other-api.example.com"]);
    assert_invalid_token(&app, &issuer.mint(&c)).await;
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("aud");
    assert_invalid_token(&app, &issuer.mint(&c)).await;
    // algorithm not allowed (RS256 only is configured): header says PS256
    let header = json!({"alg": "PS256", "typ": "JWT", "kid": issuer_key().kid});
    assert_invalid_token(&app, &issuer_key().sign(&header, &good)).await;
    // unknown kid
    assert_invalid_token(
        &app,
        &second_key().sign(&json!({"alg": "RS256", "kid": second_key().kid}), &good),
    )
    .await;
}

#[tokio::test]
async fn a_token_within_the_leeway_is_accepted() {
    let app = TestApp::spawn().await;
    let mut c = app.issuer.claims(Some("org_acme"), "read:data");
    c["exp"] = json!(now() - 30);

    let res = app
        .get("/orgs/org_acme/data", Some(&app.issuer.mint(&c)))
        .await;

    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_token_without_org_code_is_not_scoped_to_an_organization() {
    let app = TestApp::spawn().await;
    let global = app.issuer.mint(&app.issuer.claims(None, "read:data"));

    let res = app.get("/orgs/org_acme/data", Some(&global)).await;

    let headers = assert_error(res, 403, "Token is not scoped to an organization").await;
    assert!(www_authenticate(&headers).is_none());
}

#[tokio::test]
async fn a_missing_scope_names_the_scope() {
    let app = TestApp::spawn().await;
    let read_only = app.issuer.token("org_acme", "read:data");

    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&read_only),
            &json!({"name": "x", "value": 1}),
        )
        .await;

    let headers = assert_error(res, 403, "Token missing required scope: write:data").await;
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="write:data""#)
    );
    assert_eq!(app.count_all_records().await, 0);
    let res = app.get("/orgs/org_acme/users", Some(&read_only)).await;
    assert_error(res, 403, "Token missing required scope: read:users").await;
    let res = app
        .http
        .delete(app.url("/orgs/org_acme/data/1"))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "Token missing required scope: delete:data").await;
}

#[tokio::test]
async fn token_org_scope_and_body_are_checked_in_that_order() {
    let app = TestApp::spawn().await;
    let bad_body = json!({"name": ""});
    // Invalid token beats a bad body.
    let res = app
        .post_json("/orgs/org_acme/data", Some("x.y.z"), &bad_body)
        .await;
    assert_error(res, 401, INVALID).await;
    // No org beats wrong org and missing scope.
    let global = app.issuer.mint(&app.issuer.claims(None, ""));
    let res = app
        .post_json("/orgs/org_beta/data", Some(&global), &bad_body)
        .await;
    assert_error(res, 403, "Token is not scoped to an organization").await;
    // Wrong org beats missing scope.
    let acme_no_scopes = app.issuer.token("org_acme", "");
    let res = app
        .post_json("/orgs/org_beta/data", Some(&acme_no_scopes), &bad_body)
        .await;
    assert_error(res, 403, "Token does not have access to this organization").await;
    // Missing scope beats a bad body.
    let res = app
        .post_json("/orgs/org_acme/data", Some(&acme_no_scopes), &bad_body)
        .await;
    assert_error(res, 403, "Token missing required scope: write:data").await;
    // Last, the body.
    let writer = app.issuer.token("org_acme", "write:data");
    let res = app
        .post_json("/orgs/org_acme/data", Some(&writer), &bad_body)
        .await;
    assert_error(res, 400, "'name' must not be empty").await;
}

#[tokio::test]
async fn kinde_shaped_tokens_are_accepted() {
    let app = TestApp::spawn().await;
    app.create_record("org_acme", "Acme Record A", json!(100))
        .await;
    // Real Kinde M2M tokens: azp and no sub, scp as an array, aud as an array, typ JWT.
    let claims = json!({
        "iss": app.issuer.url, "azp": "kinde_m2m_app", "aud": [AUDIENCE],
        "iat": now(), "exp": now() + 3600, "jti": "j1",
        "scp": ["read:data", "write:data"], "org_code": "org_acme", "gty": ["client_credentials"],
    });
    let res = app
        .get("/orgs/org_acme/data", Some(&app.issuer.mint(&claims)))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["total"], 1);

    // RFC 9068 shape: scope string wins over scp, typ at+jwt, aud a string.
    let claims = json!({
        "iss": app.issuer.url, "client_id": "c1", "sub": "c1", "aud": AUDIENCE,
        "iat": now(), "exp": now() + 3600, "scope": "read:data", "scp": ["write:data"],
        "org_code": "org_acme",
    });
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": issuer_key().kid});
    let token = issuer_key().sign(&header, &claims);
    assert_eq!(
        app.get("/orgs/org_acme/data", Some(&token)).await.status(),
        200
    );
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&token),
            &json!({"name": "n", "value": 1}),
        )
        .await;
    assert_error(res, 403, "Token missing required scope: write:data").await;
}

#[tokio::test]
async fn tutorial_shaped_tokens_are_accepted() {
    let app = TestApp::spawn().await;
    let claims = json!({
        "iss": app.issuer.url, "sub": "YOUR_CLIENT_ID", "aud": [AUDIENCE],
        "exp": now() + 3600, "iat": now(), "scp": "read:data write:data",
        "org_code": "org_acme", "jti": "abc123",
    });
    let token = app.issuer.mint(&claims);
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&token),
            &json!({"name": "A", "value": 1}),
        )
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn every_error_is_json_with_a_request_id() {
    let app = TestApp::spawn().await;
    let token = app
        .issuer
        .token("org_acme", "read:data write:data delete:data");

    let res = app.get("/no/such/path", None).await;
    assert!(res.headers().contains_key("x-request-id"));
    assert_error(res, 404, "No route matches this path").await;

    let res = app
        .http
        .put(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "Method not allowed on this path").await;
    let res = app.http.post(app.url("/health")).send().await.unwrap();
    assert_error(res, 405, "Method not allowed on this path").await;

    let res = app
        .http
        .post(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "Content-Type must be application/json").await;

    let big = json!({"name": "big", "value": "x".repeat(70 * 1024)});
    let res = app
        .post_json("/orgs/org_acme/data", Some(&token), &big)
        .await;
    assert_error(res, 413, "Request body exceeds 65536 bytes").await;

    let res = app
        .http
        .post(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "Bad Request");
    assert!(
        body["message"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    assert_eq!(app.count_all_records().await, 0);
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}
