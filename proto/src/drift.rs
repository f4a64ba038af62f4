//! Drift reports, on `fleet.drift.<cluster>`: an object gmsa-fleet installed was edited or deleted
//! by someone else. The agent reports each drift with its diff and what it did about it.

use crate::outcome::FieldChange;
use crate::version::SchemaVersion;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One drift on one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub schema: SchemaVersion,
    pub cluster: String,
    /// The object's kind (`GMSACredentialSpec`, `ClusterRole`, `RoleBinding`).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// `modified` or `deleted`.
    pub cause: String,
    /// From what gmsa-fleet applied (`before`) to what the cluster holds (`after`).
    #[serde(default)]
    pub diff: Vec<FieldChange>,
    /// `reported` (policy report-only), `reapplied` or `reapply-failed`.
    pub remedy: String,
    /// The re-apply's error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
