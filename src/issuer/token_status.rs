//! What the issuer says about a token it may have issued: whether it is one of ours
//! (signature, `iss`, key), whether it is still active, who may learn that (introspection,
//! RFC 7662), and revoking it (RFC 7009, `token revoke`, the admin API).

use jsonwebtoken::Validation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Issuer;
use super::catalogue::CatalogueError;
use super::keys::SIGNING_ALGORITHMS;
use super::revocation::{self, RevocationQuery, TokenRevoked};
use crate::auth::SigningAlgorithm;
use crate::auth::claims::JoseHeader;
use crate::auth::jwks::ClaimsValidation;
use crate::auth::verifier::{LocalKeys, MAX_TOKEN_BYTES};
use crate::db::on_pool;

/// The claims of a token this issuer signed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OwnClaims {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub aud: Vec<String>,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_code: Option<String>,
    /// The key a DPoP-bound token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Value>,
}

/// A token this issuer signed, with a key it still publishes.
#[derive(Debug)]
pub struct OwnToken {
    pub claims: OwnClaims,
    pub kid: String,
}

/// Why a string is not a live token of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOurs {
    /// Malformed, bad signature, another issuer, an unknown or revoked key.
    Invalid,
    /// Ours, but past its `exp`.
    Expired,
}

/// Who asks an introspection question.
pub enum Caller<'a> {
    Admin,
    App {
        client_id: &'a str,
        org_code: Option<&'a str>,
    },
}

/// The RFC 7009 endpoint's refusal: a valid token issued to another client.
#[derive(Debug)]
pub struct NotYourToken;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Issuer {
    /// Checks that `token` is a JWT this issuer signed with a key it still publishes, for its
    /// own `iss`, and not expired (the resource API's leeway included).
    pub fn decode_own(&self, token: &str) -> Result<OwnToken, NotOurs> {
        use base64::Engine;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(NotOurs::Invalid);
        }
        let header_b64 = token.split('.').next().unwrap_or("");
        let header: JoseHeader = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(NotOurs::Invalid)?;
        let alg = header
            .alg
            .as_deref()
            .and_then(SigningAlgorithm::from_jose)
            .filter(|a| SIGNING_ALGORITHMS.contains(a))
            .ok_or(NotOurs::Invalid)?;
        if header.has_crit {
            return Err(NotOurs::Invalid);
        }
        let kid = header.kid.ok_or(NotOurs::Invalid)?;
        let key = self.keys.verify_key(&kid).ok_or(NotOurs::Invalid)?;
        if alg.key_type() != key.kty {
            return Err(NotOurs::Invalid);
        }
        let mut validation = Validation::new(alg.jwt());
        validation.set_issuer(&[&self.public_url]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.validate_aud = false;
        validation.leeway = 60;
        let validation = ClaimsValidation::new(validation);
        let data = key
            .decode::<OwnClaims>(token, alg.jwt(), &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => NotOurs::Expired,
                _ => NotOurs::Invalid,
            })?;
        Ok(OwnToken {
            claims: data.claims,
            kid,
        })
    }

    /// Whether the database has it revoked (by jti, app, org, org switched off, or key).
    pub async fn is_revoked(&self, token: &OwnToken) -> Result<bool, sqlx::Error> {
        let c = &token.claims;
        revocation::is_revoked(
            &self.pool,
            &RevocationQuery {
                client_id: &c.client_id,
                org_code: c.org_code.as_deref(),
                iat: c.iat,
                jti: &c.jti,
                kid: &token.kid,
            },
        )
        .await
    }

    /// `token revoke` and `POST /admin/tokens/revoke`: revokes one token of ours by its jti,
    /// until its `exp`. Anything else is refused with a message saying why.
    pub async fn revoke_token(&self, token: &str) -> Result<TokenRevoked, CatalogueError> {
        let own = self.decode_own(token).map_err(|why| {
            CatalogueError::Invalid(match why {
                NotOurs::Invalid => "token is not one this issuer signed (malformed, bad \
                                     signature, another issuer, or an unknown or revoked key)"
                    .into(),
                NotOurs::Expired => "token has expired already; there is nothing to revoke".into(),
            })
        })?;
        let c = own.claims;
        revocation::store_revoked_jti(&self.pool, &c.jti, &c.client_id, c.exp).await?;
        tracing::info!(client_id = %c.client_id, "token revoked");
        Ok(TokenRevoked {
            jti: c.jti,
            client_id: c.client_id,
            revoked_until: c.exp,
        })
    }

    /// RFC 7009 for an authenticated client: its own valid token is revoked; another client's
    /// valid token is refused and left alone; anything that is not a live token of ours
    /// changes nothing and is no error.
    pub async fn revoke_for_client(
        &self,
        client_id: &str,
        token: &str,
    ) -> Result<Result<(), NotYourToken>, CatalogueError> {
        let Ok(own) = self.decode_own(token) else {
            return Ok(Ok(()));
        };
        let c = own.claims;
        if c.client_id != client_id {
            return Ok(Err(NotYourToken));
        }
        revocation::store_revoked_jti(&self.pool, &c.jti, &c.client_id, c.exp).await?;
        tracing::info!(%client_id, "token revoked by its client");
        Ok(Ok(()))
    }

    /// RFC 7662: the token's claims when it is active and `caller` may see it, else `None`
    /// (the answer is then `{"active": false}`, whichever reason it was).
    pub async fn introspect(
        &self,
        caller: Caller<'_>,
        token: &str,
    ) -> Result<Option<Value>, sqlx::Error> {
        let Ok(own) = self.decode_own(token) else {
            return Ok(None);
        };
        let c = &own.claims;
        if c.exp < now() {
            return Ok(None);
        }
        let visible = match caller {
            Caller::Admin => true,
            Caller::App { client_id, .. } if client_id == c.client_id => true,
            // A resource server's own credentials: a global app authorized for an audience
            // of the token.
            Caller::App {
                client_id,
                org_code: None,
            } => authorized_for_any(&self.pool, client_id, &c.aud).await?,
            Caller::App { .. } => false,
        };
        if !visible || self.is_revoked(&own).await? {
            return Ok(None);
        }
        let token_type = if c.cnf.is_some() { "DPoP" } else { "Bearer" };
        let mut answer = serde_json::to_value(c).expect("claims serialize");
        answer["active"] = Value::Bool(true);
        answer["token_type"] = Value::from(token_type);
        Ok(Some(answer))
    }
}

/// Whether the app is authorized for an API whose audience is one of `audiences`.
async fn authorized_for_any(
    pool: &sqlx::PgPool,
    client_id: &str,
    audiences: &[String],
) -> Result<bool, sqlx::Error> {
    on_pool!(pool, |conn| sqlx::query_scalar!(
        r#"select exists (select 1 from app_grants g join apis a on a.id = g.api_id
                           where g.client_id = $1 and a.audience = any($2)) as "exists!""#,
        client_id,
        audiences,
    )
    .fetch_one(conn)
    .await)
}
