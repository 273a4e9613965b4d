//! The built-in org-scoped M2M issuer (docs/api.md, docs/cli.md): what Kinde does in the
//! tutorial, self-hosted.

pub mod cache;
pub mod catalogue;
pub mod clients;
pub mod keybound;
pub mod keys;
pub mod notifications;
pub mod ratelimit;
pub mod revocation;
pub mod secrets;
pub mod token;
pub mod token_status;

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::Settings;
use keys::KeyStore;
use ratelimit::FailureLimiter;

pub struct Issuer {
    pub pool: PgPool,
    pub keys: Arc<KeyStore>,
    pub public_url: String,
    /// Token lifetime for APIs that set none (TOKEN_LIFETIME).
    pub default_lifetime: std::time::Duration,
    pub limiter: FailureLimiter,
    /// Client lookups of the token endpoint, dropped on every catalogue change.
    pub cache: Arc<cache::LookupCache>,
}

impl Issuer {
    /// Loads (or creates) the signing keys; a database that is down at start-up only delays
    /// issuance, retried in the background.
    pub async fn start(pool: PgPool, settings: &Settings) -> Arc<Self> {
        let keys = KeyStore::new(pool.clone(), settings.issuer.token_lifetime);
        if let Err(e) = keys.ensure_and_reload().await {
            tracing::warn!(error = %format!("{e:#}"), "signing keys not loaded yet; retrying in the background");
        }
        // `serve` feeds the cache and the keys from notifications (see `startup`); a command
        // that issues one token needs neither.
        let cache = Arc::new(cache::LookupCache::default());
        keybound::spawn_purge(pool.clone());
        Arc::new(Self {
            pool,
            keys,
            public_url: settings.public_url.clone(),
            default_lifetime: settings.issuer.token_lifetime,
            cache,
            limiter: FailureLimiter::new(
                settings.issuer.max_failures_per_client,
                settings.issuer.max_failures_per_address,
                settings.issuer.failure_window,
            ),
        })
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.public_url)
    }

    pub fn revocation_endpoint(&self) -> String {
        format!("{}/oauth2/revoke", self.public_url)
    }

    pub fn introspection_endpoint(&self) -> String {
        format!("{}/oauth2/introspect", self.public_url)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.public_url)
    }
}
