//! `orgwall org ...`: organizations.

use clap::Subcommand;
use sqlx::PgPool;

use super::print_json;
use crate::domain::{OrgCode, OrgName};
use crate::issuer::{catalogue, revocation};

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    Create {
        #[arg(long)]
        code: OrgCode,
        #[arg(long)]
        name: OrgName,
    },
    List,
    /// Switch an organization off: its apps get no tokens and every token carrying its code
    /// is refused; tokens issued before stay revoked after `enable`.
    Disable {
        #[arg(long)]
        code: OrgCode,
    },
    /// Switch an organization back on.
    Enable {
        #[arg(long)]
        code: OrgCode,
    },
}

pub async fn run(cmd: OrgCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        OrgCmd::Create { code, name } => {
            print_json(&catalogue::create_org(pool, &code, &name).await?)
        }
        OrgCmd::List => print_json(&catalogue::list_orgs(pool).await?),
        OrgCmd::Disable { code } => {
            print_json(&revocation::set_org_disabled(pool, &code, true).await?)
        }
        OrgCmd::Enable { code } => {
            print_json(&revocation::set_org_disabled(pool, &code, false).await?)
        }
    }
}
