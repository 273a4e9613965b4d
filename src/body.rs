//! Reading a JSON body after authorization, so that the contract's check order holds (a bad
//! token is reported before a bad body) and every failure is a JSON error that names the cause.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest body accepted, registered as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

impl BodyLimit {
    /// The limit registered for this request's app (BODY_LIMIT), 64 KiB if none is.
    pub fn of(req: &HttpRequest) -> usize {
        req.app_data::<BodyLimit>().map_or(64 * 1024, |l| l.0)
    }
}

/// Why a body could not be read; each endpoint answers it in its own error shape.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit (in bytes), declared or sent.
    TooLarge(usize),
    /// The connection failed or the transfer encoding was malformed.
    Unreadable(actix_web::error::PayloadError),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(limit) => {
                ApiError::PayloadTooLarge(format!("Request body exceeds {limit} bytes"))
            }
            BodyError::Unreadable(e) => {
                ApiError::bad_request(format!("Could not read the request body: {e}"))
            }
        }
    }
}

/// The one body reader: the whole body, at most the body limit, whatever its transfer encoding
/// (`Content-Length`, `chunked`, or none). Every JSON body and every form goes through it, so
/// that no handler decides from headers alone whether there is a body.
pub async fn read_bytes(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, BodyError> {
    let limit = BodyLimit::of(req);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => BodyError::TooLarge(limit),
            other => BodyError::Unreadable(other),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ));
    }
    Ok(())
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(describe_json_error(&e)))
}

/// Checks the content type, reads at most the body limit, and parses JSON into `T`.
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    require_json(req)?;
    let body = read_bytes(req, payload).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "Request body is empty; a JSON object is required",
        ));
    }
    parse_json(&body)
}

/// A JSON body that may be left out: `None` when the body is empty (however it was sent),
/// otherwise as [`read_json`].
pub async fn read_optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Option<T>, ApiError> {
    let body = read_bytes(req, payload).await?;
    if body.is_empty() {
        return Ok(None);
    }
    require_json(req)?;
    parse_json(&body).map(Some)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("Request body is not valid JSON: {e}"),
        Category::Data => format!("Request body has the wrong shape: {e}"),
        Category::Io => format!("Request body could not be read: {e}"),
    }
}

/// Deserializes a field that may be `null` as `Some(Value::Null)`, leaving `None` for absent,
/// so that `{"value": null}` stores a JSON null while `{}` is "value is required".
pub fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}
