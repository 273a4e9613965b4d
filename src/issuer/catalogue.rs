//! The issuer's operations on its catalogue: one function per command of contract §1, shared
//! by the CLI and the admin HTTP API.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;

use super::{keys, secrets};
use crate::auth::OrgContext;
use crate::auth::SigningAlgorithm;
use crate::auth::claims::split_scopes;
use crate::domain::OrgCode;
use crate::error::ApiError;
use crate::routes::users::{OrgUser, insert_user};
use crate::tenant::{Db, TenantTx};

#[derive(Debug, Serialize)]
pub struct ScopeOut {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct ApiOut {
    pub audience: String,
    pub name: String,
    /// Seconds; `null` means the service's TOKEN_LIFETIME.
    pub token_lifetime: Option<i32>,
    /// RS256 (default), ES256 or EdDSA.
    pub signing_alg: String,
    pub scopes: Vec<ScopeOut>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OrgOut {
    pub code: String,
    pub name: String,
}

/// Shown once: the secret is stored only as a hash.
#[derive(Serialize)]
pub struct NewApp {
    pub client_id: String,
    #[serde(serialize_with = "expose")]
    pub client_secret: SecretString,
    pub name: String,
    pub org_code: Option<String>,
}

#[derive(Serialize)]
pub struct NewSecret {
    pub client_id: String,
    #[serde(serialize_with = "expose")]
    pub client_secret: SecretString,
}

fn expose<S: serde::Serializer>(s: &SecretString, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose_secret())
}

#[derive(Debug, Serialize)]
pub struct GrantOut {
    pub audience: String,
    pub scopes: String,
}

#[derive(Debug, Serialize)]
pub struct AppOut {
    pub client_id: String,
    pub name: String,
    pub org_code: Option<String>,
    pub enabled: bool,
    pub grants: Vec<GrantOut>,
}

/// Scope names as RFC 6749 §3.3 defines a scope-token.
pub fn parse_scope_name(name: &str) -> Result<String, ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(ApiError::bad_request(format!(
            "scope '{}' must be 1 to 128 printable ASCII characters without spaces, quotes or backslashes",
            name.chars().take(40).collect::<String>()
        )))
    }
}

fn parse_audience(audience: &str) -> Result<&str, ApiError> {
    if audience.is_empty() || audience.len() > 2048 || audience.chars().any(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "audience must be 1 to 2048 characters without spaces",
        ));
    }
    Ok(audience)
}

fn parse_name(field: &str, name: &str) -> Result<String, ApiError> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > 200 {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to 200 characters"
        )));
    }
    Ok(name.to_owned())
}

fn conflict_on(e: sqlx::Error, constraint: &str, message: impl Into<String>) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.constraint() == Some(constraint) => {
            ApiError::Conflict(message.into())
        }
        _ => e.into(),
    }
}

/// Parses `NAME[=DESCRIPTION]`.
pub fn parse_scope_arg(arg: &str) -> (String, String) {
    match arg.split_once('=') {
        Some((n, d)) => (n.trim().to_owned(), d.trim().to_owned()),
        None => (arg.trim().to_owned(), String::new()),
    }
}

async fn api_out(pool: &PgPool, audience: &str) -> Result<ApiOut, ApiError> {
    let api: Option<(i64, String, Option<i32>, String)> = sqlx::query_as(
        "select id, name, token_lifetime_secs, signing_alg from apis where audience = $1",
    )
    .bind(audience)
    .fetch_optional(pool)
    .await?;
    let (id, name, token_lifetime, signing_alg) =
        api.ok_or_else(|| ApiError::not_found(format!("no API with audience '{audience}'")))?;
    let scopes: Vec<(String, String)> =
        sqlx::query_as("select name, description from api_scopes where api_id = $1 order by name")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(ApiOut {
        audience: audience.to_owned(),
        name,
        token_lifetime,
        signing_alg,
        scopes: scopes
            .into_iter()
            .map(|(name, description)| ScopeOut { name, description })
            .collect(),
    })
}

#[tracing::instrument(skip_all, fields(audience))]
pub async fn create_api(
    pool: &PgPool,
    audience: &str,
    name: &str,
    scopes: &[(String, String)],
    token_lifetime: Option<Duration>,
    signing_alg: Option<&str>,
) -> Result<ApiOut, ApiError> {
    let audience = parse_audience(audience)?;
    let alg = match signing_alg {
        None => SigningAlgorithm::RS256,
        Some(a) => SigningAlgorithm::from_jose(a)
            .filter(|a| keys::SIGNING_ALGORITHMS.contains(a))
            .ok_or_else(|| ApiError::bad_request("signing_alg must be RS256, ES256 or EdDSA"))?,
    };
    // The API's tokens need a key of its algorithm before the first token is asked for.
    keys::ensure_key(pool, alg)
        .await
        .map_err(ApiError::Internal)?;
    let name = parse_name("name", name)?;
    let scopes = scopes
        .iter()
        .map(|(n, d)| Ok((parse_scope_name(n)?, d.clone())))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let lifetime = match token_lifetime {
        Some(d) if !(60..=86_400).contains(&d.as_secs()) => {
            return Err(ApiError::bad_request(
                "token lifetime must be between 60s and 24h",
            ));
        }
        Some(d) => Some(d.as_secs() as i32),
        None => None,
    };
    let mut tx = crate::db::Tx::begin_plain(pool).await?;
    let result = async {
        let id: i64 = sqlx::query_scalar(
            "insert into apis (audience, name, token_lifetime_secs, signing_alg)
             values ($1, $2, $3, $4) returning id",
        )
        .bind(audience)
        .bind(&name)
        .bind(lifetime)
        .bind(alg.name())
        .fetch_one(tx.conn())
        .await
        .map_err(|e| {
            conflict_on(
                e,
                "apis_audience_key",
                format!("an API with audience '{audience}' exists"),
            )
        })?;
        for (scope, description) in &scopes {
            sqlx::query(
                "insert into api_scopes (api_id, name, description) values ($1, $2, $3)
                 on conflict (api_id, name) do update set description = excluded.description",
            )
            .bind(id)
            .bind(scope)
            .bind(description)
            .execute(tx.conn())
            .await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    tx.finish(result).await?;
    api_out(pool, audience).await
}

#[tracing::instrument(skip_all)]
pub async fn add_scope(
    pool: &PgPool,
    audience: &str,
    scope: &str,
    description: &str,
) -> Result<ApiOut, ApiError> {
    let scope = parse_scope_name(scope)?;
    let done = sqlx::query(
        "insert into api_scopes (api_id, name, description)
         select id, $2, $3 from apis where audience = $1
         on conflict (api_id, name) do update set description = excluded.description",
    )
    .bind(audience)
    .bind(&scope)
    .bind(description)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!(
            "no API with audience '{audience}'"
        )));
    }
    api_out(pool, audience).await
}

pub async fn list_apis(pool: &PgPool) -> Result<Vec<ApiOut>, ApiError> {
    let audiences: Vec<String> = sqlx::query_scalar("select audience from apis order by id")
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(audiences.len());
    for audience in audiences {
        out.push(api_out(pool, &audience).await?);
    }
    Ok(out)
}

#[tracing::instrument(skip_all, fields(org_code = code))]
pub async fn create_org(pool: &PgPool, code: &str, name: &str) -> Result<OrgOut, ApiError> {
    let code = OrgCode::parse(code).map_err(ApiError::BadRequest)?;
    let name = parse_name("name", name)?;
    sqlx::query_as("insert into organizations (code, name) values ($1, $2) returning code, name")
        .bind(code.as_str())
        .bind(&name)
        .fetch_one(pool)
        .await
        .map_err(|e| {
            conflict_on(
                e,
                "organizations_pkey",
                format!("organization '{code}' exists"),
            )
        })
}

pub async fn list_orgs(pool: &PgPool) -> Result<Vec<OrgOut>, ApiError> {
    Ok(
        sqlx::query_as("select code, name from organizations order by code")
            .fetch_all(pool)
            .await?,
    )
}

async fn require_org(pool: &PgPool, code: &str) -> Result<OrgCode, ApiError> {
    let org = OrgCode::parse(code).map_err(ApiError::BadRequest)?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from organizations where code = $1)")
            .bind(org.as_str())
            .fetch_one(pool)
            .await?;
    if !exists {
        return Err(ApiError::not_found(format!("no organization '{code}'")));
    }
    Ok(org)
}

#[tracing::instrument(skip_all)]
pub async fn create_app(
    pool: &PgPool,
    name: &str,
    org_code: Option<&str>,
) -> Result<NewApp, ApiError> {
    let name = parse_name("name", name)?;
    let org = match org_code {
        Some(code) => Some(require_org(pool, code).await?),
        None => None,
    };
    let client_id = secrets::new_client_id();
    let (secret, hashed) = secrets::new_secret();
    let mut tx = crate::db::Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query("insert into m2m_apps (client_id, name, org_code) values ($1, $2, $3)")
            .bind(&client_id)
            .bind(&name)
            .bind(org.as_ref().map(OrgCode::as_str))
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "insert into client_secrets (client_id, salt, secret_hash) values ($1, $2, $3)",
        )
        .bind(&client_id)
        .bind(&hashed.salt)
        .bind(&hashed.hash)
        .execute(tx.conn())
        .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    tx.finish(result).await?;
    tracing::info!(%client_id, "app created");
    Ok(NewApp {
        client_id,
        client_secret: secret,
        name,
        org_code: org.map(|o| o.to_string()),
    })
}

fn no_app(client_id: &str) -> ApiError {
    ApiError::not_found(format!("no app with client id '{client_id}'"))
}

async fn require_app(pool: &PgPool, client_id: &str) -> Result<(), ApiError> {
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from m2m_apps where client_id = $1)")
            .bind(client_id)
            .fetch_one(pool)
            .await?;
    if exists {
        Ok(())
    } else {
        Err(no_app(client_id))
    }
}

pub async fn list_apps(pool: &PgPool) -> Result<Vec<AppOut>, ApiError> {
    let apps: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
        "select client_id, name, org_code, enabled from m2m_apps order by created_at, client_id",
    )
    .fetch_all(pool)
    .await?;
    let grants: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "select g.client_id, a.audience, g.scopes from app_grants g join apis a on a.id = g.api_id order by a.audience",
    )
    .fetch_all(pool)
    .await?;
    Ok(apps
        .into_iter()
        .map(|(client_id, name, org_code, enabled)| AppOut {
            grants: grants
                .iter()
                .filter(|g| g.0 == client_id)
                .map(|g| GrantOut {
                    audience: g.1.clone(),
                    scopes: g.2.join(" "),
                })
                .collect(),
            client_id,
            name,
            org_code,
            enabled,
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
) -> Result<GrantOut, ApiError> {
    require_app(pool, client_id).await?;
    let mut wanted = split_scopes(scopes);
    wanted.sort();
    wanted.dedup();
    let (api_id, known): (i64, Vec<String>) = sqlx::query_as(
        "select a.id, coalesce(array_agg(s.name) filter (where s.name is not null), '{}')
           from apis a left join api_scopes s on s.api_id = a.id
          where a.audience = $1 group by a.id",
    )
    .bind(audience)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no API with audience '{audience}'")))?;
    if let Some(unknown) = wanted.iter().find(|s| !known.contains(s)) {
        return Err(ApiError::bad_request(format!(
            "scope '{unknown}' is not defined for API '{audience}'"
        )));
    }
    sqlx::query(
        "insert into app_grants (client_id, api_id, scopes) values ($1, $2, $3)
         on conflict (client_id, api_id) do update set scopes = excluded.scopes",
    )
    .bind(client_id)
    .bind(api_id)
    .bind(&wanted)
    .execute(pool)
    .await?;
    Ok(GrantOut {
        audience: audience.to_owned(),
        scopes: wanted.join(" "),
    })
}

/// Issues a new secret; the old ones stop working after `grace` (at once for zero).
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn rotate_secret(
    pool: &PgPool,
    client_id: &str,
    grace: Duration,
) -> Result<NewSecret, ApiError> {
    require_app(pool, client_id).await?;
    let (secret, hashed) = secrets::new_secret();
    let mut tx = crate::db::Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query(
            "update client_secrets
                set expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $2))
              where client_id = $1",
        )
        .bind(client_id)
        .bind(grace.as_secs_f64())
        .execute(tx.conn())
        .await?;
        sqlx::query("delete from client_secrets where client_id = $1 and expires_at <= now()")
            .bind(client_id)
            .execute(tx.conn())
            .await?;
        sqlx::query("insert into client_secrets (client_id, salt, secret_hash) values ($1, $2, $3)")
            .bind(client_id)
            .bind(&hashed.salt)
            .bind(&hashed.hash)
            .execute(tx.conn())
            .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    tx.finish(result).await?;
    tracing::info!(grace_secs = grace.as_secs(), "client secret rotated");
    Ok(NewSecret {
        client_id: client_id.to_owned(),
        client_secret: secret,
    })
}

pub async fn set_enabled(
    pool: &PgPool,
    client_id: &str,
    enabled: bool,
) -> Result<serde_json::Value, ApiError> {
    let done = sqlx::query("update m2m_apps set enabled = $2 where client_id = $1")
        .bind(client_id)
        .bind(enabled)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(no_app(client_id));
    }
    Ok(serde_json::json!({"client_id": client_id, "enabled": enabled}))
}

/// Deletes the app with its secrets and grants.
pub async fn delete_app(pool: &PgPool, client_id: &str) -> Result<serde_json::Value, ApiError> {
    let done = sqlx::query("delete from m2m_apps where client_id = $1")
        .bind(client_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(no_app(client_id));
    }
    Ok(serde_json::json!({"client_id": client_id, "deleted": true}))
}

/// Adds a user to an organization: tenant data, so it is written in a tenant transaction.
pub async fn add_user(
    db: &Db,
    org_code: &str,
    email: &str,
    name: &str,
) -> Result<serde_json::Value, ApiError> {
    let org = require_org(db.pool(), org_code).await?;
    let email = email.trim();
    if email.len() < 3
        || email.len() > 320
        || !email.contains('@')
        || email.chars().any(char::is_whitespace)
    {
        return Err(ApiError::bad_request(
            "email must look like name@example.com",
        ));
    }
    let name = parse_name("name", name)?;
    let ctx = OrgContext::for_operator(org.clone());
    let mut tx = TenantTx::begin(db, &ctx).await?;
    let result = insert_user(&mut tx, email, &name).await.map_err(|e| {
        conflict_on(
            e,
            "org_users_email_unique",
            format!("'{email}' is already a user of '{org}'"),
        )
    });
    let user: OrgUser = tx.finish(result).await?;
    Ok(serde_json::json!({"org_code": org, "user": user}))
}
