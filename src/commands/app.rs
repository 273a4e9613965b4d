//! `orgwall app ...`: M2M applications.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use clap::{Args, Subcommand};
use sqlx::PgPool;

use super::print_json;
use crate::auth::jwk::{MAX_JWKS_BYTES, PublicJwks};
use crate::config::parse_duration;
use crate::domain::{AppName, OrgCode};
use crate::issuer::keybound as kb;
use crate::issuer::{catalogue, revocation};

#[derive(Debug, Args)]
pub struct ClientIdArg {
    #[arg(long)]
    client_id: String,
}

#[derive(Debug, Subcommand)]
pub enum AppCmd {
    /// Create an M2M app; with --org it is org-scoped. Prints its secret once, or, with
    /// --jwks-file, creates no secret: the app authenticates with its keys (private_key_jwt).
    Create {
        #[arg(long)]
        name: AppName,
        #[arg(long = "org")]
        org: Option<OrgCode>,
        /// A JWKS ({"keys":[...]}) or one JWK: the app's public keys.
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// Issue only DPoP-bound tokens to this app.
        #[arg(long)]
        require_dpop: bool,
    },
    /// Replace an app's public keys (rotate: register old and new, then the new alone).
    SetKeys {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        jwks_file: PathBuf,
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

/// Reads and checks a JWKS file; the error names the file and the reason in one line.
fn read_jwks(path: &Path) -> anyhow::Result<PublicJwks> {
    let too_large = || anyhow::anyhow!("{}: larger than a key set may be", path.display());
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_JWKS_BYTES as u64 {
        return Err(too_large());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    kb::parse_jwks(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub async fn run(cmd: AppCmd, pool: &PgPool) -> anyhow::Result<()> {
    use catalogue as c;
    match cmd {
        AppCmd::Create {
            name,
            org,
            jwks_file: Some(file),
            require_dpop,
        } => {
            let jwks = read_jwks(&file)?;
            print_json(&kb::create_key_app(pool, &name, org.as_ref(), &jwks, require_dpop).await?)
        }
        AppCmd::Create {
            name,
            org,
            jwks_file: None,
            require_dpop,
        } => print_json(&c::create_app(pool, &name, org.as_ref(), require_dpop).await?),
        AppCmd::SetKeys {
            client_id,
            jwks_file,
        } => print_json(&kb::set_keys(pool, &client_id, &read_jwks(&jwks_file)?).await?),
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
