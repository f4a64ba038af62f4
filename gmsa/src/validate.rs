//! Every rule a command's payload must satisfy, in one function that fleetctl calls before it
//! sends and the agent calls before it executes: one set of rules, so a payload fleetctl accepts
//! is not refused by every agent it reaches.
//!
//! ```text
//!   proto::Command ──validate::command──► Command::validate()  (presence, shapes proto can check)
//!                                      └► the deep rules here: credspec fields (crate::credspec),
//!                                         Kubernetes names (crate::kube_names)
//! ```
//!
//! proto cannot hold the deep rules (it does not depend on this crate; this crate depends on it),
//! so they are added here, each error naming the payload field (`payload.bindings[0].namespace`).

use crate::credspec::{CredSpec, CredSpecField, CredSpecInputs, DnsName, DomainSid, GmsaAccountName, Guid};
use crate::credspec::{NetBiosName, ObjectName, Rule};
use crate::kube_names::{self, NameError};
use proto::Command;
use proto::command::{
    ApplyCredspec, CollectDiagnostics, DomainFacts, Teardown, ValidateCredspec, ValidationError, Verify,
};

#[cfg(test)]
mod tests;

/// Checks every field of `command`'s payload; the first that breaks a rule is the error.
pub fn command(command: &Command) -> Result<(), ValidationError> {
    command.validate()?;
    match command {
        Command::ApplyCredspec(payload) => apply_credspec(payload),
        Command::Verify(payload) => verify(payload),
        Command::ValidateCredspec(payload) => validate_credspec(payload),
        Command::Teardown(payload) => teardown(payload),
        Command::CollectDiagnostics(payload) => collect_diagnostics(payload),
        // Their fields are IP addresses, DNS names, GUIDs and Azure names that proto checks whole.
        Command::EnableGmsa(_)
        | Command::DisableGmsa(_)
        | Command::GrantIdentity(_)
        | Command::RotateCredential(_)
        | Command::CheckDcConnectivity(_)
        | Command::AuditAccess(_) => Ok(()),
    }
}

/// Stands in for the kubelet identity's object id when the payload leaves it to the agent (which
/// reads it from the managed cluster): an Azure object id, always a GUID.
const KUBELET_IDENTITY_STAND_IN: &str = "00000000-0000-0000-0000-000000000000";

/// The credspec exactly as the agent builds it (`CredSpec::new`), then the names of its RBAC
/// objects exactly as `cluster::desired` derives them.
fn apply_credspec(payload: &ApplyCredspec) -> Result<(), ValidationError> {
    let inputs = CredSpecInputs {
        name: payload.spec_name.clone(),
        gmsa_account: payload.gmsa_account.clone(),
        netbios_domain: payload.netbios_domain.clone(),
        dns_domain: payload.dns_domain.clone(),
        dns_tree_root: payload.dns_tree_root.clone(),
        domain_guid: payload.domain_guid.clone(),
        domain_sid: payload.domain_sid.clone(),
        secret_uri: payload.secret_uri.clone(),
        managed_identity_object_id: payload
            .identity_object_id
            .clone()
            .unwrap_or_else(|| KUBELET_IDENTITY_STAND_IN.to_string()),
    };
    CredSpec::new(&inputs).map_err(|error| {
        let (field, value) = match error.field() {
            CredSpecField::Name => ("payload.spec_name", &inputs.name),
            CredSpecField::GmsaAccount => ("payload.gmsa_account", &inputs.gmsa_account),
            CredSpecField::NetBiosDomain => ("payload.netbios_domain", &inputs.netbios_domain),
            CredSpecField::DnsDomain => ("payload.dns_domain", &inputs.dns_domain),
            CredSpecField::DnsTreeRoot => ("payload.dns_tree_root", &inputs.dns_tree_root),
            CredSpecField::DomainGuid => ("payload.domain_guid", &inputs.domain_guid),
            CredSpecField::DomainSid => ("payload.domain_sid", &inputs.domain_sid),
            CredSpecField::SecretUri => ("payload.secret_uri", &inputs.secret_uri),
            CredSpecField::ObjectId => ("payload.identity_object_id", &inputs.managed_identity_object_id),
        };
        broken(field, value, error.rule())
    })?;
    kube_names::check_owner(&payload.owner).map_err(|error| name_error("payload.owner", &error))?;
    kube_names::checked_cluster_role_name(&payload.spec_name)
        .map_err(|error| name_error("payload.spec_name", &error))?;
    for (index, binding) in payload.bindings.iter().enumerate() {
        kube_names::checked_binding(&payload.spec_name, &binding.namespace, &binding.name).map_err(|error| {
            let field = match error {
                NameError::Namespace { .. } => format!("payload.bindings[{index}].namespace"),
                _ => format!("payload.bindings[{index}].name"),
            };
            name_error(&field, &error)
        })?;
    }
    Ok(())
}

fn verify(payload: &Verify) -> Result<(), ValidationError> {
    spec_name("payload.spec_name", &payload.spec_name)?;
    if !kube_names::is_dns_label(&payload.namespace) {
        return Err(ValidationError::new(
            "payload.namespace",
            format!("{:?} must be a DNS label (1-63 lowercase alphanumerics or '-')", payload.namespace),
        ));
    }
    Ok(())
}

fn validate_credspec(payload: &ValidateCredspec) -> Result<(), ValidationError> {
    spec_name("payload.spec_name", &payload.spec_name)?;
    domain_facts("payload.expected", &payload.expected)
}

/// The domain facts with the credspec's own field parsers (the agent compares them with the
/// installed credspec, which `CredSpec::new` built with the same parsers).
fn domain_facts(field: &str, facts: &DomainFacts) -> Result<(), ValidationError> {
    let check = |name: &str, value: &String, result: Result<(), Rule>| {
        result.map_err(|rule| broken(&format!("{field}.{name}"), value, &rule))
    };
    check("gmsa_account", &facts.gmsa_account, GmsaAccountName::parse(&facts.gmsa_account).map(drop))?;
    check("netbios_domain", &facts.netbios_domain, NetBiosName::parse(&facts.netbios_domain).map(drop))?;
    let dns_domain = DnsName::parse(&facts.dns_domain);
    check("dns_domain", &facts.dns_domain, dns_domain.clone().map(drop))?;
    let dns_tree_root = DnsName::parse(&facts.dns_tree_root);
    check("dns_tree_root", &facts.dns_tree_root, dns_tree_root.clone().map(drop))?;
    if let (Ok(dns_domain), Ok(dns_tree_root)) = (dns_domain, dns_tree_root)
        && !dns_tree_root.is_same_or_parent_of(&dns_domain)
    {
        let rule = Rule::NotTreeRoot { dns_name: facts.dns_domain.clone() };
        return Err(broken(&format!("{field}.dns_tree_root"), &facts.dns_tree_root, &rule));
    }
    check("domain_guid", &facts.domain_guid, Guid::parse(&facts.domain_guid).map(drop))?;
    check("domain_sid", &facts.domain_sid, DomainSid::parse(&facts.domain_sid).map(drop))
}

/// As `cluster::ops::remove` checks them: the spec's name and the owner label.
fn teardown(payload: &Teardown) -> Result<(), ValidationError> {
    spec_name("payload.spec_name", &payload.spec_name)?;
    kube_names::check_owner(&payload.owner).map_err(|error| name_error("payload.owner", &error))?;
    if let Some(gmsa) = &payload.delete.gmsa {
        GmsaAccountName::parse(gmsa).map_err(|rule| broken("payload.delete.gmsa", gmsa, &rule))?;
    }
    Ok(())
}

/// As `cluster::ops::diagnostics` checks them: the spec's name and the owner label.
fn collect_diagnostics(payload: &CollectDiagnostics) -> Result<(), ValidationError> {
    spec_name("payload.spec_name", &payload.spec_name)?;
    kube_names::check_owner(&payload.owner).map_err(|error| name_error("payload.owner", &error))
}

fn spec_name(field: &str, value: &String) -> Result<(), ValidationError> {
    ObjectName::parse(value).map(drop).map_err(|rule| broken(field, value, &rule))
}

fn broken(field: &str, value: &String, rule: &Rule) -> ValidationError {
    ValidationError::new(field, format!("{value:?} is invalid: {rule}"))
}

fn name_error(field: &str, error: &NameError) -> ValidationError {
    ValidationError::new(field, error.to_string())
}
