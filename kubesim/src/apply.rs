//! Write semantics over plain JSON: JSON merge patch (RFC 7386), server-side apply (merge of
//! the applied configuration, removal of fields the manager stopped applying, conflicts with
//! other managers, `force`), and the field-ownership bookkeeping of non-apply writes.

use serde_json::{Map, Value};

use crate::managed_fields::{
    FieldPath, FieldSet, ListKeys, ManagedEntry, PathElement, entries_of, fields_of, item_key, overlaps, remove_path,
    set_entries, value_at,
};
use crate::status::Cause;

/// metadata fields the server owns; never tracked in managedFields.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// RFC 7386 merge patch: objects merge, `null` deletes, everything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else { return };
    for (name, patch_value) in patch_map {
        if patch_value.is_null() {
            target_map.remove(name);
        } else {
            merge_patch(target_map.entry(name.clone()).or_insert(Value::Null), patch_value);
        }
    }
}

/// The part of an object field managers own: no apiVersion/kind, no server metadata, no
/// status when the type has a status subresource.
pub(crate) fn owned_view(object: &Value, status_subresource: bool) -> Value {
    let mut view = object.clone();
    if let Some(map) = view.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if status_subresource {
            map.remove("status");
        }
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_METADATA {
                metadata.remove(*field);
            }
        }
        if map.get("metadata").and_then(Value::as_object).is_some_and(Map::is_empty) {
            map.remove("metadata");
        }
    }
    view
}

/// Merges an applied configuration into a live object: objects merge field by field, keyed
/// lists merge item by item, atomic lists and scalars are replaced.
fn merge_applied(live: &mut Value, applied: &Value, names: &mut Vec<String>, list_keys: ListKeys<'_>) {
    match (live, applied) {
        (Value::Object(live_map), Value::Object(applied_map)) => {
            for (name, applied_value) in applied_map {
                names.push(name.clone());
                match live_map.get_mut(name) {
                    Some(live_value) => merge_applied(live_value, applied_value, names, list_keys),
                    None => {
                        live_map.insert(name.clone(), applied_value.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(live_items), Value::Array(applied_items)) => match list_keys(names) {
            Some(keys) => {
                for applied_item in applied_items {
                    let key = item_key(applied_item, &keys);
                    match live_items.iter_mut().find(|item| key.is_some() && item_key(item, &keys) == key) {
                        Some(live_item) => merge_applied(live_item, applied_item, names, list_keys),
                        None => live_items.push(applied_item.clone()),
                    }
                }
            }
            None => *live_items = applied_items.clone(),
        },
        (live, applied) => *live = applied.clone(),
    }
}

/// Inputs of one server-side apply.
pub(crate) struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub api_version: &'a str,
    pub now: &'a str,
    pub status_subresource: bool,
    pub list_keys: ListKeys<'a>,
}

/// Server-side apply of `applied` onto `live` (None: create). Returns the new object with
/// managedFields updated, or the conflicts with other managers (as `FieldManagerConflict`
/// causes) when not forced.
pub(crate) fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    request: &ApplyRequest<'_>,
) -> Result<Value, Vec<Cause>> {
    let live_object = live.cloned().unwrap_or_else(|| {
        let mut skeleton = Map::new();
        for field in ["apiVersion", "kind"] {
            if let Some(value) = applied.get(field) {
                skeleton.insert(field.into(), value.clone());
            }
        }
        let mut metadata = Map::new();
        for field in ["name", "namespace"] {
            if let Some(value) = applied["metadata"].get(field) {
                metadata.insert(field.into(), value.clone());
            }
        }
        skeleton.insert("metadata".into(), Value::Object(metadata));
        Value::Object(skeleton)
    });
    let live_view = owned_view(&live_object, request.status_subresource);
    let applied_view = owned_view(applied, request.status_subresource);
    let applied_fields = fields_of(&applied_view, request.list_keys);
    let mut entries = entries_of(&live_object);
    let is_mine = |entry: &ManagedEntry| entry.manager == request.manager && entry.operation == "Apply";

    let mut conflicts = Vec::new();
    let mut forced: Vec<(usize, FieldPath)> = Vec::new();
    for (index, entry) in entries.iter().enumerate().filter(|(_, entry)| entry.manager != request.manager) {
        for owned in &entry.fields {
            for path in applied_fields.iter().filter(|path| overlaps(path, owned)) {
                let at = if path.len() <= owned.len() { path } else { owned };
                if value_at(&live_view, at) != value_at(&applied_view, at) {
                    conflicts.push(Cause {
                        reason: "FieldManagerConflict",
                        message: format!(
                            "conflict with \"{}\"{}",
                            entry.manager,
                            if entry.operation == "Update" {
                                " using ".to_owned() + &entry.api_version
                            } else {
                                String::new()
                            }
                        ),
                        field: render_path(owned),
                    });
                    forced.push((index, owned.clone()));
                    break;
                }
            }
        }
    }
    if !conflicts.is_empty() && !request.force {
        conflicts.dedup();
        return Err(conflicts);
    }
    for (index, path) in forced {
        entries[index].fields.remove(&path);
    }

    let previous: FieldSet =
        entries.iter().find(|entry| is_mine(entry)).map(|entry| entry.fields.clone()).unwrap_or_default();
    let mut result = live_object.clone();
    for dropped in previous.difference(&applied_fields) {
        let still_owned = entries
            .iter()
            .filter(|entry| !is_mine(entry))
            .any(|entry| entry.fields.iter().any(|p| overlaps(p, dropped)));
        if !still_owned {
            remove_path(&mut result, dropped);
        }
    }
    merge_applied(&mut result, &applied_view, &mut Vec::new(), request.list_keys);

    let object_changed = owned_view(&result, request.status_subresource) != live_view;
    match entries.iter_mut().find(|entry| is_mine(entry)) {
        Some(entry) if entry.fields == applied_fields && !object_changed => {}
        Some(entry) => {
            entry.fields = applied_fields;
            entry.api_version = request.api_version.to_owned();
            entry.time = request.now.to_owned();
        }
        None => entries.push(ManagedEntry {
            manager: request.manager.to_owned(),
            operation: "Apply".into(),
            api_version: request.api_version.to_owned(),
            time: request.now.to_owned(),
            fields: applied_fields,
        }),
    }
    set_entries(&mut result, &entries);
    Ok(result)
}

/// Field ownership after a non-apply write (create, update, patch) by `manager`: the manager
/// takes the fields it changed, everyone loses fields that are gone.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    now: &str,
    status_subresource: bool,
    list_keys: ListKeys<'_>,
) {
    let old_view = old.map(|o| owned_view(o, status_subresource)).unwrap_or(Value::Object(Map::new()));
    let new_view = owned_view(new, status_subresource);
    let new_fields = fields_of(&new_view, list_keys);
    let changed: FieldSet =
        new_fields.iter().filter(|path| value_at(&old_view, path) != value_at(&new_view, path)).cloned().collect();
    // managedFields written by the request replace the stored ones (kubectl's migration from
    // client-side to server-side apply does this with a JSON patch); an empty list leaves them
    // as they were, and `[{}]` (no valid entry) clears them, as documented for the API server.
    let requested = new["metadata"]["managedFields"].as_array().is_some_and(|entries| !entries.is_empty());
    let mut entries = if requested { entries_of(new) } else { old.map(entries_of).unwrap_or_default() };
    for entry in entries.iter_mut() {
        let keep_changed = entry.manager == manager && entry.operation == "Update";
        entry
            .fields
            .retain(|path| new_fields.iter().any(|p| overlaps(p, path)) && (keep_changed || !changed.contains(path)));
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|entry| entry.manager == manager && entry.operation == "Update") {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now.to_owned();
                entry.api_version = api_version.to_owned();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version: api_version.to_owned(),
                time: now.to_owned(),
                fields: changed,
            }),
        }
    }
    set_entries(new, &entries);
}

/// `.metadata.labels.app` / `.spec.containers[name="iis"].image`, as conflict messages show.
fn render_path(path: &[PathElement]) -> String {
    let mut rendered = String::new();
    for element in path {
        match element {
            PathElement::Field(name) => {
                rendered.push('.');
                rendered.push_str(name);
            }
            PathElement::Key(key) => {
                let inner =
                    serde_json::from_str::<Value>(key).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
                let parts: Vec<String> = inner.iter().map(|(k, v)| format!("{k}={v}")).collect();
                rendered.push_str(&format!("[{}]", parts.join(",")));
            }
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_keys(_: &[String]) -> Option<Vec<String>> {
        None
    }

    fn mk_request<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            api_version: "v1",
            now: "2024-01-01T00:00:00Z",
            status_subresource: false,
            list_keys: &no_keys,
        }
    }

    fn mk_configmap(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": data})
    }

    #[test]
    fn merge_patch_deletes_on_null_and_replaces_lists() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut target, &json!({"a": {"b": null}, "l": [3]}));
        assert_eq!(target, json!({"a": {"c": 2}, "l": [3]}));
    }

    #[test]
    fn apply_creates_and_records_ownership() {
        let created = server_side_apply(None, &mk_configmap(json!({"k": "v"})), &mk_request("fleet", false)).unwrap();
        assert_eq!(created["data"]["k"], "v");
        let entry = &created["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "fleet");
        assert_eq!(entry["operation"], "Apply");
        assert_eq!(entry["fieldsV1"], json!({"f:data": {"f:k": {}}}));
    }

    #[test]
    fn reapplying_the_same_configuration_changes_nothing() {
        let created = server_side_apply(None, &mk_configmap(json!({"k": "v"})), &mk_request("fleet", false)).unwrap();
        let again =
            server_side_apply(Some(&created), &mk_configmap(json!({"k": "v"})), &mk_request("fleet", false)).unwrap();
        assert_eq!(again, created);
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let created =
            server_side_apply(None, &mk_configmap(json!({"a": "1", "b": "2"})), &mk_request("fleet", false)).unwrap();
        let next =
            server_side_apply(Some(&created), &mk_configmap(json!({"a": "1"})), &mk_request("fleet", false)).unwrap();
        assert_eq!(next["data"], json!({"a": "1"}));
    }

    #[test]
    fn another_managers_field_with_a_different_value_conflicts_unless_forced() {
        let created = server_side_apply(None, &mk_configmap(json!({"a": "1"})), &mk_request("other", false)).unwrap();
        let conflicts =
            server_side_apply(Some(&created), &mk_configmap(json!({"a": "2"})), &mk_request("fleet", false))
                .unwrap_err();
        assert_eq!(conflicts[0].field, ".data.a");
        assert_eq!(conflicts[0].message, "conflict with \"other\"");
        let forced =
            server_side_apply(Some(&created), &mk_configmap(json!({"a": "2"})), &mk_request("fleet", true)).unwrap();
        assert_eq!(forced["data"]["a"], "2");
        let managers: Vec<_> =
            forced["metadata"]["managedFields"].as_array().unwrap().iter().map(|e| e["manager"].clone()).collect();
        assert_eq!(managers, vec![json!("fleet")]);
    }

    #[test]
    fn update_takes_ownership_of_changed_fields() {
        let created = server_side_apply(None, &mk_configmap(json!({"a": "1"})), &mk_request("fleet", false)).unwrap();
        let mut edited = created.clone();
        edited["data"]["a"] = json!("9");
        record_update(Some(&created), &mut edited, "kubectl-edit", "v1", "now", false, &no_keys);
        let entries = edited["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["manager"], "kubectl-edit");
        assert_eq!(entries[0]["operation"], "Update");
    }
}
