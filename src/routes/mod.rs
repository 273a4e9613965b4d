//! The resource API's routes (shared/CONTRACT.md §3).

pub mod health;
pub mod records;
pub mod users;

use actix_web::web;

/// The tenant routes and probes; the whole table in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources rather than bare routes, so that another method gets 405, not 404.
    cfg.service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/ready").route(web::get().to(health::ready)))
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
        .service(web::resource("/orgs/{org_code}/users").route(web::get().to(users::list)));
}
