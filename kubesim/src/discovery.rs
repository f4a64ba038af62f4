//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`,
//! `/apis/<group>/<version>`, built from the types the cluster serves at the moment (so a
//! removed CRD disappears from discovery, as on a real cluster).

use serde_json::{Value, json};

use crate::registry::{ResourceType, version_priority};

/// `/version`, shaped like `version.Info` of a current AKS release.
pub(crate) fn version() -> Value {
    json!({"major": "1", "minor": "31", "gitVersion": "v1.31.1", "gitCommit": "948afe5ca072329a73c8e79ed5938717a5cb3d21",
        "gitTreeState": "clean", "buildDate": "2024-09-11T21:22:08Z", "goVersion": "go1.22.6", "compiler": "gc",
        "platform": "linux/amd64"})
}

/// `/api`.
pub(crate) fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

/// Groups in first-seen order with their versions, preferred first.
fn groups(types: &[ResourceType]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for resource_type in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(name, _)| *name == resource_type.group) {
            Some((_, versions)) if !versions.contains(&resource_type.version) => {
                versions.push(resource_type.version.clone())
            }
            Some(_) => {}
            None => groups.push((resource_type.group.clone(), vec![resource_type.version.clone()])),
        }
    }
    for (_, versions) in groups.iter_mut() {
        versions.sort_by_key(|version| std::cmp::Reverse(version_priority(version)));
    }
    groups
}

fn group_document(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0].clone()})
}

/// `/apis`.
pub(crate) fn group_list(types: &[ResourceType]) -> Value {
    let groups: Vec<Value> = groups(types).iter().map(|(name, versions)| group_document(name, versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, `None` if not served.
pub(crate) fn group(types: &[ResourceType], name: &str) -> Option<Value> {
    let (name, versions) = groups(types).into_iter().find(|(group, _)| group == name)?;
    let mut document = group_document(&name, &versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Some(document)
}

/// `/api/v1` or `/apis/<group>/<version>`, `None` if not served.
pub(crate) fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = types.iter().filter(|t| t.group == group && t.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for resource_type in served {
        let mut resource = json!({"name": resource_type.plural, "singularName": resource_type.singular,
            "namespaced": resource_type.namespaced, "kind": resource_type.kind, "verbs": resource_type.verbs});
        if !resource_type.short_names.is_empty() {
            resource["shortNames"] = json!(resource_type.short_names);
        }
        resources.push(resource);
        if resource_type.status_subresource {
            resources.push(json!({"name": format!("{}/status", resource_type.plural), "singularName": "",
                "namespaced": resource_type.namespaced, "kind": resource_type.kind, "verbs": ["get"]}));
        }
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{builtin_types, crd_types};
    use crate::seed::{GmsaCrd, gmsa_crd_object};

    fn mk_types(serving: GmsaCrd) -> Vec<ResourceType> {
        let mut types = builtin_types();
        if let Some(crd) = gmsa_crd_object(serving) {
            types.extend(crd_types(&crd));
        }
        types
    }

    #[test]
    fn gmsa_group_prefers_v1_when_both_are_served() {
        let list = group_list(&mk_types(GmsaCrd::Served { v1: true, v1alpha1: true }));
        let gmsa = list["groups"].as_array().unwrap().iter().find(|g| g["name"] == "windows.k8s.io").unwrap();
        assert_eq!(gmsa["preferredVersion"]["version"], "v1");
        assert_eq!(gmsa["versions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn v1alpha1_only_cluster_serves_no_v1() {
        let types = mk_types(GmsaCrd::Served { v1: false, v1alpha1: true });
        assert!(resource_list(&types, "windows.k8s.io", "v1").is_none());
        let list = resource_list(&types, "windows.k8s.io", "v1alpha1").unwrap();
        assert_eq!(list["resources"][0]["name"], "gmsacredentialspecs");
        assert_eq!(list["resources"][0]["namespaced"], false);
    }

    #[test]
    fn absent_crd_means_no_group() {
        assert!(group(&mk_types(GmsaCrd::Absent), "windows.k8s.io").is_none());
        assert!(group(&mk_types(GmsaCrd::Absent), "apps").is_some());
    }

    #[test]
    fn status_subresources_are_listed() {
        let list = resource_list(&builtin_types(), "apps", "v1").unwrap();
        assert!(list["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments/status"));
    }
}
