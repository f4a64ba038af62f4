//! Pure planning of the cluster update: from the managed cluster as read and the desired gMSA
//! state, the full PUT body (everything else untouched) and its diff — or "nothing to do".
//!
//! Semantics follow `az aks update`:
//! - `--enable-windows-gmsa [--gmsa-dns-server X --gmsa-root-domain-name Y]` sets
//!   `windowsProfile.gmsaProfile` to exactly `{enabled: true[, dnsServer, rootDomainName]}`;
//!   DNS server and root domain are given together or not at all.
//! - `--disable-windows-gmsa` sets `{enabled: false}`.
//! - Enabling needs a `windowsProfile` and at least one node pool with `osType: Windows`;
//!   otherwise nothing is written and the cluster is reported.
//!
//! Equality is semantic: an empty string equals an absent field, and a profile that is absent
//! or not enabled counts as disabled, so disabling twice writes once.

use proto::outcome::FieldChange;
use serde_json::{Map, Value, json};

/// The desired gMSA state of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GmsaChange {
    /// Enable gMSA with these settings.
    Enable(GmsaSettings),
    /// Disable gMSA.
    Disable,
}

/// `--gmsa-dns-server` and `--gmsa-root-domain-name`: both or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GmsaSettings {
    /// IP address of the DNS server CoreDNS forwards the root domain to.
    pub dns_server: Option<String>,
    /// Root domain name (FQDN) of the Active Directory forest.
    pub root_domain_name: Option<String>,
}

/// Why a cluster update was not planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Exactly one of the two DNS settings was given.
    #[error("gmsa_dns_server and gmsa_root_domain_name must be set together or not at all (got only {given})")]
    DnsSettingsIncomplete {
        /// The one that was given.
        given: &'static str,
    },
    /// A setting was given but empty.
    #[error("{field} must not be empty")]
    EmptySetting {
        /// The empty field.
        field: &'static str,
    },
    /// The cluster has no `properties.windowsProfile`.
    #[error("cluster has no properties.windowsProfile: create it with Windows support first")]
    NoWindowsProfile,
    /// No agent pool has `osType: Windows`.
    #[error("cluster has no node pool with osType Windows in properties.agentPoolProfiles")]
    NoWindowsNodePool,
}

/// The planned cluster update.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterPlan {
    /// The cluster is already as desired.
    Unchanged,
    /// PUT `body` (the cluster as read, with only the gMSA profile replaced); `diff` lists what changes.
    Write {
        /// The full resource body to PUT.
        body: Value,
        /// The changed fields, paths from the resource root.
        diff: Vec<FieldChange>,
    },
}

/// Checks the CLI's rule: DNS server and root domain together or not at all, never empty.
pub fn validate_settings(settings: &GmsaSettings) -> Result<(), PlanError> {
    for (field, value) in
        [("gmsa_dns_server", &settings.dns_server), ("gmsa_root_domain_name", &settings.root_domain_name)]
    {
        if value.as_deref().is_some_and(|text| text.trim().is_empty()) {
            return Err(PlanError::EmptySetting { field });
        }
    }
    match (&settings.dns_server, &settings.root_domain_name) {
        (Some(_), None) => Err(PlanError::DnsSettingsIncomplete { given: "gmsa_dns_server" }),
        (None, Some(_)) => Err(PlanError::DnsSettingsIncomplete { given: "gmsa_root_domain_name" }),
        _ => Ok(()),
    }
}

/// The `gmsaProfile` object a change asks for.
pub fn desired_gmsa_profile(change: &GmsaChange) -> Value {
    match change {
        GmsaChange::Disable => json!({"enabled": false}),
        GmsaChange::Enable(settings) => {
            let mut profile = Map::new();
            profile.insert("enabled".to_string(), Value::Bool(true));
            if let Some(dns_server) = &settings.dns_server {
                profile.insert("dnsServer".to_string(), Value::String(dns_server.trim().to_string()));
            }
            if let Some(root_domain_name) = &settings.root_domain_name {
                profile.insert("rootDomainName".to_string(), Value::String(root_domain_name.trim().to_string()));
            }
            Value::Object(profile)
        }
    }
}

/// Plans the update of `cluster` (a managed cluster body as returned by GET).
pub fn plan_cluster_update(cluster: &Value, change: &GmsaChange) -> Result<ClusterPlan, PlanError> {
    if let GmsaChange::Enable(settings) = change {
        validate_settings(settings)?;
    }
    let windows_profile = cluster.pointer("/properties/windowsProfile").filter(|profile| profile.is_object());
    let current = windows_profile.and_then(|profile| profile.get("gmsaProfile"));
    match change {
        GmsaChange::Enable(_) => {
            if windows_profile.is_none() {
                return Err(PlanError::NoWindowsProfile);
            }
            if !has_windows_node_pool(cluster) {
                return Err(PlanError::NoWindowsNodePool);
            }
        }
        // Without a Windows profile gMSA cannot be on: disabling is already done.
        GmsaChange::Disable if windows_profile.is_none() => return Ok(ClusterPlan::Unchanged),
        GmsaChange::Disable => {}
    }
    let desired = desired_gmsa_profile(change);
    if profiles_equivalent(current, &desired) {
        return Ok(ClusterPlan::Unchanged);
    }
    let mut body = cluster.clone();
    if let Some(profile) = body.pointer_mut("/properties/windowsProfile").and_then(Value::as_object_mut) {
        profile.insert("gmsaProfile".to_string(), desired);
    }
    let diff = gmsa::json_diff(cluster, &body);
    Ok(ClusterPlan::Write { body, diff })
}

/// True when any agent pool has `osType: Windows` (case-insensitive).
pub fn has_windows_node_pool(cluster: &Value) -> bool {
    windows_node_pools(cluster).next().is_some()
}

/// Names of the agent pools with `osType: Windows`.
pub fn windows_node_pools(cluster: &Value) -> impl Iterator<Item = &str> {
    cluster
        .pointer("/properties/agentPoolProfiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|pool| pool.get("osType").and_then(Value::as_str).is_some_and(|os| os.eq_ignore_ascii_case("Windows")))
        .filter_map(|pool| pool.get("name").and_then(Value::as_str))
}

/// Semantic equality of the current profile (maybe absent) and the desired one.
fn profiles_equivalent(current: Option<&Value>, desired: &Value) -> bool {
    let enabled =
        |profile: Option<&Value>| profile.and_then(|p| p.get("enabled")).and_then(Value::as_bool).unwrap_or(false);
    let text = |profile: Option<&Value>, key: &str| {
        profile
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if !enabled(Some(desired)) {
        return !enabled(current);
    }
    enabled(current)
        && text(current, "dnsServer") == text(Some(desired), "dnsServer")
        && text(current, "rootDomainName").map(|s| s.to_ascii_lowercase())
            == text(Some(desired), "rootDomainName").map(|s| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_cluster(gmsa: Option<Value>, windows_pool: bool) -> Value {
        let mut windows_profile = json!({"adminUsername": "azureuser", "enableCSIProxy": true});
        if let Some(gmsa) = gmsa {
            windows_profile["gmsaProfile"] = gmsa;
        }
        let mut pools = vec![json!({"name": "nodepool1", "osType": "Linux", "count": 3})];
        if windows_pool {
            pools.push(json!({"name": "npwin", "osType": "Windows", "count": 1}));
        }
        json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c",
            "location": "westeurope",
            "eTag": "e1",
            "futureTopLevelField": {"kept": true},
            "properties": {"provisioningState": "Succeeded", "agentPoolProfiles": pools, "windowsProfile": windows_profile}
        })
    }

    fn mk_enable(dns: Option<&str>, root: Option<&str>) -> GmsaChange {
        GmsaChange::Enable(GmsaSettings {
            dns_server: dns.map(str::to_string),
            root_domain_name: root.map(str::to_string),
        })
    }

    #[test]
    fn dns_settings_come_together_or_not_at_all() {
        let only_dns = mk_enable(Some("10.0.0.4"), None);
        let error = plan_cluster_update(&mk_cluster(None, true), &only_dns).unwrap_err();
        assert_eq!(error, PlanError::DnsSettingsIncomplete { given: "gmsa_dns_server" });
        assert!(error.to_string().contains("gmsa_root_domain_name"));
        let only_root = mk_enable(None, Some("contoso.com"));
        assert_eq!(
            validate_settings(match &only_root {
                GmsaChange::Enable(s) => s,
                _ => unreachable!(),
            }),
            Err(PlanError::DnsSettingsIncomplete { given: "gmsa_root_domain_name" })
        );
        assert_eq!(
            plan_cluster_update(&mk_cluster(None, true), &mk_enable(Some(" "), Some("contoso.com"))),
            Err(PlanError::EmptySetting { field: "gmsa_dns_server" })
        );
    }

    #[test]
    fn enabling_writes_only_the_gmsa_profile_and_keeps_unknown_fields() {
        let cluster = mk_cluster(None, true);
        let ClusterPlan::Write { body, diff } =
            plan_cluster_update(&cluster, &mk_enable(Some("10.0.0.4"), Some("contoso.com"))).unwrap()
        else {
            panic!("expected a write")
        };
        assert_eq!(
            body["properties"]["windowsProfile"]["gmsaProfile"],
            json!({"enabled": true, "dnsServer": "10.0.0.4", "rootDomainName": "contoso.com"})
        );
        assert_eq!(body["futureTopLevelField"], json!({"kept": true}));
        assert_eq!(body["properties"]["windowsProfile"]["enableCSIProxy"], json!(true));
        let paths: Vec<&str> = diff.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths, ["/properties/windowsProfile/gmsaProfile"]);
    }

    #[test]
    fn enabling_an_enabled_cluster_is_unchanged() {
        let cluster =
            mk_cluster(Some(json!({"enabled": true, "dnsServer": "10.0.0.4", "rootDomainName": "Contoso.com"})), true);
        assert_eq!(
            plan_cluster_update(&cluster, &mk_enable(Some("10.0.0.4"), Some("contoso.com"))),
            Ok(ClusterPlan::Unchanged)
        );
        let plain = mk_cluster(Some(json!({"enabled": true, "dnsServer": "", "rootDomainName": ""})), true);
        assert_eq!(plan_cluster_update(&plain, &mk_enable(None, None)), Ok(ClusterPlan::Unchanged));
    }

    #[test]
    fn changing_the_dns_server_is_a_write_of_that_field() {
        let cluster =
            mk_cluster(Some(json!({"enabled": true, "dnsServer": "10.0.0.4", "rootDomainName": "contoso.com"})), true);
        let ClusterPlan::Write { diff, .. } =
            plan_cluster_update(&cluster, &mk_enable(Some("10.0.0.5"), Some("contoso.com"))).unwrap()
        else {
            panic!("expected a write")
        };
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].path, "/properties/windowsProfile/gmsaProfile/dnsServer");
        assert_eq!(diff[0].after, Some(json!("10.0.0.5")));
    }

    #[test]
    fn a_cluster_without_windows_is_reported_not_changed() {
        let mut no_profile = mk_cluster(None, true);
        no_profile["properties"].as_object_mut().unwrap().remove("windowsProfile");
        assert_eq!(plan_cluster_update(&no_profile, &mk_enable(None, None)), Err(PlanError::NoWindowsProfile));
        assert_eq!(
            plan_cluster_update(&mk_cluster(None, false), &mk_enable(None, None)),
            Err(PlanError::NoWindowsNodePool)
        );
    }

    #[test]
    fn disabling_writes_enabled_false_once() {
        let enabled =
            mk_cluster(Some(json!({"enabled": true, "dnsServer": "10.0.0.4", "rootDomainName": "contoso.com"})), true);
        let ClusterPlan::Write { body, .. } = plan_cluster_update(&enabled, &GmsaChange::Disable).unwrap() else {
            panic!("expected a write")
        };
        assert_eq!(body["properties"]["windowsProfile"]["gmsaProfile"], json!({"enabled": false}));
        assert_eq!(plan_cluster_update(&body, &GmsaChange::Disable), Ok(ClusterPlan::Unchanged));
        assert_eq!(plan_cluster_update(&mk_cluster(None, true), &GmsaChange::Disable), Ok(ClusterPlan::Unchanged));
    }

    #[test]
    fn windows_pools_are_listed_by_name() {
        let cluster = mk_cluster(None, true);
        assert_eq!(windows_node_pools(&cluster).collect::<Vec<_>>(), ["npwin"]);
    }
}
