//! A comparable picture of everything a simulated cluster stores: each object without the
//! metadata the server changes on every write (resourceVersion, uid, timestamps, managedFields,
//! generation), in key order, so a test can assert that a teardown leaves exactly what existed
//! before setup.

use serde_json::{Value, json};

use crate::store::Store;

/// Metadata fields that differ between two otherwise identical objects.
const VOLATILE_METADATA: &[&str] = &["resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"];

/// One object without its volatile metadata.
fn stable_view(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in VOLATILE_METADATA {
            metadata.remove(*field);
        }
    }
    object
}

impl Store {
    /// Every stored object as `{"group", "resource", "object"}` in (group, resource, namespace,
    /// name) order, objects at their storage version without volatile metadata. JSON maps are
    /// key-ordered, so two snapshots of equal contents serialize identically.
    pub(crate) fn snapshot(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|(key, object)| json!({"group": key.group, "resource": key.plural, "object": stable_view(object)}))
            .collect();
        Value::Array(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_metadata_is_dropped_and_the_rest_kept() {
        let object = json!({"kind": "ClusterRole", "metadata": {"name": "r", "labels": {"a": "b"},
            "resourceVersion": "7", "uid": "u", "creationTimestamp": "t", "managedFields": [], "generation": 2},
            "rules": [{"verbs": ["use"]}]});
        assert_eq!(
            stable_view(&object),
            json!({"kind": "ClusterRole", "metadata": {"name": "r", "labels": {"a": "b"}}, "rules": [{"verbs": ["use"]}]})
        );
    }
}
