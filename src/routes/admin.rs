//! The admin HTTP API (docs/api.md), present only when `ADMIN_TOKEN` is set. Bodies and
//! answers mirror the CLI commands, through the same catalogue functions.

use std::time::Duration;

use actix_web::dev::{Payload, Service};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use aws_lc_rs::digest::{SHA256, digest};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::auth::SigningAlgorithm;
use crate::auth::extractor::bearer_token;
use crate::auth::jwk::PublicJwks;
use crate::body::{read_json, read_optional_json};
use crate::config::parse_duration;
use crate::domain::{
    ApiName, AppName, Audience, Email, OrgCode, OrgName, ScopeDef, ScopeName, UserName,
};
use crate::error::ApiError;
use crate::issuer::catalogue::{NewApi, TokenLifetime};
use crate::issuer::{Issuer, catalogue, keybound, keys, revocation};

/// The configured admin token, registered as app data.
#[derive(Clone)]
pub struct AdminToken(pub SecretString);

/// A request that presented the admin token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req
            .app_data::<AdminToken>()
            .expect("BUG: AdminToken not registered");
        std::future::ready(if presents_admin_token(req, expected) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized("A valid admin token is required"))
        })
    }
}

/// Whether the request carries `Authorization: Bearer <ADMIN_TOKEN>` (also what the
/// introspection endpoint accepts from the operator).
pub fn presents_admin_token(req: &HttpRequest, expected: &AdminToken) -> bool {
    // The resource API's parser: one Authorization header, scheme Bearer, one token.
    let presented = bearer_token(req).ok().flatten();
    // Compare digests so that neither content nor length leaks through timing.
    presented.is_some_and(|p| {
        let a = digest(&SHA256, p.as_bytes());
        let b = digest(&SHA256, expected.0.expose_secret().as_bytes());
        bool::from(a.as_ref().ct_eq(b.as_ref()))
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            // Every successful change drops this instance's client cache at once (others
            // follow through NOTIFY orgwall_catalogue).
            .wrap_fn(|req, srv| {
                let changes = req.method() != actix_web::http::Method::GET;
                let issuer = req.app_data::<web::Data<Issuer>>().cloned();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    if changes
                        && res.status().is_success()
                        && let Some(issuer) = issuer
                    {
                        issuer.cache.invalidate();
                    }
                    Ok(res)
                }
            })
            .route("/apis", web::get().to(list_apis))
            .route("/apis", web::post().to(create_api))
            .route("/apis/scopes", web::post().to(add_scope))
            .route("/orgs", web::get().to(list_orgs))
            .route("/orgs", web::post().to(create_org))
            .route("/orgs/{org_code}/users", web::post().to(add_user))
            .route("/orgs/{org_code}/disable", web::post().to(disable_org))
            .route("/orgs/{org_code}/enable", web::post().to(enable_org))
            .route("/apps", web::get().to(list_apps))
            .route("/apps", web::post().to(create_app))
            .route("/apps/{client_id}", web::delete().to(delete_app))
            .route("/apps/{client_id}/authorize", web::post().to(authorize))
            .route("/apps/{client_id}/jwks", web::put().to(set_keys))
            .route(
                "/apps/{client_id}/rotate-secret",
                web::post().to(rotate_secret),
            )
            .route("/apps/{client_id}/disable", web::post().to(disable))
            .route("/apps/{client_id}/enable", web::post().to(enable))
            .route("/apps/{client_id}/token", web::post().to(token))
            .route(
                "/apps/{client_id}/revoke-tokens",
                web::post().to(revoke_app_tokens),
            )
            .route("/tokens/revoke", web::post().to(revoke_token))
            .route("/keys", web::get().to(list_keys))
            .route("/keys/rotate", web::post().to(rotate_keys))
            .route("/keys/{kid}/revoke", web::post().to(revoke_key)),
    );
}

fn ok(value: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

fn created(value: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created().json(value)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApi {
    audience: Audience,
    name: ApiName,
    #[serde(default)]
    scopes: Vec<ScopeDef>,
    /// Seconds.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 60, maximum = 86400)]
    token_lifetime: Option<TokenLifetime>,
    #[serde(default)]
    #[schema(value_type = Option<String>, examples("RS256", "ES256", "EdDSA"))]
    signing_alg: Option<SigningAlgorithm>,
}

async fn list_apis(_: Admin, issuer: web::Data<Issuer>) -> Result<HttpResponse, ApiError> {
    Ok(ok(catalogue::list_apis(&issuer.pool).await?))
}

async fn create_api(
    _: Admin,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: CreateApi = read_json(&req, body).await?;
    let new = NewApi::new(
        input.audience,
        input.name,
        input.scopes,
        input.token_lifetime,
        input.signing_alg,
    )?;
    let api = catalogue::create_api(&issuer.pool, &new).await?;
    // A key for a new algorithm may have been made: load it now rather than on the NOTIFY.
    issuer.keys.reload().await.map_err(ApiError::Internal)?;
    Ok(created(api))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddScope {
    audience: String,
    name: ScopeName,
    #[serde(default)]
    description: String,
}

async fn add_scope(
    _: Admin,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: AddScope = read_json(&req, body).await?;
    Ok(ok(catalogue::add_scope(
        &issuer.pool,
        &input.audience,
        &ScopeDef {
            name: input.name,
            description: input.description,
        },
    )
    .await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    code: OrgCode,
    name: OrgName,
}

async fn list_orgs(_: Admin, issuer: web::Data<Issuer>) -> Result<HttpResponse, ApiError> {
    Ok(ok(catalogue::list_orgs(&issuer.pool).await?))
}

async fn create_org(
    _: Admin,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: CreateOrg = read_json(&req, body).await?;
    Ok(created(
        catalogue::create_org(&issuer.pool, &input.code, &input.name).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    email: Email,
    name: UserName,
}

async fn add_user(
    _: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let org = OrgCode::parse(&path).map_err(ApiError::BadRequest)?;
    let input: AddUser = read_json(&req, body).await?;
    Ok(created(
        catalogue::add_user(&db, &org, &input.email, &input.name).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    name: AppName,
    #[serde(default)]
    org_code: Option<OrgCode>,
    /// Public keys: the app authenticates with them (private_key_jwt) and has no secret.
    #[serde(default)]
    jwks: Option<serde_json::Value>,
    #[serde(default)]
    require_dpop: bool,
}

async fn list_apps(_: Admin, issuer: web::Data<Issuer>) -> Result<HttpResponse, ApiError> {
    Ok(ok(catalogue::list_apps(&issuer.pool).await?))
}

async fn create_app(
    _: Admin,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: CreateApp = read_json(&req, body).await?;
    let (org, pool) = (input.org_code.as_ref(), &issuer.pool);
    let created = match &input.jwks {
        Some(jwks) => {
            let jwks = jwks_of(jwks)?;
            let app = keybound::create_key_app(pool, &input.name, org, &jwks, input.require_dpop);
            HttpResponse::Created().json(app.await?)
        }
        None => {
            let app = catalogue::create_app(pool, &input.name, org, input.require_dpop).await?;
            HttpResponse::Created()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(app)
        }
    };
    Ok(created)
}

/// A JWKS (or one JWK) from a JSON body, checked as the CLI checks a file.
fn jwks_of(value: &serde_json::Value) -> Result<PublicJwks, ApiError> {
    // The same rules as a file given to the CLI (the body itself was read like every admin
    // body, so a member repeated there has already kept its last value).
    Ok(keybound::parse_jwks(value.to_string().as_bytes())?)
}

async fn set_keys(
    _: Admin,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: serde_json::Value = read_json(&req, body).await?;
    let jwks = jwks_of(&input)?;
    Ok(ok(keybound::set_keys(&issuer.pool, &path, &jwks).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Authorize {
    audience: String,
    scopes: String,
}

async fn authorize(
    _: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: Authorize = read_json(&req, body).await?;
    Ok(ok(catalogue::authorize(
        &issuer.pool,
        &path,
        &input.audience,
        &input.scopes,
    )
    .await?))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// How long the old secret keeps working: `30s`, `10m`, `24h` (default: it stops at once).
    #[serde(default)]
    grace: Option<String>,
}

async fn rotate_secret(
    _: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    // The body is optional; whether there is one is what reading it says, not Content-Length
    // (a chunked body has none).
    let input: Rotate = read_optional_json(&req, body).await?.unwrap_or_default();
    let grace = match input.grace.as_deref() {
        Some(g) => parse_duration(g).map_err(|e| ApiError::bad_request(format!("grace: {e}")))?,
        None => Duration::ZERO,
    };
    let secret = catalogue::rotate_secret(&issuer.pool, &path, grace).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(secret))
}

async fn disable(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(catalogue::set_enabled(&issuer.pool, &path, false).await?))
}

async fn enable(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(catalogue::set_enabled(&issuer.pool, &path, true).await?))
}

async fn delete_app(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(catalogue::delete_app(&issuer.pool, &path).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    audience: String,
    #[serde(default)]
    scope: Option<String>,
}

async fn token(
    _: Admin,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, actix_web::Error> {
    let input: TokenIn = read_json(&req, body).await?;
    let issued = issuer
        .issue_for_app(&path, &input.audience, input.scope.as_deref())
        .await?;
    crate::metrics::count_issued(&req, &issued.access_token, issued.token_type);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(issued))
}

async fn rotate_keys(_: Admin, issuer: web::Data<Issuer>) -> Result<HttpResponse, ApiError> {
    let rotated = keys::rotate(&issuer.pool)
        .await
        .map_err(ApiError::Internal)?;
    issuer.keys.reload().await.map_err(ApiError::Internal)?;
    Ok(ok(rotated))
}

async fn list_keys(_: Admin, issuer: web::Data<Issuer>) -> Result<HttpResponse, ApiError> {
    Ok(ok(keys::list(&issuer.pool)
        .await
        .map_err(ApiError::Internal)?))
}

async fn revoke_app_tokens(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok(revocation::revoke_app_tokens(&issuer.pool, &path).await?))
}

async fn switch_org(
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
    disabled: bool,
) -> Result<HttpResponse, ApiError> {
    let org = OrgCode::parse(&path).map_err(ApiError::BadRequest)?;
    Ok(ok(revocation::set_org_disabled(
        &issuer.pool,
        &org,
        disabled,
    )
    .await?))
}

async fn disable_org(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    switch_org(path, issuer, true).await
}

async fn enable_org(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    switch_org(path, issuer, false).await
}

/// A token to revoke.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenIn {
    token: String,
}

async fn revoke_token(
    _: Admin,
    req: HttpRequest,
    body: web::Payload,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let input: RevokeTokenIn = read_json(&req, body).await?;
    Ok(ok(issuer.revoke_token(&input.token).await?))
}

async fn revoke_key(
    _: Admin,
    path: web::Path<String>,
    issuer: web::Data<Issuer>,
) -> Result<HttpResponse, ApiError> {
    let revoked = revocation::revoke_key(&issuer.pool, &path).await?;
    // Out of this instance's JWKS now; the others follow on the notification.
    issuer.keys.reload().await.map_err(ApiError::Internal)?;
    Ok(ok(revoked))
}
