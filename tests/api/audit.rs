//! The audit log: every record write and every catalogue action on an org's apps writes
//! exactly its event, in the same transaction (a failed change writes none, a failed event
//! undoes the change), and one org never sees another's events, through the API or RLS.

use orgwall::tenant::TenantTx;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, TestApp, ctx};

const ALL: &str = "read:data write:data delete:data read:audit";

impl TestApp {
    async fn send(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// `GET /orgs/{org}/audit` with `query`: the status and the body.
    async fn audit(&self, org: &str, query: &str, token: &str) -> (u16, Value) {
        let res = self
            .get(&format!("/orgs/{org}/audit{query}"), Some(token))
            .await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// (id, action, client_id, details) of every event of `org`, read as the superuser.
    async fn events_of(&self, org: &str) -> Vec<(i64, String, Option<String>, Value)> {
        sqlx::query_as(
            "select id, action, client_id, details from audit_events
              where org_code = $1 order by id",
        )
        .bind(org)
        .fetch_all(&self.admin_pool)
        .await
        .unwrap()
    }

    async fn all_events(&self) -> i64 {
        sqlx::query_scalar("select count(*) from audit_events")
            .fetch_one(&self.admin_pool)
            .await
            .unwrap()
    }
}

fn event(
    id: i64,
    action: &str,
    client_id: Option<&str>,
    details: Value,
) -> (i64, String, Option<String>, Value) {
    (id, action.into(), client_id.map(str::to_string), details)
}

#[tokio::test]
async fn every_record_write_through_the_api_writes_exactly_its_event() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", ALL);

    let id = app.create_record("org_acme", "first", json!(1)).await;
    assert_eq!(
        app.send(
            Method::PATCH,
            &format!("/orgs/org_acme/data/{id}"),
            &token,
            Some(json!({"name": "renamed"}))
        )
        .await,
        200
    );
    assert_eq!(
        app.send(
            Method::PATCH,
            &format!("/orgs/org_acme/data/{id}"),
            &token,
            Some(json!({"name": "again", "value": [2]}))
        )
        .await,
        200
    );
    assert_eq!(
        app.send(
            Method::DELETE,
            &format!("/orgs/org_acme/data/{id}"),
            &token,
            None
        )
        .await,
        204
    );

    let client = Some("client_test_1");
    assert_eq!(
        app.events_of("org_acme").await,
        [
            event(1, "record.created", client, json!({"record_id": id})),
            event(
                2,
                "record.updated",
                client,
                json!({"record_id": id, "fields": ["name"]})
            ),
            event(
                3,
                "record.updated",
                client,
                json!({"record_id": id, "fields": ["name", "value"]})
            ),
            event(4, "record.deleted", client, json!({"record_id": id})),
        ]
    );
    assert_eq!(app.all_events().await, 4);

    // The API answers the same, in the contract's shape, ordered by id.
    let (status, body) = app.audit("org_acme", "", &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["org_code"], "org_acme");
    assert_eq!(body["total"], 4);
    let events = body["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "record.created",
            "record.updated",
            "record.updated",
            "record.deleted"
        ]
    );
    for (i, e) in events.iter().enumerate() {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{e}");
        assert_eq!(e["id"], json!(i + 1));
        assert_eq!(e["client_id"], "client_test_1");
        assert!(
            chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).is_ok(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn the_audit_log_pages_like_records_and_needs_read_audit() {
    let app = TestApp::spawn().await;
    for n in 0..5 {
        app.create_record("org_acme", &format!("r{n}"), json!(n))
            .await;
    }
    let token = app.issuer.token("org_acme", "read:audit");

    let (_, page) = app.audit("org_acme", "?limit=2&after=2", &token).await;
    let ids: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(page["total"], 5);
    let (_, past_the_end) = app.audit("org_acme", "?after=5", &token).await;
    assert_eq!(past_the_end["events"], json!([]));
    assert_eq!(past_the_end["total"], 5);
    for bad in ["?limit=0", "?limit=1001", "?after=-1", "?limit=x"] {
        assert_eq!(app.audit("org_acme", bad, &token).await.0, 400, "{bad}");
    }
    let (status, _) = app
        .audit("org_acme", "", &app.issuer.token("org_acme", "read:data"))
        .await;
    assert_eq!(status, 403);
    // An org that has never had an event reads an empty log.
    let (status, empty) = app
        .audit("org_new", "", &app.issuer.token("org_new", "read:audit"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        empty,
        json!({"org_code": "org_new", "events": [], "total": 0})
    );
}

#[tokio::test]
async fn a_failed_record_write_writes_no_event_and_a_failed_event_undoes_the_write() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", ALL);
    let id = app.create_record("org_acme", "kept", json!(1)).await;
    let before = app.events_of("org_acme").await;
    assert_eq!(before.len(), 1);

    // Refused before the database, and a write that finds nothing.
    let data = "/orgs/org_acme/data";
    let one = format!("{data}/{id}");
    for (method, path, body, status) in [
        (Method::POST, data, Some(json!({"name": ""})), 400),
        (
            Method::POST,
            data,
            Some(json!({"name": "x", "value": 1, "extra": 1})),
            400,
        ),
        (Method::PATCH, one.as_str(), Some(json!({"name": 7})), 400),
        (Method::PATCH, one.as_str(), Some(json!({})), 400),
        (
            Method::PATCH,
            "/orgs/org_acme/data/999",
            Some(json!({"name": "n"})),
            404,
        ),
        (Method::DELETE, "/orgs/org_acme/data/999", None, 404),
    ] {
        assert_eq!(
            app.send(method.clone(), path, &token, body).await,
            status,
            "{method} {path}"
        );
    }
    assert_eq!(app.events_of("org_acme").await, before);

    // The database refuses the change itself: no event either.
    sqlx::raw_sql(
        "create function refuse() returns trigger language plpgsql as $$
         begin raise exception 'refused by a test'; end $$;
         create trigger refuse_boom before insert or update on records
           for each row when (new.name in ('boom', 'kept')) execute function refuse();
         create trigger refuse_kept before delete on records
           for each row when (old.name = 'kept') execute function refuse();",
    )
    .execute(&app.admin_pool)
    .await
    .unwrap();
    assert_eq!(
        app.send(
            Method::POST,
            data,
            &token,
            Some(json!({"name": "boom", "value": 1}))
        )
        .await,
        500
    );
    assert_eq!(
        app.send(Method::PATCH, &one, &token, Some(json!({"value": 2})))
            .await,
        500
    );
    assert_eq!(app.send(Method::DELETE, &one, &token, None).await, 500);
    assert_eq!(app.events_of("org_acme").await, before);
    sqlx::raw_sql("drop trigger refuse_boom on records; drop trigger refuse_kept on records")
        .execute(&app.admin_pool)
        .await
        .unwrap();

    // The event cannot be written: the change does not happen.
    sqlx::raw_sql(
        "create trigger refuse_event before insert on audit_events
           for each row execute function refuse();",
    )
    .execute(&app.admin_pool)
    .await
    .unwrap();
    let records_before = app.rows_of("org_acme").await;
    assert_eq!(
        app.send(
            Method::POST,
            data,
            &token,
            Some(json!({"name": "n", "value": 1}))
        )
        .await,
        500
    );
    assert_eq!(
        app.send(
            Method::PATCH,
            &one,
            &token,
            Some(json!({"name": "changed"}))
        )
        .await,
        500
    );
    assert_eq!(app.send(Method::DELETE, &one, &token, None).await, 500);
    assert_eq!(app.rows_of("org_acme").await, records_before);
    assert_eq!(app.events_of("org_acme").await, before);
    sqlx::raw_sql("drop trigger refuse_event on audit_events")
        .execute(&app.admin_pool)
        .await
        .unwrap();

    // Nothing was used up: the next record and event take the next ids.
    let next = app.create_record("org_acme", "next", json!(3)).await;
    assert_eq!(next, id + 1);
    let after = app.events_of("org_acme").await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[1].0, 2);
}

#[tokio::test]
async fn another_orgs_events_are_invisible_through_the_api_and_through_rls() {
    let app = TestApp::spawn().await;
    app.create_record("org_acme", "a", json!(1)).await;
    for n in 0..3 {
        app.create_record("org_beta", &format!("b{n}"), json!(n))
            .await;
    }
    let acme = app.issuer.token("org_acme", "read:audit");

    let (status, _) = app.audit("org_beta", "", &acme).await;
    assert_eq!(status, 403);
    let (_, own) = app.audit("org_acme", "?org_code=org_beta", &acme).await;
    assert_eq!(own["total"], 1);
    assert_eq!(own["events"].as_array().unwrap().len(), 1);

    // Without any filter, inside Acme's tenant transaction, Beta's events do not exist.
    let ctx = ctx("org_acme");
    let mut tx = TenantTx::begin(&app.admin_pool, &ctx).await.unwrap();
    let seen: Vec<(String, i64)> =
        sqlx::query_as("select org_code, id from audit_events order by org_code, id")
            .fetch_all(tx.conn())
            .await
            .unwrap();
    assert_eq!(seen, [("org_acme".to_string(), 1)]);
    // Nor can it write one for Beta, change one, or delete one.
    let forged = sqlx::query(
        "insert into audit_events (org_code, id, action, details) values ('org_beta', 99, 'record.created', '{}')",
    )
    .execute(tx.conn())
    .await;
    assert!(forged.is_err(), "RLS let a forged event in");
    tx.rollback().await.unwrap();
    for sql in [
        "update audit_events set action = 'record.deleted'",
        "delete from audit_events",
    ] {
        let mut tx = TenantTx::begin(&app.admin_pool, &ctx).await.unwrap();
        let done = sqlx::query(sql).execute(tx.conn()).await;
        tx.rollback().await.unwrap();
        assert!(done.is_err(), "{sql}: the audit log is append-only");
    }
    assert_eq!(app.events_of("org_beta").await.len(), 3);
}

#[tokio::test]
async fn every_catalogue_action_on_an_orgs_app_writes_exactly_its_event_with_no_client() {
    let app = TestApp::spawn_issuer().await;
    let (id, _) = app.setup_tutorial("org_acme").await;
    let global = app
        .admin_post("/admin/apps", json!({"name": "global"}))
        .await["client_id"]
        .as_str()
        .unwrap()
        .to_string();

    app.admin_post(
        &format!("/admin/apps/{id}/rotate-secret"),
        json!({"grace": "30s"}),
    )
    .await;
    app.admin_post(&format!("/admin/apps/{id}/disable"), json!({}))
        .await;
    app.admin_post(&format!("/admin/apps/{id}/enable"), json!({}))
        .await;
    // Refused actions write nothing.
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/admin/apps/{id}/authorize"),
            Some(json!({"audience": AUDIENCE, "scopes": "read:nothing"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .admin(
            Method::POST,
            "/admin/apps/no-such-app/disable",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    // A global app belongs to no organization's log.
    app.admin_post(&format!("/admin/apps/{global}/disable"), json!({}))
        .await;
    let (status, _) = app
        .admin(Method::DELETE, &format!("/admin/apps/{id}"), None)
        .await;
    assert_eq!(status, 200);

    let app_id = |extra: Value| {
        let mut details = json!({"app_client_id": id});
        details
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        details
    };
    assert_eq!(
        app.events_of("org_acme").await,
        [
            event(
                1,
                "app.created",
                None,
                app_id(json!({"name": "org_acme client"}))
            ),
            event(
                2,
                "app.authorized",
                None,
                app_id(json!({"audience": AUDIENCE, "scopes": "read:data write:data"}))
            ),
            event(
                3,
                "app.secret_rotated",
                None,
                app_id(json!({"grace_seconds": 30}))
            ),
            event(4, "app.disabled", None, app_id(json!({}))),
            event(5, "app.enabled", None, app_id(json!({}))),
            event(6, "app.deleted", None, app_id(json!({}))),
        ]
    );
    assert_eq!(app.all_events().await, 6);
}

#[tokio::test]
async fn the_catalogue_event_leaves_the_transaction_as_it_found_it() {
    let app = TestApp::spawn_issuer().await;
    let mut conn = app.admin_pool.acquire().await.unwrap();
    let (user, org, keys): (String, String, i64) = {
        sqlx::raw_sql("begin").execute(&mut *conn).await.unwrap();
        sqlx::query("select audit_catalogue_event('org_acme', 'app.disabled', '{}')")
            .execute(&mut *conn)
            .await
            .unwrap();
        let row = sqlx::query_as(
            "select current_user::text, current_setting('app.org_code', true),
                    (select count(*) from signing_keys)",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        sqlx::raw_sql("commit").execute(&mut *conn).await.unwrap();
        row
    };
    let login: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(user, login, "back to the login role");
    assert_eq!(org, "", "no tenant context left");
    // Reading signing_keys succeeded: as orgwall_tenant it would have been refused.
    assert!(keys > 0, "the catalogue is readable again");
    assert_eq!(app.events_of("org_acme").await.len(), 1);

    // A tenant transaction cannot use it to leave orgwall_tenant.
    let ctx = ctx("org_acme");
    let mut tx = TenantTx::begin(&app.admin_pool, &ctx).await.unwrap();
    let escape = sqlx::query("select audit_catalogue_event('org_acme', 'app.disabled', '{}')")
        .execute(tx.conn())
        .await;
    tx.rollback().await.unwrap();
    let message = escape.unwrap_err().to_string();
    assert!(message.contains("permission denied"), "{message}");
}

#[tokio::test]
async fn demo_adds_read_audit_to_the_tutorial_api_also_in_an_existing_database() {
    let app = TestApp::spawn_issuer().await;
    // A database made by an earlier demo: the API with its four scopes.
    app.setup_tutorial("org_acme").await;
    let scopes = || async {
        sqlx::query_scalar::<_, String>(
            "select s.name from api_scopes s join apis a on a.id = s.api_id
              where a.audience = $1 order by s.name",
        )
        .bind(AUDIENCE)
        .fetch_all(&app.admin_pool)
        .await
        .unwrap()
    };
    assert!(!scopes().await.contains(&"read:audit".to_string()));
    for _ in 0..2 {
        orgwall::commands::demo::ensure_world(&app.admin_pool)
            .await
            .unwrap();
        assert_eq!(
            scopes().await,
            [
                "delete:data",
                "read:audit",
                "read:data",
                "read:users",
                "write:data"
            ]
        );
    }
}
