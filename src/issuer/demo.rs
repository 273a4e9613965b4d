//! `orgwall demo`: the tutorial's world, made idempotently, with working credentials printed.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::PgPool;

use super::catalogue;
use crate::auth::OrgContext;
use crate::config::Settings;
use crate::domain::{OrgCode, RecordName};
use crate::routes::records::insert_record;
use crate::tenant::{Db, TenantTx};

pub const AUDIENCE: &str = "https://api.yourapp.com";

const SCOPES: [(&str, &str); 4] = [
    ("read:data", "Read records belonging to the organization"),
    (
        "write:data",
        "Create and update records for the organization",
    ),
    (
        "delete:data",
        "Delete records belonging to the organization",
    ),
    ("read:users", "Read users within the organization"),
];

const ORGS: [(&str, &str, &str); 3] = [
    ("org_acme", "Acme Corp", "Acme Corp API Client"),
    ("org_beta", "Beta Inc", "Beta Inc API Client"),
    ("org_gamma", "Gamma Ltd", "Gamma Ltd API Client"),
];

const RECORDS: [(&str, &str, i64); 3] = [
    ("org_acme", "Acme Record A", 100),
    ("org_acme", "Acme Record B", 200),
    ("org_beta", "Beta Record A", 50),
];

/// One demo app's credentials, as printed.
#[derive(serde::Serialize)]
pub struct DemoApp {
    pub org_code: String,
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Makes sure the world exists; returns fresh credentials for the three apps.
pub async fn ensure_world(db: &Db) -> anyhow::Result<Vec<DemoApp>> {
    let pool = db.pool();
    let scopes: Vec<(String, String)> = SCOPES
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect();
    let api_exists: bool =
        sqlx::query_scalar("select exists (select 1 from apis where audience = $1)")
            .bind(AUDIENCE)
            .fetch_one(pool)
            .await?;
    if api_exists {
        for (name, description) in &scopes {
            catalogue::add_scope(pool, AUDIENCE, name, description).await?;
        }
    } else {
        catalogue::create_api(pool, AUDIENCE, "Multi-Tenant Data API", &scopes, None, None).await?;
    }

    let mut apps = Vec::new();
    for (code, org_name, app_name) in ORGS {
        sqlx::query(
            "insert into organizations (code, name) values ($1, $2) on conflict (code) do nothing",
        )
        .bind(code)
        .bind(org_name)
        .execute(pool)
        .await?;
        let existing: Option<String> = sqlx::query_scalar(
            "select client_id from m2m_apps where org_code = $1 and name = $2 order by created_at limit 1",
        )
        .bind(code)
        .bind(app_name)
        .fetch_optional(pool)
        .await?;
        // Secrets are stored only as hashes: a later run rotates them to print working ones.
        let (client_id, secret) = match existing {
            Some(client_id) => {
                let s = catalogue::rotate_secret(pool, &client_id, Duration::ZERO).await?;
                (s.client_id, s.client_secret)
            }
            None => {
                let a = catalogue::create_app(pool, app_name, Some(code)).await?;
                (a.client_id, a.client_secret)
            }
        };
        catalogue::set_enabled(pool, &client_id, true).await?;
        catalogue::authorize(pool, &client_id, AUDIENCE, "read:data write:data").await?;
        apps.push(DemoApp {
            org_code: code.into(),
            name: app_name.into(),
            client_id,
            client_secret: secret.expose_secret().to_owned(),
        });
    }

    for org in ["org_acme", "org_beta"] {
        seed_records(db, org).await?;
    }
    Ok(apps)
}

/// Seeds an org's tutorial records once: never again after the org has had any record.
async fn seed_records(db: &Db, org: &str) -> anyhow::Result<()> {
    let ctx = OrgContext::for_operator(OrgCode::parse(org).map_err(anyhow::Error::msg)?);
    let mut tx = TenantTx::begin(db, &ctx).await?;
    let result = async {
        let seeded: bool = sqlx::query_scalar(
            "select exists (select 1 from tenant_counters where org_code = $1 and counter = 'records')",
        )
        .bind(org)
        .fetch_one(tx.conn())
        .await?;
        if !seeded {
            for (o, name, value) in RECORDS.iter().filter(|r| r.0 == org) {
                debug_assert_eq!(*o, org);
                let name = RecordName::parse(name.to_string()).expect("demo names are valid");
                insert_record(&mut tx, &name, &json!(value)).await?;
            }
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    tx.finish(result).await.context("seeding demo records")
}

fn walkthrough(public_url: &str, acme: &DemoApp) -> String {
    format!(
        r#"
orgwall demo is ready at {public_url}

1. Get a token for Acme Corp (client credentials):

   TOKEN=$(curl -s -X POST {public_url}/oauth2/token \
     -d grant_type=client_credentials \
     -d client_id={id} \
     -d client_secret={secret} \
     -d audience={AUDIENCE} \
     -d 'scope=read:data write:data' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

2. Read Acme's records:

   curl -s {public_url}/orgs/org_acme/data -H "Authorization: Bearer $TOKEN"

3. Try Beta's records with Acme's token (403):

   curl -s {public_url}/orgs/org_beta/data -H "Authorization: Bearer $TOKEN"

4. Write a record:

   curl -s -X POST {public_url}/orgs/org_acme/data -H "Authorization: Bearer $TOKEN" \
     -H 'Content-Type: application/json' -d '{{"name": "Acme Record C", "value": 350}}'

Credentials for all three apps are on stdout (JSON). Secrets are shown only now: a new run
of `orgwall demo` rotates them. Press Ctrl-C to stop.
"#,
        id = acme.client_id,
        secret = acme.client_secret,
    )
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    crate::cli::migrate_if_needed(&settings).await?;
    let pool: PgPool = crate::db::pool(&settings)?;
    let apps = ensure_world(&Db::new(pool)).await?;
    // Listen first, so that "ready" is true when it is printed.
    let app = crate::startup::Application::build(settings.clone()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "issuer": settings.public_url,
            "token_endpoint": format!("{}/oauth2/token", settings.public_url),
            "audience": AUDIENCE,
            "apps": apps,
        }))?
    );
    eprintln!("{}", walkthrough(&settings.public_url, &apps[0]));
    app.run_until_stopped().await?;
    Ok(())
}
