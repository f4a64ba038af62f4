//! Shared resources a cluster uses (schema 1.2). An agent names them in a successful result —
//! `grant-identity` starts using the secret (and a user-assigned identity), `apply-credspec` the
//! gMSA, a `teardown` that applied stops using them — and the coordinator keeps, per cluster, the
//! set in use. Teardown of a shared resource is refused while a cluster outside the selection
//! still uses it.

use crate::command::{Command, IdentityChoice, VaultRef};
use crate::outcome::{Mode, StepOutcome};
use serde::{Deserialize, Serialize};

/// A resource several clusters may share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SharedResource {
    /// A Key Vault secret: the vault's ARM id (lower case) and the secret's name.
    Secret { vault_id: String, name: String },
    /// A user-assigned managed identity by ARM id (lower case).
    Identity { id: String },
    /// A gMSA by account name (without `$`), as credspecs name it.
    Gmsa { account: String },
    /// A resource type a newer agent reports that this build does not know: kept out of the
    /// in-use bookkeeping (see `proto::resources::ResourceUse`'s readers).
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for SharedResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SharedResource::Secret { vault_id, name } => write!(f, "secret {vault_id}/secrets/{name}"),
            SharedResource::Identity { id } => write!(f, "identity {id}"),
            SharedResource::Gmsa { account } => write!(f, "gMSA {account}"),
            SharedResource::Unknown => f.write_str("a resource of an unknown type"),
        }
    }
}

impl SharedResource {
    /// A secret, its vault id normalised to lower case (ARM ids compare case-insensitively).
    pub fn secret(vault_id: &str, name: &str) -> Self {
        SharedResource::Secret { vault_id: vault_id.to_ascii_lowercase(), name: name.to_string() }
    }

    /// A user-assigned identity, its id normalised to lower case.
    pub fn identity(id: &str) -> Self {
        SharedResource::Identity { id: id.to_ascii_lowercase() }
    }

    /// A gMSA, its account name without `$` and in lower case (sAMAccountName is case-insensitive).
    pub fn gmsa(account: &str) -> Self {
        SharedResource::Gmsa { account: account.trim_end_matches('$').to_ascii_lowercase() }
    }
}

/// A change in what a cluster uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUse {
    pub resource: SharedResource,
    /// True: the cluster now uses it; false: it no longer does.
    pub in_use: bool,
}

/// Where a teardown's `credspec-remove` step notes the gMSA the removed credspec named.
pub const OBSERVED_GMSA: &str = "gmsa_account";

/// The ARM id of a vault.
pub fn vault_id(vault: &VaultRef) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}",
        vault.subscription_id, vault.resource_group, vault.name
    )
}

/// The ARM id of a user-assigned identity in the cluster's subscription.
pub fn identity_id(subscription_id: &str, resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// What a command that succeeded on a cluster in `subscription_id` started or stopped using:
/// `grant-identity` uses the secret (and a user-assigned identity), `apply-credspec` the gMSA, an
/// applied `teardown` releases the secret, the identity and the gMSA its removed credspec named
/// (noted by the agent in `steps` under [`OBSERVED_GMSA`]). A dry run (of any of them) changes
/// nothing, and neither does a mode this build does not know.
pub fn uses_of(command: &Command, subscription_id: &str, steps: &[StepOutcome]) -> Vec<ResourceUse> {
    let identity = |choice: &IdentityChoice| match choice {
        IdentityChoice::Kubelet | IdentityChoice::Unknown => None,
        IdentityChoice::UserAssigned { resource_group, name } => {
            Some(SharedResource::identity(&identity_id(subscription_id, resource_group, name)))
        }
    };
    let (resources, in_use) = match command {
        // A dry run (schema 1.3) wrote nothing, so it starts using nothing.
        Command::GrantIdentity(payload) if payload.mode == Mode::Apply => {
            let mut used = vec![SharedResource::secret(&vault_id(&payload.vault), &payload.secret_name)];
            used.extend(identity(&payload.identity));
            (used, true)
        }
        Command::ApplyCredspec(payload) if payload.mode == Mode::Apply => {
            (vec![SharedResource::gmsa(&payload.gmsa_account)], true)
        }
        Command::Teardown(payload) if payload.mode == Mode::Apply => {
            let mut released = vec![SharedResource::secret(&vault_id(&payload.vault), &payload.secret_name)];
            released.extend(identity(&payload.identity));
            released.extend(
                steps
                    .iter()
                    .filter_map(|step| step.observed.get(OBSERVED_GMSA).and_then(|value| value.as_str()))
                    .map(SharedResource::gmsa),
            );
            (released, false)
        }
        _ => (Vec::new(), true),
    };
    resources.into_iter().map(|resource| ResourceUse { resource, in_use }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{GrantIdentity, SharedDeletes, Teardown};

    fn vault() -> VaultRef {
        VaultRef { subscription_id: "s-kv".into(), resource_group: "rg-kv".into(), name: "kv1".into() }
    }

    fn teardown(mode: Mode) -> Command {
        Command::Teardown(Teardown {
            spec_name: "spec".into(),
            owner: "default".into(),
            vault: vault(),
            secret_name: "GMSADomainUserCred".into(),
            identity: IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "gmsa-mi".into() },
            disable_gmsa: true,
            delete: SharedDeletes::default(),
            mode,
        })
    }

    #[test]
    fn a_grant_uses_the_secret_and_the_identity_and_an_applied_teardown_releases_them() {
        let grant = Command::GrantIdentity(GrantIdentity {
            vault: vault(),
            secret_name: "GMSADomainUserCred".into(),
            identity: IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "gmsa-mi".into() },
            mode: Mode::Apply,
        });
        let used = uses_of(&grant, "s1", &[]);
        assert_eq!(used.len(), 2);
        assert!(used.iter().all(|u| u.in_use));
        assert!(matches!(&used[1].resource, SharedResource::Identity { id } if id.starts_with("/subscriptions/s1/")));
        let removed = StepOutcome::unchanged("credspec-remove", serde_json::json!({ OBSERVED_GMSA: "WebApp01" }));
        let released = uses_of(&teardown(Mode::Apply), "s1", std::slice::from_ref(&removed));
        assert!(released.iter().all(|u| !u.in_use));
        let mut resources: Vec<SharedResource> = released.into_iter().map(|u| u.resource).collect();
        resources.sort();
        let mut expected: Vec<SharedResource> = used.into_iter().map(|u| u.resource).collect();
        expected.push(SharedResource::gmsa("webapp01"));
        expected.sort();
        assert_eq!(resources, expected);
        assert!(uses_of(&teardown(Mode::DryRun), "s1", &[removed]).is_empty(), "a dry run releases nothing");
    }

    #[test]
    fn a_dry_run_grant_or_credspec_apply_uses_nothing() {
        for mode in [Mode::DryRun, Mode::Unknown] {
            let grant = Command::GrantIdentity(GrantIdentity {
                vault: vault(),
                secret_name: "GMSADomainUserCred".into(),
                identity: IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "gmsa-mi".into() },
                mode,
            });
            assert!(uses_of(&grant, "s1", &[]).is_empty(), "{mode:?}");
            let mut apply: crate::command::ApplyCredspec = serde_json::from_value(serde_json::json!({
                "spec_name": "spec", "gmsa_account": "WebApp01", "netbios_domain": "CONTOSO",
                "dns_domain": "contoso.com", "dns_tree_root": "contoso.com", "domain_guid": "g",
                "domain_sid": "S-1-5-21-1-2-3", "secret_uri": "https://kv.vault.azure.net/secrets/s",
            }))
            .unwrap();
            assert_eq!(uses_of(&Command::ApplyCredspec(apply.clone()), "s1", &[]).len(), 1, "apply uses the gMSA");
            apply.mode = mode;
            assert!(uses_of(&Command::ApplyCredspec(apply), "s1", &[]).is_empty(), "{mode:?}");
        }
    }

    #[test]
    fn names_compare_case_insensitively_and_round_trip() {
        assert_eq!(
            SharedResource::secret("/subscriptions/S/RG/kv", "x"),
            SharedResource::secret("/subscriptions/s/rg/KV", "x")
        );
        assert_eq!(SharedResource::gmsa("WebApp01$"), SharedResource::gmsa("webapp01"));
        let used = ResourceUse { resource: SharedResource::identity("/Sub/MI"), in_use: true };
        let json = serde_json::to_value(&used).unwrap();
        assert_eq!(json["resource"]["type"], "identity");
        assert_eq!(serde_json::from_value::<ResourceUse>(json).unwrap(), used);
    }
}
