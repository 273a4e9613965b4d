//! An organization's records.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::audit::AuditAction;
use super::{TenantCall, TenantTx};
use crate::db::Work;
use crate::domain::RecordName;

// One record of an organization.
// Serialized with its members in alphabetical order (see the `Serialize` impl below).
#[derive(Debug, utoipa::ToSchema)]
pub struct Record {
    pub id: i64,
    pub name: String,
    /// Any JSON value.
    pub value: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Members in alphabetical order: the order in which the API has always written a record, as
/// a `serde_json::Value` object (a sorted map). Written straight from the struct, a response
/// needs no `Value` tree in between, and its bytes stay the same.
impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Record", 5)?;
        s.serialize_field("created_at", &self.created_at)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("updated_at", &self.updated_at)?;
        s.serialize_field("value", &self.value)?;
        s.end()
    }
}

/// A page of the list: at most `limit` records with ids above `after`.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub after: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            after: 0,
        }
    }
}

/// One page and the org's total, in one round trip.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(call: &TenantCall<'_>, page: &Page) -> Result<(Vec<Record>, i64), sqlx::Error> {
    struct Row {
        id: i64,
        name: String,
        value: Value,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        total: i64,
    }
    // A function's result columns are nullable to sqlx; these never are.
    let mut work = Work::start(call.pool).await?;
    let rows = sqlx::query_as!(
        Row,
        r#"select id as "id!", name as "name!", value as "value!", created_at as "created_at!",
                  updated_at as "updated_at!", total as "total!"
             from tenant_list_records($1, $2, $3)"#,
        call.org().as_str(),
        page.after,
        page.limit as i32,
    )
    .fetch_all(work.conn())
    .await;
    let rows = work.finish(rows).await?;
    let total = match rows.first() {
        Some(row) => row.total,
        // An empty page (past the end) still reports the org's total.
        None => count(call).await?,
    };
    let records = rows
        .into_iter()
        .map(|r| Record {
            id: r.id,
            name: r.name,
            value: r.value,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect();
    Ok((records, total))
}

/// How many records the org has (a counter kept with every create and delete, not a count).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn count(call: &TenantCall<'_>) -> Result<i64, sqlx::Error> {
    let mut work = Work::start(call.pool).await?;
    let result = sqlx::query_scalar!(
        r#"select tenant_count_records($1) as "total!""#,
        call.org().as_str()
    )
    .fetch_one(work.conn())
    .await;
    work.finish(result).await
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn find(call: &TenantCall<'_>, id: i64) -> Result<Option<Record>, sqlx::Error> {
    let mut work = Work::start(call.pool).await?;
    let result = sqlx::query_as!(
        Record,
        r#"select id as "id!", name as "name!", value as "value!", created_at as "created_at!",
                  updated_at as "updated_at!"
             from tenant_get_record($1, $2)"#,
        call.org().as_str(),
        id,
    )
    .fetch_optional(work.conn())
    .await;
    work.finish(result).await
}

/// Creates a record with the org's next id (dense, unique, never reused) and its
/// `record.created` event, in one round trip.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(
    call: &TenantCall<'_>,
    name: &RecordName,
    value: &Value,
) -> Result<Record, sqlx::Error> {
    let mut work = Work::start(call.pool).await?;
    let result = sqlx::query_as!(
        Record,
        r#"select id as "id!", name as "name!", value as "value!", created_at as "created_at!",
                  updated_at as "updated_at!"
             from tenant_create_record($1, $2, $3, $4)"#,
        call.org().as_str(),
        call.client_id(),
        name.as_str(),
        value,
    )
    .fetch_one(work.conn())
    .await;
    work.finish(result).await
}

/// Changes the name, the value or both, with its `record.updated` event (naming the fields
/// given) in the same statement; `None` when the org has no such record.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn update(
    tx: &mut TenantTx,
    id: i64,
    name: Option<&RecordName>,
    value: Option<&Value>,
) -> Result<Option<Record>, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    let client_id = tx.client_id().map(str::to_owned);
    let fields: Vec<&str> = [name.map(|_| "name"), value.map(|_| "value")]
        .into_iter()
        .flatten()
        .collect();
    // The event is written for each row the update returns, that is once or not at all.
    let row = sqlx::query!(
        r#"with changed as (
             update records
                set name = coalesce($3, name),
                    value = case when $4 then $5 else value end,
                    updated_at = now()
              where org_code = $1 and id = $2
          returning id, name, value, created_at, updated_at
           )
           select c.id, c.name, c.value, c.created_at, c.updated_at,
                  tenant_audit($1, $6, $7, jsonb_build_object('record_id', c.id, 'fields', $8::text[]))
                    as "event_id!"
             from changed c"#,
        org,
        id,
        name.map(RecordName::as_str),
        value.is_some(),
        value.unwrap_or(&Value::Null),
        AuditAction::RecordUpdated.as_str(),
        client_id,
        &fields as &[&str],
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|r| Record {
        id: r.id,
        name: r.name,
        value: r.value,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }))
}

/// Deletes a record, with its `record.deleted` event in the same statement; false when the
/// org has no such record.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(tx: &mut TenantTx, id: i64) -> Result<bool, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    let client_id = tx.client_id().map(str::to_owned);
    let event = sqlx::query_scalar!(
        r#"with gone as (
             delete from records where org_code = $1 and id = $2 returning id
           )
           select tenant_audit($1, $3, $4, jsonb_build_object('record_id', g.id)) as "event_id!"
             from gone g"#,
        org,
        id,
        AuditAction::RecordDeleted.as_str(),
        client_id,
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(event.is_some())
}

/// Whether the org has ever had a record (deleted ones included).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn ever_created(tx: &mut TenantTx) -> Result<bool, sqlx::Error> {
    let org = tx.org().as_str().to_owned();
    sqlx::query_scalar!(
        r#"select exists (select 1 from org_counters where org_code = $1 and last_record_id > 0)
             as "exists!""#,
        org,
    )
    .fetch_one(tx.conn())
    .await
}
