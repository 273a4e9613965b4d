//! `migrate` on a database that an earlier release migrated.

use std::collections::HashMap;

use orgwall::config::Settings;
use sqlx::postgres::PgPoolOptions;

use crate::helpers::{TestApp, TestDb};

#[tokio::test]
async fn migrate_accepts_a_database_that_applied_the_earlier_wording_of_a_migration() {
    // Arrange: the checksum the first release recorded for the tenant-tables migration, whose
    // comments were reworded since.
    let app = TestApp::spawn().await;
    let earlier = "ae44646047c5e5d9f772a1076e43bbd1b44a09bda8a60fcb05ec4c27eb07eb566bcd6ad1a634dc0db4cb75d4636f0165";
    sqlx::query(
        "update _sqlx_migrations set checksum = decode($1, 'hex') where version = 20261127000001",
    )
    .bind(earlier)
    .execute(&app.admin_pool)
    .await
    .unwrap();
    let url = app.db.url.clone();
    let settings = Settings::from_map(&HashMap::from([("database_url".into(), url)])).unwrap();

    // Act
    orgwall::commands::migrate(&settings)
        .await
        .expect("migrate accepts the reworded migration");

    // Assert: the current checksum is recorded now.
    let current = orgwall::MIGRATOR
        .iter()
        .find(|m| m.version == 20261127000001)
        .unwrap()
        .checksum
        .to_vec();
    let recorded: Vec<u8> =
        sqlx::query_scalar("select checksum from _sqlx_migrations where version = 20261127000001")
            .fetch_one(&app.admin_pool)
            .await
            .unwrap();
    assert_eq!(recorded, current);
}

#[tokio::test]
async fn migrate_still_refuses_an_applied_migration_changed_in_another_way() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "update _sqlx_migrations set checksum = decode(repeat('00', 48), 'hex') where version = 20261127000001",
    )
    .execute(&app.admin_pool)
    .await
    .unwrap();
    let url = app.db.url.clone();
    let settings = Settings::from_map(&HashMap::from([("database_url".into(), url)])).unwrap();

    let err = orgwall::commands::migrate(&settings)
        .await
        .expect_err("a checksum nobody recorded is refused");

    assert!(
        format!("{err:#}").contains("20261127000001"),
        "the error names the migration: {err:#}"
    );
}

/// The last migration before organizations' counters became one row each.
const BEFORE_ONE_COUNTER_ROW: i64 = 20261201180000;

#[tokio::test]
async fn the_move_to_one_counter_row_per_org_keeps_every_id_and_total() {
    // Arrange: a database at the migration before, holding data written the way that release
    // wrote it: Acme with three records (one deleted since), two users and four events, Beta
    // with one record.
    let db = TestDb::empty().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    orgwall::MIGRATOR
        .run_to(BEFORE_ONE_COUNTER_ROW, &pool)
        .await
        .unwrap();
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
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    // Act
    orgwall::MIGRATOR.run(&pool).await.unwrap();

    // Assert: each org's counters in its one row...
    let counters: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "select org_code, last_record_id, live_records, last_user_id, last_event_id
           from org_counters order by org_code",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        counters,
        [
            ("org_acme".to_owned(), 3, 2, 2, 4),
            ("org_beta".to_owned(), 1, 1, 0, 1)
        ]
    );
    let old_table: Option<String> =
        sqlx::query_scalar("select to_regclass('tenant_counters')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(old_table, None);
    // ...and the next create carries on from them: record 4, event 5, three live records.
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let record = scalar("select id from tenant_create_record('org_acme', 'app_a', 'D', '4')").await;
    let event = scalar("select max(id) from audit_events where org_code = 'org_acme'").await;
    let total = scalar("select tenant_count_records('org_acme')").await;
    assert_eq!((record, event, total), (4, 5, 3));
}
