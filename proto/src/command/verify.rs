//! `verify`: run the seed's sample workload with the credspec and report whether it came up.

use super::ValidationError;
use serde::{Deserialize, Serialize};

/// Payload of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// The credspec the workload uses.
    pub spec_name: String,
    /// Namespace of the sample workload (the seed uses `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Container image; `None` means the seed's IIS image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How long to wait for the workload to become available.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

fn default_namespace() -> String {
    "default".to_string()
}

fn default_timeout() -> u32 {
    600
}

impl Verify {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.spec_name.is_empty() {
            return Err(ValidationError::new("payload.spec_name", "must not be empty"));
        }
        if self.namespace.is_empty() {
            return Err(ValidationError::new("payload.namespace", "must not be empty"));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return Err(ValidationError::new("payload.timeout_secs", "must be between 1 and 3600"));
        }
        Ok(())
    }
}
