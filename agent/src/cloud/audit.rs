//! `audit-access` (`Get-AksAgentPoolsAkvAccess`): which identities each Windows node pool runs
//! with, and which of them — and who else — can `get` the domain-user secret. The report is built
//! by [`access_report`], a pure function over what ARM says (pool identities from the scale sets,
//! readers from access policies and role assignments), unit-tested below.

use super::{CloudExecutor, azure_error};
use crate::executor::{ExecError, Progress};
use azure::access_audit::{Grant, PrincipalAccess};
use azure::{HostIdentityRef, PoolIdentity, VaultRef};
use proto::StepOutcome;
use proto::command::{AuditAccess, IdentityChoice};
use proto::report::{AccessReport, AccessRow, OtherReader, STEP_ACCESS_AUDIT};

/// The identity that should read the secret, as the pools know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The kubelet identity (whatever its id).
    Kubelet,
    /// A user-assigned identity by ARM id (compared case-insensitively).
    Identity(String),
}

/// Whether `identity` (on a pool) is the expected one.
fn is_expected(expected: &Expected, identity: &azure::AttachedIdentity) -> bool {
    match expected {
        Expected::Kubelet => identity.kubelet,
        Expected::Identity(id) => identity.id.eq_ignore_ascii_case(id),
    }
}

/// The principal id of the expected identity, if some Windows pool runs with it.
pub fn expected_principal(pools: &[PoolIdentity], expected: &Expected) -> Option<String> {
    pools
        .iter()
        .flat_map(|pool| &pool.identities)
        .find(|identity| is_expected(expected, identity))
        .map(|identity| identity.principal_id.to_ascii_lowercase())
}

fn describe(grant: &Grant) -> String {
    match grant {
        Grant::AccessPolicy => "access-policy".to_string(),
        Grant::Role { role, scope } => format!("role {role} at {scope}"),
        Grant::Unverified { role, scope } => format!("unverified: role {role} at management group {scope}"),
    }
}

fn name_of(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// Builds the report: one row per identity per Windows pool, the other readers, and findings.
pub fn access_report(
    secret: String,
    pools: &[PoolIdentity],
    readers: &[PrincipalAccess],
    expected: &Expected,
) -> AccessReport {
    let expected_principal = expected_principal(pools, expected);
    let reader = |principal: &str| readers.iter().find(|reader| reader.principal_id.eq_ignore_ascii_case(principal));
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for pool in pools {
        for identity in &pool.identities {
            let access = reader(&identity.principal_id);
            let can_get = access
                .is_some_and(|access| access.grants.iter().any(|grant| !matches!(grant, Grant::Unverified { .. })));
            let expected_here = is_expected(expected, identity);
            let row = AccessRow {
                pool: pool.pool.clone(),
                identity: name_of(&identity.id),
                identity_id: identity.id.clone(),
                principal_id: identity.principal_id.clone(),
                kubelet: identity.kubelet,
                expected: expected_here,
                can_get,
                via: access.map(|access| access.grants.iter().map(describe).collect()).unwrap_or_default(),
                flagged: can_get && !expected_here,
            };
            if expected_here && !can_get {
                findings.push(format!(
                    "pool {}: identity {} ({}) should read the secret but cannot",
                    row.pool, row.identity, row.principal_id
                ));
            }
            if row.flagged {
                let what = if row.kubelet { "the kubelet identity" } else { "identity" };
                findings.push(format!(
                    "pool {}: {what} {} ({}) can read the secret but is not the configured identity",
                    row.pool, row.identity, row.principal_id
                ));
            }
            rows.push(row);
        }
    }
    if expected_principal.is_none() {
        let what = match expected {
            Expected::Kubelet => "the kubelet identity".to_string(),
            Expected::Identity(id) => format!("identity {id}"),
        };
        findings.push(format!("{what} runs on no Windows node pool of this cluster"));
    }
    let on_pools: Vec<&str> =
        pools.iter().flat_map(|pool| &pool.identities).map(|identity| identity.principal_id.as_str()).collect();
    let others = readers
        .iter()
        .filter(|reader| !on_pools.iter().any(|principal| principal.eq_ignore_ascii_case(&reader.principal_id)))
        .map(|reader| OtherReader {
            principal_id: reader.principal_id.clone(),
            via: reader.grants.iter().map(describe).collect(),
            over_broad: reader.over_broad,
        })
        .collect();
    AccessReport { secret, expected_principal, rows, others, findings }
}

impl CloudExecutor {
    /// The expected identity of a payload, by ARM id for a user-assigned one.
    pub(super) fn expected(&self, identity: &IdentityChoice) -> Expected {
        match identity {
            IdentityChoice::Kubelet => Expected::Kubelet,
            IdentityChoice::UserAssigned { resource_group, name } => {
                Expected::Identity(self.host_identity_ref(resource_group, name).id())
            }
            // Refused by validation before any executor runs; an id no pool carries.
            IdentityChoice::Unknown => Expected::Identity("unknown identity type".into()),
        }
    }

    pub(super) fn host_identity_ref(&self, resource_group: &str, name: &str) -> HostIdentityRef {
        HostIdentityRef {
            subscription_id: self.cluster.subscription_id.clone(),
            resource_group: resource_group.to_string(),
            name: name.to_string(),
            location: self.config.location.clone(),
        }
    }

    pub(super) async fn audit_access(
        &self,
        payload: &AuditAccess,
        progress: &Progress,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        progress.report(STEP_ACCESS_AUDIT, "reading the Windows pools' identities and the vault's grants");
        let pools = self.azure.windows_pool_identities(&self.cluster).await.map_err(azure_error)?;
        let report = self
            .access_report(
                &pools,
                &VaultRef::from(&payload.vault),
                &payload.secret_name,
                &self.expected(&payload.identity),
            )
            .await?;
        let observed = serde_json::to_value(&report).map_err(|err| ExecError::new("encode_failed", err.to_string()))?;
        Ok(vec![StepOutcome::unchanged(STEP_ACCESS_AUDIT, observed)])
    }

    /// The access report of this cluster for one secret, given its Windows pools' identities (read once by the caller).
    pub(super) async fn access_report(
        &self,
        pools: &[PoolIdentity],
        vault: &VaultRef,
        secret_name: &str,
        expected: &Expected,
    ) -> Result<AccessReport, ExecError> {
        let principal = expected_principal(pools, expected);
        let expected_ids: Vec<&str> = principal.as_deref().into_iter().collect();
        let readers = self.azure.secret_access(vault, secret_name, &expected_ids).await.map_err(azure_error)?;
        let secret = format!("{}/secrets/{secret_name}", vault.id());
        Ok(access_report(secret, pools, &readers, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure::AttachedIdentity;

    const KUBELET: &str = "/subscriptions/s/resourceGroups/mc_rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-agentpool";
    const POOL_MI: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gmsa-mi";

    fn identity(id: &str, principal: &str, kubelet: bool) -> AttachedIdentity {
        AttachedIdentity { id: id.into(), principal_id: principal.into(), client_id: format!("c-{principal}"), kubelet }
    }

    fn pools(with_pool_identity: bool) -> Vec<PoolIdentity> {
        let mut identities = vec![identity(KUBELET, "p-kubelet", true)];
        if with_pool_identity {
            identities.push(identity(POOL_MI, "p-pool", false));
        }
        vec![PoolIdentity { pool: "win1".into(), scale_set: "aks-win1-vmss".into(), identities }]
    }

    fn reader(principal: &str, over_broad: bool) -> PrincipalAccess {
        PrincipalAccess { principal_id: principal.into(), grants: vec![Grant::AccessPolicy], over_broad }
    }

    #[test]
    fn the_kubelet_identity_reading_when_a_pool_identity_is_configured_is_flagged() {
        let readers = vec![reader("p-kubelet", true), reader("p-pool", false)];
        let report = access_report("s".into(), &pools(true), &readers, &Expected::Identity(POOL_MI.to_uppercase()));
        assert_eq!(report.expected_principal.as_deref(), Some("p-pool"));
        let kubelet = report.rows.iter().find(|row| row.kubelet).unwrap();
        assert!(kubelet.can_get && kubelet.flagged && !kubelet.expected);
        let pool = report.rows.iter().find(|row| !row.kubelet).unwrap();
        assert!(pool.can_get && pool.expected && !pool.flagged);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert!(report.findings[0].contains("kubelet identity aks-agentpool"));
    }

    #[test]
    fn an_expected_identity_that_cannot_read_is_a_finding_and_strangers_are_listed() {
        let readers = vec![reader("someone-else", true)];
        let report = access_report("s".into(), &pools(false), &readers, &Expected::Kubelet);
        assert!(!report.rows[0].can_get);
        assert!(report.findings[0].contains("should read the secret but cannot"));
        assert_eq!(report.others.len(), 1);
        assert!(report.others[0].over_broad);
    }

    #[test]
    fn a_configured_identity_on_no_pool_is_a_finding() {
        let report = access_report("s".into(), &pools(false), &[], &Expected::Identity(POOL_MI.into()));
        assert_eq!(report.expected_principal, None);
        assert!(report.findings.iter().any(|finding| finding.contains("runs on no Windows node pool")));
    }

    #[test]
    fn all_as_configured_has_no_findings() {
        let report = access_report("s".into(), &pools(false), &[reader("p-kubelet", false)], &Expected::Kubelet);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert!(report.rows[0].can_get && report.rows[0].expected);
    }
}
