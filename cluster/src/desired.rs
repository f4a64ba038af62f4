//! What gmsa-fleet wants in a cluster for one credential spec: the GMSACredentialSpec, a
//! ClusterRole granting `use` on exactly that spec, and one RoleBinding per service account,
//! all labelled as managed by gmsa-fleet and as belonging to one owner.
//!
//! The owner label is what makes a rename safe: a renamed spec keeps its owner, so the objects
//! the previous apply created under the old name are found (by label) and pruned, while objects
//! of other owners and unlabelled objects are never touched.

use gmsa::credspec::{self, ApiVersion, CredSpec};
use gmsa::kube_names;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The label every object gmsa-fleet writes carries, with value [`MANAGED_BY_VALUE`].
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_KEY`].
pub const MANAGED_BY_VALUE: &str = "gmsa-fleet";
/// The label naming the rollout (credential spec identity) an object belongs to.
pub const OWNER_KEY: &str = "gmsa-fleet.io/owner";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "gmsa-fleet";

/// The kinds of object gmsa-fleet manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectKind {
    /// `windows.k8s.io` GMSACredentialSpec (cluster-scoped).
    CredSpec,
    /// `rbac.authorization.k8s.io/v1` ClusterRole.
    ClusterRole,
    /// `rbac.authorization.k8s.io/v1` RoleBinding (namespaced).
    RoleBinding,
}

impl ObjectKind {
    /// The Kubernetes `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            ObjectKind::CredSpec => credspec::KIND,
            ObjectKind::ClusterRole => "ClusterRole",
            ObjectKind::RoleBinding => "RoleBinding",
        }
    }

    /// All managed kinds, in apply order (the spec before the role that names it, the role
    /// before the bindings that refer to it).
    pub const ALL: [ObjectKind; 3] = [ObjectKind::CredSpec, ObjectKind::ClusterRole, ObjectKind::RoleBinding];
}

/// Identity of one object: kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The prefix of this object's fields in a step diff: `/RoleBinding/default/allow-…`.
    pub fn diff_prefix(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("/{}/{}/{}", self.kind.kind(), namespace, self.name),
            None => format!("/{}/{}", self.kind.kind(), self.name),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.diff_prefix().trim_start_matches('/'))
    }
}

/// One object as gmsa-fleet wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub object: ObjectRef,
    /// The full manifest sent by server-side apply; its fields are the fields gmsa-fleet manages.
    pub manifest: Value,
}

/// A namespace and service account allowed to use the credential spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl From<proto::command::ServiceAccountRef> for ServiceAccountRef {
    fn from(wire: proto::command::ServiceAccountRef) -> Self {
        ServiceAccountRef { namespace: wire.namespace, name: wire.name }
    }
}

/// Everything one apply needs: the validated spec, its owner and who may use it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyRequest {
    pub credspec: CredSpec,
    /// Stable identity of this rollout across renames, a Kubernetes label value.
    pub owner: String,
    /// Service accounts that get a RoleBinding to the spec's ClusterRole.
    pub bindings: Vec<ServiceAccountRef>,
}

/// A request that cannot be turned into valid Kubernetes objects. The name rules live in the
/// pure core (`gmsa::kube_names`), so that fleetctl checks them before sending with the same code.
pub use gmsa::kube_names::NameError as DesiredError;
pub use gmsa::kube_names::{cluster_role_name, is_label_value, role_binding_name};

/// The label selector that finds every object of one owner.
pub fn owner_selector(owner: &str) -> String {
    format!("{MANAGED_BY_KEY}={MANAGED_BY_VALUE},{OWNER_KEY}={owner}")
}

fn labels(owner: &str) -> Value {
    json!({ MANAGED_BY_KEY: MANAGED_BY_VALUE, OWNER_KEY: owner })
}

/// Builds the objects of one request, in apply order.
pub fn desired_objects(request: &ApplyRequest, version: ApiVersion) -> Result<Vec<DesiredObject>, DesiredError> {
    kube_names::check_owner(&request.owner)?;
    let spec_name = request.credspec.name.as_str();
    let mut credspec_manifest = request.credspec.manifest(version);
    credspec_manifest["metadata"]["labels"] = labels(&request.owner);
    let mut objects = vec![DesiredObject {
        object: ObjectRef { kind: ObjectKind::CredSpec, namespace: None, name: spec_name.to_string() },
        manifest: credspec_manifest,
    }];

    let role_name = kube_names::checked_cluster_role_name(spec_name)?;
    objects.push(DesiredObject {
        object: ObjectRef { kind: ObjectKind::ClusterRole, namespace: None, name: role_name.clone() },
        manifest: json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": role_name, "labels": labels(&request.owner) },
            "rules": [{
                "apiGroups": [credspec::API_GROUP],
                "resources": [credspec::PLURAL],
                "verbs": ["use"],
                "resourceNames": [spec_name],
            }],
        }),
    });

    for binding in &request.bindings {
        let binding_name = kube_names::checked_binding(spec_name, &binding.namespace, &binding.name)?;
        objects.push(DesiredObject {
            object: ObjectRef {
                kind: ObjectKind::RoleBinding,
                namespace: Some(binding.namespace.clone()),
                name: binding_name.clone(),
            },
            manifest: json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": { "name": binding_name, "namespace": binding.namespace, "labels": labels(&request.owner) },
                "subjects": [{ "kind": "ServiceAccount", "name": binding.name, "namespace": binding.namespace }],
                "roleRef": { "kind": "ClusterRole", "name": role_name, "apiGroup": "rbac.authorization.k8s.io" },
            }),
        });
    }
    objects.sort_by(|a, b| a.object.cmp(&b.object));
    objects.dedup_by(|a, b| a.object == b.object);
    Ok(objects)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use gmsa::credspec::CredSpecInputs;

    pub(crate) fn mk_request(spec_name: &str) -> ApplyRequest {
        let inputs = CredSpecInputs {
            name: spec_name.into(),
            gmsa_account: "WebApp01".into(),
            netbios_domain: "CONTOSO".into(),
            dns_domain: "contoso.com".into(),
            dns_tree_root: "contoso.com".into(),
            domain_guid: "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f".into(),
            domain_sid: "S-1-5-21-3623811015-3361044348-30300820".into(),
            secret_uri: "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred".into(),
            managed_identity_object_id: "0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into(),
        };
        ApplyRequest {
            credspec: CredSpec::new(&inputs).unwrap(),
            owner: "webapp".into(),
            bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
        }
    }

    #[test]
    fn role_and_binding_match_the_seed_shape_and_name_only_this_spec() {
        let objects = desired_objects(&mk_request("aks-gmsa-spec"), ApiVersion::V1).unwrap();
        let names: Vec<String> = objects.iter().map(|o| o.object.to_string()).collect();
        assert_eq!(
            names,
            [
                "GMSACredentialSpec/aks-gmsa-spec",
                "ClusterRole/aks-gmsa-spec-role",
                "RoleBinding/default/allow-default-svc-account-read-on-aks-gmsa-spec"
            ]
        );
        let role = &objects[1].manifest;
        assert_eq!(role["rules"][0]["resourceNames"], json!(["aks-gmsa-spec"]));
        assert_eq!(role["rules"][0]["verbs"], json!(["use"]));
        assert_eq!(role["rules"][0]["resources"], json!(["gmsacredentialspecs"]));
        let binding = &objects[2].manifest;
        assert_eq!(binding["roleRef"]["name"], "aks-gmsa-spec-role");
        assert_eq!(binding["subjects"][0]["namespace"], "default");
        for object in &objects {
            assert_eq!(object.manifest["metadata"]["labels"][MANAGED_BY_KEY], "gmsa-fleet");
            assert_eq!(object.manifest["metadata"]["labels"][OWNER_KEY], "webapp");
        }
    }

    #[test]
    fn invalid_owner_namespace_and_overlong_names_are_rejected() {
        let mut request = mk_request("aks-gmsa-spec");
        request.owner = "-bad".into();
        assert!(matches!(desired_objects(&request, ApiVersion::V1), Err(DesiredError::Owner { .. })));
        let mut request = mk_request("aks-gmsa-spec");
        request.bindings[0].namespace = "Default".into();
        assert!(matches!(desired_objects(&request, ApiVersion::V1), Err(DesiredError::Namespace { .. })));
        let mut request = mk_request(&"a".repeat(250));
        request.bindings.clear();
        assert!(matches!(
            desired_objects(&request, ApiVersion::V1),
            Err(DesiredError::Name { kind: "ClusterRole", .. })
        ));
    }
}
