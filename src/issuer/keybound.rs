//! Key-bound clients at the issuer: apps that authenticate with a client assertion signed by a
//! registered key (`private_key_jwt`, RFC 7523), DPoP-bound tokens (RFC 9449), and the replay
//! store both share across instances.

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use super::Issuer;
use super::catalogue::CatalogueError;
use super::clients::ClientLookup;
use super::token::TokenError;
use crate::auth::assertion::{self, AssertionError, LEEWAY_SECS};
use crate::auth::dpop::{self, DpopError, ExternalUrl};
use crate::auth::jose::now_secs;
use crate::auth::jwk::PublicJwks;
use crate::db::Tx;
use crate::db::on_pool;
use crate::domain::{AppName, OrgCode};
use crate::telemetry::Untrusted;
use crate::tenant::audit::{self, AuditAction};

/// What a `jti` belongs to in the replay store.
#[derive(Clone, Copy, Debug)]
pub enum JtiKind {
    /// A client assertion; the subject is the client id.
    Assertion,
    /// A DPoP proof at the token endpoint; the subject is the proof key's thumbprint.
    Dpop,
}

impl JtiKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Assertion => "assertion",
            Self::Dpop => "dpop",
        }
    }
}

/// Records (kind, subject, jti) until `expires_at` (seconds since the epoch). False when it is
/// already recorded and not yet expired: a replay, on whichever instance it was first seen.
pub async fn first_use(
    pool: &PgPool,
    kind: JtiKind,
    subject: &str,
    jti: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let done = on_pool!(pool, |conn| sqlx::query!(
        "insert into seen_jtis (kind, subject, jti, expires_at)
         values ($1, $2, $3, to_timestamp($4))
         on conflict (kind, subject, jti) do update
            set expires_at = excluded.expires_at, created_at = now()
          where seen_jtis.expires_at < now()",
        kind.as_str(),
        subject,
        jti,
        expires_at as f64,
    )
    .execute(conn)
    .await)?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the `jti`s that can no longer be replayed.
pub async fn purge_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = on_pool!(pool, |conn| sqlx::query!(
        "delete from seen_jtis where expires_at < now()"
    )
    .execute(conn)
    .await)?;
    Ok(done.rows_affected())
}

/// Purges expired `jti`s every few minutes, for as long as the process runs.
pub fn spawn_purge(pool: PgPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = purge_expired(&pool).await {
                tracing::warn!(error = %e, "could not purge expired jtis");
            }
        }
    });
}

/// A client assertion's parameters, read from the token request's form.
pub struct PresentedAssertion {
    /// The client id: the form's `client_id` when given, else the assertion's (unverified)
    /// `iss`; `None` when neither names one.
    pub client_id: Option<String>,
    pub assertion: String,
}

impl PresentedAssertion {
    /// `Ok(None)` without `client_assertion`; `invalid_request` for half a pair or another
    /// assertion type.
    pub fn from_form<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<Self>, TokenError> {
        match (get("client_assertion_type"), get("client_assertion")) {
            (None, None) => Ok(None),
            (Some(assertion::CLIENT_ASSERTION_TYPE), Some(assertion)) => {
                let claimed = assertion::peek_issuer(assertion);
                let client_id = match get("client_id") {
                    // RFC 7521 §4.2: a client_id must name the same client as the assertion.
                    Some(id) if claimed.as_deref() != Some(id) => None,
                    Some(id) => Some(id.to_owned()),
                    None => claimed,
                };
                Ok(Some(Self {
                    client_id,
                    assertion: assertion.to_owned(),
                }))
            }
            (Some(_), Some(_)) => Err(TokenError::invalid_request(format!(
                "client_assertion_type must be {}",
                assertion::CLIENT_ASSERTION_TYPE
            ))),
            _ => Err(TokenError::invalid_request(
                "client_assertion and client_assertion_type go together",
            )),
        }
    }
}

/// The 400 of RFC 9449 §5.
pub fn invalid_dpop_proof(description: &str) -> TokenError {
    TokenError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        description,
    )
}

impl Issuer {
    /// The audiences a client assertion may name: the token endpoint and the issuer.
    fn assertion_audiences(&self) -> [String; 2] {
        [self.token_endpoint(), self.public_url.clone()]
    }

    /// True when `assertion` authenticates the app `found`: enabled, with registered keys, every
    /// check of RFC 7523 §3, and a `jti` not seen before on any instance.
    pub async fn authenticates_assertion(
        &self,
        found: &ClientLookup,
        client_id: &str,
        assertion: &str,
    ) -> Result<bool, TokenError> {
        let checked = match (&found.jwks, found.enabled) {
            (Some(keys), true) => {
                let audiences = self.assertion_audiences();
                let audiences = [audiences[0].as_str(), audiences[1].as_str()];
                assertion::verify(
                    assertion,
                    keys,
                    &assertion::Expected {
                        client_id,
                        audiences: &audiences,
                        now: now_secs(),
                    },
                )
            }
            (None, _) => Err(AssertionError::NoRegisteredKeys),
            (_, false) => Err(AssertionError::Disabled),
        };
        let verified = match checked {
            Ok(v) => v,
            Err(reason) => {
                let client_id = Untrusted(client_id);
                tracing::debug!(?reason, %client_id, "client assertion refused");
                return Ok(false);
            }
        };
        // Remembered for as long as the assertion could still be accepted.
        let until = verified.exp + LEEWAY_SECS;
        if !first_use(
            &self.pool,
            JtiKind::Assertion,
            client_id,
            &verified.jti,
            until,
        )
        .await?
        {
            tracing::debug!(client_id = %Untrusted(client_id), "client assertion replayed");
            return Ok(false);
        }
        Ok(true)
    }

    /// The key a token request's DPoP proof binds the token to: `None` without a proof (unless
    /// the app requires one), the proof key's thumbprint with a valid, unreplayed proof.
    pub async fn token_request_dpop(
        &self,
        req: &actix_web::HttpRequest,
        found: &ClientLookup,
    ) -> Result<Option<String>, TokenError> {
        let values = req.headers().get_all("dpop").map(|v| v.as_bytes());
        let proof = match dpop::single_header(values) {
            Ok(proof) => proof,
            Err(DpopError::Missing) if !found.require_dpop => return Ok(None),
            Err(DpopError::Missing) => {
                return Err(invalid_dpop_proof("This client must send a DPoP proof"));
            }
            Err(reason) => {
                tracing::debug!(?reason, "DPoP proof refused");
                return Err(invalid_dpop_proof("Invalid DPoP proof"));
            }
        };
        let url = ExternalUrl::new(&self.public_url).map_err(TokenError::server_error)?;
        let checked = dpop::verify_proof(
            proof,
            &dpop::Expected {
                method: req.method().as_str(),
                url: &url,
                path: req.path(),
                access_token: None,
                now: now_secs(),
            },
        );
        let verified = checked.map_err(|reason| {
            tracing::debug!(?reason, "DPoP proof refused");
            invalid_dpop_proof("Invalid DPoP proof")
        })?;
        let jkt = &verified.jkt;
        if !first_use(
            &self.pool,
            JtiKind::Dpop,
            jkt,
            &verified.jti,
            verified.valid_until,
        )
        .await?
        {
            tracing::debug!("DPoP proof replayed");
            return Err(invalid_dpop_proof("Invalid DPoP proof"));
        }
        Ok(Some(verified.jkt))
    }
}

/// An app created to authenticate with its keys: no secret exists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKeyApp {
    pub client_id: String,
    pub name: String,
    pub org_code: Option<String>,
    pub token_endpoint_auth_method: &'static str,
    pub require_dpop: bool,
    /// The `kid` of each registered key.
    pub kids: Vec<String>,
}

/// An app's keys after a replacement.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeysOut {
    pub client_id: String,
    pub kids: Vec<String>,
}

fn kids(jwks: &PublicJwks) -> Vec<String> {
    jwks.keys().iter().map(|k| k.kid().to_owned()).collect()
}

/// Creates an app that authenticates only with `private_key_jwt` and the keys of `jwks`.
#[tracing::instrument(skip_all)]
pub async fn create_key_app(
    pool: &PgPool,
    name: &AppName,
    org: Option<&OrgCode>,
    jwks: &PublicJwks,
    require_dpop: bool,
) -> Result<NewKeyApp, CatalogueError> {
    if let Some(org) = org {
        let exists = on_pool!(pool, |conn| sqlx::query_scalar!(
            r#"select exists (select 1 from organizations where code = $1) as "exists!""#,
            org.as_str()
        )
        .fetch_one(conn)
        .await)?;
        if !exists {
            return Err(CatalogueError::NotFound(format!("no organization '{org}'")));
        }
    }
    let client_id = super::secrets::new_client_id();
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query!(
            "insert into m2m_apps (client_id, name, org_code, jwks, require_dpop)
             values ($1, $2, $3, $4, $5)",
            client_id,
            name.as_str(),
            org.map(OrgCode::as_str),
            jwks.to_json(),
            require_dpop,
        )
        .execute(tx.conn())
        .await?;
        match org {
            Some(org) => {
                let details = json!({
                    "app_client_id": client_id, "name": name.as_str(),
                    "token_endpoint_auth_method": "private_key_jwt", "kids": kids(jwks),
                });
                audit::record_catalogue_event(&mut tx, org, AuditAction::AppCreated, details).await
            }
            None => Ok(()),
        }
    }
    .await;
    tx.finish(result).await?;
    tracing::info!(%client_id, "key-bound app created");
    Ok(NewKeyApp {
        client_id,
        name: name.to_string(),
        org_code: org.map(OrgCode::to_string),
        token_endpoint_auth_method: "private_key_jwt",
        require_dpop,
        kids: kids(jwks),
    })
}

/// Replaces an app's public keys; from then on it authenticates only with them.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn set_keys(
    pool: &PgPool,
    client_id: &str,
    jwks: &PublicJwks,
) -> Result<KeysOut, CatalogueError> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        let Some(org) = sqlx::query_scalar!(
            "update m2m_apps set jwks = $2 where client_id = $1 returning org_code",
            client_id,
            jwks.to_json(),
        )
        .fetch_optional(tx.conn())
        .await?
        else {
            return Ok(false);
        };
        if let Some(org) = org.as_deref().and_then(|o| OrgCode::parse(o).ok()) {
            let details = json!({"app_client_id": client_id, "kids": kids(jwks)});
            audit::record_catalogue_event(&mut tx, &org, AuditAction::AppKeysSet, details).await?;
        }
        Ok::<_, sqlx::Error>(true)
    }
    .await;
    if !tx.finish(result).await? {
        return Err(CatalogueError::NotFound(format!(
            "no app with client id '{client_id}'"
        )));
    }
    tracing::info!(keys = jwks.keys().len(), "app keys replaced");
    Ok(KeysOut {
        client_id: client_id.to_owned(),
        kids: kids(jwks),
    })
}

/// Parses a JWKS (or one JWK) given by an operator, with a one-line reason when it is refused.
pub fn parse_jwks(bytes: &[u8]) -> Result<PublicJwks, CatalogueError> {
    PublicJwks::parse(bytes).map_err(|e| CatalogueError::Invalid(format!("jwks: {e}")))
}
