//! RFC 8414 metadata and the JWKS.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::auth::dpop;
use crate::error::ApiError;
use crate::issuer::{Issuer, catalogue};

/// How clients authenticate at the token, revocation and introspection endpoints (one
/// implementation for all three).
const CLIENT_AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

pub async fn discovery(issuer: web::Data<Issuer>) -> Result<HttpResponse, ApiError> {
    let scopes = catalogue::scope_names(&issuer.pool).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "issuer": issuer.public_url,
            "token_endpoint": issuer.token_endpoint(),
            "jwks_uri": issuer.jwks_uri(),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported":
                dpop::signing_algorithms().collect::<Vec<_>>(),
            "dpop_signing_alg_values_supported": dpop::signing_algorithms().collect::<Vec<_>>(),
            "revocation_endpoint": issuer.revocation_endpoint(),
            "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "revocation_endpoint_auth_signing_alg_values_supported":
                dpop::signing_algorithms().collect::<Vec<_>>(),
            "introspection_endpoint": issuer.introspection_endpoint(),
            "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "introspection_endpoint_auth_signing_alg_values_supported":
                dpop::signing_algorithms().collect::<Vec<_>>(),
            "scopes_supported": scopes,
            "response_types_supported": ["token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
        })))
}

pub async fn jwks(issuer: web::Data<Issuer>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(&*issuer.keys.jwks())
}
