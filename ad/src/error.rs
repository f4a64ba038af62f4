//! Errors of the Active Directory adapter: one variant per failed step, naming the object and
//! the rule. No variant carries a password: LDAP results never echo attribute values, and the
//! bind identity is a name, not a credential.

use crate::account::NameError;
use crate::escape::EscapeError;
use crate::guard::WriteRule;
use crate::guid::GuidError;
use crate::managed_password::BlobError;
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
    /// A write to an existing account (a password reset, a claim) found an account it must not
    /// touch; refused before anything was written. `rule` says which guard refused it.
    #[error("refusing to {operation} {account} ({dn}): {rule}: {detail}")]
    WriteRefused { operation: &'static str, account: String, dn: String, rule: WriteRule, detail: String },
    /// A spec (user or gMSA) breaks a rule; refused before any LDAP traffic.
    #[error("invalid {spec} spec: {field}: {rule}")]
    InvalidSpec { spec: &'static str, field: &'static str, rule: String },
    /// The PDC emulator (where password resets go) is another DC than the configured one and
    /// cannot be reached with the configured URL's port, CA and credentials.
    #[error("the PDC emulator {pdc} is not the configured DC {url}: {reason}")]
    PdcEmulator { pdc: String, url: String, reason: String },
    /// The bound identity got the gMSA's entry without `msDS-ManagedPassword`: it is not an
    /// allowed principal (or the connection is not sealed).
    #[error("{who} may not read the managed password of {gmsa} (msDS-ManagedPassword absent)")]
    ManagedPasswordDenied { gmsa: String, who: String },
    /// `msDS-ManagedPassword` could not be decoded.
    #[error("{gmsa}: msDS-ManagedPassword: {source}")]
    ManagedPasswordBlob {
        gmsa: String,
        #[source]
        source: BlobError,
    },
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

impl AdError {
    /// A stable, machine-readable code for the failure (`ad_write_refused`, `ad_bind`, …).
    /// Callers branch on it and print it; it never changes for a given variant. A refused write
    /// has a second code for its rule ([`AdError::write_rule`]).
    pub fn code(&self) -> &'static str {
        match self {
            AdError::Config { .. } => "ad_config",
            AdError::CaBundle { .. } => "ad_ca_bundle",
            AdError::PlaintextRefused { .. } => "ad_plaintext_refused",
            AdError::Connect { .. } => "ad_connect",
            AdError::Bind { .. } => "ad_bind",
            AdError::Search { .. } => "ad_search",
            AdError::Add { .. } => "ad_add",
            AdError::Modify { .. } => "ad_modify",
            AdError::NotFound { .. } => "ad_not_found",
            AdError::Attribute { .. } => "ad_attribute",
            AdError::Ambiguous { .. } => "ad_ambiguous",
            AdError::WrongObjectClass { .. } => "wrong_object_class",
            AdError::Delete { .. } => "ad_delete",
            AdError::DeleteRefused { .. } => "ad_delete_refused",
            AdError::WriteRefused { .. } => "ad_write_refused",
            AdError::InvalidSpec { .. } => "ad_invalid_spec",
            AdError::PdcEmulator { .. } => "ad_pdc_emulator",
            AdError::ManagedPasswordDenied { .. } => "ad_managed_password_denied",
            AdError::ManagedPasswordBlob { .. } => "ad_managed_password_blob",
            AdError::Name(_) => "invalid_name",
            AdError::Escape(_) => "ad_escape",
            AdError::Sid { .. } => "ad_sid",
            AdError::Guid { .. } => "ad_guid",
            AdError::SecurityDescriptor { .. } => "ad_security_descriptor",
            AdError::RotationNotConfirmed { .. } => "ad_rotation_not_confirmed",
        }
    }

    /// The guard that refused a write ([`AdError::WriteRefused`]), else `None`.
    pub fn write_rule(&self) -> Option<WriteRule> {
        match self {
            AdError::WriteRefused { rule, .. } => Some(*rule),
            _ => None,
        }
    }
}
