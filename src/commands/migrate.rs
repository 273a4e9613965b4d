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
    let mut conn = sqlx::ConnectOptions::connect(&crate::db::connect_options(settings)?)
        .await
        .context("DATABASE_URL: cannot connect")?;
    crate::roles::check_group_roles(&mut conn, &crate::roles::GROUP_ROLES).await?;
    crate::MIGRATOR
        .run(&mut conn)
        .await
        .context("applying migrations failed")?;
    tracing::info!("migrations applied");
    crate::roles::secure_database(&mut conn, settings.runtime_role.as_ref()).await?;
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
