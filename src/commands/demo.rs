//! `orgwall demo`: the tutorial's world, made idempotently, with working credentials printed.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::PgPool;

use crate::auth::OrgContext;
use crate::config::Settings;
use crate::domain::{
    ApiName, AppName, Audience, OrgCode, OrgName, RecordName, ScopeDef, ScopeName,
};
use crate::issuer::catalogue::{self, NewApi};
use crate::tenant::{TenantCall, TenantTx, records};

pub const AUDIENCE: &str = "https://api.yourapp.com";

const SCOPES: [(&str, &str); 5] = [
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
    ("read:audit", "Read the organization's audit log"),
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
pub async fn ensure_world(pool: &PgPool) -> anyhow::Result<Vec<DemoApp>> {
    // The constants above are valid by construction; parsing them is the one path in.
    let valid = "the demo's constants are valid";
    let scopes: Vec<ScopeDef> = SCOPES
        .iter()
        .map(|(name, description)| ScopeDef {
            name: ScopeName::parse(name).expect(valid),
            description: description.to_string(),
        })
        .collect();
    if catalogue::api_exists(pool, AUDIENCE).await? {
        for scope in &scopes {
            catalogue::add_scope(pool, AUDIENCE, scope).await?;
        }
    } else {
        let api = NewApi::new(
            Audience::parse(AUDIENCE).expect(valid),
            ApiName::parse("Multi-Tenant Data API").expect(valid),
            scopes,
            None,
            None,
        )?;
        catalogue::create_api(pool, &api).await?;
    }

    let mut apps = Vec::new();
    for (code, org_name, app_name) in ORGS {
        let org = OrgCode::parse(code).expect(valid);
        let name = AppName::parse(app_name).expect(valid);
        catalogue::ensure_org(pool, &org, &OrgName::parse(org_name).expect(valid)).await?;
        let existing = catalogue::find_app_by_name(pool, &org, &name).await?;
        // Secrets are stored only as hashes: a later run rotates them to print working ones.
        let (client_id, secret) = match existing {
            Some(client_id) => {
                let s = catalogue::rotate_secret(pool, &client_id, Duration::ZERO).await?;
                (s.client_id, s.client_secret)
            }
            None => {
                let a = catalogue::create_app(pool, &name, Some(&org), false).await?;
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
        seed_records(pool, org).await?;
    }
    Ok(apps)
}

/// Seeds an org's tutorial records once: never again after the org has had any record.
async fn seed_records(pool: &PgPool, org: &str) -> anyhow::Result<()> {
    let ctx = OrgContext::for_operator(OrgCode::parse(org).map_err(anyhow::Error::msg)?);
    let mut tx = TenantTx::begin(pool, &ctx).await?;
    let result = records::ever_created(&mut tx).await;
    if tx.finish(result).await.context("seeding demo records")? {
        return Ok(());
    }
    let call = TenantCall::new(pool, &ctx);
    for (_, name, value) in RECORDS.iter().filter(|r| r.0 == org) {
        let name = RecordName::parse(name.to_string()).expect("demo names are valid");
        records::create(&call, &name, &json!(value))
            .await
            .context("seeding demo records")?;
    }
    Ok(())
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
    super::migrate_if_needed(&settings).await?;
    let pool: PgPool = crate::db::pool(&settings)?;
    let apps = ensure_world(&pool).await?;
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
