//! `orgwall api ...`: APIs and their scopes.

use clap::Subcommand;
use sqlx::PgPool;

use super::print_json;
use crate::auth::SigningAlgorithm;
use crate::domain::{ApiName, Audience, ScopeDef};
use crate::issuer::catalogue::{self, NewApi, TokenLifetime};

#[derive(Debug, Subcommand)]
pub enum ApiCmd {
    /// Register an API (its audience is matched exactly).
    Create {
        #[arg(long)]
        audience: Audience,
        #[arg(long)]
        name: ApiName,
        /// NAME[=DESCRIPTION], repeatable.
        #[arg(long = "scope")]
        scopes: Vec<ScopeDef>,
        /// Access-token lifetime for this API, 60s to 24h, e.g. 1h (default: TOKEN_LIFETIME).
        #[arg(long)]
        token_lifetime: Option<TokenLifetime>,
        /// How this API's tokens are signed: RS256 (default), ES256 or EdDSA.
        #[arg(long, value_parser = SigningAlgorithm::parse_jose)]
        signing_alg: Option<SigningAlgorithm>,
    },
    /// Add a scope to an API.
    AddScope {
        #[arg(long)]
        audience: String,
        /// NAME[=DESCRIPTION]
        #[arg(long)]
        scope: ScopeDef,
    },
    /// List APIs.
    List,
}

pub async fn run(cmd: ApiCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        ApiCmd::Create {
            audience,
            name,
            scopes,
            token_lifetime,
            signing_alg,
        } => {
            let new = NewApi::new(audience, name, scopes, token_lifetime, signing_alg)?;
            print_json(&catalogue::create_api(pool, &new).await?)
        }
        ApiCmd::AddScope { audience, scope } => {
            print_json(&catalogue::add_scope(pool, &audience, &scope).await?)
        }
        ApiCmd::List => print_json(&catalogue::list_apis(pool).await?),
    }
}
