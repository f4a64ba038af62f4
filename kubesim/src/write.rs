//! The write verbs as the API server defines them, over a [`Store`]: create (409
//! AlreadyExists), update (resourceVersion precondition → 409 Conflict; required for custom
//! resources), the PATCH flavours (JSON patch, merge, strategic-as-merge for built-ins,
//! server-side apply with fieldManager/force) and delete with preconditions.

use serde_json::{Value, json};

use crate::apply::{ApplyRequest, merge_patch, record_update, server_side_apply};
use crate::registry::ResourceType;
use crate::schema::list_map_keys;
use crate::status::{ApiError, Cause};
use crate::store::{Store, WriteOptions, WriteResult, now_rfc3339, subject_of};

/// PATCH content types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// RFC 6902 (`application/json-patch+json`).
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchKind {
    /// From the request's Content-Type; `UnsupportedMediaType` for the others.
    pub fn from_content_type(content_type: &str, resource_type: &ResourceType) -> Result<Self, ApiError> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        let accepted = if resource_type.is_custom() {
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        } else {
            "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
        };
        match media_type {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            // Custom resources have no strategic-merge metadata; the real server refuses it.
            "application/strategic-merge-patch+json" if !resource_type.is_custom() => Ok(Self::StrategicMerge),
            "application/apply-patch+yaml" => Ok(Self::Apply),
            _ => Err(ApiError::UnsupportedMediaType(accepted.to_owned())),
        }
    }
}

/// Merge keys of the built-in list fields the simulator serves (structured-merge-diff's
/// `x-kubernetes-list-map-keys` for these types).
fn builtin_list_keys(names: &[String]) -> Option<Vec<String>> {
    let key = match names.last()?.as_str() {
        "containers" | "initContainers" | "volumes" | "env" | "webhooks" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        _ => return None,
    };
    Some(vec![key.to_owned()])
}

fn list_keys_of(resource_type: &ResourceType) -> impl Fn(&[String]) -> Option<Vec<String>> + '_ {
    move |names: &[String]| match &resource_type.schema {
        Some(schema) => list_map_keys(schema, names),
        None => builtin_list_keys(names),
    }
}

/// Body apiVersion/kind must name the type the path addresses.
fn check_type(resource_type: &ResourceType, body: &Value) -> Result<(), ApiError> {
    let api_version = body["apiVersion"].as_str().unwrap_or("");
    let kind = body["kind"].as_str().unwrap_or("");
    if (!api_version.is_empty() && api_version != resource_type.api_version())
        || (!kind.is_empty() && kind != resource_type.kind)
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            resource_type.api_version()
        )));
    }
    Ok(())
}

/// Fills apiVersion, kind and namespace from the path; rejects a mismatching namespace.
fn normalise(resource_type: &ResourceType, namespace: Option<&str>, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("the body of the request must be a JSON object".into()));
    }
    check_type(resource_type, body)?;
    body["apiVersion"] = json!(resource_type.api_version());
    body["kind"] = json!(resource_type.kind);
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    if resource_type.namespaced {
        let path_namespace = namespace.unwrap_or("");
        match body["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && ns != path_namespace => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => body["metadata"]["namespace"] = json!(path_namespace),
        }
    } else if let Some(metadata) = body["metadata"].as_object_mut() {
        metadata.remove("namespace");
    }
    Ok(())
}

fn check_namespace(store: &Store, resource_type: &ResourceType, namespace: Option<&str>) -> Result<(), ApiError> {
    match namespace {
        Some(ns) if resource_type.namespaced && !store.namespace_exists(ns) => {
            let namespaces = store.resolve("", "v1", "namespaces").ok_or(ApiError::NoSuchResource)?;
            Err(ApiError::NotFound(subject_of(&namespaces, ns)))
        }
        _ => Ok(()),
    }
}

fn conflict(resource_type: &ResourceType, name: &str) -> ApiError {
    ApiError::Conflict {
        subject: subject_of(resource_type, name),
        detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
    }
}

/// Checks a body's resourceVersion precondition against the stored object.
fn check_resource_version(
    resource_type: &ResourceType,
    name: &str,
    body: &Value,
    stored: &Value,
) -> Result<(), ApiError> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(wanted) if !wanted.is_empty() && Some(wanted) != stored["metadata"]["resourceVersion"].as_str() => {
            Err(conflict(resource_type, name))
        }
        _ => Ok(()),
    }
}

pub(crate) fn create(
    store: &mut Store,
    resource_type: &ResourceType,
    namespace: Option<&str>,
    mut body: Value,
    options: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    normalise(resource_type, namespace, &mut body)?;
    check_namespace(store, resource_type, namespace)?;
    let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if name.is_empty() {
        let causes = vec![Cause::required("metadata.name", "name or generateName is required")];
        return Err(ApiError::Invalid { subject: subject_of(resource_type, ""), causes });
    }
    let key = Store::key(resource_type, namespace, &name);
    if store.objects.contains_key(&key) {
        return Err(ApiError::AlreadyExists(subject_of(resource_type, &name)));
    }
    if let Some(metadata) = body["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    let keys = list_keys_of(resource_type);
    record_update(
        None,
        &mut body,
        &options.field_manager,
        &resource_type.api_version(),
        &now_rfc3339(),
        resource_type.status_subresource,
        &keys,
    );
    store.commit(resource_type, key, body, "create", options)
}

pub(crate) fn update(
    store: &mut Store,
    resource_type: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    mut body: Value,
    options: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    normalise(resource_type, namespace, &mut body)?;
    let body_name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let key = Store::key(resource_type, namespace, name);
    let stored = store.objects.get(&key).cloned().ok_or_else(|| ApiError::NotFound(subject_of(resource_type, name)))?;
    let resource_version = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if resource_version.is_empty() && resource_type.is_custom() {
        let causes = vec![Cause::invalid("metadata.resourceVersion", &json!("0x0"), "must be specified for an update")];
        return Err(ApiError::Invalid { subject: subject_of(resource_type, name), causes });
    }
    check_resource_version(resource_type, name, &body, &stored)?;
    if body["metadata"]["managedFields"].as_array().is_none_or(|entries| entries.is_empty()) {
        body["metadata"]["managedFields"] = stored["metadata"]["managedFields"].clone();
    }
    let keys = list_keys_of(resource_type);
    record_update(
        Some(&stored),
        &mut body,
        &options.field_manager,
        &resource_type.api_version(),
        &now_rfc3339(),
        resource_type.status_subresource,
        &keys,
    );
    store.commit(resource_type, key, body, "update", options)
}

/// A PATCH; `force` only for apply. Apply creates the object when absent.
pub(crate) fn patch(
    store: &mut Store,
    resource_type: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    kind: PatchKind,
    patch_body: Value,
    options: &WriteOptions,
) -> Result<WriteResult, ApiError> {
    let key = Store::key(resource_type, namespace, name);
    let stored = store.objects.get(&key).map(|object| Store::served(resource_type, object));
    let keys = list_keys_of(resource_type);
    match kind {
        PatchKind::Json | PatchKind::Merge | PatchKind::StrategicMerge => {
            let stored = stored.ok_or_else(|| ApiError::NotFound(subject_of(resource_type, name)))?;
            let mut patched = if kind == PatchKind::Json {
                let patched = crate::json_patch::apply(&stored, &patch_body).map_err(ApiError::BadRequest)?;
                check_resource_version(resource_type, name, &patched, &stored)?;
                patched
            } else {
                if !patch_body.is_object() {
                    return Err(ApiError::BadRequest("the body of a merge patch must be a JSON object".into()));
                }
                check_resource_version(resource_type, name, &patch_body, &stored)?;
                let mut patched = stored.clone();
                merge_patch(&mut patched, &patch_body);
                patched
            };
            if patched["metadata"]["managedFields"].as_array().is_none_or(|entries| entries.is_empty()) {
                patched["metadata"]["managedFields"] = stored["metadata"]["managedFields"].clone();
            }
            patched["metadata"]["name"] = json!(name);
            normalise(resource_type, namespace, &mut patched)?;
            record_update(
                Some(&stored),
                &mut patched,
                &options.field_manager,
                &resource_type.api_version(),
                &now_rfc3339(),
                resource_type.status_subresource,
                &keys,
            );
            store.commit(resource_type, key, patched, "patch", options)
        }
        PatchKind::Apply => {
            if options.field_manager.is_empty() {
                return Err(ApiError::BadRequest(
                    "PATCH, application/apply-patch+yaml requires fieldManager to be set".into(),
                ));
            }
            let mut applied = patch_body;
            if applied["apiVersion"].as_str().unwrap_or("").is_empty()
                || applied["kind"].as_str().unwrap_or("").is_empty()
            {
                return Err(ApiError::BadRequest("apiVersion and kind must be set in an apply configuration".into()));
            }
            normalise(resource_type, namespace, &mut applied)?;
            let applied_name = applied["metadata"]["name"].as_str().unwrap_or("");
            if applied_name != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
            if stored.is_none() {
                check_namespace(store, resource_type, namespace)?;
            }
            if let Some(stored) = &stored {
                check_resource_version(resource_type, name, &applied, stored)?;
            }
            let now = now_rfc3339();
            let api_version = resource_type.api_version();
            let request = ApplyRequest {
                manager: &options.field_manager,
                force: options.force,
                api_version: &api_version,
                now: &now,
                status_subresource: resource_type.status_subresource,
                list_keys: &keys,
            };
            let verb = "apply";
            match server_side_apply(stored.as_ref(), &applied, &request) {
                Ok(result) => store.commit(resource_type, key, result, verb, options).map(|mut written| {
                    written.created = stored.is_none();
                    written
                }),
                Err(causes) => Err(ApiError::ApplyConflict { subject: subject_of(resource_type, name), causes }),
            }
        }
    }
}

/// DELETE with optional `preconditions` (uid, resourceVersion) from the DeleteOptions body.
pub(crate) fn delete(
    store: &mut Store,
    resource_type: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    delete_options: &Value,
    options: &WriteOptions,
) -> Result<Value, ApiError> {
    let key = Store::key(resource_type, namespace, name);
    let stored = store.objects.get(&key).cloned().ok_or_else(|| ApiError::NotFound(subject_of(resource_type, name)))?;
    let preconditions = &delete_options["preconditions"];
    if let Some(wanted) = preconditions["resourceVersion"].as_str() {
        let actual = stored["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if wanted != actual {
            return Err(ApiError::Conflict {
                subject: subject_of(resource_type, name),
                detail: format!(
                    "the ResourceVersion in the precondition ({wanted}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
                ),
            });
        }
    }
    if let Some(wanted) = preconditions["uid"].as_str() {
        let actual = stored["metadata"]["uid"].as_str().unwrap_or("");
        if wanted != actual {
            return Err(ApiError::Conflict {
                subject: subject_of(resource_type, name),
                detail: format!(
                    "the UID in the precondition ({wanted}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
                ),
            });
        }
    }
    store.remove(resource_type, &key, options).ok_or_else(|| ApiError::NotFound(subject_of(resource_type, name)))
}
