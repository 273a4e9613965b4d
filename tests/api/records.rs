//! The records and users routes: paging, CRUD, per-organization ids.

use futures_util::future::join_all;
use orgwall::tenant::TenantTx;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, ctx};

#[tokio::test]
async fn list_pages_by_limit_and_after_and_counts_everything() {
    let app = TestApp::spawn().await;
    for i in 1..=5 {
        app.create_record("org_acme", &format!("r{i}"), json!(i))
            .await;
    }
    app.create_record("org_beta", "beta", json!(0)).await;
    let token = app.issuer.token("org_acme", "read:data");

    let page = |q: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            let res = app
                .get(&format!("/orgs/org_acme/data{q}"), Some(&token))
                .await;
            assert_eq!(res.status(), 200, "{q}");
            let body: Value = res.json().await.unwrap();
            let ids: Vec<i64> = body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect();
            (ids, body["total"].as_i64().unwrap())
        }
    };
    assert_eq!(page("").await, (vec![1, 2, 3, 4, 5], 5));
    assert_eq!(page("?limit=2").await, (vec![1, 2], 5));
    assert_eq!(page("?limit=2&after=2").await, (vec![3, 4], 5));
    assert_eq!(page("?after=5").await, (vec![], 5));
    assert_eq!(
        page("?limit=1000&org_code=org_beta").await,
        (vec![1, 2, 3, 4, 5], 5)
    );

    for (q, message) in [
        (
            "?limit=0",
            "'limit' must be an integer from 1 to 1000, got '0'",
        ),
        (
            "?limit=1001",
            "'limit' must be an integer from 1 to 1000, got '1001'",
        ),
        (
            "?after=-1",
            "'after' must be a record id (an integer of 0 or more), got '-1'",
        ),
        (
            "?after=abc",
            "'after' must be a record id (an integer of 0 or more), got 'abc'",
        ),
    ] {
        let res = app
            .get(&format!("/orgs/org_acme/data{q}"), Some(&token))
            .await;
        assert_error(res, 400, message).await;
    }
}

#[tokio::test]
async fn records_can_be_read_updated_and_deleted_within_the_org() {
    let app = TestApp::spawn().await;
    let id = app
        .create_record("org_acme", "first", json!({"a": 1}))
        .await;
    let token = app
        .issuer
        .token("org_acme", "read:data write:data delete:data");

    let res = app
        .get(&format!("/orgs/org_acme/data/{id}"), Some(&token))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["org_code"], "org_acme");
    assert_eq!(body["record"]["value"], json!({"a": 1}));

    let res = app
        .patch_json(
            &format!("/orgs/org_acme/data/{id}"),
            &token,
            &json!({"value": null}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["record"]["name"], "first");
    assert_eq!(body["record"]["value"], Value::Null);

    let res = app
        .patch_json(
            &format!("/orgs/org_acme/data/{id}"),
            &token,
            &json!({"name": "renamed"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["record"]["name"], "renamed");
    assert_eq!(body["record"]["value"], Value::Null);

    let res = app
        .http
        .delete(app.url(&format!("/orgs/org_acme/data/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .get(&format!("/orgs/org_acme/data/{id}"), Some(&token))
        .await;
    assert_error(res, 404, &format!("Record {id} not found")).await;
    let res = app
        .http
        .delete(app.url(&format!("/orgs/org_acme/data/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(res, 404, &format!("Record {id} not found")).await;

    // Ids are never reused after a delete.
    assert_eq!(
        app.create_record("org_acme", "second", json!(2)).await,
        id + 1
    );
}

#[tokio::test]
async fn the_list_total_counts_creates_and_deletes_whatever_statement_deletes() {
    let app = TestApp::spawn().await;
    for name in ["a", "b", "c"] {
        app.create_record("org_acme", name, json!(0)).await;
    }
    app.create_record("org_beta", "beta", json!(0)).await;
    let token = app.issuer.token("org_acme", "delete:data");
    let total = |org: &'static str| {
        let app = &app;
        async move {
            let token = app.issuer.token(org, "read:data");
            let res = app.get(&format!("/orgs/{org}/data"), Some(&token)).await;
            res.json::<Value>().await.unwrap()["total"]
                .as_i64()
                .unwrap()
        }
    };
    let delete = |id: i64| {
        let (app, token) = (&app, token.clone());
        async move {
            app.http
                .delete(app.url(&format!("/orgs/org_acme/data/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!((total("org_acme").await, total("org_beta").await), (3, 1));

    // Through the API, then a second time (nothing left to delete).
    assert_eq!(delete(2).await, 204);
    assert_eq!(delete(2).await, 404);
    assert_eq!((total("org_acme").await, total("org_beta").await), (2, 1));

    // Through any other statement in the tenant's context: the trigger counts it too.
    let mut tx = TenantTx::begin(&app.admin_pool, &ctx("org_acme"))
        .await
        .unwrap();
    sqlx::query("delete from records where id in (1, 3)")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((total("org_acme").await, total("org_beta").await), (0, 1));
}

#[tokio::test]
async fn ids_are_per_organization() {
    let app = TestApp::spawn().await;
    assert_eq!(app.create_record("org_acme", "a1", json!(1)).await, 1);
    assert_eq!(app.create_record("org_beta", "b1", json!(1)).await, 1);
    assert_eq!(app.create_record("org_acme", "a2", json!(1)).await, 2);
    assert_eq!(app.create_record("org_new_tenant", "n1", json!(1)).await, 1);
}

#[tokio::test]
async fn an_org_code_in_the_body_or_query_is_ignored() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "write:data");

    let res = app
        .post_json(
            "/orgs/org_acme/data?org_code=org_beta",
            Some(&token),
            &json!({"name": "n", "value": 1, "org_code": "org_beta"}),
        )
        .await;

    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["org_code"], "org_acme");
    assert_eq!(app.rows_of("org_acme").await.len(), 1);
    assert!(app.rows_of("org_beta").await.is_empty());
}

#[tokio::test]
async fn bad_bodies_are_rejected_and_store_nothing() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "write:data");
    let cases = [
        (
            json!({"name": "", "value": 1}),
            "'name' must not be empty".to_string(),
        ),
        (
            json!({"name": "x".repeat(201), "value": 1}),
            "'name' must be at most 200 characters, got 201".into(),
        ),
        (
            json!({"name": 5, "value": 1}),
            "'name' must be a string".into(),
        ),
    ];
    for (body, message) in cases {
        let res = app
            .post_json("/orgs/org_acme/data", Some(&token), &body)
            .await;
        assert_error(res, 400, &message).await;
    }
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&token),
            &json!({"name": "x", "value": 1, "extra": true}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"),
        "{body}"
    );
    let res = app
        .post_json("/orgs/org_acme/data", Some(&token), &json!([1, 2]))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.count_all_records().await, 0);
}

#[tokio::test]
async fn a_hundred_concurrent_creates_in_one_org_all_succeed_with_ids_1_to_100() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "write:data");

    let responses = join_all((0..100).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            let res = app
                .post_json(
                    "/orgs/org_acme/data",
                    Some(token),
                    &json!({"name": format!("r{i}"), "value": i}),
                )
                .await;
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["record"]["id"]
                .as_i64()
                .unwrap()
        }
    }))
    .await;

    let mut ids = responses;
    ids.sort();
    assert_eq!(ids, (1..=100).collect::<Vec<i64>>());
    let rows = app.rows_of("org_acme").await;
    assert_eq!(rows.len(), 100);
    let mut values: Vec<i64> = rows.iter().map(|r| r.2.as_i64().unwrap()).collect();
    values.sort();
    assert_eq!(
        values,
        (0..100).collect::<Vec<i64>>(),
        "every write stored exactly once"
    );
}

#[tokio::test]
async fn users_are_listed_for_the_org_only() {
    let app = TestApp::spawn().await;
    let db = app.admin_pool.clone();
    for (org, email, name) in [
        ("org_acme", "ada@acme.test", "Ada"),
        ("org_acme", "bob@acme.test", "Bob"),
        ("org_beta", "cy@beta.test", "Cy"),
    ] {
        let mut tx = TenantTx::begin(&db, &ctx(org)).await.unwrap();
        orgwall::tenant::users::insert_user(&mut tx, email, name)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let token = app.issuer.token("org_acme", "read:users");

    let res = app.get("/orgs/org_acme/users", Some(&token)).await;

    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({
            "org_code": "org_acme",
            "total": 2,
            "users": [
                {"id": 1, "email": "ada@acme.test", "name": "Ada"},
                {"id": 2, "email": "bob@acme.test", "name": "Bob"}
            ]
        })
    );
}
