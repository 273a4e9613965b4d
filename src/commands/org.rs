//! `orgwall org ...`: organizations.

use clap::Subcommand;
use sqlx::PgPool;

use super::print_json;
use crate::domain::{OrgCode, OrgName};
use crate::issuer::catalogue;

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    Create {
        #[arg(long)]
        code: OrgCode,
        #[arg(long)]
        name: OrgName,
    },
    List,
}

pub async fn run(cmd: OrgCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        OrgCmd::Create { code, name } => {
            print_json(&catalogue::create_org(pool, &code, &name).await?)
        }
        OrgCmd::List => print_json(&catalogue::list_orgs(pool).await?),
    }
}
