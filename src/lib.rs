//! orgwall: organization-scoped M2M authentication for multi-tenant APIs, with tenant
//! isolation enforced twice: in the verified access token, then by PostgreSQL row-level
//! security keyed on a transaction-local setting derived from that token.

pub mod auth;
pub mod body;
pub mod client_addr;
pub mod commands;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod error;
pub mod issuer;
pub mod metrics;
pub mod roles;
pub mod routes;
pub mod startup;
pub mod telemetry;
pub mod tenant;
pub mod tls;

/// The embedded migrations (migrations/ in sqlx's own format).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
