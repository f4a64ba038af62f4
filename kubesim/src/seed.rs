//! What a simulated cluster holds when it starts: nodes, namespaces, CoreDNS, the gMSA CRD and
//! webhook, as an AKS cluster with (or without) `--enable-windows-gmsa` would have them.

use serde_json::{Value, json};

/// Name of the windows-gmsa CustomResourceDefinition.
pub const GMSA_CRD_NAME: &str = "gmsacredentialspecs.windows.k8s.io";

/// Name of the gMSA admission webhook configurations (mutating and validating) the seed
/// installs; each holds one webhook named `admission-webhook.windows-gmsa.sigs.k8s.io`,
/// as in windows-gmsa's deploy template.
pub const GMSA_WEBHOOK_NAME: &str = "gmsa-webhook";

/// The webhook entry name inside the configurations, as windows-gmsa publishes it.
pub(crate) const GMSA_WEBHOOK_ENTRY: &str = "admission-webhook.windows-gmsa.sigs.k8s.io";

/// The published CRD, embedded verbatim.
const GMSA_CRD_YAML: &str = include_str!("assets/gmsa-crd.yml");

/// Which versions of the GMSACredentialSpec CRD the cluster serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GmsaCrd {
    /// The CRD is not installed (gMSA not enabled on the cluster).
    Absent,
    /// The CRD is installed and serves the chosen versions; `v1: false, v1alpha1: true` is an
    /// AKS cluster from before release v20230903.
    Served { v1: bool, v1alpha1: bool },
}

/// The forward block AKS adds to `kube-system/coredns` for `--gmsa-root-domain-name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorednsForward {
    /// Root domain forwarded, e.g. `contoso.com`.
    pub domain: String,
    /// DNS server the domain is forwarded to.
    pub dns_ip: String,
}

/// Initial state of one simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSeed {
    /// Number of nodes labelled `kubernetes.io/os=windows`.
    pub windows_nodes: u32,
    /// Number of nodes labelled `kubernetes.io/os=linux`.
    pub linux_nodes: u32,
    /// Whether and how the GMSACredentialSpec CRD is installed.
    pub gmsa_crd: GmsaCrd,
    /// Whether the gMSA admission webhook configurations are registered.
    pub webhook: bool,
    /// The CoreDNS forward rule, if the cluster was configured with a gMSA DNS server.
    pub coredns_forward: Option<CorednsForward>,
}

impl Default for ClusterSeed {
    /// A cluster ready for gMSA: one Linux and one Windows node, CRD v1 and v1alpha1 served,
    /// webhook registered, no DNS forward.
    fn default() -> Self {
        Self {
            windows_nodes: 1,
            linux_nodes: 1,
            gmsa_crd: GmsaCrd::Served { v1: true, v1alpha1: true },
            webhook: true,
            coredns_forward: None,
        }
    }
}

impl CorednsForward {
    /// Convenience constructor.
    pub fn new(domain: impl Into<String>, dns_ip: impl Into<String>) -> Self {
        Self { domain: domain.into(), dns_ip: dns_ip.into() }
    }
}

/// The objects a fresh cluster holds for `seed`, in creation order.
pub(crate) fn seed_objects(cluster_name: &str, seed: &ClusterSeed) -> Vec<Value> {
    let mut objects = Vec::new();
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
        objects.push(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace}}));
    }
    for index in 0..seed.linux_nodes {
        objects.push(node_object(&format!("aks-nodepool1-{cluster_name}-vmss{index:06}"), "linux"));
    }
    for index in 0..seed.windows_nodes {
        objects.push(node_object(&format!("akswin{index:06}"), "windows"));
    }
    objects.extend(bootstrap_rbac_objects());
    objects.push(coredns_configmap(seed.coredns_forward.as_ref()));
    if let Some(crd) = gmsa_crd_object(seed.gmsa_crd) {
        objects.push(crd);
    }
    if seed.webhook {
        objects.extend(gmsa_webhook_objects());
    }
    objects
}

/// The part of kube-apiserver's bootstrap RBAC policy that every user's requests rely on:
/// `cluster-admin` (bound to `system:masters`), discovery and health paths for authenticated
/// users, and `system:basic-user` (creating SelfSubjectAccessReviews, as `kubectl auth can-i`
/// does). Labelled and annotated as the apiserver writes them.
pub(crate) fn bootstrap_rbac_objects() -> Vec<Value> {
    let metadata = |name: &str| {
        json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    let role = |name: &str, rules: Value| json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": metadata(name), "rules": rules});
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|group| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}))
            .collect();
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": metadata(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": subjects})
    };
    vec![
        role(
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        binding("cluster-admin", &["system:masters"]),
        role(
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
            "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        binding("system:discovery", &["system:authenticated"]),
        role(
            "system:basic-user",
            json!([
            {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
        ),
        binding("system:basic-user", &["system:authenticated"]),
    ]
}

/// A Node as AKS labels it.
pub(crate) fn node_object(name: &str, os: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/os": os, "beta.kubernetes.io/os": os,
            "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name,
            "kubernetes.azure.com/mode": if os == "linux" { "system" } else { "user" }}},
        "status": {"nodeInfo": {"operatingSystem": os, "architecture": "amd64"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
}

/// The Corefile AKS ships, plus the gMSA forward block when configured.
pub(crate) fn corefile(forward: Option<&CorednsForward>) -> String {
    let mut corefile = String::from(
        ".:53 {\n    errors\n    ready\n    health\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n    import custom/*.override\n}\nimport custom/*.server\n",
    );
    if let Some(forward) = forward {
        corefile.push_str(&format!(
            "{}:53 {{\n    errors\n    cache 30\n    log\n    forward . {}\n}}\n",
            forward.domain, forward.dns_ip
        ));
    }
    corefile
}

/// `kube-system/coredns` with the given forward rule.
pub(crate) fn coredns_configmap(forward: Option<&CorednsForward>) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "kube-system",
            "labels": {"addonmanager.kubernetes.io/mode": "Reconcile", "k8s-app": "kube-dns"}},
        "data": {"Corefile": corefile(forward)}})
}

/// The published gMSA CRD restricted to the versions `serving` names; `None` when absent.
pub(crate) fn gmsa_crd_object(serving: GmsaCrd) -> Option<Value> {
    let GmsaCrd::Served { v1, v1alpha1 } = serving else { return None };
    if !v1 && !v1alpha1 {
        return None;
    }
    // The asset is compiled into the crate and checked by a unit test, so a parse failure is a
    // build defect, not an input error.
    let mut crd: Value = serde_yaml::from_str(GMSA_CRD_YAML).unwrap_or(Value::Null);
    if let Some(versions) = crd.pointer_mut("/spec/versions").and_then(Value::as_array_mut) {
        versions.retain(|version| match version["name"].as_str() {
            Some("v1") => v1,
            Some("v1alpha1") => v1alpha1,
            _ => false,
        });
        if !v1 {
            // An old cluster stored credspecs at v1alpha1, the only version it knew.
            for version in versions.iter_mut() {
                version["storage"] = Value::Bool(true);
                if let Some(fields) = version.as_object_mut() {
                    fields.remove("deprecated");
                }
            }
        }
    }
    Some(crd)
}

/// Mutating and validating webhook configurations as windows-gmsa deploys them.
pub(crate) fn gmsa_webhook_objects() -> Vec<Value> {
    ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
        .into_iter()
        .map(|kind| {
            let (path, operations) = if kind.starts_with("Mutating") {
                ("/mutate", json!(["CREATE"]))
            } else {
                ("/validate", json!(["CREATE", "UPDATE"]))
            };
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                "metadata": {"name": GMSA_WEBHOOK_NAME},
                "webhooks": [{"name": GMSA_WEBHOOK_ENTRY,
                    "clientConfig": {"service": {"name": GMSA_WEBHOOK_NAME, "namespace": "kube-system", "path": path, "port": 443}},
                    "rules": [{"operations": operations, "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods"], "scope": "*"}],
                    "failurePolicy": "Fail", "matchPolicy": "Equivalent", "admissionReviewVersions": ["v1", "v1beta1"],
                    "sideEffects": "None", "timeoutSeconds": 10,
                    "namespaceSelector": {"matchExpressions": [{"key": "gmsa-webhook", "operator": "NotIn", "values": ["disabled"]}]},
                    "objectSelector": {}}]})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_crd_parses_with_both_versions() {
        let crd = gmsa_crd_object(GmsaCrd::Served { v1: true, v1alpha1: true }).unwrap();
        assert_eq!(crd["metadata"]["name"], GMSA_CRD_NAME);
        let names: Vec<_> = crd["spec"]["versions"].as_array().unwrap().iter().map(|v| v["name"].clone()).collect();
        assert_eq!(names, vec![json!("v1alpha1"), json!("v1")]);
        assert_eq!(crd["spec"]["scope"], "Cluster");
    }

    #[test]
    fn v1alpha1_only_crd_stores_at_v1alpha1() {
        let crd = gmsa_crd_object(GmsaCrd::Served { v1: false, v1alpha1: true }).unwrap();
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["name"], "v1alpha1");
        assert_eq!(versions[0]["storage"], true);
    }

    #[test]
    fn absent_crd_is_not_seeded() {
        let seed = ClusterSeed { gmsa_crd: GmsaCrd::Absent, ..ClusterSeed::default() };
        assert!(seed_objects("c1", &seed).iter().all(|o| o["kind"] != "CustomResourceDefinition"));
    }

    #[test]
    fn corefile_carries_the_forward_block_only_when_configured() {
        let forward = CorednsForward::new("contoso.com", "10.0.0.4");
        let with = corefile(Some(&forward));
        assert!(with.contains("contoso.com:53 {\n    errors\n    cache 30\n    log\n    forward . 10.0.0.4\n}"));
        assert!(!corefile(None).contains("contoso.com"));
    }
}
