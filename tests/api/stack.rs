//! The stack as docker-compose.yml runs it: `migrate` as the owner creating the runtime login
//! role, then `demo` as that limited role. The environment is read from docker-compose.yml
//! itself, so the file and this test cannot drift apart.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, TestDb, free_port, server_url};

/// `KEY: value` environment lines of one compose service, and its command.
fn compose_service(name: &str) -> (HashMap<String, String>, String) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    let mut in_service = false;
    let mut in_env = false;
    let mut env = HashMap::new();
    let mut command = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if indent == 2 && trimmed.ends_with(':') {
            in_service = trimmed == format!("{name}:");
            in_env = false;
            continue;
        }
        if !in_service {
            continue;
        }
        if indent == 4 {
            in_env = trimmed == "environment:";
            if let Some(c) = trimmed.strip_prefix("command:") {
                command = c.trim().to_string();
            }
        } else if indent == 6
            && in_env
            && let Some((k, v)) = trimmed.split_once(": ")
        {
            env.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    (env, command)
}

/// Points a compose URL (`...@db:5432/orgwall`) at the test's server and database.
fn local(url: &str, db_name: &str) -> String {
    let (head, _) = url
        .split_once("@db:5432/")
        .expect("compose URL names db:5432");
    // TEST_DATABASE_URL is postgres://USER@HOST:PORT; keep its HOST:PORT.
    let server = server_url();
    let authority = server.split_once("://").unwrap().1;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{head}@{host}/{db_name}")
}

#[tokio::test]
async fn the_compose_stack_runs_as_a_limited_runtime_role_and_keeps_tenants_apart() {
    let (migrate_env, migrate_cmd) = compose_service("migrate");
    let (orgwall_env, orgwall_cmd) = compose_service("orgwall");
    assert_eq!(migrate_cmd, r#"["migrate"]"#);
    assert_eq!(orgwall_cmd, r#"["demo"]"#);
    let role = migrate_env["DATABASE_RUNTIME_ROLE"].clone();
    assert!(
        orgwall_env["DATABASE_URL"].starts_with(&format!("postgres://{role}:")),
        "orgwall connects as the runtime role"
    );

    // `migrate` as the owner, with the compose environment.
    let db = TestDb::create().await;
    let (db_name, owner_url) = (db.name.clone(), db.url.clone());
    let mut vars: HashMap<String, String> = migrate_env
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    vars.insert("database_url".into(), owner_url.clone());
    let settings = orgwall::config::Settings::from_map(&vars).unwrap();
    orgwall::commands::migrate(&settings)
        .await
        .expect("migrate creates the runtime role");

    // The role's attributes: login, not superuser, not BYPASSRLS, owns nothing.
    let owner = sqlx::PgPool::connect(&owner_url).await.unwrap();
    let (login, superuser, bypass, owns): (bool, bool, bool, i64) = sqlx::query_as(
        "select r.rolcanlogin, r.rolsuper, r.rolbypassrls,
                (select count(*) from pg_class c where c.relowner = r.oid)
           from pg_roles r where r.rolname = $1",
    )
    .bind(&role)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(login && !superuser && !bypass);
    assert_eq!(owns, 0);

    // `demo` as the runtime role, with the compose environment.
    let port = free_port();
    let runtime_url = local(&orgwall_env["DATABASE_URL"], &db_name);
    let mut demo_vars: HashMap<String, String> = orgwall_env
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    demo_vars.insert("database_url".into(), runtime_url.clone());
    demo_vars.insert("host".into(), "127.0.0.1".into());
    demo_vars.insert("port".into(), port.to_string());
    demo_vars.insert("public_url".into(), format!("http://127.0.0.1:{port}"));
    demo_vars.insert("workers".into(), "1".into());
    demo_vars.insert("metrics_addr".into(), "127.0.0.1:0".into());
    let settings = orgwall::config::Settings::from_map(&demo_vars).unwrap();
    orgwall::commands::migrate_if_needed(&settings)
        .await
        .expect("nothing to migrate for the runtime role");
    let runtime_pool = orgwall::db::pool(&settings).unwrap();
    let apps = orgwall::commands::demo::ensure_world(&runtime_pool)
        .await
        .expect("demo world as the runtime role");
    // Tenant work as the runtime role drops to orgwall_tenant all the same.
    let acme = crate::helpers::ctx("org_acme");
    let mut tx = orgwall::tenant::TenantTx::begin(&runtime_pool, &acme)
        .await
        .unwrap();
    let tenant_user: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(tenant_user, "orgwall_tenant");
    let app = orgwall::startup::Application::build(settings.clone())
        .await
        .unwrap();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let base = settings.public_url.clone();
    let http = reqwest::Client::new();

    // The tutorial's walkthrough against that service.
    let acme = &apps[0];
    let token: Value = http
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &acme.client_id),
            ("client_secret", &acme.client_secret),
            ("audience", AUDIENCE),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let own: Value = http
        .get(format!("{base}/orgs/org_acme/data"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own["total"], 2);
    let cross = http
        .get(format!("{base}/orgs/org_beta/data"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let res = http
        .post(format!("{base}/orgs/org_acme/data"))
        .bearer_auth(token)
        .json(&json!({"name": "C", "value": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // The runtime role outside a tenant transaction sees no tenant row, and cannot touch the
    // schema or bypass RLS.
    let visible: i64 = sqlx::query_scalar("select count(*) from records")
        .fetch_one(&runtime_pool)
        .await
        .unwrap();
    assert_eq!(visible, 0);
    let ddl = sqlx::query("alter table records disable row level security")
        .execute(&runtime_pool)
        .await;
    assert!(ddl.is_err());
    let all: i64 = sqlx::query_scalar("select count(*) from records")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(all, 4);

    handle.stop(false).await;
    runtime_pool.close().await;
    owner.close().await;
}
