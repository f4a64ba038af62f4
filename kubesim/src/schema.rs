//! Structural-schema handling of custom resources, as the API server applies a CRD's
//! `openAPIV3Schema`: unknown fields are pruned (and reported, so `fieldValidation=Strict`
//! can reject them), `null` is dropped unless `nullable`, and type, `required`, `enum` and
//! bound violations are collected as `Invalid` causes naming the field path.

use serde_json::{Map, Value};

use crate::status::Cause;

/// What validation found besides hard errors: the paths of pruned unknown fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub unknown_fields: Vec<String>,
}

/// Validates `object` (a whole custom resource) against `schema` and prunes it in place.
/// `apiVersion`, `kind` and `metadata` are the server's and are not pruned at the root.
pub(crate) fn validate_and_prune(schema: &Value, object: &mut Value) -> Result<Pruned, Vec<Cause>> {
    let mut walk = Walk::default();
    if let Value::Object(map) = object {
        let properties = schema.get("properties").and_then(Value::as_object);
        let preserve = preserves_unknown(schema);
        let names: Vec<String> = map.keys().cloned().collect();
        for name in names {
            if matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match properties.and_then(|p| p.get(&name)) {
                Some(child_schema) => walk.child(map, &name, child_schema, &name),
                None if preserve => {}
                None => {
                    walk.pruned.unknown_fields.push(name.clone());
                    map.remove(&name);
                }
            }
        }
        walk.required(schema, map, "");
    }
    if walk.causes.is_empty() { Ok(walk.pruned) } else { Err(walk.causes) }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool).unwrap_or(false)
}

#[derive(Default)]
struct Walk {
    causes: Vec<Cause>,
    pruned: Pruned,
}

impl Walk {
    /// Validates `map[name]`; drops it if it is a non-nullable null.
    fn child(&mut self, map: &mut Map<String, Value>, name: &str, schema: &Value, path: &str) {
        let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        if map.get(name).is_some_and(Value::is_null) && !nullable {
            map.remove(name);
            return;
        }
        if let Some(value) = map.get_mut(name) {
            self.value(value, schema, path);
        }
    }

    fn value(&mut self, value: &mut Value, schema: &Value, path: &str) {
        if value.is_null() {
            return;
        }
        let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool).unwrap_or(false);
        if int_or_string {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                self.causes.push(Cause::type_invalid(path, value, "integer,string"));
            }
            return;
        }
        if let Some(expected) = schema.get("type").and_then(Value::as_str) {
            let matches = match expected {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                _ => true,
            };
            if !matches {
                self.causes.push(Cause::type_invalid(path, value, expected));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let supported: Vec<String> =
                allowed.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect();
            let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
            self.causes.push(Cause::not_supported(path, value, &supported));
        }
        match value {
            Value::Object(map) => self.object(map, schema, path),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter_mut().enumerate() {
                        self.value(item, item_schema, &format!("{path}[{index}]"));
                    }
                }
                self.bounds(value, schema, path);
            }
            _ => self.bounds(value, schema, path),
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>, schema: &Value, path: &str) {
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        let preserve = preserves_unknown(schema);
        let names: Vec<String> = map.keys().cloned().collect();
        for name in names {
            let child_path = format!("{path}.{name}");
            match (properties.and_then(|p| p.get(&name)), additional) {
                (Some(child_schema), _) | (None, Some(child_schema)) => {
                    self.child(map, &name, child_schema, &child_path)
                }
                (None, None) if preserve => {}
                (None, None) => {
                    self.pruned.unknown_fields.push(child_path);
                    map.remove(&name);
                }
            }
        }
        self.required(schema, map, path);
    }

    fn required(&mut self, schema: &Value, map: &Map<String, Value>, path: &str) {
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                let field = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
                self.causes.push(Cause::required(field, ""));
            }
        }
    }

    fn bounds(&mut self, value: &Value, schema: &Value, path: &str) {
        let length = match value {
            Value::String(text) => Some(text.chars().count() as u64),
            Value::Array(items) => Some(items.len() as u64),
            _ => None,
        };
        let (min_key, max_key) = if value.is_array() { ("minItems", "maxItems") } else { ("minLength", "maxLength") };
        if let Some(length) = length {
            if let Some(min) = schema.get(min_key).and_then(Value::as_u64).filter(|min| length < *min) {
                self.causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{path} in body should have at least {min} {}", unit(value)),
                ));
            }
            if let Some(max) = schema.get(max_key).and_then(Value::as_u64).filter(|max| length > *max) {
                self.causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{path} in body should have at most {max} {}", unit(value)),
                ));
            }
        }
        if let Some(number) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64).filter(|min| number < *min) {
                self.causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{path} in body should be greater than or equal to {min}"),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64).filter(|max| number > *max) {
                self.causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{path} in body should be less than or equal to {max}"),
                ));
            }
        }
    }
}

fn unit(value: &Value) -> &'static str {
    if value.is_array() { "items" } else { "chars long" }
}

/// Key fields of the list at a field-name path, for lists declared
/// `x-kubernetes-list-type: map`; `None` for atomic lists (the CRD default).
pub(crate) fn list_map_keys(schema: &Value, names: &[String]) -> Option<Vec<String>> {
    let mut current = schema;
    for name in names {
        current = current.get("properties").and_then(|p| p.get(name))?;
        if current.get("type").and_then(Value::as_str) == Some("array") && name != names.last()? {
            current = current.get("items")?;
        }
    }
    if current.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys = current.get("x-kubernetes-list-map-keys")?.as_array()?;
    Some(keys.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{GmsaCrd, gmsa_crd_object};
    use serde_json::json;

    fn gmsa_schema() -> Value {
        let crd = gmsa_crd_object(GmsaCrd::Served { v1: true, v1alpha1: false }).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    fn mk_credspec(credspec: Value) -> Value {
        json!({"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec", "metadata": {"name": "s"}, "credspec": credspec})
    }

    #[test]
    fn valid_credspec_passes_unchanged() {
        let mut object = mk_credspec(
            json!({"CmsPlugins": ["ActiveDirectory"], "DomainJoinConfig": {"Sid": "S-1-5-21-1-2-3"},
            "ActiveDirectoryConfig": {"HostAccountConfig": {"PortableCcgVersion": "1"}, "GroupManagedServiceAccounts": [{"Name": "a", "Scope": "B"}]}}),
        );
        let before = object.clone();
        assert_eq!(validate_and_prune(&gmsa_schema(), &mut object).unwrap(), Pruned::default());
        assert_eq!(object, before);
    }

    #[test]
    fn unknown_fields_are_pruned_and_reported() {
        let mut object =
            mk_credspec(json!({"CmsPlugins": ["ActiveDirectory"], "Extra": 1, "DomainJoinConfig": {"Bogus": "x"}}));
        object["spec"] = json!({});
        let pruned = validate_and_prune(&gmsa_schema(), &mut object).unwrap();
        assert_eq!(pruned.unknown_fields, vec!["credspec.DomainJoinConfig.Bogus", "credspec.Extra", "spec"]);
        assert!(object.get("spec").is_none());
        assert!(object["credspec"].get("Extra").is_none());
    }

    #[test]
    fn wrong_type_names_the_field() {
        let mut object = mk_credspec(json!({"CmsPlugins": "ActiveDirectory", "DomainJoinConfig": {"Guid": 7}}));
        let causes = validate_and_prune(&gmsa_schema(), &mut object).unwrap_err();
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["credspec.CmsPlugins", "credspec.DomainJoinConfig.Guid"]);
        assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
    }

    #[test]
    fn required_fields_are_enforced_where_the_schema_declares_them() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {"size": {"type": "integer"}}}}});
        let mut object = json!({"spec": {}});
        let causes = validate_and_prune(&schema, &mut object).unwrap_err();
        assert_eq!(causes, vec![Cause::required("spec.size", "")]);
    }

    #[test]
    fn nulls_are_dropped_unless_nullable() {
        let mut object = mk_credspec(json!({"CmsPlugins": null}));
        validate_and_prune(&gmsa_schema(), &mut object).unwrap();
        assert_eq!(object["credspec"], json!({}));
    }

    #[test]
    fn list_map_keys_follow_the_schema() {
        let schema = json!({"properties": {"spec": {"properties": {"ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"], "items": {"type": "object"}}}}}});
        assert_eq!(list_map_keys(&schema, &["spec".into(), "ports".into()]), Some(vec!["port".to_owned()]));
        assert_eq!(list_map_keys(&gmsa_schema(), &["credspec".into(), "CmsPlugins".into()]), None);
    }
}
