//! `orgwall token`: a token for an app, without its secret.

use clap::Args;

use crate::config::Settings;
use crate::issuer::Issuer;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    audience: String,
    #[arg(long)]
    scope: Option<String>,
}

pub async fn run(args: TokenArgs, settings: &Settings) -> anyhow::Result<()> {
    let pool = super::connect(settings).await?;
    let issuer = Issuer::start(pool, settings).await;
    let token = issuer
        .issue_for_app(&args.client_id, &args.audience, args.scope.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    super::print_json(&token)
}
