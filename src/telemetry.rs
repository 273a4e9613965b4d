//! Logging: `tracing` events to stderr, pretty or JSON (the `LOG_FORMAT` setting), filtered by
//! `RUST_LOG` (default `info`). Every event inside a request carries its request id, and the
//! request span carries `org_code` and `client_id` once the token is verified. Tokens and
//! secrets are never recorded.

use std::fmt::{self as std_fmt, Write as _};

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt};

use crate::client_addr;

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

/// Characters of a request-derived value a log line keeps.
pub const LOGGED_VALUE_CHARS: usize = 128;

/// A value that came from a request (a client id, an audience, a path, a header), as a log line
/// may show it: at most [`LOGGED_VALUE_CHARS`] characters (then `…`), with control characters,
/// Unicode line and paragraph separators, bidirectional overrides and backslashes escaped
/// (`\n`, `\u{2028}`, `\\`). A client cannot end the line and write one of its own, nor flood
/// the log through one field.
pub struct Untrusted<'a>(pub &'a str);

impl std_fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std_fmt::Formatter<'_>) -> std_fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(LOGGED_VALUE_CHARS) {
            let unsafe_char = c.is_control()
                || c == '\\'
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if unsafe_char {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        if chars.next().is_some() {
            f.write_char('…')?;
        }
        Ok(())
    }
}

impl std_fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut std_fmt::Formatter<'_>) -> std_fmt::Result {
        std_fmt::Display::fmt(self, f)
    }
}

/// The request span: tracing-actix-web's fields (method, route, status, request id, ...)
/// plus the tenant and client, filled in by the auth extractor.
pub struct OrgwallRootSpan;

impl RootSpanBuilder for OrgwallRootSpan {
    /// tracing-actix-web's `root_span!` fields, except that `http.target` is the path alone:
    /// a query string may carry a secret (`?access_token=`, RFC 6750 §2.3, or a mistaken
    /// `?token=`), and secrets never reach a log line.
    ///
    /// Every field is computed inside the macro: tracing evaluates field values only once the
    /// span is known to be enabled, so with INFO off (`RUST_LOG=warn`) a request pays for no
    /// route lookup, connection info or string here.
    fn on_request_start(request: &ServiceRequest) -> Span {
        use tracing::field::Empty;
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method().as_str(),
            http.route = %route(request),
            http.flavor = %http_flavor(request.version()),
            http.scheme = %request.connection_info().scheme(),
            http.host = %Untrusted(request.connection_info().host()),
            // The peer address, or behind a trusted proxy the address it vouches for: otherwise
            // X-Forwarded-For is the client's word and would let it put another address in our
            // logs.
            http.client_ip = %client_addr::of_request(request.request())
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            http.user_agent = %Untrusted(
                request
                    .headers()
                    .get("user-agent")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
            ),
            http.target = %Target(request),
            http.status_code = Empty,
            otel.name = %format!("{} {}", request.method().as_str(), route(request)),
            otel.kind = "server",
            otel.status_code = Empty,
            request_id = request_id.map(tracing::field::display),
            exception.message = Empty,
            exception.details = Empty,
            org_code = Empty,
            client_id = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        // Nothing to record on a span that is off (tracing-actix-web would still format
        // every error twice for it).
        if span.is_disabled() {
            return;
        }
        if let Ok(response) = outcome {
            tracing::info!(parent: &span, status = response.status().as_u16(), "request finished");
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The route's pattern, `default` when none matched.
fn route(request: &ServiceRequest) -> String {
    request.match_pattern().unwrap_or_else(|| "default".into())
}

/// The path as a log line may show it, and only a mark where the query string was.
struct Target<'a>(&'a ServiceRequest);

impl std_fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut std_fmt::Formatter<'_>) -> std_fmt::Result {
        write!(f, "{}", Untrusted(self.0.path()))?;
        match self.0.query_string() {
            "" => Ok(()),
            _ => f.write_str("?<query omitted>"),
        }
    }
}

fn http_flavor(version: actix_web::http::Version) -> &'static str {
    use actix_web::http::Version;
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2.0",
        Version::HTTP_3 => "3.0",
        _ => "unknown",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_are_escaped_and_truncated_for_the_log() {
        assert_eq!(
            Untrusted("id\r\nINFO access token issued kid=FORGED").to_string(),
            "id\\r\\nINFO access token issued kid=FORGED"
        );
        assert_eq!(
            Untrusted("a\\n").to_string(),
            "a\\\\n",
            "a backslash is escaped too"
        );
        assert_eq!(
            Untrusted("x\u{1b}[31m\u{2028}\u{202e}").to_string(),
            "x\\u{1b}[31m\\u{2028}\\u{202e}"
        );
        assert_eq!(Untrusted("client_1 ü").to_string(), "client_1 ü");
        let long = Untrusted(&"é".repeat(60_000)).to_string();
        assert_eq!(long.chars().count(), LOGGED_VALUE_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(
            Untrusted(&"x".repeat(LOGGED_VALUE_CHARS)).to_string(),
            "x".repeat(LOGGED_VALUE_CHARS),
            "exactly the limit is kept whole"
        );
    }
}
