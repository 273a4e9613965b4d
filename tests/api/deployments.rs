//! Several orgwall deployments on one PostgreSQL server. Roles are cluster-wide and every runtime
//! role is a member of the shared `orgwall_issuer`, so what keeps deployment A's runtime role out
//! of deployment B's signing keys is that `migrate` lets only B's owner and B's runtime role
//! connect to B. And `migrate` refuses an existing group role with dangerous attributes.
//!
//! The real `orgwall_tenant`/`orgwall_issuer` are shared by every test running on this server,
//! so no test here alters them: the refusal is tested on roles of the tests' own (unique names,
//! dropped at the end) through the same check `migrate` runs, with the role names passed in.

use std::collections::HashMap;
use std::str::FromStr;

use orgwall::config::Settings;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::server_url;

/// Roles and databases a test made, dropped when it ends (even by a panic).
#[derive(Default)]
struct Made {
    databases: Vec<String>,
    roles: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        let databases = std::mem::take(&mut self.databases);
        let roles = std::mem::take(&mut self.roles);
        // Drop runs outside async context: a thread with its own runtime, as helpers.rs does.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(mut conn) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                else {
                    return;
                };
                for db in databases {
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "drop database if exists {} with (force)",
                            quote_ident(&db)
                        )))
                        .await;
                }
                // `drop owned by` also revokes privileges on databases (shared objects).
                for role in roles {
                    let role = quote_ident(&role);
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "drop owned by {role}; drop role if exists {role}"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn options() -> PgConnectOptions {
    PgConnectOptions::from_str(&server_url()).unwrap()
}

async fn superuser_on(db: &str) -> PgConnection {
    PgConnection::connect_with(&options().database(db))
        .await
        .expect("superuser connects")
}

/// One deployment: a database migrated by `orgwall migrate` with a runtime role of its own.
struct Deployment {
    db: String,
    role: String,
    password: String,
    settings: Settings,
}

impl Deployment {
    async fn migrate(made: &mut Made) -> Self {
        let db = unique("orgwall_test");
        let role = unique("orgwall_test_rt");
        let password = uuid::Uuid::new_v4().simple().to_string();
        made.databases.push(db.clone());
        made.roles.push(role.clone());
        let settings = Settings::from_map(&HashMap::from([
            ("database_url".into(), format!("{}/{db}", server_url())),
            ("database_runtime_role".into(), role.clone()),
            ("database_runtime_password".into(), password.clone()),
        ]))
        .unwrap();
        orgwall::commands::migrate(&settings)
            .await
            .expect("migrate");
        Self {
            db,
            role,
            password,
            settings,
        }
    }

    /// Connects to `db` as this deployment's runtime role, with its password.
    async fn runtime_role_on(&self, db: &str) -> Result<PgConnection, sqlx::Error> {
        connect_as(&self.role, &self.password, db).await
    }
}

async fn connect_as(role: &str, password: &str, db: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect_with(&options().username(role).password(password).database(db)).await
}

fn assert_connect_denied(result: Result<PgConnection, sqlx::Error>, db: &str) {
    let err = result.expect_err("the connection is refused");
    let db_err = err
        .as_database_error()
        .unwrap_or_else(|| panic!("a database error, not {err}"));
    assert_eq!(db_err.code().as_deref(), Some("42501"), "{db_err}");
    assert!(
        db_err
            .message()
            .contains(&format!("permission denied for database \"{db}\"")),
        "{db_err}"
    );
}

async fn public_can_connect(db: &str) -> bool {
    sqlx::query_scalar("select has_database_privilege('public', $1, 'CONNECT')")
        .bind(db)
        .fetch_one(&mut superuser_on("postgres").await)
        .await
        .unwrap()
}

async fn datacl(db: &str) -> Option<String> {
    sqlx::query_scalar("select datacl::text from pg_database where datname = $1")
        .bind(db)
        .fetch_one(&mut superuser_on("postgres").await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_runtime_role_made_for_one_database_cannot_connect_to_another_on_the_same_server() {
    let mut made = Made::default();
    let a = Deployment::migrate(&mut made).await;
    let b = Deployment::migrate(&mut made).await;

    // Each runtime role works in its own database, signing keys included...
    for d in [&a, &b] {
        let mut conn = d
            .runtime_role_on(&d.db)
            .await
            .expect("a runtime role connects to its own database");
        let keys: i64 = sqlx::query_scalar("select count(*) from signing_keys")
            .fetch_one(&mut conn)
            .await
            .expect("the runtime role reads its own signing keys");
        assert!(keys >= 0);
    }
    // ...and cannot even connect to the other's.
    assert_connect_denied(a.runtime_role_on(&b.db).await, &b.db);
    assert_connect_denied(b.runtime_role_on(&a.db).await, &a.db);
    assert!(!public_can_connect(&a.db).await && !public_can_connect(&b.db).await);

    // Nor can any other login role on the server.
    let other = unique("orgwall_test_other");
    made.roles.push(other.clone());
    superuser_on("postgres")
        .await
        .execute(sqlx::AssertSqlSafe(format!(
            "create role {} login password '{}'",
            quote_ident(&other),
            a.password
        )))
        .await
        .unwrap();
    assert_connect_denied(connect_as(&other, &a.password, &a.db).await, &a.db);

    // Idempotent: migrating again changes no privilege and keeps every answer.
    let before = datacl(&a.db).await;
    orgwall::commands::migrate(&a.settings)
        .await
        .expect("migrate again");
    assert_eq!(datacl(&a.db).await, before);
    a.runtime_role_on(&a.db)
        .await
        .expect("still connects to its own database");
    assert_connect_denied(a.runtime_role_on(&b.db).await, &b.db);
}

#[tokio::test]
async fn without_a_runtime_role_only_the_owner_may_connect() {
    let mut made = Made::default();
    let db = unique("orgwall_test");
    made.databases.push(db.clone());
    let settings = Settings::from_map(&HashMap::from([(
        "database_url".into(),
        format!("{}/{db}", server_url()),
    )]))
    .unwrap();
    orgwall::commands::migrate(&settings)
        .await
        .expect("migrate");
    assert!(!public_can_connect(&db).await);
    let owner_can_connect: bool = sqlx::query_scalar(
        "select has_database_privilege(pg_get_userbyid(datdba), datname, 'CONNECT')
           from pg_database where datname = $1",
    )
    .bind(&db)
    .fetch_one(&mut superuser_on("postgres").await)
    .await
    .unwrap();
    assert!(owner_can_connect);
}

#[tokio::test]
async fn the_connect_restriction_quotes_any_database_name() {
    let mut made = Made::default();
    let db = format!("{} \"x\"; drop", unique("Orgwall Test"));
    made.databases.push(db.clone());
    superuser_on("postgres")
        .await
        .execute(sqlx::AssertSqlSafe(format!(
            "create database {}",
            quote_ident(&db)
        )))
        .await
        .unwrap();
    let mut conn = superuser_on(&db).await;
    orgwall::roles::restrict_connect(&mut conn, None)
        .await
        .expect("restrict connect");
    orgwall::roles::restrict_connect(&mut conn, None)
        .await
        .expect("and again");
    assert!(!public_can_connect(&db).await);
}

/// Creates a role of the test's own with `attributes`, returning its name.
async fn own_role(made: &mut Made, attributes: &str) -> String {
    let name = unique("orgwall_test_group");
    made.roles.push(name.clone());
    superuser_on("postgres")
        .await
        .execute(sqlx::AssertSqlSafe(format!(
            "create role {name} {attributes}"
        )))
        .await
        .unwrap();
    name
}

/// Creates a database of the test's own, owned by `owner`, returning its name.
async fn own_database(made: &mut Made, owner: &str) -> String {
    let db = unique("orgwall_test");
    made.databases.push(db.clone());
    superuser_on("postgres")
        .await
        .execute(sqlx::AssertSqlSafe(format!(
            "create database {db} owner {owner}"
        )))
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn migrate_refuses_an_existing_group_role_that_can_log_in_bypass_rls_or_create_roles() {
    let mut made = Made::default();
    let mut conn = superuser_on("postgres").await;
    for (attributes, named) in [
        ("login", "LOGIN"),
        ("superuser", "SUPERUSER"),
        ("bypassrls", "BYPASSRLS"),
        ("createrole", "CREATEROLE"),
        ("login bypassrls", "LOGIN, BYPASSRLS"),
    ] {
        let name = own_role(&mut made, attributes).await;
        let err = orgwall::roles::check_group_roles(&mut conn, &["orgwall_tenant", &name])
            .await
            .expect_err(attributes);
        assert_eq!(
            format!("{err:#}"),
            format!("{name}: existing role has {named}; refusing to use it")
        );
    }
    // A role with none of them passes, as does one that does not exist yet.
    let fine = own_role(&mut made, "nologin noinherit").await;
    let missing = unique("orgwall_test_missing");
    orgwall::roles::check_group_roles(&mut conn, &[&fine, &missing])
        .await
        .expect("safe roles pass");
}

#[tokio::test]
async fn the_real_group_roles_exist_and_pass_the_check_migrate_runs() {
    let (db, _) = crate::helpers::TestDb::create().await.detach();
    let mut made = Made::default();
    made.databases.push(db);
    let mut conn = superuser_on("postgres").await;
    let existing: i64 = sqlx::query_scalar("select count(*) from pg_roles where rolname = any($1)")
        .bind(&orgwall::roles::GROUP_ROLES[..])
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(existing, 2, "the check is not vacuous");
    orgwall::roles::check_group_roles(&mut conn, &orgwall::roles::GROUP_ROLES)
        .await
        .expect("orgwall_tenant and orgwall_issuer are safe");
}

/// The migration that guards `sqlx migrate run` makes the same refusal. It runs here, in a
/// transaction that is rolled back, with the test's own roles in place of the real ones.
#[tokio::test]
async fn the_migration_refuses_such_a_role_too() {
    const SQL: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/migrations/20261201152000_refuse_privileged_group_roles.sql"
    ));
    const NAMES: &str = "('orgwall_tenant', 'orgwall_issuer')";
    assert!(SQL.contains(NAMES));
    let mut made = Made::default();
    let bad = own_role(&mut made, "login createrole").await;
    let fine = own_role(&mut made, "nologin").await;
    let mut conn = superuser_on("postgres").await;

    let mut tx = conn.begin().await.unwrap();
    let err = tx
        .execute(sqlx::AssertSqlSafe(
            SQL.replace(NAMES, &format!("('{fine}', '{bad}')")),
        ))
        .await
        .expect_err("refused");
    assert_eq!(
        err.as_database_error().unwrap().message(),
        format!("{bad}: existing role has LOGIN, CREATEROLE; refusing to use it")
    );
    tx.rollback().await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    tx.execute(sqlx::AssertSqlSafe(
        SQL.replace(NAMES, &format!("('{fine}')")),
    ))
    .await
    .expect("a safe role passes");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn migrate_refuses_the_database_owner_as_the_runtime_role() {
    let mut made = Made::default();
    let owner = own_role(&mut made, "nologin").await;
    let db = own_database(&mut made, &owner).await;
    let settings = Settings::from_map(&HashMap::from([
        ("database_url".into(), format!("{}/{db}", server_url())),
        ("database_runtime_role".into(), owner.clone()),
        (
            "database_runtime_password".into(),
            "a-long-enough-password".into(),
        ),
    ]))
    .unwrap();
    let err = orgwall::commands::migrate(&settings)
        .await
        .expect_err("the owner is not a runtime role");
    assert!(format!("{err:#}").contains(&format!("`{owner}` is the database's owner")));
    let can_login: bool = sqlx::query_scalar("select rolcanlogin from pg_roles where rolname = $1")
        .bind(&owner)
        .fetch_one(&mut superuser_on("postgres").await)
        .await
        .unwrap();
    assert!(!can_login, "the owner role was left as it was");
}

/// The last migration before organizations' counters became one row each.
const BEFORE_ONE_COUNTER_ROW: i64 = 20261201180000;

#[tokio::test]
async fn the_move_to_one_counter_row_per_org_keeps_every_id_and_total_when_the_owner_migrates() {
    // Arrange: a database owned by a role that is neither superuser nor BYPASSRLS (as a managed
    // PostgreSQL gives), migrated by it to the migration before, holding data written the way
    // that release wrote it: Acme with three records (one deleted since), two users and four
    // events, Beta with one record. Forced RLS applies to such an owner.
    let mut made = Made::default();
    let owner = own_role(&mut made, "login nosuperuser nobypassrls").await;
    let db = own_database(&mut made, &owner).await;
    let mut as_owner = PgConnection::connect_with(&options().database(&db).username(&owner))
        .await
        .unwrap();
    orgwall::MIGRATOR
        .run_to(BEFORE_ONE_COUNTER_ROW, &mut as_owner)
        .await
        .unwrap();
    let mut superuser = superuser_on(&db).await;
    for statement in [
        "select tenant_create_record('org_acme', 'app_a', 'A', '1')",
        "select tenant_create_record('org_acme', 'app_a', 'B', '2')",
        "select tenant_create_record('org_acme', 'app_a', 'C', '3')",
        "select tenant_create_record('org_beta', 'app_b', 'B', '1')",
        "begin; select tenant_enter('org_acme');
         insert into org_users (org_code, id, email, name)
         values ('org_acme', tenant_next_id('org_acme', 'org_users'), 'a@acme.test', 'A'),
                ('org_acme', tenant_next_id('org_acme', 'org_users'), 'b@acme.test', 'B');
         delete from records where id = 2;
         select tenant_audit('org_acme', 'record.deleted', 'app_a', '{\"record_id\": 2}');
         commit",
    ] {
        superuser
            .execute(sqlx::AssertSqlSafe(statement))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    // Act
    orgwall::MIGRATOR.run(&mut as_owner).await.unwrap();

    // Assert: each org's counters in its one row, which RLS guards again...
    let counters: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "select org_code, last_record_id, live_records, last_user_id, last_event_id
           from org_counters order by org_code",
    )
    .fetch_all(&mut superuser)
    .await
    .unwrap();
    assert_eq!(
        counters,
        [
            ("org_acme".to_owned(), 3, 2, 2, 4),
            ("org_beta".to_owned(), 1, 1, 0, 1)
        ]
    );
    let forced: Vec<(String, bool)> = sqlx::query_as(
        "select relname::text, relforcerowsecurity from pg_class
          where relname in ('org_counters', 'tenant_counters') and relkind = 'r'",
    )
    .fetch_all(&mut superuser)
    .await
    .unwrap();
    assert_eq!(forced, [("org_counters".to_owned(), true)]);
    // ...and the next create carries on from them: record 4, event 5, three live records.
    let mut scalar = async |sql: &str| -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut superuser)
            .await
            .unwrap()
    };
    let record = scalar("select id from tenant_create_record('org_acme', 'app_a', 'D', '4')").await;
    let event = scalar("select max(id) from audit_events where org_code = 'org_acme'").await;
    let total = scalar("select tenant_count_records('org_acme')").await;
    assert_eq!((record, event, total), (4, 5, 3));
    let _ = as_owner.close().await;
}
