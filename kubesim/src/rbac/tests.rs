//! Table tests of the RBAC model: subjects × verbs × resources × names, each row an outcome
//! that Kubernetes' RBAC documentation states (reference/access-authn-authz/rbac).

use serde_json::{Value, json};

use super::*;

fn mk_cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
}

fn mk_role(namespace: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace}, "rules": rules})
}

fn mk_binding(namespace: Option<&str>, name: &str, role_kind: &str, role: &str, subjects: Value) -> Value {
    let mut binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": if namespace.is_some() { "RoleBinding" } else { "ClusterRoleBinding" },
        "metadata": {"name": name}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}});
    if let Some(namespace) = namespace {
        binding["metadata"]["namespace"] = json!(namespace);
    }
    binding
}

/// The seed's ClusterRole and RoleBinding, plus rules exercising each matching rule.
fn mk_objects() -> Vec<Value> {
    vec![
        // The seed's gmsa-role.yaml and gmsa-role-binding.yaml.
        mk_cluster_role(
            "aks-gmsa-role",
            json!([{"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["use"],
                "resourceNames": ["aks-gmsa-spec"]}]),
        ),
        mk_binding(
            Some("default"),
            "allow-default-svc-account-read-on-aks-gmsa-spec",
            "ClusterRole",
            "aks-gmsa-role",
            json!([{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]),
        ),
        // A namespaced Role for a user, and a ServiceAccount subject without namespace.
        mk_role(
            "apps",
            "cm-reader",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]),
        ),
        mk_binding(
            Some("apps"),
            "alice-reads",
            "Role",
            "cm-reader",
            json!([{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                {"kind": "ServiceAccount", "name": "builder"}]),
        ),
        // A RoleBinding naming a Role of another namespace grants nothing.
        mk_binding(Some("other"), "cross-namespace", "Role", "cm-reader", json!([{"kind": "User", "name": "alice"}])),
        // Wildcards for a group, cluster-wide.
        mk_cluster_role("ops-all", json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])),
        mk_binding(None, "ops", "ClusterRole", "ops-all", json!([{"kind": "Group", "name": "ops"}])),
        // Subresources: one named, one for every resource.
        mk_cluster_role(
            "status-reader",
            json!([{"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]},
                {"nonResourceURLs": ["/healthz", "/healthz/*"], "verbs": ["get"]}]),
        ),
        mk_binding(None, "monitor", "ClusterRole", "status-reader", json!([{"kind": "User", "name": "monitor"}])),
        // Aggregation: `viewer` has no rules of its own and collects those labelled for it.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "viewer"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-viewer": "true"}}]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "credspec-viewer", "labels": {"example.com/aggregate-to-viewer": "true"}},
            "rules": [{"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["get", "list"]}]}),
        mk_binding(Some("team"), "viewers", "ClusterRole", "viewer", json!([{"kind": "Group", "name": "viewers"}])),
    ]
}

fn mk_policy(objects: &[Value]) -> Policy<'_> {
    let mut policy = Policy::default();
    for object in objects {
        match object["kind"].as_str() {
            Some("Role") => policy.roles.push(object),
            Some("ClusterRole") => policy.cluster_roles.push(object),
            Some("RoleBinding") => policy.role_bindings.push(object),
            Some("ClusterRoleBinding") => policy.cluster_role_bindings.push(object),
            _ => {}
        }
    }
    policy
}

fn mk_user(name: &str) -> UserInfo {
    match name.strip_prefix("sa:") {
        Some(rest) => {
            let (namespace, account) = rest.split_once('/').unwrap();
            UserInfo::service_account(namespace, account)
        }
        None => match name.split_once('@') {
            Some((user, group)) => UserInfo::new(user, &[group]),
            None => UserInfo::new(name, &[]),
        },
    }
}

/// (subject, verb, group, resource[/subresource], namespace, name, allowed)
const TABLE: &[(&str, &str, &str, &str, &str, &str, bool)] = &[
    // The seed: the bound service account may `use` exactly the named credspec.
    ("sa:default/default", "use", "windows.k8s.io", "gmsacredentialspecs", "default", "aks-gmsa-spec", true),
    ("sa:default/default", "use", "windows.k8s.io", "gmsacredentialspecs", "default", "other-spec", false),
    ("sa:default/default", "use", "windows.k8s.io", "gmsacredentialspecs", "", "aks-gmsa-spec", false),
    ("sa:default/default", "get", "windows.k8s.io", "gmsacredentialspecs", "default", "aks-gmsa-spec", false),
    ("sa:default/default", "list", "windows.k8s.io", "gmsacredentialspecs", "default", "", false),
    ("sa:default/default", "delete", "rbac.authorization.k8s.io", "clusterroles", "", "aks-gmsa-role", false),
    ("sa:other/default", "use", "windows.k8s.io", "gmsacredentialspecs", "other", "aks-gmsa-spec", false),
    ("sa:other/default", "use", "windows.k8s.io", "gmsacredentialspecs", "default", "aks-gmsa-spec", false),
    ("sa:default/builder", "use", "windows.k8s.io", "gmsacredentialspecs", "default", "aks-gmsa-spec", false),
    // A namespaced Role: its namespace only, its verbs only, any name (no resourceNames).
    ("alice", "get", "", "configmaps", "apps", "settings", true),
    ("alice", "list", "", "configmaps", "apps", "", true),
    ("alice", "update", "", "configmaps", "apps", "settings", false),
    ("alice", "get", "", "configmaps", "default", "settings", false),
    ("alice", "get", "", "configmaps", "other", "settings", false),
    ("alice", "get", "", "secrets", "apps", "settings", false),
    ("alice", "get", "apps", "configmaps", "apps", "settings", false),
    ("alice", "list", "", "configmaps", "", "", false),
    ("bob", "get", "", "configmaps", "apps", "settings", false),
    // A ServiceAccount subject without a namespace is the binding's namespace's.
    ("sa:apps/builder", "get", "", "configmaps", "apps", "settings", true),
    ("sa:default/builder", "get", "", "configmaps", "apps", "settings", false),
    // Wildcards through a Group on a ClusterRoleBinding: everything, everywhere.
    ("carol@ops", "delete", "rbac.authorization.k8s.io", "clusterroles", "", "aks-gmsa-role", true),
    ("carol@ops", "use", "windows.k8s.io", "gmsacredentialspecs", "", "any", true),
    ("carol@ops", "create", "", "pods", "kube-system", "", true),
    ("carol", "create", "", "pods", "kube-system", "", false),
    // Subresources: named, `*/status`, and the main resource is not the subresource.
    ("monitor", "get", "apps", "deployments/status", "default", "web", true),
    ("monitor", "get", "apps", "deployments", "default", "web", false),
    ("monitor", "get", "", "pods/status", "default", "web", true),
    ("monitor", "get", "", "pods/log", "default", "web", false),
    // Aggregated ClusterRole through a RoleBinding: the selected role's rules, in that namespace.
    ("dave@viewers", "list", "windows.k8s.io", "gmsacredentialspecs", "team", "", true),
    ("dave@viewers", "use", "windows.k8s.io", "gmsacredentialspecs", "team", "aks-gmsa-spec", false),
    ("dave@viewers", "list", "windows.k8s.io", "gmsacredentialspecs", "", "", false),
    // The privileged group needs no binding.
    ("admin@system:masters", "escalate", "rbac.authorization.k8s.io", "clusterroles", "", "x", true),
];

fn mk_request(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Request {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    Request::Resource {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[test]
fn rbac_table_matches_the_documented_rules() {
    let objects = mk_objects();
    let policy = mk_policy(&objects);
    let mut wrong = Vec::new();
    for (subject, verb, group, resource, namespace, name, expected) in TABLE {
        let decision = policy.authorize(&mk_user(subject), &mk_request(verb, group, resource, namespace, name));
        if decision.allowed != *expected {
            wrong.push(format!(
                "{subject} {verb} {group}/{resource} ns={namespace:?} name={name:?}: expected {expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "rows that disagree:\n{}", wrong.join("\n"));
}

#[test]
fn non_resource_urls_match_exactly_or_by_prefix() {
    let objects = mk_objects();
    let policy = mk_policy(&objects);
    let ask = |path: &str| Request::NonResource { verb: "get".into(), path: path.into() };
    assert!(policy.authorize(&mk_user("monitor"), &ask("/healthz")).allowed);
    assert!(policy.authorize(&mk_user("monitor"), &ask("/healthz/etcd")).allowed);
    assert!(!policy.authorize(&mk_user("monitor"), &ask("/healthzx")).allowed);
    assert!(!policy.authorize(&mk_user("alice"), &ask("/healthz")).allowed);
}

#[test]
fn allowed_reason_names_binding_role_and_subject() {
    let objects = mk_objects();
    let policy = mk_policy(&objects);
    let decision = policy.authorize(
        &mk_user("sa:default/default"),
        &mk_request("use", "windows.k8s.io", "gmsacredentialspecs", "default", "aks-gmsa-spec"),
    );
    assert_eq!(
        decision.reason,
        "RBAC: allowed by RoleBinding \"allow-default-svc-account-read-on-aks-gmsa-spec/default\" of ClusterRole \"aks-gmsa-role\" to ServiceAccount \"default/default\""
    );
}

#[test]
fn forbidden_messages_are_the_apiservers() {
    let request = mk_request("list", "windows.k8s.io", "gmsacredentialspecs", "", "");
    assert_eq!(
        request.forbidden_message("system:serviceaccount:default:default"),
        "User \"system:serviceaccount:default:default\" cannot list resource \"gmsacredentialspecs\" in API group \"windows.k8s.io\" at the cluster scope"
    );
    let request = mk_request("get", "", "pods/log", "default", "p");
    assert_eq!(
        request.forbidden_message("bob"),
        "User \"bob\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"default\""
    );
}

#[test]
fn removing_the_binding_removes_the_grant() {
    let objects: Vec<Value> = mk_objects()
        .into_iter()
        .filter(|o| o["metadata"]["name"] != "allow-default-svc-account-read-on-aks-gmsa-spec")
        .collect();
    let policy = mk_policy(&objects);
    let request = mk_request("use", "windows.k8s.io", "gmsacredentialspecs", "default", "aks-gmsa-spec");
    assert!(!policy.authorize(&mk_user("sa:default/default"), &request).allowed);
}

#[test]
fn service_account_user_names_parse() {
    assert_eq!(UserInfo::service_account("a", "b").as_service_account(), Some(("a", "b")));
    assert_eq!(UserInfo::new("system:serviceaccount:a", &[]).as_service_account(), None);
    assert!(UserInfo::service_account("a", "b").groups.contains(&"system:serviceaccounts:a".to_owned()));
}
