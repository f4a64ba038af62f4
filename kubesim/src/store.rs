//! The object store of one simulated cluster: objects keyed by group/resource/namespace/name,
//! one cluster-wide resourceVersion counter, the watch history (with compaction), the audit
//! log, and the single `commit` path every write goes through (validation, pruning, server
//! metadata, no-op detection, watch event, audit, controllers).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::apply::owned_view;
use crate::registry::{ResourceType, builtin_types, crd_types};
use crate::schema::validate_and_prune;
use crate::status::{ApiError, Subject};
use crate::validation::validate;

/// Where a mutation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Through the HTTP API (the agent, kubectl).
    Api,
    /// Through [`crate::SimCluster`]'s out-of-band controls.
    OutOfBand,
}

/// One recorded mutation (dry runs and no-op writes are not recorded; neither are the
/// simulator's own controller updates of Deployment status).
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

/// Identity of a stored object, independent of the version it is served at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub group: String,
    pub plural: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

/// One change, as watches deliver it.
#[derive(Debug, Clone)]
pub(crate) struct WatchRecord {
    pub resource_version: u64,
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub event_type: &'static str,
    pub key: ObjectKey,
    pub object: Value,
    /// The object before a `MODIFIED` change: a watch with a selector turns a change that makes the
    /// object stop matching into `DELETED` (of this previous object), as the API server's watch
    /// cache does, and one that makes it start matching into `ADDED`.
    pub previous: Option<Value>,
}

/// Retained changes after a resourceVersion, and the receiver of later ones.
pub(crate) type WatchStart = (Vec<Arc<WatchRecord>>, broadcast::Receiver<Arc<WatchRecord>>);

/// How many changes the watch history keeps before the oldest expire (410 on resume).
const HISTORY_LIMIT: usize = 10_000;

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone)]
pub(crate) struct WriteOptions {
    pub dry_run: bool,
    /// `force` of a server-side apply (refused for other patches).
    pub force: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
    pub origin: Origin,
}

/// A stored (or dry-run) write.
#[derive(Debug)]
pub(crate) struct WriteResult {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

pub(crate) struct Store {
    pub(crate) objects: BTreeMap<ObjectKey, Value>,
    last_resource_version: u64,
    history: VecDeque<Arc<WatchRecord>>,
    /// Watches may resume from this resourceVersion or later; older ones get 410 Expired.
    oldest_resumable: u64,
    /// New changes for open watches. Lagging receivers end their watch (clients re-watch).
    events: broadcast::Sender<Arc<WatchRecord>>,
    audit: Vec<AuditEntry>,
    builtins: Vec<ResourceType>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// RFC 3339 UTC timestamp with second precision, as metav1.Time serializes.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

pub(crate) fn subject_of(resource_type: &ResourceType, name: &str) -> Subject {
    Subject {
        group: resource_type.group.clone(),
        resource: resource_type.plural.clone(),
        kind: resource_type.kind.clone(),
        name: name.to_owned(),
    }
}

impl Store {
    pub fn new(cluster: &str, seed_objects: Vec<Value>) -> Self {
        let (events, _) = broadcast::channel(4096);
        let mut store = Self {
            objects: BTreeMap::new(),
            last_resource_version: 0,
            history: VecDeque::new(),
            oldest_resumable: 0,
            events,
            audit: Vec::new(),
            builtins: builtin_types(),
        };
        for object in seed_objects {
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            if let Err(error) = store.put_out_of_band(object) {
                tracing::error!(cluster, kind, %error, "seed object rejected");
            }
        }
        // Seeding is not a mutation anyone made.
        store.audit.clear();
        store
    }

    /// Built-in types plus those of every stored CRD.
    pub fn types(&self) -> Vec<ResourceType> {
        let mut types = self.builtins.clone();
        for (key, crd) in &self.objects {
            if key.plural == "customresourcedefinitions" {
                types.extend(crd_types(crd));
            }
        }
        types
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types().into_iter().find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// A type by Kind, plural or short name (case-insensitive), at its storage version.
    pub fn resolve_kind(&self, kind: &str) -> Option<ResourceType> {
        let wanted = kind.to_lowercase();
        let candidates: Vec<ResourceType> = self
            .types()
            .into_iter()
            .filter(|t| t.kind.to_lowercase() == wanted || t.plural == wanted || t.short_names.contains(&wanted))
            .collect();
        let storage = candidates.iter().find(|t| self.storage_version(t).as_deref() == Some(t.version.as_str()));
        storage.or(candidates.first()).cloned()
    }

    /// The storage version of a custom resource type (from its CRD); built-ins store as served.
    fn storage_version(&self, resource_type: &ResourceType) -> Option<String> {
        if !resource_type.is_custom() {
            return Some(resource_type.version.clone());
        }
        let crd = self.objects.get(&crd_key(&resource_type.group, &resource_type.plural))?;
        crd["spec"]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["storage"].as_bool() == Some(true))
            .and_then(|v| v["name"].as_str())
            .map(str::to_owned)
    }

    pub fn key(resource_type: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: resource_type.group.clone(),
            plural: resource_type.plural.clone(),
            namespace: if resource_type.namespaced { namespace.unwrap_or("").to_owned() } else { String::new() },
            name: name.to_owned(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.last_resource_version
    }

    pub fn audit(&self) -> &[AuditEntry] {
        &self.audit
    }

    /// The object as served at `resource_type`'s version (CRDs here use conversion `None`).
    pub fn served(resource_type: &ResourceType, object: &Value) -> Value {
        let mut object = object.clone();
        object["apiVersion"] = Value::String(resource_type.api_version());
        object
    }

    pub fn get(&self, resource_type: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(resource_type, namespace, name))
            .map(|object| Self::served(resource_type, object))
            .ok_or_else(|| ApiError::NotFound(subject_of(resource_type, name)))
    }

    /// Objects of a type, optionally in one namespace, in key order.
    pub fn list(&self, resource_type: &ResourceType, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(key, _)| key.group == resource_type.group && key.plural == resource_type.plural)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.namespace == ns))
            .map(|(_, object)| Self::served(resource_type, object))
            .collect()
    }

    /// Whether a namespace exists (for creates of namespaced objects).
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&ObjectKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.to_owned(),
        })
    }

    /// Changes after `since` plus a receiver for later ones, taken under one lock so nothing
    /// falls between them; `Expired` if `since` predates the retained history.
    pub fn watch_from(&self, since: u64) -> Result<WatchStart, ApiError> {
        if since < self.oldest_resumable {
            return Err(ApiError::Expired { requested: since, oldest: self.oldest_resumable });
        }
        let backlog = self.history.iter().filter(|record| record.resource_version > since).cloned().collect();
        Ok((backlog, self.events.subscribe()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchRecord>> {
        self.events.subscribe()
    }

    /// Forgets history: resuming from any resourceVersion before now gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_resumable = self.last_resource_version;
    }

    fn record(&mut self, event_type: &'static str, key: ObjectKey, object: Value, previous: Option<Value>) {
        let record =
            Arc::new(WatchRecord { resource_version: self.last_resource_version, event_type, key, object, previous });
        self.history.push_back(record.clone());
        while self.history.len() > HISTORY_LIMIT {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_resumable = dropped.resource_version;
            }
        }
        // No receivers is normal (no open watch).
        let _ = self.events.send(record);
    }

    fn next_resource_version(&mut self) -> u64 {
        self.last_resource_version += 1;
        self.last_resource_version
    }

    /// Stores `new` for `key` after validation; the one path of every write.
    ///
    /// Guarantees: nothing is stored, recorded or audited for a dry run, a rejected object, or
    /// an object equal to the stored one apart from resourceVersion (a no-op keeps the
    /// resourceVersion and managedFields as they were).
    pub fn commit(
        &mut self,
        resource_type: &ResourceType,
        key: ObjectKey,
        mut new: Value,
        verb: &str,
        options: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let old = self.objects.get(&key).cloned();
        let subject = subject_of(resource_type, &key.name);
        let mut warnings = Vec::new();
        if let Some(schema) = &resource_type.schema {
            match validate_and_prune(schema, &mut new) {
                Ok(pruned) if !pruned.unknown_fields.is_empty() => match options.field_validation {
                    FieldValidation::Strict => {
                        let fields: Vec<String> =
                            pruned.unknown_fields.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                        return Err(ApiError::BadRequest(format!(
                            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                            resource_type.kind,
                            resource_type.version,
                            resource_type.kind,
                            fields.join(", ")
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(pruned.unknown_fields.iter().map(|f| format!("unknown field \"{f}\"")))
                    }
                    FieldValidation::Ignore => {}
                },
                Ok(_) => {}
                Err(causes) => return Err(ApiError::Invalid { subject, causes }),
            }
        }
        let causes = validate(resource_type, old.as_ref(), &new);
        if !causes.is_empty() {
            return Err(ApiError::Invalid { subject, causes });
        }
        self.fill_server_fields(resource_type, old.as_ref(), &mut new);
        if let Some(old) = &old
            && without_resource_version(old) == without_resource_version(&new)
        {
            return Ok(WriteResult { object: Self::served(resource_type, old), warnings, created: false });
        }
        let resource_version = if options.dry_run { self.last_resource_version } else { self.next_resource_version() };
        new["metadata"]["resourceVersion"] = Value::String(resource_version.to_string());
        let served = Self::served(resource_type, &new);
        if options.dry_run {
            return Ok(WriteResult { object: served, warnings, created: old.is_none() });
        }
        self.objects.insert(key.clone(), new.clone());
        self.record(if old.is_none() { "ADDED" } else { "MODIFIED" }, key.clone(), new, old.clone());
        self.audit.push(AuditEntry {
            verb: verb.to_owned(),
            kind: resource_type.kind.clone(),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: key.name.clone(),
            field_manager: Some(options.field_manager.clone()).filter(|m| !m.is_empty()),
            resource_version,
            origin: options.origin,
        });
        crate::controller::reconcile(self);
        Ok(WriteResult { object: served, warnings, created: old.is_none() })
    }

    /// uid, creationTimestamp, generation, status-subresource protection, CRD status.
    fn fill_server_fields(&self, resource_type: &ResourceType, old: Option<&Value>, new: &mut Value) {
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        let metadata = &mut new["metadata"];
        match old {
            Some(old) => {
                for field in ["uid", "creationTimestamp", "generation"] {
                    match old["metadata"].get(field) {
                        Some(value) => metadata[field] = value.clone(),
                        None => {
                            if let Some(map) = metadata.as_object_mut() {
                                map.remove(field);
                            }
                        }
                    }
                }
            }
            None => {
                metadata["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
                metadata["creationTimestamp"] = Value::String(now_rfc3339());
                if resource_type.has_generation {
                    metadata["generation"] = json!(1);
                }
            }
        }
        if resource_type.status_subresource {
            match old.and_then(|o| o.get("status")) {
                Some(status) => new["status"] = status.clone(),
                None if resource_type.kind == "CustomResourceDefinition" => new["status"] = crd_status(new),
                None if resource_type.kind == "Namespace" => new["status"] = json!({"phase": "Active"}),
                None if resource_type.kind == "Node" => {}
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        if let Some(old) = old
            && resource_type.has_generation
            && spec_view(resource_type, old) != spec_view(resource_type, new)
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if resource_type.kind == "CustomResourceDefinition" {
            default_crd_names(new);
        }
    }

    /// Deletes an object; CRDs take their custom resources with them.
    pub fn remove(&mut self, resource_type: &ResourceType, key: &ObjectKey, options: &WriteOptions) -> Option<Value> {
        let old = self.objects.get(key).cloned()?;
        if options.dry_run {
            return Some(Self::served(resource_type, &old));
        }
        self.objects.remove(key);
        let resource_version = self.next_resource_version();
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = Value::String(resource_version.to_string());
        self.record("DELETED", key.clone(), gone.clone(), None);
        self.audit.push(AuditEntry {
            verb: "delete".into(),
            kind: resource_type.kind.clone(),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: key.name.clone(),
            field_manager: None,
            resource_version,
            origin: options.origin,
        });
        if resource_type.kind == "CustomResourceDefinition" {
            let group = old["spec"]["group"].as_str().unwrap_or_default().to_owned();
            let plural = old["spec"]["names"]["plural"].as_str().unwrap_or_default().to_owned();
            let owned: Vec<ObjectKey> =
                self.objects.keys().filter(|k| k.group == group && k.plural == plural).cloned().collect();
            for owned_key in owned {
                self.remove_silently(&owned_key);
            }
        }
        crate::controller::reconcile(self);
        Some(Self::served(resource_type, &gone))
    }

    /// Removal by the simulator itself (cascade, controllers): watched, not audited.
    pub(crate) fn remove_silently(&mut self, key: &ObjectKey) {
        if let Some(mut old) = self.objects.remove(key) {
            let resource_version = self.next_resource_version();
            old["metadata"]["resourceVersion"] = Value::String(resource_version.to_string());
            self.record("DELETED", key.clone(), old, None);
        }
    }

    /// Store by the simulator itself (controllers): watched, not validated, not audited.
    pub(crate) fn store_silently(&mut self, key: ObjectKey, mut object: Value) {
        let previous = self.objects.get(&key).cloned();
        let created = previous.is_none();
        let resource_version = self.next_resource_version();
        object["metadata"]["resourceVersion"] = Value::String(resource_version.to_string());
        if created && object["metadata"].get("uid").is_none() {
            object["metadata"]["uid"] = Value::String(uuid::Uuid::new_v4().to_string());
            object["metadata"]["creationTimestamp"] = Value::String(now_rfc3339());
        }
        self.objects.insert(key.clone(), object.clone());
        self.record(if created { "ADDED" } else { "MODIFIED" }, key, object, previous);
    }
}

fn crd_key(group: &str, plural: &str) -> ObjectKey {
    ObjectKey {
        group: "apiextensions.k8s.io".into(),
        plural: "customresourcedefinitions".into(),
        namespace: String::new(),
        name: format!("{plural}.{group}"),
    }
}

fn without_resource_version(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    object
}

/// What a generation bump depends on: everything but metadata (and status with a subresource).
fn spec_view(resource_type: &ResourceType, object: &Value) -> Value {
    let mut view = owned_view(object, resource_type.status_subresource);
    if let Some(map) = view.as_object_mut() {
        map.remove("metadata");
    }
    view
}

/// Defaults the API server fills in CRD names.
fn default_crd_names(crd: &mut Value) {
    let names = &mut crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_owned();
    if names.get("singular").is_none() {
        names["singular"] = Value::String(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = Value::String(format!("{kind}List"));
    }
}

/// An established CRD's status.
fn crd_status(crd: &Value) -> Value {
    let mut accepted = crd["spec"]["names"].clone();
    if let Some(kind) = accepted["kind"].as_str().map(str::to_owned) {
        accepted["singular"] = Value::String(kind.to_lowercase());
        accepted["listKind"] = Value::String(format!("{kind}List"));
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    let now = now_rfc3339();
    json!({"acceptedNames": accepted, "storedVersions": stored, "conditions": [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}]})
}
