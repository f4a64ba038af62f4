//! The PowerShell module's jobs after setup, end to end (#11): the access audit, credspec
//! validation against a real Samba DC, diagnostics, and a teardown that leaves the Azure
//! simulator, the Kubernetes API simulator and the Samba DC exactly as they were before setup —
//! refused while a cluster outside the selection still uses a shared resource.

use super::support::azure_state;
use coordinator::rollout::TargetState;
use gmsa::SecretString;
use proto::command::{
    ApplyCredspec, CollectDiagnostics, DomainFacts, EnableGmsa, GrantIdentity, IdentityChoice, ServiceAccountRef,
    SharedDeletes, Teardown, ValidateCredspec,
};
use proto::report::{AccessReport, ArchiveInfo, CheckReport, CheckStatus};
use proto::{Change, Command, CommandResult, Mode};
use serde_json::Value;
use std::time::Duration;
use testkit::nats::NatsServer;
use tests::fleet::{run_and_follow, start_coordinator_with, test_settings};
use tests::world::SimWorld;

const DEADLINE: Duration = Duration::from_secs(120);

async fn run_ok(bus: &bus::Bus, command: Command, selector: &str) -> Vec<CommandResult> {
    let (_, states) = run_and_follow(bus, command, selector, DEADLINE, |_| {}).await.unwrap();
    states
        .into_iter()
        .map(|(target, state)| match state {
            TargetState::Done(result) => *result,
            other => panic!("{}: {other:?}", target.cluster),
        })
        .collect()
}

fn observed<T: serde::de::DeserializeOwned>(result: &CommandResult, step: &str) -> T {
    let outcome = result.steps.iter().find(|s| s.step == step).unwrap_or_else(|| panic!("no {step}: {result:?}"));
    serde_json::from_value(outcome.observed.clone()).unwrap()
}

fn directory_state(dc: &testkit::samba::SambaDc) -> Vec<(String, String)> {
    let mut dns = dc.ldbsearch(&dc.base_dn(), "sub", "(objectClass=*)", &["distinguishedName"]).unwrap();
    dns.sort();
    dns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_validate_diagnose_and_tear_down_leaving_azure_kubernetes_and_ad_as_before_setup() {
    use ad::Directory;
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let dc = tokio::task::spawn_blocking(testkit::samba::SambaDc::shared).await.unwrap();
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("life", 2, 2).await.unwrap();
    // The daemon holds the central credentials; the test's own adapters below only set up.
    let central = std::sync::Arc::new(super::central::mk_central(&world, dc));
    let coordinator = start_coordinator_with(
        &server.url(),
        world.declared(),
        coordinator::daemon::Options { central: Some(central), ..Default::default() },
    )
    .await
    .unwrap();
    let agents = world.spawn_agents(&server.url(), |cluster: &str| test_settings(cluster, &[])).await.unwrap();
    let bus = &coordinator.bus;
    let config = ad::LdapConfig::new(dc.ldaps_url(), dc.admin_principal(), SecretString::new(dc.admin_password()))
        .with_ca_bundle(dc.ca_cert_path())
        .unwrap();
    let directory = ad::LdapDirectory::new(config);
    let azure = world.coordinator_azure().unwrap();
    let user_name = testkit::samba::unique_name("gfu");
    let gmsa_name = testkit::samba::unique_name("gfm");
    // An event that already exists and, carelessly, carries a password: diagnostics must redact it.
    let leaked = "Leaked-Pa55word!";
    world.clusters[0]
        .kube
        .inject_event(&kubesim::InjectedEvent::warning(
            "Pod",
            Some("default"),
            "webapp-1",
            "FailedCreatePodSandBox",
            &format!("credentialspec aks-gmsa-spec: logon failed, password={leaked}"),
        ))
        .unwrap();

    let azure_before = azure_state(&world);
    let kube_before: Vec<Value> = world.clusters.iter().map(|c| c.kube.snapshot()).collect();
    let ad_before = directory_state(dc);

    // Setup: AD and the secret centrally, then the fleet commands.
    let user = ad::AccountName::new(&user_name).unwrap();
    let user_spec =
        ad::UserSpec::new(user.clone(), format!("{}/GMSADomainUserCred", tests::world::VAULT_NAME)).unwrap();
    let ensured = directory.ensure_user(&user_spec).await.unwrap();
    let password = ensured.new_password.expect("a new user has a new password");
    let gmsa = ad::AccountName::gmsa(&gmsa_name).unwrap();
    let spec = ad::GmsaSpec {
        name: gmsa.clone(),
        dns_host_name: format!("{gmsa_name}.{}", dc.dns_domain()),
        password_interval_days: 30,
        allowed_principals: vec![user.clone()],
    };
    directory.ensure_gmsa(&spec).await.unwrap();
    let facts = directory.domain_facts(&gmsa).await.unwrap();
    let vault = azure::VaultRef::new(
        tests::world::VAULT_SUBSCRIPTION,
        tests::world::VAULT_RESOURCE_GROUP,
        tests::world::VAULT_NAME,
    );
    let credential = azure::domain_user_credential(&facts.netbios_name, &user_name, &password).unwrap();
    let written = azure.write_domain_user_secret(&vault, None, &credential).await.unwrap();
    let version = written.uri.0.rsplit('/').next().unwrap().to_string();
    let secret_uri =
        format!("https://{}.vault.azure.net/secrets/GMSADomainUserCred/{version}", tests::world::VAULT_NAME);
    let now = DomainFacts {
        gmsa_account: gmsa.as_str().to_string(),
        netbios_domain: facts.netbios_name.clone(),
        dns_domain: facts.dns_name.clone(),
        dns_tree_root: facts.dns_tree_name.clone(),
        domain_guid: facts.domain_guid.to_string(),
        domain_sid: facts.domain_sid.to_string(),
    };
    let identity = IdentityChoice::UserAssigned {
        resource_group: world.clusters[0].resource_group.clone(),
        name: "mi-gmsa-hosts".into(),
    };
    let credspec = |facts: &DomainFacts, object_id: &str| {
        Command::ApplyCredspec(ApplyCredspec {
            spec_name: "aks-gmsa-spec".into(),
            gmsa_account: facts.gmsa_account.clone(),
            netbios_domain: facts.netbios_domain.clone(),
            dns_domain: facts.dns_domain.clone(),
            dns_tree_root: facts.dns_tree_root.clone(),
            domain_guid: facts.domain_guid.clone(),
            domain_sid: facts.domain_sid.clone(),
            secret_uri: secret_uri.clone(),
            identity_object_id: Some(object_id.to_string()),
            bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
            owner: "default".into(),
            mode: proto::Mode::Apply,
        })
    };
    run_ok(
        bus,
        Command::EnableGmsa(EnableGmsa {
            dns_server: Some("127.0.0.1".into()),
            root_domain: Some(facts.dns_tree_name.clone()),
            mode: proto::Mode::Apply,
        }),
        "",
    )
    .await;
    let grant = Command::GrantIdentity(GrantIdentity {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: identity.clone(),
        mode: proto::Mode::Apply,
    });
    for result in run_ok(bus, grant, "").await {
        assert!(result.status.is_success(), "{result:?}");
    }

    // Access audit: the pool identity reads, the kubelet identity does not and is not flagged.
    let audit = Command::AuditAccess(proto::command::AuditAccess {
        vault: world.vault_ref(),
        secret_name: "GMSADomainUserCred".into(),
        identity: identity.clone(),
    });
    let reports: Vec<AccessReport> =
        run_ok(bus, audit.clone(), "").await.iter().map(|r| observed(r, "access-audit")).collect();
    let pool_principal = reports[0].expected_principal.clone().expect("the identity runs on the Windows pool");
    let kubelet_principal = reports[0].rows.iter().find(|r| r.kubelet).unwrap().principal_id.clone();
    for report in &reports {
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        let readers: Vec<&str> = report.rows.iter().filter(|r| r.can_get).map(|r| r.identity.as_str()).collect();
        assert_eq!(readers, ["mi-gmsa-hosts"], "only the configured identity reads: {report:?}");
    }
    // An over-broad grant to the kubelet identity is flagged, then taken back.
    azure.grant_secret_get(&vault, &kubelet_principal).await.unwrap();
    let flagged: AccessReport = observed(&run_ok(bus, audit.clone(), "ring=0").await[0], "access-audit");
    let row = flagged.rows.iter().find(|r| r.kubelet).unwrap();
    assert!(row.can_get && row.flagged, "{flagged:?}");
    assert_eq!(flagged.findings.len(), 1, "{:?}", flagged.findings);
    azure.revoke_secret_get(&vault, &kubelet_principal, Mode::Apply).await.unwrap();

    // Validation: a credspec with a SID AD no longer reports fails exactly that check ...
    let mut stale = now.clone();
    stale.domain_sid = "S-1-5-21-1-2-3".into();
    run_ok(bus, credspec(&stale, &pool_principal), "").await;
    let validate = Command::ValidateCredspec(ValidateCredspec {
        spec_name: "aks-gmsa-spec".into(),
        expected: now.clone(),
        vault: world.vault_ref(),
        run_workload: false,
        timeout_secs: 60,
    });
    for result in run_ok(bus, validate.clone(), "").await {
        let report: CheckReport = observed(&result, "credspec-validate");
        let failed: Vec<&str> = report.failed().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["domain-sid"], "{report:?}");
        assert!(matches!(&result.status, proto::ResultStatus::Failed { code, .. } if code == "credspec_invalid"));
    }
    // ... and once re-applied from AD's facts, every check passes.
    run_ok(bus, credspec(&now, &pool_principal), "").await;
    for result in run_ok(bus, validate, "").await {
        let report: CheckReport = observed(&result, "credspec-validate");
        assert!(report.checks.iter().all(|c| c.status != CheckStatus::Fail), "{report:?}");
        for name in ["domain-sid", "plugin-identity", "secret-readable", "secret-version"] {
            assert!(
                report.checks.iter().any(|c| c.name == name && c.status == CheckStatus::Pass),
                "{name}: {report:?}"
            );
        }
    }

    // Diagnostics: one archive per cluster on the bus, without a secret value.
    let diagnose = Command::CollectDiagnostics(CollectDiagnostics {
        spec_name: "aks-gmsa-spec".into(),
        owner: "default".into(),
        recent_results: 20,
    });
    let (_, states) = run_and_follow(bus, diagnose, "", DEADLINE, |_| {}).await.unwrap();
    for (target, state) in &states {
        let TargetState::Done(result) = state else { panic!("{state:?}") };
        let info: ArchiveInfo = observed(result, "diagnostics");
        let bytes = bus::results::fetch_artifact(bus, &target.cluster, target.command_id.as_str())
            .await
            .unwrap()
            .expect("archive stored");
        assert_eq!(bytes.len() as u64, info.bytes);
        let files = gmsa::archive::untar(&bytes).unwrap();
        let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
        let mut expected_files =
            vec!["kubernetes/credspec.yaml", "kubernetes/clusterrole.yaml", "agent/recent-commands.json"];
        if target.cluster == world.clusters[0].id {
            expected_files.push("kubernetes/events.yaml");
        }
        for expected in expected_files {
            assert!(names.contains(&expected), "{names:?} {:?}", info.notes);
        }
        let all: String = files.iter().map(|(_, content)| String::from_utf8_lossy(content).into_owned()).collect();
        for secret in
            [password.expose(), credential.expose(), leaked, tests::world::AGENT_SECRET, world.clusters[0].kube.token()]
        {
            assert!(!all.contains(secret), "{}: the archive holds a secret value", target.cluster);
        }
        assert!(all.contains(&pool_principal), "the archive has the facts support needs");
        if target.cluster == world.clusters[0].id {
            assert!(all.contains("logon failed, password=<redacted>"), "the event is there, redacted");
        }
    }

    // Teardown, dry run (the default): every step planned, nothing written anywhere.
    let azure_setup = world.azure.mutations().len();
    let kube_setup: Vec<usize> = world.clusters.iter().map(|c| c.kube.api_mutations().len()).collect();
    let teardown = |mode: Mode, delete: SharedDeletes| {
        Command::Teardown(Teardown {
            spec_name: "aks-gmsa-spec".into(),
            owner: "default".into(),
            vault: world.vault_ref(),
            secret_name: "GMSADomainUserCred".into(),
            identity: identity.clone(),
            disable_gmsa: true,
            delete,
            mode,
        })
    };
    let delete_all = SharedDeletes {
        secret: true,
        identity: true,
        gmsa: Some(gmsa_name.clone()),
        domain_user: Some(user_name.clone()),
    };
    for result in run_ok(bus, teardown(Mode::DryRun, delete_all.clone()), "").await {
        let steps: Vec<(&str, Change)> = result.steps.iter().map(|s| (s.step.as_str(), s.change)).collect();
        assert_eq!(
            steps,
            [
                ("credspec-remove", Change::Planned),
                ("vault-revoke", Change::Planned),
                ("identity-detach", Change::Planned),
                ("cluster-update", Change::Planned)
            ],
            "{result:?}"
        );
    }
    assert_eq!(world.azure.mutations().len(), azure_setup, "a dry run writes nothing to Azure");
    let kube_now: Vec<usize> = world.clusters.iter().map(|c| c.kube.api_mutations().len()).collect();
    assert_eq!(kube_now, kube_setup, "a dry run writes nothing to Kubernetes");

    // Refused while the other cluster still uses the shared identity (and secret, and gMSA).
    let error = run_and_follow(bus, teardown(Mode::Apply, delete_all.clone()), "ring=0", DEADLINE, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("in_use") && error.contains(&world.clusters[1].id), "{error}");
    assert!(error.contains("identity") && error.contains("gMSA") && error.contains("secret"), "{error}");
    assert_eq!(world.azure.mutations().len(), azure_setup, "a refused teardown sends nothing");

    // The whole fleet: the agents' part, then the shared resources, by the daemon
    // (fleet.ctl.teardown-shared), which refuses while any cluster still uses them.
    let records_before = coordinator::record::all(bus).await.unwrap();
    let all: std::collections::BTreeSet<String> = world.clusters.iter().map(|c| c.id.clone()).collect();
    let Command::Teardown(payload) = teardown(Mode::Apply, delete_all) else { unreachable!() };
    let identities: Vec<String> = coordinator::teardown::target_identities(&records_before, &all, &payload)
        .into_iter()
        .filter_map(|resource| match resource {
            proto::resources::SharedResource::Identity { id } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(identities.len(), 1, "both clusters share one identity");
    let shared_request = |teardown: Teardown| proto::control::TeardownSharedRequest {
        schema: proto::version::SchemaVersion::CURRENT,
        teardown,
        identities: identities.clone(),
        requested_by: Some("lifecycle".into()),
    };
    let call = |request| async move {
        coordinator::central::serve::call(bus, &request, Duration::from_secs(120)).await.unwrap()
    };
    let mut dry = payload.clone();
    dry.mode = Mode::DryRun;
    let proto::control::TeardownSharedReply::Done { steps: planned } = call(shared_request(dry)).await else {
        panic!("the dry run of the shared deletions was not done")
    };
    assert!(planned.iter().all(|s| s.change == Change::Planned), "{planned:?}");
    match call(shared_request(payload.clone())).await {
        proto::control::TeardownSharedReply::Refused { code, message } => {
            assert_eq!(code, "in_use", "{message}");
            assert!(message.contains(&world.clusters[0].id) && message.contains(&world.clusters[1].id), "{message}");
        }
        other => panic!("deleting what clusters use must be refused: {other:?}"),
    }
    assert_eq!(world.azure.mutations().len(), azure_setup, "a dry run and a refusal write nothing");
    for result in run_ok(bus, Command::Teardown(payload.clone()), "").await {
        assert!(result.status.is_success(), "{result:?}");
    }
    wait_released(bus).await;
    let shared = match call(shared_request(payload.clone())).await {
        proto::control::TeardownSharedReply::Done { steps } => steps,
        other => panic!("{other:?}"),
    };
    let steps: Vec<(&str, Change)> = shared.iter().map(|s| (s.step.as_str(), s.change)).collect();
    assert_eq!(
        steps,
        [
            ("secret-delete", Change::Changed),
            ("identity-delete", Change::Changed),
            ("gmsa-delete", Change::Changed),
            ("user-delete", Change::Changed)
        ]
    );

    assert_eq!(azure_state(&world), azure_before, "Azure is as before setup");
    let kube_after: Vec<Value> = world.clusters.iter().map(|c| c.kube.snapshot()).collect();
    assert_eq!(kube_after, kube_before, "Kubernetes is as before setup");
    assert_eq!(directory_state(dc), ad_before, "Active Directory is as before setup");
    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}

/// The coordinator's records once no cluster uses anything (the recorder is asynchronous).
async fn wait_released(bus: &bus::Bus) -> Vec<coordinator::record::ClusterRecord> {
    for _ in 0..100 {
        let records = coordinator::record::all(bus).await.unwrap();
        if records.iter().all(|r| r.in_use.is_empty()) {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the teardown results did not release the resources");
}
