//! The tutorial's "Test End-to-End" section, with its exact bodies.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, www_authenticate};

fn strip_timestamps(records: &Value) -> Value {
    Value::Array(
        records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!({"id": r["id"], "name": r["name"], "value": r["value"]}))
            .collect(),
    )
}

#[tokio::test]
async fn health_is_public_and_ok() {
    let app = TestApp::spawn().await;
    let res = app.get("/health", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn own_org_reads_its_records() {
    let app = TestApp::spawn().await;
    app.seed_tutorial_records().await;
    let token = app.issuer.token("org_acme", "read:data write:data");

    let res = app.get("/orgs/org_acme/data", Some(&token)).await;

    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["org_code"], "org_acme");
    assert_eq!(body["total"], 2);
    assert_eq!(
        strip_timestamps(&body["records"]),
        json!([
            {"id": 1, "name": "Acme Record A", "value": 100},
            {"id": 2, "name": "Acme Record B", "value": 200}
        ])
    );
}

#[tokio::test]
async fn cross_tenant_read_is_forbidden() {
    let app = TestApp::spawn().await;
    app.seed_tutorial_records().await;
    let acme_token = app.issuer.token("org_acme", "read:data write:data");

    let res = app.get("/orgs/org_beta/data", Some(&acme_token)).await;

    assert_error(res, 403, "Token does not have access to this organization").await;
}

#[tokio::test]
async fn write_creates_the_next_record_of_the_org() {
    let app = TestApp::spawn().await;
    app.seed_tutorial_records().await;
    let token = app.issuer.token("org_acme", "read:data write:data");

    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&token),
            &json!({"name": "Acme Record C", "value": 350}),
        )
        .await;

    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/orgs/org_acme/data/3");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["org_code"], "org_acme");
    assert_eq!(body["record"]["id"], 3);
    assert_eq!(body["record"]["name"], "Acme Record C");
    assert_eq!(body["record"]["value"], 350);
    assert!(body["record"]["created_at"].is_string());
    assert_eq!(app.rows_of("org_beta").await.len(), 1, "Beta untouched");
}

#[tokio::test]
async fn no_token_is_unauthorized() {
    let app = TestApp::spawn().await;

    let res = app.get("/orgs/org_acme/data", None).await;

    let headers = assert_error(res, 401, "No token provided").await;
    assert_eq!(
        www_authenticate(&headers).as_deref(),
        Some(r#"Bearer realm="orgwall""#)
    );
}

#[tokio::test]
async fn missing_name_or_value_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "write:data");

    for body in [json!({"name": "x"}), json!({"value": 1}), json!({})] {
        let res = app
            .post_json("/orgs/org_acme/data", Some(&token), &body)
            .await;
        assert_error(res, 400, "Both 'name' and 'value' fields are required").await;
    }
    assert_eq!(app.count_all_records().await, 0);
}
