//! The web console: the tutorial's dashboard, self-hosted. One page built only on the admin
//! API, served from the binary with its assets embedded at compile time (no build step, no
//! CDN, no request to another origin). Registered only when the admin API is on.
//!
//! The page holds the admin token in `sessionStorage` and sends it as a bearer header on
//! every call: no cookie, so no CSRF surface. Every response carries a strict CSP (scripts and
//! styles from this origin only, no inline code, Trusted Types so that no HTML sink can be
//! fed a string) and may not be framed.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
    require-trusted-types-for 'script'; trusted-types 'none'";

/// An embedded file: its name under `/console/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &str = include_str!("assets/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/console.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/dom.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/console.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(index)))
        .service(web::resource("/console/{asset}").route(web::get().to(asset)));
}

/// The console's response headers, on the page and on every asset.
fn secured(content_type: &'static str) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header(("cross-origin-opener-policy", "same-origin"))
        .insert_header(("cross-origin-resource-policy", "same-origin"))
        .insert_header((
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        ))
        // Small and embedded: always revalidate, so an upgrade is seen at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    res
}

async fn index() -> HttpResponse {
    secured("text/html; charset=utf-8").body(INDEX)
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name.as_str())
        .map(|a| secured(a.content_type).body(a.body))
        .ok_or_else(|| ApiError::not_found("No route matches this path"))
}
