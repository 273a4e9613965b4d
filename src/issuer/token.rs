//! Issuing access tokens: what the token endpoint does after it has read the request, and what
//! `orgwall token` and the admin API do for an app named by an operator.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use serde::Serialize;

use super::Issuer;
use super::clients::{self, ApiGrant, ClientLookup};
use crate::auth::claims::split_scopes;
use crate::telemetry::Untrusted;

/// An RFC 6749 §5.2 error.
#[derive(Debug)]
pub struct TokenError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// `WWW-Authenticate: Basic` when the client tried HTTP Basic (RFC 6749 §5.2).
    pub basic_challenge: bool,
    pub retry_after: Option<Duration>,
}

impl TokenError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    /// The same answer for an unknown client, a wrong secret, a disabled or deleted app.
    pub fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        )
    }
    pub fn server_error(e: impl std::fmt::Debug) -> Self {
        tracing::error!(error = ?e, "token endpoint failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server could not issue a token",
        )
    }
    pub fn unavailable(e: impl std::fmt::Debug) -> Self {
        tracing::warn!(error = ?e, "token endpoint dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "Try again later",
        )
    }
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        if crate::error::is_unavailable(&e) {
            Self::unavailable(e)
        } else if crate::error::is_nul_in_text(&e) {
            Self::invalid_request("Parameters must not contain NUL characters")
        } else {
            Self::server_error(e)
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(value_type = String, examples("Bearer", "DPoP"))]
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// The token itself never reaches a log line or a panic message.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<hidden>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The claims of an access token orgwall issues (RFC 9068, in the shape Kinde's tokens have):
/// `scp` and `scope` carry the same space-separated string; `org_code` only for an
/// org-scoped app.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    client_id: &'a str,
    aud: [&'a str; 1],
    iat: i64,
    exp: i64,
    jti: String,
    scp: &'a str,
    scope: &'a str,
    gty: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    org_code: Option<&'a str>,
    /// RFC 9449 §6.1: the DPoP key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

/// The JOSE header of an access token.
#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// A request-derived value, shortened for an error message.
pub fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

impl Issuer {
    /// The client as the token endpoint needs it: from the cache, else one statement.
    pub async fn lookup(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<Arc<ClientLookup>>, TokenError> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Ok(None);
        }
        if let Some(hit) = self.cache.get(client_id, audience) {
            return Ok(Some(hit));
        }
        let generation = self.cache.generation();
        let found = clients::find(&self.pool, client_id, audience, self.default_lifetime)
            .await?
            .map(Arc::new);
        // Only pairs that name a registered API are kept, so that the cache holds at most the
        // real (client, API) pairs, whatever audiences callers make up.
        if let Some(found) = found.as_ref().filter(|f| f.api.is_some()) {
            self.cache
                .insert(generation, client_id, audience, found.clone());
        }
        Ok(found)
    }

    /// Issues a token for an app named by an operator (`orgwall token`, the admin API): the
    /// same path as the endpoint after client authentication.
    pub async fn issue_for_app(
        &self,
        client_id: &str,
        audience: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        match self.lookup(client_id, audience).await? {
            Some(found) if found.enabled => self.issue(client_id, audience, scope, &found),
            _ => Err(TokenError::invalid_client()),
        }
    }

    /// Audience → grant → scopes → sign, for an authenticated app.
    pub fn issue(
        &self,
        client_id: &str,
        audience: &str,
        scope: Option<&str>,
        found: &ClientLookup,
    ) -> Result<TokenResponse, TokenError> {
        self.issue_bound(client_id, audience, scope, found, None)
    }

    /// [`Self::issue`], the token bound to the DPoP key whose thumbprint is `jkt` when given
    /// (RFC 9449 §6: `cnf.jkt`, `token_type` DPoP).
    pub fn issue_bound(
        &self,
        client_id: &str,
        audience: &str,
        scope: Option<&str>,
        found: &ClientLookup,
        jkt: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let Some(ApiGrant {
            lifetime_secs: lifetime,
            signing_alg: alg,
            scopes: granted,
        }) = found.api.clone()
        else {
            return Err(TokenError::new(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "The audience names no registered API",
            ));
        };
        let Some(granted) = granted else {
            return Err(TokenError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "The client is not authorized for this API",
            ));
        };
        let scopes = match scope {
            None => granted,
            Some(requested) => {
                let requested = split_scopes(requested);
                if let Some(denied) = requested.iter().find(|s| !granted.contains(s)) {
                    return Err(TokenError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        format!("Scope '{}' is not granted to this client", truncate(denied)),
                    ));
                }
                let mut unique = Vec::with_capacity(requested.len());
                for s in requested {
                    if !unique.contains(&s) {
                        unique.push(s);
                    }
                }
                unique
            }
        };
        let scope = scopes.join(" ");
        let alg = crate::auth::SigningAlgorithm::from_jose(&alg).ok_or_else(|| {
            TokenError::server_error(format!("API has unknown signing_alg {alg}"))
        })?;
        // A key made by another instance moments ago may not be loaded yet: 503, retry.
        let signer = self
            .keys
            .signer(alg)
            .ok_or_else(|| TokenError::unavailable(format!("no {alg} signing key loaded")))?;
        let now = chrono::Utc::now().timestamp();
        let claims = AccessTokenClaims {
            iss: &self.public_url,
            sub: client_id,
            client_id,
            aud: [audience],
            iat: now,
            exp: now + lifetime,
            jti: uuid::Uuid::new_v4().to_string(),
            scp: &scope,
            scope: &scope,
            gty: ["client_credentials"],
            org_code: found.org_code.as_deref(),
            cnf: jkt.map(|jkt| Confirmation { jkt }),
        };
        let header = JwsHeader {
            alg: signer.alg.name(),
            typ: "at+jwt",
            kid: &signer.kid,
        };
        let access_token = signer
            .sign(&header, &claims)
            .map_err(TokenError::server_error)?;
        self.keys.note_signed(&signer.kid);
        tracing::info!(client_id = %Untrusted(client_id), kid = %signer.kid, "access token issued");
        Ok(TokenResponse {
            access_token,
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            expires_in: lifetime,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_response_never_shows_its_token_in_debug_output() {
        let response = TokenResponse {
            access_token: "eyJhbGciOiJSUzI1NiJ9.secret.signature".into(),
            token_type: "Bearer",
            expires_in: 3600,
            scope: "read:data".into(),
        };
        let shown = format!("{response:?}");
        assert!(!shown.contains("eyJ"), "{shown}");
        assert!(
            shown.contains("<hidden>") && shown.contains("read:data"),
            "{shown}"
        );
    }
}
