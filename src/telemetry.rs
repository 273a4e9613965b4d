//! Logging: `tracing` events to stderr, pretty or JSON (`LOG_FORMAT=json`), filtered by
//! `RUST_LOG` (default `info`). Every event inside a request carries its request id, and the
//! request span carries `org_code` and `client_id` once the token is verified. Tokens and
//! secrets are never recorded.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber; later calls are no-ops (tests call it once per process).
pub fn init<W>(json: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The request span: tracing-actix-web's fields (method, route, status, request id, ...)
/// plus the tenant and client, filled in by the auth extractor.
pub struct OrgwallRootSpan;

impl RootSpanBuilder for OrgwallRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        tracing_actix_web::root_span!(
            request,
            org_code = tracing::field::Empty,
            client_id = tracing::field::Empty
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        if let Ok(response) = outcome {
            tracing::info!(parent: &span, status = response.status().as_u16(), "request finished");
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Runs blocking work (key generation, hashing) off the async workers, inside the caller's span.
pub fn spawn_blocking_with_tracing<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
