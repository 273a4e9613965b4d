//! orgwall's integration tests: one binary, real PostgreSQL, real HTTP, real signed tokens.

mod auth_checks;
mod helpers;
mod issuer;
mod jwks;
mod records;
mod second_wall;
mod stack;
mod tls;
mod tutorial;
