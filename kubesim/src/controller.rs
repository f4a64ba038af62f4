//! The simulator's stand-in for the Deployment controller, scheduler, kubelet and the gMSA
//! admission webhook (its access review answered by the cluster's RBAC, its mutation inlining
//! the credspec's content into the pods): after every write it decides, from the cluster's state, whether each
//! Deployment's pods would run, and writes Deployment status, Pods and Events accordingly.
//!
//! A Deployment whose pod template names a gMSA credspec becomes available only if the gMSA
//! webhook is registered, the credspec exists, the pod's service account is bound to a role
//! granting `use` on it, and a node matches the node selector; otherwise its status shows the
//! failing condition with the message the real component would give.

use serde_json::{Value, json};

use crate::rbac::{Policy, Request, UserInfo, policy_of};
use crate::seed::GMSA_WEBHOOK_ENTRY;
use crate::status::ApiError;
use crate::store::{ObjectKey, Store, now_rfc3339};

const DEPLOYMENT_ANNOTATION: &str = "kubesim.io/deployment";

/// Why a Deployment's pods do or do not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Pods are scheduled and running.
    Available,
    /// Pod creation is refused at admission (ReplicaFailure/FailedCreate).
    AdmissionDenied(String),
    /// Pods are created but cannot run (Pending, or failing at sandbox creation).
    NotRunning { reason: &'static str, message: String },
}

/// The parts of cluster state the decision reads.
pub(crate) struct ClusterFacts<'a> {
    pub nodes: Vec<&'a Value>,
    /// Every credspec by name, for the webhook's lookup and its inlining of the content.
    pub credspecs: Vec<(String, &'a Value)>,
    pub webhook_registered: bool,
    /// The RBAC objects the webhook's access review is answered from.
    pub policy: Policy<'a>,
}

fn objects_of<'a>(store: &'a Store, group: &str, plural: &str) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> {
    let (group, plural) = (group.to_owned(), plural.to_owned());
    store.objects.iter().filter(move |(key, _)| key.group == group && key.plural == plural)
}

impl<'a> ClusterFacts<'a> {
    pub fn gather(store: &'a Store) -> Self {
        let webhook_registered =
            ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"].iter().all(|plural| {
                objects_of(store, "admissionregistration.k8s.io", plural).any(|(_, config)| {
                    config["webhooks"].as_array().into_iter().flatten().any(|w| w["name"] == GMSA_WEBHOOK_ENTRY)
                })
            });
        Self {
            nodes: objects_of(store, "", "nodes").map(|(_, v)| v).collect(),
            credspecs: objects_of(store, "windows.k8s.io", "gmsacredentialspecs")
                .map(|(k, v)| (k.name.clone(), v))
                .collect(),
            webhook_registered,
            policy: policy_of(store),
        }
    }

    /// The webhook's check: a (Local)SubjectAccessReview asking whether the pod's service
    /// account may `use` the credspec, answered by RBAC.
    fn may_use_credspec(&self, namespace: &str, service_account: &str, credspec: &str) -> bool {
        let user = UserInfo::service_account(namespace, service_account);
        let request = Request::resource("use", "windows.k8s.io", "gmsacredentialspecs", namespace, credspec);
        self.policy.authorize(&user, &request).allowed
    }

    /// The credspec's `credspec` field as the JSON text the webhook inlines.
    fn credspec_contents(&self, name: &str) -> Option<String> {
        self.credspecs.iter().find(|(found, _)| found == name).map(|(_, object)| object["credspec"].to_string())
    }
}

/// The credspec a pod template names, at pod or container level.
fn credspec_name(pod_spec: &Value) -> Option<String> {
    let pod_level = pod_spec.pointer("/securityContext/windowsOptions/gmsaCredentialSpecName").and_then(Value::as_str);
    let container_level = pod_spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| c.pointer("/securityContext/windowsOptions/gmsaCredentialSpecName").and_then(Value::as_str));
    pod_level.or(container_level).map(str::to_owned)
}

/// The pod spec after the gMSA mutating webhook: every `gmsaCredentialSpecName` (pod and
/// container level) gets `gmsaCredentialSpec`, the credspec's content as JSON text.
fn admitted_pod_spec(template_spec: &Value, facts: &ClusterFacts<'_>) -> Value {
    let mut spec = template_spec.clone();
    let fill = |security_context: Option<&mut Value>| {
        let Some(options) = security_context.and_then(|context| context.get_mut("windowsOptions")) else { return };
        let Some(name) = options["gmsaCredentialSpecName"].as_str().map(str::to_owned) else { return };
        if let Some(contents) = facts.credspec_contents(&name) {
            options["gmsaCredentialSpec"] = json!(contents);
        }
    };
    fill(spec.get_mut("securityContext"));
    for container in spec["containers"].as_array_mut().into_iter().flatten() {
        fill(container.get_mut("securityContext"));
    }
    spec
}

/// The gMSA webhook's verdict on a pod (a no-op without a credspec name): the credspec must
/// exist, and the pod's service account must be allowed to `use` it.
fn webhook_verdict(namespace: &str, pod_spec: &Value, facts: &ClusterFacts<'_>) -> Result<(), ApiError> {
    let Some(credspec) = credspec_name(pod_spec) else { return Ok(()) };
    let denied = |code: u16, message: String| ApiError::AdmissionDenied {
        webhook: GMSA_WEBHOOK_ENTRY.to_owned(),
        code,
        message,
    };
    if facts.credspec_contents(&credspec).is_none() {
        return Err(denied(404, format!("cred spec {credspec} does not exist")));
    }
    let service_account = pod_spec["serviceAccountName"].as_str().unwrap_or("default");
    if !facts.may_use_credspec(namespace, service_account, &credspec) {
        return Err(denied(
            403,
            format!("service account \"{service_account}\" is not authorized to `use` gMSA cred spec \"{credspec}\""),
        ));
    }
    Ok(())
}

/// Admission of a Pod created through the API, as the registered gMSA webhooks do it: the
/// validating check of [`webhook_verdict`], then the mutation that inlines the credspec content.
/// Without the webhook registered the pod is stored as sent.
pub(crate) fn admit_pod(store: &Store, pod: &mut Value) -> Result<(), ApiError> {
    let facts = ClusterFacts::gather(store);
    if !facts.webhook_registered {
        return Ok(());
    }
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
    webhook_verdict(&namespace, &pod["spec"], &facts)?;
    pod["spec"] = admitted_pod_spec(&pod["spec"], &facts);
    Ok(())
}

/// Decides whether a Deployment's pods would run (pure).
pub(crate) fn readiness(deployment: &Value, facts: &ClusterFacts<'_>) -> Readiness {
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap_or("default");
    let pod_spec = &deployment["spec"]["template"]["spec"];
    if let Some(credspec) = credspec_name(pod_spec) {
        if !facts.webhook_registered {
            return Readiness::NotRunning {
                reason: "CredentialSpecNotExpanded",
                message: format!(
                    "gMSA credential spec \"{credspec}\" was not expanded into the pod: the gMSA admission webhook is not registered"
                ),
            };
        }
        if let Err(denied) = webhook_verdict(namespace, pod_spec, facts) {
            return Readiness::AdmissionDenied(denied.to_string());
        }
    }
    let selector = pod_spec["nodeSelector"].as_object();
    let matching = facts
        .nodes
        .iter()
        .filter(|node| {
            selector.into_iter().flatten().all(|(key, value)| node["metadata"]["labels"].get(key) == Some(value))
        })
        .count();
    if matching == 0 {
        return Readiness::NotRunning {
            reason: "FailedScheduling",
            message: format!(
                "0/{} nodes are available: {} node(s) didn't match Pod's node affinity/selector.",
                facts.nodes.len(),
                facts.nodes.len()
            ),
        };
    }
    Readiness::Available
}

/// A stable short hash of the pod template, like `pod-template-hash`.
fn template_hash(deployment: &Value) -> String {
    let text = deployment["spec"]["template"].to_string();
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10).map(|i| alphabet[((hash >> (i * 6)) % alphabet.len() as u64) as usize] as char).collect()
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message})
}

/// Deployment status for a readiness decision (without timestamps).
fn desired_status(deployment: &Value, readiness: &Readiness) -> Value {
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = deployment["metadata"]["generation"].clone();
    let replica_set =
        format!("{}-{}", deployment["metadata"]["name"].as_str().unwrap_or(""), template_hash(deployment));
    match readiness {
        Readiness::Available => {
            json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas, "conditions": [
                condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                condition("Progressing", "True", "NewReplicaSetAvailable", &format!("ReplicaSet \"{replica_set}\" has successfully progressed."))]})
        }
        Readiness::AdmissionDenied(message) => {
            json!({"observedGeneration": generation, "unavailableReplicas": replicas, "conditions": [
                condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                condition("Progressing", "True", "ReplicaSetUpdated", &format!("ReplicaSet \"{replica_set}\" is progressing.")),
                condition("ReplicaFailure", "True", "FailedCreate", message)]})
        }
        Readiness::NotRunning { .. } => {
            json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
            "unavailableReplicas": replicas, "conditions": [
                condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                condition("Progressing", "True", "ReplicaSetUpdated", &format!("ReplicaSet \"{replica_set}\" is progressing."))]})
        }
    }
}

fn strip_times(status: &Value) -> Value {
    let mut status = status.clone();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        if let Some(map) = condition.as_object_mut() {
            map.remove("lastTransitionTime");
            map.remove("lastUpdateTime");
        }
    }
    status
}

/// Brings Deployment status, Pods and Events in line with the cluster's state.
pub(crate) fn reconcile(store: &mut Store) {
    let mut status_updates = Vec::new();
    let mut wanted_pods: Vec<(ObjectKey, Value)> = Vec::new();
    let mut wanted_events: Vec<(ObjectKey, Value)> = Vec::new();
    {
        let facts = ClusterFacts::gather(store);
        for (key, deployment) in objects_of(store, "apps", "deployments") {
            let decision = readiness(deployment, &facts);
            let status = desired_status(deployment, &decision);
            if strip_times(&deployment["status"]) != status {
                status_updates.push((key.clone(), status));
            }
            let hash = template_hash(deployment);
            let replica_set = format!("{}-{hash}", key.name);
            let (phase, event) = match &decision {
                Readiness::Available => (Some("Running"), None),
                Readiness::AdmissionDenied(message) => (
                    None,
                    Some(("ReplicaSet", replica_set.clone(), "FailedCreate", format!("Error creating: {message}"))),
                ),
                Readiness::NotRunning { reason, message } => {
                    (Some("Pending"), Some(("Pod", format!("{replica_set}-0"), *reason, message.clone())))
                }
            };
            if let Some(phase) = phase {
                let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
                for index in 0..replicas {
                    let name = format!("{replica_set}-{index}");
                    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": key.namespace,
                        "labels": deployment["spec"]["template"]["metadata"]["labels"].clone(),
                        "annotations": {DEPLOYMENT_ANNOTATION: key.name},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set, "controller": true}]},
                        "spec": admitted_pod_spec(&deployment["spec"]["template"]["spec"], &facts), "status": {"phase": phase}});
                    wanted_pods.push((
                        ObjectKey {
                            group: String::new(),
                            plural: "pods".into(),
                            namespace: key.namespace.clone(),
                            name,
                        },
                        pod,
                    ));
                }
            }
            if let Some((involved_kind, involved_name, reason, message)) = event {
                let name = format!("{involved_name}.{}", reason.to_lowercase());
                let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": key.namespace,
                    "annotations": {DEPLOYMENT_ANNOTATION: key.name}},
                    "involvedObject": {"kind": involved_kind, "name": involved_name, "namespace": key.namespace},
                    "reason": reason, "message": message, "type": "Warning", "count": 1,
                    "source": {"component": "kubesim"}});
                wanted_events.push((
                    ObjectKey { group: String::new(), plural: "events".into(), namespace: key.namespace.clone(), name },
                    event,
                ));
            }
        }
    }
    for (key, status) in status_updates {
        let Some(mut deployment) = store.objects.get(&key).cloned() else { continue };
        let now = now_rfc3339();
        let mut status = status;
        for condition in status["conditions"].as_array_mut().into_iter().flatten() {
            condition["lastUpdateTime"] = json!(now);
            condition["lastTransitionTime"] = json!(now);
        }
        deployment["status"] = status;
        store.store_silently(key, deployment);
    }
    sync_owned(store, "pods", wanted_pods);
    sync_owned(store, "events", wanted_events);
}

/// Makes the simulator-owned objects of a core plural exactly `wanted` (by key and content).
fn sync_owned(store: &mut Store, plural: &str, wanted: Vec<(ObjectKey, Value)>) {
    let existing: Vec<ObjectKey> = objects_of(store, "", plural)
        .filter(|(_, object)| object["metadata"]["annotations"].get(DEPLOYMENT_ANNOTATION).is_some())
        .map(|(key, _)| key.clone())
        .collect();
    for key in existing {
        if !wanted.iter().any(|(wanted_key, _)| *wanted_key == key) {
            store.remove_silently(&key);
        }
    }
    for (key, object) in wanted {
        let unchanged = store.objects.get(&key).is_some_and(|stored| {
            stored["spec"] == object["spec"]
                && stored["status"] == object["status"]
                && stored["message"] == object["message"]
        });
        if !unchanged {
            store.store_silently(key, object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{gmsa_webhook_objects, node_object};

    fn mk_deployment() -> Value {
        json!({"metadata": {"name": "gmsa-demo", "namespace": "default"}, "spec": {"replicas": 1, "template": {"spec": {
            "securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "aks-gmsa-spec"}},
            "nodeSelector": {"kubernetes.io/os": "windows"}, "containers": [{"name": "iis", "image": "iis"}]}}}})
    }

    fn mk_role() -> Value {
        json!({"kind": "ClusterRole", "metadata": {"name": "aks-gmsa-role"}, "rules": [{"apiGroups": ["windows.k8s.io"],
            "resources": ["gmsacredentialspecs"], "verbs": ["use"], "resourceNames": ["aks-gmsa-spec"]}]})
    }

    fn mk_binding() -> Value {
        json!({"metadata": {"name": "b", "namespace": "default"}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
            "roleRef": {"kind": "ClusterRole", "name": "aks-gmsa-role", "apiGroup": "rbac.authorization.k8s.io"}})
    }

    fn mk_facts<'a>(nodes: Vec<&'a Value>, bindings: Vec<&'a Value>, roles: Vec<&'a Value>) -> ClusterFacts<'a> {
        let policy = Policy { cluster_roles: roles, role_bindings: bindings, ..Policy::default() };
        ClusterFacts { nodes, credspecs: vec![("aks-gmsa-spec".into(), &CREDSPEC)], webhook_registered: true, policy }
    }

    static CREDSPEC: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| json!({"credspec": {"CmsPlugins": ["ActiveDirectory"]}}));

    #[test]
    fn admitted_pods_carry_the_credspec_content() {
        let (node, role, binding) = (node_object("w", "windows"), mk_role(), mk_binding());
        let facts = mk_facts(vec![&node], vec![&binding], vec![&role]);
        let spec = admitted_pod_spec(&mk_deployment()["spec"]["template"]["spec"], &facts);
        assert_eq!(
            spec["securityContext"]["windowsOptions"]["gmsaCredentialSpec"],
            "{\"CmsPlugins\":[\"ActiveDirectory\"]}"
        );
    }

    #[test]
    fn all_preconditions_make_the_deployment_available() {
        let (node, role, binding) = (node_object("w", "windows"), mk_role(), mk_binding());
        assert_eq!(
            readiness(&mk_deployment(), &mk_facts(vec![&node], vec![&binding], vec![&role])),
            Readiness::Available
        );
    }

    #[test]
    fn missing_binding_is_denied_by_the_webhook() {
        let (node, role) = (node_object("w", "windows"), mk_role());
        let Readiness::AdmissionDenied(message) =
            readiness(&mk_deployment(), &mk_facts(vec![&node], vec![], vec![&role]))
        else {
            panic!()
        };
        assert!(
            message.contains("service account \"default\" is not authorized to `use` gMSA cred spec \"aks-gmsa-spec\"")
        );
    }

    #[test]
    fn missing_credspec_is_denied() {
        let (node, role, binding) = (node_object("w", "windows"), mk_role(), mk_binding());
        let mut facts = mk_facts(vec![&node], vec![&binding], vec![&role]);
        facts.credspecs.clear();
        assert!(
            matches!(readiness(&mk_deployment(), &facts), Readiness::AdmissionDenied(m) if m.contains("does not exist"))
        );
    }

    #[test]
    fn no_windows_node_leaves_pods_pending() {
        let (node, role, binding) = (node_object("l", "linux"), mk_role(), mk_binding());
        let decision = readiness(&mk_deployment(), &mk_facts(vec![&node], vec![&binding], vec![&role]));
        assert!(matches!(decision, Readiness::NotRunning { reason: "FailedScheduling", .. }));
    }

    #[test]
    fn role_for_another_credspec_does_not_grant_use() {
        let mut role = mk_role();
        role["rules"][0]["resourceNames"] = json!(["other"]);
        let (node, binding) = (node_object("w", "windows"), mk_binding());
        assert!(matches!(
            readiness(&mk_deployment(), &mk_facts(vec![&node], vec![&binding], vec![&role])),
            Readiness::AdmissionDenied(_)
        ));
    }

    #[test]
    fn webhook_entry_name_is_what_seeds_install() {
        assert!(gmsa_webhook_objects().iter().all(|c| c["webhooks"][0]["name"] == GMSA_WEBHOOK_ENTRY));
    }
}
