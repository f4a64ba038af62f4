//! `/openapi/v3`: the index of group-versions and one OpenAPI 3 document per group-version,
//! enough for kubectl: every served resource's paths with their operations, each tagged with
//! `x-kubernetes-group-version-kind` and, on PATCH, the `fieldValidation` parameter (kubectl's
//! query-parameter verifier looks for it there, then leaves validation to the server with
//! `fieldValidation=Strict`), and, for custom resources, the CRD's schema in
//! `components.schemas` (what `kubectl explain` reads).
//!
//! Built-in kinds get no component schema: kubectl then computes client-side apply patches
//! from its compiled-in types, as it does when a server's document lacks a kind. `/openapi/v2`
//! is not served (404), which kubectl only falls back to without v3.

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

/// `api/v1` or `apis/<group>/<version>`.
fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// A stable hash of a document, for `serverRelativeURL`'s `?hash=` (clients cache by it).
fn hash(document: &Value) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in document.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016X}")
}

/// `/openapi/v3`.
pub(crate) fn index(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for resource_type in types {
        let key = (resource_type.group.clone(), resource_type.version.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let path = group_version_path(&resource_type.group, &resource_type.version);
        if let Some(document) = group_version(types, &path) {
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&document))}),
            );
        }
    }
    json!({"paths": paths})
}

/// The component name kubectl and the API server use, e.g. `io.k8s.windows.v1.GMSACredentialSpec`.
fn component_name(resource_type: &ResourceType) -> String {
    let reversed: Vec<&str> = resource_type.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), resource_type.version, resource_type.kind)
}

fn parameter(name: &str, within: &str) -> Value {
    json!({"name": name, "in": within, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(resource_type: &ResourceType, action: &str, query: &[&str]) -> Value {
    let gvk = json!({"group": resource_type.group, "version": resource_type.version, "kind": resource_type.kind});
    let parameters: Vec<Value> = query.iter().map(|name| parameter(name, "query")).collect();
    let schema = if resource_type.schema.is_some() {
        json!({"$ref": format!("#/components/schemas/{}", component_name(resource_type))})
    } else {
        json!({"type": "object"})
    };
    json!({"operationId": format!("{action}{}", resource_type.kind), "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
        "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk})
}

const WRITE_PARAMETERS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMETERS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const LIST_PARAMETERS: &[&str] =
    &["allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "watch"];

/// The document at `/openapi/v3/<path>`, `None` if no served group-version has that path.
pub(crate) fn group_version(types: &[ResourceType], path: &str) -> Option<Value> {
    let served: Vec<&ResourceType> =
        types.iter().filter(|t| group_version_path(&t.group, &t.version) == path).collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for resource_type in served {
        let prefix = format!("/{path}");
        let (collection, item) = if resource_type.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", resource_type.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", resource_type.plural),
            )
        } else {
            (format!("{prefix}/{}", resource_type.plural), format!("{prefix}/{}/{{name}}", resource_type.plural))
        };
        let mut path_parameters = vec![parameter("name", "path")];
        if resource_type.namespaced {
            path_parameters.push(parameter("namespace", "path"));
        }
        let mut collection_operations = Map::new();
        let mut item_operations = Map::new();
        if resource_type.allows("list") {
            collection_operations.insert("get".into(), operation(resource_type, "list", LIST_PARAMETERS));
        }
        if resource_type.allows("create") {
            collection_operations.insert("post".into(), operation(resource_type, "post", WRITE_PARAMETERS));
        }
        if resource_type.allows("get") {
            item_operations.insert("get".into(), operation(resource_type, "get", &[]));
        }
        if resource_type.allows("update") {
            item_operations.insert("put".into(), operation(resource_type, "put", WRITE_PARAMETERS));
        }
        if resource_type.allows("patch") {
            item_operations.insert("patch".into(), operation(resource_type, "patch", PATCH_PARAMETERS));
        }
        if resource_type.allows("delete") {
            item_operations.insert("delete".into(), operation(resource_type, "delete", &["dryRun"]));
        }
        if !collection_operations.is_empty() {
            paths.insert(collection, Value::Object(collection_operations));
        }
        if !item_operations.is_empty() {
            item_operations.insert("parameters".into(), Value::Array(path_parameters));
            paths.insert(item, Value::Object(item_operations));
        }
        if let Some(schema) = &resource_type.schema {
            let mut schema = schema.clone();
            schema["x-kubernetes-group-version-kind"] = json!([{"group": resource_type.group,
                "version": resource_type.version, "kind": resource_type.kind}]);
            // The server adds the standard object fields to a CRD's schema.
            if let Some(properties) = schema["properties"].as_object_mut() {
                properties.entry("apiVersion").or_insert(json!({"type": "string"}));
                properties.entry("kind").or_insert(json!({"type": "string"}));
                properties.entry("metadata").or_insert(json!({"type": "object"}));
            }
            schemas.insert(component_name(resource_type), schema);
        }
    }
    Some(json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.31.1"},
        "paths": paths, "components": {"schemas": schemas}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{builtin_types, crd_types};
    use crate::seed::{GmsaCrd, gmsa_crd_object};

    fn mk_types() -> Vec<ResourceType> {
        let mut types = builtin_types();
        types.extend(crd_types(&gmsa_crd_object(GmsaCrd::Served { v1: true, v1alpha1: true }).unwrap()));
        types
    }

    #[test]
    fn index_lists_every_group_version_with_a_hash() {
        let index = index(&mk_types());
        for path in ["api/v1", "apis/apps/v1", "apis/windows.k8s.io/v1", "apis/windows.k8s.io/v1alpha1"] {
            let url = index["paths"][path]["serverRelativeURL"].as_str().unwrap();
            assert!(url.starts_with(&format!("/openapi/v3/{path}?hash=")), "{url}");
        }
    }

    #[test]
    fn crd_document_carries_schema_and_field_validation() {
        let document = group_version(&mk_types(), "apis/windows.k8s.io/v1").unwrap();
        let patch = &document["paths"]["/apis/windows.k8s.io/v1/gmsacredentialspecs/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "GMSACredentialSpec");
        assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
        let schema = &document["components"]["schemas"]["io.k8s.windows.v1.GMSACredentialSpec"];
        assert!(schema["properties"]["credspec"].is_object());
    }

    #[test]
    fn unknown_group_versions_have_no_document() {
        assert!(group_version(&mk_types(), "apis/example.com/v1").is_none());
    }
}
