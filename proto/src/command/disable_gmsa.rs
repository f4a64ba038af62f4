//! `disable-gmsa`: turn off `windowsProfile.gmsaProfile` (`az aks update --disable-windows-gmsa`).

use super::ValidationError;
use serde::{Deserialize, Serialize};

/// Payload of `disable-gmsa`: nothing to say.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DisableGmsa {}

impl DisableGmsa {
    pub fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}
