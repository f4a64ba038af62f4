//! The pure part of diagnostics collection (the PowerShell module's Copy-WindowsHostsLogs, through
//! the API): which Events matter for gMSA support, how Nodes, Deployments and Pods are summarised,
//! what is stripped from every object, and how files are rendered (YAML, `kind: List` for many).
//!
//! **Boundary:** diagnostics never read Secrets; summaries of workloads keep names, images and
//! status, not pod specs (whose env values could hold credentials). Redacting secret values that
//! appear anyway (e.g. in event messages) is the caller's job.

use std::time::SystemTime;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Words that make an Event relevant when its reason or message contains one (case-insensitive):
/// the gMSA webhook, Container Credential Guard, credential specs.
const EVENT_KEYWORDS: &[&str] = &["gmsa", "ccg", "credentialspec", "credential spec", "credspec", "cred spec"];

/// What the caller asked for, in the words the event filter needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// The credspec's name and the webhook's configuration, service and deployment names, in
    /// addition to [`EVENT_KEYWORDS`].
    pub extra_keywords: Vec<String>,
}

impl EventFilter {
    /// Whether the event's reason or message names gMSA, CCG, credential specs, the spec or
    /// the webhook.
    pub fn mentions_gmsa(&self, event: &Value) -> bool {
        let text = format!(
            "{} {} {}",
            event["reason"].as_str().unwrap_or(""),
            event["message"].as_str().unwrap_or(""),
            event["involvedObject"]["name"].as_str().unwrap_or("")
        )
        .to_lowercase();
        EVENT_KEYWORDS.iter().any(|keyword| text.contains(keyword))
            || self.extra_keywords.iter().any(|keyword| !keyword.is_empty() && text.contains(&keyword.to_lowercase()))
    }
}

/// When the event last happened: `lastTimestamp`, `eventTime`, `firstTimestamp` or creation.
pub fn event_time(event: &Value) -> Option<OffsetDateTime> {
    ["/lastTimestamp", "/eventTime", "/firstTimestamp", "/metadata/creationTimestamp"]
        .iter()
        .filter_map(|pointer| event.pointer(pointer).and_then(Value::as_str))
        .find_map(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
}

/// Whether the event is at or after `since` (events without a readable time are kept).
pub fn is_since(event: &Value, since: Option<SystemTime>) -> bool {
    match (since, event_time(event)) {
        (Some(since), Some(happened)) => happened >= OffsetDateTime::from(since),
        _ => true,
    }
}

/// Sorts events by time, then namespace and name, and drops duplicates (an event found both by
/// node and by keyword).
pub fn sort_events(events: &mut Vec<Value>) {
    let key = |event: &Value| {
        (
            event_time(event),
            event["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
            event["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    };
    events.sort_by_key(key);
    events.dedup_by(|a, b| {
        a["metadata"]["namespace"] == b["metadata"]["namespace"] && a["metadata"]["name"] == b["metadata"]["name"]
    });
}

/// The object without `metadata.managedFields` (noise for support, and large).
pub fn strip_managed_fields(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

/// A Node as support needs it: name, labels, conditions, nodeInfo.
pub fn node_summary(node: &Value) -> Value {
    json!({
        "name": node["metadata"]["name"],
        "labels": node["metadata"]["labels"],
        "conditions": node["status"]["conditions"],
        "nodeInfo": node["status"]["nodeInfo"],
    })
}

/// A Deployment as support needs it: identity, replicas, container images, status.
pub fn deployment_summary(deployment: &Value) -> Value {
    json!({
        "name": deployment["metadata"]["name"],
        "namespace": deployment["metadata"]["namespace"],
        "replicas": deployment["spec"]["replicas"],
        "images": images(&deployment["spec"]["template"]["spec"]),
        "status": deployment["status"],
    })
}

/// A Pod as support needs it: identity, node, images, status (phase, conditions, container states).
pub fn pod_summary(pod: &Value) -> Value {
    json!({
        "name": pod["metadata"]["name"],
        "namespace": pod["metadata"]["namespace"],
        "nodeName": pod["spec"]["nodeName"],
        "images": images(&pod["spec"]),
        "status": pod["status"],
    })
}

fn images(pod_spec: &Value) -> Vec<Value> {
    pod_spec["containers"].as_array().into_iter().flatten().map(|container| container["image"].clone()).collect()
}

/// Many objects as one YAML file, in `kubectl get -o yaml`'s `kind: List` shape.
pub fn list_document(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// YAML bytes of a document; JSON values always render, so a failure is reported as its text.
pub fn to_yaml(document: &Value) -> Vec<u8> {
    serde_yaml::to_string(document).unwrap_or_else(|error| format!("# rendering failed: {error}\n")).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_event(reason: &str, message: &str, last: &str) -> Value {
        json!({"metadata": {"name": format!("e-{reason}"), "namespace": "default"}, "reason": reason,
            "message": message, "lastTimestamp": last, "involvedObject": {"kind": "Pod", "name": "web-0"}})
    }

    #[test]
    fn events_mentioning_gmsa_ccg_credspecs_or_the_webhook_are_relevant_others_not() {
        let filter = EventFilter { extra_keywords: vec!["aks-gmsa-spec".into(), "gmsa-webhook".into()] };
        let relevant = [
            mk_event("FailedCreatePodSandBox", "ccg.exe failed to fetch the credentials", "2024-01-01T00:00:00Z"),
            mk_event("Failed", "GMSA credential spec could not be found", "2024-01-01T00:00:00Z"),
            mk_event("FailedCreate", "admission webhook denied: CredentialSpec invalid", "2024-01-01T00:00:00Z"),
            mk_event("BackOff", "pod uses aks-gmsa-spec", "2024-01-01T00:00:00Z"),
        ];
        assert!(relevant.iter().all(|event| filter.mentions_gmsa(event)));
        let unrelated = mk_event("Pulled", "Successfully pulled image nginx", "2024-01-01T00:00:00Z");
        assert!(!filter.mentions_gmsa(&unrelated));
        let sandbox_other = mk_event("FailedCreatePodSandBox", "network plugin not ready", "2024-01-01T00:00:00Z");
        assert!(!filter.mentions_gmsa(&sandbox_other));
    }

    #[test]
    fn since_keeps_later_events_and_events_without_time() {
        let since = SystemTime::from(OffsetDateTime::parse("2024-06-01T00:00:00Z", &Rfc3339).unwrap());
        assert!(is_since(&mk_event("A", "", "2024-06-02T00:00:00Z"), Some(since)));
        assert!(!is_since(&mk_event("A", "", "2024-05-31T23:59:59Z"), Some(since)));
        assert!(is_since(&json!({"reason": "A"}), Some(since)));
        assert!(is_since(&mk_event("A", "", "2020-01-01T00:00:00Z"), None));
    }

    #[test]
    fn events_are_ordered_by_time_and_deduplicated() {
        let mut events = vec![
            mk_event("B", "", "2024-01-02T00:00:00Z"),
            mk_event("A", "", "2024-01-01T00:00:00Z"),
            mk_event("B", "", "2024-01-02T00:00:00Z"),
        ];
        sort_events(&mut events);
        let reasons: Vec<&str> = events.iter().map(|event| event["reason"].as_str().unwrap()).collect();
        assert_eq!(reasons, ["A", "B"]);
    }

    #[test]
    fn summaries_drop_pod_specs_and_managed_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "kube-system", "managedFields": [{}]},
            "spec": {"nodeName": "n", "containers": [{"image": "gmsa-webhook:1", "env": [{"name": "TOKEN", "value": "s3cr3t"}]}]},
            "status": {"phase": "Running"}});
        let summary = pod_summary(&pod);
        assert_eq!(summary["images"], json!(["gmsa-webhook:1"]));
        assert!(!summary.to_string().contains("s3cr3t"));
        assert!(strip_managed_fields(pod)["metadata"].get("managedFields").is_none());
        let yaml = String::from_utf8(to_yaml(&list_document(vec![summary]))).unwrap();
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["kind"], "List");
        assert_eq!(parsed["items"][0]["name"], "p");
    }
}
