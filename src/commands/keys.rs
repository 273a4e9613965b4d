//! `orgwall keys ...`: signing keys.

use clap::Subcommand;
use sqlx::PgPool;

use crate::issuer::{keys, revocation};

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Add a signing key that signs from now on; older keys stay published for a while.
    Rotate,
    /// List the signing keys (kid, alg, signing or retired, dates); never a private part.
    List,
    /// Revoke a key at once (a leak): it leaves the JWKS and every token it signed is
    /// refused; a key that was signing is first replaced by a new one.
    Revoke {
        /// A kid may start with `-` (it is base64url).
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
    },
}

pub async fn run(cmd: KeysCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Rotate => super::print_json(&keys::rotate(pool).await?),
        KeysCmd::List => super::print_json(&keys::list(pool).await?),
        KeysCmd::Revoke { kid } => super::print_json(&revocation::revoke_key(pool, &kid).await?),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::commands::{Cli, Command};

    #[test]
    fn a_kid_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from(["orgwall", "keys", "revoke", "--kid", "-x1_Y"]).unwrap();
        let Command::Keys(super::KeysCmd::Revoke { kid }) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(kid, "-x1_Y");
    }
}
