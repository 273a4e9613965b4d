//! `POST /oauth2/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4), read as a
//! checklist: form → client credentials → rate limit → app → secret or assertion → audience →
//! DPoP proof → grant → scopes → issue.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde_json::json;

use crate::body::{BodyError, read_bytes};
use crate::client_addr;
use crate::issuer::clients::ClientLookup;
use crate::issuer::keybound::PresentedAssertion;
use crate::issuer::token::{TokenError, TokenResponse, truncate};
use crate::issuer::{Issuer, ratelimit, secrets};
use crate::telemetry::Untrusted;

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

/// The most parameters a form may carry; the token request needs at most seven.
const MAX_PARAMETERS: usize = 100;

/// The form's parameters, each at most once (RFC 6749 §3.2).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Linear in the body: the parameters are counted before anything is decoded, and repeats
    /// are found with a hash set.
    pub fn parse(body: &[u8]) -> Result<Self, TokenError> {
        // The form decoder skips empty pieces between `&`s; so does this count.
        let parameters = body
            .split(|&b| b == b'&')
            .filter(|piece| !piece.is_empty())
            .count();
        if parameters > MAX_PARAMETERS {
            return Err(TokenError::invalid_request(format!(
                "The form has more than {MAX_PARAMETERS} parameters"
            )));
        }
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
        let mut seen = HashSet::with_capacity(pairs.len());
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(TokenError::invalid_request(format!(
                "Parameter '{}' is repeated",
                truncate(k)
            )));
        }
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
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

/// Reads a form-encoded body (the token, revocation and introspection requests).
pub async fn read_form(req: &HttpRequest, payload: web::Payload) -> Result<Form, TokenError> {
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
    let body = read_bytes(req, payload).await.map_err(|e| match e {
        BodyError::TooLarge(_) => TokenError::invalid_request("The request body is too large"),
        BodyError::Unreadable(_) => {
            TokenError::invalid_request("The request body could not be read")
        }
    })?;
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
    crate::metrics::count_issued(&req, &issued.access_token, issued.token_type);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(issued))
}

/// A client that proved who it is, with what the issuer read about it.
pub struct AuthenticatedClient {
    pub client_id: String,
    pub app: Arc<ClientLookup>,
}

/// Client authentication, the same for every issuer endpoint that takes it (token,
/// revocation, introspection): HTTP Basic or the form (never both), the failure limiter, then
/// the app and its secret in one lookup. `audience` rides along so that the token endpoint
/// reads the app, its API and grant in the same round trip; other endpoints pass `""`.
pub async fn authenticate_client(
    req: &HttpRequest,
    form: &Form,
    issuer: &Issuer,
    audience: &str,
) -> Result<AuthenticatedClient, TokenError> {
    // Client authentication: Basic, the form's secret or a client assertion; exactly one.
    let basic = match req.headers().get(header::AUTHORIZATION) {
        Some(v) => basic_credentials(v)?,
        None => None,
    };
    let used_basic = basic.is_some();
    let assertion = PresentedAssertion::from_form(|name| form.get(name))?;
    let (client_id, credential) = match (
        basic,
        assertion,
        form.get("client_id"),
        form.get("client_secret"),
    ) {
        (Some(_), Some(_), _, _) | (_, Some(_), _, Some(_)) | (Some(_), None, _, Some(_)) => {
            return Err(TokenError::invalid_request(
                "Use one client authentication method, not two",
            ));
        }
        (None, Some(a), _, None) => (
            a.client_id.unwrap_or_default(),
            Credential::Assertion(a.assertion),
        ),
        (Some((id, _)), None, Some(form_id), None) if form_id != id => {
            return Err(TokenError::invalid_request(
                "client_id differs from the Basic credentials",
            ));
        }
        (Some((id, secret)), None, _, None) => (id, Credential::Secret(secret)),
        (None, None, Some(id), Some(secret)) => (
            id.to_owned(),
            Credential::Secret(SecretString::from(secret.to_owned())),
        ),
        (None, None, _, _) => {
            return Err(TokenError::invalid_client());
        }
    };
    let with_challenge = |mut e: TokenError| {
        e.basic_challenge = used_basic;
        e
    };

    // Nothing longer is registered: refused before the failure limiter counts it or the log
    // shows it.
    if client_id.len() > ratelimit::MAX_CLIENT_ID_LEN {
        return Err(with_challenge(TokenError::invalid_client()));
    }

    // Behind a trusted proxy, the address it vouches for: the balancer's own address would
    // make every client one and let anyone lock everyone out.
    let addr: IpAddr = client_addr::of_request(req).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let slow_down = |wait: Duration| TokenError {
        retry_after: Some(wait),
        ..TokenError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "Too many failed authentications; retry later",
        )
    };
    issuer.limiter.check(addr, &client_id).map_err(slow_down)?;

    // One round trip: the app, its live secrets, the API and the grant.
    let found = issuer.lookup(&client_id, audience).await?;
    let authenticated = match (&credential, &found) {
        (Credential::Secret(secret), found) => {
            let ok = found.as_ref().is_some_and(|f| f.authenticates(secret));
            if found.is_none() {
                secrets::verify_against_nothing(secret);
            }
            ok
        }
        (Credential::Assertion(assertion), Some(found)) => {
            issuer
                .authenticates_assertion(found, &client_id, assertion)
                .await?
        }
        (Credential::Assertion(_), None) => false,
    };
    match found {
        Some(app) if authenticated => Ok(AuthenticatedClient { client_id, app }),
        _ => {
            tracing::info!(client_id = %Untrusted(&client_id), %addr, "client authentication failed");
            issuer
                .limiter
                .record_failure(addr, &client_id)
                .map_err(slow_down)?;
            Err(with_challenge(TokenError::invalid_client()))
        }
    }
}

/// How the client proved who it is.
enum Credential {
    Secret(SecretString),
    /// A client assertion (RFC 7523 §2.2), the app's keys verify it.
    Assertion(String),
}

async fn client_credentials(
    req: &HttpRequest,
    form: &Form,
    issuer: &Issuer,
) -> Result<TokenResponse, TokenError> {
    let audience = match (form.get("audience"), form.get("resource")) {
        (Some(a), Some(r)) if a != r => {
            return Err(TokenError::invalid_request(
                "'audience' and 'resource' name different APIs",
            ));
        }
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    let client = authenticate_client(req, form, issuer, audience.unwrap_or("")).await?;
    let Some(audience) = audience else {
        return Err(TokenError::invalid_request(
            "Missing 'audience' (or 'resource')",
        ));
    };
    let jkt = issuer.token_request_dpop(req, &client.app).await?;
    issuer.issue_bound(
        &client.client_id,
        audience,
        form.get("scope"),
        &client.app,
        jkt.as_deref(),
    )
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

    #[test]
    fn more_than_a_hundred_parameters_are_refused_before_decoding() {
        let form = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert!(Form::parse(form(MAX_PARAMETERS).as_bytes()).is_ok());
        let refused = Form::parse(form(MAX_PARAMETERS + 1).as_bytes())
            .err()
            .unwrap();
        assert_eq!(refused.error, "invalid_request");
        assert!(refused.description.contains("more than 100 parameters"));
        // Empty pieces are not parameters, for the decoder or for the count.
        let sparse = format!("&&{}&&", form(MAX_PARAMETERS).replace('&', "&&"));
        assert_eq!(
            Form::parse(sparse.as_bytes()).unwrap().0.len(),
            MAX_PARAMETERS
        );
    }
}
