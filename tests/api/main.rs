//! orgwall's integration tests: one binary, real PostgreSQL, real HTTP, real signed tokens.

mod attacks_hardening;
mod attacks_issuer;
mod attacks_tenant;
mod attacks_verifier;
mod audit;
mod auth_checks;
mod console;
mod deployments;
mod faults;
mod helpers;
mod instances;
mod introspection;
mod issuer;
mod jwks;
mod keybound;
mod lifecycle;
mod metrics;
mod migrations;
mod openapi;
mod pooler;
mod records;
mod second_wall;
mod settings;
mod stack;
mod tls;
mod tutorial;
