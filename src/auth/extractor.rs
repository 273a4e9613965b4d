//! The `FromRequest` extractor that applies the contract's check table, in its order.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use tracing_actix_web::RootSpan;

use super::dpop::{self, DpopError, DpopGuard};
use super::jose::now_secs;
use super::scope::Scope;
use super::verifier::{Rejection, Verifier};
use crate::domain::OrgCode;
use crate::error::ApiError;

/// Who is calling, for which organization, with which scopes; only a verified token (or an
/// operator command naming the org) produces one, and only an `OrgContext` opens a tenant
/// transaction.
#[derive(Clone, Debug)]
pub struct OrgContext {
    org_code: OrgCode,
    /// The token's client; `None` for an operator.
    client_id: Option<String>,
    scopes: Vec<String>,
}

impl OrgContext {
    /// For operator commands (CLI, admin API) that act inside one organization.
    pub fn for_operator(org_code: OrgCode) -> Self {
        Self {
            org_code,
            client_id: None,
            scopes: Vec::new(),
        }
    }

    pub fn org_code(&self) -> &OrgCode {
        &self.org_code
    }

    /// The token's client id; `None` for an operator command.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// A request authorized for scope `S` in the organization named by the path's `{org_code}`.
///
/// ```ignore
/// async fn list(auth: Authorized<ReadData>, ...) -> Result<..., ApiError>
/// ```
pub struct Authorized<S: Scope> {
    ctx: OrgContext,
    _scope: PhantomData<S>,
}

impl<S: Scope> Deref for Authorized<S> {
    type Target = OrgContext;
    fn deref(&self) -> &OrgContext {
        &self.ctx
    }
}

/// The bearer token of the request (RFC 6750 §2.1): `Ok(None)` when there is none to speak
/// of, an error when the header is ambiguous (two of them, or two tokens). The one parser of
/// `Authorization: Bearer` for the resource and admin APIs.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    Ok(presented_token(req)?
        .and_then(|(scheme, token)| (scheme == Scheme::Bearer).then_some(token)))
}

/// How the request presents its access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Bearer,
    /// `Authorization: DPoP`, with a proof in the `DPoP` header (RFC 9449 §7.1).
    Dpop,
}

/// The access token of the request and its scheme: `Ok(None)` when there is none to speak of.
fn presented_token(req: &HttpRequest) -> Result<Option<(Scheme, String)>, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidToken); // two Authorization headers: ambiguous
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let Some((scheme, rest)) = value.split_once(' ').or(Some((value, ""))) else {
        return Ok(None);
    };
    let (scheme, invalid) = if scheme.eq_ignore_ascii_case("bearer") {
        (Scheme::Bearer, ApiError::InvalidToken)
    } else if scheme.eq_ignore_ascii_case("dpop") {
        (Scheme::Dpop, ApiError::InvalidDpopToken)
    } else {
        return Ok(None); // Basic, Digest, ...: no access token was offered
    };
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Ok(None);
    }
    if token.contains(' ') {
        return Err(invalid); // "Bearer a b"
    }
    Ok(Some((scheme, token.to_owned())))
}

/// What a DPoP-bound token is checked against, read from the request up front.
struct DpopRequest {
    guard: Arc<DpopGuard>,
    proof: Result<String, DpopError>,
    method: String,
    path: String,
}

impl DpopRequest {
    fn of(req: &HttpRequest) -> Self {
        let proof = dpop::single_header(req.headers().get_all("dpop").map(|v| v.as_bytes()));
        Self {
            guard: req
                .app_data::<web::Data<DpopGuard>>()
                .expect("BUG: DpopGuard not registered")
                .clone()
                .into_inner(),
            proof: proof.map(str::to_owned),
            method: req.method().as_str().to_owned(),
            path: req.path().to_owned(),
        }
    }

    /// RFC 9449 §7.1: a valid proof for this request and this token, made with the key the
    /// token is bound to, not seen before on this instance.
    fn check(&self, token: &str, jkt: &str) -> Result<(), ApiError> {
        let refuse = |reason: DpopError| {
            tracing::debug!(?reason, "DPoP proof refused");
            ApiError::InvalidDpopProof
        };
        let proof = self.proof.as_deref().map_err(|e| refuse(e.clone()))?;
        let now = now_secs();
        let expected = dpop::Expected {
            method: &self.method,
            url: &self.guard.url,
            path: &self.path,
            access_token: Some(token),
            now,
        };
        let verified = dpop::verify_proof(proof, &expected).map_err(refuse)?;
        if verified.jkt != jkt {
            return Err(refuse(DpopError::KeyMismatch));
        }
        self.guard
            .replay
            .check_and_remember(&verified, now)
            .map_err(refuse)
    }
}

impl<S: Scope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .expect("BUG: Verifier not registered")
            .clone()
            .into_inner();
        let token = presented_token(req);
        // What a proof is checked against, read only for a request that presents one.
        let dpop = matches!(token, Ok(Some((Scheme::Dpop, _)))).then(|| DpopRequest::of(req));
        let path_org = req.match_info().get("org_code").map(str::to_owned);
        let span = req
            .extensions()
            .get::<RootSpan>()
            .map(|s| tracing::Span::clone(s));
        Box::pin(authorize::<S>(verifier, token, dpop, path_org, span))
    }
}

async fn authorize<S: Scope>(
    verifier: Arc<Verifier>,
    token: Result<Option<(Scheme, String)>, ApiError>,
    dpop: Option<DpopRequest>,
    path_org: Option<String>,
    span: Option<tracing::Span>,
) -> Result<Authorized<S>, ApiError> {
    let (scheme, token) = token?.ok_or(ApiError::NoToken)?;
    let verified = verifier.verify(&token).await.map_err(|reason| {
        tracing::debug!(?reason, "token rejected");
        match (reason, scheme) {
            (Rejection::Revoked, _) => ApiError::RevokedToken,
            (Rejection::RevocationsUnknown, _) => ApiError::Unavailable(anyhow::anyhow!(
                "no recent read of the revocations: tokens cannot be checked against them"
            )),
            (_, Scheme::Bearer) => ApiError::InvalidToken,
            (_, Scheme::Dpop) => ApiError::InvalidDpopToken,
        }
    })?;
    // A bound token only with a proof of its key; a bearer token never as DPoP (RFC 9449 §7).
    match (scheme, verified.jkt.as_deref()) {
        (Scheme::Bearer, None) => {}
        (Scheme::Bearer, Some(_)) | (Scheme::Dpop, None) => {
            return Err(ApiError::InvalidDpopToken);
        }
        (Scheme::Dpop, Some(jkt)) => dpop
            .as_ref()
            .ok_or(ApiError::InvalidDpopProof)?
            .check(&token, jkt)?,
    }
    if let Some(span) = &span {
        span.record("client_id", verified.client_id.as_str());
        if let Some(org) = &verified.org_code {
            span.record("org_code", org.as_str());
        }
    }
    let org = verified.org_code.ok_or(ApiError::NotOrgScoped)?;
    if path_org.is_some_and(|p| p != org) {
        return Err(ApiError::WrongOrg);
    }
    if !verified.scopes.iter().any(|s| s == S::NAME) {
        return Err(ApiError::MissingScope(S::NAME));
    }
    // A signed org_code outside our alphabet can never name a path we serve.
    let org_code = OrgCode::parse(&org).map_err(|_| ApiError::WrongOrg)?;
    Ok(Authorized {
        ctx: OrgContext {
            org_code,
            client_id: Some(verified.client_id),
            scopes: verified.scopes,
        },
        _scope: PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn token_of(value: Option<&str>) -> Result<Option<String>, ApiError> {
        let mut req = TestRequest::default();
        if let Some(v) = value {
            req = req.insert_header((header::AUTHORIZATION, v));
        }
        bearer_token(&req.to_http_request())
    }

    fn presented(value: Option<&str>) -> Result<Option<(Scheme, String)>, ApiError> {
        let mut req = TestRequest::default();
        if let Some(v) = value {
            req = req.insert_header((header::AUTHORIZATION, v));
        }
        presented_token(&req.to_http_request())
    }

    #[test]
    fn dpop_scheme_variants() {
        assert!(
            matches!(presented(Some("DPoP a.b.c")), Ok(Some((Scheme::Dpop, t))) if t == "a.b.c")
        );
        assert!(matches!(
            presented(Some("dpop a.b.c")),
            Ok(Some((Scheme::Dpop, _)))
        ));
        assert!(matches!(
            presented(Some("Bearer a.b.c")),
            Ok(Some((Scheme::Bearer, _)))
        ));
        assert!(matches!(presented(Some("DPoP ")), Ok(None)));
        assert!(matches!(
            presented(Some("DPoP a.b.c d")),
            Err(ApiError::InvalidDpopToken)
        ));
        assert!(
            matches!(token_of(Some("DPoP a.b.c")), Ok(None)),
            "not a bearer token"
        );
    }

    #[test]
    fn bearer_header_variants() {
        assert!(matches!(token_of(None), Ok(None)));
        assert!(matches!(token_of(Some("Bearer")), Ok(None)));
        assert!(matches!(token_of(Some("Bearer ")), Ok(None)));
        assert!(matches!(token_of(Some("Basic dXNlcjpwYXNz")), Ok(None)));
        assert!(matches!(token_of(Some("Bearer a.b.c")), Ok(Some(t)) if t == "a.b.c"));
        assert!(matches!(token_of(Some("bearer a.b.c")), Ok(Some(t)) if t == "a.b.c"));
        assert!(matches!(
            token_of(Some("Bearer a.b.c d.e.f")),
            Err(ApiError::InvalidToken)
        ));
    }
}
