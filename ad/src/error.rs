//! Errors of the Active Directory adapter: one variant per failed step, naming the object and
//! the rule. No variant carries a password: LDAP results never echo attribute values, and the
//! bind identity is a name, not a credential.

use crate::account::NameError;
use crate::escape::EscapeError;
use crate::guid::GuidError;
use crate::security_descriptor::SdError;
use crate::sid::SidError;

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdError {
    /// The configuration is unusable (bad URL, unknown scheme).
    #[error("AD configuration: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The CA bundle could not be read or holds no usable certificate.
    #[error("AD configuration: CA bundle {path}: {reason}")]
    CaBundle { path: String, reason: String },
    /// A password would travel over an unencrypted connection; refused before connecting.
    #[error("{operation} sends a password and is refused over plain LDAP ({url}); use ldaps:// or StartTLS")]
    PlaintextRefused { operation: &'static str, url: String },
    /// TCP or TLS connection to the DC failed or timed out.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The DC rejected or did not answer the bind.
    #[error("bind as {who} failed: {source}")]
    Bind {
        who: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// A search failed or timed out.
    #[error("search under {base} failed: {source}")]
    Search {
        base: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// Adding an object failed.
    #[error("cannot create {dn}: {source}")]
    Add {
        dn: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// Modifying an object failed.
    #[error("cannot modify {attribute} of {dn}: {source}")]
    Modify {
        dn: String,
        attribute: &'static str,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// An object the operation needs does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// An attribute the operation needs is missing or malformed.
    #[error("{object}: attribute {attribute}: {reason}")]
    Attribute { object: String, attribute: &'static str, reason: String },
    /// More than one object has a name that must be unique.
    #[error("{count} objects have sAMAccountName {name}")]
    Ambiguous { name: String, count: usize },
    /// The existing account has the name but is not the expected kind of object.
    #[error("{name} exists but is not a {expected}")]
    WrongObjectClass { name: String, expected: &'static str },
    /// Deleting an object failed.
    #[error("cannot delete {dn}: {source}")]
    Delete {
        dn: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// A teardown step found an object it must not delete (wrong class, built-in, critical).
    #[error("refusing to delete {dn}: {rule}")]
    DeleteRefused { dn: String, rule: String },
    /// A write to an existing account (a password reset) found an object it must not touch
    /// (wrong class, built-in, critical).
    #[error("refusing to {operation} {dn}: {rule}")]
    WriteRefused { operation: &'static str, dn: String, rule: String },
    /// A name is not a valid account name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A value cannot be placed into a DN.
    #[error(transparent)]
    Escape(#[from] EscapeError),
    /// A binary SID could not be decoded.
    #[error("{object}: {source}")]
    Sid {
        object: String,
        #[source]
        source: SidError,
    },
    /// A binary GUID could not be decoded.
    #[error("{object}: {source}")]
    Guid {
        object: String,
        #[source]
        source: GuidError,
    },
    /// A security descriptor could not be decoded.
    #[error("{object}: msDS-GroupMSAMembership: {source}")]
    SecurityDescriptor {
        object: String,
        #[source]
        source: SdError,
    },
    /// The new password was set but a bind with it failed: the account's password has changed,
    /// and the caller does not hold a working one. Retry the rotation.
    #[error("password of {account} was reset but binding with the new password failed: {source}")]
    RotationNotConfirmed {
        account: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
}
