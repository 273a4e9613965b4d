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
use sqlx::{AssertSqlSafe, PgConnection};

/// A role name we are willing to put in SQL: lower-case identifier, at most 63 bytes.
pub fn parse_role_name(name: &str) -> anyhow::Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok && !name.starts_with("pg_") && !name.starts_with("orgwall_tenant") {
        Ok(name)
    } else {
        Err(anyhow!(
            "DATABASE_RUNTIME_ROLE: `{name}` must be a lower-case identifier (a-z, 0-9, _), not pg_*"
        ))
    }
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
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_roles where rolname = $1)")
            .bind(name)
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
        ] {
            assert!(parse_role_name(bad).is_err(), "{bad}");
        }
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
