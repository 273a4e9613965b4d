//! `orgwall user ...`: an organization's users (tenant data).

use clap::Subcommand;
use sqlx::PgPool;

use super::print_json;
use crate::domain::{Email, OrgCode, UserName};
use crate::issuer::catalogue;

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    Add {
        #[arg(long = "org")]
        org: OrgCode,
        #[arg(long)]
        email: Email,
        #[arg(long)]
        name: UserName,
    },
}

pub async fn run(cmd: UserCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add { org, email, name } => {
            print_json(&catalogue::add_user(pool, &org, &email, &name).await?)
        }
    }
}
