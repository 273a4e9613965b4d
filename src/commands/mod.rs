//! The command line: machine-readable JSON on stdout, logs and human messages on stderr. One
//! file per command group; every catalogue command calls the same issuer functions as the
//! admin API.

mod api;
mod app;
pub mod demo;
mod keys;
mod migrate;
mod org;
mod token;
mod user;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::Settings;
use crate::startup::Application;

pub use api::ApiCmd;
pub use app::AppCmd;
pub use keys::KeysCmd;
pub use migrate::{migrate, migrate_if_needed};
pub use org::OrgCmd;
pub use token::TokenArgs;
pub use user::UserCmd;

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
    /// Migrate, create the tutorial's world, print working credentials, then serve.
    Demo,
    /// Register APIs and their scopes.
    #[command(subcommand)]
    Api(ApiCmd),
    /// Create organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Manage M2M applications.
    #[command(subcommand)]
    App(AppCmd),
    /// Issue a token for an app without its secret (the dashboard's "Test → Get token").
    Token(TokenArgs),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// An organization's users.
    #[command(subcommand)]
    User(UserCmd),
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            migrate(&settings).await?;
            print_json(&serde_json::json!({"migrated": true}))
        }
        Command::Serve => serve(settings).await,
        Command::Demo => demo::run(settings).await,
        Command::Token(args) => token::run(args, &settings).await,
        Command::Keys(cmd) => keys::run(cmd, &connect(&settings).await?).await,
        Command::Api(cmd) => api::run(cmd, &connect(&settings).await?).await,
        Command::Org(cmd) => org::run(cmd, &connect(&settings).await?).await,
        Command::App(cmd) => app::run(cmd, &connect(&settings).await?).await,
        Command::User(cmd) => user::run(cmd, &connect(&settings).await?).await,
    }
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "orgwall listening");
    app.run_until_stopped().await?;
    Ok(())
}

/// Prints `value` on stdout. A reader that went away (`orgwall ... | head -c1`) is no error:
/// the command has done its work, and there is no one left to tell.
fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("cannot write to stdout"),
    }
}

/// A small pool for one command.
async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(settings.db.acquire_timeout)
        .connect_with(crate::db::connect_options(settings)?)
        .await
        .context("DATABASE_URL: cannot connect")
}
