//! The second wall on its own: PostgreSQL row-level security keyed on the transaction-local
//! `app.org_code`, proven without the application's own `where org_code` filters.

use std::time::Duration;

use orgwall::tenant::TenantTx;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::helpers::{TestApp, TestDb, ctx};

/// A query function deliberately written without `where org_code`.
async fn all_record_names_unfiltered(tx: &mut TenantTx) -> Vec<String> {
    sqlx::query_scalar("select name from records order by org_code, id")
        .fetch_all(tx.conn())
        .await
        .unwrap()
}

/// A test database with the tutorial's three records, and a superuser pool of `max` on it.
async fn seeded_pool(max: u32) -> (TestDb, PgPool) {
    let db = TestDb::create().await;
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .connect(&db.url)
        .await
        .unwrap();
    // Through the function the service creates records with: it takes their ids and counts
    // them.
    for (org, name, value) in [
        ("org_acme", "Acme Record A", "100"),
        ("org_acme", "Acme Record B", "200"),
        ("org_beta", "Beta Record A", "50"),
    ] {
        sqlx::query("select id from tenant_create_record($1, null, $2, $3::jsonb)")
            .bind(org)
            .bind(name)
            .bind(value)
            .execute(&pool)
            .await
            .unwrap();
    }
    (db, pool)
}

#[tokio::test]
async fn an_unfiltered_query_in_a_tenant_transaction_sees_only_that_tenant() {
    let (_db, pool) = seeded_pool(2).await;
    let db = pool.clone();

    let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
    let acme = all_record_names_unfiltered(&mut tx).await;
    tx.commit().await.unwrap();
    let mut tx = TenantTx::begin(&db, &ctx("org_beta")).await.unwrap();
    let beta = all_record_names_unfiltered(&mut tx).await;
    tx.commit().await.unwrap();

    assert_eq!(acme, ["Acme Record A", "Acme Record B"]);
    assert_eq!(beta, ["Beta Record A"]);
}

#[tokio::test]
async fn tenant_transactions_run_as_the_limited_role_even_for_a_superuser_url() {
    let (_db, pool) = seeded_pool(1).await;
    let db = pool.clone();

    let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
    let (user, bypass): (String, bool) = sqlx::query_as(
        "select current_user::text, (select rolsuper or rolbypassrls from pg_roles where rolname = current_user)",
    )
    .fetch_one(tx.conn())
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(user, "orgwall_tenant");
    assert!(!bypass);
}

#[tokio::test]
async fn the_tenant_role_without_a_context_sees_nothing_and_cannot_insert() {
    let (_db, pool) = seeded_pool(1).await;
    let mut conn = pool.acquire().await.unwrap();

    sqlx::raw_sql("begin").execute(&mut *conn).await.unwrap();
    sqlx::raw_sql("set local role orgwall_tenant")
        .execute(&mut *conn)
        .await
        .unwrap();
    let visible: i64 = sqlx::query_scalar("select count(*) from records")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let insert = sqlx::query(
        "insert into records (org_code, id, name, value) values ('org_acme', 9, 'x', '1')",
    )
    .execute(&mut *conn)
    .await;
    sqlx::raw_sql("rollback").execute(&mut *conn).await.unwrap();

    // Empty string (what a finished transaction-local set leaves behind) matches nothing too.
    sqlx::raw_sql(
        "begin; set local role orgwall_tenant; select set_config('app.org_code', '', true)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let visible_empty: i64 = sqlx::query_scalar("select count(*) from records")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("rollback").execute(&mut *conn).await.unwrap();
    drop(conn);

    assert_eq!(visible, 0);
    let err = insert.expect_err("insert without context must fail");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501"),
        "{err}"
    );
    assert_eq!(visible_empty, 0);
}

#[tokio::test]
async fn an_insert_for_another_org_is_rejected_by_with_check() {
    let (_db, pool) = seeded_pool(1).await;
    let db = pool.clone();

    let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
    let insert = sqlx::query(
        "insert into records (org_code, id, name, value) values ('org_beta', 77, 'smuggled', '1')",
    )
    .execute(tx.conn())
    .await;
    tx.rollback().await.unwrap();
    let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
    let update = sqlx::query("update records set org_code = 'org_beta' where id = 1")
        .execute(tx.conn())
        .await;
    tx.rollback().await.unwrap();

    let err = insert.expect_err("WITH CHECK must reject");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    let err = update.expect_err("WITH CHECK must reject moving a row to another org");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    let beta: i64 = sqlx::query_scalar("select count(*) from records where org_code = 'org_beta'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(beta, 1);
}

#[tokio::test]
async fn one_pooled_connection_alternating_orgs_never_leaks_context() {
    let (_db, pool) = seeded_pool(1).await;
    let db = pool.clone();

    for round in 0..5 {
        for (org, expected) in [("org_acme", 2usize), ("org_beta", 1)] {
            let mut tx = TenantTx::begin(&db, &ctx(org)).await.unwrap();
            assert_eq!(
                all_record_names_unfiltered(&mut tx).await.len(),
                expected,
                "{org} round {round}"
            );
            if round % 2 == 0 {
                tx.commit().await.unwrap()
            } else {
                tx.rollback().await.unwrap()
            }

            // Back on the same (only) connection, outside any tenant transaction.
            let mut conn = pool.acquire().await.unwrap();
            let (setting, user): (Option<String>, String) = sqlx::query_as(
                "select nullif(current_setting('app.org_code', true), ''), current_user::text",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            assert_eq!(setting, None, "context survived its transaction");
            assert_eq!(user, "postgres", "role survived its transaction");
        }
    }
}

#[tokio::test]
async fn a_cancelled_tenant_transaction_never_returns_to_the_pool_open() {
    let (_db, pool) = seeded_pool(1).await;
    let db = pool.clone();

    // Cancel in the middle of a statement inside the transaction.
    let cancelled = tokio::time::timeout(Duration::from_millis(200), async {
        let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
        sqlx::query("insert into records (org_code, id, name, value) values ('org_acme', 50, 'partial', '1')")
            .execute(tx.conn())
            .await
            .unwrap();
        sqlx::query("select pg_sleep(5)").execute(tx.conn()).await.unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    assert!(
        cancelled.is_err(),
        "the transaction should have been cancelled"
    );

    // Cancel while BEGIN itself may be in flight, many times.
    for _ in 0..50 {
        let _ = tokio::time::timeout(
            Duration::from_micros(50),
            TenantTx::begin(&db, &ctx("org_beta")),
        )
        .await;
    }

    let mut conn = pool.acquire().await.unwrap();
    // One simple-protocol statement: outside a transaction block its implicit transaction
    // starts with it, so now() equals statement_timestamp(); inside a leaked block it cannot.
    let row = sqlx::raw_sql(
        "select (now() <> statement_timestamp())::text, coalesce(nullif(current_setting('app.org_code', true), ''), '-')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let in_tx = sqlx::Row::get::<String, _>(&row, 0) == "true";
    let setting = Some(sqlx::Row::get::<String, _>(&row, 1)).filter(|s| s != "-");
    drop(conn);
    let idle_in_tx: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(idle_in_tx, 0);
    assert!(!in_tx, "connection came back inside a transaction");
    assert_eq!(setting, None);
    let partial: i64 = sqlx::query_scalar("select count(*) from records where name = 'partial'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(partial, 0, "a cancelled transaction's write is visible");
}

#[tokio::test]
async fn a_request_abandoned_mid_transaction_leaks_no_transaction_and_no_partial_write() {
    let app = TestApp::spawn().await;
    let token = app.issuer.token("org_acme", "write:data");
    // Hold a lock that the create's counter upsert must wait for.
    let mut blocker = app.admin_pool.acquire().await.unwrap();
    sqlx::raw_sql("begin; lock table org_counters in access exclusive mode")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let res = client
        .post(app.url("/orgs/org_acme/data"))
        .bearer_auth(&token)
        .json(&json!({"name": "never", "value": 1}))
        .send()
        .await;
    assert!(res.is_err(), "the client should have given up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::raw_sql("rollback")
        .execute(&mut *blocker)
        .await
        .unwrap();
    drop(blocker);

    // The abandoned backend finishes or dies; none stays idle in transaction.
    let mut stuck = 1;
    for _ in 0..50 {
        stuck = sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_activity
              where datname = current_database() and application_name = 'orgwall'
                and state like 'idle in transaction%'",
        )
        .fetch_one(&app.admin_pool)
        .await
        .unwrap();
        if stuck == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stuck, 0);
    // The service still works, and the abandoned write is not visible.
    let res = app
        .post_json(
            "/orgs/org_acme/data",
            Some(&token),
            &json!({"name": "after", "value": 2}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // The abandoned request either committed whole (actix may finish it) or not at all:
    // ids stay dense, and no row is half-written.
    let rows = app.rows_of("org_acme").await;
    let names: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert!(
        names == ["after"] || names == ["never", "after"],
        "{names:?}"
    );
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, (1..=rows.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_one_statement_tenant_call_sees_one_tenant_and_leaves_nothing_on_the_connection() {
    let (_db, pool) = seeded_pool(1).await;
    let db = pool.clone();
    let page = orgwall::tenant::records::Page {
        limit: 100,
        after: 0,
    };

    for (org, expected) in [("org_acme", 2usize), ("org_beta", 1), ("org_acme", 2)] {
        let acme = ctx(org);
        let call = orgwall::tenant::TenantCall::new(&db, &acme);
        let (records, total) = orgwall::tenant::records::list(&call, &page).await.unwrap();
        assert_eq!((records.len(), total), (expected, expected as i64), "{org}");

        // The same (only) connection afterwards: no role, no context, no transaction.
        let mut conn = pool.acquire().await.unwrap();
        let (setting, user): (Option<String>, String) = sqlx::query_as(
            "select nullif(current_setting('app.org_code', true), ''), current_user::text",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(setting, None);
        assert_eq!(user, "postgres");
    }
}

/// A database migrated by the owner with a runtime login role of its own (as `migrate` makes
/// it with DATABASE_RUNTIME_ROLE: a member of `orgwall_tenant` and `orgwall_issuer`), both
/// dropped at the end, even when the test fails.
struct RuntimeRoleDb {
    db_name: String,
    role: String,
    /// DATABASE_URL logging in as the runtime role.
    runtime_url: String,
}

impl RuntimeRoleDb {
    async fn create() -> Self {
        let (db_name, owner_url) = TestDb::create().await.detach();
        let role = format!(
            "orgwall_rt_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let password = "runtime-role-password-for-a-test";
        let vars = std::collections::HashMap::from([
            ("database_url".to_string(), owner_url),
            ("database_runtime_role".to_string(), role.clone()),
            (
                "database_runtime_password".to_string(),
                password.to_string(),
            ),
        ]);
        let settings = orgwall::config::Settings::from_map(&vars).unwrap();
        let server = crate::helpers::server_url();
        let host = server.rsplit_once('@').map_or(server.as_str(), |(_, h)| h);
        let host = host.trim_start_matches("postgres://");
        let guard = Self {
            runtime_url: format!("postgres://{role}:{password}@{host}/{db_name}"),
            db_name,
            role,
        };
        orgwall::commands::migrate(&settings)
            .await
            .expect("migrate creates the runtime role");
        guard
    }
}

impl Drop for RuntimeRoleDb {
    fn drop(&mut self) {
        let (db_name, role) = (self.db_name.clone(), self.role.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let url = format!("{}/postgres", crate::helpers::server_url());
                if let Ok(mut conn) = PgConnection::connect(&url).await {
                    for sql in [
                        format!(r#"drop database if exists "{db_name}" with (force)"#),
                        format!(r#"drop role if exists "{role}""#),
                    ] {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

fn is_permission_denied(result: Result<impl std::fmt::Debug, sqlx::Error>) -> bool {
    match result {
        Err(e) => e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42501"),
        Ok(_) => false,
    }
}

#[tokio::test]
async fn tenant_work_runs_as_orgwall_tenant_and_cannot_read_signing_keys_even_as_the_runtime_role()
{
    let db = RuntimeRoleDb::create().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.runtime_url)
        .await
        .unwrap();
    // Outside tenant work the runtime role reads the issuer's catalogue: it is the issuer.
    let login: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(login, db.role);
    sqlx::query("select count(*) from signing_keys")
        .fetch_one(&pool)
        .await
        .expect("the runtime role reads signing_keys outside tenant work");

    // Inside a tenant transaction.
    let mut tx = TenantTx::begin(&pool, &ctx("org_acme")).await.unwrap();
    let user: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    let keys = sqlx::query("select private_der from signing_keys")
        .fetch_all(tx.conn())
        .await;
    tx.rollback().await.unwrap();
    assert_eq!(user, "orgwall_tenant");
    assert!(
        is_permission_denied(keys),
        "a tenant transaction read signing_keys"
    );

    // After entering a tenant context the way every tenant_* function does.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql("begin; select tenant_enter('org_acme')")
        .execute(&mut *conn)
        .await
        .unwrap();
    let user: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let keys = sqlx::query("select private_der from signing_keys")
        .fetch_all(&mut *conn)
        .await;
    sqlx::raw_sql("rollback").execute(&mut *conn).await.unwrap();
    drop(conn);
    assert_eq!(user, "orgwall_tenant");
    assert!(
        is_permission_denied(keys),
        "tenant_enter left signing_keys readable"
    );

    // Inside a one-statement tenant call: a probe trigger (installed by the owner) reports who
    // runs the insert of tenant_create_record and whether it could read signing_keys.
    let mut owner =
        PgConnection::connect(&format!("{}/{}", crate::helpers::server_url(), db.db_name))
            .await
            .unwrap();
    sqlx::raw_sql(
        "create function probe_tenant_write() returns trigger language plpgsql as $$
         declare readable boolean := true;
         begin
           begin
             perform 1 from public.signing_keys limit 1;
           exception when insufficient_privilege then
             readable := false;
           end;
           raise exception 'probe user=% keys_readable=%', current_user, readable;
         end $$;
         create trigger probe_tenant_write before insert on records
           for each row execute function probe_tenant_write();",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    owner.close().await.unwrap();
    let name = orgwall::domain::RecordName::parse("probe".into()).unwrap();
    let acme = ctx("org_acme");
    let call = orgwall::tenant::TenantCall::new(&pool, &acme);
    let err = orgwall::tenant::records::create(&call, &name, &json!(1))
        .await
        .expect_err("the probe stops the insert");
    let message = err.as_database_error().unwrap().message().to_owned();
    assert_eq!(message, "probe user=orgwall_tenant keys_readable=f");
    pool.close().await;
}
