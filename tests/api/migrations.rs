//! `migrate` on a database that an earlier release migrated.

use std::collections::HashMap;

use orgwall::config::Settings;

use crate::helpers::TestApp;

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
