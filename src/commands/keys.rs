//! `orgwall keys ...`: signing keys.

use clap::Subcommand;
use sqlx::PgPool;

use crate::issuer::keys;

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Add a signing key that signs from now on; older keys stay published for a while.
    Rotate,
    /// List the signing keys (kid, alg, signing or retired, dates); never a private part.
    List,
}

pub async fn run(cmd: KeysCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Rotate => super::print_json(&keys::rotate(pool).await?),
        KeysCmd::List => super::print_json(&keys::list(pool).await?),
    }
}
