//! The command line (shared/CONTRACT.md §1).

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;

use crate::config::Settings;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "orgwall",
    version,
    about = "Organization-scoped M2M auth for multi-tenant APIs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing and apply the embedded migrations.
    Migrate,
    /// Serve HTTP(S) until SIGINT/SIGTERM, then drain in-flight requests.
    Serve,
}

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
    crate::MIGRATOR
        .run(&mut conn)
        .await
        .context("applying migrations failed")?;
    tracing::info!("migrations applied");
    Ok(())
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            migrate(&settings).await?;
            println!("{}", serde_json::json!({"migrated": true}));
            Ok(())
        }
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "orgwall listening");
            app.run_until_stopped().await?;
            Ok(())
        }
    }
}
