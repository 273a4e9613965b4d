//! The resource side: what a token must be before any tenant data is reached.
//!
//! [`verifier::Verifier`] turns a bearer string into [`claims::VerifiedToken`];
//! [`extractor::Authorized`] applies the contract's check table in order and yields an
//! [`OrgContext`] for the route's declared [`scope::Scope`].

mod algorithm;
pub mod assertion;
pub mod claims;
pub mod dpop;
pub mod extractor;
pub mod jose;
pub mod jwk;
pub mod jwks;
pub mod revocation;
pub mod scope;
pub mod verifier;

pub use algorithm::SigningAlgorithm;
pub use extractor::{Authorized, OrgContext};
pub use verifier::{KeySource, Verifier};
