//! The production-shaped database setup: migrations run as the owner; the service logs in as a
//! runtime role that is neither owner, superuser nor BYPASSRLS, and holds only the privileges of
//! `orgwall_tenant` (tenant tables, under RLS) and `orgwall_issuer` (the issuer's catalogue).

use std::num::NonZeroU32;

use anyhow::{Context, anyhow};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A role name we are willing to put in SQL: lower-case identifier, at most 63 bytes.
pub fn parse_role_name(name: &str) -> anyhow::Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    // The group roles are shared by every orgwall database on the server: `migrate` would give
    // one of them LOGIN and a password.
    if ok
        && !name.starts_with("pg_")
        && !name.starts_with("orgwall_tenant")
        && !GROUP_ROLES.contains(&name)
    {
        Ok(name)
    } else {
        Err(anyhow!(
            "DATABASE_RUNTIME_ROLE: `{name}` must be a lower-case identifier (a-z, 0-9, _), not pg_*, orgwall_tenant or orgwall_issuer"
        ))
    }
}

/// The group roles the migrations create and grant privileges to. Roles are cluster-wide, so on
/// a shared server another database, or an administrator, may have created them first.
pub const GROUP_ROLES: [&str; 2] = ["orgwall_tenant", "orgwall_issuer"];

/// The attributes of an existing role that decide whether orgwall may use it as a group role:
/// one row of `pg_roles`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleAttributes {
    pub rolname: String,
    pub rolcanlogin: bool,
    pub rolsuper: bool,
    pub rolbypassrls: bool,
    pub rolcreaterole: bool,
}

/// Refuses a group role that could log in itself, bypass RLS or hand out roles: orgwall grants
/// it the tenant tables or the issuer's catalogue (signing keys included), so such a role would
/// carry those rights past both walls. The error is one line naming the role.
pub fn check_group_role(role: &RoleAttributes) -> anyhow::Result<()> {
    let unsafe_attributes: Vec<&str> = [
        (role.rolcanlogin, "LOGIN"),
        (role.rolsuper, "SUPERUSER"),
        (role.rolbypassrls, "BYPASSRLS"),
        (role.rolcreaterole, "CREATEROLE"),
    ]
    .into_iter()
    .filter_map(|(has, attribute)| has.then_some(attribute))
    .collect();
    if unsafe_attributes.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{}: existing role has {}; refusing to use it",
            role.rolname,
            unsafe_attributes.join(", ")
        ))
    }
}

/// Checks every role of `names` that exists (in that order) with [`check_group_role`]; a role
/// that does not exist yet passes, since the migrations create it with safe attributes.
/// `migrate` passes [`GROUP_ROLES`] before it applies any migration.
pub async fn check_group_roles(conn: &mut PgConnection, names: &[&str]) -> anyhow::Result<()> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let roles = sqlx::query_as!(
        RoleAttributes,
        r#"select rolname::text as "rolname!", rolcanlogin as "rolcanlogin!",
                  rolsuper as "rolsuper!", rolbypassrls as "rolbypassrls!",
                  rolcreaterole as "rolcreaterole!"
             from pg_roles
            where rolname = any($1::text[])
            order by array_position($1::text[], rolname::text)"#,
        &names
    )
    .fetch_all(&mut *conn)
    .await
    .context("cannot read the attributes of orgwall's group roles")?;
    roles.iter().try_for_each(check_group_role)
}

/// A SCRAM-SHA-256 verifier (RFC 5802, PostgreSQL's format), so that the password itself never
/// reaches the server, its logs or `pg_stat_activity`.
pub fn scram_verifier(password: &SecretString) -> String {
    const ITERATIONS: u32 = 4096;
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .expect("the OS CSPRNG failed");
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ITERATIONS).expect("non-zero"),
        &salt,
        password.expose_secret().as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref())
    )
}

/// The per-database step of `migrate` after the migrations: creates (or brings back into line)
/// the runtime login role when one is configured, then [`restrict_connect`].
pub async fn secure_database(
    conn: &mut PgConnection,
    runtime_role: Option<&(String, SecretString)>,
) -> anyhow::Result<()> {
    if let Some((name, password)) = runtime_role {
        ensure_runtime_role(conn, name, password).await?;
    }
    restrict_connect(conn, runtime_role.map(|(name, _)| name.as_str())).await
}

/// Only the database's owner, the role running this, and `runtime_role` may connect to the
/// current database: CONNECT is revoked from PUBLIC. Roles are cluster-wide and every runtime
/// role is a member of `orgwall_issuer`, which holds the signing keys of every orgwall database
/// on the server; without this, one deployment's runtime role could read another's keys.
/// Idempotent. Database-level privileges are not copied by `create database ... template`, so
/// this runs for every database, after its migrations.
pub async fn restrict_connect(
    conn: &mut PgConnection,
    runtime_role: Option<&str>,
) -> anyhow::Result<()> {
    let runtime_role = runtime_role.map(parse_role_name).transpose()?;
    // The names are quoted by the server (`%I`): a database name may hold any character.
    let statements: Vec<String> = sqlx::query_scalar!(
        r#"select s as "s!"
           from pg_database d,
                unnest(array[
                  format('revoke connect on database %I from public', d.datname),
                  format('grant connect on database %I to %I', d.datname, pg_get_userbyid(d.datdba)),
                  format('grant connect on database %I to %I', d.datname, current_user),
                  case when $1::text is not null
                    then format('grant connect on database %I to %I', d.datname, $1::text) end
                ]) with ordinality as t(s, n)
          where d.datname = current_database() and s is not null
          order by n"#,
        runtime_role
    )
    .fetch_all(&mut *conn)
    .await
    .context("cannot read the database's name and owner")?;
    let mut tx = conn.begin().await?;
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement.as_str()))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot restrict who may connect: `{statement}` failed"))?;
    }
    // REVOKE by a role that holds no grant option only warns: check what it did.
    let public_can_connect = sqlx::query_scalar!(
        r#"select exists (
           select 1
             from pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
            where d.datname = current_database()
              and a.grantee = 0
              and a.privilege_type = 'CONNECT') as "exists!""#,
    )
    .fetch_one(&mut *tx)
    .await?;
    if public_can_connect {
        return Err(anyhow!(
            "cannot revoke CONNECT on the database from PUBLIC: run migrate as the database's owner or a superuser"
        ));
    }
    tx.commit().await?;
    tracing::info!(
        runtime_role = runtime_role.unwrap_or("-"),
        "only the owner and the runtime role may connect to the database"
    );
    Ok(())
}

/// Stores the service's session timeouts (`statement_timeout`, and
/// `idle_in_transaction_session_timeout` as [`crate::db::IDLE_IN_TRANSACTION_TIMEOUT`]) as
/// settings of the role that serves (`runtime_role`, else the role running this) in this
/// database. A direct connection sends them itself as startup options, which take precedence;
/// a transaction-mode pooler such as PgBouncer refuses those options, so through a pooler these
/// stored settings are what applies. Idempotent; runs on every `migrate`.
pub async fn store_session_timeouts(
    conn: &mut PgConnection,
    runtime_role: Option<&str>,
    statement_timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let runtime_role = runtime_role.map(parse_role_name).transpose()?;
    let statement_ms = statement_timeout.as_millis().to_string();
    // Names and values are quoted by the server (`%I`, `%L`).
    let statements: Vec<String> = sqlx::query_scalar!(
        r#"select format('alter role %I in database %I set %s = %L',
                       coalesce($1::text, current_user::text), current_database(),
                       s.name, s.value) as "statement!"
           from (values ('statement_timeout', $2::text),
                        ('idle_in_transaction_session_timeout', $3::text)) as s(name, value)"#,
        runtime_role,
        statement_ms,
        crate::db::IDLE_IN_TRANSACTION_TIMEOUT,
    )
    .fetch_all(&mut *conn)
    .await
    .context("cannot read the database's name")?;
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement.as_str()))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("cannot store the session timeouts: `{statement}` failed"))?;
    }
    Ok(())
}

/// Creates (or brings back into line) the runtime login role and grants it the two roles.
/// Needs a migration role with CREATEROLE and admin rights on `orgwall_tenant`/`orgwall_issuer`
/// (the owner that ran the migrations, or a superuser).
pub async fn ensure_runtime_role(
    conn: &mut PgConnection,
    name: &str,
    password: &SecretString,
) -> anyhow::Result<()> {
    let name = parse_role_name(name)?;
    if password.expose_secret().len() < 16 {
        return Err(anyhow!(
            "DATABASE_RUNTIME_PASSWORD: must be at least 16 characters"
        ));
    }
    let is_owner_or_self = sqlx::query_scalar!(
        r#"select ($1::text = current_user
              or $1::text = (select pg_get_userbyid(datdba) from pg_database
                              where datname = current_database())) as "is!""#,
        name
    )
    .fetch_one(&mut *conn)
    .await?;
    if is_owner_or_self {
        return Err(anyhow!(
            "DATABASE_RUNTIME_ROLE: `{name}` is the database's owner or the role migrate runs as; the runtime role must be a role of its own"
        ));
    }
    let exists = sqlx::query_scalar!(
        r#"select exists (select 1 from pg_roles where rolname = $1) as "exists!""#,
        name
    )
    .fetch_one(&mut *conn)
    .await?;
    let limits = "login nosuperuser nobypassrls nocreatedb nocreaterole inherit noreplication";
    let verb = if exists { "alter" } else { "create" };
    // The verifier's alphabet (base64, digits, `$:+/=`) cannot end the literal.
    let statement = format!(
        r#"{verb} role "{name}" {limits} password '{}'"#,
        scram_verifier(password)
    );
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(&mut *conn)
        .await
        .map_err(|e| anyhow!("DATABASE_RUNTIME_ROLE: cannot {verb} role `{name}`: {e}"))?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"grant orgwall_tenant, orgwall_issuer to "{name}""#
    )))
    .execute(&mut *conn)
    .await
    .with_context(|| {
        format!("DATABASE_RUNTIME_ROLE: cannot grant orgwall_tenant, orgwall_issuer to `{name}`")
    })?;
    tracing::info!(role = name, "runtime login role ready");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names() {
        assert!(parse_role_name("orgwall_app").is_ok());
        for bad in [
            "",
            "Orgwall",
            "pg_read",
            "a-b",
            "x\"; drop",
            "orgwall_tenant",
            "orgwall_issuer",
        ] {
            assert!(parse_role_name(bad).is_err(), "{bad}");
        }
    }

    fn role(name: &str) -> RoleAttributes {
        RoleAttributes {
            rolname: name.into(),
            rolcanlogin: false,
            rolsuper: false,
            rolbypassrls: false,
            rolcreaterole: false,
        }
    }

    #[test]
    fn a_group_role_without_dangerous_attributes_passes() {
        assert!(check_group_role(&role("orgwall_issuer")).is_ok());
    }

    #[test]
    fn a_group_role_with_any_dangerous_attribute_is_refused_in_one_line_naming_it() {
        for name in GROUP_ROLES {
            for attribute in ["LOGIN", "SUPERUSER", "BYPASSRLS", "CREATEROLE"] {
                let mut attributes = role(name);
                match attribute {
                    "LOGIN" => attributes.rolcanlogin = true,
                    "SUPERUSER" => attributes.rolsuper = true,
                    "BYPASSRLS" => attributes.rolbypassrls = true,
                    _ => attributes.rolcreaterole = true,
                }
                let err = check_group_role(&attributes).unwrap_err().to_string();
                assert_eq!(
                    err,
                    format!("{name}: existing role has {attribute}; refusing to use it")
                );
            }
        }
    }

    #[test]
    fn every_dangerous_attribute_is_named_on_the_same_line() {
        let all = RoleAttributes {
            rolname: "orgwall_tenant".into(),
            rolcanlogin: true,
            rolsuper: true,
            rolbypassrls: true,
            rolcreaterole: true,
        };
        assert_eq!(
            check_group_role(&all).unwrap_err().to_string(),
            "orgwall_tenant: existing role has LOGIN, SUPERUSER, BYPASSRLS, CREATEROLE; refusing to use it"
        );
    }

    #[test]
    fn scram_verifier_has_postgres_format() {
        let v = scram_verifier(&SecretString::from("a-long-enough-password"));
        let (head, keys) = v.split_once('$').unwrap();
        assert_eq!(head, "SCRAM-SHA-256");
        assert!(keys.starts_with("4096:"));
        assert_eq!(keys.matches('$').count(), 1);
        assert!(!v.contains("a-long-enough-password"));
    }
}
