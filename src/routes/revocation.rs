//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect` (RFC 7662). Both read the
//! form and authenticate the client with the token endpoint's own code (same methods, same
//! errors, same failure limiter).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::admin::{AdminToken, presents_admin_token};
use super::token::{authenticate_client, read_form};
use crate::auth::extractor::bearer_token;
use crate::issuer::Issuer;
use crate::issuer::token::TokenError;
use crate::issuer::token_status::Caller;

fn no_store(mut res: HttpResponse) -> HttpResponse {
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    headers.insert(header::PRAGMA, "no-cache".parse().expect("static"));
    res
}

fn token_param(form: &super::token::Form) -> Result<&str, TokenError> {
    form.get("token")
        .ok_or_else(|| TokenError::invalid_request("Missing 'token'"))
}

/// RFC 7009: the client's own valid token is revoked; another client's valid token is
/// refused (`unauthorized_client`) and left alone; anything else changes nothing. Success is
/// 200 with an empty body. `token_type_hint` is accepted and ignored.
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, TokenError> {
    let form = read_form(&req, payload).await?;
    let client = authenticate_client(&req, &form, &issuer, "").await?;
    let token = token_param(&form)?;
    match issuer.revoke_for_client(&client.client_id, token).await {
        Ok(Ok(())) => Ok(no_store(HttpResponse::Ok().finish())),
        Ok(Err(_not_yours)) => Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The token was issued to another client",
        )),
        Err(e) => Err(TokenError::server_error(e)),
    }
}

/// RFC 7662: `{"active": true, ...claims}` for an active token the caller may see, else
/// `{"active": false}` and nothing more. The caller is an app (authenticated as at the token
/// endpoint) or the operator (`Authorization: Bearer <ADMIN_TOKEN>`).
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, TokenError> {
    let form = read_form(&req, payload).await?;
    let offers_bearer = matches!(bearer_token(&req), Ok(Some(_)) | Err(_));
    let admin = offers_bearer
        && req
            .app_data::<AdminToken>()
            .is_some_and(|expected| presents_admin_token(&req, expected));
    let answer = if admin {
        let token = token_param(&form)?;
        issuer.introspect(Caller::Admin, token).await
    } else if offers_bearer {
        // A bearer that is not the admin token authenticates nobody.
        return Err(TokenError::invalid_client());
    } else {
        let client = authenticate_client(&req, &form, &issuer, "").await?;
        let token = token_param(&form)?;
        issuer
            .introspect(
                Caller::App {
                    client_id: &client.client_id,
                    org_code: client.app.org_code.as_deref(),
                },
                token,
            )
            .await
    };
    let body = match answer? {
        Some(claims) => claims,
        None => json!({"active": false}),
    };
    Ok(no_store(HttpResponse::Ok().json(body)))
}
