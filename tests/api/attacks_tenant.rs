//! Attacks on the tenant boundary (OWASP API1, broken object-level authorization): org A's
//! token against org B's objects through every route and every place an org or id can travel,
//! then the second wall alone (RLS without the application's `where org_code`), then the
//! database catalogue that the second wall depends on.

use orgwall::domain::RecordName;
use orgwall::tenant::TenantTx;
use orgwall::tenant::records;
use orgwall::tenant::users;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::helpers::{TestApp, ctx};

const TENANT_TABLES: [&str; 4] = ["records", "org_users", "org_counters", "audit_events"];
const CATALOGUE_TABLES: [&str; 10] = [
    "apis",
    "api_scopes",
    "organizations",
    "m2m_apps",
    "client_secrets",
    "app_grants",
    "signing_keys",
    "app_token_cutoffs",
    "org_token_cutoffs",
    "revoked_tokens",
];

/// Tables holding tenant data: those with an `org_code` that `orgwall_tenant` can reach (at
/// least [`TENANT_TABLES`]; later features may add more, and these tests cover them too).
async fn tenant_tables(pool: &PgPool) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p') and n.nspname = 'public'
            and exists (select 1 from pg_attribute a
                         where a.attrelid = c.oid and a.attname = 'org_code' and not a.attisdropped)
            and has_table_privilege('orgwall_tenant', c.oid, 'select, insert, update, delete')
          order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for known in TENANT_TABLES {
        assert!(
            tables.iter().any(|t| t == known),
            "{known} is not a tenant table"
        );
    }
    tables
}

/// Every row of every tenant table for `org`, every column as PostgreSQL prints it
/// (timestamps to the microsecond), read as the superuser: "byte-for-byte unchanged".
async fn snapshot(pool: &PgPool, org: &str) -> Vec<String> {
    let mut out = Vec::new();
    for table in tenant_tables(pool).await {
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "select t::text from {table} t where org_code = $1 order by t::text"
        )))
        .bind(org)
        .fetch_all(pool)
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| format!("{table} {r}")));
    }
    out
}

/// Acme: one record, one user. Beta: three records, two users.
async fn seed(app: &TestApp) {
    app.create_record("org_acme", "Acme Record A", json!(100))
        .await;
    for (name, value) in [
        ("Beta Record A", 50),
        ("Beta Record B", 60),
        ("Beta Record C", 70),
    ] {
        app.create_record("org_beta", name, json!(value)).await;
    }
    let db = app.admin_pool.clone();
    for (org, email, name) in [
        ("org_acme", "ada@acme.test", "Ada"),
        ("org_beta", "bo@beta.test", "Bo"),
        ("org_beta", "cy@beta.test", "Cy"),
    ] {
        let mut tx = TenantTx::begin(&db, &ctx(org)).await.unwrap();
        users::insert_user(&mut tx, email, name).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("x-org-code", "org_beta")
        .header("x-tenant-id", "org_beta");
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The seeded orgs, a token of org A with every scope, and org B's rows before the attack.
async fn seeded_with_acme_token() -> (TestApp, String, Vec<String>) {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let acme = app
        .issuer
        .token("org_acme", "read:data write:data delete:data read:users");
    let beta_before = snapshot(&app.admin_pool, "org_beta").await;
    let seeded = |table: &str| {
        beta_before
            .iter()
            .filter(|r| r.starts_with(&format!("{table} ")))
            .count()
    };
    assert_eq!(
        (seeded("records"), seeded("org_users")),
        (3, 2),
        "{beta_before:?}"
    );
    (app, acme, beta_before)
}

/// Org B's rows are as they were, and no row belongs to a third org.
async fn assert_org_b_untouched(app: &TestApp, beta_before: &[String]) {
    assert_eq!(
        snapshot(&app.admin_pool, "org_beta").await,
        beta_before,
        "org B's rows changed"
    );
    // Nothing was written under any other org either.
    let orgs: Vec<String> = sqlx::query_scalar("select distinct org_code from records order by 1")
        .fetch_all(&app.admin_pool)
        .await
        .unwrap();
    assert_eq!(orgs, ["org_acme", "org_beta"]);
}

#[tokio::test]
async fn org_a_cannot_reach_org_b_by_naming_it_in_the_path_or_by_org_bs_ids() {
    let (app, acme, beta_before) = seeded_with_acme_token().await;
    let patch = json!({"name": "pwned", "value": "pwned"});
    let post = json!({"name": "smuggled", "value": 1});

    // Org B in the path, however spelled: 403 (or 404 when the router refuses the spelling).
    let mut refused: Vec<(&str, String, Option<Value>)> = Vec::new();
    for org in [
        "org_beta",
        "ORG_BETA",
        "org%5Fbeta",
        "org_beta%20",
        "org_beta%00",
        "org_acme%2F..%2Forg_beta",
        "org_acme%2F%2E%2E%2Forg_beta",
        "org_beta'%20or%20'1'='1",
        "%2A",
    ] {
        refused.push(("GET", format!("/orgs/{org}/data"), None));
        refused.push(("GET", format!("/orgs/{org}/data?limit=1000"), None));
        refused.push(("POST", format!("/orgs/{org}/data"), Some(post.clone())));
        refused.push(("GET", format!("/orgs/{org}/users"), None));
        for id in ["1", "2", "3"] {
            refused.push(("GET", format!("/orgs/{org}/data/{id}"), None));
            refused.push((
                "PATCH",
                format!("/orgs/{org}/data/{id}"),
                Some(patch.clone()),
            ));
            refused.push(("DELETE", format!("/orgs/{org}/data/{id}"), None));
        }
    }
    // Org A's own path, ids that exist only in B (A has record 1 only); with B named in the
    // query and the body too.
    for id in ["2", "3", "02", "+3"] {
        for query in ["", "?org_code=org_beta", "?org_code=org_beta&org=org_beta"] {
            let path = format!("/orgs/org_acme/data/{id}{query}");
            refused.push(("GET", path.clone(), None));
            refused.push(("DELETE", path.clone(), None));
            refused.push(("PATCH", path.clone(), Some(patch.clone())));
            refused.push((
                "PATCH",
                path,
                Some(json!({"name": "pwned", "org_code": "org_beta"})),
            ));
        }
    }
    for (method, path, body) in &refused {
        let (status, text) = send(&app, method, path, &acme, body.as_ref()).await;
        assert!(
            status == 403 || status == 404,
            "{method} {path}: {status} {text}"
        );
        assert!(!text.contains("Beta"), "{method} {path} leaked: {text}");
    }

    assert_org_b_untouched(&app, &beta_before).await;
    assert_eq!(app.rows_of("org_acme").await.len(), 1);
}

#[tokio::test]
async fn org_b_named_in_the_query_body_or_headers_of_org_as_routes_reaches_only_org_a() {
    let (app, acme, beta_before) = seeded_with_acme_token().await;

    // Org B named in query, body or headers on A's own routes: A's data only.
    let (status, text) = send(
        &app,
        "GET",
        "/orgs/org_acme/data?org_code=org_beta",
        &acme,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (body["org_code"].as_str(), body["total"].as_i64()),
        (Some("org_acme"), Some(1))
    );
    assert_eq!(body["records"][0]["name"], "Acme Record A");
    let (status, text) = send(
        &app,
        "GET",
        "/orgs/org_acme/data/1?org_code=org_beta",
        &acme,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        text.contains("Acme Record A") && !text.contains("Beta"),
        "{text}"
    );
    let (status, text) = send(
        &app,
        "GET",
        "/orgs/org_acme/users?org_code=org_beta",
        &acme,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        text.contains("ada@acme.test") && !text.contains("beta"),
        "{text}"
    );
    let moved = json!({"name": "still Acme's", "org_code": "org_beta"});
    let (status, text) = send(
        &app,
        "PATCH",
        "/orgs/org_acme/data/1?org_code=org_beta",
        &acme,
        Some(&moved),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let smuggled = json!({"name": "Acme's own", "value": 1, "org_code": "org_beta"});
    let (status, _) = send(
        &app,
        "POST",
        "/orgs/org_acme/data?org_code=org_beta",
        &acme,
        Some(&smuggled),
    )
    .await;
    assert_eq!(status, 201);
    // An id in the body is not a way to address a row either.
    for (method, path) in [
        ("POST", "/orgs/org_acme/data"),
        ("PATCH", "/orgs/org_acme/data/1"),
    ] {
        let body = json!({"id": 2, "name": "x", "value": 1});
        let (status, text) = send(&app, method, path, &acme, Some(&body)).await;
        assert_eq!(status, 400, "{method} {path}: {text}");
    }

    assert_org_b_untouched(&app, &beta_before).await;
    let acme_rows = app.rows_of("org_acme").await;
    assert_eq!(
        acme_rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["still Acme's", "Acme's own"]
    );
}

#[tokio::test]
async fn a_signed_org_code_outside_the_alphabet_reaches_nothing() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let beta_before = snapshot(&app.admin_pool, "org_beta").await;

    for (org, path_org) in [
        ("org_beta' or '1'='1", "org_beta'%20or%20'1'='1"),
        ("org_beta;", "org_beta;"),
        ("org beta", "org%20beta"),
        ("%", "%25"),
    ] {
        let token = app
            .issuer
            .token(org, "read:data write:data delete:data read:users");
        for (method, path) in [
            ("GET", format!("/orgs/{path_org}/data")),
            ("GET", format!("/orgs/{path_org}/data/1")),
            ("DELETE", format!("/orgs/{path_org}/data/1")),
            ("GET", format!("/orgs/{path_org}/users")),
        ] {
            let (status, text) = send(&app, method, &path, &token, None).await;
            assert!(
                status == 403 || status == 404,
                "{org}: {method} {path}: {status} {text}"
            );
        }
    }
    assert_eq!(snapshot(&app.admin_pool, "org_beta").await, beta_before);
}

// ---- The second wall alone -------------------------------------------------------------

/// Test-only variants of the route queries with their `where org_code` removed.
mod unfiltered {
    use orgwall::tenant::TenantTx;

    pub async fn names(tx: &mut TenantTx, table: &str) -> Vec<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select org_code || ':' || t::text from {table} t order by 1"
        )))
        .fetch_all(tx.conn())
        .await
        .unwrap()
    }

    pub async fn find_record(tx: &mut TenantTx, id: i64) -> Vec<String> {
        sqlx::query_scalar("select org_code || ':' || name from records where id = $1")
            .bind(id)
            .fetch_all(tx.conn())
            .await
            .unwrap()
    }

    pub async fn execute(tx: &mut TenantTx, sql: &'static str) -> Result<u64, sqlx::Error> {
        sqlx::query(sql)
            .execute(tx.conn())
            .await
            .map(|done| done.rows_affected())
    }
}

#[tokio::test]
async fn without_the_app_filter_rls_alone_limits_reads_updates_and_deletes_to_the_tenant() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let db = app.admin_pool.clone();
    let beta_before = snapshot(&app.admin_pool, "org_beta").await;

    let tables = tenant_tables(&app.admin_pool).await;

    let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
    for table in &tables {
        let seen = unfiltered::names(&mut tx, table).await;
        if TENANT_TABLES.contains(&table.as_str()) {
            assert!(!seen.is_empty(), "{table}: acme has rows");
        }
        assert!(
            seen.iter().all(|r| r.starts_with("org_acme:")),
            "{table} leaked: {seen:?}"
        );
    }
    // Record 1 exists in both orgs; an id-only lookup finds Acme's alone.
    assert_eq!(
        unfiltered::find_record(&mut tx, 1).await,
        ["org_acme:Acme Record A"]
    );
    assert!(unfiltered::find_record(&mut tx, 3).await.is_empty());
    let counts: (i64, i64, Option<i64>) = sqlx::query_as(
        "select count(*), (select count(*) from org_users), (select max(id) from records) from records",
    )
    .fetch_one(tx.conn())
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, Some(1)));
    // Writes without a filter touch exactly Acme's rows.
    let changes = [
        (
            "update records set name = name || ' (touched)', updated_at = now()",
            1,
        ),
        ("update records set value = '0' where id = 3", 0),
        ("update org_users set name = 'touched'", 1),
        (
            "update org_counters set last_user_id = last_user_id + 100",
            1,
        ),
        ("delete from records where id = 2", 0),
        ("delete from org_users", 1),
    ];
    for (sql, expected) in changes {
        assert_eq!(
            unfiltered::execute(&mut tx, sql).await.unwrap(),
            expected,
            "{sql}"
        );
    }
    tx.commit().await.unwrap();

    assert_eq!(
        snapshot(&app.admin_pool, "org_beta").await,
        beta_before,
        "an unfiltered statement reached org B"
    );
    assert_eq!(
        app.rows_of("org_acme").await[0].1,
        "Acme Record A (touched)"
    );
    let acme_users: i64 =
        sqlx::query_scalar("select count(*) from org_users where org_code = 'org_acme'")
            .fetch_one(&app.admin_pool)
            .await
            .unwrap();
    assert_eq!(acme_users, 0);
}

#[tokio::test]
async fn without_the_app_filter_rls_alone_refuses_writes_for_another_tenant() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let db = app.admin_pool.clone();
    let beta_before = snapshot(&app.admin_pool, "org_beta").await;

    for sql in [
        "insert into org_users (org_code, id, email, name) values ('org_beta', 9, 'x@y.z', 'x')",
        "insert into org_counters (org_code) values ('org_gamma')",
        "insert into org_counters (org_code, last_record_id) values ('org_beta', 1)
           on conflict (org_code) do update set last_record_id = 1",
        "update org_users set org_code = 'org_beta'",
        "update org_counters set org_code = 'org_beta'",
        "update records set org_code = 'org_beta', id = id + 100",
        // TRUNCATE ignores RLS: the tenant role must not hold it at all.
        "truncate records",
        "truncate org_users, org_counters",
        "delete from org_counters",
    ] {
        let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
        let err = unfiltered::execute(&mut tx, sql).await.expect_err(sql);
        tx.rollback().await.unwrap();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{sql}: {err}"
        );
    }
    assert_eq!(snapshot(&app.admin_pool, "org_beta").await, beta_before);
}

#[tokio::test]
async fn when_the_app_filter_and_the_database_context_disagree_the_route_queries_reach_nothing() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let db = app.admin_pool.clone();
    let before = (
        snapshot(&app.admin_pool, "org_acme").await,
        snapshot(&app.admin_pool, "org_beta").await,
    );
    // The app's filter says Acme (tx.org()); the database context is switched to Beta, as if
    // a bug set the wrong context. Each wall must then refuse on its own.
    let disagreeing = || async {
        let mut tx = TenantTx::begin(&db, &ctx("org_acme")).await.unwrap();
        sqlx::query("select set_config('app.org_code', 'org_beta', true)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx
    };
    let name = RecordName::parse("smuggled".into()).unwrap();

    // (List, get and create run through the tenant_* functions, whose filter and context come
    // from one argument and cannot disagree; the transactional queries are tested here, and
    // the per-org counter they share with create.)
    let mut tx = disagreeing().await;
    for id in 1..=3 {
        let updated = records::update(&mut tx, id, Some(&name), Some(&json!(0)))
            .await
            .unwrap();
        assert!(updated.is_none(), "update {id} reached a row");
        assert!(!records::delete(&mut tx, id).await.unwrap());
    }
    assert!(users::list_users(&mut tx).await.unwrap().is_empty());
    tx.commit().await.unwrap();

    let mut tx = disagreeing().await;
    let err = sqlx::query("select tenant_take_ids('org_acme', 1, 0, 0)")
        .execute(tx.conn())
        .await
        .expect_err("Acme's record counter under Beta's context");
    tx.rollback().await.unwrap();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );
    let mut tx = disagreeing().await;
    let err = users::insert_user(&mut tx, "eve@acme.test", "Eve")
        .await
        .expect_err("user insert for Acme under Beta's context");
    tx.rollback().await.unwrap();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );

    assert_eq!(
        (
            snapshot(&app.admin_pool, "org_acme").await,
            snapshot(&app.admin_pool, "org_beta").await
        ),
        before
    );
}

// ---- The catalogue the second wall stands on -------------------------------------------

/// Tables (outside pg_catalog and information_schema) on which `orgwall_tenant` holds any
/// privilege, with (rls enabled, rls forced, first primary-key column, has org_code).
async fn tenant_reachable_tables(pool: &PgPool) -> Vec<(String, bool, bool, Option<String>, bool)> {
    sqlx::query_as(
        "select c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                (select a.attname::text
                   from pg_index i
                   join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                  where i.indrelid = c.oid and i.indisprimary),
                exists (select 1 from pg_attribute a
                         where a.attrelid = c.oid and a.attname = 'org_code' and not a.attisdropped)
           from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p', 'v', 'm', 'f')
            and n.nspname not in ('pg_catalog', 'information_schema')
            and n.nspname not like 'pg_toast%'
            and (has_table_privilege('orgwall_tenant', c.oid, 'select, insert, update, delete, truncate, references, trigger')
                 or has_any_column_privilege('orgwall_tenant', c.oid, 'select, insert, update, references'))
          order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// (table, policy, command, USING, WITH CHECK) from pg_policies.
type Policy = (String, String, String, Option<String>, Option<String>);

#[tokio::test]
async fn every_table_the_tenant_role_reaches_has_forced_rls_keyed_on_a_leading_org_code() {
    let app = TestApp::spawn().await;
    let pool = &app.admin_pool;

    let reachable = tenant_reachable_tables(pool).await;
    let names: Vec<&str> = reachable.iter().map(|t| t.0.as_str()).collect();
    for known in TENANT_TABLES {
        assert!(
            names.contains(&known),
            "the tenant role cannot reach {known}: {names:?}"
        );
    }
    for (table, enabled, forced, first_pk, has_org_code) in &reachable {
        assert!(*has_org_code, "{table} has no org_code");
        assert!(*enabled, "{table}: row-level security not enabled");
        assert!(*forced, "{table}: row-level security not forced");
        assert_eq!(
            first_pk.as_deref(),
            Some("org_code"),
            "{table}: primary key"
        );
    }
    // Every table that has an org_code and that the tenant role can reach is among those; the
    // catalogue's m2m_apps has an org_code but is not tenant data.
    let with_org_code: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
          join pg_attribute a on a.attrelid = c.oid and a.attname = 'org_code' and not a.attisdropped
         where c.relkind in ('r', 'p') and n.nspname = 'public' order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in &with_org_code {
        assert!(
            names.contains(&table.as_str()) || CATALOGUE_TABLES.contains(&table.as_str()),
            "{table} has org_code but is neither a tenant table nor the issuer's catalogue"
        );
    }

    // Every policy on them compares org_code with the setting, for reads and for writes, and
    // none is permissive to everyone by `true`.
    let policies: Vec<Policy> = sqlx::query_as(
        "select tablename::text, policyname::text, cmd, qual, with_check from pg_policies
          where schemaname = 'public' order by 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in &names {
        assert!(
            policies.iter().any(|p| p.0 == *table),
            "{table} has no policy"
        );
    }
    for (table, policy, cmd, qual, with_check) in &policies {
        let keyed = |e: &Option<String>| {
            e.as_deref().is_some_and(|e| {
                e.contains("org_code") && e.contains("current_setting('app.org_code'")
            })
        };
        assert!(keyed(qual), "{table}.{policy} ({cmd}) USING: {qual:?}");
        assert!(
            keyed(with_check) || (cmd == "SELECT" || cmd == "DELETE"),
            "{table}.{policy} ({cmd}) WITH CHECK: {with_check:?}"
        );
    }

    // Every unique constraint and foreign key among tenant tables includes org_code.
    let constraints: Vec<(String, String, bool)> = sqlx::query_as(
        "select c.conrelid::regclass::text, c.conname::text,
                exists (select 1 from pg_attribute a
                         where a.attrelid = c.conrelid and a.attnum = any (c.conkey)
                           and a.attname = 'org_code')
           from pg_constraint c
          where c.contype in ('p', 'u', 'f', 'x')
            and c.conrelid::regclass::text = any ($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(constraints.len() >= 3);
    for (table, name, has_org) in &constraints {
        assert!(has_org, "{table}.{name} does not include org_code");
    }
    let unique_indexes: Vec<(String, bool)> = sqlx::query_as(
        "select i.indexrelid::regclass::text,
                exists (select 1 from pg_attribute a
                         where a.attrelid = i.indrelid and a.attnum = any (i.indkey)
                           and a.attname = 'org_code')
           from pg_index i
          where i.indisunique and i.indrelid::regclass::text = any ($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    .unwrap();
    for (index, has_org) in &unique_indexes {
        assert!(has_org, "unique index {index} does not include org_code");
    }
}

const SECURITY_DEFINER_FUNCTIONS: &str = "select p.oid::regprocedure::text from pg_proc p
      join pg_namespace n on n.oid = p.pronamespace
     where n.nspname not in ('pg_catalog', 'information_schema') and p.prosecdef";

/// Views and materialized views the tenant role can read that run with their owner's rights
/// (and so bypass RLS for their owner).
const OWNER_RIGHTS_VIEWS: &str = "select c.relname::text from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('v', 'm')
       and n.nspname not in ('pg_catalog', 'information_schema')
       and has_table_privilege('orgwall_tenant', c.oid, 'select')
       and not (c.relkind = 'v'
                and coalesce(c.reloptions, '{}') && array['security_invoker=true', 'security_invoker=on', 'security_invoker=1'])";

#[tokio::test]
async fn no_security_definer_function_and_no_owner_rights_view_can_bypass_rls() {
    let app = TestApp::spawn().await;
    let pool = &app.admin_pool;

    let definers: Vec<String> = sqlx::query_scalar(SECURITY_DEFINER_FUNCTIONS)
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(
        definers.is_empty(),
        "SECURITY DEFINER functions: {definers:?}"
    );
    let views: Vec<String> = sqlx::query_scalar(OWNER_RIGHTS_VIEWS)
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(views.is_empty(), "views bypassing RLS: {views:?}");

    // The checks can fail: each finds what a bad migration would add (rolled back).
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(
        "begin;
         create function leak() returns bigint language sql security definer
           as 'select count(*) from records';
         create view all_records as select * from records;
         create view all_records_invoker with (security_invoker = true) as select * from records;
         grant select on all_records, all_records_invoker to orgwall_tenant;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let definers: Vec<String> = sqlx::query_scalar(SECURITY_DEFINER_FUNCTIONS)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let views: Vec<String> = sqlx::query_scalar(OWNER_RIGHTS_VIEWS)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql("rollback").execute(&mut *conn).await.unwrap();
    assert_eq!(definers, ["leak()"]);
    assert_eq!(views, ["all_records"]);
}

#[tokio::test]
async fn the_tenant_role_is_unprivileged_and_reaches_no_issuer_catalogue_table() {
    let app = TestApp::spawn().await;
    let pool = &app.admin_pool;

    let (superuser, bypass, login, create_role, create_db): (bool, bool, bool, bool, bool) =
        sqlx::query_as(
            "select rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb
               from pg_roles where rolname = 'orgwall_tenant'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(!superuser && !bypass && !login && !create_role && !create_db);
    let owned: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_roles r on r.oid = c.relowner
          where r.rolname = 'orgwall_tenant'
         union all
         select p.proname::text from pg_proc p join pg_roles r on r.oid = p.proowner
          where r.rolname = 'orgwall_tenant'
         union all
         select n.nspname::text from pg_namespace n join pg_roles r on r.oid = n.nspowner
          where r.rolname = 'orgwall_tenant'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(owned.is_empty(), "orgwall_tenant owns {owned:?}");
    // It inherits nothing that could lift those limits.
    let memberships: Vec<String> = sqlx::query_scalar(
        "select g.rolname::text from pg_auth_members m
           join pg_roles g on g.oid = m.roleid
           join pg_roles t on t.oid = m.member
          where t.rolname = 'orgwall_tenant'
            and (g.rolsuper or g.rolbypassrls
                 or g.rolname in ('pg_read_all_data', 'pg_write_all_data', 'orgwall_issuer'))",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        memberships.is_empty(),
        "orgwall_tenant is a member of {memberships:?}"
    );
    let can_create: bool =
        sqlx::query_scalar("select has_schema_privilege('orgwall_tenant', 'public', 'create')")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(!can_create, "orgwall_tenant can create objects in public");

    // No privilege at all on the issuer's catalogue, nor on any sequence.
    for table in CATALOGUE_TABLES {
        let (any_table, any_column): (bool, bool) = sqlx::query_as(
            "select has_table_privilege('orgwall_tenant', $1::regclass,
                      'select, insert, update, delete, truncate, references, trigger'),
                    has_any_column_privilege('orgwall_tenant', $1::regclass,
                      'select, insert, update, references')",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(!any_table && !any_column, "orgwall_tenant reaches {table}");
        // And in practice: a tenant transaction cannot read it.
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("begin; set local role orgwall_tenant")
            .execute(&mut *conn)
            .await
            .unwrap();
        let read = sqlx::query(AssertSqlSafe(format!("select 1 from {table} limit 1")))
            .execute(&mut *conn)
            .await;
        sqlx::raw_sql("rollback").execute(&mut *conn).await.unwrap();
        let err = read.expect_err(table);
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{table}: {err}"
        );
    }
    let sequences: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind = 'S' and n.nspname = 'public'
            and case when c.relkind = 'S'
                     then has_sequence_privilege('orgwall_tenant', c.oid, 'usage, select, update')
                end",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        sequences.is_empty(),
        "orgwall_tenant uses sequences {sequences:?}"
    );
    // TRUNCATE, REFERENCES and TRIGGER ignore or sidestep RLS: not on tenant tables either.
    for table in tenant_tables(pool).await {
        let risky: bool = sqlx::query_scalar(
            "select has_table_privilege('orgwall_tenant', $1::regclass, 'truncate, references, trigger')",
        )
        .bind(&table)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(
            !risky,
            "orgwall_tenant may truncate/reference/trigger {table}"
        );
    }
}

/// Why `tables` could not be distributed by `org_code` (Citus, colocated): a primary key that
/// does not start with `org_code`, a unique index or exclusion constraint without it, a foreign
/// key among them that does not pair `org_code` with `org_code`, a foreign key between one of
/// them and any other table. One line per problem; empty when there is none.
async fn distribution_violations(pool: &PgPool, tables: &[String]) -> Vec<String> {
    sqlx::query_scalar(
        "select t.name || ': the primary key does not start with org_code'
           from unnest($1::text[]) t(name)
          where not exists (
                select 1 from pg_index i
                  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                 where i.indrelid = to_regclass(t.name) and i.indisprimary
                   and a.attname = 'org_code')
         union all
         select i.indrelid::regclass::text || ': unique index ' || i.indexrelid::regclass::text
                || ' does not include org_code'
           from pg_index i
          where i.indisunique and i.indrelid::regclass::text = any ($1)
            and not exists (select 1 from pg_attribute a
                             where a.attrelid = i.indrelid and a.attnum = any (i.indkey)
                               and a.attname = 'org_code')
         union all
         select c.conrelid::regclass::text || ': constraint ' || c.conname
                || ' does not include org_code'
           from pg_constraint c
          where c.contype = 'x' and c.conrelid::regclass::text = any ($1)
            and not exists (select 1 from pg_attribute a
                             where a.attrelid = c.conrelid and a.attnum = any (c.conkey)
                               and a.attname = 'org_code')
         union all
         select c.conrelid::regclass::text || ': foreign key ' || c.conname || ' to '
                || c.confrelid::regclass::text
                || case when c.conrelid::regclass::text = any ($1)
                             and c.confrelid::regclass::text = any ($1)
                        then ' does not pair org_code with org_code'
                        else ' crosses between tenant data and other tables' end
           from pg_constraint c
          where c.contype = 'f'
            and (c.conrelid::regclass::text = any ($1) or c.confrelid::regclass::text = any ($1))
            and not (c.conrelid::regclass::text = any ($1)
                     and c.confrelid::regclass::text = any ($1)
                     and exists (
                       select 1 from unnest(c.conkey, c.confkey) k(l, r)
                         join pg_attribute la on la.attrelid = c.conrelid and la.attnum = k.l
                         join pg_attribute ra on ra.attrelid = c.confrelid and ra.attnum = k.r
                        where la.attname = 'org_code' and ra.attname = 'org_code'))
          order by 1",
    )
    .bind(tables)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_tenant_table_is_distributable_by_org_code_as_docs_scale_md_distributes_it() {
    let app = TestApp::spawn().await;
    let pool = &app.admin_pool;
    let tables = tenant_tables(pool).await;

    let violations = distribution_violations(pool, &tables).await;
    assert!(violations.is_empty(), "{violations:#?}");

    // The distribution DDL in the docs names every tenant table.
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scale.md"))
        .expect("docs/scale.md");
    for table in &tables {
        assert!(
            doc.contains(&format!("create_distributed_table('{table}', 'org_code'")),
            "docs/scale.md does not distribute {table}"
        );
    }

    // The check sees each kind of mistake (on tables of this test's database only).
    sqlx::raw_sql(
        "create table scratch_parent (
           org_code text not null, id bigint not null, code text unique,
           primary key (org_code, id));
         create table scratch_child (
           id bigint primary key, org_code text not null, parent_id bigint, parent_code text,
           other_org text,
           foreign key (org_code, parent_id) references scratch_parent (org_code, id),
           constraint child_by_code foreign key (parent_code) references scratch_parent (code),
           constraint child_by_other_org foreign key (other_org, parent_id)
             references scratch_parent (org_code, id));",
    )
    .execute(pool)
    .await
    .unwrap();
    let scratch = ["scratch_parent".to_owned(), "scratch_child".to_owned()];
    let violations = distribution_violations(pool, &scratch).await;
    assert_eq!(
        violations,
        [
            "scratch_child: foreign key child_by_code to scratch_parent does not pair org_code with org_code",
            "scratch_child: foreign key child_by_other_org to scratch_parent does not pair org_code with org_code",
            "scratch_child: the primary key does not start with org_code",
            "scratch_child: unique index scratch_child_pkey does not include org_code",
            "scratch_parent: unique index scratch_parent_code_key does not include org_code",
        ]
    );
    sqlx::raw_sql(
        "alter table scratch_parent add constraint parent_org
           foreign key (org_code) references organizations (code)",
    )
    .execute(pool)
    .await
    .unwrap();
    let violations = distribution_violations(pool, &scratch[..1]).await;
    assert!(
        violations.iter().any(|v| v
            == "scratch_parent: foreign key parent_org to organizations crosses between tenant data and other tables"),
        "{violations:#?}"
    );
}
