//! The Kubernetes names of what gmsa-fleet writes for one credential spec — the ClusterRole and
//! RoleBinding names derived from the spec's name, the owner label value, a binding's namespace and
//! service account — and the rules each must satisfy.
//!
//! They live in the pure core so that the agent (`cluster::desired`, which builds the objects) and
//! fleetctl (`crate::validate`, before anything is sent) apply one set of rules.

use crate::credspec::{ObjectName, Rule};

/// A name that cannot be one of the objects gmsa-fleet writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The owner is not a valid label value.
    #[error(
        "owner label value {value:?} is invalid: must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
    )]
    Owner { value: String },
    /// A derived or given object name is not a DNS-1123 subdomain.
    #[error("{kind} name {value:?} is invalid: {rule}")]
    Name { kind: &'static str, value: String, rule: Rule },
    /// A binding's namespace is not a DNS-1123 label.
    #[error(
        "RoleBinding namespace {value:?} is invalid: must be a DNS-1123 label (1-63 lowercase alphanumerics or '-')"
    )]
    Namespace { value: String },
}

/// The ClusterRole's name for a spec.
pub fn cluster_role_name(spec_name: &str) -> String {
    format!("{spec_name}-role")
}

/// The RoleBinding's name for a service account, in the seed's pattern
/// (`allow-default-svc-account-read-on-aks-gmsa-spec`).
pub fn role_binding_name(service_account: &str, spec_name: &str) -> String {
    format!("allow-{service_account}-svc-account-read-on-{spec_name}")
}

/// True for a valid label value (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, ≤ 63).
pub fn is_label_value(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !value.is_empty()
        && value.len() <= 63
        && value.starts_with(alnum)
        && value.ends_with(alnum)
        && value.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// True for a DNS-1123 label (a namespace name): 1-63 lowercase alphanumerics or `-`, alphanumeric ends.
pub fn is_dns_label(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !value.is_empty()
        && value.len() <= 63
        && value.starts_with(alnum)
        && value.ends_with(alnum)
        && value.chars().all(|c| alnum(c) || c == '-')
}

/// Checks that `owner` is a label value.
pub fn check_owner(owner: &str) -> Result<(), NameError> {
    if is_label_value(owner) { Ok(()) } else { Err(NameError::Owner { value: owner.to_string() }) }
}

/// Checks an object name of `kind` (a DNS-1123 subdomain) and hands it back.
pub fn checked_name(kind: &'static str, value: String) -> Result<String, NameError> {
    match ObjectName::parse(&value) {
        Ok(_) => Ok(value),
        Err(rule) => Err(NameError::Name { kind, value, rule }),
    }
}

/// The ClusterRole's name for `spec_name`, checked.
pub fn checked_cluster_role_name(spec_name: &str) -> Result<String, NameError> {
    checked_name("ClusterRole", cluster_role_name(spec_name))
}

/// Checks one binding (its namespace, its service account and the RoleBinding name derived from
/// both) and returns the RoleBinding's name.
pub fn checked_binding(spec_name: &str, namespace: &str, service_account: &str) -> Result<String, NameError> {
    if !is_dns_label(namespace) {
        return Err(NameError::Namespace { value: namespace.to_string() });
    }
    let service_account = checked_name("ServiceAccount", service_account.to_string())?;
    checked_name("RoleBinding", role_binding_name(&service_account, spec_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_namespaces_follow_kubernetes() {
        assert!(is_label_value("web.app_1") && !is_label_value("-bad") && !is_label_value(&"a".repeat(64)));
        assert!(is_dns_label("kube-system") && !is_dns_label("kube system") && !is_dns_label("Default"));
    }

    #[test]
    fn a_binding_checks_namespace_then_account_then_the_derived_name() {
        assert_eq!(
            checked_binding("aks-gmsa-spec", "default", "default").unwrap(),
            "allow-default-svc-account-read-on-aks-gmsa-spec"
        );
        assert!(matches!(checked_binding("s", "kube system", "sa"), Err(NameError::Namespace { .. })));
        assert!(matches!(checked_binding("s", "ns", "SA"), Err(NameError::Name { kind: "ServiceAccount", .. })));
        let long = "a".repeat(240);
        assert!(matches!(checked_binding(&long, "ns", "sa"), Err(NameError::Name { kind: "RoleBinding", .. })));
    }
}
