//! `orgwall app ...`: M2M applications.

use std::time::Duration;

use clap::{Args, Subcommand};
use sqlx::PgPool;

use super::print_json;
use crate::config::parse_duration;
use crate::domain::{AppName, OrgCode};
use crate::issuer::{catalogue, revocation};

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
        name: AppName,
        #[arg(long = "org")]
        org: Option<OrgCode>,
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
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Revoke every token issued to the app so far.
    RevokeTokens(ClientIdArg),
    /// Switch the app off: no new tokens, and every token it holds is revoked.
    Disable(ClientIdArg),
    /// Switch the app back on (its revoked tokens stay revoked).
    Enable(ClientIdArg),
    /// Delete the app; every token it holds is revoked.
    Delete(ClientIdArg),
    List,
}

pub async fn run(cmd: AppCmd, pool: &PgPool) -> anyhow::Result<()> {
    use catalogue as c;
    match cmd {
        AppCmd::Create { name, org } => {
            print_json(&c::create_app(pool, &name, org.as_ref()).await?)
        }
        AppCmd::Authorize {
            client_id,
            audience,
            scopes,
        } => print_json(&c::authorize(pool, &client_id, &audience, &scopes).await?),
        AppCmd::RotateSecret { client_id, grace } => {
            print_json(&c::rotate_secret(pool, &client_id, grace).await?)
        }
        AppCmd::RevokeTokens(a) => {
            print_json(&revocation::revoke_app_tokens(pool, &a.client_id).await?)
        }
        AppCmd::Disable(a) => print_json(&c::set_enabled(pool, &a.client_id, false).await?),
        AppCmd::Enable(a) => print_json(&c::set_enabled(pool, &a.client_id, true).await?),
        AppCmd::Delete(a) => print_json(&c::delete_app(pool, &a.client_id).await?),
        AppCmd::List => print_json(&c::list_apps(pool).await?),
    }
}
