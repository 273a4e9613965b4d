//! `orgwall token`: a token for an app, without its secret; `orgwall token revoke`: revoke one.

use clap::{Args, Subcommand};

use crate::config::Settings;
use crate::issuer::Issuer;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    action: Option<TokenCmd>,
    #[arg(long, required = true)]
    client_id: Option<String>,
    #[arg(long, required = true)]
    audience: Option<String>,
    #[arg(long)]
    scope: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Revoke one token issued by this orgwall (by its jti, until its exp).
    Revoke {
        #[arg(long)]
        token: String,
    },
}

pub async fn run(args: TokenArgs, settings: &Settings) -> anyhow::Result<()> {
    let pool = super::connect(settings).await?;
    let issuer = Issuer::start(pool, settings).await;
    if let Some(TokenCmd::Revoke { token }) = args.action {
        return super::print_json(&issuer.revoke_token(&token).await?);
    }
    let (Some(client_id), Some(audience)) = (args.client_id, args.audience) else {
        anyhow::bail!("--client-id and --audience are required");
    };
    let token = issuer
        .issue_for_app(&client_id, &audience, args.scope.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Record when the key last signed before this short-lived process exits.
    issuer.keys.flush_signed().await?;
    super::print_json(&token)
}
