//! (skeleton) The object store of one simulated cluster.

use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::cluster::SimError;

/// Where a mutation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Through the HTTP API (the agent, kubectl).
    Api,
    /// Through [`crate::SimCluster`]'s out-of-band controls.
    OutOfBand,
}

/// One recorded mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// `create`, `update`, `patch`, `apply`, `delete`.
    pub verb: String,
    /// Kind of the object, e.g. `RoleBinding`.
    pub kind: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// Field manager of the request, if any.
    pub field_manager: Option<String>,
    /// resourceVersion after the mutation.
    pub resource_version: u64,
    /// API or out of band.
    pub origin: Origin,
}

pub(crate) struct Store {
    audit: Vec<AuditEntry>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    pub fn new(_cluster: &str, _objects: Vec<Value>) -> Self {
        Self { audit: Vec::new() }
    }
    pub fn get_out_of_band(&self, _kind: &str, _namespace: Option<&str>, _name: &str) -> Option<Value> {
        None
    }
    pub fn list_out_of_band(&self, _kind: &str) -> Vec<Value> {
        Vec::new()
    }
    pub fn put_out_of_band(&mut self, object: Value) -> Result<Value, SimError> {
        Ok(object)
    }
    pub fn delete_out_of_band(
        &mut self,
        _kind: &str,
        _namespace: Option<&str>,
        _name: &str,
    ) -> Result<Option<Value>, SimError> {
        Ok(None)
    }
    pub fn audit(&self) -> &[AuditEntry] {
        &self.audit
    }
    pub fn resource_version(&self) -> u64 {
        0
    }
    pub fn compact(&mut self) {}
}
