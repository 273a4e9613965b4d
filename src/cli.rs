//! The command line (shared/CONTRACT.md §1): machine-readable JSON on stdout, logs and human
//! messages on stderr. Every admin command calls the same issuer functions as the admin API.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;

use crate::config::{Settings, parse_duration};
use crate::issuer::{catalogue, keys};
use crate::startup::Application;
use crate::tenant::Db;

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
    Token {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        audience: String,
        #[arg(long)]
        scope: Option<String>,
    },
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// An organization's users.
    #[command(subcommand)]
    User(UserCmd),
}

#[derive(Debug, Subcommand)]
pub enum ApiCmd {
    /// Register an API (its audience is matched exactly).
    Create {
        #[arg(long)]
        audience: String,
        #[arg(long)]
        name: String,
        /// NAME[=DESCRIPTION], repeatable.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Access-token lifetime for this API, e.g. 1h (default: TOKEN_LIFETIME).
        #[arg(long)]
        token_lifetime: Option<String>,
        /// How this API's tokens are signed: RS256 (default), ES256 or EdDSA.
        #[arg(long)]
        signing_alg: Option<String>,
    },
    /// Add a scope to an API.
    AddScope {
        #[arg(long)]
        audience: String,
        /// NAME[=DESCRIPTION]
        #[arg(long)]
        scope: String,
    },
    /// List APIs.
    List,
}

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    Create {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
    },
    List,
}

#[derive(Debug, Args)]
pub struct ClientIdArg {
    #[arg(long)]
    client_id: String,
}

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Create an M2M app; with --org it is org-scoped. Prints its secret once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "org")]
        org: Option<String>,
    },
    /// Authorize an app for an API with a subset of its scopes (replaces the earlier grant).
    Authorize {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        audience: String,
        #[arg(long)]
        scopes: String,
    },
    /// Issue a new secret; the old one stops working after --grace (default 0s).
    RotateSecret {
        #[arg(long)]
        client_id: String,
        #[arg(long, default_value = "0s")]
        grace: String,
    },
    Disable(ClientIdArg),
    Enable(ClientIdArg),
    Delete(ClientIdArg),
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Add a signing key that signs from now on; older keys stay published for a while.
    Rotate,
    /// List the signing keys (kid, alg, signing or retired, dates); never a private part.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    Add {
        #[arg(long = "org")]
        org: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
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
    let applied: Option<Vec<i64>> = match connect(settings).await {
        Ok(pool) => sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(&pool)
            .await
            .ok(),
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

async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(settings.db.acquire_timeout)
        .connect_with(crate::db::connect_options(settings)?)
        .await
        .context("DATABASE_URL: cannot connect")
}

fn scope_args(args: &[String]) -> Vec<(String, String)> {
    args.iter().map(|a| catalogue::parse_scope_arg(a)).collect()
}

fn duration_arg(flag: &str, value: &str) -> anyhow::Result<Duration> {
    parse_duration(value).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            migrate(&settings).await?;
            print_json(&serde_json::json!({"migrated": true}))
        }
        Command::Serve => serve(settings).await,
        Command::Demo => crate::issuer::demo::run(settings).await,
        Command::Token {
            client_id,
            audience,
            scope,
        } => {
            let pool = connect(&settings).await?;
            let issuer = crate::issuer::Issuer::start(pool, &settings).await;
            let token = issuer
                .issue_for_app(&client_id, &audience, scope.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print_json(&token)
        }
        Command::Keys(KeysCmd::Rotate) => {
            let pool = connect(&settings).await?;
            print_json(&keys::rotate(&pool).await?)
        }
        Command::Keys(KeysCmd::List) => {
            let pool = connect(&settings).await?;
            print_json(&keys::list(&pool).await?)
        }
        command => {
            let pool = connect(&settings).await?;
            catalogue_command(command, &pool).await
        }
    }
}

async fn catalogue_command(command: Command, pool: &PgPool) -> anyhow::Result<()> {
    use catalogue as c;
    match command {
        Command::Api(ApiCmd::Create {
            audience,
            name,
            scopes,
            token_lifetime,
            signing_alg,
        }) => {
            let lifetime = token_lifetime
                .map(|t| duration_arg("--token-lifetime", &t))
                .transpose()?;
            let scopes = scope_args(&scopes);
            let alg = signing_alg.as_deref();
            print_json(&c::create_api(pool, &audience, &name, &scopes, lifetime, alg).await?)
        }
        Command::Api(ApiCmd::AddScope { audience, scope }) => {
            let (name, description) = c::parse_scope_arg(&scope);
            print_json(&c::add_scope(pool, &audience, &name, &description).await?)
        }
        Command::Api(ApiCmd::List) => print_json(&c::list_apis(pool).await?),
        Command::Org(OrgCmd::Create { code, name }) => {
            print_json(&c::create_org(pool, &code, &name).await?)
        }
        Command::Org(OrgCmd::List) => print_json(&c::list_orgs(pool).await?),
        Command::App(AppCmd::Create { name, org }) => {
            print_json(&c::create_app(pool, &name, org.as_deref()).await?)
        }
        Command::App(AppCmd::Authorize {
            client_id,
            audience,
            scopes,
        }) => print_json(&c::authorize(pool, &client_id, &audience, &scopes).await?),
        Command::App(AppCmd::RotateSecret { client_id, grace }) => {
            let grace = duration_arg("--grace", &grace)?;
            print_json(&c::rotate_secret(pool, &client_id, grace).await?)
        }
        Command::App(AppCmd::Disable(a)) => {
            print_json(&c::set_enabled(pool, &a.client_id, false).await?)
        }
        Command::App(AppCmd::Enable(a)) => {
            print_json(&c::set_enabled(pool, &a.client_id, true).await?)
        }
        Command::App(AppCmd::Delete(a)) => print_json(&c::delete_app(pool, &a.client_id).await?),
        Command::App(AppCmd::List) => print_json(&c::list_apps(pool).await?),
        Command::User(UserCmd::Add { org, email, name }) => {
            print_json(&c::add_user(&Db::new(pool.clone()), &org, &email, &name).await?)
        }
        Command::Migrate
        | Command::Serve
        | Command::Demo
        | Command::Token { .. }
        | Command::Keys(_) => {
            unreachable!("handled in run")
        }
    }
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "orgwall listening");
    app.run_until_stopped().await?;
    Ok(())
}
