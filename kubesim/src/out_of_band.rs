//! The simulator's back door: reads and writes tests make behind the clients' backs (someone
//! with kubectl, a cluster upgrade, a removed add-on). Writes go through the same validation
//! and watch/audit path as API writes, audited as [`Origin::OutOfBand`].

use serde_json::Value;

use crate::cluster::SimError;
use crate::status::ApiError;
use crate::store::{FieldValidation, Origin, Store, WriteOptions};

fn rejected(verb: &'static str, kind: &str, name: &str, error: ApiError) -> SimError {
    SimError::Rejected {
        verb,
        kind: kind.to_owned(),
        name: name.to_owned(),
        code: error.code(),
        reason: error.reason().to_owned(),
        message: error.to_string(),
    }
}

impl Store {
    fn out_of_band_options() -> WriteOptions {
        WriteOptions {
            dry_run: false,
            force: false,
            field_manager: String::new(),
            field_validation: FieldValidation::Ignore,
            origin: Origin::OutOfBand,
        }
    }

    pub fn get_out_of_band(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let resource_type = self.resolve_kind(kind)?;
        self.get(&resource_type, namespace, name).ok()
    }

    pub fn list_out_of_band(&self, kind: &str) -> Vec<Value> {
        self.resolve_kind(kind).map(|t| self.list(&t, None)).unwrap_or_default()
    }

    /// Create or replace, keeping server fields; an explicit resourceVersion is ignored.
    pub fn put_out_of_band(&mut self, object: Value) -> Result<Value, SimError> {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource_type = self
            .types()
            .into_iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .ok_or_else(|| SimError::UnknownKind(format!("{api_version} {kind}")))?;
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let key = Self::key(&resource_type, namespace.as_deref(), &name);
        let verb = if self.objects.contains_key(&key) { "update" } else { "create" };
        self.commit(&resource_type, key, object, verb, &Self::out_of_band_options())
            .map(|result| result.object)
            .map_err(|error| rejected("put", &kind, &name, error))
    }

    pub fn delete_out_of_band(
        &mut self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, SimError> {
        let resource_type = self.resolve_kind(kind).ok_or_else(|| SimError::UnknownKind(kind.to_owned()))?;
        let key = Self::key(&resource_type, namespace, name);
        Ok(self.remove(&resource_type, &key, &Self::out_of_band_options()))
    }
}
