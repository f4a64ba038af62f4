//! Field ownership as the API server tracks it in `metadata.managedFields`: sets of field
//! paths per (manager, operation), their `FieldsV1` encoding, and path lookups/removal in
//! objects. Lists are atomic unless keyed (`x-kubernetes-list-type: map` in a CRD schema, or
//! the merge keys of the built-in types), as in structured-merge-diff.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathElement {
    /// `f:<name>`: a field of an object.
    Field(String),
    /// `k:{...}`: the item of a keyed list whose key fields have these values (canonical JSON).
    Key(String),
}

/// A path from the object root.
pub(crate) type FieldPath = Vec<PathElement>;
/// A set of owned paths.
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Returns the key fields of the list found at the given field-name path, `None` if atomic.
pub(crate) type ListKeys<'a> = &'a dyn Fn(&[String]) -> Option<Vec<String>>;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

/// The canonical `k:` key of a keyed-list item; `None` if a key field is missing.
pub(crate) fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut key = Map::new();
    for name in keys {
        key.insert(name.clone(), item.get(name)?.clone());
    }
    // serde_json's Map may preserve insertion order; keys are inserted in schema order,
    // which is stable for a given list, so the rendering is canonical per list.
    Some(Value::Object(key).to_string())
}

/// Every owned leaf path of `value` (an object stripped of server-owned fields).
pub(crate) fn fields_of(value: &Value, list_keys: ListKeys<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    let mut names = Vec::new();
    if let Value::Object(map) = value {
        walk_object(map, &mut path, &mut names, list_keys, &mut out);
    }
    out
}

fn walk_object(
    map: &Map<String, Value>,
    path: &mut FieldPath,
    names: &mut Vec<String>,
    list_keys: ListKeys<'_>,
    out: &mut FieldSet,
) {
    for (name, child) in map {
        path.push(PathElement::Field(name.clone()));
        names.push(name.clone());
        walk_value(child, path, names, list_keys, out);
        names.pop();
        path.pop();
    }
}

fn walk_value(
    value: &Value,
    path: &mut FieldPath,
    names: &mut Vec<String>,
    list_keys: ListKeys<'_>,
    out: &mut FieldSet,
) {
    match value {
        Value::Object(map) if !map.is_empty() => walk_object(map, path, names, list_keys, out),
        Value::Array(items) => match list_keys(names) {
            Some(keys) if items.iter().all(|item| item_key(item, &keys).is_some()) => {
                for item in items {
                    let Some(key) = item_key(item, &keys) else { continue };
                    path.push(PathElement::Key(key));
                    out.insert(path.clone());
                    if let Value::Object(map) = item {
                        walk_object(map, path, names, list_keys, out);
                    }
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at `path`, if present.
pub(crate) fn value_at<'v>(value: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    let mut current = value;
    for element in path {
        current = match element {
            PathElement::Field(name) => current.get(name)?,
            PathElement::Key(key) => find_item(current.as_array()?, key)?,
        };
    }
    Some(current)
}

fn key_matches(item: &Value, key: &str) -> bool {
    let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(key) else { return false };
    wanted.iter().all(|(name, value)| item.get(name) == Some(value))
}

fn find_item<'v>(items: &'v [Value], key: &str) -> Option<&'v Value> {
    items.iter().find(|item| key_matches(item, key))
}

/// Removes the field or list item at `path`, then any object or list it leaves empty.
pub(crate) fn remove_path(value: &mut Value, path: &[PathElement]) {
    let Some((last, parents)) = path.split_last() else { return };
    if parents.is_empty() {
        remove_child(value, last);
        return;
    }
    let Some(parent) = value_at_mut(value, parents) else { return };
    remove_child(parent, last);
    let now_empty = match parent {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    if now_empty {
        remove_path(value, parents);
    }
}

fn remove_child(parent: &mut Value, element: &PathElement) {
    match (parent, element) {
        (Value::Object(map), PathElement::Field(name)) => {
            map.remove(name);
        }
        (Value::Array(items), PathElement::Key(key)) => items.retain(|item| !key_matches(item, key)),
        _ => {}
    }
}

fn value_at_mut<'v>(value: &'v mut Value, path: &[PathElement]) -> Option<&'v mut Value> {
    let mut current = value;
    for element in path {
        current = match element {
            PathElement::Field(name) => current.get_mut(name)?,
            PathElement::Key(key) => current.as_array_mut()?.iter_mut().find(|item| key_matches(item, key))?,
        };
    }
    Some(current)
}

/// Whether one path is a prefix of the other (they overlap in ownership).
pub(crate) fn overlaps(a: &[PathElement], b: &[PathElement]) -> bool {
    let shorter = a.len().min(b.len());
    a[..shorter] == b[..shorter]
}

/// `FieldsV1` JSON for a set.
pub(crate) fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        insert_path(&mut root, path);
    }
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, path: &[PathElement]) {
    let Some((first, rest)) = path.split_first() else { return };
    let entry = node.entry(encode(first)).or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(child) = entry else { return };
    if rest.is_empty() {
        if matches!(first, PathElement::Key(_)) {
            child.insert(".".into(), Value::Object(Map::new()));
        }
    } else {
        insert_path(child, rest);
    }
}

fn encode(element: &PathElement) -> String {
    match element {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(key) => format!("k:{key}"),
    }
}

/// Parses `FieldsV1` JSON back into a set (unknown prefixes are skipped).
pub(crate) fn from_fields_v1(tree: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut path = Vec::new();
    parse_node(tree, &mut path, &mut out);
    out
}

fn parse_node(node: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(map) = node.as_object() else { return };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (encoded, child) in map {
        if encoded == "." {
            out.insert(path.clone());
            continue;
        }
        let element = if let Some(name) = encoded.strip_prefix("f:") {
            PathElement::Field(name.to_owned())
        } else if let Some(key) = encoded.strip_prefix("k:") {
            PathElement::Key(key.to_owned())
        } else {
            continue;
        };
        path.push(element);
        parse_node(child, path, out);
        path.pop();
    }
}

/// The entries stored in an object's `metadata.managedFields`.
pub(crate) fn entries_of(object: &Value) -> Vec<ManagedEntry> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some(ManagedEntry {
                manager: entry["manager"].as_str()?.to_owned(),
                operation: entry["operation"].as_str()?.to_owned(),
                api_version: entry["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: entry["time"].as_str().unwrap_or_default().to_owned(),
                fields: from_fields_v1(&entry["fieldsV1"]),
            })
        })
        .collect()
}

/// Writes entries into `metadata.managedFields` (dropping those that own nothing).
pub(crate) fn set_entries(object: &mut Value, entries: &[ManagedEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|entry| !entry.fields.is_empty())
        .map(|entry| {
            serde_json::json!({"manager": entry.manager, "operation": entry.operation,
                "apiVersion": entry.api_version, "time": entry.time,
                "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&entry.fields)})
        })
        .collect();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn containers_keyed(names: &[String]) -> Option<Vec<String>> {
        (names.last().map(String::as_str) == Some("containers")).then(|| vec!["name".to_owned()])
    }

    #[test]
    fn fields_v1_round_trips_with_keyed_items() {
        let object = json!({"metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "iis", "image": "x"}], "args": ["a", "b"]}});
        let fields = fields_of(&object, &containers_keyed);
        let rendered = to_fields_v1(&fields);
        assert_eq!(
            rendered,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:args": {}, "f:containers": {"k:{\"name\":\"iis\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(from_fields_v1(&rendered), fields);
    }

    #[test]
    fn value_lookup_and_removal_follow_keys() {
        let mut object = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}});
        let path = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key("{\"name\":\"b\"}".into()),
        ];
        assert_eq!(value_at(&object, &path).unwrap()["image"], "2");
        remove_path(&mut object, &path);
        assert_eq!(object["spec"]["containers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn removal_prunes_emptied_parents() {
        let mut object = json!({"metadata": {"name": "x", "labels": {"a": "1"}}});
        remove_path(
            &mut object,
            &[
                PathElement::Field("metadata".into()),
                PathElement::Field("labels".into()),
                PathElement::Field("a".into()),
            ],
        );
        assert_eq!(object, json!({"metadata": {"name": "x"}}));
    }
}
