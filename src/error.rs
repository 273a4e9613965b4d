//! One error type for the resource and admin APIs: one match from variant to status, a JSON
//! body `{"error": "<reason phrase>", "message": "..."}` and, for auth failures, the RFC 6750
//! `WWW-Authenticate` header. Internal detail goes to the log, never to the client.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("No token provided")]
    NoToken,
    #[error("Invalid or expired token")]
    InvalidToken,
    /// The token of an `Authorization: DPoP` request, or a DPoP-bound token sent as Bearer.
    #[error("Invalid or expired token")]
    InvalidDpopToken,
    /// The DPoP proof is missing, invalid, replayed or for another key (RFC 9449 §7.1).
    #[error("Invalid DPoP proof")]
    InvalidDpopProof,
    /// A valid token of the built-in issuer that was revoked (or whose org is switched off).
    #[error("Token has been revoked")]
    RevokedToken,
    #[error("Token is not scoped to an organization")]
    NotOrgScoped,
    #[error("Token does not have access to this organization")]
    WrongOrg,
    #[error("Token missing required scope: {0}")]
    MissingScope(&'static str),
    /// A bad request; the message says which field and why.
    #[error("{0}")]
    BadRequest(String),
    /// Admin API authentication failed.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database (or another dependency) cannot be reached right now.
    #[error("Service temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("Internal server error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_connection_failure(&e) {
            crate::db::note_connection_failure();
        }
        if is_unavailable(&e) {
            ApiError::Unavailable(e.into())
        } else if is_nul_in_text(&e) {
            ApiError::bad_request("Text values must not contain NUL characters (\\u0000)")
        } else {
            ApiError::Internal(e.into())
        }
    }
}

/// PostgreSQL text cannot hold NUL (22021, "invalid byte sequence"): a value the client sent
/// (a path segment, a body field) reached a query with one. The client's mistake, not a 500.
pub fn is_nul_in_text(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("22021"))
}

/// Errors that mean "try again later" rather than "we have a bug".
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            // 57014 query_canceled (statement_timeout), 57P01..03 admin shutdown / cannot
            // connect now, 08xxx connection exceptions, 53300 too many connections.
            db.code().is_some_and(|c| {
                c == "57014" || c.starts_with("57P") || c.starts_with("08") || c == "53300"
            })
        }
        _ => false,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NoToken
            | ApiError::InvalidToken
            | ApiError::InvalidDpopToken
            | ApiError::InvalidDpopProof
            | ApiError::RevokedToken
            | ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotOrgScoped | ApiError::WrongOrg | ApiError::MissingScope(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unavailable(e) => tracing::warn!(error = ?e, "dependency unavailable"),
            ApiError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            _ => {}
        }
        let mut response = json_error(self.status_code(), &self.to_string());
        let challenge = match self {
            ApiError::NoToken => Some(r#"Bearer realm="orgwall""#.to_string()),
            ApiError::InvalidToken | ApiError::RevokedToken => {
                Some(r#"Bearer error="invalid_token""#.to_string())
            }
            ApiError::InvalidDpopToken => Some(format!(
                r#"DPoP error="invalid_token", algs="{}""#,
                crate::auth::dpop::CHALLENGE_ALGS
            )),
            ApiError::InvalidDpopProof => Some(format!(
                r#"DPoP error="invalid_dpop_proof", algs="{}""#,
                crate::auth::dpop::CHALLENGE_ALGS
            )),
            ApiError::MissingScope(scope) => Some(format!(
                r#"Bearer error="insufficient_scope", scope="{scope}""#
            )),
            ApiError::Unauthorized(_) => Some(r#"Bearer realm="orgwall-admin""#.to_string()),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The contract's error body for any status.
pub fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    }))
}

/// Rewrites any error response that is not already JSON (actix's own 404, 405, 413, ...) into
/// the contract's error body, keeping status and headers.
pub fn render_non_json_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = match status {
        StatusCode::NOT_FOUND => "No route matches this path".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed on this path".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large".to_string(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported content type".to_string(),
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error".to_string(),
        other => other.canonical_reason().unwrap_or("Error").to_string(),
    };
    let (req, old) = res.into_parts();
    let mut new = json_error(status, &message);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, new.map_into_boxed_body()).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
