//! ARM path parsing and the api-versions each modelled resource type registers.
//!
//! Paths are matched case-insensitively (ARM ids are case-insensitive); names keep the caller's
//! casing. An api-version the provider does not register gets ARM's 400
//! `NoRegisteredProviderFound`, worded as ARM words it.

use axum::http::{Method, StatusCode};

use super::error::ArmError;
use crate::config::Operation;

/// The stable api-versions a resource type accepts, by rule: every well-formed date from the
/// oldest version the simulator models through the newest one today's SDKs and CLI send
/// (future-dated versions included, as the services register them ahead of the SDKs), plus
/// named previews. ARM's registrations are sparser; the rule keeps the simulator from lagging
/// the SDKs while still refusing what no provider registers (older, newer, other previews).
#[derive(Clone, Copy, Debug)]
pub(crate) struct VersionRule {
    pub(crate) oldest: &'static str,
    pub(crate) newest: &'static str,
    pub(crate) previews: &'static [&'static str],
}

/// AKS; modelled on `aks/stable/2024-09-01/managedClusters.json`. azure-mgmt-containerservice
/// 41.8 sends 2026-08-01, az CLI 2.91 2026-06-01.
const AKS_VERSIONS: VersionRule = VersionRule { oldest: "2023-08-01", newest: "2026-08-01", previews: &[] };
/// Key Vault management; modelled on `keyvault/resource-manager/.../stable/2023-07-01/keyvault.json`.
/// azure-mgmt-keyvault 14.1 sends 2026-05-15, az CLI 2.91 2026-02-01.
const KEYVAULT_VERSIONS: VersionRule = VersionRule { oldest: "2019-09-01", newest: "2026-05-15", previews: &[] };
/// Authorization; modelled on `authorization/.../stable/2022-04-01/authorization-RoleAssignmentsCalls.json`.
const AUTHORIZATION_VERSIONS: VersionRule =
    VersionRule { oldest: "2022-04-01", newest: "2026-04-01", previews: &["2020-04-01-preview", "2020-10-01-preview"] };
/// Managed identity; modelled on `msi/.../stable/2023-01-31/ManagedIdentity.json`.
const MSI_VERSIONS: VersionRule = VersionRule { oldest: "2018-11-30", newest: "2025-05-31", previews: &[] };
/// Compute; modelled on `compute/.../stable/2024-07-01/virtualMachineScaleSet.json`.
/// azure-mgmt-compute 39 sends 2026-04-01.
const COMPUTE_VERSIONS: VersionRule = VersionRule { oldest: "2023-03-01", newest: "2026-04-01", previews: &[] };
/// Resource manager's own types (subscriptions, tenants, the generic resources list);
/// modelled on `resources/.../stable/2022-12-01/subscriptions.json` and `.../2021-04-01/resources.json`.
/// az CLI 2.91 still lists resources with 2015-11-01.
const RESOURCES_VERSIONS: VersionRule = VersionRule { oldest: "2015-11-01", newest: "2026-12-01", previews: &[] };

/// `YYYY-MM-DD` with a real month and day, optionally `-preview`: `(date, preview)`.
pub(crate) fn parse_api_version(text: &str) -> Option<(&str, bool)> {
    let (date, preview) = match text.strip_suffix("-preview") {
        Some(date) => (date, true),
        None => (text, false),
    };
    let bytes = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return None;
    }
    let month: u32 = date[5..7].parse().ok()?;
    let day: u32 = date[8..10].parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some((date, preview))
}

impl VersionRule {
    /// Whether the provider registers `api_version` (which [`parse_api_version`] accepted).
    pub(crate) fn accepts(&self, api_version: &str) -> bool {
        match parse_api_version(api_version) {
            Some((_, true)) => self.previews.contains(&api_version),
            Some((date, false)) => self.oldest <= date && date <= self.newest,
            None => false,
        }
    }

    /// How ARM lists the supported versions in its messages (newest first).
    fn describe(&self) -> String {
        let mut listed = vec![format!("{} … {}", self.newest, self.oldest)];
        listed.extend(self.previews.iter().map(|preview| (*preview).to_string()));
        listed.join(", ")
    }
}

/// A recognised ARM path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/subscriptions` (the caller's subscriptions, `az login` lists them).
    Subscriptions,
    /// `/subscriptions/{s}`.
    Subscription { subscription: String },
    /// `/tenants`.
    Tenants,
    /// `/subscriptions/{s}/resources` (`$filter` on resourceType and name).
    Resources { subscription: String },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}`.
    Cluster { subscription: String, resource_group: String, name: String },
    /// `/subscriptions/{s}/providers/Microsoft.ContainerService/locations/{loc}/operations|operationresults/{id}`.
    ClusterOperation { subscription: String, location: String, operation_id: String, result: bool },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}`.
    Vault { subscription: String, resource_group: String, name: String },
    /// `.../vaults/{name}/accessPolicies/{add|replace|remove}`.
    AccessPolicies { subscription: String, resource_group: String, name: String, kind: String },
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`.
    RoleAssignments { scope: String, name: Option<String> },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}`.
    Identity { subscription: String, resource_group: String, name: String },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets[/{name}]`.
    ScaleSets { subscription: String, resource_group: String, name: Option<String> },
}

fn eq(segment: &str, expected: &str) -> bool {
    segment.eq_ignore_ascii_case(expected)
}

impl Route {
    /// Recognises `segments` (the path split on `/`, empties removed).
    pub(crate) fn parse(segments: &[&str]) -> Result<Route, ArmError> {
        let owned = |text: &str| text.to_string();
        // Role assignments hang off any scope: find the last `providers/Microsoft.Authorization`.
        if let Some(index) = (0..segments.len().saturating_sub(2)).rev().find(|&index| {
            eq(segments[index], "providers")
                && eq(segments[index + 1], "Microsoft.Authorization")
                && eq(segments[index + 2], "roleAssignments")
        }) {
            let scope = format!("/{}", segments[..index].join("/"));
            return match &segments[index + 3..] {
                [] => Ok(Route::RoleAssignments { scope, name: None }),
                [name] => Ok(Route::RoleAssignments { scope, name: Some(owned(name)) }),
                _ => Err(not_found(segments)),
            };
        }
        match segments {
            [subs] if eq(subs, "subscriptions") => Ok(Route::Subscriptions),
            [tenants] if eq(tenants, "tenants") => Ok(Route::Tenants),
            [subs, subscription] if eq(subs, "subscriptions") => {
                Ok(Route::Subscription { subscription: owned(subscription) })
            }
            [subs, subscription, resources] if eq(subs, "subscriptions") && eq(resources, "resources") => {
                Ok(Route::Resources { subscription: owned(subscription) })
            }
            [subs, subscription, providers, namespace, locations, location, kind, operation_id]
                if eq(subs, "subscriptions")
                    && eq(providers, "providers")
                    && eq(namespace, "Microsoft.ContainerService")
                    && eq(locations, "locations")
                    && (eq(kind, "operations") || eq(kind, "operationresults")) =>
            {
                Ok(Route::ClusterOperation {
                    subscription: owned(subscription),
                    location: owned(location),
                    operation_id: owned(operation_id),
                    result: eq(kind, "operationresults"),
                })
            }
            [subs, subscription, groups, resource_group, providers, namespace, resource_type, rest @ ..]
                if eq(subs, "subscriptions") && eq(groups, "resourceGroups") && eq(providers, "providers") =>
            {
                let (subscription, resource_group) = (owned(subscription), owned(resource_group));
                match (namespace.to_ascii_lowercase().as_str(), resource_type.to_ascii_lowercase().as_str(), rest) {
                    ("microsoft.containerservice", "managedclusters", [name]) => {
                        Ok(Route::Cluster { subscription, resource_group, name: owned(name) })
                    }
                    ("microsoft.keyvault", "vaults", [name]) => {
                        Ok(Route::Vault { subscription, resource_group, name: owned(name) })
                    }
                    ("microsoft.keyvault", "vaults", [name, policies, kind]) if eq(policies, "accessPolicies") => {
                        Ok(Route::AccessPolicies { subscription, resource_group, name: owned(name), kind: owned(kind) })
                    }
                    ("microsoft.managedidentity", "userassignedidentities", [name]) => {
                        Ok(Route::Identity { subscription, resource_group, name: owned(name) })
                    }
                    ("microsoft.compute", "virtualmachinescalesets", []) => {
                        Ok(Route::ScaleSets { subscription, resource_group, name: None })
                    }
                    ("microsoft.compute", "virtualmachinescalesets", [name]) => {
                        Ok(Route::ScaleSets { subscription, resource_group, name: Some(owned(name)) })
                    }
                    _ => Err(ArmError::new(
                        StatusCode::NOT_FOUND,
                        "InvalidResourceType",
                        format!(
                            "The resource type '{resource_type}' could not be found in the namespace '{namespace}'."
                        ),
                    )),
                }
            }
            _ => Err(not_found(segments)),
        }
    }

    /// The operation a method on this route performs, or ARM's 405.
    pub(crate) fn operation(&self, method: &Method) -> Result<Operation, ArmError> {
        let operation = match (self, method.as_str()) {
            (Route::Subscriptions | Route::Subscription { .. } | Route::Tenants | Route::Resources { .. }, "GET") => {
                Operation::SubscriptionRead
            }
            (Route::Cluster { .. }, "GET") => Operation::ClusterGet,
            (Route::Cluster { .. }, "PUT") => Operation::ClusterPut,
            (Route::ClusterOperation { .. }, "GET") => Operation::OperationStatus,
            (Route::Vault { .. }, "GET") => Operation::VaultGet,
            (Route::Vault { .. }, "PUT" | "PATCH") => Operation::VaultPut,
            (Route::AccessPolicies { .. }, "PUT") => Operation::AccessPolicyUpdate,
            (Route::RoleAssignments { .. }, "GET") => Operation::RoleAssignmentGet,
            (Route::RoleAssignments { name: Some(_), .. }, "PUT") => Operation::RoleAssignmentPut,
            (Route::RoleAssignments { name: Some(_), .. }, "DELETE") => Operation::RoleAssignmentDelete,
            (Route::Identity { .. }, "GET") => Operation::IdentityGet,
            (Route::Identity { .. }, "PUT") => Operation::IdentityPut,
            (Route::Identity { .. }, "DELETE") => Operation::IdentityDelete,
            (Route::ScaleSets { .. }, "GET") => Operation::ScaleSetGet,
            (Route::ScaleSets { name: Some(_), .. }, "PATCH" | "PUT") => Operation::ScaleSetUpdate,
            _ => {
                return Err(ArmError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "UnsupportedHttpMethod",
                    format!("The requested resource does not support http method '{method}'."),
                ));
            }
        };
        Ok(operation)
    }

    /// The subscription the request is charged to (role assignments at a management-group or
    /// tenant scope have none).
    pub(crate) fn subscription(&self) -> Option<&str> {
        match self {
            Route::Subscriptions | Route::Tenants => None,
            Route::Subscription { subscription } | Route::Resources { subscription } => Some(subscription),
            Route::Cluster { subscription, .. }
            | Route::ClusterOperation { subscription, .. }
            | Route::Vault { subscription, .. }
            | Route::AccessPolicies { subscription, .. }
            | Route::Identity { subscription, .. }
            | Route::ScaleSets { subscription, .. } => Some(subscription),
            Route::RoleAssignments { scope, .. } => {
                let mut parts = scope.split('/').filter(|part| !part.is_empty());
                match (parts.next(), parts.next()) {
                    (Some(subs), Some(subscription)) if eq(subs, "subscriptions") => Some(subscription),
                    _ => None,
                }
            }
        }
    }

    /// Checks `api_version` against the versions the provider registers for this type: ARM's
    /// 400 `InvalidApiVersionParameter` for a malformed one, `NoRegisteredProviderFound` for a
    /// well-formed one no provider registers.
    pub(crate) fn check_api_version(&self, api_version: &str, location: &str) -> Result<(), ArmError> {
        let (type_name, versions, type_location) = match self {
            Route::Subscriptions | Route::Subscription { .. } => ("subscriptions", RESOURCES_VERSIONS, "global"),
            Route::Tenants => ("tenants", RESOURCES_VERSIONS, "global"),
            Route::Resources { .. } => ("resources", RESOURCES_VERSIONS, "global"),
            Route::Cluster { .. } => ("managedClusters", AKS_VERSIONS, location),
            Route::ClusterOperation { .. } => ("locations/operations", AKS_VERSIONS, location),
            Route::Vault { .. } => ("vaults", KEYVAULT_VERSIONS, location),
            Route::AccessPolicies { .. } => ("vaults/accessPolicies", KEYVAULT_VERSIONS, location),
            Route::RoleAssignments { .. } => ("roleAssignments", AUTHORIZATION_VERSIONS, "global"),
            Route::Identity { .. } => ("userAssignedIdentities", MSI_VERSIONS, location),
            Route::ScaleSets { .. } => ("virtualMachineScaleSets", COMPUTE_VERSIONS, location),
        };
        if parse_api_version(api_version).is_none() {
            return Err(ArmError::bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{api_version}' is invalid. The supported versions are '{}'.",
                    versions.describe()
                ),
            ));
        }
        if versions.accepts(api_version) {
            return Ok(());
        }
        Err(ArmError::bad_request(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{type_location}' and API version '{api_version}' for type '{type_name}'. The supported api-versions are '{}'. The supported locations are '{type_location}'.",
                versions.describe()
            ),
        ))
    }
}

fn not_found(segments: &[&str]) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("The requested path '/{}' is not served by this simulator.", segments.join("/")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(path: &str) -> Vec<&str> {
        path.split('/').filter(|segment| !segment.is_empty()).collect()
    }

    #[test]
    fn parses_paths_case_insensitively_keeping_name_case() {
        let route = Route::parse(&split(
            "/subscriptions/S1/resourcegroups/RG/providers/microsoft.containerservice/MANAGEDCLUSTERS/Aks1",
        ));
        assert_eq!(
            route,
            Ok(Route::Cluster { subscription: "S1".into(), resource_group: "RG".into(), name: "Aks1".into() })
        );
        let route = Route::parse(&split(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/providers/Microsoft.Authorization/roleAssignments/abc",
        ))
        .expect("role assignment route");
        assert_eq!(
            route,
            Route::RoleAssignments {
                scope: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv".into(),
                name: Some("abc".into())
            }
        );
        assert_eq!(route.subscription(), Some("s"));
    }

    #[test]
    fn unknown_api_version_is_no_registered_provider() {
        let route = Route::Identity { subscription: "s".into(), resource_group: "rg".into(), name: "id".into() };
        assert!(route.check_api_version("2023-01-31", "eastus").is_ok());
        let error = route.check_api_version("2099-01-01", "eastus").expect_err("unknown version");
        assert_eq!((error.status, error.code.as_str()), (StatusCode::BAD_REQUEST, "NoRegisteredProviderFound"));
    }

    #[test]
    fn api_versions_are_accepted_by_rule() {
        let cluster = Route::Cluster { subscription: "s".into(), resource_group: "rg".into(), name: "c".into() };
        // What the SDKs and the CLI send by default, and a date no spec names but the range holds.
        for accepted in ["2026-08-01", "2026-06-01", "2024-09-01", "2025-11-17"] {
            assert!(cluster.check_api_version(accepted, "eastus").is_ok(), "{accepted}");
        }
        for (refused, code) in [
            ("2023-07-31", "NoRegisteredProviderFound"),
            ("2026-08-02", "NoRegisteredProviderFound"),
            ("2025-01-01-preview", "NoRegisteredProviderFound"),
            ("2025-13-01", "InvalidApiVersionParameter"),
            ("latest", "InvalidApiVersionParameter"),
            ("2025-1-01", "InvalidApiVersionParameter"),
        ] {
            let error = cluster.check_api_version(refused, "eastus").expect_err(refused);
            assert_eq!(error.code, code, "{refused}");
        }
        let vault = Route::Vault { subscription: "s".into(), resource_group: "rg".into(), name: "v".into() };
        assert!(vault.check_api_version("2026-05-15", "eastus").is_ok());
        assert!(vault.check_api_version("2026-02-01", "eastus").is_ok());
        let assignments = Route::RoleAssignments { scope: "/subscriptions/s".into(), name: None };
        assert!(assignments.check_api_version("2020-10-01-preview", "eastus").is_ok());
    }
}
