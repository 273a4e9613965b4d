//! `Application::build / port / run_until_stopped`: how `main` and every test start the server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::ErrorHandlers;
use actix_web::{App, HttpMessage, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::auth::dpop::{DEFAULT_REPLAY_CAPACITY, DpopGuard};
use crate::auth::jwks::JwksCache;
use crate::auth::revocation::RevocationState;
use crate::auth::{KeySource, Verifier};
use crate::body::BodyLimit;
use crate::config::Settings;
use crate::error::render_non_json_error;
use crate::issuer::{Issuer, notifications, revocation};
use crate::metrics::Metrics;
use crate::routes::admin::AdminToken;
use crate::telemetry::OrgwallRootSpan;
use crate::{db, routes};
use secrecy::ExposeSecret;
use sqlx::PgPool;

pub struct Application {
    port: u16,
    server: Server,
    /// The metrics listener's port and server, unless `METRICS_ADDR=off`.
    metrics: Option<(u16, Server)>,
}

/// What the handlers share; built once, outside `HttpServer::new`.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub verifier: Arc<Verifier>,
    /// The built-in issuer, when `ISSUER_ENABLED`.
    pub issuer: Option<Arc<Issuer>>,
    /// Unless `METRICS_ADDR=off`.
    pub metrics: Option<Arc<Metrics>>,
}

impl AppState {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::pool(&settings).context("DATABASE_URL: cannot build the connection pool")?;
        let metrics = settings
            .metrics_addr
            .map(|_| Arc::new(Metrics::new(pool.clone())));
        let issuer = match settings.issuer_enabled {
            true => Some(Issuer::start(pool.clone(), &settings).await),
            false => None,
        };
        // Tokens of the built-in issuer (this deployment, whichever instance issued them) can
        // be revoked: when the resource API trusts that issuer, it keeps the revocations in
        // memory, re-read on every notification and every couple of seconds. Without a recent
        // read it accepts none of that issuer's tokens (503), so the first read happens before
        // serving; a database that is down at start-up is left to the refresher.
        let revocations = (settings.auth.issuer == settings.public_url)
            .then(|| Arc::new(RevocationState::default()));
        let wake = Arc::new(tokio::sync::Notify::new());
        if let Some(state) = &revocations {
            let wait = settings
                .db
                .acquire_timeout
                .min(std::time::Duration::from_secs(2));
            let first = tokio::time::timeout(wait, revocation::load(&pool));
            if let Ok(Ok(read)) = first.await {
                state.replace(read);
            }
            revocation::spawn_refresher(pool.clone(), state, wake.clone());
        }
        if issuer.is_some() || revocations.is_some() {
            let options = notifications::listen_options(
                settings.database_listen_url.expose_secret(),
                settings.db.statement_timeout,
            )
            .context("DATABASE_LISTEN_URL: cannot build the connection options")?;
            notifications::spawn(
                options,
                notifications::Targets {
                    keys: issuer.as_ref().map(|i| Arc::downgrade(&i.keys)),
                    cache: issuer.as_ref().map(|i| Arc::downgrade(&i.cache)),
                    revocations: revocations
                        .as_ref()
                        .map(|r| (Arc::downgrade(r), wake.clone())),
                },
            );
        }
        let keys = match &issuer {
            // Our own issuer's keys, without a round trip through our own JWKS endpoint.
            Some(issuer) if settings.auth.in_process_keys => KeySource::Local(issuer.keys.clone()),
            _ => {
                let cache = JwksCache::new(
                    settings.auth.jwks_url.clone(),
                    jwks_client(&settings)?,
                    settings.auth.jwks_ttl,
                    settings.auth.jwks_cooldown,
                );
                let cache = match &metrics {
                    Some(metrics) => cache.with_metrics(metrics.jwks_fetches()),
                    None => cache,
                };
                KeySource::Remote(Arc::new(cache))
            }
        };
        let mut verifier = Verifier::new(
            keys,
            &settings.auth.issuer,
            &settings.auth.audience,
            &settings.auth.algorithms,
        );
        if let Some(state) = revocations {
            verifier = verifier.with_revocations(state);
        }
        Ok(Self {
            settings: Arc::new(settings),
            db: pool,
            verifier: Arc::new(verifier),
            issuer,
            metrics,
        })
    }
}

fn jwks_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let url = &settings.auth.jwks_url;
    if url.scheme() == "http" {
        tracing::warn!(%url, "signing keys are fetched over plain http; use https outside loopback");
    }
    let mut builder = reqwest::Client::builder();
    if let Some(path) = &settings.auth.jwks_ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("AUTH_JWKS_CA_FILE: cannot read {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!("AUTH_JWKS_CA_FILE: {} is not a PEM bundle", path.display())
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .timeout(settings.auth.jwks_timeout)
        .connect_timeout(settings.auth.jwks_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("orgwall/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("AUTH_JWKS_URL: cannot build the HTTP client")
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = AppState::build(settings).await?;
        Self::build_with_state(state).await
    }

    pub async fn build_with_state(state: AppState) -> anyhow::Result<Self> {
        let settings = state.settings.clone();
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let address = format!("{}:{}", settings.host, settings.port);
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("PORT: cannot listen on {address}"))?;
        let port = listener.local_addr()?.port();
        // Bound before anything runs, so that a taken address stops start-up cleanly.
        let metrics_listener = match settings.metrics_addr {
            Some(address) if state.metrics.is_some() => Some(
                TcpListener::bind(address)
                    .with_context(|| format!("METRICS_ADDR: cannot listen on {address}"))?,
            ),
            _ => None,
        };

        let db = web::Data::new(state.db.clone());
        let verifier = web::Data::from(state.verifier.clone());
        let body_limit = BodyLimit(settings.body_limit);
        let issuer = state.issuer.clone().map(web::Data::from);
        let admin_token = settings.admin_token.clone().map(AdminToken);
        let trusted_proxies = settings.trusted_proxies.clone();
        let dpop = web::Data::new(
            DpopGuard::new(&settings.public_url, DEFAULT_REPLAY_CAPACITY)
                .map_err(anyhow::Error::msg)?,
        );
        let metrics = state.metrics.clone();
        let metrics_data = metrics.clone().map(web::Data::from);

        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(ErrorHandlers::new().default_handler(render_non_json_error))
                .wrap_fn(|req, srv| {
                    let id = req.extensions().get::<RequestId>().copied();
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        if let Some(id) = id
                            && let Ok(value) = HeaderValue::from_str(&id.to_string())
                        {
                            res.headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(res)
                    }
                })
                .wrap(TracingLogger::<OrgwallRootSpan>::new())
                // Outermost: sees every answer, and the time of the whole request.
                .wrap_fn({
                    let metrics = metrics.clone();
                    move |req, srv| crate::metrics::track(&metrics, req, srv)
                })
                .app_data(db.clone())
                .app_data(verifier.clone())
                .app_data(dpop.clone())
                .app_data(body_limit)
                .app_data(trusted_proxies.clone())
                .app_data(web::PayloadConfig::new(body_limit.0))
                .configure(|cfg| {
                    if let Some(metrics) = &metrics_data {
                        cfg.app_data(metrics.clone());
                    }
                })
                .configure(|cfg| routes::configure_app(cfg, issuer.as_ref(), admin_token.as_ref()))
        })
        .shutdown_timeout(settings.shutdown_grace.as_secs());
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        let metrics = match (metrics_listener, state.metrics) {
            (Some(listener), Some(metrics)) => {
                let metrics_port = listener.local_addr()?.port();
                Some((metrics_port, crate::metrics::server(metrics, listener)?))
            }
            _ => None,
        };
        Ok(Self {
            port,
            server,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, unless `METRICS_ADDR=off`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or `handle().stop()`), then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        // The metrics listener lives exactly as long as the service it describes.
        if let Some((handle, task)) = metrics {
            handle.stop(false).await;
            let _ = task.await;
        }
        result
    }
}
