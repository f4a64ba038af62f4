//! The simulator's back door: reads and writes tests make behind the clients' backs (someone
//! with kubectl, a cluster upgrade, a removed add-on). Writes go through the same validation
//! and watch/audit path as API writes, audited as [`Origin::OutOfBand`].

use serde_json::Value;

use crate::cluster::SimError;
use crate::status::ApiError;
use crate::store::{FieldValidation, Origin, Store, WriteOptions, now_rfc3339};

/// An Event as a kubelet or controller records it, for [`crate::SimCluster::inject_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedEvent {
    /// Kind of the object the event is about (`Pod`, `Node`, …).
    pub involved_kind: String,
    /// Its namespace; `None` for cluster-scoped objects, whose events live in `default`.
    pub involved_namespace: Option<String>,
    /// Its name.
    pub involved_name: String,
    /// Machine-readable reason, e.g. `FailedCreatePodSandBox`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `Warning` or `Normal`.
    pub event_type: String,
    /// The reporting component, e.g. `kubelet`.
    pub source_component: String,
}

impl InjectedEvent {
    /// A `Warning` reported by the kubelet.
    pub fn warning(
        involved_kind: &str,
        involved_namespace: Option<&str>,
        involved_name: &str,
        reason: &str,
        message: &str,
    ) -> Self {
        InjectedEvent {
            involved_kind: involved_kind.to_owned(),
            involved_namespace: involved_namespace.map(str::to_owned),
            involved_name: involved_name.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            event_type: "Warning".to_owned(),
            source_component: "kubelet".to_owned(),
        }
    }

    /// The core/v1 Event object, named `<involved name>.<random hex>` as client-go names them.
    pub(crate) fn to_object(&self) -> Value {
        let namespace = self.involved_namespace.clone().unwrap_or_else(|| "default".to_owned());
        let now = now_rfc3339();
        let mut involved = serde_json::json!({"kind": self.involved_kind, "name": self.involved_name});
        if let Some(involved_namespace) = &self.involved_namespace {
            involved["namespace"] = Value::String(involved_namespace.clone());
        }
        serde_json::json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{}", self.involved_name, &uuid::Uuid::new_v4().simple().to_string()[..16]),
                "namespace": namespace},
            "involvedObject": involved,
            "reason": self.reason, "message": self.message, "type": self.event_type,
            "source": {"component": self.source_component}, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now})
    }
}

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
