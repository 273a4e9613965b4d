//! The `FromRequest` extractor that applies the contract's check table, in its order.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use tracing_actix_web::RootSpan;

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
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None); // Basic, Digest, ...: no bearer token was offered
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Ok(None);
    }
    if token.contains(' ') {
        return Err(ApiError::InvalidToken); // "Bearer a b"
    }
    Ok(Some(token.to_owned()))
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
        let token = bearer_token(req);
        let path_org = req.match_info().get("org_code").map(str::to_owned);
        let span = req
            .extensions()
            .get::<RootSpan>()
            .map(|s| tracing::Span::clone(s));
        Box::pin(authorize::<S>(verifier, token, path_org, span))
    }
}

async fn authorize<S: Scope>(
    verifier: Arc<Verifier>,
    token: Result<Option<String>, ApiError>,
    path_org: Option<String>,
    span: Option<tracing::Span>,
) -> Result<Authorized<S>, ApiError> {
    let token = token?.ok_or(ApiError::NoToken)?;
    let verified = verifier.verify(&token).await.map_err(|reason| {
        tracing::debug!(?reason, "token rejected");
        match reason {
            Rejection::Revoked => ApiError::RevokedToken,
            _ => ApiError::InvalidToken,
        }
    })?;
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
