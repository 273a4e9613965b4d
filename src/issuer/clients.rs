//! What the token endpoint needs to know about a client, read in one statement.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use super::secrets;
use crate::auth::jwk::PublicJwks;
use crate::db::on_pool;

/// A secret as stored: salt, hash, expiry (a rotation's grace period).
pub struct StoredSecret {
    salt: Vec<u8>,
    hash: Vec<u8>,
    expires_at: Option<DateTime<Utc>>,
}

/// The API named by the audience, and the app's grant for it.
#[derive(Clone)]
pub struct ApiGrant {
    /// The API's token lifetime, or the service's default.
    pub lifetime_secs: i64,
    /// The JOSE name of the API's signing algorithm.
    pub signing_alg: String,
    /// The scopes granted to the app; `None` when the app is not authorized for the API.
    pub scopes: Option<Vec<String>>,
}

/// An app, its live secrets and, when the audience names an API, that API and the grant.
pub struct ClientLookup {
    /// False when the app, or its organization, is switched off.
    pub enabled: bool,
    pub org_code: Option<String>,
    /// Each secret that was live when read.
    secrets: Vec<StoredSecret>,
    pub api: Option<ApiGrant>,
    /// Registered public keys: such an app authenticates with a client assertion, never a
    /// secret. `has_keys` without `jwks` is a stored set that no longer parses (none works).
    pub has_keys: bool,
    pub jwks: Option<Arc<PublicJwks>>,
    /// Tokens only with a DPoP proof.
    pub require_dpop: bool,
}

impl ClientLookup {
    /// True when the app is enabled and `presented` matches one of its live secrets; every
    /// secret is checked, in constant time each.
    pub fn authenticates(&self, presented: &SecretString) -> bool {
        let now = Utc::now();
        let mut matched = false;
        for s in &self.secrets {
            let live = s.expires_at.is_none_or(|at| at > now);
            matched |= secrets::verify_secret(presented, &s.salt, &s.hash) && live;
        }
        matched && self.enabled && !self.has_keys
    }
}

/// The client and what it may get for `audience`, in one round trip; `None` for an unknown
/// client id.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn find(
    pool: &PgPool,
    client_id: &str,
    audience: &str,
    default_lifetime: Duration,
) -> Result<Option<ClientLookup>, sqlx::Error> {
    struct Row {
        enabled: bool,
        org_code: Option<String>,
        salt: Option<Vec<u8>>,
        secret_hash: Option<Vec<u8>>,
        expires_at: Option<DateTime<Utc>>,
        api_found: bool,
        lifetime: i64,
        signing_alg: Option<String>,
        scopes: Option<Vec<String>>,
        jwks: Option<serde_json::Value>,
        require_dpop: bool,
    }
    // Columns of the left-joined tables are null when there is no such row.
    let rows = on_pool!(pool, |conn| sqlx::query_as!(
        Row,
        r#"select a.enabled and o.disabled_at is null as "enabled!", a.org_code,
                  s.salt as "salt?", s.secret_hash as "secret_hash?",
                  s.expires_at, ap.id is not null as "api_found!",
                  coalesce(ap.token_lifetime_secs::bigint, $3::bigint) as "lifetime!",
                  ap.signing_alg as "signing_alg?", g.scopes as "scopes?",
                  a.jwks, a.require_dpop
             from m2m_apps a
             left join organizations o on o.code = a.org_code
             left join client_secrets s
               on s.client_id = a.client_id and (s.expires_at is null or s.expires_at > now())
             left join apis ap on ap.audience = $2
             left join app_grants g on g.api_id = ap.id and g.client_id = a.client_id
            where a.client_id = $1"#,
        client_id,
        audience,
        default_lifetime.as_secs() as i64,
    )
    .fetch_all(conn)
    .await)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let api = first.api_found.then(|| ApiGrant {
        lifetime_secs: first.lifetime,
        signing_alg: first.signing_alg.clone().unwrap_or_else(|| "RS256".into()),
        scopes: first.scopes.clone(),
    });
    let (enabled, org_code) = (first.enabled, first.org_code.clone());
    let (has_keys, require_dpop) = (first.jwks.is_some(), first.require_dpop);
    let jwks = first.jwks.as_ref().and_then(|v| {
        let parsed = v.as_object().map(PublicJwks::from_object);
        if !matches!(parsed, Some(Ok(_))) {
            tracing::error!(%client_id, "stored keys do not parse; the app cannot authenticate");
        }
        parsed?.ok().map(Arc::new)
    });
    let secrets = rows
        .into_iter()
        .filter_map(|r| {
            Some(StoredSecret {
                salt: r.salt?,
                hash: r.secret_hash?,
                expires_at: r.expires_at,
            })
        })
        .collect();
    Ok(Some(ClientLookup {
        enabled,
        org_code,
        secrets,
        api,
        has_keys,
        jwks,
        require_dpop,
    }))
}
