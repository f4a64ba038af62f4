//! Built-in validation the API server runs before storing an object: metadata names and
//! labels, RBAC rule and binding shape (and `roleRef` immutability), Deployment selector and
//! containers, CRD and webhook-configuration shape. Custom-resource bodies are validated by
//! their CRD schema in `schema`; this module covers what Go types and strategies enforce.

use serde_json::{Value, json};

use crate::registry::ResourceType;
use crate::status::Cause;

const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1123_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// RFC 1123 subdomain, as `metadata.name` of most kinds must be.
pub(crate) fn is_dns1123_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_dns1123_label)
}

/// Label values: empty, or ≤ 63 characters of alphanumerics, `-`, `_`, `.` starting and ending alphanumeric.
fn is_label_value(text: &str) -> bool {
    text.is_empty()
        || (text.len() <= 63
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && text.as_bytes()[0].is_ascii_alphanumeric()
            && text.as_bytes()[text.len() - 1].is_ascii_alphanumeric())
}

/// Label keys: optional DNS-subdomain prefix and `/`, then a label-value-like name.
fn is_label_key(text: &str) -> bool {
    let (prefix, name) = match text.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Every cause that makes `new` invalid as a `resource_type` object (replacing `old` if given).
pub(crate) fn validate(resource_type: &ResourceType, old: Option<&Value>, new: &Value) -> Vec<Cause> {
    let mut causes = validate_metadata(resource_type, new);
    match resource_type.kind.as_str() {
        "ClusterRole" | "Role" => validate_rules(resource_type, new, &mut causes),
        "RoleBinding" | "ClusterRoleBinding" => validate_binding(resource_type, old, new, &mut causes),
        "Deployment" => validate_deployment(old, new, &mut causes),
        "ConfigMap" => validate_configmap(new, &mut causes),
        "CustomResourceDefinition" => validate_crd(new, &mut causes),
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => validate_webhooks(new, &mut causes),
        "Event" => validate_event(new, &mut causes),
        _ => {}
    }
    causes
}

fn validate_metadata(resource_type: &ResourceType, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required("metadata.name", "name or generateName is required"));
    } else if resource_type.group == "rbac.authorization.k8s.io" {
        // RBAC names are path segments (they may contain ':', as system roles do).
        if name == "." || name == ".." || name.contains('/') || name.contains('%') {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                "may not contain '/' or '%' and may not be '.' or '..'",
            ));
        }
    } else if resource_type.kind == "Namespace" {
        if !is_dns1123_label(name) {
            causes.push(Cause::invalid("metadata.name", &json!(name), DNS1123_LABEL_MESSAGE));
        }
    } else if !is_dns1123_subdomain(name) {
        causes.push(Cause::invalid("metadata.name", &json!(name), DNS1123_SUBDOMAIN_MESSAGE));
    }
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            if !is_label_key(key) {
                causes.push(Cause::invalid("metadata.labels", &json!(key), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match value.as_str() {
                Some(text) if is_label_value(text) => {}
                _ => causes.push(Cause::invalid("metadata.labels".to_string(), value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
            }
        }
    }
    causes
}

fn non_empty_array(value: &Value) -> bool {
    value.as_array().is_some_and(|items| !items.is_empty())
}

fn validate_rules(resource_type: &ResourceType, object: &Value, causes: &mut Vec<Cause>) {
    if object.get("aggregationRule").is_some() {
        return;
    }
    for (index, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("rules[{index}].{name}");
        if !non_empty_array(&rule["verbs"]) {
            causes.push(Cause::required(field("verbs"), "verbs must contain at least one value"));
        }
        if non_empty_array(&rule["nonResourceURLs"]) {
            if resource_type.namespaced {
                causes.push(Cause::invalid(
                    field("nonResourceURLs"),
                    &rule["nonResourceURLs"],
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            continue;
        }
        if !non_empty_array(&rule["apiGroups"]) {
            causes.push(Cause::required(field("apiGroups"), "resource rules must supply at least one api group"));
        }
        if !non_empty_array(&rule["resources"]) {
            causes.push(Cause::required(field("resources"), "resource rules must supply at least one resource"));
        }
    }
}

fn validate_binding(resource_type: &ResourceType, old: Option<&Value>, new: &Value, causes: &mut Vec<Cause>) {
    let role_ref = &new["roleRef"];
    match role_ref["kind"].as_str() {
        Some("ClusterRole") => {}
        Some("Role") if resource_type.namespaced => {}
        _ => {
            let supported: &[&str] = if resource_type.namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
            causes.push(Cause::not_supported("roleRef.kind", &role_ref["kind"], supported));
        }
    }
    if role_ref["apiGroup"].as_str() != Some("rbac.authorization.k8s.io") {
        causes.push(Cause::not_supported("roleRef.apiGroup", &role_ref["apiGroup"], &["rbac.authorization.k8s.io"]));
    }
    if role_ref["name"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("roleRef.name", ""));
    }
    for (index, subject) in new["subjects"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("subjects[{index}].{name}");
        if subject["name"].as_str().unwrap_or("").is_empty() {
            causes.push(Cause::required(field("name"), ""));
        }
        match subject["kind"].as_str() {
            Some("ServiceAccount") => {
                if !subject["apiGroup"].as_str().unwrap_or("").is_empty() {
                    causes.push(Cause::not_supported(field("apiGroup"), &subject["apiGroup"], &[""]));
                }
                if !resource_type.namespaced && subject["namespace"].as_str().unwrap_or("").is_empty() {
                    causes.push(Cause::required(field("namespace"), ""));
                }
            }
            Some("User") | Some("Group") => {
                if subject["apiGroup"].as_str() != Some("rbac.authorization.k8s.io") {
                    causes.push(Cause::not_supported(
                        field("apiGroup"),
                        &subject["apiGroup"],
                        &["rbac.authorization.k8s.io"],
                    ));
                }
            }
            _ => {
                causes.push(Cause::not_supported(field("kind"), &subject["kind"], &["ServiceAccount", "User", "Group"]))
            }
        }
    }
    if let Some(old) = old
        && old["roleRef"] != new["roleRef"]
    {
        let old_ref = &old["roleRef"];
        let rendered = format!(
            "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
            json!(old_ref["apiGroup"].as_str().unwrap_or("")),
            json!(old_ref["kind"].as_str().unwrap_or("")),
            json!(old_ref["name"].as_str().unwrap_or(""))
        );
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {rendered}: cannot change roleRef"),
            field: "roleRef".into(),
        });
    }
}

fn validate_deployment(old: Option<&Value>, new: &Value, causes: &mut Vec<Cause>) {
    let spec = &new["spec"];
    let selector = &spec["selector"]["matchLabels"];
    if spec["selector"].is_null() {
        causes.push(Cause::required("spec.selector", ""));
    } else if let Some(wanted) = selector.as_object() {
        let labels = &spec["template"]["metadata"]["labels"];
        if wanted.iter().any(|(key, value)| labels.get(key) != Some(value)) {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            ));
        }
    }
    let containers = &spec["template"]["spec"]["containers"];
    if !non_empty_array(containers) {
        causes.push(Cause::required("spec.template.spec.containers", ""));
    }
    for (index, container) in containers.as_array().into_iter().flatten().enumerate() {
        for field in ["name", "image"] {
            if container[field].as_str().unwrap_or("").is_empty() {
                causes.push(Cause::required(format!("spec.template.spec.containers[{index}].{field}"), ""));
            }
        }
    }
    if let Some(replicas) = spec.get("replicas").and_then(Value::as_i64).filter(|r| *r < 0) {
        causes.push(Cause::invalid("spec.replicas", &json!(replicas), "must be greater than or equal to 0"));
    }
    if let Some(old) = old
        && old["spec"]["selector"] != spec["selector"]
    {
        causes.push(Cause::invalid("spec.selector", &spec["selector"], "field is immutable"));
    }
}

fn validate_configmap(object: &Value, causes: &mut Vec<Cause>) {
    for (key, value) in object["data"].as_object().into_iter().flatten() {
        let valid_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid_key {
            causes.push(Cause::invalid(
                format!("data[{key}]"),
                &json!(key),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
        if !value.is_string() {
            causes.push(Cause::type_invalid(format!("data[{key}]"), value, "string"));
        }
    }
}

fn validate_crd(object: &Value, causes: &mut Vec<Cause>) {
    let spec = &object["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    if name != format!("{plural}.{group}") {
        causes.push(Cause::invalid("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    match spec["scope"].as_str() {
        Some("Cluster") | Some("Namespaced") => {}
        _ => causes.push(Cause::not_supported("spec.scope", &spec["scope"], &["Cluster", "Namespaced"])),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required("spec.versions", "must have exactly one version marked as storage version"));
    } else if versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count() != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &spec["versions"],
            "must have exactly one version marked as storage version",
        ));
    }
}

fn validate_webhooks(object: &Value, causes: &mut Vec<Cause>) {
    for (index, webhook) in object["webhooks"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("webhooks[{index}].{name}");
        let name = webhook["name"].as_str().unwrap_or("");
        if name.split('.').count() < 3 || !is_dns1123_subdomain(name) {
            causes.push(Cause::invalid(
                field("name"),
                &webhook["name"],
                "should be a domain with at least three segments separated by dots",
            ));
        }
        match webhook["sideEffects"].as_str() {
            Some("None") | Some("NoneOnDryRun") => {}
            _ => causes.push(Cause::not_supported(
                field("sideEffects"),
                &webhook["sideEffects"],
                &["None", "NoneOnDryRun"],
            )),
        }
        if !non_empty_array(&webhook["admissionReviewVersions"]) {
            causes.push(Cause::required(field("admissionReviewVersions"), "must specify one of v1, v1beta1"));
        }
    }
}

/// core/v1 Event: the event lives in its involved object's namespace; events about
/// cluster-scoped objects (Nodes) live in `default` (`ValidateEventCreate`, legacy rules).
fn validate_event(object: &Value, causes: &mut Vec<Cause>) {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    let involved = &object["involvedObject"];
    let involved_namespace = involved["namespace"].as_str().unwrap_or("");
    if involved["kind"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("involvedObject.kind", ""));
    }
    let matches = if involved_namespace.is_empty() {
        namespace == "default" || namespace.is_empty()
    } else {
        involved_namespace == namespace
    };
    if !matches {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            &involved["namespace"],
            "does not match event.namespace",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin_types;

    fn mk_type(kind: &str) -> ResourceType {
        builtin_types().into_iter().find(|t| t.kind == kind).unwrap()
    }

    fn mk_binding(role: &str) -> Value {
        json!({"metadata": {"name": "allow-default", "namespace": "default"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
            "roleRef": {"kind": "ClusterRole", "name": role, "apiGroup": "rbac.authorization.k8s.io"}})
    }

    #[test]
    fn names_must_be_dns_subdomains() {
        let causes = validate(&mk_type("ConfigMap"), None, &json!({"metadata": {"name": "Bad_Name"}}));
        assert_eq!(causes[0].field, "metadata.name");
        assert!(causes[0].message.contains("RFC 1123 subdomain"));
        assert!(validate(&mk_type("ConfigMap"), None, &json!({"metadata": {"name": "aks-gmsa.spec"}})).is_empty());
    }

    #[test]
    fn events_live_in_their_involved_objects_namespace() {
        let event = |namespace: &str, involved: Value| json!({"metadata": {"name": "e.1", "namespace": namespace}, "involvedObject": involved, "reason": "R"});
        let node = json!({"kind": "Node", "name": "akswin000000"});
        let pod = json!({"kind": "Pod", "name": "p", "namespace": "web"});
        assert!(validate(&mk_type("Event"), None, &event("default", node.clone())).is_empty());
        assert!(validate(&mk_type("Event"), None, &event("web", pod.clone())).is_empty());
        assert_eq!(validate(&mk_type("Event"), None, &event("web", node))[0].field, "involvedObject.namespace");
        assert_eq!(validate(&mk_type("Event"), None, &event("default", pod))[0].field, "involvedObject.namespace");
        assert_eq!(validate(&mk_type("Event"), None, &event("default", json!({})))[0].field, "involvedObject.kind");
    }

    #[test]
    fn missing_name_is_required() {
        let causes = validate(&mk_type("Node"), None, &json!({"metadata": {}}));
        assert_eq!(causes, vec![Cause::required("metadata.name", "name or generateName is required")]);
    }

    #[test]
    fn rbac_names_may_contain_colons() {
        let role = json!({"metadata": {"name": "system:gmsa"}, "rules": []});
        assert!(validate(&mk_type("ClusterRole"), None, &role).is_empty());
    }

    #[test]
    fn cluster_role_rules_need_verbs_groups_and_resources() {
        let role = json!({"metadata": {"name": "r"}, "rules": [{"resources": ["gmsacredentialspecs"]}]});
        let fields: Vec<_> = validate(&mk_type("ClusterRole"), None, &role).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["rules[0].verbs", "rules[0].apiGroups"]);
    }

    #[test]
    fn role_ref_cannot_change() {
        let causes = validate(&mk_type("RoleBinding"), Some(&mk_binding("a")), &mk_binding("b"));
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "roleRef");
        assert!(causes[0].message.ends_with("cannot change roleRef"));
        assert!(validate(&mk_type("RoleBinding"), Some(&mk_binding("a")), &mk_binding("a")).is_empty());
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let deployment = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let causes = validate(&mk_type("Deployment"), None, &deployment);
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn webhook_names_need_three_segments() {
        let config = json!({"metadata": {"name": "w"}, "webhooks": [{"name": "short.name", "sideEffects": "None", "admissionReviewVersions": ["v1"]}]});
        let causes = validate(&mk_type("ValidatingWebhookConfiguration"), None, &config);
        assert_eq!(causes[0].field, "webhooks[0].name");
    }
}
