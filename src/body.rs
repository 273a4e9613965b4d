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

/// Checks the content type, reads at most the body limit, and parses JSON into `T`.
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, ApiError> {
    let limit = BodyLimit::of(req);
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
    let too_large = || ApiError::PayloadTooLarge(format!("Request body exceeds {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            other => ApiError::bad_request(format!("Could not read the request body: {other}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "Request body is empty; a JSON object is required",
        ));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(describe_json_error(&e)))
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
