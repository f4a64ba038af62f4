//! Authorization as kube-apiserver does it with `--authorization-mode=RBAC`: the privileged
//! group `system:masters` is allowed everything (the apiserver's privileged-groups authorizer,
//! in front of RBAC), then RBAC's rules from Role, ClusterRole, RoleBinding and
//! ClusterRoleBinding objects, evaluated the way `k8s.io/component-helpers/auth/rbac/validation`
//! and the RBAC authorizer (`plugin/pkg/auth/authorizer/rbac`) do:
//!
//! - a ClusterRoleBinding grants its ClusterRole everywhere; a RoleBinding grants its Role or
//!   ClusterRole only inside the binding's namespace, and never for cluster-scoped resources;
//! - subjects match by `User` name, `Group` name, or `ServiceAccount` name and namespace (the
//!   binding's namespace when the subject names none), a service account being the user
//!   `system:serviceaccount:<namespace>:<name>`;
//! - a rule matches when its `verbs`, `apiGroups` and `resources` contain the request's (or
//!   `*`; `resource/subresource`, and `*/subresource` for any resource's subresource), and
//!   `resourceNames` is empty or contains the request's name (so a list or create, which has
//!   no name, never matches a rule with `resourceNames`); non-resource requests match
//!   `nonResourceURLs` exactly or by a trailing `*` prefix, in ClusterRoles only;
//! - an aggregated ClusterRole (`aggregationRule.clusterRoleSelectors`) holds the rules of
//!   every ClusterRole its selectors match, as the aggregation controller writes them (here
//!   computed when the role is evaluated, one level deep, as the controller does).
//!
//! Deny is RBAC's "no opinion" turned into a refusal: nothing explicitly denies, and the reason
//! is empty, so the 403 message is the apiserver's `forbiddenMessage` alone.

use serde_json::Value;

use crate::selector::LabelSelector;
use crate::store::Store;

/// The group whose members are allowed every request without RBAC.
pub(crate) const PRIVILEGED_GROUP: &str = "system:masters";
/// Every authenticated user is in this group.
pub(crate) const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// The user a request is made as (after impersonation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with the given groups plus `system:authenticated`, as authenticators add it.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        Self { name: name.into(), groups }
    }

    /// The user of a service account token: `system:serviceaccount:<ns>:<name>` in the groups
    /// `system:serviceaccounts` and `system:serviceaccounts:<ns>`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        let namespace_group = format!("system:serviceaccounts:{namespace}");
        Self::new(format!("system:serviceaccount:{namespace}:{name}"), &["system:serviceaccounts", &namespace_group])
    }

    /// `(namespace, name)` when this user is a service account.
    pub fn as_service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
    }
}

/// What a request asks to do, as `authorizer.Attributes` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// A request for an API resource.
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        /// Empty for cluster-scoped resources and cluster-wide lists.
        namespace: String,
        /// Empty for lists, watches of a collection and creates.
        name: String,
    },
    /// A request for a path that is not a resource (`/version`, `/openapi/v3`, …).
    NonResource { verb: String, path: String },
}

impl Request {
    /// A resource request.
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        Self::Resource {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            subresource: String::new(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The apiserver's `forbiddenMessage` for this request by `user`.
    pub fn forbidden_message(&self, user: &str) -> String {
        match self {
            Self::NonResource { verb, path } => format!("User {user:?} cannot {verb} path {path:?}"),
            Self::Resource { verb, group, resource, subresource, namespace, .. } => {
                let resource =
                    if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
                if namespace.is_empty() {
                    format!(
                        "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
                    )
                } else {
                    format!(
                        "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {namespace:?}"
                    )
                }
            }
        }
    }
}

/// The authorizer's verdict and its reason (empty when denied: RBAC has no opinion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The RBAC objects of a cluster, borrowed from the store.
#[derive(Default)]
pub(crate) struct Policy<'a> {
    pub roles: Vec<&'a Value>,
    pub cluster_roles: Vec<&'a Value>,
    pub role_bindings: Vec<&'a Value>,
    pub cluster_role_bindings: Vec<&'a Value>,
}

/// The RBAC objects stored in a cluster.
pub(crate) fn policy_of(store: &Store) -> Policy<'_> {
    let mut policy = Policy::default();
    for (key, object) in store.objects.iter().filter(|(key, _)| key.group == "rbac.authorization.k8s.io") {
        match key.plural.as_str() {
            "roles" => policy.roles.push(object),
            "clusterroles" => policy.cluster_roles.push(object),
            "rolebindings" => policy.role_bindings.push(object),
            "clusterrolebindings" => policy.cluster_role_bindings.push(object),
            _ => {}
        }
    }
    policy
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn has(list: &Value, wanted: &str) -> bool {
    strings(list).any(|item| item == "*" || item == wanted)
}

fn resource_matches(rule: &Value, resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() { resource.to_owned() } else { format!("{resource}/{subresource}") };
    strings(&rule["resources"]).any(|rule_resource| {
        rule_resource == "*"
            || rule_resource == combined
            || (!subresource.is_empty() && rule_resource.strip_prefix("*/") == Some(subresource))
    })
}

fn non_resource_matches(rule: &Value, path: &str) -> bool {
    strings(&rule["nonResourceURLs"])
        .any(|url| url == "*" || url == path || url.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix)))
}

/// Whether one policy rule allows the request (`VerbMatches && APIGroupMatches && …`).
pub(crate) fn rule_allows(rule: &Value, request: &Request) -> bool {
    match request {
        Request::Resource { verb, group, resource, subresource, name, .. } => {
            let names: Vec<&str> = strings(&rule["resourceNames"]).collect();
            has(&rule["verbs"], verb)
                && has(&rule["apiGroups"], group)
                && resource_matches(rule, resource, subresource)
                && (names.is_empty() || names.contains(&name.as_str()))
        }
        Request::NonResource { verb, path } => has(&rule["verbs"], verb) && non_resource_matches(rule, path),
    }
}

/// Whether a binding's subject is the user (`appliesToUser`).
fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = text(subject, "/name");
    match text(subject, "/kind") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|group| group == name),
        "ServiceAccount" => {
            let namespace = match text(subject, "/namespace") {
                "" => binding_namespace,
                namespace => namespace,
            };
            !namespace.is_empty() && user.as_service_account() == Some((namespace, name))
        }
        _ => false,
    }
}

/// `matchLabels` and `matchExpressions` of a `metav1.LabelSelector` as selector text; `None`
/// for an operator the API does not define (the aggregation controller then selects nothing).
fn selector_text(selector: &Value) -> Option<String> {
    let mut terms: Vec<String> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
        .collect();
    for expression in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = text(expression, "/key");
        let values: Vec<&str> = strings(&expression["values"]).collect();
        terms.push(match text(expression, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    Some(terms.join(","))
}

impl<'a> Policy<'a> {
    /// The rules of a role, an aggregated ClusterRole's being those of the roles it selects.
    fn rules_of(&self, role: &'a Value) -> Vec<&'a Value> {
        let Some(selectors) = role.pointer("/aggregationRule/clusterRoleSelectors").and_then(Value::as_array) else {
            return role["rules"].as_array().into_iter().flatten().collect();
        };
        let mut rules: Vec<&Value> = Vec::new();
        for selector in selectors {
            // An empty selector selects nothing for aggregation (the controller skips it).
            let Some(text) = selector_text(selector).filter(|text| !text.is_empty()) else { continue };
            let Ok(parsed) = LabelSelector::parse(&text) else { continue };
            for other in &self.cluster_roles {
                if text_of_name(other) != text_of_name(role) && parsed.matches(other) {
                    rules.extend(other["rules"].as_array().into_iter().flatten());
                }
            }
        }
        rules
    }

    fn cluster_role(&self, name: &str) -> Option<&'a Value> {
        self.cluster_roles.iter().copied().find(|role| text_of_name(role) == name)
    }

    fn role(&self, namespace: &str, name: &str) -> Option<&'a Value> {
        self.roles
            .iter()
            .copied()
            .find(|role| text_of_name(role) == name && text(role, "/metadata/namespace") == namespace)
    }

    /// `RBAC: allowed by …` or a denial, for `user` asking `request`.
    pub fn authorize(&self, user: &UserInfo, request: &Request) -> Decision {
        if user.groups.iter().any(|group| group == PRIVILEGED_GROUP) {
            return Decision { allowed: true, reason: String::new() };
        }
        for binding in &self.cluster_role_bindings {
            if text(binding, "/roleRef/kind") != "ClusterRole" {
                continue;
            }
            let Some(subject) =
                binding["subjects"].as_array().into_iter().flatten().find(|s| subject_matches(s, user, ""))
            else {
                continue;
            };
            let Some(role) = self.cluster_role(text(binding, "/roleRef/name")) else { continue };
            if self.rules_of(role).iter().any(|rule| rule_allows(rule, request)) {
                return allowed("ClusterRoleBinding", text_of_name(binding), "ClusterRole", role, subject);
            }
        }
        let Request::Resource { namespace, .. } = request else {
            return Decision { allowed: false, reason: String::new() };
        };
        if namespace.is_empty() {
            return Decision { allowed: false, reason: String::new() };
        }
        for binding in &self.role_bindings {
            if text(binding, "/metadata/namespace") != namespace {
                continue;
            }
            let Some(subject) =
                binding["subjects"].as_array().into_iter().flatten().find(|s| subject_matches(s, user, namespace))
            else {
                continue;
            };
            let role_name = text(binding, "/roleRef/name");
            let (role_kind, role) = match text(binding, "/roleRef/kind") {
                "ClusterRole" => ("ClusterRole", self.cluster_role(role_name)),
                "Role" => ("Role", self.role(namespace, role_name)),
                _ => continue,
            };
            let Some(role) = role else { continue };
            // Rules with nonResourceURLs never apply through a RoleBinding.
            if self.rules_of(role).iter().any(|rule| rule_allows(rule, request)) {
                let binding_name = format!("{}/{namespace}", text_of_name(binding));
                return allowed("RoleBinding", &binding_name, role_kind, role, subject);
            }
        }
        Decision { allowed: false, reason: String::new() }
    }
}

fn text_of_name(object: &Value) -> &str {
    text(object, "/metadata/name")
}

/// The RBAC authorizer's `allowed by` reason.
fn allowed(binding_kind: &str, binding: &str, role_kind: &str, role: &Value, subject: &Value) -> Decision {
    let subject_text = match text(subject, "/kind") {
        "ServiceAccount" if !text(subject, "/namespace").is_empty() => {
            format!("{}/{}", text(subject, "/namespace"), text(subject, "/name"))
        }
        _ => text(subject, "/name").to_owned(),
    };
    let role_text = match text(role, "/metadata/namespace") {
        "" => text_of_name(role).to_owned(),
        namespace => format!("{}/{namespace}", text_of_name(role)),
    };
    Decision {
        allowed: true,
        reason: format!(
            "RBAC: allowed by {binding_kind} {binding:?} of {role_kind} {role_text:?} to {} {subject_text:?}",
            text(subject, "/kind")
        ),
    }
}

#[cfg(test)]
mod tests;
