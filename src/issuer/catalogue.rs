//! The issuer's catalogue: APIs and their scopes, organizations, apps, their secrets and
//! grants. One function per command, shared by the CLI and the admin HTTP API. Inputs arrive
//! as domain types parsed at the edge; answers are typed rows; errors are [`CatalogueError`],
//! which the HTTP side turns into its error in one `From`.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{keys, revocation, secrets};
use crate::auth::OrgContext;
use crate::auth::SigningAlgorithm;
use crate::auth::claims::split_scopes;
use crate::config::parse_duration;
use crate::db::Tx;
use crate::db::on_pool;
use crate::domain::{ApiName, AppName, Audience, Email, OrgCode, OrgName, ScopeDef, UserName};
use crate::tenant::TenantTx;
use crate::tenant::audit::{self, AuditAction};
use crate::tenant::users::{OrgUser, insert_user};

/// Why a catalogue operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The input breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A signing key could not be made or stored.
    #[error("signing keys: {0:#}")]
    Keys(anyhow::Error),
}

type Result<T, E = CatalogueError> = std::result::Result<T, E>;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScopeOut {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiOut {
    pub audience: String,
    pub name: String,
    /// Seconds; `null` means the service's TOKEN_LIFETIME.
    pub token_lifetime: Option<i32>,
    /// RS256 (default), ES256 or EdDSA.
    pub signing_alg: String,
    pub scopes: Vec<ScopeOut>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgOut {
    pub code: String,
    pub name: String,
}

/// Shown once: the secret is stored only as a hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewApp {
    pub client_id: String,
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub client_secret: SecretString,
    pub name: String,
    pub org_code: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NewSecret {
    pub client_id: String,
    #[serde(serialize_with = "expose")]
    #[schema(value_type = String)]
    pub client_secret: SecretString,
}

fn expose<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose_secret())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GrantOut {
    pub audience: String,
    pub scopes: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppOut {
    pub client_id: String,
    pub name: String,
    pub org_code: Option<String>,
    pub enabled: bool,
    pub grants: Vec<GrantOut>,
}

/// An app switched on or off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppEnabled {
    pub client_id: String,
    pub enabled: bool,
}

/// An app deleted with its secrets and grants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppDeleted {
    pub client_id: String,
    pub deleted: bool,
}

/// A user added to an organization.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewUser {
    pub org_code: OrgCode,
    pub user: OrgUser,
}

/// An API's access-token lifetime: 60 s to 24 h. Written like `1h` or `90s` on the command
/// line, as whole seconds in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifetime(Duration);

impl TokenLifetime {
    pub const MIN: Duration = Duration::from_secs(60);
    pub const MAX: Duration = Duration::from_secs(86_400);

    pub fn new(d: Duration) -> Result<Self, String> {
        if (Self::MIN.as_secs()..=Self::MAX.as_secs()).contains(&d.as_secs()) {
            Ok(Self(d))
        } else {
            Err("token lifetime must be between 60s and 24h".into())
        }
    }

    pub fn as_secs(self) -> u32 {
        self.0.as_secs() as u32
    }
}

impl FromStr for TokenLifetime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(parse_duration(s)?)
    }
}

impl<'de> serde::Deserialize<'de> for TokenLifetime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = u64::deserialize(d)?;
        Self::new(Duration::from_secs(secs)).map_err(serde::de::Error::custom)
    }
}

/// An API to register, checked whole before anything is written.
#[derive(Debug)]
pub struct NewApi {
    audience: Audience,
    name: ApiName,
    scopes: Vec<ScopeDef>,
    token_lifetime: Option<TokenLifetime>,
    signing_alg: SigningAlgorithm,
}

impl NewApi {
    /// Without `signing_alg`, tokens are signed RS256.
    pub fn new(
        audience: Audience,
        name: ApiName,
        scopes: Vec<ScopeDef>,
        token_lifetime: Option<TokenLifetime>,
        signing_alg: Option<SigningAlgorithm>,
    ) -> Result<Self> {
        let signing_alg = signing_alg.unwrap_or(SigningAlgorithm::RS256);
        if !keys::SIGNING_ALGORITHMS.contains(&signing_alg) {
            return Err(CatalogueError::Invalid(
                "signing_alg must be RS256, ES256 or EdDSA".into(),
            ));
        }
        Ok(Self {
            audience,
            name,
            scopes,
            token_lifetime,
            signing_alg,
        })
    }
}

fn conflict_on(e: sqlx::Error, constraint: &str, message: impl Into<String>) -> CatalogueError {
    match &e {
        sqlx::Error::Database(db) if db.constraint() == Some(constraint) => {
            CatalogueError::Conflict(message.into())
        }
        _ => e.into(),
    }
}

fn no_api(audience: &str) -> CatalogueError {
    CatalogueError::NotFound(format!("no API with audience '{audience}'"))
}

fn no_app(client_id: &str) -> CatalogueError {
    CatalogueError::NotFound(format!("no app with client id '{client_id}'"))
}

/// The APIs (all, or the one with `audience`) with their scopes, in two queries.
async fn apis(pool: &PgPool, audience: Option<&str>) -> Result<Vec<ApiOut>> {
    let apis = on_pool!(pool, |conn| sqlx::query!(
        "select id, audience, name, token_lifetime_secs, signing_alg from apis
          where $1::text is null or audience = $1
          order by id",
        audience,
    )
    .fetch_all(conn)
    .await)?;
    let ids: Vec<i64> = apis.iter().map(|a| a.id).collect();
    let scopes = on_pool!(pool, |conn| sqlx::query!(
        "select api_id, name, description from api_scopes
          where api_id = any($1)
          order by api_id, name",
        &ids,
    )
    .fetch_all(conn)
    .await)?;
    let mut by_api: HashMap<i64, Vec<ScopeOut>> = HashMap::new();
    for scope in scopes {
        by_api.entry(scope.api_id).or_default().push(ScopeOut {
            name: scope.name,
            description: scope.description,
        });
    }
    Ok(apis
        .into_iter()
        .map(|api| ApiOut {
            audience: api.audience,
            name: api.name,
            token_lifetime: api.token_lifetime_secs,
            signing_alg: api.signing_alg,
            scopes: by_api.remove(&api.id).unwrap_or_default(),
        })
        .collect())
}

async fn api_out(pool: &PgPool, audience: &str) -> Result<ApiOut> {
    apis(pool, Some(audience))
        .await?
        .pop()
        .ok_or_else(|| no_api(audience))
}

/// Registers an API, its scopes and, when its algorithm has none yet, a signing key: all in
/// one transaction, so a refused request leaves nothing behind.
#[tracing::instrument(skip_all, fields(audience = %api.audience))]
pub async fn create_api(pool: &PgPool, api: &NewApi) -> Result<ApiOut> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        let id = sqlx::query_scalar!(
            "insert into apis (audience, name, token_lifetime_secs, signing_alg)
             values ($1, $2, $3, $4) returning id",
            api.audience.as_str(),
            api.name.as_str(),
            api.token_lifetime.map(|t| t.as_secs() as i32),
            api.signing_alg.name(),
        )
        .fetch_one(tx.conn())
        .await
        .map_err(|e| {
            conflict_on(
                e,
                "apis_audience_key",
                format!("an API with audience '{}' exists", api.audience),
            )
        })?;
        for scope in &api.scopes {
            sqlx::query!(
                "insert into api_scopes (api_id, name, description) values ($1, $2, $3)
                 on conflict (api_id, name) do update set description = excluded.description",
                id,
                scope.name.as_str(),
                scope.description,
            )
            .execute(tx.conn())
            .await?;
        }
        // The API's tokens need a key of its algorithm before the first token is asked for.
        keys::ensure_key_in(tx.conn(), api.signing_alg)
            .await
            .map_err(CatalogueError::Keys)?;
        Ok::<_, CatalogueError>(())
    }
    .await;
    tx.finish(result).await?;
    api_out(pool, api.audience.as_str()).await
}

/// Adds a scope to an API, or changes its description.
#[tracing::instrument(skip_all)]
pub async fn add_scope(pool: &PgPool, audience: &str, scope: &ScopeDef) -> Result<ApiOut> {
    let done = on_pool!(pool, |conn| sqlx::query!(
        "insert into api_scopes (api_id, name, description)
         select id, $2, $3 from apis where audience = $1
         on conflict (api_id, name) do update set description = excluded.description",
        audience,
        scope.name.as_str(),
        scope.description,
    )
    .execute(conn)
    .await)?;
    if done.rows_affected() == 0 {
        return Err(no_api(audience));
    }
    api_out(pool, audience).await
}

pub async fn list_apis(pool: &PgPool) -> Result<Vec<ApiOut>> {
    apis(pool, None).await
}

/// Whether an API with this audience is registered.
pub async fn api_exists(pool: &PgPool, audience: &str) -> Result<bool> {
    Ok(on_pool!(pool, |conn| sqlx::query_scalar!(
        r#"select exists (select 1 from apis where audience = $1) as "exists!""#,
        audience
    )
    .fetch_one(conn)
    .await)?)
}

/// Every scope name of every API (the issuer metadata's `scopes_supported`).
pub async fn scope_names(pool: &PgPool) -> Result<Vec<String>> {
    Ok(on_pool!(pool, |conn| sqlx::query_scalar!(
        "select distinct name from api_scopes order by name"
    )
    .fetch_all(conn)
    .await)?)
}

#[tracing::instrument(skip_all, fields(org_code = %code))]
pub async fn create_org(pool: &PgPool, code: &OrgCode, name: &OrgName) -> Result<OrgOut> {
    on_pool!(pool, |conn| sqlx::query_as!(
        OrgOut,
        "insert into organizations (code, name) values ($1, $2) returning code, name",
        code.as_str(),
        name.as_str(),
    )
    .fetch_one(conn)
    .await)
    .map_err(|e| {
        conflict_on(
            e,
            "organizations_pkey",
            format!("organization '{code}' exists"),
        )
    })
}

/// Creates the organization unless one with this code exists (whatever its name).
pub async fn ensure_org(pool: &PgPool, code: &OrgCode, name: &OrgName) -> Result<()> {
    on_pool!(pool, |conn| sqlx::query!(
        "insert into organizations (code, name) values ($1, $2) on conflict (code) do nothing",
        code.as_str(),
        name.as_str(),
    )
    .execute(conn)
    .await)?;
    Ok(())
}

pub async fn list_orgs(pool: &PgPool) -> Result<Vec<OrgOut>> {
    Ok(on_pool!(pool, |conn| sqlx::query_as!(
        OrgOut,
        "select code, name from organizations order by code"
    )
    .fetch_all(conn)
    .await)?)
}

async fn require_org(pool: &PgPool, org: &OrgCode) -> Result<()> {
    let exists = on_pool!(pool, |conn| sqlx::query_scalar!(
        r#"select exists (select 1 from organizations where code = $1) as "exists!""#,
        org.as_str()
    )
    .fetch_one(conn)
    .await)?;
    if !exists {
        return Err(CatalogueError::NotFound(format!("no organization '{org}'")));
    }
    Ok(())
}

/// Creates an app (org-scoped with `org`) and its first secret.
#[tracing::instrument(skip_all)]
/// Creates an app with a secret; with `require_dpop`, its tokens must be DPoP-bound. One
/// transaction: the app, its secret, that setting and the audit event exist together or not.
pub async fn create_app(
    pool: &PgPool,
    name: &AppName,
    org: Option<&OrgCode>,
    require_dpop: bool,
) -> Result<NewApp> {
    if let Some(org) = org {
        require_org(pool, org).await?;
    }
    let client_id = secrets::new_client_id();
    let (secret, hashed) = secrets::new_secret();
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query!(
            "insert into m2m_apps (client_id, name, org_code) values ($1, $2, $3)",
            client_id,
            name.as_str(),
            org.map(OrgCode::as_str),
        )
        .execute(tx.conn())
        .await?;
        sqlx::query!(
            "insert into client_secrets (client_id, salt, secret_hash) values ($1, $2, $3)",
            client_id,
            hashed.salt,
            hashed.hash,
        )
        .execute(tx.conn())
        .await?;
        if require_dpop {
            sqlx::query!(
                "update m2m_apps set require_dpop = $2 where client_id = $1",
                client_id,
                require_dpop,
            )
            .execute(tx.conn())
            .await?;
        }
        let details = json!({"app_client_id": client_id, "name": name.as_str()});
        audit_app(&mut tx, org, AuditAction::AppCreated, details).await
    }
    .await;
    tx.finish(result).await?;
    tracing::info!(%client_id, "app created");
    Ok(NewApp {
        client_id,
        client_secret: secret,
        name: name.to_string(),
        org_code: org.map(OrgCode::to_string),
    })
}

/// The oldest app of this name in the organization.
pub async fn find_app_by_name(
    pool: &PgPool,
    org: &OrgCode,
    name: &AppName,
) -> Result<Option<String>> {
    Ok(on_pool!(pool, |conn| sqlx::query_scalar!(
        "select client_id from m2m_apps where org_code = $1 and name = $2
          order by created_at limit 1",
        org.as_str(),
        name.as_str(),
    )
    .fetch_optional(conn)
    .await)?)
}

/// The organization of an app, `None` for a global app; not found when there is no such app.
async fn app_org(tx: &mut Tx, client_id: &str) -> Result<Option<OrgCode>> {
    sqlx::query_scalar!(
        "select org_code from m2m_apps where client_id = $1",
        client_id
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| no_app(client_id))?
    .map(stored_org)
    .transpose()
}

pub(crate) fn stored_org(code: String) -> Result<OrgCode> {
    OrgCode::parse(&code).map_err(CatalogueError::Invalid)
}

/// Writes an event about an app to its organization's audit log, in the change's own
/// transaction; a global app belongs to no organization and has no audit log.
pub(crate) async fn audit_app(
    tx: &mut Tx,
    org: Option<&OrgCode>,
    action: AuditAction,
    details: Value,
) -> Result<(), sqlx::Error> {
    match org {
        Some(org) => audit::record_catalogue_event(tx, org, action, details).await,
        None => Ok(()),
    }
}

async fn require_app(pool: &PgPool, client_id: &str) -> Result<()> {
    let exists = on_pool!(pool, |conn| sqlx::query_scalar!(
        r#"select exists (select 1 from m2m_apps where client_id = $1) as "exists!""#,
        client_id
    )
    .fetch_one(conn)
    .await)?;
    if exists {
        Ok(())
    } else {
        Err(no_app(client_id))
    }
}

pub async fn list_apps(pool: &PgPool) -> Result<Vec<AppOut>> {
    let apps = on_pool!(pool, |conn| {
        sqlx::query!(
        "select client_id, name, org_code, enabled from m2m_apps order by created_at, client_id",
    )
    .fetch_all(conn)
    .await
    })?;
    let grants = on_pool!(pool, |conn| sqlx::query!(
        "select g.client_id, a.audience, g.scopes
           from app_grants g join apis a on a.id = g.api_id
          order by a.audience",
    )
    .fetch_all(conn)
    .await)?;
    let mut by_app: HashMap<String, Vec<GrantOut>> = HashMap::new();
    for grant in grants {
        by_app.entry(grant.client_id).or_default().push(GrantOut {
            audience: grant.audience,
            scopes: grant.scopes.join(" "),
        });
    }
    Ok(apps
        .into_iter()
        .map(|app| AppOut {
            grants: by_app.remove(&app.client_id).unwrap_or_default(),
            client_id: app.client_id,
            name: app.name,
            org_code: app.org_code,
            enabled: app.enabled,
        })
        .collect())
}

/// Authorizes an app for an API with a subset of the API's scopes, replacing any earlier grant.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn authorize(
    pool: &PgPool,
    client_id: &str,
    audience: &str,
    scopes: &str,
) -> Result<GrantOut> {
    require_app(pool, client_id).await?;
    let mut wanted = split_scopes(scopes);
    wanted.sort();
    wanted.dedup();
    let api = on_pool!(pool, |conn| sqlx::query!(
        r#"select a.id, coalesce(array_agg(s.name) filter (where s.name is not null), '{}')
                    as "known!"
             from apis a left join api_scopes s on s.api_id = a.id
            where a.audience = $1 group by a.id"#,
        audience,
    )
    .fetch_optional(conn)
    .await)?
    .ok_or_else(|| no_api(audience))?;
    let (api_id, known) = (api.id, api.known);
    if let Some(unknown) = wanted.iter().find(|s| !known.contains(s)) {
        return Err(CatalogueError::Invalid(format!(
            "scope '{unknown}' is not defined for API '{audience}'"
        )));
    }
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query!(
            "insert into app_grants (client_id, api_id, scopes) values ($1, $2, $3)
             on conflict (client_id, api_id) do update set scopes = excluded.scopes",
            client_id,
            api_id,
            &wanted,
        )
        .execute(tx.conn())
        .await?;
        let org = app_org(&mut tx, client_id).await?;
        let details = json!({
            "app_client_id": client_id,
            "audience": audience,
            "scopes": wanted.join(" "),
        });
        audit_app(&mut tx, org.as_ref(), AuditAction::AppAuthorized, details).await?;
        Ok::<_, CatalogueError>(())
    }
    .await;
    tx.finish(result).await?;
    Ok(GrantOut {
        audience: audience.to_owned(),
        scopes: wanted.join(" "),
    })
}

/// Issues a new secret; the old ones stop working after `grace` (at once for zero).
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn rotate_secret(pool: &PgPool, client_id: &str, grace: Duration) -> Result<NewSecret> {
    require_app(pool, client_id).await?;
    let (secret, hashed) = secrets::new_secret();
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query!(
            "update client_secrets
                set expires_at = least(coalesce(expires_at, 'infinity'),
                                       now() + make_interval(secs => $2))
              where client_id = $1",
            client_id,
            grace.as_secs_f64(),
        )
        .execute(tx.conn())
        .await?;
        sqlx::query!(
            "delete from client_secrets where client_id = $1 and expires_at <= now()",
            client_id
        )
        .execute(tx.conn())
        .await?;
        sqlx::query!(
            "insert into client_secrets (client_id, salt, secret_hash) values ($1, $2, $3)",
            client_id,
            hashed.salt,
            hashed.hash,
        )
        .execute(tx.conn())
        .await?;
        let org = app_org(&mut tx, client_id).await?;
        let details = json!({"app_client_id": client_id, "grace_seconds": grace.as_secs()});
        audit_app(
            &mut tx,
            org.as_ref(),
            AuditAction::AppSecretRotated,
            details,
        )
        .await?;
        Ok::<_, CatalogueError>(())
    }
    .await;
    tx.finish(result).await?;
    tracing::info!(grace_secs = grace.as_secs(), "client secret rotated");
    Ok(NewSecret {
        client_id: client_id.to_owned(),
        client_secret: secret,
    })
}

/// Switches an app on or off. Switching it off also revokes every token it holds; switching it
/// back on does not bring them back.
pub async fn set_enabled(pool: &PgPool, client_id: &str, enabled: bool) -> Result<AppEnabled> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        let org = sqlx::query_scalar!(
            "update m2m_apps set enabled = $2 where client_id = $1 returning org_code",
            client_id,
            enabled
        )
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| no_app(client_id))?
        .map(stored_org)
        .transpose()?;
        if !enabled {
            revocation::cut_off_app(tx.conn(), client_id).await?;
        }
        let action = match enabled {
            true => AuditAction::AppEnabled,
            false => AuditAction::AppDisabled,
        };
        let details = json!({"app_client_id": client_id});
        audit_app(&mut tx, org.as_ref(), action, details).await?;
        Ok::<_, CatalogueError>(())
    }
    .await;
    tx.finish(result).await?;
    Ok(AppEnabled {
        client_id: client_id.to_owned(),
        enabled,
    })
}

/// Deletes the app with its secrets and grants, and revokes every token it holds (the cutoff
/// outlives the app until those tokens have expired).
pub async fn delete_app(pool: &PgPool, client_id: &str) -> Result<AppDeleted> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        let org = sqlx::query_scalar!(
            "delete from m2m_apps where client_id = $1 returning org_code",
            client_id
        )
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| no_app(client_id))?
        .map(stored_org)
        .transpose()?;
        revocation::cut_off_app(tx.conn(), client_id).await?;
        let details = json!({"app_client_id": client_id});
        audit_app(&mut tx, org.as_ref(), AuditAction::AppDeleted, details).await?;
        Ok::<_, CatalogueError>(())
    }
    .await;
    tx.finish(result).await?;
    Ok(AppDeleted {
        client_id: client_id.to_owned(),
        deleted: true,
    })
}

/// Adds a user to an organization: tenant data, so it is written in a tenant transaction.
pub async fn add_user(
    pool: &PgPool,
    org: &OrgCode,
    email: &Email,
    name: &UserName,
) -> Result<NewUser> {
    require_org(pool, org).await?;
    let ctx = OrgContext::for_operator(org.clone());
    let mut tx = TenantTx::begin(pool, &ctx).await?;
    let result = insert_user(&mut tx, email.as_str(), name.as_str())
        .await
        .map_err(|e| {
            conflict_on(
                e,
                "org_users_email_unique",
                format!("'{email}' is already a user of '{org}'"),
            )
        });
    let user = tx.finish(result).await?;
    Ok(NewUser {
        org_code: org.clone(),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_60s_to_24h() {
        assert_eq!("1h".parse::<TokenLifetime>().unwrap().as_secs(), 3600);
        assert_eq!("60s".parse::<TokenLifetime>().unwrap().as_secs(), 60);
        assert_eq!("24h".parse::<TokenLifetime>().unwrap().as_secs(), 86_400);
        for bad in ["59s", "25h", "soon", ""] {
            assert!(bad.parse::<TokenLifetime>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<TokenLifetime>("3600").is_ok());
        assert!(serde_json::from_str::<TokenLifetime>("30").is_err());
    }
}
