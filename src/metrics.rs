//! Prometheus metrics on a listener of their own (`METRICS_ADDR`), in the OpenMetrics text
//! format that Prometheus scrapes.
//!
//! Every label value comes from a closed set: the route template actix matched (or
//! `unmatched`), a known HTTP method (or `other`), the status code, and names written in the
//! code (reasons, OAuth error codes, algorithms). No organization code, client id, token, key
//! id or concrete path can become a label, so the series neither leak tenants nor grow with
//! them. Every family is registered at start-up, and the series of the closed sets exist from
//! then on at zero.

use std::collections::HashSet;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::error::{ApiError, json_error};
use crate::issuer::token::TokenError;

/// Why the resource API refused a request before reaching tenant data.
pub const AUTH_REJECTION_REASONS: [&str; 7] = [
    "no_token",
    "invalid_token",
    "revoked",
    "no_org",
    "wrong_org",
    "insufficient_scope",
    "invalid_dpop_proof",
];

/// The error codes of the token, revocation and introspection endpoints (RFC 6749 §5.2,
/// RFC 7009 §2.2.1, RFC 8707, RFC 9449), shown at zero from start-up.
pub const TOKEN_ERROR_CODES: [&str; 12] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
    "invalid_dpop_proof",
    "slow_down",
    "server_error",
    "temporarily_unavailable",
];

const SIGNING_ALGORITHMS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];
const TOKEN_TYPES: [&str; 2] = ["Bearer", "DPoP"];

/// Request durations from 1 ms to 10 s.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Routes that every instance serves.
const PROBES: [&str; 2] = ["/health", "/ready"];

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuedLabels {
    alg: &'static str,
    token_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The service's metrics: one registry per [`crate::startup::Application`].
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    tokens_issued: Family<IssuedLabels, Counter>,
    token_errors: Family<ErrorLabels, Counter>,
    auth_rejections: Family<ReasonLabels, Counter>,
    jwks_fetches: Family<ResultLabels, Counter>,
    pool_connections: Family<StateLabels, Gauge>,
    /// The route templates seen so far, each stored once for the life of the process: they
    /// come from the route table, so there are as many as there are routes.
    routes: RwLock<HashSet<&'static str>>,
    pool: PgPool,
}

impl Metrics {
    /// Registers every family and creates the series of the closed label sets at zero.
    pub fn new(pool: PgPool) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(duration_histogram);
        let tokens_issued = Family::<IssuedLabels, Counter>::default();
        let token_errors = Family::<ErrorLabels, Counter>::default();
        let auth_rejections = Family::<ReasonLabels, Counter>::default();
        let jwks_fetches = Family::<ResultLabels, Counter>::default();
        let pool_connections = Family::<StateLabels, Gauge>::default();
        let build_info = Family::<VersionLabels, Gauge>::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "orgwall_http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        registry.register(
            "orgwall_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            http_duration.clone(),
        );
        registry.register(
            "orgwall_tokens_issued",
            "Access tokens issued, by signing algorithm and token type",
            tokens_issued.clone(),
        );
        registry.register(
            "orgwall_token_errors",
            "OAuth error answers of the token, revocation and introspection endpoints, by error code",
            token_errors.clone(),
        );
        registry.register(
            "orgwall_auth_rejections",
            "Resource API requests refused before reaching tenant data, by reason",
            auth_rejections.clone(),
        );
        registry.register(
            "orgwall_jwks_fetches",
            "Fetches of the trusted issuer's JWKS, by result",
            jwks_fetches.clone(),
        );
        registry.register(
            "orgwall_db_pool_connections",
            "Database pool connections, by state",
            pool_connections.clone(),
        );
        registry.register(
            "orgwall_build_info",
            "The running build (always 1)",
            build_info.clone(),
        );

        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        for alg in SIGNING_ALGORITHMS {
            for token_type in TOKEN_TYPES {
                tokens_issued.get_or_create_owned(&IssuedLabels { alg, token_type });
            }
        }
        for error in TOKEN_ERROR_CODES {
            token_errors.get_or_create_owned(&ErrorLabels { error });
        }
        for reason in AUTH_REJECTION_REASONS {
            auth_rejections.get_or_create_owned(&ReasonLabels { reason });
        }
        for result in ["ok", "error"] {
            jwks_fetches.get_or_create_owned(&ResultLabels { result });
        }
        for state in ["idle", "in_use"] {
            pool_connections.get_or_create_owned(&StateLabels { state });
        }
        // The probes exist on every instance: their series make the HTTP families visible
        // before the first request (an encoder shows no family without a series).
        for route in PROBES {
            let method = "GET";
            http_requests.get_or_create_owned(&RequestLabels {
                method,
                route,
                status: 200,
            });
            http_duration.get_or_create_owned(&RouteLabels { method, route });
        }

        Self {
            registry,
            http_requests,
            http_duration,
            tokens_issued,
            token_errors,
            auth_rejections,
            jwks_fetches,
            pool_connections,
            routes: RwLock::new(HashSet::from(PROBES)),
            pool,
        }
    }

    /// The registry as OpenMetrics text, with the pool gauges read now.
    pub fn render(&self) -> String {
        let size = self.pool.size() as i64;
        let idle = self.pool.num_idle() as i64;
        self.pool_connections
            .get_or_create(&StateLabels { state: "idle" })
            .set(idle);
        self.pool_connections
            .get_or_create(&StateLabels { state: "in_use" })
            .set((size - idle).max(0));
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// A token was issued (`alg` and `token_type` are names from the code).
    pub fn token_issued(&self, alg: &'static str, token_type: &'static str) {
        self.tokens_issued
            .get_or_create(&IssuedLabels { alg, token_type })
            .inc();
    }

    /// What [`crate::auth::jwks::JwksCache`] counts its fetches with.
    pub fn jwks_fetches(&self) -> JwksFetches {
        let counter = |result| {
            self.jwks_fetches
                .get_or_create_owned(&ResultLabels { result })
        };
        JwksFetches(Some((counter("ok"), counter("error"))))
    }

    /// The route template of `pattern`, stored once.
    fn route(&self, pattern: Option<String>) -> &'static str {
        let Some(pattern) = pattern else {
            return UNMATCHED;
        };
        if let Some(known) = self
            .routes
            .read()
            .expect("metrics lock poisoned")
            .get(pattern.as_str())
        {
            return known;
        }
        let mut routes = self.routes.write().expect("metrics lock poisoned");
        match routes.get(pattern.as_str()) {
            Some(known) => known,
            None => {
                let leaked: &'static str = Box::leak(pattern.into_boxed_str());
                routes.insert(leaked);
                leaked
            }
        }
    }

    fn observe<B>(
        &self,
        method: &'static str,
        route: &'static str,
        result: &Result<ServiceResponse<B>, actix_web::Error>,
        elapsed: Duration,
    ) {
        let (status, error) = match result {
            Ok(res) => (res.status(), res.response().error()),
            Err(e) => (e.as_response_error().status_code(), Some(e)),
        };
        self.http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { method, route })
            .observe(elapsed.as_secs_f64());
        // The answers' own error types say what went wrong: the extractor's rejection kind,
        // the OAuth error code.
        if let Some(error) = error {
            if let Some(e) = error.as_error::<ApiError>() {
                if let Some(reason) = rejection_reason(e) {
                    self.auth_rejections
                        .get_or_create(&ReasonLabels { reason })
                        .inc();
                }
            } else if let Some(e) = error.as_error::<TokenError>() {
                self.token_errors
                    .get_or_create(&ErrorLabels { error: e.error })
                    .inc();
            }
        }
    }
}

/// The reason label of an authorization failure of the resource API, `None` for any other
/// error. Exhaustive on purpose: a new kind of rejection must be given its reason here.
fn rejection_reason(e: &ApiError) -> Option<&'static str> {
    Some(match e {
        ApiError::NoToken => "no_token",
        ApiError::InvalidToken | ApiError::InvalidDpopToken => "invalid_token",
        ApiError::InvalidDpopProof => "invalid_dpop_proof",
        ApiError::RevokedToken => "revoked",
        ApiError::NotOrgScoped => "no_org",
        ApiError::WrongOrg => "wrong_org",
        ApiError::MissingScope(_) => "insufficient_scope",
        ApiError::BadRequest(_)
        | ApiError::Unauthorized(_)
        | ApiError::NotFound(_)
        | ApiError::Conflict(_)
        | ApiError::PayloadTooLarge(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::Unavailable(_)
        | ApiError::Internal(_) => return None,
    })
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        // Any other name would let a client invent label values.
        _ => "other",
    }
}

/// Counts JWKS fetches; does nothing when metrics are off.
#[derive(Clone, Default)]
pub struct JwksFetches(Option<(Counter, Counter)>);

impl JwksFetches {
    pub fn record(&self, ok: bool) {
        if let Some((ok_count, error_count)) = &self.0 {
            match ok {
                true => ok_count.inc(),
                false => error_count.inc(),
            };
        }
    }
}

/// The middleware body (for `App::wrap_fn`): times the request and counts its answer. With
/// metrics off it only forwards the request. Per request it allocates nothing of its own; the
/// route template comes from actix as a `String`.
pub fn track<S, B>(
    metrics: &Option<Arc<Metrics>>,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let observed = metrics.as_ref().map(|m| {
        let route = m.route(req.match_pattern());
        (m.clone(), method_label(req.method()), route, Instant::now())
    });
    let fut = srv.call(req);
    async move {
        let result = fut.await;
        if let Some((metrics, method, route, started)) = observed {
            metrics.observe(method, route, &result, started.elapsed());
        }
        result
    }
}

/// Counts a token issued over HTTP (the token endpoint, the admin API), by the algorithm in
/// its header (nothing when metrics are off).
pub fn count_issued(req: &HttpRequest, access_token: &str, token_type: &'static str) {
    let Some(metrics) = req.app_data::<web::Data<Metrics>>() else {
        return;
    };
    use jsonwebtoken::Algorithm;
    let alg = match jsonwebtoken::decode_header(access_token).map(|h| h.alg) {
        Ok(Algorithm::RS256) => "RS256",
        Ok(Algorithm::PS256) => "PS256",
        Ok(Algorithm::ES256) => "ES256",
        Ok(Algorithm::EdDSA) => "EdDSA",
        _ => "other",
    };
    let token_type = TOKEN_TYPES
        .into_iter()
        .find(|t| *t == token_type)
        .unwrap_or("other");
    metrics.token_issued(alg, token_type);
}

async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(metrics.render())
}

async fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "No route matches this path")
}

/// The metrics listener: `GET /metrics` and nothing else, one worker, no signal handling of
/// its own (it stops with the main server).
pub fn server(metrics: Arc<Metrics>, listener: TcpListener) -> anyhow::Result<Server> {
    let metrics = web::Data::from(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(scrape))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .context("METRICS_ADDR: cannot listen")?
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_up_method_is_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn only_authorization_failures_have_a_reason() {
        assert_eq!(rejection_reason(&ApiError::NoToken), Some("no_token"));
        assert_eq!(
            rejection_reason(&ApiError::MissingScope("read:data")),
            Some("insufficient_scope")
        );
        assert_eq!(rejection_reason(&ApiError::bad_request("x")), None);
        for reason in [
            rejection_reason(&ApiError::InvalidToken),
            rejection_reason(&ApiError::InvalidDpopToken),
            rejection_reason(&ApiError::InvalidDpopProof),
            rejection_reason(&ApiError::RevokedToken),
            rejection_reason(&ApiError::NotOrgScoped),
            rejection_reason(&ApiError::WrongOrg),
        ] {
            assert!(AUTH_REJECTION_REASONS.contains(&reason.unwrap()));
        }
    }
}
