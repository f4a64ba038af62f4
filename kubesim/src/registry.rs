//! The resource types a simulated cluster serves: a fixed table of built-in types plus one
//! entry per served version of each established CustomResourceDefinition in the store.

use serde_json::Value;

/// One served resource at one group/version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Plural resource name used in paths, e.g. `configmaps`.
    pub plural: String,
    /// Lower-case singular name.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Verbs advertised in discovery and accepted by the server.
    pub verbs: &'static [&'static str],
    /// Short names advertised in discovery.
    pub short_names: Vec<String>,
    /// Whether a `/status` subresource exists (status is then ignored on main-resource writes).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained.
    pub has_generation: bool,
    /// openAPIV3Schema of a custom resource version.
    pub schema: Option<Value>,
}

/// Verbs of a fully writable resource.
pub(crate) const ALL_VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Verbs of a virtual resource that is only created and never stored (access reviews).
const CREATE_VERBS: &[&str] = &["create"];

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Whether this is a custom resource (served from a CRD).
    pub fn is_custom(&self) -> bool {
        self.schema.is_some() || self.group == "windows.k8s.io"
    }

    /// Whether the verb is served.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// `ConfigMapList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short_names: &'static [&'static str],
    status_subresource: bool,
    has_generation: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &["ns"],
        status_subresource: true,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &["no"],
        status_subresource: true,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["cm"],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["sa"],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["po"],
        status_subresource: true,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["ev"],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["svc"],
        status_subresource: true,
        has_generation: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        namespaced: false,
        verbs: CREATE_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        namespaced: false,
        verbs: CREATE_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &["deploy"],
        status_subresource: true,
        has_generation: true,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        verbs: ALL_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: false,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &["crd", "crds"],
        status_subresource: true,
        has_generation: true,
    },
    Builtin {
        group: "admissionregistration.k8s.io",
        version: "v1",
        kind: "MutatingWebhookConfiguration",
        plural: "mutatingwebhookconfigurations",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: true,
    },
    Builtin {
        group: "admissionregistration.k8s.io",
        version: "v1",
        kind: "ValidatingWebhookConfiguration",
        plural: "validatingwebhookconfigurations",
        namespaced: false,
        verbs: ALL_VERBS,
        short_names: &[],
        status_subresource: false,
        has_generation: true,
    },
];

/// The built-in resource types.
pub(crate) fn builtin_types() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| ResourceType {
            group: b.group.to_owned(),
            version: b.version.to_owned(),
            kind: b.kind.to_owned(),
            plural: b.plural.to_owned(),
            singular: b.kind.to_lowercase(),
            namespaced: b.namespaced,
            verbs: b.verbs,
            short_names: b.short_names.iter().map(|s| (*s).to_owned()).collect(),
            status_subresource: b.status_subresource,
            has_generation: b.has_generation,
            schema: None,
        })
        .collect()
}

/// The resource types a CRD object serves (one per served version), empty if malformed.
pub(crate) fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let (Some(group), Some(kind), Some(plural)) =
        (spec["group"].as_str(), spec["names"]["kind"].as_str(), spec["names"]["plural"].as_str())
    else {
        return Vec::new();
    };
    let singular = spec["names"]["singular"].as_str().map(str::to_owned).unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = spec["names"]["shortNames"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() == Some("Namespaced");
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|version| version["served"].as_bool().unwrap_or(false))
        .filter_map(|version| {
            Some(ResourceType {
                group: group.to_owned(),
                version: version["name"].as_str()?.to_owned(),
                kind: kind.to_owned(),
                plural: plural.to_owned(),
                singular: singular.clone(),
                namespaced,
                verbs: ALL_VERBS,
                short_names: short_names.clone(),
                status_subresource: version.pointer("/subresources/status").is_some(),
                has_generation: true,
                schema: Some(
                    version.pointer("/schema/openAPIV3Schema").cloned().unwrap_or(Value::Object(Default::default())),
                ),
            })
        })
        .collect()
}

/// Kubernetes version priority (GA > beta > alpha, higher numbers first), used for
/// `preferredVersion` in discovery.
pub(crate) fn version_priority(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else { return (0, 0, 0) };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let suffix = &rest[digits.len()..];
    if suffix.is_empty() {
        return (3, major, 0);
    }
    let (stage, minor) = if let Some(n) = suffix.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = suffix.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (stage, major, minor.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{GmsaCrd, gmsa_crd_object};

    #[test]
    fn gmsa_crd_serves_cluster_scoped_types_with_schema() {
        let crd = gmsa_crd_object(GmsaCrd::Served { v1: true, v1alpha1: true }).unwrap();
        let types = crd_types(&crd);
        let versions: Vec<_> = types.iter().map(|t| t.version.as_str()).collect();
        assert_eq!(versions, ["v1alpha1", "v1"]);
        assert!(types.iter().all(|t| !t.namespaced && t.plural == "gmsacredentialspecs" && t.schema.is_some()));
    }

    #[test]
    fn unserved_versions_are_not_types() {
        let mut crd = gmsa_crd_object(GmsaCrd::Served { v1: true, v1alpha1: true }).unwrap();
        crd["spec"]["versions"][0]["served"] = Value::Bool(false);
        assert_eq!(crd_types(&crd).len(), 1);
    }

    #[test]
    fn ga_outranks_alpha() {
        assert!(version_priority("v1") > version_priority("v1alpha1"));
        assert!(version_priority("v1beta1") > version_priority("v1alpha2"));
        assert!(version_priority("v2") > version_priority("v1"));
    }
}
