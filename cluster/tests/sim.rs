//! The cluster adapter against kubesim through a real `kube::Client` over HTTP: apply is
//! idempotent and writes only differences, renames prune only what this owner created, each
//! preflight check fails on its own when its condition is removed, drift is reported and
//! repaired, and the sample workload is created and removed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::desired::{MANAGED_BY_KEY, OWNER_KEY};
use cluster::{
    ApplyError, ApplyRequest, Check, DnsForward, DriftCause, DriftEvent, DriftPolicy, ObjectKind, Passed,
    PreflightConfig, Remedy, ServiceAccountRef, VerifyConfig, WorkloadState,
};
use gmsa::credspec::{ApiVersion, CredSpec, CredSpecInputs};
use kube::Client;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::{ClusterSeed, CorednsForward, GmsaCrd, KubeSim, SimCluster};
use proto::outcome::{Change, Mode};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tower::util::MapRequestLayer;

/// Generous bound on waiting for a watch event; the test fails (not passes) when it runs out.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn mk_inputs(spec_name: &str) -> CredSpecInputs {
    CredSpecInputs {
        name: spec_name.into(),
        gmsa_account: "WebApp01".into(),
        netbios_domain: "CONTOSO".into(),
        dns_domain: "contoso.com".into(),
        dns_tree_root: "contoso.com".into(),
        domain_guid: "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f".into(),
        domain_sid: "S-1-5-21-3623811015-3361044348-30300820".into(),
        secret_uri: "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred".into(),
        managed_identity_object_id: "0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into(),
    }
}

fn mk_request(inputs: &CredSpecInputs) -> ApplyRequest {
    ApplyRequest {
        credspec: CredSpec::new(inputs).unwrap(),
        owner: "webapp".into(),
        bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
    }
}

/// Every request the client sent, as `METHOD /path`: kubesim (like the API server) does not
/// audit a no-op apply, so "writes nothing" is checked on the requests themselves.
#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>);

impl RequestLog {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Requests other than GET sent after the first `from`.
    fn writes_since(&self, from: usize) -> Vec<String> {
        self.0.lock().unwrap().iter().skip(from).filter(|request| !request.starts_with("GET ")).cloned().collect()
    }

    /// Like [`RequestLog::writes_since`], with each request's query (`PATCH /path?dryRun=All&…`).
    fn writes_with_query_since(&self, from: usize) -> Vec<String> {
        self.1.lock().unwrap().iter().skip(from).filter(|request| !request.starts_with("GET ")).cloned().collect()
    }
}

async fn mk_cluster(seed: ClusterSeed) -> (KubeSim, SimCluster, Client, RequestLog) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = KubeSim::start();
    let cluster = sim.add_cluster("c1", seed).await.unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let requests = RequestLog::default();
    let log = requests.clone();
    let record = MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
        log.0.lock().unwrap().push(format!("{} {}", request.method(), request.uri().path()));
        log.1.lock().unwrap().push(format!("{} {}", request.method(), request.uri()));
        request
    });
    let client = ClientBuilder::try_from(config).unwrap().with_layer(&record).build();
    (sim, cluster, client, requests)
}

async fn mk_passed(client: &Client) -> Passed {
    cluster::preflight(client, &PreflightConfig::default()).await.unwrap().1
}

fn diff_paths(outcome: &proto::outcome::StepOutcome) -> Vec<String> {
    outcome.diff.iter().map(|change| change.path.clone()).collect()
}

mod apply {
    use super::*;

    #[tokio::test]
    async fn second_apply_is_unchanged_and_writes_nothing() {
        let (_sim, sim_cluster, client, requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        let request = mk_request(&mk_inputs("aks-gmsa-spec"));

        let first = cluster::apply(&client, &request, &passed).await.unwrap();
        assert_eq!(first.change, Change::Changed);
        assert_eq!(
            diff_paths(&first),
            [
                "/GMSACredentialSpec/aks-gmsa-spec",
                "/ClusterRole/aks-gmsa-spec-role",
                "/RoleBinding/default/allow-default-svc-account-read-on-aks-gmsa-spec"
            ]
        );
        let writes_after_first = sim_cluster.api_mutations().len();
        assert_eq!(writes_after_first, 3);
        assert!(sim_cluster.api_mutations().iter().all(|entry| entry.field_manager.as_deref() == Some("gmsa-fleet")));

        let requests_before_second = requests.len();
        let second = cluster::apply(&client, &request, &passed).await.unwrap();
        assert_eq!(second.change, Change::Unchanged, "{:?}", second.diff);
        assert_eq!(sim_cluster.api_mutations().len(), writes_after_first);
        assert_eq!(requests.writes_since(requests_before_second), Vec::<String>::new());

        let stored = sim_cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").unwrap();
        let built = request.credspec.manifest(ApiVersion::V1);
        assert_eq!(stored["credspec"], built["credspec"]);
        assert_eq!(stored["metadata"]["labels"][MANAGED_BY_KEY], "gmsa-fleet");
        let role = sim_cluster.get("ClusterRole", None, "aks-gmsa-spec-role").unwrap();
        assert_eq!(role["rules"][0]["resourceNames"], json!(["aks-gmsa-spec"]));
        assert_eq!(role["rules"][0]["verbs"], json!(["use"]));
    }

    #[tokio::test]
    async fn one_changed_input_changes_exactly_that_field() {
        let (_sim, sim_cluster, client, requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        let mut inputs = mk_inputs("aks-gmsa-spec");
        cluster::apply(&client, &mk_request(&inputs), &passed).await.unwrap();
        let writes_before = sim_cluster.api_mutations().len();
        let requests_before = requests.len();

        inputs.domain_sid = "S-1-5-21-1-2-3".into();
        let outcome = cluster::apply(&client, &mk_request(&inputs), &passed).await.unwrap();
        assert_eq!(diff_paths(&outcome), ["/GMSACredentialSpec/aks-gmsa-spec/credspec/DomainJoinConfig/Sid"]);
        assert_eq!(outcome.diff[0].after, Some(json!("S-1-5-21-1-2-3")));
        let writes: Vec<_> = sim_cluster.api_mutations().into_iter().skip(writes_before).collect();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!(writes[0].kind, "GMSACredentialSpec");
        assert_eq!(
            requests.writes_since(requests_before),
            ["PATCH /apis/windows.k8s.io/v1/gmsacredentialspecs/aks-gmsa-spec"]
        );
        let stored = sim_cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").unwrap();
        assert_eq!(stored["credspec"]["DomainJoinConfig"]["Sid"], "S-1-5-21-1-2-3");
    }

    #[tokio::test]
    async fn rename_prunes_previous_objects_and_leaves_foreign_ones() {
        let (_sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        let unlabelled = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "hand-made-role"}, "rules": []});
        let other_owner = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "payroll-spec-role", "labels": {MANAGED_BY_KEY: "gmsa-fleet", OWNER_KEY: "payroll"}},
            "rules": []});
        let other_manager = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "helm-binding", "namespace": "default", "labels": {MANAGED_BY_KEY: "Helm", OWNER_KEY: "webapp"}},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
            "roleRef": {"kind": "ClusterRole", "name": "hand-made-role", "apiGroup": "rbac.authorization.k8s.io"}});
        for foreign in [&unlabelled, &other_owner, &other_manager] {
            sim_cluster.put(foreign.clone()).unwrap();
        }
        let foreign_before: Vec<_> = [
            ("ClusterRole", None, "hand-made-role"),
            ("ClusterRole", None, "payroll-spec-role"),
            ("RoleBinding", Some("default"), "helm-binding"),
        ]
        .iter()
        .map(|(kind, namespace, name)| sim_cluster.get(kind, *namespace, name).unwrap())
        .collect();

        cluster::apply(&client, &mk_request(&mk_inputs("old-spec")), &passed).await.unwrap();
        let outcome = cluster::apply(&client, &mk_request(&mk_inputs("new-spec")), &passed).await.unwrap();

        assert_eq!(
            outcome.observed["pruned"],
            json!([
                "RoleBinding/default/allow-default-svc-account-read-on-old-spec",
                "ClusterRole/old-spec-role",
                "GMSACredentialSpec/old-spec"
            ])
        );
        assert!(sim_cluster.get("GMSACredentialSpec", None, "old-spec").is_none());
        assert!(sim_cluster.get("ClusterRole", None, "old-spec-role").is_none());
        assert!(
            sim_cluster.get("RoleBinding", Some("default"), "allow-default-svc-account-read-on-old-spec").is_none()
        );
        assert!(sim_cluster.get("GMSACredentialSpec", None, "new-spec").is_some());
        let foreign_after: Vec<_> = [
            ("ClusterRole", None, "hand-made-role"),
            ("ClusterRole", None, "payroll-spec-role"),
            ("RoleBinding", Some("default"), "helm-binding"),
        ]
        .iter()
        .map(|(kind, namespace, name)| sim_cluster.get(kind, *namespace, name).unwrap())
        .collect();
        assert_eq!(foreign_after, foreign_before);
    }

    #[tokio::test]
    async fn unowned_object_at_a_desired_name_is_refused_before_any_write() {
        let (_sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        sim_cluster
            .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "aks-gmsa-spec-role"}, "rules": []}))
            .unwrap();
        let error = cluster::apply(&client, &mk_request(&mk_inputs("aks-gmsa-spec")), &passed).await.unwrap_err();
        assert!(matches!(error, ApplyError::NameConflict { .. }), "{error}");
        assert!(sim_cluster.api_mutations().is_empty());
    }

    /// The objects gmsa-fleet would write, as the simulator holds them (`None` when absent).
    fn our_objects(sim_cluster: &SimCluster, spec: &str) -> Vec<Option<serde_json::Value>> {
        vec![
            sim_cluster.get("GMSACredentialSpec", None, spec),
            sim_cluster.get("ClusterRole", None, &format!("{spec}-role")),
            sim_cluster.get("RoleBinding", Some("default"), &format!("allow-default-svc-account-read-on-{spec}")),
        ]
    }

    #[tokio::test]
    async fn dry_run_on_an_empty_cluster_plans_every_object_creates_none_and_is_the_later_apply() {
        let (_sim, sim_cluster, client, requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        let request = mk_request(&mk_inputs("aks-gmsa-spec"));
        let snapshot_before = sim_cluster.snapshot();
        let resource_version_before = sim_cluster.resource_version();
        let requests_before = requests.len();

        let planned = cluster::apply_in(&client, &request, &passed, Mode::DryRun).await.unwrap();
        assert_eq!((planned.step.as_str(), planned.change), ("credspec-apply", Change::Planned));
        assert_eq!(
            diff_paths(&planned),
            [
                "/GMSACredentialSpec/aks-gmsa-spec",
                "/ClusterRole/aks-gmsa-spec-role",
                "/RoleBinding/default/allow-default-svc-account-read-on-aks-gmsa-spec"
            ]
        );
        assert_eq!(our_objects(&sim_cluster, "aks-gmsa-spec"), [None, None, None], "nothing created");
        assert!(sim_cluster.list("GMSACredentialSpec").is_empty());
        assert!(sim_cluster.api_mutations().is_empty(), "{:?}", sim_cluster.api_mutations());
        assert_eq!(
            (sim_cluster.snapshot(), sim_cluster.resource_version()),
            (snapshot_before, resource_version_before)
        );
        let sent = requests.writes_with_query_since(requests_before);
        assert_eq!(sent.len(), 3, "each write judged by the API server: {sent:?}");
        assert!(sent.iter().all(|request| request.starts_with("PATCH ") && request.contains("dryRun=All")), "{sent:?}");

        let applied = cluster::apply_in(&client, &request, &passed, Mode::Apply).await.unwrap();
        assert_eq!((applied.change, &applied.diff), (Change::Changed, &planned.diff), "the plan was the apply");
        assert!(our_objects(&sim_cluster, "aks-gmsa-spec").iter().all(Option::is_some));
        let requests_before = requests.len();
        let writes_before = sim_cluster.api_mutations().len();
        let again = cluster::apply_in(&client, &request, &passed, Mode::DryRun).await.unwrap();
        assert_eq!((again.change, again.diff.len()), (Change::Unchanged, 0), "{:?}", again.diff);
        assert_eq!(requests.writes_since(requests_before), Vec::<String>::new());
        assert_eq!(sim_cluster.api_mutations().len(), writes_before);
    }

    #[tokio::test]
    async fn dry_run_of_a_rename_plans_the_prunes_and_keeps_the_old_objects() {
        let (_sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        cluster::apply(&client, &mk_request(&mk_inputs("old-spec")), &passed).await.unwrap();
        let snapshot_before = sim_cluster.snapshot();
        let writes_before = sim_cluster.api_mutations().len();

        let renamed = mk_request(&mk_inputs("new-spec"));
        let planned = cluster::apply_in(&client, &renamed, &passed, Mode::DryRun).await.unwrap();
        assert_eq!(planned.change, Change::Planned);
        assert_eq!(planned.observed["pruned"].as_array().map(Vec::len), Some(3), "{}", planned.observed);
        assert_eq!(sim_cluster.snapshot(), snapshot_before, "old objects kept, new ones not created");
        assert_eq!(sim_cluster.api_mutations().len(), writes_before);
        assert!(our_objects(&sim_cluster, "old-spec").iter().all(Option::is_some));

        let applied = cluster::apply_in(&client, &renamed, &passed, Mode::Apply).await.unwrap();
        assert_eq!((&applied.diff, &applied.observed), (&planned.diff, &planned.observed));
        assert_eq!(our_objects(&sim_cluster, "old-spec"), [None, None, None]);
    }

    #[tokio::test]
    async fn cluster_serving_only_v1alpha1_gets_v1alpha1() {
        let seed = ClusterSeed { gmsa_crd: GmsaCrd::Served { v1: false, v1alpha1: true }, ..ClusterSeed::default() };
        let (_sim, sim_cluster, client, _requests) = mk_cluster(seed).await;
        let passed = mk_passed(&client).await;
        assert_eq!(passed.api_version(), ApiVersion::V1Alpha1);
        let request = mk_request(&mk_inputs("aks-gmsa-spec"));
        cluster::apply(&client, &request, &passed).await.unwrap();
        let stored = sim_cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").unwrap();
        assert_eq!(stored["apiVersion"], "windows.k8s.io/v1alpha1");
        let again = cluster::apply(&client, &request, &passed).await.unwrap();
        assert_eq!(again.change, Change::Unchanged, "{:?}", again.diff);
    }
}

mod preflight {
    use super::*;

    fn mk_dns_config() -> PreflightConfig {
        PreflightConfig {
            dns_forward: Some(DnsForward { root_domain: "contoso.com".into(), server: "10.0.0.4".parse().unwrap() }),
        }
    }

    fn mk_ready_seed() -> ClusterSeed {
        ClusterSeed { coredns_forward: Some(CorednsForward::new("contoso.com", "10.0.0.4")), ..ClusterSeed::default() }
    }

    #[tokio::test]
    async fn ready_cluster_passes_every_check() {
        let (_sim, _cluster, client, _requests) = mk_cluster(mk_ready_seed()).await;
        let (report, passed) = cluster::preflight(&client, &mk_dns_config()).await.unwrap();
        assert_eq!(passed.api_version(), ApiVersion::V1);
        assert_eq!(report.verdicts.len(), 5);
        assert!(report.verdicts.iter().all(|verdict| verdict.passed), "{report:?}");
    }

    #[tokio::test]
    async fn each_removed_condition_fails_its_own_check() {
        type Removal = fn(&SimCluster);
        let cases: [(Removal, &[Check]); 4] = [
            (|c| c.set_gmsa_crd(GmsaCrd::Absent).unwrap(), &[Check::CredspecCrd]),
            (|c| c.remove_gmsa_webhook(), &[Check::MutatingWebhook, Check::ValidatingWebhook]),
            (|c| c.set_windows_nodes(0).unwrap(), &[Check::WindowsNode]),
            (|c| c.set_coredns_forward(None).unwrap(), &[Check::DnsForward]),
        ];
        for (remove, expected) in cases {
            let (_sim, sim_cluster, client, _requests) = mk_cluster(mk_ready_seed()).await;
            remove(&sim_cluster);
            let error = cluster::preflight(&client, &mk_dns_config()).await.unwrap_err();
            assert_eq!(error.failed_checks(), expected, "{error}");
            assert!(sim_cluster.api_mutations().is_empty());
        }
    }

    #[tokio::test]
    async fn dns_forward_to_another_server_fails() {
        let seed =
            ClusterSeed { coredns_forward: Some(CorednsForward::new("contoso.com", "10.9.9.9")), ..mk_ready_seed() };
        let (_sim, _cluster, client, _requests) = mk_cluster(seed).await;
        let error = cluster::preflight(&client, &mk_dns_config()).await.unwrap_err();
        assert_eq!(error.failed_checks(), [Check::DnsForward]);
    }
}

mod drift {
    use super::*;

    async fn mk_watched(
        policy: DriftPolicy,
    ) -> (KubeSim, SimCluster, mpsc::Receiver<DriftEvent>, watch::Sender<ApplyRequest>) {
        let (sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        let request = mk_request(&mk_inputs("aks-gmsa-spec"));
        cluster::apply(&client, &request, &passed).await.unwrap();
        let (requests_tx, requests_rx) = watch::channel(request);
        let (events_tx, events_rx) = mpsc::channel(16);
        tokio::spawn(cluster::watch_drift(client, passed, requests_rx, policy, events_tx));
        (sim, sim_cluster, events_rx, requests_tx)
    }

    async fn next_event(events: &mut mpsc::Receiver<DriftEvent>) -> DriftEvent {
        tokio::time::timeout(EVENT_TIMEOUT, events.recv()).await.expect("no drift event in time").expect("watch ended")
    }

    const BINDING: &str = "allow-default-svc-account-read-on-aks-gmsa-spec";

    #[tokio::test]
    async fn deleted_role_binding_is_reported_and_reapplied() {
        let (_sim, sim_cluster, mut events, _requests) = mk_watched(DriftPolicy::Reapply).await;
        sim_cluster.delete("RoleBinding", Some("default"), BINDING).unwrap().unwrap();

        let event = next_event(&mut events).await;
        assert_eq!(
            (event.kind, event.namespace.as_deref(), event.name.as_str()),
            (ObjectKind::RoleBinding, Some("default"), BINDING)
        );
        assert_eq!(event.cause, DriftCause::Deleted);
        assert_eq!(event.diff[0].path, format!("/RoleBinding/default/{BINDING}"));
        let Remedy::Reapplied { outcome } = &event.remedy else { panic!("not reapplied: {:?}", event.remedy) };
        assert_eq!(diff_paths(outcome), [format!("/RoleBinding/default/{BINDING}")]);
        let restored = sim_cluster.get("RoleBinding", Some("default"), BINDING).unwrap();
        assert_eq!(restored["roleRef"]["name"], "aks-gmsa-spec-role");
    }

    #[tokio::test]
    async fn edited_role_is_reported_only_under_report_only() {
        let (_sim, sim_cluster, mut events, _requests) = mk_watched(DriftPolicy::ReportOnly).await;
        sim_cluster
            .edit("ClusterRole", None, "aks-gmsa-spec-role", |role| role["rules"][0]["verbs"] = json!(["use", "get"]))
            .unwrap();

        let event = next_event(&mut events).await;
        assert_eq!(event.cause, DriftCause::Modified);
        assert_eq!(event.remedy, Remedy::Reported);
        assert_eq!(event.diff.len(), 1);
        assert_eq!(event.diff[0].path, "/ClusterRole/aks-gmsa-spec-role/rules");
        let role = sim_cluster.get("ClusterRole", None, "aks-gmsa-spec-role").unwrap();
        assert_eq!(role["rules"][0]["verbs"], json!(["use", "get"]));
    }
}

mod verify {
    use super::*;

    fn mk_verify_config() -> VerifyConfig {
        VerifyConfig {
            spec_name: "aks-gmsa-spec".into(),
            namespace: "default".into(),
            image: cluster::workload::DEFAULT_IMAGE.into(),
            timeout: EVENT_TIMEOUT,
        }
    }

    #[tokio::test]
    async fn unbound_service_account_reports_the_failing_condition_and_still_removes_the_workload() {
        let (_sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        let mut request = mk_request(&mk_inputs("aks-gmsa-spec"));
        request.bindings.clear();
        cluster::apply(&client, &request, &passed).await.unwrap();
        let report = cluster::verify(&client, &mk_verify_config()).await.unwrap();
        let WorkloadState::Failed { condition, message, .. } = &report.state else { panic!("{report:?}") };
        assert_eq!(condition, "ReplicaFailure=True", "{message}");
        // The gMSA webhook's refusal, decided by RBAC: no binding grants `use` on the credspec.
        assert!(
            message.contains("admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: service account \"default\" is not authorized to `use` gMSA cred spec \"aks-gmsa-spec\""),
            "{message}"
        );
        assert!(sim_cluster.get("Deployment", Some("default"), "gmsa-demo").is_none());
        assert!(sim_cluster.get("ConfigMap", Some("default"), "gmsa-demo").is_none());
    }

    #[tokio::test]
    async fn sample_workload_is_reported_and_removed() {
        let (_sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        cluster::apply(&client, &mk_request(&mk_inputs("aks-gmsa-spec")), &passed).await.unwrap();
        let report = cluster::verify(&client, &mk_verify_config()).await.unwrap();
        assert!(!report.timed_out, "{report:?}");
        assert_eq!(report.state, WorkloadState::Available);
        let created: Vec<_> = sim_cluster.api_mutations().into_iter().filter(|e| e.name == "gmsa-demo").collect();
        assert!(created.iter().any(|e| e.kind == "Deployment" && e.verb == "apply"), "{created:?}");
        assert!(sim_cluster.get("Deployment", Some("default"), "gmsa-demo").is_none());
        assert!(sim_cluster.get("ConfigMap", Some("default"), "gmsa-demo").is_none());
    }
}

mod remove {
    use super::*;
    use cluster::RemoveRequest;
    use proto::outcome::Mode;

    const BINDING: &str = "allow-default-svc-account-read-on-aks-gmsa-spec";

    fn mk_remove_request() -> RemoveRequest {
        RemoveRequest { spec_name: "aks-gmsa-spec".into(), owner: "webapp".into() }
    }

    /// A cluster with the spec applied, and its snapshot from before the apply.
    async fn mk_applied() -> (KubeSim, SimCluster, Client, RequestLog, serde_json::Value) {
        let (sim, sim_cluster, client, requests) = mk_cluster(ClusterSeed::default()).await;
        let before_setup = sim_cluster.snapshot();
        let passed = mk_passed(&client).await;
        cluster::apply(&client, &mk_request(&mk_inputs("aks-gmsa-spec")), &passed).await.unwrap();
        assert_ne!(sim_cluster.snapshot(), before_setup);
        (sim, sim_cluster, client, requests, before_setup)
    }

    #[tokio::test]
    async fn remove_after_apply_restores_the_pre_apply_snapshot_in_reverse_order() {
        let (_sim, sim_cluster, client, _requests, before_setup) = mk_applied().await;
        let writes_before = sim_cluster.api_mutations().len();

        let outcome = cluster::remove(&client, &mk_remove_request(), Mode::Apply).await.unwrap();
        assert_eq!(outcome.step, cluster::REMOVE_STEP);
        assert_eq!(outcome.change, Change::Changed);
        assert_eq!(
            diff_paths(&outcome),
            [
                format!("/RoleBinding/default/{BINDING}"),
                "/ClusterRole/aks-gmsa-spec-role".into(),
                "/GMSACredentialSpec/aks-gmsa-spec".into()
            ]
        );
        assert!(outcome.diff.iter().all(|change| change.before.is_some() && change.after.is_none()));
        assert_eq!(outcome.diff[1].before.as_ref().unwrap()["rules"][0]["resourceNames"], json!(["aks-gmsa-spec"]));
        let deletes: Vec<(String, String)> =
            sim_cluster.api_mutations().into_iter().skip(writes_before).map(|entry| (entry.verb, entry.kind)).collect();
        assert_eq!(
            deletes,
            [
                ("delete".to_string(), "RoleBinding".to_string()),
                ("delete".into(), "ClusterRole".into()),
                ("delete".into(), "GMSACredentialSpec".into())
            ]
        );
        assert_eq!(sim_cluster.snapshot(), before_setup);
    }

    #[tokio::test]
    async fn second_remove_is_unchanged_and_writes_nothing() {
        let (_sim, sim_cluster, client, requests, _before_setup) = mk_applied().await;
        cluster::remove(&client, &mk_remove_request(), Mode::Apply).await.unwrap();
        let writes_before = sim_cluster.api_mutations().len();
        let requests_before = requests.len();
        let again = cluster::remove(&client, &mk_remove_request(), Mode::Apply).await.unwrap();
        assert_eq!(again.change, Change::Unchanged, "{:?}", again.diff);
        assert!(again.diff.is_empty());
        assert_eq!(sim_cluster.api_mutations().len(), writes_before);
        assert_eq!(requests.writes_since(requests_before), Vec::<String>::new());
    }

    #[tokio::test]
    async fn dry_run_plans_the_removal_and_deletes_nothing() {
        let (_sim, sim_cluster, client, requests, _before_setup) = mk_applied().await;
        let snapshot_before = sim_cluster.snapshot();
        let writes_before = sim_cluster.api_mutations().len();
        let requests_before = requests.len();
        let planned = cluster::remove(&client, &mk_remove_request(), Mode::DryRun).await.unwrap();
        assert_eq!(planned.change, Change::Planned);
        assert_eq!(planned.diff.len(), 3);
        assert_eq!(planned.diff[2].path, "/GMSACredentialSpec/aks-gmsa-spec");
        assert_eq!(sim_cluster.api_mutations().len(), writes_before);
        assert_eq!(requests.writes_since(requests_before), Vec::<String>::new());
        assert_eq!(sim_cluster.snapshot(), snapshot_before);
        let applied = cluster::remove(&client, &mk_remove_request(), Mode::Apply).await.unwrap();
        assert_eq!(applied.diff, planned.diff);
    }

    #[tokio::test]
    async fn foreign_object_at_our_name_survives_and_is_reported_as_left() {
        let (_sim, sim_cluster, client, _requests, _before_setup) = mk_applied().await;
        // Someone replaced the ClusterRole with their own, without gmsa-fleet's labels.
        let foreign = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "aks-gmsa-spec-role", "labels": {"team": "platform"}}, "rules": []});
        sim_cluster.delete("ClusterRole", None, "aks-gmsa-spec-role").unwrap().unwrap();
        sim_cluster.put(foreign).unwrap();
        let foreign_before = sim_cluster.get("ClusterRole", None, "aks-gmsa-spec-role").unwrap();

        let outcome = cluster::remove(&client, &mk_remove_request(), Mode::Apply).await.unwrap();
        assert_eq!(
            diff_paths(&outcome),
            [format!("/RoleBinding/default/{BINDING}"), "/GMSACredentialSpec/aks-gmsa-spec".into()]
        );
        assert_eq!(
            outcome.observed["left"],
            json!([{"object": "ClusterRole/aks-gmsa-spec-role", "reason": "not ours"}])
        );
        assert_eq!(sim_cluster.get("ClusterRole", None, "aks-gmsa-spec-role").unwrap(), foreign_before);
        assert!(sim_cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").is_none());
        assert!(sim_cluster.get("RoleBinding", Some("default"), BINDING).is_none());
    }

    #[tokio::test]
    async fn read_credspec_returns_what_apply_wrote_at_the_served_version() {
        let (_sim, sim_cluster, client, _requests, _before_setup) = mk_applied().await;
        let read = cluster::read_credspec(&client, "aks-gmsa-spec").await.unwrap().unwrap();
        let built = mk_request(&mk_inputs("aks-gmsa-spec")).credspec.manifest(ApiVersion::V1);
        assert_eq!(read["apiVersion"], "windows.k8s.io/v1");
        assert_eq!(read["credspec"], built["credspec"]);
        assert_eq!(read["metadata"]["labels"][OWNER_KEY], "webapp");
        assert_eq!(read, sim_cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").unwrap());
        assert_eq!(cluster::read_credspec(&client, "no-such-spec").await.unwrap(), None);

        let seed = ClusterSeed { gmsa_crd: GmsaCrd::Served { v1: false, v1alpha1: true }, ..ClusterSeed::default() };
        let (_old_sim, _old_cluster, old_client, _old_requests) = mk_cluster(seed).await;
        let passed = mk_passed(&old_client).await;
        cluster::apply(&old_client, &mk_request(&mk_inputs("aks-gmsa-spec")), &passed).await.unwrap();
        let read = cluster::read_credspec(&old_client, "aks-gmsa-spec").await.unwrap().unwrap();
        assert_eq!(read["apiVersion"], "windows.k8s.io/v1alpha1");
        assert_eq!(read["credspec"], built["credspec"]);

        let seed = ClusterSeed { gmsa_crd: GmsaCrd::Absent, ..ClusterSeed::default() };
        let (_bare_sim, _bare_cluster, bare_client, _bare_requests) = mk_cluster(seed).await;
        assert_eq!(cluster::read_credspec(&bare_client, "aks-gmsa-spec").await.unwrap(), None);
    }
}

mod diagnostics {
    use super::*;
    use cluster::{Diagnostics, DiagnosticsRequest};
    use kubesim::InjectedEvent;

    fn mk_diagnostics_request() -> DiagnosticsRequest {
        DiagnosticsRequest { spec_name: "aks-gmsa-spec".into(), owner: "webapp".into(), since: None }
    }

    fn file(diagnostics: &Diagnostics, path: &str) -> serde_json::Value {
        let (_, bytes) = diagnostics
            .files
            .iter()
            .find(|(name, _)| name == path)
            .unwrap_or_else(|| panic!("no {path} in {:?} (notes {:?})", diagnostics.files, diagnostics.notes));
        serde_yaml::from_slice(bytes).unwrap()
    }

    #[tokio::test]
    async fn archive_holds_credspec_rbac_webhook_nodes_and_only_relevant_events() {
        let (_sim, sim_cluster, client, _requests) = mk_cluster(ClusterSeed::default()).await;
        let passed = mk_passed(&client).await;
        cluster::apply(&client, &mk_request(&mk_inputs("aks-gmsa-spec")), &passed).await.unwrap();
        sim_cluster
            .put(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gmsa-webhook", "namespace": "kube-system"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gmsa-webhook"}},
                    "template": {"metadata": {"labels": {"app": "gmsa-webhook"}},
                        "spec": {"containers": [{"name": "webhook", "image": "mcr.microsoft.com/aks/gmsa-webhook:v0.12",
                            "env": [{"name": "TLS_KEY", "value": "not-for-support"}]}]}}}}))
            .unwrap();
        let sandbox = InjectedEvent::warning(
            "Pod",
            Some("default"),
            "gmsa-demo-0",
            "FailedCreatePodSandBox",
            "Failed to create pod sandbox: ccg.exe could not retrieve credentials for credential spec aks-gmsa-spec",
        );
        let on_windows_node = InjectedEvent::warning("Node", None, "akswin000000", "NodeNotReady", "Node is not ready");
        let pulled =
            InjectedEvent::warning("Pod", Some("default"), "web-0", "Pulled", "Successfully pulled image nginx");
        let on_linux_node = InjectedEvent::warning(
            "Node",
            None,
            "aks-nodepool1-c1-vmss000000",
            "NodeNotReady",
            "Node is not ready (linux)",
        );
        for event in [&sandbox, &on_windows_node, &pulled, &on_linux_node] {
            sim_cluster.inject_event(event).unwrap();
        }

        let diagnostics = cluster::collect_diagnostics(&client, &mk_diagnostics_request()).await.unwrap();

        let credspec = file(&diagnostics, "kubernetes/credspec.yaml");
        assert_eq!(
            credspec["credspec"],
            mk_request(&mk_inputs("aks-gmsa-spec")).credspec.manifest(ApiVersion::V1)["credspec"]
        );
        assert!(credspec["metadata"].get("managedFields").is_none());
        assert_eq!(
            file(&diagnostics, "kubernetes/clusterrole.yaml")["rules"][0]["resourceNames"],
            json!(["aks-gmsa-spec"])
        );
        let bindings = file(&diagnostics, "kubernetes/rolebindings.yaml");
        assert_eq!(bindings["items"][0]["metadata"]["name"], "allow-default-svc-account-read-on-aks-gmsa-spec");
        let webhooks = file(&diagnostics, "kubernetes/webhook-configurations.yaml");
        let kinds: Vec<&str> =
            webhooks["items"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]);
        assert_eq!(webhooks["items"][0]["webhooks"][0]["name"], "admission-webhook.windows-gmsa.sigs.k8s.io");
        let deployment = file(&diagnostics, "kubernetes/webhook-deployment.yaml");
        assert_eq!(deployment["images"], json!(["mcr.microsoft.com/aks/gmsa-webhook:v0.12"]));
        let pods = file(&diagnostics, "kubernetes/webhook-pods.yaml");
        assert_eq!(pods["items"][0]["status"]["phase"], "Running");
        let nodes = file(&diagnostics, "kubernetes/windows-nodes.yaml");
        assert_eq!(nodes["items"].as_array().unwrap().len(), 1);
        assert_eq!(nodes["items"][0]["name"], "akswin000000");
        assert_eq!(nodes["items"][0]["nodeInfo"]["operatingSystem"], "windows");

        let events = file(&diagnostics, "kubernetes/events.yaml");
        let mut reasons: Vec<(String, String)> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (e["reason"].as_str().unwrap().to_string(), e["involvedObject"]["name"].as_str().unwrap().to_string())
            })
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                ("FailedCreatePodSandBox".to_string(), "gmsa-demo-0".to_string()),
                ("NodeNotReady".into(), "akswin000000".into())
            ]
        );
        let everything: String =
            diagnostics.files.iter().map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned()).collect();
        assert!(!everything.contains("nginx") && !everything.contains("(linux)"));
        assert!(!everything.contains("not-for-support") && !everything.contains("kind: Secret"));
        assert!(diagnostics.notes.is_empty(), "{:?}", diagnostics.notes);
    }

    #[tokio::test]
    async fn missing_pieces_are_notes_not_errors() {
        let seed = ClusterSeed { webhook: false, windows_nodes: 0, ..ClusterSeed::default() };
        let (_sim, _sim_cluster, client, requests) = mk_cluster(seed).await;
        let diagnostics = cluster::collect_diagnostics(&client, &mk_diagnostics_request()).await.unwrap();
        assert!(diagnostics.files.is_empty(), "{:?}", diagnostics.files);
        let notes = diagnostics.notes.join("\n");
        for expected in [
            "GMSACredentialSpec aks-gmsa-spec: not found",
            "ClusterRole aks-gmsa-spec-role: not found",
            "gMSA webhook",
            "Windows nodes: none",
            "Events: none",
        ] {
            assert!(notes.contains(expected), "{expected:?} missing in {notes}");
        }
        assert_eq!(requests.writes_since(0), Vec::<String>::new());
    }
}
