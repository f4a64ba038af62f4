//! ARM path parsing and the api-versions each modelled resource type registers.
//!
//! Paths are matched case-insensitively (ARM ids are case-insensitive); names keep the caller's
//! casing. An api-version the provider does not register gets ARM's 400
//! `NoRegisteredProviderFound`, worded as ARM words it.

use axum::http::{Method, StatusCode};

use super::error::ArmError;
use crate::config::Operation;

/// AKS GA versions accepted; modelled on `aks/stable/2024-09-01/managedClusters.json`.
const AKS_VERSIONS: &[&str] = &[
    "2023-08-01",
    "2023-10-01",
    "2024-01-01",
    "2024-02-01",
    "2024-05-01",
    "2024-07-01",
    "2024-08-01",
    "2024-09-01",
    "2024-10-01",
    "2025-01-01",
    "2025-02-01",
    "2025-03-01",
    "2025-04-01",
    "2025-05-01",
    "2025-07-01",
];
/// Key Vault management versions; modelled on `keyvault/resource-manager/.../stable/2023-07-01/keyvault.json`.
const KEYVAULT_VERSIONS: &[&str] =
    &["2019-09-01", "2021-10-01", "2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01"];
/// Authorization versions; modelled on `authorization/.../stable/2022-04-01/authorization-RoleAssignmentsCalls.json`.
const AUTHORIZATION_VERSIONS: &[&str] = &["2020-04-01-preview", "2020-10-01-preview", "2022-04-01"];
/// Managed identity versions; modelled on `msi/.../stable/2023-01-31/ManagedIdentity.json`.
const MSI_VERSIONS: &[&str] = &["2018-11-30", "2023-01-31", "2024-11-30"];
/// Compute versions; modelled on `compute/.../stable/2024-07-01/virtualMachineScaleSet.json`.
const COMPUTE_VERSIONS: &[&str] =
    &["2023-03-01", "2023-07-01", "2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01"];

/// A recognised ARM path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
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

    /// Checks `api_version` against the versions the provider registers for this type.
    pub(crate) fn check_api_version(&self, api_version: &str, location: &str) -> Result<(), ArmError> {
        let (type_name, versions, type_location) = match self {
            Route::Cluster { .. } => ("managedClusters", AKS_VERSIONS, location),
            Route::ClusterOperation { .. } => ("locations/operations", AKS_VERSIONS, location),
            Route::Vault { .. } => ("vaults", KEYVAULT_VERSIONS, location),
            Route::AccessPolicies { .. } => ("vaults/accessPolicies", KEYVAULT_VERSIONS, location),
            Route::RoleAssignments { .. } => ("roleAssignments", AUTHORIZATION_VERSIONS, "global"),
            Route::Identity { .. } => ("userAssignedIdentities", MSI_VERSIONS, location),
            Route::ScaleSets { .. } => ("virtualMachineScaleSets", COMPUTE_VERSIONS, location),
        };
        if versions.contains(&api_version) {
            return Ok(());
        }
        Err(ArmError::bad_request(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{type_location}' and API version '{api_version}' for type '{type_name}'. The supported api-versions are '{}'. The supported locations are '{type_location}'.",
                versions.join(", ")
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
}
