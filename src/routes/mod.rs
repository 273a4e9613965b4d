//! The HTTP side: handlers only. Each extracts and checks its input, calls a tenant or issuer
//! function, and shapes the answer; no SQL lives here.

pub mod admin;
pub mod audit;
pub mod health;
pub mod metadata;
pub mod openapi;
pub mod records;
pub mod revocation;
pub mod token;
pub mod users;

use actix_web::web;

use crate::error::ApiError;
use crate::issuer::Issuer;
use crate::issuer::catalogue::CatalogueError;
use admin::AdminToken;

/// The tenant routes and probes; the whole table in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources rather than bare routes, so that another method gets 405, not 404.
    cfg.service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/ready").route(web::get().to(health::ready)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::openapi_json)))
        .service(
            web::resource("/orgs/{org_code}/data")
                .route(web::get().to(records::list))
                .route(web::post().to(records::create)),
        )
        .service(
            web::resource("/orgs/{org_code}/data/{id}")
                .route(web::get().to(records::get))
                .route(web::patch().to(records::update))
                .route(web::delete().to(records::delete)),
        )
        .service(web::resource("/orgs/{org_code}/users").route(web::get().to(users::list)))
        .service(web::resource("/orgs/{org_code}/audit").route(web::get().to(audit::list)));
}

/// The built-in issuer's public routes (present when the issuer is enabled).
pub fn configure_issuer(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(metadata::discovery),
    )
    .route(
        "/.well-known/oauth-authorization-server",
        web::get().to(metadata::discovery),
    )
    .route("/.well-known/jwks.json", web::get().to(metadata::jwks))
    .route("/.well-known/jwks", web::get().to(metadata::jwks))
    .service(web::resource("/oauth2/token").route(web::post().to(token::token_endpoint)))
    .service(web::resource("/oauth2/revoke").route(web::post().to(revocation::revoke)))
    .service(web::resource("/oauth2/introspect").route(web::post().to(revocation::introspect)));
}

/// The one place a catalogue outcome becomes an HTTP answer (the CLI prints the same errors
/// as one line instead).
impl From<CatalogueError> for ApiError {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::Invalid(message) => ApiError::BadRequest(message),
            CatalogueError::NotFound(message) => ApiError::NotFound(message),
            CatalogueError::Conflict(message) => ApiError::Conflict(message),
            CatalogueError::Db(e) => e.into(),
            CatalogueError::Keys(e) => ApiError::Internal(e),
        }
    }
}

/// Every route of the main listener, by what is switched on: the issuer's routes when it is
/// enabled, the admin API and the console when `ADMIN_TOKEN` is also set. Startup registers
/// exactly this, and the OpenAPI tests read the route table from it: register routes here.
pub fn configure_app(
    cfg: &mut web::ServiceConfig,
    issuer: Option<&web::Data<Issuer>>,
    admin_token: Option<&AdminToken>,
) {
    configure(cfg);
    if let Some(issuer) = issuer {
        cfg.app_data(issuer.clone()).configure(configure_issuer);
        if let Some(token) = admin_token {
            cfg.app_data(token.clone())
                .configure(admin::configure)
                .configure(crate::console::configure);
        }
    }
}
