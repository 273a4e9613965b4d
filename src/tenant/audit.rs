//! An organization's audit log: who changed what, written in the same transaction as the
//! change (an event exists if and only if its change committed), read under RLS like every
//! tenant table. Append-only: nothing here changes or deletes an event.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::TenantTx;
use super::records::Page;
use crate::db::Tx;
use crate::domain::OrgCode;

/// What an event records; the stored name is [`AuditAction::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    RecordCreated,
    RecordUpdated,
    RecordDeleted,
    AppCreated,
    AppAuthorized,
    AppSecretRotated,
    AppDisabled,
    AppEnabled,
    AppDeleted,
    AppTokensRevoked,
    AppKeysSet,
}

impl AuditAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::RecordCreated => "record.created",
            AuditAction::RecordUpdated => "record.updated",
            AuditAction::RecordDeleted => "record.deleted",
            AuditAction::AppCreated => "app.created",
            AuditAction::AppAuthorized => "app.authorized",
            AuditAction::AppSecretRotated => "app.secret_rotated",
            AuditAction::AppDisabled => "app.disabled",
            AuditAction::AppEnabled => "app.enabled",
            AuditAction::AppDeleted => "app.deleted",
            AuditAction::AppTokensRevoked => "app.tokens_revoked",
            AuditAction::AppKeysSet => "app.keys_set",
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[schema(examples("record.created", "app.secret_rotated"))]
    pub action: String,
    /// The token's client for API writes; `None` for operators (CLI, admin API).
    pub client_id: Option<String>,
    /// What changed, e.g. `{"record_id": 3}`.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// One page of the org's events, ordered by id, and how many it has in all.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(tx: &mut TenantTx, page: &Page) -> Result<(Vec<AuditEvent>, i64), sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    let events = sqlx::query_as!(
        AuditEvent,
        "select id, at, action, client_id, details from audit_events
          where org_code = $1 and id > $2
          order by id
          limit $3",
        org,
        page.after,
        page.limit,
    )
    .fetch_all(tx.conn())
    .await?;
    // Events are never deleted and ids never skip, so the last id is the count.
    let total = sqlx::query_scalar!(
        "select last_event_id from org_counters where org_code = $1",
        org,
    )
    .fetch_optional(tx.conn())
    .await?
    .unwrap_or(0);
    Ok((events, total))
}

/// Records an event about one of `org`'s apps inside a catalogue transaction, so that it
/// commits or rolls back with the change. The catalogue runs as the issuer's role, not in a
/// tenant context: the SQL function enters `org`'s context for the insert alone and then
/// restores the transaction's role and context (see its migration). `client_id` is null:
/// catalogue changes are operator actions.
#[tracing::instrument(skip_all, fields(action = action.as_str()))]
pub async fn record_catalogue_event(
    tx: &mut Tx,
    org: &OrgCode,
    action: AuditAction,
    details: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(
        r#"select audit_catalogue_event($1, $2, $3) as "id!""#,
        org.as_str(),
        action.as_str(),
        details,
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(())
}
