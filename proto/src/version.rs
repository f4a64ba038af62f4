//! Schema versioning of every message on the bus.
//!
//! Each message carries `schema: "MAJOR.MINOR"` in its body and in the `Gmsa-Schema` header.
//! - A different **major** means the receiver cannot understand the message: it refuses it with a
//!   clear error (an agent answers a command with a `failed{code: "unsupported_schema"}` result and
//!   applies nothing).
//! - A newer **minor** only adds optional fields: receivers ignore fields they do not know
//!   (no `deny_unknown_fields` on any wire type), and senders give every new field a default.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The major version this build speaks.
pub const SCHEMA_MAJOR: u16 = 1;
/// The minor version this build writes.
/// 1.1 added the `check-dc-connectivity` command kind; 1.2 added `audit-access`,
/// `validate-credspec`, `teardown` and `collect-diagnostics`, the `planned` step change, and the
/// result's `resources`; 1.3 added tolerant enums (`unknown` variants), dead letters
/// (`FLEET_DEAD`), a run reply's `skipped` and `invalid`, the in-flight steps of a cursor, and
/// `mode` (`apply` by default, or `dry-run`) on the `enable-gmsa`, `grant-identity` and
/// `apply-credspec` payloads; 1.4 added `rotate-credential`'s `spec_name` and a central setup's
/// `standby_user` (credential rotation with two users).
pub const SCHEMA_MINOR: u16 = 4;
/// The NATS header that repeats the body's schema version, so a receiver can refuse a message
/// without parsing its body.
pub const SCHEMA_HEADER: &str = "Gmsa-Schema";

/// A `MAJOR.MINOR` schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    pub major: u16,
    pub minor: u16,
}

impl SchemaVersion {
    /// The version this build writes.
    pub const CURRENT: SchemaVersion = SchemaVersion { major: SCHEMA_MAJOR, minor: SCHEMA_MINOR };

    /// Whether this build can read a message of this version.
    pub fn check_supported(self) -> Result<(), VersionError> {
        if self.major == SCHEMA_MAJOR {
            Ok(())
        } else {
            Err(VersionError::UnsupportedMajor { found: self, supported: SCHEMA_MAJOR })
        }
    }
}

impl Default for SchemaVersion {
    fn default() -> Self {
        SchemaVersion::CURRENT
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for SchemaVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || VersionError::Malformed { text: text.to_string() };
        let (major, minor) = text.split_once('.').ok_or_else(malformed)?;
        Ok(SchemaVersion {
            major: major.parse().map_err(|_| malformed())?,
            minor: minor.parse().map_err(|_| malformed())?,
        })
    }
}

impl Serialize for SchemaVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a message's version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The message was written by a build with another major schema version.
    #[error("schema {found} is not supported: this build reads major version {supported} only")]
    UnsupportedMajor { found: SchemaVersion, supported: u16 },
    /// The `schema` field is not of the form `MAJOR.MINOR`.
    #[error("schema version {text:?} is not of the form MAJOR.MINOR")]
    Malformed { text: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_newer_minor_is_supported() {
        let newer: SchemaVersion = "1.7".parse().unwrap();
        assert!(newer.check_supported().is_ok());
    }

    #[test]
    fn other_major_is_refused_with_both_versions_in_the_message() {
        let err = "2.0".parse::<SchemaVersion>().unwrap().check_supported().unwrap_err();
        assert_eq!(err.to_string(), "schema 2.0 is not supported: this build reads major version 1 only");
    }

    #[test]
    fn malformed_versions_are_errors() {
        for text in ["1", "a.b", "1.", ".1", ""] {
            assert!(text.parse::<SchemaVersion>().is_err(), "{text}");
        }
    }
}
