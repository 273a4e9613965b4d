//! Revoking issued tokens before their `exp`: by app (a cutoff on `iat`), by organization
//! (switched off, plus a cutoff), by single token (its jti, until its `exp`) and by signing
//! key. One function per command, shared by the CLI and the admin API, and the reads that feed
//! every instance's in-memory [`RevocationState`].
//!
//! A cutoff is "now" in the database's clock, in whole seconds: a token whose `iat` is at or
//! before it is revoked, so a client that gets a new token in the same second may have to ask
//! again a second later.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use super::catalogue::{self, CatalogueError};
use super::keys;
use crate::auth::SigningAlgorithm;
use crate::auth::revocation::{RevocationState, Revocations};
use crate::db::Tx;
use crate::db::on_pool;
use crate::domain::OrgCode;
use crate::tenant::audit::AuditAction;
use serde_json::json;

/// No token lives longer than this (the longest API lifetime and TOKEN_LIFETIME's bound), plus
/// the verifier's leeway: a cutoff older than that can no longer reject anything.
pub const LONGEST_TOKEN_LIFE_SECS: i64 = 86_400 + 60;

/// Leeway the resource API gives `exp`; a revoked jti is kept that much longer.
const EXP_LEEWAY_SECS: i64 = 60;

/// How often every instance re-reads the revocations even without a notification.
pub const REREAD_EVERY: Duration = Duration::from_secs(2);

type Result<T, E = CatalogueError> = std::result::Result<T, E>;

/// `app revoke-tokens`: every token issued to the app so far is revoked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppTokensRevoked {
    pub client_id: String,
    /// Unix seconds: tokens issued at or before it are refused.
    pub revoked_at: i64,
}

/// `org disable` / `org enable`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgSwitched {
    pub code: String,
    pub disabled: bool,
    /// On disable: unix seconds; tokens issued at or before it stay revoked after `enable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// `token revoke`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenRevoked {
    pub jti: String,
    pub client_id: String,
    /// The token's `exp`: it is remembered as revoked until then.
    pub revoked_until: i64,
}

/// `keys revoke`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyRevoked {
    pub kid: String,
    pub revoked: bool,
    /// The key that signs instead, when the revoked one was signing.
    pub replaced_by: Option<String>,
}

/// Sets the app's cutoff to now (never moves it back), on the caller's connection.
pub(crate) async fn cut_off_app(conn: &mut PgConnection, client_id: &str) -> Result<i64> {
    let revoked_at = sqlx::query_scalar!(
        "insert into app_token_cutoffs (client_id, revoked_before)
         values ($1, floor(extract(epoch from now()))::bigint)
         on conflict (client_id) do update
            set revoked_before = greatest(app_token_cutoffs.revoked_before, excluded.revoked_before)
         returning revoked_before",
        client_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    purge_in(conn).await?;
    Ok(revoked_at)
}

/// Forgets what can no longer reject anything: jtis past their `exp`, cutoffs older than the
/// longest token lifetime.
async fn purge_in(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from revoked_tokens
          where expires_at < floor(extract(epoch from now()))::bigint - $1",
        EXP_LEEWAY_SECS,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "delete from app_token_cutoffs
          where revoked_before < floor(extract(epoch from now()))::bigint - $1",
        LONGEST_TOKEN_LIFE_SECS,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "delete from org_token_cutoffs c
          where revoked_before < floor(extract(epoch from now()))::bigint - $1
            and not exists (select 1 from organizations o
                             where o.code = c.org_code and o.disabled_at is not null)",
        LONGEST_TOKEN_LIFE_SECS,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn purge(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = purge_in(tx.conn()).await;
    tx.finish(result).await
}

/// Revokes every token issued to the app so far (written to its organization's audit log).
#[tracing::instrument(skip_all)]
pub async fn revoke_app_tokens(pool: &PgPool, client_id: &str) -> Result<AppTokensRevoked> {
    let org = on_pool!(pool, |conn| sqlx::query_scalar!(
        "select org_code from m2m_apps where client_id = $1",
        client_id
    )
    .fetch_optional(conn)
    .await)?
    .ok_or_else(|| CatalogueError::NotFound(format!("no app with client id '{client_id}'")))?
    .map(catalogue::stored_org)
    .transpose()?;
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        let revoked_at = cut_off_app(tx.conn(), client_id).await?;
        let details = json!({"app_client_id": client_id, "revoked_at": revoked_at});
        catalogue::audit_app(
            &mut tx,
            org.as_ref(),
            AuditAction::AppTokensRevoked,
            details,
        )
        .await?;
        Ok::<_, CatalogueError>(revoked_at)
    }
    .await;
    let revoked_at = tx.finish(result).await?;
    tracing::info!(%client_id, revoked_at, "app tokens revoked");
    Ok(AppTokensRevoked {
        client_id: client_id.to_owned(),
        revoked_at,
    })
}

/// Switches an organization off (its apps get no tokens, its tokens are refused, and those
/// issued so far stay revoked) or back on.
#[tracing::instrument(skip_all, fields(org_code = %code))]
pub async fn set_org_disabled(
    pool: &PgPool,
    code: &OrgCode,
    disabled: bool,
) -> Result<OrgSwitched> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        let found = sqlx::query_scalar!(
            "update organizations
                set disabled_at = case when $2 then coalesce(disabled_at, now()) end
              where code = $1
              returning code",
            code.as_str(),
            disabled,
        )
        .fetch_optional(tx.conn())
        .await?;
        if found.is_none() {
            return Err(CatalogueError::NotFound(format!(
                "no organization '{code}'"
            )));
        }
        if !disabled {
            return Ok(None);
        }
        let revoked_at = sqlx::query_scalar!(
            "insert into org_token_cutoffs (org_code, revoked_before)
             values ($1, floor(extract(epoch from now()))::bigint)
             on conflict (org_code) do update
                set revoked_before = greatest(org_token_cutoffs.revoked_before,
                                              excluded.revoked_before)
             returning revoked_before",
            code.as_str(),
        )
        .fetch_one(tx.conn())
        .await?;
        purge_in(tx.conn()).await?;
        Ok(Some(revoked_at))
    }
    .await;
    let revoked_at = tx.finish(result).await?;
    tracing::info!(disabled, "organization switched");
    Ok(OrgSwitched {
        code: code.to_string(),
        disabled,
        revoked_at,
    })
}

/// Remembers `jti` as revoked until `exp` (idempotent).
pub(crate) async fn store_revoked_jti(
    pool: &PgPool,
    jti: &str,
    client_id: &str,
    exp: i64,
) -> Result<()> {
    let mut tx = Tx::begin_plain(pool).await?;
    let result = async {
        sqlx::query!(
            "insert into revoked_tokens (jti, client_id, expires_at) values ($1, $2, $3)
             on conflict (jti) do nothing",
            jti,
            client_id,
            exp,
        )
        .execute(tx.conn())
        .await?;
        purge_in(tx.conn()).await?;
        Ok::<_, CatalogueError>(())
    }
    .await;
    tx.finish(result).await
}

/// What a token of ours says, for the database's view of whether it is revoked.
pub struct RevocationQuery<'a> {
    pub client_id: &'a str,
    pub org_code: Option<&'a str>,
    pub iat: i64,
    pub jti: &'a str,
    pub kid: &'a str,
}

/// The database's answer (introspection and the revocation endpoint ask it directly, so that
/// they are exact even while this instance's notifications lag).
pub async fn is_revoked(pool: &PgPool, q: &RevocationQuery<'_>) -> Result<bool, sqlx::Error> {
    on_pool!(pool, |conn| sqlx::query_scalar!(
        r#"select exists (select 1 from revoked_tokens where jti = $1)
               or exists (select 1 from app_token_cutoffs
                           where client_id = $2 and revoked_before >= $3)
               or exists (select 1 from org_token_cutoffs
                           where org_code = $4 and revoked_before >= $3)
               or exists (select 1 from organizations
                           where code = $4 and disabled_at is not null)
               or exists (select 1 from signing_keys where kid = $5 and revoked_at is not null)
             as "revoked!""#,
        q.jti,
        q.client_id,
        q.iat,
        q.org_code,
        q.kid,
    )
    .fetch_one(conn)
    .await)
}

/// Every revocation still in force, in one statement.
pub async fn load(pool: &PgPool) -> Result<Revocations, sqlx::Error> {
    let rows = on_pool!(pool, |conn| sqlx::query!(
        r#"select 'app' as "kind!", client_id as "key!", revoked_before as "at!"
             from app_token_cutoffs
            where revoked_before >= floor(extract(epoch from now()))::bigint - $1
           union all
           select 'org', org_code, revoked_before from org_token_cutoffs
           union all
           select 'disabled', code, 0 from organizations where disabled_at is not null
           union all
           select 'jti', jti, expires_at from revoked_tokens
            where expires_at >= floor(extract(epoch from now()))::bigint - $2
           union all
           select 'kid', kid, 0 from signing_keys where revoked_at is not null"#,
        LONGEST_TOKEN_LIFE_SECS,
        EXP_LEEWAY_SECS,
    )
    .fetch_all(conn)
    .await)?;
    let mut r = Revocations::default();
    for row in rows {
        match row.kind.as_str() {
            "app" => drop(r.apps.insert(row.key, row.at)),
            "org" => drop(r.orgs.insert(row.key, row.at)),
            "disabled" => drop(r.disabled_orgs.insert(row.key)),
            "jti" => drop(r.jtis.insert(row.key, row.at)),
            _ => drop(r.kids.insert(row.key)),
        }
    }
    Ok(r)
}

/// Keeps a [`RevocationState`] current: a full re-read on every `orgwall_revocations`
/// notification (signalled through `wake`) and every [`REREAD_EVERY`] whatever happens, so
/// that lost notifications or a dead LISTEN connection delay a revocation by a few seconds at
/// most. Ends when the state is dropped.
pub fn spawn_refresher(pool: PgPool, state: &Arc<RevocationState>, wake: Arc<Notify>) {
    let state = Arc::downgrade(state);
    tokio::spawn(refresh(pool, state, wake));
}

async fn refresh(pool: PgPool, state: Weak<RevocationState>, wake: Arc<Notify>) {
    let mut last_purge = tokio::time::Instant::now();
    loop {
        let Some(s) = state.upgrade() else { return };
        match load(&pool).await {
            Ok(r) => s.replace(r),
            Err(e) => tracing::debug!(error = %e, "re-reading revocations failed"),
        }
        drop(s);
        // Once a minute, forget what expired even when nobody revokes anything.
        // One transaction, so that its statements notify the other instances once.
        if last_purge.elapsed() >= Duration::from_secs(60) {
            last_purge = tokio::time::Instant::now();
            if let Err(e) = purge(&pool).await {
                tracing::debug!(error = %e, "forgetting expired revocations failed");
            }
        }
        let _ = tokio::time::timeout(REREAD_EVERY, wake.notified()).await;
    }
}

/// Revokes a signing key: it leaves the JWKS and every token it signed is refused. A key that
/// was signing is first replaced by a new one of its algorithm, so issuance never stops.
#[tracing::instrument(skip_all, fields(kid = %crate::telemetry::Untrusted(kid)))]
pub async fn revoke_key(pool: &PgPool, kid: &str) -> Result<KeyRevoked> {
    let key = on_pool!(pool, |conn| sqlx::query!(
        "select alg, retired_at is null as \"signing!\" from signing_keys where kid = $1",
        kid
    )
    .fetch_optional(conn)
    .await)?
    .ok_or_else(|| CatalogueError::NotFound(format!("no signing key '{kid}'")))?;
    let alg = SigningAlgorithm::from_jose(&key.alg)
        .ok_or_else(|| CatalogueError::Invalid(format!("key '{kid}' has an unknown algorithm")))?;
    let replaced_by = if key.signing {
        Some(
            keys::replace_and_revoke(pool, alg, kid)
                .await
                .map_err(CatalogueError::Keys)?,
        )
    } else {
        on_pool!(pool, |conn| sqlx::query!(
            "update signing_keys set revoked_at = coalesce(revoked_at, now()) where kid = $1",
            kid
        )
        .execute(conn)
        .await)?;
        None
    };
    tracing::warn!(?replaced_by, "signing key revoked");
    Ok(KeyRevoked {
        kid: kid.to_owned(),
        revoked: true,
        replaced_by,
    })
}
