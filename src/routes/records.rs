//! `/orgs/{org_code}/data`: an organization's records, read and written only inside its
//! tenant transaction.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Authorized;
use crate::auth::scope::{DeleteData, ReadData, WriteData};
use crate::body::{present, read_json};
use crate::domain::{OrgCode, RecordName};
use crate::error::ApiError;
use crate::tenant::records::{self, Page, Record};
use crate::tenant::{TenantCall, TenantTx};
use sqlx::PgPool;

/// The list's page from `?limit=` (1–1000, default 100) and `?after=ID`; `org_code` and
/// unknown parameters are ignored.
pub fn page_from_query(qs: &str) -> Result<Page, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(qs)
        .map_err(|e| ApiError::bad_request(format!("Query string is malformed: {e}")))?;
    let mut page = Page::default();
    let (mut seen_limit, mut seen_after) = (false, false);
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                if std::mem::replace(&mut seen_limit, true) {
                    return Err(ApiError::bad_request("'limit' is given more than once"));
                }
                page.limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=Page::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "'limit' must be an integer from 1 to {}, got '{}'",
                            Page::MAX_LIMIT,
                            truncate(&value)
                        ))
                    })?;
            }
            "after" => {
                if std::mem::replace(&mut seen_after, true) {
                    return Err(ApiError::bad_request("'after' is given more than once"));
                }
                page.after = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "'after' must be a record id (an integer of 0 or more), got '{}'",
                            truncate(&value)
                        ))
                    })?;
            }
            _ => {}
        }
    }
    Ok(page)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The body of POST and PATCH. `org_code` is accepted and ignored: the org comes only from
/// the verified token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    /// 1 to 200 characters, not blank.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 200, pattern = "\\S")]
    name: Option<Value>,
    /// Any JSON value (strings without NUL characters).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Value)]
    value: Option<Value>,
    /// Ignored: the organization comes only from the verified token.
    #[serde(default, rename = "org_code")]
    #[schema(value_type = Value)]
    _org_code: serde::de::IgnoredAny,
}

impl RecordInput {
    fn name(&self) -> Result<Option<RecordName>, ApiError> {
        match &self.name {
            None => Ok(None),
            Some(Value::String(s)) => RecordName::parse(s.clone())
                .map(Some)
                .map_err(ApiError::BadRequest),
            Some(_) => Err(ApiError::bad_request("'name' must be a string")),
        }
    }
}

/// PostgreSQL's jsonb cannot hold `\u0000` in a string or a key: refuse it as the client's
/// mistake rather than fail the statement with a 500.
fn check_value(value: &Value) -> Result<(), ApiError> {
    let nul = || ApiError::bad_request("'value' must not contain NUL characters (\\u0000)");
    let mut pending = vec![value];
    while let Some(v) = pending.pop() {
        match v {
            Value::String(s) if s.contains('\0') => return Err(nul()),
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    return Err(nul());
                }
                pending.extend(map.values());
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("Record id must be a positive integer"))
}

pub async fn list(
    auth: Authorized<ReadData>,
    req: HttpRequest,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let page = page_from_query(req.query_string())?;
    let call = TenantCall::new(&db, &auth);
    let (records, total) = records::list(&call, &page).await?;
    Ok(HttpResponse::Ok().json(Listing {
        org_code: auth.org_code(),
        records: &records,
        total,
    }))
}

/// The list's body, written straight from the rows. Members in alphabetical order, like every
/// record's: the bytes a `json!` object (a sorted map) of the same values would give.
#[derive(Serialize)]
struct Listing<'a> {
    org_code: &'a OrgCode,
    records: &'a [Record],
    total: i64,
}

/// The body of one record's answers (see [`Listing`]).
#[derive(Serialize)]
struct Envelope<'a> {
    org_code: &'a OrgCode,
    record: &'a Record,
}

pub async fn create(
    auth: Authorized<WriteData>,
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let input: RecordInput = read_json(&req, payload).await?;
    let (name, value) = match (input.name()?, input.value) {
        (Some(name), Some(value)) => (name, value),
        _ => {
            return Err(ApiError::bad_request(
                "Both 'name' and 'value' fields are required",
            ));
        }
    };
    check_value(&value)?;
    let call = TenantCall::new(&db, &auth);
    let record = records::create(&call, &name, &value).await?;
    let location = format!("/orgs/{}/data/{}", auth.org_code(), record.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(Envelope {
            org_code: auth.org_code(),
            record: &record,
        }))
}

pub async fn get(
    auth: Authorized<ReadData>,
    path: web::Path<(String, String)>,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path.1)?;
    let call = TenantCall::new(&db, &auth);
    let record = records::find(&call, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(Envelope {
        org_code: auth.org_code(),
        record: &record,
    }))
}

pub async fn update(
    auth: Authorized<WriteData>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path.1)?;
    let input: RecordInput = read_json(&req, payload).await?;
    let name = input.name()?;
    if name.is_none() && input.value.is_none() {
        return Err(ApiError::bad_request(
            "Give 'name' and/or 'value' to change",
        ));
    }
    if let Some(value) = &input.value {
        check_value(value)?;
    }
    let mut tx = TenantTx::begin(&db, &auth).await?;
    let result = records::update(&mut tx, id, name.as_ref(), input.value.as_ref()).await;
    let record = tx.finish(result).await?.ok_or_else(|| not_found(id))?;
    Ok(HttpResponse::Ok().json(Envelope {
        org_code: auth.org_code(),
        record: &record,
    }))
}

pub async fn delete(
    auth: Authorized<DeleteData>,
    path: web::Path<(String, String)>,
    db: web::Data<PgPool>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path.1)?;
    let mut tx = TenantTx::begin(&db, &auth).await?;
    let result = records::delete(&mut tx, id).await;
    if !tx.finish(result).await? {
        return Err(not_found(id));
    }
    Ok(HttpResponse::NoContent().finish())
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("Record {id} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_the_bytes_their_json_values_would_be() {
        // What makes them so: a `Value` object is a sorted map (no `preserve_order`).
        assert_eq!(json!({"b": 1, "a": 2}).to_string(), r#"{"a":2,"b":1}"#);
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let record = |id: i64| Record {
            id,
            name: format!("record {id}"),
            value: json!({"zeta": [1, {"b": null, "a": 2.5}], "alpha": "x", "n": id}),
            created_at: at("2026-11-27T10:00:00.123456Z"),
            updated_at: at("2026-11-28T11:30:00Z"),
        };
        let org = OrgCode::parse("org_acme").unwrap();
        let records = vec![record(1), record(2)];
        let listing = Listing {
            org_code: &org,
            records: &records,
            total: 42,
        };
        let as_value = json!({"org_code": &org, "records": &records, "total": 42});
        assert_eq!(
            serde_json::to_string(&listing).unwrap(),
            as_value.to_string()
        );
        let envelope = Envelope {
            org_code: &org,
            record: &records[1],
        };
        let as_value = json!({"org_code": &org, "record": &records[1]});
        assert_eq!(
            serde_json::to_string(&envelope).unwrap(),
            as_value.to_string()
        );
    }

    #[test]
    fn nul_anywhere_in_a_value_is_refused() {
        assert!(check_value(&json!({"a": ["b", {"c": "d"}], "e": 1})).is_ok());
        for bad in [
            json!("a\u{0}"),
            json!([1, ["x\u{0}"]]),
            json!({"k\u{0}": 1}),
            json!({"a": {"b": "\u{0}"}}),
        ] {
            assert!(check_value(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_read_back_as_jsonb_writes_them() {
        // jsonb writes numbers in plain notation (1e308 as 309 digits): reading them back must
        // give the same number, or a stored record could never be read again.
        for f in [
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1.7976931348623157e308,
            0.1,
        ] {
            let plain = format!("{f}");
            assert!(!plain.contains('e'), "{plain}");
            let back: Value = serde_json::from_str(&plain).unwrap();
            assert_eq!(back.as_f64(), Some(f), "{plain}");
        }
    }

    #[test]
    fn page_defaults_and_bounds() {
        assert_eq!(
            page_from_query("").unwrap(),
            Page {
                limit: 100,
                after: 0
            }
        );
        assert_eq!(
            page_from_query("limit=1&after=7").unwrap(),
            Page { limit: 1, after: 7 }
        );
        assert_eq!(
            page_from_query("limit=1000&org_code=org_beta")
                .unwrap()
                .limit,
            1000
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=abc",
            "after=-1",
            "after=abc",
            "limit=1&limit=2",
            "limit=%ZZ",
        ] {
            assert!(page_from_query(bad).is_err(), "{bad}");
        }
    }
}
