//! `orgwall migrate`, and the check `demo` makes before migrating.

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;

use crate::config::Settings;

/// Creates the database named in `DATABASE_URL` when missing, then applies the migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database_url.expose_secret();
    if !sqlx::Postgres::database_exists(url)
        .await
        .context("DATABASE_URL: cannot reach the database server")?
    {
        sqlx::Postgres::create_database(url)
            .await
            .context("DATABASE_URL: cannot create the database")?;
        tracing::info!("created the database");
    }
    let mut conn = sqlx::ConnectOptions::connect(&crate::db::direct_options(settings)?)
        .await
        .context("DATABASE_URL: cannot connect")?;
    crate::roles::check_group_roles(&mut conn, &crate::roles::GROUP_ROLES).await?;
    accept_reworded_migrations(&mut conn).await?;
    crate::MIGRATOR
        .run(&mut conn)
        .await
        .context("applying migrations failed")?;
    tracing::info!("migrations applied");
    crate::roles::secure_database(&mut conn, settings.runtime_role.as_ref()).await?;
    crate::roles::store_session_timeouts(
        &mut conn,
        settings
            .runtime_role
            .as_ref()
            .map(|(name, _)| name.as_str()),
        settings.db.statement_timeout,
    )
    .await?;
    Ok(())
}

/// Migrations whose comments were reworded after release (their statements are unchanged), with
/// the checksum their earlier text had. sqlx refuses an applied migration whose checksum changed;
/// a database that applied the earlier text gets the current checksum recorded instead. Any
/// other change to an applied migration is still refused.
const REWORDED: &[(i64, &str)] = &[
    (
        20261127000001,
        "ae44646047c5e5d9f772a1076e43bbd1b44a09bda8a60fcb05ec4c27eb07eb566bcd6ad1a634dc0db4cb75d4636f0165",
    ),
    (
        20261127000002,
        "8fb3d52e04158a102257a664b7e912c5fe0ea8f9d37a7b2ce67dcd6ea9199596ac59fa7422c130d4fe6efcc53a7246bd",
    ),
];

/// Records the current checksum of each [`REWORDED`] migration where the earlier one is recorded.
pub async fn accept_reworded_migrations(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    // Runtime SQL: the bookkeeping table may not exist yet (a new database).
    let tracked: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(&mut *conn)
        .await?;
    if !tracked {
        return Ok(());
    }
    for (version, earlier) in REWORDED {
        let Some(current) = crate::MIGRATOR.iter().find(|m| m.version == *version) else {
            continue;
        };
        sqlx::query(
            "update _sqlx_migrations set checksum = $1
              where version = $2 and checksum = decode($3, 'hex')",
        )
        .bind(current.checksum.as_ref())
        .bind(version)
        .bind(earlier)
        .execute(&mut *conn)
        .await
        .context("recording the checksum of a reworded migration")?;
    }
    Ok(())
}

/// Migrates only when an embedded migration is not applied yet, so that `demo` also runs as
/// the limited runtime role once the owner has migrated.
pub async fn migrate_if_needed(settings: &Settings) -> anyhow::Result<()> {
    let applied = match super::connect(settings).await {
        Ok(pool) => crate::db::applied_migrations(&pool).await.ok(),
        Err(_) => None,
    };
    let up_to_date =
        applied.is_some_and(|applied| crate::MIGRATOR.iter().all(|m| applied.contains(&m.version)));
    if up_to_date {
        Ok(())
    } else {
        migrate(settings).await
    }
}
