//! Where each managed kind lives in the API (group, version, plural) and the few raw reads every
//! operation shares: get-or-none, list by label, delete-if-present, all as JSON values.

use gmsa::credspec::{self, ApiVersion};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::desired::{ObjectKind, ObjectRef};

/// The API coordinates of a managed kind at the served credspec version.
pub(crate) fn api_resource(kind: ObjectKind, version: ApiVersion) -> ApiResource {
    let (gvk, plural) = match kind {
        ObjectKind::CredSpec => {
            (GroupVersionKind::gvk(credspec::API_GROUP, version.version(), credspec::KIND), credspec::PLURAL)
        }
        ObjectKind::ClusterRole => {
            (GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "ClusterRole"), "clusterroles")
        }
        ObjectKind::RoleBinding => {
            (GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", "RoleBinding"), "rolebindings")
        }
    };
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The API for one object (namespaced when the object has a namespace).
pub(crate) fn api_for(client: &Client, object: &ObjectRef, version: ApiVersion) -> Api<DynamicObject> {
    let resource = api_resource(object.kind, version);
    match &object.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The API over every namespace (or the cluster scope) of a kind.
pub(crate) fn api_all(client: &Client, kind: ObjectKind, version: ApiVersion) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &api_resource(kind, version))
}

/// The identity of a live object of `kind`.
pub(crate) fn object_ref(kind: ObjectKind, live: &DynamicObject) -> ObjectRef {
    ObjectRef { kind, namespace: live.namespace(), name: live.name_any() }
}

/// The object as JSON, with `apiVersion`/`kind` filled in when the server left them out
/// (list items of built-in kinds carry no type meta).
pub(crate) fn to_value(kind: ObjectKind, version: ApiVersion, live: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(live).unwrap_or(Value::Null);
    if value.get("apiVersion").is_none_or(Value::is_null) || value.get("kind").is_none_or(Value::is_null) {
        let resource = api_resource(kind, version);
        value["apiVersion"] = Value::from(resource.api_version);
        value["kind"] = Value::from(resource.kind);
    }
    value
}

/// GET, with 404 as `None`.
pub(crate) async fn get_value(
    client: &Client,
    object: &ObjectRef,
    version: ApiVersion,
) -> Result<Option<Value>, kube::Error> {
    let live = api_for(client, object, version).get_opt(&object.name).await?;
    Ok(live.map(|live| to_value(object.kind, version, &live)))
}

/// Every object of `kind` matching `selector`, across namespaces.
pub(crate) async fn list_values(
    client: &Client,
    kind: ObjectKind,
    version: ApiVersion,
    selector: &str,
) -> Result<Vec<(ObjectRef, Value)>, kube::Error> {
    let list = api_all(client, kind, version).list(&ListParams::default().labels(selector)).await?;
    Ok(list.items.iter().map(|live| (object_ref(kind, live), to_value(kind, version, live))).collect())
}

/// DELETE with `params`, with 404 as success (someone else removed it first).
pub(crate) async fn delete_if_present(
    client: &Client,
    object: &ObjectRef,
    version: ApiVersion,
    params: &DeleteParams,
) -> Result<(), kube::Error> {
    match api_for(client, object, version).delete(&object.name, params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}
