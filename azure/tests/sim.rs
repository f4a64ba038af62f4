//! The adapter against the Azure simulator (`azsim`): every operation of issue 3 end to end over
//! HTTPS, through azure_core's pipeline, azure_identity's `ClientSecretCredential` and the
//! official `SecretClient`. Assertions are on the simulator's state and mutation log (effects),
//! not on the calls made.

use azsim::{
    AccessPolicyEntry, AzureSim, ClusterSeed, FaultKind, FaultRule, Faults, Frequency, GmsaProfile, Mutation,
    Operation as SimOp, Permissions, SimConfig, Target, VaultSeed,
};
use azure::{
    AttachedIdentity, Azure, AzureConfig, ClusterRef, CredentialConfig, ErrorKind, GmsaSettings, HostIdentityRef,
    Operation, RetrySettings, VaultRef,
};
use gmsa::SecretString;
use proto::outcome::{Change, Mode, StepOutcome};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
const RESOURCE_GROUP: &str = "rg-fleet";
const AGENT_CLIENT_ID: &str = "agent-client";
const AGENT_OBJECT_ID: &str = "11111111-2222-3333-4444-555555555555";
const AGENT_SECRET: &str = "agent-client-secret";

/// A simulator plus an adapter logged in to it as the agent's service principal.
struct World {
    sim: AzureSim,
    azure: Azure,
}

fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn mk_retry() -> RetrySettings {
    RetrySettings {
        max_attempts: 10,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(2),
        in_progress_delay: Duration::from_millis(250),
        per_try_timeout: Duration::from_secs(10),
        max_precondition_retries: 5,
    }
}

fn mk_config(sim: &AzureSim) -> AzureConfig {
    let credential = CredentialConfig::ClientSecret {
        tenant_id: sim.tenant_id(),
        client_id: AGENT_CLIENT_ID.to_string(),
        secret: SecretString::new(AGENT_SECRET),
    };
    // Public-cloud defaults (management.azure.com, login.microsoftonline.com, vaults by their
    // .vault.azure.net names, the challenge-resource check on), reached through the
    // simulator's proxy, which serves those names with certificates from its CA.
    let mut config = AzureConfig::new(credential);
    config.extra_ca_pem = Some(sim.ca_pem());
    config.https_proxy = Some(sim.https_proxy());
    config.retry = mk_retry();
    config.lro_poll_interval = Duration::from_millis(200);
    config.lro_timeout = Duration::from_secs(30);
    config
}

async fn mk_world() -> World {
    install_ring();
    let sim =
        AzureSim::start(SimConfig { vault_dns_names: true, ..SimConfig::default() }).await.expect("simulator starts");
    sim.add_service_principal(AGENT_CLIENT_ID, AGENT_SECRET, AGENT_OBJECT_ID);
    sim.add_resource_group(SUBSCRIPTION, RESOURCE_GROUP);
    let azure = Azure::connect(mk_config(&sim)).expect("adapter connects");
    World { sim, azure }
}

fn mk_cluster(world: &World, name: &str, seed: ClusterSeed) -> (ClusterRef, azsim::SeededCluster) {
    let seeded = world.sim.add_managed_cluster(SUBSCRIPTION, RESOURCE_GROUP, name, seed);
    (ClusterRef::new(SUBSCRIPTION, RESOURCE_GROUP, name), seeded)
}

async fn mk_vault(world: &World, name: &str, seed: VaultSeed) -> (VaultRef, azsim::SeededVault) {
    let seeded = world.sim.add_vault(SUBSCRIPTION, RESOURCE_GROUP, name, seed).await.expect("vault seeded");
    (VaultRef::new(SUBSCRIPTION, RESOURCE_GROUP, name), seeded)
}

fn mk_policy(tenant_id: &str, object_id: &str, secrets: &[&str]) -> AccessPolicyEntry {
    AccessPolicyEntry {
        tenant_id: tenant_id.to_string(),
        object_id: object_id.to_string(),
        application_id: None,
        permissions: Permissions { secrets: secrets.iter().map(|p| p.to_string()).collect(), ..Permissions::default() },
    }
}

fn mk_settings(dns: &str, root: &str) -> GmsaSettings {
    GmsaSettings { dns_server: Some(dns.to_string()), root_domain_name: Some(root.to_string()) }
}

fn writes_of(mutations: &[Mutation], operation: SimOp) -> usize {
    mutations.iter().filter(|mutation| mutation.operation == operation).count()
}

fn no_faults() -> Faults {
    Faults { arm_budget: azsim::ArmBudget::unlimited(), ..Faults::default() }
}

mod cluster_update {
    use super::*;

    #[tokio::test]
    async fn enable_writes_once_then_reports_unchanged() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-enable", ClusterSeed::windows());

        let first = world.azure.enable_gmsa(&cluster, mk_settings("10.0.0.4", "contoso.com")).await.unwrap();
        assert_eq!(first.change, Change::Changed);
        assert_eq!(first.step, "cluster-update");
        let profile = world.sim.gmsa_profile(&seeded.id).unwrap();
        assert_eq!(profile.enabled, Some(true));
        assert_eq!(profile.dns_server.as_deref(), Some("10.0.0.4"));
        assert_eq!(profile.root_domain_name.as_deref(), Some("contoso.com"));

        let second = world.azure.enable_gmsa(&cluster, mk_settings("10.0.0.4", "contoso.com")).await.unwrap();
        assert_eq!(second.change, Change::Unchanged);
        assert!(second.diff.is_empty());
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::ClusterPut), 1);
    }

    #[tokio::test]
    async fn enable_on_an_already_enabled_cluster_writes_nothing() {
        let world = mk_world().await;
        let enabled = GmsaProfile {
            enabled: Some(true),
            dns_server: Some("10.0.0.4".to_string()),
            root_domain_name: Some("contoso.com".to_string()),
        };
        let (cluster, _) = mk_cluster(&world, "aks-enabled", ClusterSeed::windows().with_gmsa(enabled));
        let outcome = world.azure.enable_gmsa(&cluster, mk_settings("10.0.0.4", "contoso.com")).await.unwrap();
        assert_eq!(outcome.change, Change::Unchanged);
        assert!(world.sim.mutations().is_empty(), "no write of any kind: {:?}", world.sim.mutations());
    }

    #[tokio::test]
    async fn disable_works_and_is_idempotent() {
        let world = mk_world().await;
        let enabled = GmsaProfile { enabled: Some(true), ..GmsaProfile::default() };
        let (cluster, seeded) = mk_cluster(&world, "aks-disable", ClusterSeed::windows().with_gmsa(enabled));

        let first = world.azure.disable_gmsa(&cluster).await.unwrap();
        assert_eq!(first.change, Change::Changed);
        assert_eq!(world.sim.gmsa_profile(&seeded.id).unwrap().enabled, Some(false));
        let second = world.azure.disable_gmsa(&cluster).await.unwrap();
        assert_eq!(second.change, Change::Unchanged);
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::ClusterPut), 1);
    }

    #[tokio::test]
    async fn invalid_settings_and_clusters_without_windows_are_reported_without_writes() {
        let world = mk_world().await;
        let (linux, _) = mk_cluster(&world, "aks-linux", ClusterSeed::linux_only());
        let error = world.azure.enable_gmsa(&linux, GmsaSettings::default()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Validation);
        assert!(error.to_string().contains("windowsProfile"), "{error}");
        assert!(error.resource().ends_with("/managedClusters/aks-linux"));

        let (windows, _) = mk_cluster(&world, "aks-half", ClusterSeed::windows());
        let half = GmsaSettings { dns_server: Some("10.0.0.4".to_string()), root_domain_name: None };
        let error = world.azure.enable_gmsa(&windows, half).await.unwrap_err();
        assert_eq!((error.kind(), error.operation()), (ErrorKind::Validation, Operation::ValidateSettings));
        assert!(error.to_string().contains("gmsa_root_domain_name"), "{error}");

        let missing = ClusterRef::new(SUBSCRIPTION, RESOURCE_GROUP, "aks-missing");
        let error = world.azure.enable_gmsa(&missing, GmsaSettings::default()).await.unwrap_err();
        assert_eq!((error.kind(), error.operation()), (ErrorKind::NotFound, Operation::GetCluster));
        assert!(world.sim.mutations().is_empty());
    }

    #[tokio::test]
    async fn a_concurrent_operation_gets_409_and_the_update_still_converges() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-busy", ClusterSeed::windows());
        let busy_for = Duration::from_millis(1500);
        world.sim.begin_cluster_operation(&seeded.id, busy_for).unwrap();

        let started = Instant::now();
        let outcome = world.azure.enable_gmsa(&cluster, mk_settings("10.0.0.4", "contoso.com")).await.unwrap();
        assert_eq!(outcome.change, Change::Changed);
        assert!(started.elapsed() >= busy_for, "the PUT can only succeed after the other operation ended");
        assert_eq!(world.sim.gmsa_profile(&seeded.id).unwrap().enabled, Some(true));
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::ClusterPut), 1);
    }

    #[tokio::test]
    async fn an_etag_race_re_reads_and_re_diffs() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-race", ClusterSeed::windows());
        // Our PUT is held back long enough for another writer to read, write and finish.
        world.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Only(vec![SimOp::ClusterPut]),
                kind: FaultKind::Latency(Duration::from_millis(2500)),
                frequency: Frequency::Next(1),
            }],
            ..no_faults()
        });
        let ours = {
            let cluster = cluster.clone();
            let config = mk_config(&world.sim);
            tokio::spawn(async move {
                let azure = Azure::connect(config).unwrap();
                azure.enable_gmsa(&cluster, mk_settings("10.0.0.4", "contoso.com")).await
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let theirs = world.azure.enable_gmsa(&cluster, mk_settings("10.9.9.9", "contoso.com")).await.unwrap();
        assert_eq!(theirs.change, Change::Changed);

        let ours = ours.await.unwrap().unwrap();
        assert_eq!(ours.change, Change::Changed);
        let dns_change =
            ours.diff.iter().find(|change| change.path.ends_with("/gmsaProfile/dnsServer")).expect("re-diffed");
        assert_eq!(dns_change.before, Some(serde_json::json!("10.9.9.9")), "diff is against the re-read cluster");
        assert_eq!(world.sim.gmsa_profile(&seeded.id).unwrap().dns_server.as_deref(), Some("10.0.0.4"));
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::ClusterPut), 2);
    }

    #[tokio::test]
    async fn a_failed_operation_is_reported_with_the_arm_error() {
        let world = mk_world().await;
        let (cluster, _) = mk_cluster(&world, "aks-fails", ClusterSeed::windows());
        world.sim.set_faults(Faults { fail_next_cluster_operations: 1, ..no_faults() });
        let error = world.azure.enable_gmsa(&cluster, GmsaSettings::default()).await.unwrap_err();
        assert_eq!((error.kind(), error.operation()), (ErrorKind::Failed, Operation::PollOperation));
        assert!(error.detail().contains("Failed"), "{error}");
    }
}

mod resilience {
    use super::*;

    #[tokio::test]
    async fn a_429_storm_converges_within_the_retry_after_schedule() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-throttled", ClusterSeed::windows());
        let storm = 3;
        world.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Arm,
                kind: FaultKind::Throttle { retry_after_secs: 1 },
                frequency: Frequency::Next(storm),
            }],
            ..no_faults()
        });
        let started = Instant::now();
        let outcome = world.azure.enable_gmsa(&cluster, GmsaSettings::default()).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(outcome.change, Change::Changed);
        assert_eq!(world.sim.gmsa_profile(&seeded.id).unwrap().enabled, Some(true));
        // Each 429 is waited out for its Retry-After (plus at most 10% jitter), and no longer.
        assert!(elapsed >= Duration::from_secs(u64::from(storm)), "Retry-After honoured: {elapsed:?}");
        let schedule = Duration::from_millis(1100 * u64::from(storm));
        let lro_allowance = Duration::from_secs(4);
        assert!(elapsed <= schedule + lro_allowance, "converged within the schedule: {elapsed:?}");
    }

    #[tokio::test]
    async fn endless_throttling_ends_in_a_throttled_error_naming_the_call() {
        let world = mk_world().await;
        let (cluster, _) = mk_cluster(&world, "aks-storm", ClusterSeed::windows());
        world.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Only(vec![SimOp::ClusterGet]),
                kind: FaultKind::Throttle { retry_after_secs: 0 },
                frequency: Frequency::Always,
            }],
            ..no_faults()
        });
        let error = world.azure.enable_gmsa(&cluster, GmsaSettings::default()).await.unwrap_err();
        assert_eq!((error.kind(), error.operation()), (ErrorKind::Throttled, Operation::GetCluster));
        assert!(error.resource().ends_with("/managedClusters/aks-storm"));
        assert!(world.sim.mutations().is_empty());
    }

    #[tokio::test]
    async fn server_errors_are_retried() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-5xx", ClusterSeed::windows());
        world.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Arm,
                kind: FaultKind::ServerError { status: 503 },
                frequency: Frequency::Next(2),
            }],
            ..no_faults()
        });
        let outcome = world.azure.enable_gmsa(&cluster, GmsaSettings::default()).await.unwrap();
        assert_eq!(outcome.change, Change::Changed);
        assert_eq!(world.sim.gmsa_profile(&seeded.id).unwrap().enabled, Some(true));
    }

    #[tokio::test]
    async fn a_hanging_call_times_out_per_try() {
        let world = mk_world().await;
        let (cluster, _) = mk_cluster(&world, "aks-slow", ClusterSeed::windows());
        world.sim.set_faults(Faults {
            rules: vec![FaultRule {
                target: Target::Only(vec![SimOp::ClusterGet]),
                kind: FaultKind::Latency(Duration::from_secs(30)),
                frequency: Frequency::Always,
            }],
            ..no_faults()
        });
        let mut config = mk_config(&world.sim);
        config.retry.per_try_timeout = Duration::from_millis(200);
        config.retry.max_attempts = 2;
        let azure = Azure::connect(config).unwrap();
        let error = azure.enable_gmsa(&cluster, GmsaSettings::default()).await.unwrap_err();
        assert_eq!((error.kind(), error.operation()), (ErrorKind::Timeout, Operation::GetCluster));
    }
}

mod vault_create {
    use super::*;
    use azure::VaultSpec;

    fn mk_spec(world: &World, rbac: bool) -> VaultSpec {
        VaultSpec { location: "westeurope".into(), tenant_id: world.sim.tenant_id(), rbac, writer_object_id: None }
    }

    #[tokio::test]
    async fn an_absent_vault_is_created_once_across_repeated_runs() {
        let world = mk_world().await;
        let vault = VaultRef::new(SUBSCRIPTION, RESOURCE_GROUP, "kv-new-gmsa");
        let first = world.azure.ensure_vault(&vault, &mk_spec(&world, false)).await.unwrap();
        assert!(first.is_changed());
        let created = world.sim.vault(&vault.id()).expect("the simulator holds the vault");
        assert_eq!(created["properties"]["enableRbacAuthorization"], false);
        let writes = world.sim.mutations().len();
        for _ in 0..2 {
            let again = world.azure.ensure_vault(&vault, &mk_spec(&world, false)).await.unwrap();
            assert!(!again.is_changed());
        }
        assert_eq!(world.sim.mutations().len(), writes, "no write after the first run");
    }

    #[tokio::test]
    async fn an_existing_vault_keeps_its_mode_and_policies() {
        let world = mk_world().await;
        let tenant = world.sim.tenant_id();
        let other = mk_policy(&tenant, "99999999-0000-0000-0000-000000000000", &["get", "list"]);
        let (vault, _) = mk_vault(
            &world,
            "kv-shared",
            VaultSeed { enable_rbac_authorization: true, access_policies: vec![other], ..VaultSeed::default() },
        )
        .await;
        let outcome = world.azure.ensure_vault(&vault, &mk_spec(&world, false)).await.unwrap();
        assert!(!outcome.is_changed());
        assert_eq!(outcome.observed["enableRbacAuthorization"], true);
        assert!(world.sim.mutations().is_empty(), "{:?}", world.sim.mutations());
        assert_eq!(world.sim.access_policies(&vault.id()).len(), 1);
    }
}

mod access_audit {
    use super::*;

    const TEAM: &str = "aaaaaaaa-0000-0000-0000-00000000000a";
    const READER: &str = "bbbbbbbb-0000-0000-0000-00000000000b";
    const ELSEWHERE: &str = "cccccccc-0000-0000-0000-00000000000c";
    const READER_ROLE: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";

    #[tokio::test]
    async fn rbac_vault_reports_vault_and_resource_group_grants_and_flags_the_unexpected_one() {
        let world = mk_world().await;
        let (_, seeded) = mk_cluster(&world, "aks-audit", ClusterSeed::windows());
        let (vault, _) =
            mk_vault(&world, "kv-audit", VaultSeed { enable_rbac_authorization: true, ..VaultSeed::default() }).await;
        let kubelet = seeded.kubelet.object_id.clone();
        let resource_group = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}");
        world.sim.add_role_assignment(&vault.id(), &kubelet, azsim::KEY_VAULT_SECRETS_USER);
        world.sim.add_role_assignment(&resource_group, TEAM, azsim::KEY_VAULT_SECRETS_OFFICER);
        world.sim.add_role_assignment(&format!("/subscriptions/{SUBSCRIPTION}"), READER, READER_ROLE);
        world.sim.add_resource_group(SUBSCRIPTION, "rg-elsewhere");
        world.sim.add_role_assignment(
            &format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-elsewhere"),
            ELSEWHERE,
            azsim::KEY_VAULT_SECRETS_USER,
        );
        let access = world.azure.secret_access(&vault, "GMSADomainUserCred", &[&kubelet]).await.unwrap();
        let found: Vec<(String, bool)> = access.iter().map(|p| (p.principal_id.clone(), p.over_broad)).collect();
        let mut expected = vec![(TEAM.to_string(), true), (kubelet.to_ascii_lowercase(), false)];
        expected.sort();
        assert_eq!(found, expected, "sorted by principal id; Reader and the other resource group do not count");
    }

    #[tokio::test]
    async fn access_policy_vault_reports_policies_only() {
        let world = mk_world().await;
        let tenant = world.sim.tenant_id();
        let policies = vec![
            mk_policy(&tenant, "pool", &["get"]),
            mk_policy(&tenant, TEAM, &["all"]),
            mk_policy(&tenant, READER, &["set"]),
        ];
        let (vault, _) =
            mk_vault(&world, "kv-audit-ap", VaultSeed { access_policies: policies, ..VaultSeed::default() }).await;
        world.sim.add_role_assignment(&vault.id(), ELSEWHERE, azsim::KEY_VAULT_SECRETS_USER);
        let access = world.azure.secret_access(&vault, "GMSADomainUserCred", &["pool"]).await.unwrap();
        let found: Vec<(&str, bool)> = access.iter().map(|p| (p.principal_id.as_str(), p.over_broad)).collect();
        assert_eq!(found, [(TEAM, true), ("pool", false)]);
    }
}

mod vault_grant {
    use super::*;

    #[tokio::test]
    async fn access_policy_vault_ends_with_one_grant_and_keeps_others() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-ap", ClusterSeed::windows());
        let tenant = world.sim.tenant_id();
        let other = mk_policy(&tenant, "99999999-0000-0000-0000-000000000000", &["get", "list", "set"]);
        let (vault, seeded_vault) =
            mk_vault(&world, "kv-ap", VaultSeed { access_policies: vec![other.clone()], ..VaultSeed::default() }).await;

        let first = world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap();
        assert_eq!((first.step.as_str(), first.change), ("vault-grant", Change::Changed));
        for _ in 0..2 {
            let again = world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap();
            assert_eq!(again.change, Change::Unchanged);
        }
        let policies = world.sim.access_policies(&seeded_vault.id);
        let kubelet: Vec<&AccessPolicyEntry> =
            policies.iter().filter(|policy| policy.object_id.eq_ignore_ascii_case(&seeded.kubelet.object_id)).collect();
        assert_eq!(kubelet.len(), 1, "{policies:?}");
        assert!(kubelet[0].permissions.secrets.iter().any(|p| p.eq_ignore_ascii_case("get")));
        assert!(policies.contains(&other), "others' policy untouched: {policies:?}");
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::AccessPolicyUpdate), 1);
    }

    #[tokio::test]
    async fn rbac_vault_ends_with_one_role_assignment() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-rbac", ClusterSeed::windows());
        let (vault, seeded_vault) =
            mk_vault(&world, "kv-rbac", VaultSeed { enable_rbac_authorization: true, ..VaultSeed::default() }).await;

        let first = world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap();
        assert_eq!(first.change, Change::Changed);
        for _ in 0..2 {
            assert_eq!(world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap().change, Change::Unchanged);
        }
        let grants: Vec<_> = world
            .sim
            .role_assignments()
            .into_iter()
            .filter(|assignment| {
                assignment.principal_id.eq_ignore_ascii_case(&seeded.kubelet.object_id)
                    && assignment.scope.eq_ignore_ascii_case(&seeded_vault.id)
            })
            .collect();
        assert_eq!(grants.len(), 1, "{grants:?}");
        assert!(grants[0].role_definition_id.ends_with(azsim::KEY_VAULT_SECRETS_USER));
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::RoleAssignmentPut), 1);
    }

    #[tokio::test]
    async fn an_equivalent_assignment_under_another_name_counts_as_granted() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-rbac2", ClusterSeed::windows());
        let (vault, seeded_vault) =
            mk_vault(&world, "kv-rbac2", VaultSeed { enable_rbac_authorization: true, ..VaultSeed::default() }).await;
        world.sim.add_role_assignment(&seeded_vault.id, &seeded.kubelet.object_id, azsim::KEY_VAULT_SECRETS_USER);

        let outcome = world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap();
        assert_eq!(outcome.change, Change::Unchanged);
        let count = world.sim.role_assignments().iter().filter(|a| a.principal_id == seeded.kubelet.object_id).count();
        assert_eq!(count, 1);
    }

    #[tokio::test]
    async fn host_identity_is_created_attached_to_windows_scale_sets_and_granted() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-host", ClusterSeed::windows());
        let (vault, seeded_vault) = mk_vault(&world, "kv-host", VaultSeed::default()).await;
        let identity_ref = HostIdentityRef {
            subscription_id: SUBSCRIPTION.to_string(),
            resource_group: RESOURCE_GROUP.to_string(),
            name: "gmsa-host".to_string(),
            location: "eastus".to_string(),
        };

        let (first, identity) = world.azure.attach_host_identity(&cluster, &identity_ref).await.unwrap();
        assert_eq!((first.step.as_str(), first.change), ("identity-attach", Change::Changed));
        let (linux_scale_set, windows_scale_set) = (&seeded.scale_sets[0], &seeded.scale_sets[1]);
        let attached = world.sim.scale_set_identities(windows_scale_set);
        assert!(attached.iter().any(|id| id.eq_ignore_ascii_case(&identity.id)), "{attached:?}");
        assert!(
            world.sim.scale_set_identities(linux_scale_set).iter().all(|id| !id.eq_ignore_ascii_case(&identity.id))
        );

        let (second, again) = world.azure.attach_host_identity(&cluster, &identity_ref).await.unwrap();
        assert_eq!((second.change, &again), (Change::Unchanged, &identity));

        let grant = world.azure.grant_secret_get(&vault, &identity.principal_id).await.unwrap();
        assert_eq!(grant.change, Change::Changed);
        let policies = world.sim.access_policies(&seeded_vault.id);
        assert!(policies.iter().any(|p| p.object_id == identity.principal_id));
        let mutations = world.sim.mutations();
        assert_eq!((writes_of(&mutations, SimOp::IdentityPut), writes_of(&mutations, SimOp::ScaleSetUpdate)), (1, 1));
    }
}

/// Issue 11: the audit's pool identities, and teardown (revoke, detach, delete) in both modes.
/// Every teardown test compares `sim.snapshot()` with the state before setup, and proves a dry
/// run writes nothing by the unchanged mutation log.
mod teardown {
    use super::*;

    const FOREIGN_PRINCIPAL: &str = "99999999-0000-0000-0000-000000000000";

    fn mk_identity_ref(name: &str) -> HostIdentityRef {
        HostIdentityRef {
            subscription_id: SUBSCRIPTION.to_string(),
            resource_group: RESOURCE_GROUP.to_string(),
            name: name.to_string(),
            location: "eastus".to_string(),
        }
    }

    /// Asserts that a dry run planned `step` with a diff and left the mutation log as it was.
    fn assert_planned_without_writes(world: &World, writes_before: usize, outcome: &StepOutcome, step: &str) {
        assert_eq!((outcome.step.as_str(), outcome.change), (step, Change::Planned), "{outcome:?}");
        assert!(!outcome.diff.is_empty());
        assert_eq!(world.sim.mutations().len(), writes_before, "a dry run wrote: {:?}", world.sim.mutations());
    }

    #[tokio::test]
    async fn windows_pools_report_kubelet_and_host_identity_and_linux_pools_are_ignored() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-pools", ClusterSeed::windows());
        let (_, host) = world.azure.attach_host_identity(&cluster, &mk_identity_ref("gmsa-pools")).await.unwrap();

        let pools = world.azure.windows_pool_identities(&cluster).await.unwrap();
        assert_eq!(pools.len(), 1, "only the Windows pool: {pools:?}");
        assert_eq!(pools[0].pool, "npwin");
        assert!(seeded.scale_sets[1].ends_with(&format!("/{}", pools[0].scale_set)), "{pools:?}");
        let mut identities = pools[0].identities.clone();
        identities.sort_by_key(|identity| identity.kubelet);
        let expected = [
            AttachedIdentity {
                id: host.id.clone(),
                principal_id: host.principal_id.clone(),
                client_id: host.client_id.clone(),
                kubelet: false,
            },
            AttachedIdentity {
                id: seeded.kubelet.resource_id.clone(),
                principal_id: seeded.kubelet.object_id.clone(),
                client_id: seeded.kubelet.client_id.clone(),
                kubelet: true,
            },
        ];
        assert_eq!(identities.len(), 2);
        assert!(identities[0].id.eq_ignore_ascii_case(&expected[0].id));
        assert_eq!(
            (&identities[0].principal_id, &identities[0].client_id, identities[0].kubelet),
            (&expected[0].principal_id, &expected[0].client_id, false)
        );
        assert_eq!(identities[1], expected[1]);
        let json = serde_json::to_value(&pools).unwrap();
        assert_eq!(json[0]["identities"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn revoke_on_an_access_policy_vault_restores_the_pre_grant_state_and_keeps_others() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-revoke-ap", ClusterSeed::windows());
        let tenant = world.sim.tenant_id();
        let foreign = mk_policy(&tenant, FOREIGN_PRINCIPAL, &["get", "list"]);
        let (vault, seeded_vault) = mk_vault(
            &world,
            "kv-revoke-ap",
            VaultSeed { access_policies: vec![foreign.clone()], ..VaultSeed::default() },
        )
        .await;
        let before = world.sim.snapshot();
        let principal = seeded.kubelet.object_id.clone();
        assert_eq!(world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap().change, Change::Changed);

        let writes = world.sim.mutations().len();
        let planned = world.azure.revoke_secret_get(&vault, &principal, Mode::DryRun).await.unwrap();
        assert_planned_without_writes(&world, writes, &planned, "vault-revoke");
        assert_ne!(world.sim.snapshot(), before);

        let revoked = world.azure.revoke_secret_get(&vault, &principal, Mode::Apply).await.unwrap();
        assert_eq!((revoked.change, &revoked.diff), (Change::Changed, &planned.diff));
        assert_eq!(world.sim.snapshot(), before, "exactly the pre-grant state");
        assert_eq!(world.sim.access_policies(&seeded_vault.id), vec![foreign.clone()]);
        let again = world.azure.revoke_secret_get(&vault, &principal, Mode::Apply).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);
        let foreign_revoke = world.azure.revoke_secret_get(&vault, FOREIGN_PRINCIPAL, Mode::DryRun).await.unwrap();
        assert_eq!(foreign_revoke.change, Change::Planned, "the foreign get is seen, and a dry run leaves it");
        assert_eq!(world.sim.access_policies(&seeded_vault.id), vec![foreign]);
    }

    #[tokio::test]
    async fn revoke_on_an_access_policy_vault_keeps_the_principals_other_permissions() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-revoke-list", ClusterSeed::windows());
        let tenant = world.sim.tenant_id();
        let own = mk_policy(&tenant, &seeded.kubelet.object_id, &["list"]);
        let (vault, _) =
            mk_vault(&world, "kv-revoke-list", VaultSeed { access_policies: vec![own], ..VaultSeed::default() }).await;
        let before = world.sim.snapshot();
        world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap();
        let revoked = world.azure.revoke_secret_get(&vault, &seeded.kubelet.object_id, Mode::Apply).await.unwrap();
        assert_eq!(revoked.change, Change::Changed);
        assert_eq!(world.sim.snapshot(), before, "the entry keeps `list`, loses only `get`");
    }

    #[tokio::test]
    async fn revoke_on_an_rbac_vault_deletes_only_the_grants_assignment() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-revoke-rbac", ClusterSeed::windows());
        let (vault, seeded_vault) =
            mk_vault(&world, "kv-revoke-rbac", VaultSeed { enable_rbac_authorization: true, ..VaultSeed::default() })
                .await;
        world.sim.add_role_assignment(&seeded_vault.id, FOREIGN_PRINCIPAL, azsim::KEY_VAULT_SECRETS_USER);
        let before = world.sim.snapshot();
        let principal = seeded.kubelet.object_id.clone();
        assert_eq!(world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap().change, Change::Changed);

        let writes = world.sim.mutations().len();
        let planned = world.azure.revoke_secret_get(&vault, &principal, Mode::DryRun).await.unwrap();
        assert_planned_without_writes(&world, writes, &planned, "vault-revoke");
        let revoked = world.azure.revoke_secret_get(&vault, &principal, Mode::Apply).await.unwrap();
        assert_eq!(revoked.change, Change::Changed);
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::RoleAssignmentDelete), 1);
        assert_eq!(world.sim.snapshot(), before, "exactly the pre-grant state; the foreign assignment stays");
        let again = world.azure.revoke_secret_get(&vault, &principal, Mode::Apply).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);
        let foreign = world.azure.revoke_secret_get(&vault, FOREIGN_PRINCIPAL, Mode::Apply).await.unwrap();
        assert_eq!(foreign.change, Change::Unchanged, "an assignment the grant did not create is never deleted");
        assert_eq!(world.sim.snapshot(), before);
    }

    #[tokio::test]
    async fn detach_keeps_other_identities_and_delete_is_idempotent() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-detach", ClusterSeed::windows());
        let identity_ref = mk_identity_ref("gmsa-detach");
        let before = world.sim.snapshot();
        let (_, identity) = world.azure.attach_host_identity(&cluster, &identity_ref).await.unwrap();

        let writes = world.sim.mutations().len();
        let planned = world.azure.detach_host_identity(&cluster, &identity_ref, Mode::DryRun).await.unwrap();
        assert_planned_without_writes(&world, writes, &planned, "identity-detach");
        let detached = world.azure.detach_host_identity(&cluster, &identity_ref, Mode::Apply).await.unwrap();
        assert_eq!((detached.change, detached.diff.len()), (Change::Changed, 1));
        let windows_scale_set = &seeded.scale_sets[1];
        assert_eq!(
            world.sim.scale_set_identities(windows_scale_set),
            vec![seeded.kubelet.resource_id.clone()],
            "the kubelet identity stays attached"
        );
        let again = world.azure.detach_host_identity(&cluster, &identity_ref, Mode::Apply).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);

        let writes = world.sim.mutations().len();
        let planned = world.azure.delete_host_identity(&identity_ref, Mode::DryRun).await.unwrap();
        assert_planned_without_writes(&world, writes, &planned, "identity-delete");
        assert!(world.sim.identity(&identity.id).is_some());
        let deleted = world.azure.delete_host_identity(&identity_ref, Mode::Apply).await.unwrap();
        assert_eq!(deleted.change, Change::Changed);
        assert!(world.sim.identity(&identity.id).is_none());
        let again = world.azure.delete_host_identity(&identity_ref, Mode::Apply).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::IdentityDelete), 1);
        assert_eq!(world.sim.snapshot(), before, "attach undone completely");
    }

    #[tokio::test]
    async fn disable_gmsa_dry_run_plans_without_writing() {
        let world = mk_world().await;
        let enabled = GmsaProfile { enabled: Some(true), ..GmsaProfile::default() };
        let (cluster, seeded) = mk_cluster(&world, "aks-disable-dry", ClusterSeed::windows().with_gmsa(enabled));
        let planned = world.azure.disable_gmsa_in(&cluster, Mode::DryRun).await.unwrap();
        assert_planned_without_writes(&world, 0, &planned, "cluster-update");
        assert_eq!(world.sim.gmsa_profile(&seeded.id).unwrap().enabled, Some(true));
        let applied = world.azure.disable_gmsa_in(&cluster, Mode::Apply).await.unwrap();
        assert_eq!((applied.change, &applied.diff), (Change::Changed, &planned.diff));
        assert_eq!(world.azure.disable_gmsa_in(&cluster, Mode::DryRun).await.unwrap().change, Change::Unchanged);
    }
}

/// Issue 16's plan: a dry run of each setup step reads, reports `planned` with the diff the
/// apply then makes, and leaves the mutation log as it was.
mod dry_run {
    use super::*;

    fn mk_identity_ref(name: &str) -> HostIdentityRef {
        HostIdentityRef {
            subscription_id: SUBSCRIPTION.to_string(),
            resource_group: RESOURCE_GROUP.to_string(),
            name: name.to_string(),
            location: "eastus".to_string(),
        }
    }

    /// Asserts that `outcome` is a `planned` `step` with a diff and that nothing was written.
    fn assert_planned(world: &World, writes_before: usize, outcome: &StepOutcome, step: &str) {
        assert_eq!((outcome.step.as_str(), outcome.change), (step, Change::Planned), "{outcome:?}");
        assert!(!outcome.diff.is_empty(), "{outcome:?}");
        assert_eq!(world.sim.mutations().len(), writes_before, "a dry run wrote: {:?}", world.sim.mutations());
    }

    #[tokio::test]
    async fn enable_plans_the_gmsa_profile_diff_without_a_put_and_the_apply_makes_exactly_it() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-plan-enable", ClusterSeed::windows());
        let settings = mk_settings("10.0.0.4", "contoso.com");
        let planned = world.azure.enable_gmsa_in(&cluster, settings.clone(), Mode::DryRun).await.unwrap();
        assert_planned(&world, 0, &planned, "cluster-update");
        assert!(
            planned.diff.iter().any(|change| change.path.contains("/windowsProfile/gmsaProfile")),
            "{:?}",
            planned.diff
        );
        assert_ne!(world.sim.gmsa_profile(&seeded.id).and_then(|profile| profile.enabled), Some(true));

        let applied = world.azure.enable_gmsa_in(&cluster, settings.clone(), Mode::Apply).await.unwrap();
        assert_eq!((applied.change, &applied.diff), (Change::Changed, &planned.diff), "the plan was the apply");
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::ClusterPut), 1);
        let again = world.azure.enable_gmsa_in(&cluster, settings, Mode::DryRun).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);
    }

    #[tokio::test]
    async fn enable_on_an_enabled_cluster_plans_nothing() {
        let world = mk_world().await;
        let enabled = GmsaProfile {
            enabled: Some(true),
            dns_server: Some("10.0.0.4".to_string()),
            root_domain_name: Some("contoso.com".to_string()),
        };
        let (cluster, _) = mk_cluster(&world, "aks-plan-enabled", ClusterSeed::windows().with_gmsa(enabled));
        let outcome =
            world.azure.enable_gmsa_in(&cluster, mk_settings("10.0.0.4", "contoso.com"), Mode::DryRun).await.unwrap();
        assert_eq!((outcome.change, outcome.diff.len()), (Change::Unchanged, 0));
        assert!(world.sim.mutations().is_empty(), "{:?}", world.sim.mutations());
    }

    #[tokio::test]
    async fn kubelet_grant_on_an_access_policy_vault_is_planned_then_applied_as_planned() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-plan-ap", ClusterSeed::windows());
        let (vault, seeded_vault) = mk_vault(&world, "kv-plan-ap", VaultSeed::default()).await;
        let writes = world.sim.mutations().len();
        let planned = world.azure.grant_kubelet_secret_get_in(&cluster, &vault, Mode::DryRun).await.unwrap();
        assert_planned(&world, writes, &planned, "vault-grant");
        assert!(world.sim.access_policies(&seeded_vault.id).iter().all(|p| p.object_id != seeded.kubelet.object_id));

        let applied = world.azure.grant_kubelet_secret_get_in(&cluster, &vault, Mode::Apply).await.unwrap();
        assert_eq!((applied.change, &applied.diff), (Change::Changed, &planned.diff));
        let again = world.azure.grant_kubelet_secret_get_in(&cluster, &vault, Mode::DryRun).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);
    }

    #[tokio::test]
    async fn kubelet_grant_on_an_rbac_vault_is_planned_then_applied_as_planned() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-plan-rbac", ClusterSeed::windows());
        let (vault, seeded_vault) =
            mk_vault(&world, "kv-plan-rbac", VaultSeed { enable_rbac_authorization: true, ..VaultSeed::default() })
                .await;
        let writes = world.sim.mutations().len();
        let planned = world.azure.grant_kubelet_secret_get_in(&cluster, &vault, Mode::DryRun).await.unwrap();
        assert_planned(&world, writes, &planned, "vault-grant");
        assert!(world.sim.role_assignments().iter().all(|a| a.principal_id != seeded.kubelet.object_id));

        let applied = world.azure.grant_kubelet_secret_get_in(&cluster, &vault, Mode::Apply).await.unwrap();
        assert_eq!((applied.change, &applied.diff), (Change::Changed, &planned.diff));
        assert_eq!(writes_of(&world.sim.mutations(), SimOp::RoleAssignmentPut), 1);

        // An equivalent assignment under another name: the apply's 409 says granted; so does the plan.
        let (other, other_seeded) = mk_cluster(&world, "aks-plan-rbac2", ClusterSeed::windows());
        world.sim.add_role_assignment(&seeded_vault.id, &other_seeded.kubelet.object_id, azsim::KEY_VAULT_SECRETS_USER);
        let writes = world.sim.mutations().len();
        let equivalent = world.azure.grant_kubelet_secret_get_in(&other, &vault, Mode::DryRun).await.unwrap();
        assert_eq!(equivalent.change, Change::Unchanged, "{equivalent:?}");
        assert_eq!(world.sim.mutations().len(), writes);
    }

    #[tokio::test]
    async fn user_assigned_grant_plans_the_identity_the_attach_and_the_grant_without_writing() {
        let world = mk_world().await;
        let (cluster, seeded) = mk_cluster(&world, "aks-plan-host", ClusterSeed::windows());
        let (vault, _) = mk_vault(&world, "kv-plan-host", VaultSeed::default()).await;
        let identity_ref = mk_identity_ref("gmsa-plan-host");
        let writes = world.sim.mutations().len();

        let (planned_attach, missing) =
            world.azure.attach_host_identity_in(&cluster, &identity_ref, Mode::DryRun).await.unwrap();
        assert_planned(&world, writes, &planned_attach, "identity-attach");
        assert_eq!(missing, None, "the identity does not exist, so it has no principal yet");
        let paths: Vec<&str> = planned_attach.diff.iter().map(|change| change.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "created, then attached to the one Windows scale set: {paths:?}");
        assert_eq!(paths[0], "/userAssignedIdentities/gmsa-plan-host");
        assert!(paths[1].starts_with("/virtualMachineScaleSets/"), "{paths:?}");
        let planned_grant = world.azure.plan_grant_to_new_identity(&vault, &identity_ref).await.unwrap();
        assert_planned(&world, writes, &planned_grant, "vault-grant");
        assert!(world.sim.identity(&identity_ref.id()).is_none());
        assert!(world.sim.scale_set_identities(&seeded.scale_sets[1]).iter().all(|id| !id.contains("gmsa-plan-host")));

        let (applied_attach, host) = world.azure.attach_host_identity(&cluster, &identity_ref).await.unwrap();
        assert_eq!((applied_attach.change, &applied_attach.diff), (Change::Changed, &planned_attach.diff));
        // With the identity in place, the plan names its principal and the apply makes exactly it.
        let writes = world.sim.mutations().len();
        let (attached, found) =
            world.azure.attach_host_identity_in(&cluster, &identity_ref, Mode::DryRun).await.unwrap();
        assert_eq!((attached.change, found.as_ref()), (Change::Unchanged, Some(&host)));
        let planned = world.azure.grant_secret_get_in(&vault, &host.principal_id, Mode::DryRun).await.unwrap();
        assert_planned(&world, writes, &planned, "vault-grant");
        let applied = world.azure.grant_secret_get_in(&vault, &host.principal_id, Mode::Apply).await.unwrap();
        assert_eq!((applied.change, &applied.diff), (Change::Changed, &planned.diff));
    }
}

mod secret {
    use super::*;

    async fn mk_secret_vault(world: &World, name: &str) -> (VaultRef, azsim::SeededVault) {
        let agent = mk_policy(&world.sim.tenant_id(), AGENT_OBJECT_ID, &["get", "set", "list"]);
        mk_vault(world, name, VaultSeed { access_policies: vec![agent], ..VaultSeed::default() }).await
    }

    #[tokio::test]
    async fn the_official_secret_client_writes_reads_and_skips_equal_values() {
        let world = mk_world().await;
        let (vault, seeded) = mk_secret_vault(&world, "kv-secret").await;
        let value = SecretString::new("CONTOSO.COM\\gmsa-user:Pa55-first");

        let first = world.azure.write_domain_user_secret(&vault, None, &value).await.unwrap();
        assert_eq!((first.outcome.step.as_str(), first.outcome.change), ("secret-write", Change::Changed));
        let versions = world.sim.secret_versions(&seeded.id, "GMSADomainUserCred");
        assert_eq!(versions.len(), 1);
        assert_eq!(first.uri.0, versions[0].id, "versioned URI for the credspec");
        assert_eq!(world.sim.secret_value(&seeded.id, "GMSADomainUserCred", None).as_deref(), Some(value.expose()));

        let (read, uri) = world.azure.read_domain_user_secret(&vault, None).await.unwrap().unwrap();
        assert!(read == value);
        assert_eq!(uri, first.uri);

        let second = world.azure.write_domain_user_secret(&vault, None, &value).await.unwrap();
        assert_eq!((second.outcome.change, &second.uri), (Change::Unchanged, &first.uri));

        let rotated = SecretString::new("CONTOSO.COM\\gmsa-user:Pa55-second");
        let third = world.azure.write_domain_user_secret(&vault, Some("GMSADomainUserCred"), &rotated).await.unwrap();
        assert_eq!(third.outcome.change, Change::Changed);
        assert_ne!(third.uri, first.uri);
        assert_eq!(world.sim.secret_versions(&seeded.id, "GMSADomainUserCred").len(), 2);
        let diff_text = serde_json::to_string(&third.outcome).unwrap();
        assert!(diff_text.contains("<redacted>") && !diff_text.contains("Pa55"), "{diff_text}");
    }

    #[tokio::test]
    async fn versions_are_listed_without_values() {
        let world = mk_world().await;
        let (vault, seeded) = mk_secret_vault(&world, "kv-versions").await;
        assert!(world.azure.secret_versions(&vault, None).await.unwrap().is_empty(), "absent secret: no versions");
        for value in ["CONTOSO\\gmsa-user:Pa55-one", "CONTOSO\\gmsa-user:Pa55-two"] {
            world.azure.write_domain_user_secret(&vault, None, &SecretString::new(value)).await.unwrap();
        }
        let versions = world.azure.secret_versions(&vault, None).await.unwrap();
        let simulated = world.sim.secret_versions(&seeded.id, "GMSADomainUserCred");
        assert_eq!(versions.len(), 2);
        for (listed, stored) in versions.iter().zip(&simulated) {
            assert_eq!((&listed.version, &listed.uri, listed.enabled), (&stored.version, &stored.id, true));
        }
        let rendered = format!("{versions:?} {}", serde_json::to_string(&versions).unwrap());
        assert!(!rendered.contains("Pa55"), "{rendered}");
    }

    #[tokio::test]
    async fn delete_purges_the_secret_idempotently_and_a_dry_run_writes_nothing() {
        let world = mk_world().await;
        let agent = mk_policy(&world.sim.tenant_id(), AGENT_OBJECT_ID, &["get", "set", "list", "delete", "purge"]);
        let (vault, seeded) =
            mk_vault(&world, "kv-delete", VaultSeed { access_policies: vec![agent], ..VaultSeed::default() }).await;
        let before = world.sim.snapshot();
        for value in ["CONTOSO\\gmsa-user:Pa55-one", "CONTOSO\\gmsa-user:Pa55-two"] {
            world.azure.write_domain_user_secret(&vault, None, &SecretString::new(value)).await.unwrap();
        }

        let writes = world.sim.mutations().len();
        let planned = world.azure.delete_domain_user_secret(&vault, None, Mode::DryRun).await.unwrap();
        assert_eq!((planned.step.as_str(), planned.change), ("secret-delete", Change::Planned));
        assert_eq!(world.sim.mutations().len(), writes, "a dry run wrote");
        assert_eq!(world.sim.secret_versions(&seeded.id, "GMSADomainUserCred").len(), 2);

        let deleted = world.azure.delete_domain_user_secret(&vault, None, Mode::Apply).await.unwrap();
        assert_eq!((deleted.change, &deleted.diff), (Change::Changed, &planned.diff));
        let operations: Vec<SimOp> = world.sim.mutations()[writes..].iter().map(|m| m.operation).collect();
        assert_eq!(operations, vec![SimOp::SecretDelete, SimOp::DeletedSecretPurge]);
        assert!(world.sim.deleted_secret_names(&seeded.id).is_empty(), "purged, nothing left");
        assert_eq!(world.sim.snapshot(), before);
        let again = world.azure.delete_domain_user_secret(&vault, None, Mode::Apply).await.unwrap();
        assert_eq!(again.change, Change::Unchanged);
        let outcomes = serde_json::to_string(&[&planned, &deleted, &again]).unwrap();
        assert!(!outcomes.contains("Pa55"), "{outcomes}");
    }

    #[tokio::test]
    async fn a_deleted_secret_left_by_an_interrupted_run_is_purged() {
        let world = mk_world().await;
        let agent = mk_policy(&world.sim.tenant_id(), AGENT_OBJECT_ID, &["get", "set", "list", "delete", "purge"]);
        let (vault, seeded) =
            mk_vault(&world, "kv-leftover", VaultSeed { access_policies: vec![agent], ..VaultSeed::default() }).await;
        world.azure.write_domain_user_secret(&vault, None, &SecretString::new("C\\u:Pa55-x")).await.unwrap();
        // Only the delete happened (as if the agent died before purging).
        let outcome = world.azure.delete_domain_user_secret(&vault, None, Mode::DryRun).await.unwrap();
        assert_eq!(outcome.diff.len(), 2);
        let secret_url = format!("{}secrets/GMSADomainUserCred?api-version=7.5", seeded.vault_uri);
        let token = world.sim.issue_token(AGENT_OBJECT_ID, "https://vault.azure.net");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(world.sim.ca_pem().as_bytes()).unwrap()])
            .proxy(reqwest::Proxy::https(world.sim.https_proxy()).unwrap())
            .build()
            .unwrap();
        let status = http.delete(&secret_url).bearer_auth(&token).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 200);
        assert_eq!(world.sim.deleted_secret_names(&seeded.id), vec!["GMSADomainUserCred".to_string()]);

        let purged = world.azure.delete_domain_user_secret(&vault, None, Mode::Apply).await.unwrap();
        let paths: Vec<&str> = purged.diff.iter().map(|change| change.path.as_str()).collect();
        assert_eq!((purged.change, paths), (Change::Changed, vec!["/deletedsecrets/GMSADomainUserCred"]));
        assert!(world.sim.deleted_secret_names(&seeded.id).is_empty());
    }

    #[tokio::test]
    async fn a_missing_secret_reads_as_none_and_a_denied_write_names_the_secret() {
        let world = mk_world().await;
        let (vault, _) = mk_secret_vault(&world, "kv-empty").await;
        assert!(world.azure.read_domain_user_secret(&vault, Some("absent")).await.unwrap().is_none());

        let (locked, _) = mk_vault(&world, "kv-locked", VaultSeed::default()).await;
        let value = SecretString::new("CONTOSO\\user:denied-value-123");
        let error = world.azure.write_domain_user_secret(&locked, None, &value).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Forbidden);
        assert!(error.resource().ends_with("/secrets/GMSADomainUserCred"), "{error}");
        let rendered = format!("{error} {error:?}");
        assert!(!rendered.contains("denied-value-123"), "{rendered}");
    }
}

mod logs {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects everything the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[tokio::test]
    async fn the_secret_value_is_absent_from_all_trace_logs() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        // The test runs on a current-thread runtime: every task (client and simulator) logs here.
        let _guard = tracing::subscriber::set_default(subscriber);

        let world = mk_world().await;
        let (cluster, _) = mk_cluster(&world, "aks-logs", ClusterSeed::windows());
        let agent = mk_policy(&world.sim.tenant_id(), AGENT_OBJECT_ID, &["get", "set"]);
        let (vault, _) =
            mk_vault(&world, "kv-logs", VaultSeed { access_policies: vec![agent], ..VaultSeed::default() }).await;
        let (locked, _) = mk_vault(&world, "kv-logs-locked", VaultSeed::default()).await;
        let marker = "S3cr3t-Value-That-Must-Not-Leak";
        let value = SecretString::new(format!("CONTOSO.COM\\gmsa-user:{marker}"));

        world.azure.enable_gmsa(&cluster, mk_settings("10.0.0.4", "contoso.com")).await.unwrap();
        world.azure.grant_kubelet_secret_get(&cluster, &vault).await.unwrap();
        world.azure.write_domain_user_secret(&vault, None, &value).await.unwrap();
        world.azure.write_domain_user_secret(&vault, None, &value).await.unwrap();
        world.azure.read_domain_user_secret(&vault, None).await.unwrap();
        let denied = world.azure.write_domain_user_secret(&locked, None, &value).await.unwrap_err();
        tracing::error!(error = %denied, debug = ?denied, "denied write");

        let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
        assert!(logs.contains("secret") && logs.len() > 1000, "the subscriber captured the run: {} bytes", logs.len());
        assert!(!logs.contains(marker), "secret value leaked into the logs");
        assert!(!logs.contains(AGENT_SECRET), "client secret leaked into the logs");
    }
}
