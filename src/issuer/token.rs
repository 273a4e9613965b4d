//! `POST /oauth2/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4), read as a
//! checklist: form → client credentials → rate limit → app → secret → audience → grant →
//! scopes → issue.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::Issuer;
use super::secrets;
use crate::auth::claims::split_scopes;

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
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
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

impl ResponseError for TokenError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if self.basic_challenge && self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                r#"Basic realm="orgwall", charset="UTF-8""#,
            ));
        }
        if let Some(wait) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()));
        }
        res.json(json!({"error": self.error, "error_description": self.description}))
    }
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// The form's parameters, each at most once (RFC 6749 §3.2).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Result<Self, TokenError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| TokenError::invalid_request("The request body is not a valid form"))?;
        // PostgreSQL text cannot hold NUL: refuse it here rather than fail in a query (a 500).
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(TokenError::invalid_request(
                "Parameters must not contain NUL characters",
            ));
        }
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(other, _)| other == k) {
                return Err(TokenError::invalid_request(format!(
                    "Parameter '{}' is repeated",
                    truncate(k)
                )));
            }
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Client credentials from HTTP Basic, each part form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(value: &HeaderValue) -> Result<Option<(String, SecretString)>, TokenError> {
    let Ok(value) = value.to_str() else {
        return Ok(None);
    };
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || TokenError {
        basic_challenge: true,
        ..TokenError::invalid_client()
    };
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let decode = |s: &str| -> Result<String, TokenError> {
        let plus_as_space = s.replace('+', " ");
        percent_decode(&plus_as_space)
            .filter(|d| !d.contains('\0'))
            .ok_or_else(malformed)
    };
    Ok(Some((decode(id)?, SecretString::from(decode(secret)?))))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

const MAX_FORM_BYTES: usize = 64 * 1024;

async fn read_form(req: &HttpRequest, mut payload: web::Payload) -> Result<Form, TokenError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(TokenError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| TokenError::invalid_request("The request body could not be read"))?;
        if body.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(TokenError::invalid_request("The request body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Form::parse(&body)
}

pub async fn token_endpoint(
    req: HttpRequest,
    payload: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, TokenError> {
    let form = read_form(&req, payload).await?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| TokenError::invalid_request("Missing 'grant_type'"))?;
    let issued = match grant_type {
        "client_credentials" => client_credentials(&req, &form, &issuer).await?,
        _ => {
            return Err(TokenError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only the client_credentials grant is supported",
            ));
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(issued))
}

async fn client_credentials(
    req: &HttpRequest,
    form: &Form,
    issuer: &Issuer,
) -> Result<TokenResponse, TokenError> {
    // Client authentication: Basic or the form, never both.
    let basic = match req.headers().get(header::AUTHORIZATION) {
        Some(v) => basic_credentials(v)?,
        None => None,
    };
    let used_basic = basic.is_some();
    let (client_id, secret) = match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(TokenError::invalid_request(
                "Use one client authentication method, not two",
            ));
        }
        (Some((id, _)), Some(form_id), None) if form_id != id => {
            return Err(TokenError::invalid_request(
                "client_id differs from the Basic credentials",
            ));
        }
        (Some(creds), _, None) => creds,
        (None, Some(id), Some(secret)) => (id.to_owned(), SecretString::from(secret.to_owned())),
        (None, _, _) => {
            return Err(TokenError::invalid_client());
        }
    };
    let with_challenge = |mut e: TokenError| {
        e.basic_challenge = used_basic;
        e
    };

    let addr: IpAddr = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let slow_down = |wait: Duration| TokenError {
        retry_after: Some(wait),
        ..TokenError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "Too many failed authentications; retry later",
        )
    };
    issuer.limiter.check(addr, &client_id).map_err(slow_down)?;

    let audience = match (form.get("audience"), form.get("resource")) {
        (Some(a), Some(r)) if a != r => {
            return Err(TokenError::invalid_request(
                "'audience' and 'resource' name different APIs",
            ));
        }
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    // One round trip: the app, its live secrets, the API and the grant.
    let found = issuer.lookup(&client_id, audience.unwrap_or("")).await?;
    if !found.as_ref().is_some_and(|f| f.authenticates(&secret)) {
        if found.is_none() {
            secrets::verify_against_nothing(&secret);
        }
        tracing::info!(%client_id, %addr, "client authentication failed");
        issuer
            .limiter
            .record_failure(addr, &client_id)
            .map_err(slow_down)?;
        return Err(with_challenge(TokenError::invalid_client()));
    }
    let Some(audience) = audience else {
        return Err(TokenError::invalid_request(
            "Missing 'audience' (or 'resource')",
        ));
    };
    let found = found.expect("authenticated above");
    issuer.issue(&client_id, audience, form.get("scope"), &found)
}

/// A secret as stored: salt, hash, expiry (a rotation's grace period).
type StoredSecret = (Vec<u8>, Vec<u8>, Option<chrono::DateTime<chrono::Utc>>);

/// What the token endpoint needs to know about a client, read in one statement.
pub struct ClientLookup {
    enabled: bool,
    org_code: Option<String>,
    /// Each secret that was live when read.
    secrets: Vec<StoredSecret>,
    /// The API named by the audience (its token lifetime and signing algorithm) and the app's
    /// grant for it, if any.
    api: Option<(i64, String, Option<Vec<String>>)>,
}

impl ClientLookup {
    /// True when the app is enabled and `presented` matches one of its live secrets; every
    /// secret is checked, in constant time each.
    fn authenticates(&self, presented: &SecretString) -> bool {
        let now = chrono::Utc::now();
        let mut matched = false;
        for (salt, hash, expires_at) in &self.secrets {
            let live = expires_at.is_none_or(|at| at > now);
            matched |= secrets::verify_secret(presented, salt, hash) && live;
        }
        matched && self.enabled
    }
}

impl Issuer {
    /// The client as the token endpoint needs it: from the cache, else one statement.
    async fn lookup(
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
        let found = self
            .lookup_in_database(client_id, audience)
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

    async fn lookup_in_database(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<ClientLookup>, TokenError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            enabled: bool,
            org_code: Option<String>,
            salt: Option<Vec<u8>>,
            secret_hash: Option<Vec<u8>>,
            expires_at: Option<chrono::DateTime<chrono::Utc>>,
            api_found: bool,
            lifetime: i64,
            signing_alg: Option<String>,
            scopes: Option<Vec<String>>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "select a.enabled, a.org_code, s.salt, s.secret_hash, s.expires_at,
                    ap.id is not null as api_found,
                    coalesce(ap.token_lifetime_secs::bigint, $3::bigint) as lifetime,
                    ap.signing_alg,
                    g.scopes
               from m2m_apps a
               left join client_secrets s
                 on s.client_id = a.client_id and (s.expires_at is null or s.expires_at > now())
               left join apis ap on ap.audience = $2
               left join app_grants g on g.api_id = ap.id and g.client_id = a.client_id
              where a.client_id = $1",
        )
        .bind(client_id)
        .bind(audience)
        .bind(self.default_lifetime.as_secs() as i64)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let api = first.api_found.then(|| {
            let alg = first.signing_alg.clone().unwrap_or_else(|| "RS256".into());
            (first.lifetime, alg, first.scopes.clone())
        });
        let (enabled, org_code) = (first.enabled, first.org_code.clone());
        let secrets = rows
            .into_iter()
            .filter_map(|r| Some((r.salt?, r.secret_hash?, r.expires_at)))
            .collect();
        Ok(Some(ClientLookup {
            enabled,
            org_code,
            secrets,
            api,
        }))
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
    fn issue(
        &self,
        client_id: &str,
        audience: &str,
        scope: Option<&str>,
        found: &ClientLookup,
    ) -> Result<TokenResponse, TokenError> {
        let Some((lifetime, alg, granted)) = found.api.clone() else {
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
        let mut claims = json!({
            "iss": self.public_url,
            "sub": client_id,
            "client_id": client_id,
            "aud": [audience],
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid::Uuid::new_v4().to_string(),
            "scp": scope,
            "scope": scope,
            "gty": ["client_credentials"],
        });
        if let Some(org) = &found.org_code {
            claims["org_code"] = json!(org);
        }
        let header = json!({"alg": signer.alg.name(), "typ": "at+jwt", "kid": signer.kid});
        let access_token = signer
            .sign(&header, &claims)
            .map_err(TokenError::server_error)?;
        tracing::info!(%client_id, kid = %signer.kid, "access token issued");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let raw = STANDARD.encode("my%20client:s%3Acret+x");
        let (id, secret) =
            basic_credentials(&HeaderValue::from_str(&format!("Basic {raw}")).unwrap())
                .unwrap()
                .unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret.expose_secret(), "s:cret x");
        assert!(basic_credentials(&HeaderValue::from_static("Basic !!!")).is_err());
        let nul = STANDARD.encode("id%00:secret");
        assert!(
            basic_credentials(&HeaderValue::from_str(&format!("Basic {nul}")).unwrap()).is_err()
        );
        assert!(
            basic_credentials(&HeaderValue::from_static("Bearer abc"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn repeated_form_parameters_are_refused() {
        assert!(Form::parse(b"grant_type=client_credentials&scope=a&scope=b").is_err());
        assert!(Form::parse(b"client_id=a%00b").is_err());
        assert_eq!(Form::parse(b"a=1&b=2").unwrap().get("b"), Some("2"));
    }
}
