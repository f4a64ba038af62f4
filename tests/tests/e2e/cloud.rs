//! The production executor end to end: commands cross a real nats-server to agents whose
//! executor talks to the Azure simulator (ARM, Key Vault, Entra over HTTPS with the official SDK
//! crates) and the Kubernetes API simulator (kube-rs), and the effects are read back from the
//! simulators' state — not from what the agents report.

use proto::Command;
use proto::command::{ApplyCredspec, EnableGmsa, GrantIdentity, IdentityChoice, ServiceAccountRef};
use std::time::Duration;
use testkit::nats::NatsServer;
use tests::fleet::{run_and_follow, start_coordinator, test_settings};
use tests::world::SimWorld;

const SID: &str = "S-1-5-21-2126449477-2524075714-3094792973";
const GUID: &str = "244818ae-87ac-4fcd-92ec-e79e5252348a";

fn mk_credspec(secret_uri: &str, spec_name: &str) -> Command {
    Command::ApplyCredspec(ApplyCredspec {
        spec_name: spec_name.into(),
        gmsa_account: "WebApp01".into(),
        netbios_domain: "CONTOSO".into(),
        dns_domain: "contoso.com".into(),
        dns_tree_root: "contoso.com".into(),
        domain_guid: GUID.into(),
        domain_sid: SID.into(),
        secret_uri: secret_uri.into(),
        identity_object_id: None,
        bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
        owner: "default".into(),
        mode: proto::Mode::Apply,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gmsa_setup_reaches_azure_and_kubernetes_once_and_a_second_run_writes_nothing() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("e2e", 3, 2).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let deadline = Duration::from_secs(120);
    let enable = Command::EnableGmsa(EnableGmsa {
        dns_server: Some("10.1.0.4".into()),
        root_domain: Some("contoso.com".into()),
        mode: proto::Mode::Apply,
    });
    let grant = Command::GrantIdentity(GrantIdentity {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: IdentityChoice::Kubelet,
        mode: proto::Mode::Apply,
    });
    let secret_uri =
        "https://kv-gmsa-fleet.vault.azure.net/secrets/GMSADomainUserCred/0123456789abcdef0123456789abcdef";
    for command in [enable.clone(), grant.clone(), mk_credspec(secret_uri, "aks-gmsa-spec")] {
        let (_, states) = run_and_follow(&coordinator.bus, command, "env=demo", deadline, |_| {}).await.unwrap();
        for (target, state) in &states {
            assert!(state.is_success(), "{}: {state:?}", target.cluster);
        }
    }
    // Effects, read from the simulators.
    for cluster in &world.clusters {
        let profile = world.azure.gmsa_profile(&cluster.arm_id).unwrap();
        assert_eq!(profile.enabled, Some(true));
        assert_eq!(profile.dns_server.as_deref(), Some("10.1.0.4"));
        let credspec = cluster.kube.get("GMSACredentialSpec", None, "aks-gmsa-spec").expect("credspec installed");
        assert_eq!(credspec["credspec"]["DomainJoinConfig"]["Sid"], SID);
        assert!(cluster.kube.get("ClusterRole", None, "aks-gmsa-spec-role").is_some());
    }
    let policies = world.azure.access_policies(&world.vault_id);
    // The coordinator's and the agents' own policies plus exactly one per cluster's kubelet identity.
    assert_eq!(policies.len(), 2 + world.clusters.len(), "{policies:?}");

    // A second run of every step writes nothing anywhere.
    let azure_writes = world.azure.mutations().iter().filter(|m| m.changed).count();
    let kube_writes: Vec<usize> = world.clusters.iter().map(|c| c.kube.api_mutations().len()).collect();
    for command in [enable, grant, mk_credspec(secret_uri, "aks-gmsa-spec")] {
        let (_, states) = run_and_follow(&coordinator.bus, command, "env=demo", deadline, |_| {}).await.unwrap();
        for (target, state) in &states {
            assert_eq!(state.label(), "unchanged", "{}", target.cluster);
        }
    }
    assert_eq!(world.azure.mutations().iter().filter(|m| m.changed).count(), azure_writes);
    let kube_after: Vec<usize> = world.clusters.iter().map(|c| c.kube.api_mutations().len()).collect();
    assert_eq!(kube_after, kube_writes);
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credspec_with_a_bad_field_fails_naming_it_and_installs_nothing() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("bad", 1, 1).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let mut command = mk_credspec("https://kv-gmsa-fleet.vault.azure.net/secrets/GMSADomainUserCred", "aks-gmsa-spec");
    if let Command::ApplyCredspec(payload) = &mut command {
        payload.domain_sid = "S-1-5-21-1-2-3-1104".into(); // a user's SID, not the domain's
    }
    // The coordinator's planner refuses it before anything is sent …
    let refused = run_and_follow(&coordinator.bus, command.clone(), "", Duration::from_secs(60), |_| {}).await;
    let refusal = refused.err().map(|err| err.to_string()).unwrap_or_default();
    assert!(refusal.contains("payload.domain_sid"), "{refusal}");
    // … and a client that bypasses the coordinator meets the same rule at the agent.
    let cluster = world.clusters[0].id.clone();
    let now = time::OffsetDateTime::now_utc();
    let envelope = proto::CommandEnvelope {
        schema: proto::version::SchemaVersion::CURRENT,
        command_id: proto::CommandId("bad-sid".into()),
        rollout_id: None,
        cluster: cluster.clone(),
        issued_at: now,
        deadline: now + time::Duration::minutes(5),
        issuer: None,
        command,
    };
    bus::commands::CommandPublisher::new(&coordinator.bus).publish(&envelope, None).await.unwrap();
    let results = super::support::wait_for_results(&coordinator.bus, &cluster, 1, Duration::from_secs(30)).await;
    let result = &results[0];
    let proto::ResultStatus::Failed { code, message } = &result.status else { panic!("{:?}", result.status) };
    // The agent's decision refuses it with the validator fleetctl and the planner run too
    // (gmsa::validate), before any Azure or Kubernetes call.
    assert_eq!(code, "invalid_payload");
    assert!(message.contains("payload.domain_sid"), "{message}");
    assert!(message.to_lowercase().contains("sid"), "{message}");
    assert!(world.clusters[0].kube.get("GMSACredentialSpec", None, "aks-gmsa-spec").is_none());
    assert!(world.clusters[0].kube.api_mutations().is_empty());
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolebinding_deleted_out_of_band_is_reported_to_the_coordinator_and_reapplied() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("drift", 1, 1).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let mut drift = coordinator.bus.client().subscribe(proto::subjects::DRIFT_ALL).await.unwrap();
    let secret_uri = "https://kv-gmsa-fleet.vault.azure.net/secrets/GMSADomainUserCred";
    let (_, states) =
        run_and_follow(&coordinator.bus, mk_credspec(secret_uri, "aks-gmsa-spec"), "", Duration::from_secs(60), |_| {})
            .await
            .unwrap();
    assert!(states[0].1.is_success(), "{states:?}");
    let cluster = &world.clusters[0];
    let binding = "allow-default-svc-account-read-on-aks-gmsa-spec";
    assert!(cluster.kube.get("RoleBinding", Some("default"), binding).is_some());
    // Give the drift watch its initial listing, then delete behind the agent's back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kube.delete("RoleBinding", Some("default"), binding).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), futures::StreamExt::next(&mut drift))
        .await
        .expect("a drift report within 20s")
        .unwrap();
    assert_eq!(message.subject.as_str(), "fleet.drift.drift-000");
    let report: proto::drift::DriftReport = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(
        (report.kind.as_str(), report.name.as_str(), report.cause.as_str()),
        ("RoleBinding", binding, "deleted")
    );
    assert_eq!(report.remedy, "reapplied");
    assert!(cluster.kube.get("RoleBinding", Some("default"), binding).is_some(), "re-applied under the reapply policy");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_assigned_identity_is_created_attached_to_the_windows_pool_only_and_granted_once() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("uai", 1, 1).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let cluster = &world.clusters[0];
    let grant = Command::GrantIdentity(GrantIdentity {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: IdentityChoice::UserAssigned {
            resource_group: cluster.resource_group.clone(),
            name: "mi-gmsa-hosts".into(),
        },
        mode: proto::Mode::Apply,
    });
    let (_, states) =
        run_and_follow(&coordinator.bus, grant.clone(), "", Duration::from_secs(60), |_| {}).await.unwrap();
    assert!(states[0].1.is_success(), "{states:?}");
    let identity_id = format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi-gmsa-hosts",
        cluster.subscription_id, cluster.resource_group
    );
    let identity = world.azure.identity(&identity_id).expect("the identity was created");
    let attached = |scale_set: &str| {
        world.azure.scale_set_identities(scale_set).iter().any(|id| id.eq_ignore_ascii_case(&identity_id))
    };
    assert!(!attached(&cluster.scale_sets[0]), "the Linux pool keeps its identities");
    assert!(attached(&cluster.scale_sets[1]), "the Windows pool runs with the identity");
    let grants = |object_id: &str| {
        world.azure.access_policies(&world.vault_id).iter().filter(|policy| policy.object_id == object_id).count()
    };
    assert_eq!(grants(&identity.object_id), 1);
    let (_, states) = run_and_follow(&coordinator.bus, grant, "", Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(states[0].1.label(), "unchanged");
    assert_eq!(grants(&identity.object_id), 1);
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_dc_connectivity_runs_from_the_agent_against_a_real_dc_and_names_what_fails() {
    // The process's shared DC (it serves DNS too): this test only reads, and a second DC cannot
    // run beside it.
    let dc = tokio::task::spawn_blocking(testkit::samba::SambaDc::shared).await.unwrap();
    let domain = dc.dns_domain();

    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("dcc", 1, 1).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let check = |dns_server: &str, adws_optional: bool| {
        Command::CheckDcConnectivity(proto::command::CheckDcConnectivity {
            dns_server: dns_server.into(),
            domain: domain.clone(),
            adws_optional,
            timeout_secs: 2,
        })
    };
    let (_, states) =
        run_and_follow(&coordinator.bus, check("127.0.0.1", true), "", Duration::from_secs(60), |_| {}).await.unwrap();
    let coordinator::rollout::TargetState::Done(result) = &states[0].1 else { panic!("{states:?}") };
    assert_eq!(result.status, proto::ResultStatus::Unchanged, "{result:?}");
    let checks = result.steps[0].observed["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["name"] == "dns-srv-kerberos-tcp" && c["verdict"] == "passed"));
    assert!(
        checks.iter().any(|c| c["name"].as_str().unwrap().starts_with("dc-adws-9389") && c["verdict"] == "warning")
    );

    // Samba has no AD Web Services: without the operator's word it is a failure, named.
    let (_, states) =
        run_and_follow(&coordinator.bus, check("127.0.0.1", false), "", Duration::from_secs(60), |_| {}).await.unwrap();
    let coordinator::rollout::TargetState::Done(result) = &states[0].1 else { panic!("{states:?}") };
    let proto::ResultStatus::Failed { code, message } = &result.status else { panic!("{:?}", result.status) };
    assert_eq!(code, "dc_unreachable");
    assert!(message.contains("dc-adws-9389") && !message.contains("dc-ldap-389"), "{message}");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

/// The gMSA webhook's rule, as kubesim models it (the pod's service account must be allowed to
/// `use` the credspec, by RBAC): without the seed's RoleBinding, `verify` and
/// `validate-credspec --run-workload` fail because the sample workload's pod is refused at
/// admission; with it, both pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_validate_credspec_fail_at_admission_when_the_role_binding_is_missing() {
    use coordinator::rollout::TargetState;
    use proto::command::{DomainFacts, ValidateCredspec, Verify};
    use proto::report::{CheckReport, CheckStatus};
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("admit", 2, 2).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let deadline = Duration::from_secs(60);
    let secret_uri = "https://kv-gmsa-fleet.vault.azure.net/secrets/GMSADomainUserCred";
    // admit-000 (ring 0) gets the credspec without any binding, admit-001 (ring 1) with the seed's.
    let mut unbound = mk_credspec(secret_uri, "aks-gmsa-spec");
    if let Command::ApplyCredspec(payload) = &mut unbound {
        payload.bindings.clear();
    }
    for (command, selector) in [(unbound, "ring=0"), (mk_credspec(secret_uri, "aks-gmsa-spec"), "ring=1")] {
        let (_, states) = run_and_follow(&coordinator.bus, command, selector, deadline, |_| {}).await.unwrap();
        assert!(states.iter().all(|(_, state)| state.is_success()), "{states:?}");
    }
    assert!(world.clusters[0].kube.list("RoleBinding").is_empty());
    let denied = "admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: service account \"default\" is not authorized to `use` gMSA cred spec \"aks-gmsa-spec\"";

    let verify = Command::Verify(Verify {
        spec_name: "aks-gmsa-spec".into(),
        namespace: "default".into(),
        image: None,
        timeout_secs: 30,
    });
    let (_, states) = run_and_follow(&coordinator.bus, verify, "", deadline, |_| {}).await.unwrap();
    for (target, state) in &states {
        let TargetState::Done(result) = state else { panic!("{state:?}") };
        match (target.cluster.as_str(), &result.status) {
            ("admit-000", proto::ResultStatus::Failed { code, message, .. }) => {
                assert_eq!(code, "workload_failed");
                assert!(message.contains(denied), "{message}");
            }
            ("admit-001", status) => assert!(status.is_success(), "{status:?}"),
            other => panic!("{other:?}"),
        }
    }

    let validate = Command::ValidateCredspec(ValidateCredspec {
        spec_name: "aks-gmsa-spec".into(),
        expected: DomainFacts {
            gmsa_account: "WebApp01".into(),
            netbios_domain: "CONTOSO".into(),
            dns_domain: "contoso.com".into(),
            dns_tree_root: "contoso.com".into(),
            domain_guid: GUID.into(),
            domain_sid: SID.into(),
        },
        vault: world.vault_ref(),
        run_workload: true,
        timeout_secs: 30,
    });
    let (_, states) = run_and_follow(&coordinator.bus, validate, "", deadline, |_| {}).await.unwrap();
    for (target, state) in &states {
        let TargetState::Done(result) = state else { panic!("{state:?}") };
        let step = result.steps.iter().find(|s| s.step == "credspec-validate").expect("the report");
        let report: CheckReport = serde_json::from_value(step.observed.clone()).unwrap();
        let workload = report.checks.iter().find(|c| c.name == "workload").expect("workload check");
        if target.cluster == "admit-000" {
            assert_eq!(workload.status, CheckStatus::Fail, "{workload:?}");
            assert!(workload.detail.contains(denied), "{}", workload.detail);
        } else {
            assert_eq!(workload.status, CheckStatus::Pass, "{workload:?}");
        }
    }

    // rotate-credential with its canary pod (#19): the same admission rule decides. Each cluster's
    // identity may read the secret, and the new version exists, so only the pod differs.
    let grant = Command::GrantIdentity(proto::command::GrantIdentity {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: proto::command::IdentityChoice::Kubelet,
        mode: proto::Mode::Apply,
    });
    let (_, states) = run_and_follow(&coordinator.bus, grant, "", deadline, |_| {}).await.unwrap();
    assert!(states.iter().all(|(_, state)| state.is_success()), "{states:?}");
    let written = world
        .coordinator_azure()
        .unwrap()
        .write_domain_user_secret(
            &azure::VaultRef::from(&world.vault_ref()),
            None,
            &gmsa::SecretString::new("CONTOSO\\u:p"),
        )
        .await
        .unwrap();
    let version = written.uri.0.rsplit('/').next().unwrap().to_string();
    let rotate = Command::RotateCredential(proto::command::RotateCredential {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        secret_version: version,
        spec_name: Some("aks-gmsa-spec".into()),
        run_workload: true,
        timeout_secs: 30,
    });
    let (_, states) = run_and_follow(&coordinator.bus, rotate, "", deadline, |_| {}).await.unwrap();
    for (target, state) in &states {
        let TargetState::Done(result) = state else { panic!("{state:?}") };
        let step = result.steps.iter().find(|s| s.step == "credential-confirm").expect("the report");
        let checks: Vec<proto::report::Check> = serde_json::from_value(step.observed["checks"].clone()).unwrap();
        let workload = checks.iter().find(|c| c.name == "workload").expect("workload check");
        match (target.cluster.as_str(), &result.status) {
            ("admit-000", proto::ResultStatus::Failed { code, .. }) => {
                assert_eq!(code, "credential_unreadable");
                assert_eq!(workload.status, CheckStatus::Fail, "{workload:?}");
                assert!(workload.detail.contains(denied), "{}", workload.detail);
            }
            ("admit-001", status) => {
                assert!(status.is_success(), "{status:?}");
                assert_eq!(workload.status, CheckStatus::Pass, "{workload:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}
