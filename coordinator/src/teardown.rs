//! Teardown of shared resources. Per-cluster teardown runs on the agents (`teardown` command);
//! what several clusters may share — the domain-user secret, a user-assigned identity, the gMSA
//! and the standard domain user — is the coordinator's business:
//!
//! 1. [`conflicts`] (pure) refuses a teardown while a cluster *outside* the selection still uses a
//!    resource the teardown would take from it: the secret or gMSA it deletes, or a user-assigned
//!    identity whose grant it revokes. The coordinator checks this before sending anything.
//! 2. [`delete_shared`] deletes the shared resources named in `delete`, once no cluster at all
//!    uses them, in reverse order of setup (secret, identity, gMSA, domain user); in dry run it
//!    only plans. The daemon runs it ([`crate::central::serve`], `fleet.ctl.teardown-shared`)
//!    when fleetctl asks, after every selected cluster's teardown succeeded.

use crate::record::{ClusterRecord, users_of};
use proto::StepOutcome;
use proto::command::{IdentityChoice, Teardown};
use proto::resources::{SharedResource, vault_id};
use std::collections::BTreeSet;

/// A shared resource still used by clusters the teardown does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub resource: SharedResource,
    pub users: Vec<String>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is still used by {}", self.resource, self.users.join(", "))
    }
}

/// The user-assigned identities (by id) that the payload's `identity` names on the target
/// clusters: the same resource group and name may be a different identity in each subscription.
pub fn target_identities(
    records: &[ClusterRecord],
    targets: &BTreeSet<String>,
    payload: &Teardown,
) -> Vec<SharedResource> {
    let IdentityChoice::UserAssigned { resource_group, name } = &payload.identity else { return Vec::new() };
    let suffix = format!(
        "/resourcegroups/{}/providers/microsoft.managedidentity/userassignedidentities/{}",
        resource_group.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    );
    let found: BTreeSet<SharedResource> = records
        .iter()
        .filter(|record| targets.contains(&record.cluster))
        .flat_map(|record| &record.in_use)
        .filter(|resource| matches!(resource, SharedResource::Identity { id } if id.ends_with(&suffix)))
        .cloned()
        .collect();
    found.into_iter().collect()
}

/// The shared resources the teardown deletes outright.
pub fn deleted_resources(payload: &Teardown) -> Vec<SharedResource> {
    let mut resources = Vec::new();
    if payload.delete.secret {
        resources.push(SharedResource::secret(&vault_id(&payload.vault), &payload.secret_name));
    }
    if let Some(account) = &payload.delete.gmsa {
        resources.push(SharedResource::gmsa(account));
    }
    resources
}

/// Every resource the teardown of `targets` would take from a cluster outside them.
pub fn conflicts(records: &[ClusterRecord], targets: &BTreeSet<String>, payload: &Teardown) -> Vec<Conflict> {
    let mut at_stake = deleted_resources(payload);
    at_stake.extend(target_identities(records, targets, payload));
    at_stake
        .into_iter()
        .filter_map(|resource| {
            let users = users_of(records, &resource, targets);
            (!users.is_empty()).then_some(Conflict { resource, users })
        })
        .collect()
}

/// Where the central steps act.
pub struct SharedTargets<'a> {
    pub azure: Option<&'a azure::Azure>,
    pub directory: Option<&'a dyn DirectoryDeletes>,
}

/// The Active Directory deletions the central teardown needs (implemented by `ad::LdapDirectory`).
pub trait DirectoryDeletes: Send + Sync {
    fn delete_gmsa<'a>(
        &'a self,
        account: &'a str,
        mode: proto::Mode,
    ) -> futures::future::BoxFuture<'a, Result<StepOutcome, String>>;
    fn delete_user<'a>(
        &'a self,
        account: &'a str,
        mode: proto::Mode,
    ) -> futures::future::BoxFuture<'a, Result<StepOutcome, String>>;
}

impl<D: ad::Directory + Send + Sync> DirectoryDeletes for D {
    fn delete_gmsa<'a>(
        &'a self,
        account: &'a str,
        mode: proto::Mode,
    ) -> futures::future::BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(async move {
            let name = ad::AccountName::gmsa(account).map_err(|err| err.to_string())?;
            ad::Directory::delete_gmsa(self, &name, mode).await.map_err(|err| err.to_string())
        })
    }

    fn delete_user<'a>(
        &'a self,
        account: &'a str,
        mode: proto::Mode,
    ) -> futures::future::BoxFuture<'a, Result<StepOutcome, String>> {
        Box::pin(async move {
            let name = ad::AccountName::new(account).map_err(|err| err.to_string())?;
            ad::Directory::delete_user(self, &name, mode).await.map_err(|err| err.to_string())
        })
    }
}

/// Why the central teardown stopped.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Some cluster still uses a resource to delete.
    #[error("refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InUse(Vec<Conflict>),
    /// A deletion needs an adapter that was not configured.
    #[error("{what} needs {needs}: configure the coordinator's `central` section")]
    NotConfigured { what: &'static str, needs: &'static str },
    /// A deletion failed; the steps before it are in `completed`.
    #[error("{step} failed: {message}")]
    Step { step: &'static str, message: String, completed: Vec<StepOutcome> },
}

/// Deletes (or, in dry run, plans deleting) the shared resources named in `payload.delete`,
/// refusing while any cluster still uses one. `identities` are the user-assigned identities to
/// delete (from [`target_identities`], computed before the clusters released them).
pub async fn delete_shared(
    targets: &SharedTargets<'_>,
    records: &[ClusterRecord],
    payload: &Teardown,
    identities: &[(String, String, String)],
) -> Result<Vec<StepOutcome>, SharedError> {
    let mode = payload.mode;
    let mut at_stake = deleted_resources(payload);
    if payload.delete.identity {
        at_stake.extend(
            identities
                .iter()
                .map(|(sub, rg, name)| SharedResource::identity(&proto::resources::identity_id(sub, rg, name))),
        );
    }
    let nobody = BTreeSet::new();
    if mode.applies() {
        let in_use: Vec<Conflict> = at_stake
            .into_iter()
            .filter_map(|resource| {
                let users = users_of(records, &resource, &nobody);
                (!users.is_empty()).then_some(Conflict { resource, users })
            })
            .collect();
        if !in_use.is_empty() {
            return Err(SharedError::InUse(in_use));
        }
    }
    let mut done = Vec::new();
    let step_error = |step: &'static str, done: &Vec<StepOutcome>| {
        let completed = done.clone();
        move |message: String| SharedError::Step { step, message, completed }
    };
    let azure = || {
        targets
            .azure
            .ok_or(SharedError::NotConfigured { what: "deleting Azure resources", needs: "an Azure credential" })
    };
    if payload.delete.secret {
        let vault = azure::VaultRef::from(&payload.vault);
        let outcome = azure()?
            .delete_domain_user_secret(&vault, Some(&payload.secret_name), mode)
            .await
            .map_err(|err| step_error("secret-delete", &done)(err.to_string()))?;
        done.push(outcome);
    }
    if payload.delete.identity {
        for (subscription_id, resource_group, name) in identities {
            let identity = azure::HostIdentityRef {
                subscription_id: subscription_id.clone(),
                resource_group: resource_group.clone(),
                name: name.clone(),
                location: String::new(),
            };
            let outcome = azure()?
                .delete_host_identity(&identity, mode)
                .await
                .map_err(|err| step_error("identity-delete", &done)(err.to_string()))?;
            done.push(outcome);
        }
    }
    let directory = || {
        targets.directory.ok_or(SharedError::NotConfigured { what: "deleting AD accounts", needs: "an AD connection" })
    };
    if let Some(account) = &payload.delete.gmsa {
        let outcome = directory()?.delete_gmsa(account, mode).await.map_err(step_error("gmsa-delete", &done))?;
        done.push(outcome);
    }
    if let Some(account) = &payload.delete.domain_user {
        let outcome = directory()?.delete_user(account, mode).await.map_err(step_error("user-delete", &done))?;
        done.push(outcome);
    }
    Ok(done)
}

/// Splits an identity id into (subscription, resource group, name).
pub fn identity_parts(resource: &SharedResource) -> Option<(String, String, String)> {
    let SharedResource::Identity { id } = resource else { return None };
    let segments: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [
            "subscriptions",
            sub,
            "resourcegroups",
            rg,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
            name,
        ] => Some((sub.to_string(), rg.to_string(), name.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::command::{SharedDeletes, VaultRef};
    use proto::{CommandId, CommandResult, Mode, ResultStatus};

    fn record(cluster: &str, in_use: Vec<SharedResource>) -> ClusterRecord {
        ClusterRecord {
            cluster: cluster.into(),
            last_result: CommandResult {
                schema: proto::version::SchemaVersion::CURRENT,
                command_id: CommandId("c".into()),
                rollout_id: None,
                cluster: cluster.into(),
                kind: "grant-identity".into(),
                status: ResultStatus::Succeeded,
                steps: vec![],
                attempt: 1,
                finished_at: time::OffsetDateTime::UNIX_EPOCH,
                agent_version: "t".into(),
                resources: vec![],
            },
            results_recorded: 1,
            in_use: in_use.into_iter().collect(),
            parts: Default::default(),
            drift: vec![],
        }
    }

    fn payload(identity: IdentityChoice, delete: SharedDeletes) -> Teardown {
        Teardown {
            spec_name: "spec".into(),
            owner: "default".into(),
            vault: VaultRef { subscription_id: "s".into(), resource_group: "rg-kv".into(), name: "kv1".into() },
            secret_name: "GMSADomainUserCred".into(),
            identity,
            disable_gmsa: true,
            delete,
            mode: Mode::Apply,
        }
    }

    fn secret() -> SharedResource {
        SharedResource::secret(
            &vault_id(&VaultRef { subscription_id: "s".into(), resource_group: "rg-kv".into(), name: "kv1".into() }),
            "GMSADomainUserCred",
        )
    }

    fn mi(sub: &str) -> SharedResource {
        SharedResource::identity(&proto::resources::identity_id(sub, "rg", "gmsa-mi"))
    }

    #[test]
    fn deleting_a_secret_another_cluster_uses_is_a_conflict_naming_it() {
        let records = vec![record("a", vec![secret()]), record("b", vec![secret()]), record("c", vec![])];
        let targets: BTreeSet<String> = ["a".to_string()].into();
        let delete = SharedDeletes { secret: true, ..Default::default() };
        let found = conflicts(&records, &targets, &payload(IdentityChoice::Kubelet, delete));
        assert_eq!(found, [Conflict { resource: secret(), users: vec!["b".into()] }]);
        assert!(found[0].to_string().contains("still used by b"));
        let all: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        assert!(
            conflicts(
                &records,
                &all,
                &payload(IdentityChoice::Kubelet, SharedDeletes { secret: true, ..Default::default() })
            )
            .is_empty()
        );
    }

    #[test]
    fn keeping_the_secret_lets_one_cluster_go_but_a_shared_identity_does_not() {
        let records = vec![
            record("a", vec![secret(), mi("s1")]),
            record("b", vec![secret(), mi("s1")]),
            record("x", vec![mi("s2")]),
        ];
        let targets: BTreeSet<String> = ["a".to_string()].into();
        assert!(conflicts(&records, &targets, &payload(IdentityChoice::Kubelet, SharedDeletes::default())).is_empty());
        let user_assigned = IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "gmsa-mi".into() };
        let found = conflicts(&records, &targets, &payload(user_assigned, SharedDeletes::default()));
        assert_eq!(
            found,
            [Conflict { resource: mi("s1"), users: vec!["b".into()] }],
            "same name in another subscription is another identity"
        );
        assert_eq!(identity_parts(&mi("s1")), Some(("s1".into(), "rg".into(), "gmsa-mi".into())));
    }
}
