//! Scopes as types: a route states the scope it needs in its signature,
//! `Authorized<ReadData>`, and cannot forget to.

/// A permission a route requires from the token.
pub trait Scope: 'static {
    const NAME: &'static str;
}

macro_rules! scopes {
    ($($(#[$doc:meta])* $ty:ident => $name:literal),* $(,)?) => {
        $(
            $(#[$doc])*
            pub struct $ty;
            impl Scope for $ty {
                const NAME: &'static str = $name;
            }
        )*
    };
}

scopes! {
    /// Read the organization's records.
    ReadData => "read:data",
    /// Create and update the organization's records.
    WriteData => "write:data",
    /// Delete the organization's records.
    DeleteData => "delete:data",
    /// Read the organization's users.
    ReadUsers => "read:users",
    /// Read the organization's audit log.
    ReadAudit => "read:audit",
}
