//! `GET /openapi.json`: the OpenAPI 3.1 document of every route this server registers, built
//! from the code with utoipa. Request and response bodies are the handlers' own types where
//! they have one (`#[derive(ToSchema)]` next to their serde derive); the few answers a handler
//! builds with `json!` are described by the shapes below, and the integration tests and the
//! schemathesis run in CI hold the server to them.
//!
//! The operations are declared here, on empty functions, rather than on the handlers; a test
//! compares the document with the routes actix actually registers (with and without the
//! admin API and the issuer), so a route added without its declaration fails it.
//!
//! Which parts the document has follows what the app registered: the issuer's routes when the
//! built-in issuer is on, the admin API and the console when `ADMIN_TOKEN` is also set.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse, ToSchema};

use crate::issuer::Issuer;
use crate::routes::admin::AdminToken;

/// What the app registered, and so what the document describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// The built-in issuer's discovery, JWKS and token endpoint.
    pub issuer: bool,
    /// The admin API and the console (only with the issuer).
    pub admin: bool,
}

/// The document for these parts.
pub fn document(parts: Parts) -> serde_json::Value {
    let mut doc = ResourceApiDoc::openapi();
    if parts.issuer {
        doc.merge(IssuerDoc::openapi());
        if parts.admin {
            doc.merge(AdminDoc::openapi());
        }
    }
    add_request_id_header(&mut doc);
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    add_dpop(&mut doc);
    drop_undeclared_schemes(&mut doc);
    doc
}

/// A requirement may name only a scheme this document declares: without the admin API,
/// introspection's operator alternative (the admin token) goes.
fn drop_undeclared_schemes(doc: &mut serde_json::Value) {
    let declared: Vec<String> = doc["components"]["securitySchemes"]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for op in paths
            .values_mut()
            .filter_map(|i| i.as_object_mut())
            .flat_map(|i| i.values_mut())
        {
            if let Some(security) = op.get_mut("security").and_then(|s| s.as_array_mut()) {
                security.retain(|r| {
                    r.as_object()
                        .is_some_and(|r| r.keys().all(|name| declared.contains(name)))
                });
            }
        }
    }
}

/// DPoP (RFC 9449): every operation that takes a bearer token also takes a DPoP-bound one, as
/// `Authorization: DPoP <token>` with a `DPoP` proof header. utoipa has no `DPoP` HTTP scheme,
/// so it is added to the serialized document.
fn add_dpop(doc: &mut serde_json::Value) {
    let mut uses = false;
    if let Some(paths) = doc["paths"].as_object_mut() {
        for op in paths
            .values_mut()
            .filter_map(|i| i.as_object_mut())
            .flat_map(|i| i.values_mut())
        {
            let Some(security) = op.get_mut("security").and_then(|s| s.as_array_mut()) else {
                continue;
            };
            let bound: Vec<serde_json::Value> = security
                .iter()
                .filter_map(|r| r.get("bearer_jwt"))
                .map(|scopes| serde_json::json!({"dpop": scopes}))
                .collect();
            uses |= !bound.is_empty();
            security.extend(bound);
        }
    }
    if uses {
        doc["components"]["securitySchemes"]["dpop"] = serde_json::json!({
            "type": "http",
            "scheme": "DPoP",
            "description": "A DPoP-bound access token (its `cnf.jkt` names a key) as \
                `Authorization: DPoP <token>`, with a `DPoP` header holding a proof signed by \
                that key for this request (`htm`, `htu`, `ath`). A bound token sent as Bearer, or \
                a plain token sent as DPoP, is 401.",
        });
    }
}

/// The serving side: the document of what this app registered, rendered once per variant.
pub async fn openapi_json(req: HttpRequest) -> HttpResponse {
    static RENDERED: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
    let parts = Parts {
        issuer: req.app_data::<web::Data<Issuer>>().is_some(),
        admin: req.app_data::<AdminToken>().is_some(),
    };
    let body = RENDERED[usize::from(parts.issuer) * 2 + usize::from(parts.admin)]
        .get_or_init(|| document(parts).to_string());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.clone())
}

// ---------------------------------------------------------------------------------------------
// Shapes of answers that handlers build with `json!`.

/// Every error of the resource API, the admin API and the probes.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The HTTP reason phrase of the status, e.g. `Unauthorized`.
    #[schema(examples("Unauthorized"))]
    pub error: String,
    /// What went wrong.
    #[schema(examples("No token provided"))]
    pub message: String,
}

/// An OAuth 2.0 error (RFC 6749 section 5.2, RFC 7009, RFC 9449).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub error_description: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    InvalidDpopProof,
    SlowDown,
    TemporarilyUnavailable,
    ServerError,
}

/// What `POST /admin/apps/{client_id}/token` answers on failure: the admin API's error for a
/// bad body or admin token, the token endpoint's OAuth error for the issuing itself.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AdminTokenError {
    Api(ErrorBody),
    OAuth(OAuthError),
}

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub status: StatusOk,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusOk {
    Ok,
}

/// A page of an organization's records, ordered by id.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordList {
    pub org_code: String,
    pub records: Vec<crate::tenant::records::Record>,
    /// How many records the organization has in all.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// One record of an organization.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordEnvelope {
    pub org_code: String,
    pub record: crate::tenant::records::Record,
}

/// The body of `POST /orgs/{org_code}/data`: both fields are required.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// Any JSON value (strings without NUL characters).
    #[schema(value_type = Value)]
    pub value: serde_json::Value,
    /// Ignored: the organization comes only from the verified token.
    #[schema(value_type = Option<Value>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_code: Option<serde_json::Value>,
}

/// An organization's users, ordered by id.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserList {
    pub org_code: String,
    pub users: Vec<crate::tenant::users::OrgUser>,
    #[schema(minimum = 0)]
    pub total: i64,
}

/// A page of an organization's audit log, ordered by id.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditList {
    pub org_code: String,
    pub events: Vec<crate::tenant::audit::AuditEvent>,
    /// How many events the organization has in all.
    #[schema(minimum = 0)]
    pub total: i64,
}

/// RFC 8414 authorization server metadata (the same document at both discovery paths).
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Every scope of every registered API.
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    /// For `private_key_jwt` assertions.
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    pub revocation_endpoint: Option<String>,
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    pub introspection_endpoint: Option<String>,
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// The issuer's public signing keys.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A public key (RFC 7517): RSA (`n`, `e`), EC P-256 or Ed25519 (`crv`, `x`, and `y` for EC).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Jwk {
    pub kid: String,
    #[schema(examples("RSA", "EC", "OKP"))]
    pub kty: String,
    #[schema(examples("RS256", "ES256", "EdDSA"))]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(examples("sig"))]
    pub use_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// A token request (RFC 6749 section 4.4), form-encoded. The client authenticates with HTTP
/// Basic or with `client_id` and `client_secret` here (`client_secret_post`), never both.
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    #[schema(examples("client_credentials"))]
    pub grant_type: String,
    /// `client_secret_post`; with HTTP Basic it may repeat the Basic client id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The API's audience (required, or `resource`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(examples("https://api.yourapp.com"))]
    pub audience: Option<String>,
    /// RFC 8707: the same as `audience`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Space-separated; without it, every scope the app is granted for the API.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(examples("read:data write:data"))]
    pub scope: Option<String>,
    /// `private_key_jwt` (RFC 7523): `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT signed by one of the app's registered keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
}

/// A revocation (RFC 7009) or introspection (RFC 7662) request, form-encoded. The client
/// authenticates as at the token endpoint; at introspection the operator may instead send
/// `Authorization: Bearer <ADMIN_TOKEN>`.
#[derive(Serialize, ToSchema)]
pub struct TokenStatusRequest {
    /// The access token asked about.
    pub token: String,
    /// Accepted and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT signed by one of the app's registered keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
}

/// An introspection answer (RFC 7662): `{"active": false}` alone, or the active token's claims.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` or `DPoP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// When the token is scoped to an organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_code: Option<String>,
    /// When the token is DPoP-bound: `{"jkt": "<key thumbprint>"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub cnf: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Reusable responses.

fn error_content() -> Content {
    Content::new(Some(Ref::from_schema_name("ErrorBody")))
}

fn oauth_content() -> Content {
    Content::new(Some(Ref::from_schema_name("OAuthError")))
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build()
}

fn json_error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content())
}

fn oauth_error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", oauth_content())
        .header(
            "Cache-Control",
            string_header("`no-store`: an OAuth answer is never cached"),
        )
}

macro_rules! response {
    ($(#[$doc:meta])* $ty:ident, $build:expr) => {
        $(#[$doc])*
        pub struct $ty;

        impl<'r> ToResponse<'r> for $ty {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($ty), $build.build().into())
            }
        }
    };
}

response!(
    /// 400 with the field and the reason.
    BadRequest,
    json_error("The request is invalid; `message` says which field and why")
);
response!(
    /// 401 from the resource API (RFC 6750).
    Unauthorized,
    json_error("No token, a token that is invalid, expired or revoked, or a bad DPoP proof").header(
        "WWW-Authenticate",
        string_header(
            "`Bearer realm=\"orgwall\"` without a token, `Bearer error=\"invalid_token\"` for a bad one; \
             `DPoP error=\"invalid_token\"` or `DPoP error=\"invalid_dpop_proof\"` with DPoP",
        ),
    )
);
response!(
    /// 403 from the resource API.
    Forbidden,
    json_error(
        "The token is not scoped to an organization, is for another organization, or lacks the scope"
    )
    .header(
        "WWW-Authenticate",
        string_header(
            "`Bearer error=\"insufficient_scope\", scope=\"...\"` when a scope is missing"
        ),
    )
);
response!(
    /// 401 from the admin API.
    AdminUnauthorized,
    json_error("The admin token is missing or wrong").header(
        "WWW-Authenticate",
        string_header("`Bearer realm=\"orgwall-admin\"`")
    )
);
response!(NotFound, json_error("Nothing with this name or id"));
response!(
    Conflict,
    json_error("Something with this name already exists")
);
response!(
    PayloadTooLarge,
    json_error("The body exceeds the body limit (BODY_LIMIT, 64 KiB by default)")
);
response!(
    UnsupportedMediaType,
    json_error("The body is not `application/json`")
);
response!(
    Unavailable,
    json_error("The database cannot be reached right now; retry later")
);
response!(
    OAuthBadRequest,
    oauth_error("A missing, repeated or invalid parameter, unknown audience, ungranted scope")
);
response!(
    OAuthUnauthorized,
    oauth_error("Client authentication failed (the same answer whatever the reason)").header(
        "WWW-Authenticate",
        string_header("`Basic realm=\"orgwall\"` when the client tried HTTP Basic"),
    )
);
response!(
    SlowDown,
    oauth_error("Too many failed authentications for this client id from this address").header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
            ))
            .description(Some("Seconds until the window passes"))
            .build(),
    )
);
response!(
    OAuthUnavailable,
    oauth_error("The database cannot be reached right now (`temporarily_unavailable`)")
);

/// A set of the shared responses above for an operation's `responses(...)`, each a status and
/// the response component it refers to (the same `$ref` as `(status = .., response = ..)`).
macro_rules! response_set {
    ($(#[$doc:meta])* $ty:ident { $($status:literal => $component:ident),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $ty;

        impl IntoResponses for $ty {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(($status, stringify!($component))),+]
                    .into_iter()
                    .map(|(status, name)| {
                        (status.to_string(), RefOr::Ref(Ref::from_response_name(name)))
                    })
                    .collect()
            }
        }
    };
}

response_set!(
    /// The resource API's authorization refusals, and the database being down.
    TenantAuth { "401" => Unauthorized, "403" => Forbidden, "503" => Unavailable }
);
response_set!(
    /// The admin API's refusal of a missing or wrong admin token, and the database being down.
    AdminAuth { "401" => AdminUnauthorized, "503" => Unavailable }
);
response_set!(
    /// A JSON body that is too large or not JSON.
    JsonBody { "413" => PayloadTooLarge, "415" => UnsupportedMediaType }
);
response_set!(
    /// The OAuth endpoints' errors (RFC 6749 section 5.2 bodies).
    OAuthErrors {
        "400" => OAuthBadRequest,
        "401" => OAuthUnauthorized,
        "429" => SlowDown,
        "503" => OAuthUnavailable,
    }
);

// ---------------------------------------------------------------------------------------------
// Security schemes.

struct ResourceSecurity;

impl Modify for ResourceSecurity {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_jwt",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from the trusted issuer (AUTH_ISSUER) for the audience \
                         AUTH_AUDIENCE, carrying `org_code` and the operation's scope in `scope` \
                         or `scp`.",
                    ))
                    .build(),
            ),
        );
    }
}

struct IssuerSecurity;

impl Modify for IssuerSecurity {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The app's client id and secret, each form-encoded (RFC 6749 section \
                         2.3.1). The alternative, `client_secret_post`, sends them as the \
                         `client_id` and `client_secret` form parameters instead.",
                    ))
                    .build(),
            ),
        );
    }
}

struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The ADMIN_TOKEN the server was started with."))
                    .build(),
            ),
        );
    }
}

/// Every response carries `x-request-id`.
fn add_request_id_header(doc: &mut utoipa::openapi::OpenApi) {
    let header = || string_header("The request's id, as in the server's log");
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("x-request-id".into(), RefOr::T(header()));
                }
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .insert("x-request-id".into(), RefOr::T(header()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The documents.

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orgwall",
        description = "Organization-scoped M2M authentication: a resource API whose tenant \
            isolation is enforced by the access token and by PostgreSQL row-level security, and \
            an org-scoped OAuth 2.0 client-credentials issuer.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        paths::health,
        paths::ready,
        paths::openapi_document,
        paths::list_records,
        paths::create_record,
        paths::get_record,
        paths::update_record,
        paths::delete_record,
        paths::list_users,
        paths::list_audit_events,
    ),
    components(
        schemas(ErrorBody, crate::domain::OrgCode),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            UnsupportedMediaType,
            Unavailable
        )
    ),
    modifiers(&ResourceSecurity),
    tags(
        (name = "probes", description = "Liveness, readiness and this document"),
        (name = "records", description = "An organization's records"),
        (name = "users", description = "An organization's users"),
        (name = "audit", description = "An organization's audit log"),
    )
)]
struct ResourceApiDoc;

#[derive(OpenApi)]
#[openapi(
    paths(
        paths::openid_configuration,
        paths::oauth_authorization_server,
        paths::jwks_json,
        paths::jwks,
        paths::token,
        paths::revoke,
        paths::introspect,
    ),
    components(
        schemas(OAuthError),
        responses(OAuthBadRequest, OAuthUnauthorized, SlowDown, OAuthUnavailable)
    ),
    modifiers(&IssuerSecurity),
    tags((name = "issuer", description = "The built-in OAuth 2.0 client-credentials issuer"))
)]
struct IssuerDoc;

#[derive(OpenApi)]
#[openapi(
    paths(
        paths::list_apis,
        paths::create_api,
        paths::add_scope,
        paths::list_orgs,
        paths::create_org,
        paths::add_user,
        paths::list_apps,
        paths::create_app,
        paths::delete_app,
        paths::authorize_app,
        paths::set_app_keys,
        paths::rotate_secret,
        paths::disable_app,
        paths::enable_app,
        paths::app_token,
        paths::revoke_app_tokens,
        paths::disable_org,
        paths::enable_org,
        paths::revoke_token,
        paths::list_keys,
        paths::rotate_keys,
        paths::revoke_key,
        paths::console_page,
        paths::console_asset,
    ),
    components(responses(AdminUnauthorized, Conflict)),
    modifiers(&AdminSecurity),
    tags(
        (name = "admin", description = "The admin API: the catalogue of APIs, organizations, apps and keys"),
        (name = "console", description = "The web console: a page on the admin API, and its assets"),
    )
)]
struct AdminDoc;

/// The operations: one empty function each, carrying the declaration.
#[allow(dead_code)]
mod paths {
    use super::*;
    use crate::domain::OrgCode;
    use crate::issuer::catalogue::{
        ApiOut, AppDeleted, AppEnabled, AppOut, GrantOut, NewApp, NewSecret, NewUser, OrgOut,
    };
    use crate::issuer::keybound::{KeysOut, NewKeyApp};
    use crate::issuer::keys::{KeyList, RotatedKeys};
    use crate::issuer::revocation::{AppTokensRevoked, KeyRevoked, OrgSwitched, TokenRevoked};
    use crate::issuer::token::TokenResponse;
    use crate::routes::admin::{
        AddScope, AddUser, Authorize, CreateApi, CreateApp, CreateOrg, RevokeTokenIn, Rotate,
        TokenIn,
    };
    use crate::routes::records::RecordInput;

    /// What app creation answers: an app with a secret, or a key-bound app. One media type
    /// carries one schema, so the two shapes are one `oneOf`.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    enum CreatedApp {
        Secret(NewApp),
        KeyBound(NewKeyApp),
    }

    /// Liveness
    ///
    /// Answers without touching the database.
    #[utoipa::path(get, path = "/health", tag = "probes",
        responses((status = 200, description = "The process is up", body = Status)))]
    fn health() {}

    /// Readiness
    #[utoipa::path(get, path = "/ready", tag = "probes", responses(
        (status = 200, description = "The database answers", body = Status),
        (status = 503, response = Unavailable),
    ))]
    fn ready() {}

    /// This document
    #[utoipa::path(get, path = "/openapi.json", tag = "probes", responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server's routes",
            content_type = "application/json", body = Object),
    ))]
    fn openapi_document() {}

    /// List the organization's records
    ///
    /// Ordered by id; `limit` and `after` page through them. Needs scope `read:data`.
    #[utoipa::path(get, path = "/orgs/{org_code}/data", tag = "records",
        params(
            ("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`"),
            ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000,
                description = "At most this many records (default 100)"),
            ("after" = Option<i64>, Query, minimum = 0,
                description = "Only records with a greater id"),
        ),
        security(("bearer_jwt" = ["read:data"])),
        responses(
            (status = 200, description = "A page of records", body = RecordList),
            (status = 400, response = BadRequest),
            TenantAuth,
        ))]
    fn list_records() {}

    /// Create a record
    ///
    /// Needs scope `write:data`.
    #[utoipa::path(post, path = "/orgs/{org_code}/data", tag = "records",
        params(("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`")),
        request_body = NewRecord,
        security(("bearer_jwt" = ["write:data"])),
        responses(
            (status = 201, description = "Created", body = RecordEnvelope, headers(
                ("Location" = String, description = "`/orgs/{org_code}/data/{id}` of the new record"),
            )),
            (status = 400, response = BadRequest),
            TenantAuth,
            JsonBody,
        ))]
    fn create_record() {}

    /// Read a record
    ///
    /// Needs scope `read:data`.
    #[utoipa::path(get, path = "/orgs/{org_code}/data/{id}", tag = "records",
        params(
            ("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`"),
            ("id" = i64, Path, minimum = 1, description = "The record's id within its organization"),
        ),
        security(("bearer_jwt" = ["read:data"])),
        responses(
            (status = 200, description = "The record", body = RecordEnvelope),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            TenantAuth,
        ))]
    fn get_record() {}

    /// Change a record
    ///
    /// Give `name` and/or `value`. Needs scope `write:data`.
    #[utoipa::path(patch, path = "/orgs/{org_code}/data/{id}", tag = "records",
        params(
            ("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`"),
            ("id" = i64, Path, minimum = 1, description = "The record's id within its organization"),
        ),
        request_body = RecordInput,
        security(("bearer_jwt" = ["write:data"])),
        responses(
            (status = 200, description = "The changed record", body = RecordEnvelope),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            TenantAuth,
            JsonBody,
        ))]
    fn update_record() {}

    /// Delete a record
    ///
    /// Needs scope `delete:data`.
    #[utoipa::path(delete, path = "/orgs/{org_code}/data/{id}", tag = "records",
        params(
            ("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`"),
            ("id" = i64, Path, minimum = 1, description = "The record's id within its organization"),
        ),
        security(("bearer_jwt" = ["delete:data"])),
        responses(
            (status = 204, description = "Deleted"),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            TenantAuth,
        ))]
    fn delete_record() {}

    /// List the organization's users
    ///
    /// Needs scope `read:users`.
    #[utoipa::path(get, path = "/orgs/{org_code}/users", tag = "users",
        params(("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`")),
        security(("bearer_jwt" = ["read:users"])),
        responses(
            (status = 200, description = "The users", body = UserList),
            TenantAuth,
        ))]
    fn list_users() {}

    /// List the organization's audit events
    ///
    /// Record writes through the API and the catalogue's actions on the organization's apps,
    /// ordered by id; `limit` and `after` page through them. Needs scope `read:audit`.
    #[utoipa::path(get, path = "/orgs/{org_code}/audit", tag = "audit",
        params(
            ("org_code" = OrgCode, Path, description = "Must equal the token's `org_code`"),
            ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000,
                description = "At most this many events (default 100)"),
            ("after" = Option<i64>, Query, minimum = 0,
                description = "Only events with a greater id"),
        ),
        security(("bearer_jwt" = ["read:audit"])),
        responses(
            (status = 200, description = "A page of events", body = AuditList),
            (status = 400, response = BadRequest),
            TenantAuth,
        ))]
    fn list_audit_events() {}

    /// OpenID Connect discovery
    ///
    /// The same RFC 8414 metadata as `/.well-known/oauth-authorization-server`.
    #[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "issuer", responses(
        (status = 200, description = "Server metadata", body = ServerMetadata, headers(
            ("Cache-Control" = String, description = "`public, max-age=300`"),
        )),
        (status = 503, response = Unavailable),
    ))]
    fn openid_configuration() {}

    /// Authorization server metadata (RFC 8414)
    #[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "issuer", responses(
        (status = 200, description = "Server metadata", body = ServerMetadata, headers(
            ("Cache-Control" = String, description = "`public, max-age=300`"),
        )),
        (status = 503, response = Unavailable),
    ))]
    fn oauth_authorization_server() {}

    /// The issuer's public keys (JWKS)
    #[utoipa::path(get, path = "/.well-known/jwks.json", tag = "issuer", responses(
        (status = 200, description = "Public keys only", body = Jwks, headers(
            ("Cache-Control" = String, description = "`public, max-age=300`"),
        )),
    ))]
    fn jwks_json() {}

    /// The issuer's public keys (Kinde's documented path)
    #[utoipa::path(get, path = "/.well-known/jwks", tag = "issuer", responses(
        (status = 200, description = "Public keys only", body = Jwks, headers(
            ("Cache-Control" = String, description = "`public, max-age=300`"),
        )),
    ))]
    fn jwks() {}

    /// Token endpoint (client credentials)
    ///
    /// OAuth 2.0 client-credentials grant (RFC 6749 section 4.4). The client authenticates
    /// with HTTP Basic (`client_secret_basic`), or in the form (the empty security
    /// requirement): `client_id` and `client_secret` (`client_secret_post`) or a client
    /// assertion (`private_key_jwt`); never two at once. With a valid `DPoP` proof the token is
    /// bound to the proof's key and `token_type` is `DPoP`.
    #[utoipa::path(post, path = "/oauth2/token", tag = "issuer",
        params(("DPoP" = Option<String>, Header,
            description = "A DPoP proof (RFC 9449) for this request: the token is bound to its key")),
        request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
        security(("client_secret_basic" = []), ()),
        responses(
            (status = 200, description = "An access token", body = TokenResponse, headers(
                ("Cache-Control" = String, description = "`no-store`"),
                ("Pragma" = String, description = "`no-cache`"),
            )),
            OAuthErrors,
        ))]
    fn token() {}

    /// Revoke a token (RFC 7009)
    ///
    /// The client's own valid token is revoked; another client's valid token is
    /// `unauthorized_client` and stays valid; anything else changes nothing.
    #[utoipa::path(post, path = "/oauth2/revoke", tag = "issuer",
        request_body(content = TokenStatusRequest, content_type = "application/x-www-form-urlencoded"),
        security(("client_secret_basic" = []), ()),
        responses(
            (status = 200, description = "Revoked, or nothing to revoke (empty body)", headers(
                ("Cache-Control" = String, description = "`no-store`"),
            )),
            OAuthErrors,
        ))]
    fn revoke() {}

    /// Introspect a token (RFC 7662)
    ///
    /// `{"active": false}` for a token that is not accepted now or that the caller may not
    /// see; otherwise `active: true` with the token's claims and `token_type`. The caller is an
    /// app (authenticated as at the token endpoint) or the operator (the admin token).
    #[utoipa::path(post, path = "/oauth2/introspect", tag = "issuer",
        request_body(content = TokenStatusRequest, content_type = "application/x-www-form-urlencoded"),
        security(("client_secret_basic" = []), ("admin_token" = []), ()),
        responses(
            (status = 200, description = "Whether the token is active, and its claims when it is",
                body = Introspection, headers(
                    ("Cache-Control" = String, description = "`no-store`"),
                )),
            OAuthErrors,
        ))]
    fn introspect() {}

    /// List APIs
    #[utoipa::path(get, path = "/admin/apis", tag = "admin",
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Every registered API", body = Vec<ApiOut>),
            AdminAuth,
        ))]
    fn list_apis() {}

    /// Register an API
    #[utoipa::path(post, path = "/admin/apis", tag = "admin",
        request_body = CreateApi,
        security(("admin_token" = [])),
        responses(
            (status = 201, description = "The new API", body = ApiOut),
            (status = 400, response = BadRequest),
            (status = 409, response = Conflict),
            AdminAuth,
            JsonBody,
        ))]
    fn create_api() {}

    /// Add a scope to an API
    #[utoipa::path(post, path = "/admin/apis/scopes", tag = "admin",
        request_body = AddScope,
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "The API with its scopes", body = ApiOut),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            (status = 409, response = Conflict),
            AdminAuth,
            JsonBody,
        ))]
    fn add_scope() {}

    /// List organizations
    #[utoipa::path(get, path = "/admin/orgs", tag = "admin",
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Every organization", body = Vec<OrgOut>),
            AdminAuth,
        ))]
    fn list_orgs() {}

    /// Create an organization
    #[utoipa::path(post, path = "/admin/orgs", tag = "admin",
        request_body = CreateOrg,
        security(("admin_token" = [])),
        responses(
            (status = 201, description = "The new organization", body = OrgOut),
            (status = 400, response = BadRequest),
            (status = 409, response = Conflict),
            AdminAuth,
            JsonBody,
        ))]
    fn create_org() {}

    /// Add a user to an organization
    #[utoipa::path(post, path = "/admin/orgs/{org_code}/users", tag = "admin",
        params(("org_code" = OrgCode, Path)),
        request_body = AddUser,
        security(("admin_token" = [])),
        responses(
            (status = 201, description = "The new user", body = NewUser),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            (status = 409, response = Conflict),
            AdminAuth,
            JsonBody,
        ))]
    fn add_user() {}

    /// List apps
    #[utoipa::path(get, path = "/admin/apps", tag = "admin",
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Every app with its grants", body = Vec<AppOut>),
            AdminAuth,
        ))]
    fn list_apps() {}

    /// Create an app
    ///
    /// The secret is shown this once; it is stored only as a hash. With `jwks` the app has no
    /// secret: it authenticates with a client assertion signed by one of those keys
    /// (`private_key_jwt`), and the answer names its keys instead.
    #[utoipa::path(post, path = "/admin/apps", tag = "admin",
        request_body = CreateApp,
        security(("admin_token" = [])),
        responses(
            (status = 201, description = "The new app and its secret, or the new key-bound app",
                body = CreatedApp, headers(
                ("Cache-Control" = String, description = "`no-store` (an app with a secret)"),
            )),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            (status = 409, response = Conflict),
            AdminAuth,
            JsonBody,
        ))]
    fn create_app() {}

    /// Delete an app
    #[utoipa::path(delete, path = "/admin/apps/{client_id}", tag = "admin",
        params(("client_id" = String, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Deleted", body = AppDeleted),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn delete_app() {}

    /// Authorize an app for an API
    ///
    /// Replaces the app's previous grant for that API.
    #[utoipa::path(post, path = "/admin/apps/{client_id}/authorize", tag = "admin",
        params(("client_id" = String, Path)),
        request_body = Authorize,
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "The grant", body = GrantOut),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
            JsonBody,
        ))]
    fn authorize_app() {}

    /// Replace an app's public keys
    ///
    /// A JWKS (`{"keys":[...]}`) or one JWK, public members only; from then on the app
    /// authenticates only with these keys. Rotate by registering the old and the new key, then
    /// the new one alone.
    #[utoipa::path(put, path = "/admin/apps/{client_id}/jwks", tag = "admin",
        params(("client_id" = String, Path)),
        request_body(content = Object, content_type = "application/json"),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "The kids now registered", body = KeysOut),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
            JsonBody,
        ))]
    fn set_app_keys() {}

    /// Rotate an app's secret
    ///
    /// The body is optional.
    #[utoipa::path(post, path = "/admin/apps/{client_id}/rotate-secret", tag = "admin",
        params(("client_id" = String, Path)),
        request_body(content = Option<Rotate>, content_type = "application/json"),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "The new secret, shown once", body = NewSecret, headers(
                ("Cache-Control" = String, description = "`no-store`"),
            )),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
            JsonBody,
        ))]
    fn rotate_secret() {}

    /// Disable an app
    #[utoipa::path(post, path = "/admin/apps/{client_id}/disable", tag = "admin",
        params(("client_id" = String, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Disabled", body = AppEnabled),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn disable_app() {}

    /// Enable an app
    #[utoipa::path(post, path = "/admin/apps/{client_id}/enable", tag = "admin",
        params(("client_id" = String, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Enabled", body = AppEnabled),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn enable_app() {}

    /// Get a token for an app without its secret
    ///
    /// Through the same issuing code as the token endpoint; its errors are OAuth errors.
    #[utoipa::path(post, path = "/admin/apps/{client_id}/token", tag = "admin",
        params(("client_id" = String, Path)),
        request_body = TokenIn,
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "An access token", body = TokenResponse, headers(
                ("Cache-Control" = String, description = "`no-store`"),
            )),
            (status = 400, description = "A bad body (`{error, message}`), or an unknown audience, an API the app is not authorized for or an ungranted scope (an OAuth error)",
                body = AdminTokenError),
            (status = 401, description = "The admin token is missing or wrong (`{error, message}`), or the app is unknown or disabled (`invalid_client`)",
                body = AdminTokenError),
            JsonBody,
            (status = 503, description = "The database cannot be reached right now",
                body = AdminTokenError),
        ))]
    fn app_token() {}

    /// Revoke every token issued to an app so far
    #[utoipa::path(post, path = "/admin/apps/{client_id}/revoke-tokens", tag = "admin",
        params(("client_id" = String, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Revoked", body = AppTokensRevoked),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn revoke_app_tokens() {}

    /// Switch an organization off
    ///
    /// Its apps get no tokens, every token carrying its code is refused, and those issued so
    /// far stay revoked after it is switched back on.
    #[utoipa::path(post, path = "/admin/orgs/{org_code}/disable", tag = "admin",
        params(("org_code" = OrgCode, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Disabled", body = OrgSwitched),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn disable_org() {}

    /// Switch an organization back on
    #[utoipa::path(post, path = "/admin/orgs/{org_code}/enable", tag = "admin",
        params(("org_code" = OrgCode, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Enabled", body = OrgSwitched),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn enable_org() {}

    /// Revoke one token
    ///
    /// By its `jti`, until its `exp`; a token this orgwall did not sign, or an expired one,
    /// is a 400 saying why.
    #[utoipa::path(post, path = "/admin/tokens/revoke", tag = "admin",
        request_body = RevokeTokenIn,
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Revoked", body = TokenRevoked),
            (status = 400, response = BadRequest),
            AdminAuth,
            JsonBody,
        ))]
    fn revoke_token() {}

    /// List signing keys
    #[utoipa::path(get, path = "/admin/keys", tag = "admin",
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Every signing key, newest first", body = KeyList),
            AdminAuth,
        ))]
    fn list_keys() {}

    /// Rotate the signing keys
    #[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin",
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "The new key ids", body = RotatedKeys),
            AdminAuth,
        ))]
    fn rotate_keys() {}

    /// Revoke a signing key
    ///
    /// It leaves the JWKS at once and every instance refuses its tokens within 5 seconds; a
    /// key that was signing is first replaced by a new one.
    #[utoipa::path(post, path = "/admin/keys/{kid}/revoke", tag = "admin",
        params(("kid" = String, Path)),
        security(("admin_token" = [])),
        responses(
            (status = 200, description = "Revoked", body = KeyRevoked),
            (status = 400, response = BadRequest),
            (status = 404, response = NotFound),
            AdminAuth,
        ))]
    fn revoke_key() {}

    /// The console's page
    ///
    /// A page built only on the admin API; the admin token is typed in, not sent with this
    /// request.
    #[utoipa::path(get, path = "/console", tag = "console", responses(
        (status = 200, description = "The page", content_type = "text/html", body = String,
            headers(
                ("Content-Security-Policy" = String),
                ("X-Frame-Options" = String, description = "`DENY`"),
                ("Referrer-Policy" = String, description = "`no-referrer`"),
            )),
    ))]
    fn console_page() {}

    /// One of the console's scripts, styles or icons
    #[utoipa::path(get, path = "/console/{asset}", tag = "console",
        params(("asset" = String, Path, description = "e.g. `console.js`")),
        responses(
            (status = 200, description = "The asset", content(
                ("text/javascript"), ("text/css"), ("image/svg+xml"),
            )),
            (status = 404, response = NotFound),
        ))]
    fn console_asset() {}
}
