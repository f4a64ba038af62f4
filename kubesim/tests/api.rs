//! Drives simulated clusters with a real `kube::Client` loaded from the simulator's kubeconfig,
//! proving that what the cluster adapter relies on behaves as on a real API server.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, params::ValidationDirective};
use kube::discovery::Discovery;
use kube::runtime::watcher;
use kube::{Client, Config};
use kubesim::{ClusterSeed, GmsaCrd, InjectedEvent, KubeSim, SimCluster};
use serde_json::{Value, json};

#[path = "api/kubectl.rs"]
mod kubectl;

async fn mk_client(cluster: &SimCluster) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

async fn mk_cluster(sim: &KubeSim, name: &str, seed: ClusterSeed) -> (SimCluster, Client) {
    let cluster = sim.add_cluster(name, seed).await.unwrap();
    let client = mk_client(&cluster).await;
    (cluster, client)
}

fn credspec_resource(version: &str) -> ApiResource {
    ApiResource {
        group: "windows.k8s.io".into(),
        version: version.into(),
        api_version: format!("windows.k8s.io/{version}"),
        kind: "GMSACredentialSpec".into(),
        plural: "gmsacredentialspecs".into(),
    }
}

fn mk_credspec(name: &str, account: &str) -> Value {
    json!({"apiVersion": "windows.k8s.io/v1", "kind": "GMSACredentialSpec", "metadata": {"name": name},
        "credspec": {"ActiveDirectoryConfig": {
            "GroupManagedServiceAccounts": [{"Name": account, "Scope": "CONTOSO"}, {"Name": account, "Scope": "contoso.com"}],
            "HostAccountConfig": {"PluginGUID": "{CCC2A336-D7F3-4818-A213-272B7924213E}", "PortableCcgVersion": "1",
                "PluginInput": "ObjectId=00000000-0000-0000-0000-000000000001;SecretUri=https://v.vault.azure.net/secrets/s"}},
            "CmsPlugins": ["ActiveDirectory"],
            "DomainJoinConfig": {"DnsName": "contoso.com", "DnsTreeName": "contoso.com", "Guid": "244818ae-87ac-4fcd-92ec-e79e5252348a",
                "MachineAccountName": account, "NetBiosName": "CONTOSO", "Sid": "S-1-5-21-1-2-3"}}})
}

fn api_error(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_reports_served_groups_and_versions() {
    let sim = KubeSim::start();
    let (_, client) = mk_cluster(&sim, "both", ClusterSeed::default()).await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let gmsa = discovery.get("windows.k8s.io").expect("gMSA group served");
    assert_eq!(gmsa.preferred_version_or_latest(), "v1");
    let (resource, capabilities) = gmsa.recommended_kind("GMSACredentialSpec").unwrap();
    assert_eq!(resource.plural, "gmsacredentialspecs");
    assert_eq!(capabilities.scope, kube::discovery::Scope::Cluster);
    assert!(discovery.get("apps").unwrap().recommended_kind("Deployment").is_some());
    assert_eq!(client.apiserver_version().await.unwrap().major, "1");

    let seed = ClusterSeed { gmsa_crd: GmsaCrd::Served { v1: false, v1alpha1: true }, ..ClusterSeed::default() };
    let (old_cluster, old_client) = mk_cluster(&sim, "old", seed).await;
    let discovery = Discovery::new(old_client.clone()).run().await.unwrap();
    let versions: Vec<&str> = discovery.get("windows.k8s.io").unwrap().versions().collect();
    assert_eq!(versions, ["v1alpha1"]);

    old_cluster.set_gmsa_crd(GmsaCrd::Absent).unwrap();
    let discovery = Discovery::new(old_client).run().await.unwrap();
    assert!(!discovery.has_group("windows.k8s.io"));
}

#[tokio::test]
async fn server_side_apply_creates_skips_no_ops_and_tracks_managers() {
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "ssa", ClusterSeed::default()).await;
    let specs: Api<DynamicObject> = Api::all_with(client, &credspec_resource("v1"));
    let params = PatchParams::apply("gmsa-fleet");

    let created =
        specs.patch("aks-gmsa-spec", &params, &Patch::Apply(mk_credspec("aks-gmsa-spec", "WebApp01"))).await.unwrap();
    let first_version = created.metadata.resource_version.clone().unwrap();
    let managed = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("gmsa-fleet"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let owned = serde_json::to_value(managed[0].fields_v1.clone().unwrap()).unwrap();
    assert!(owned["f:credspec"]["f:DomainJoinConfig"].get("f:MachineAccountName").is_some());

    let again =
        specs.patch("aks-gmsa-spec", &params, &Patch::Apply(mk_credspec("aks-gmsa-spec", "WebApp01"))).await.unwrap();
    assert_eq!(
        again.metadata.resource_version.as_deref(),
        Some(first_version.as_str()),
        "a no-op apply keeps resourceVersion"
    );

    let changed =
        specs.patch("aks-gmsa-spec", &params, &Patch::Apply(mk_credspec("aks-gmsa-spec", "WebApp02"))).await.unwrap();
    assert_ne!(changed.metadata.resource_version.as_deref(), Some(first_version.as_str()));
    assert_eq!(changed.data["credspec"]["DomainJoinConfig"]["MachineAccountName"], "WebApp02");
    assert_eq!(changed.metadata.generation, Some(2));

    // Another manager's differing value conflicts unless forced.
    let other = PatchParams::apply("someone-else");
    let error =
        specs.patch("aks-gmsa-spec", &other, &Patch::Apply(mk_credspec("aks-gmsa-spec", "Evil"))).await.unwrap_err();
    let status = api_error(error);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    specs.patch("aks-gmsa-spec", &other.force(), &Patch::Apply(mk_credspec("aks-gmsa-spec", "Evil"))).await.unwrap();

    // dryRun=All answers without storing.
    let dry = PatchParams::apply("gmsa-fleet").force().dry_run();
    specs.patch("aks-gmsa-spec", &dry, &Patch::Apply(mk_credspec("aks-gmsa-spec", "Dry"))).await.unwrap();
    let stored = cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").unwrap();
    assert_eq!(stored["credspec"]["DomainJoinConfig"]["MachineAccountName"], "Evil");

    let applies: Vec<_> = cluster.api_mutations().into_iter().map(|e| (e.verb, e.field_manager)).collect();
    assert_eq!(
        applies.len(),
        3,
        "create, change and forced apply are mutations; the no-op and dry run are not: {applies:?}"
    );
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let sim = KubeSim::start();
    let (_, client) = mk_cluster(&sim, "rv", ClusterSeed::default()).await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut configmap: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})).unwrap();
    let created = configmaps.create(&PostParams::default(), &configmap).await.unwrap();
    let duplicate = api_error(configmaps.create(&PostParams::default(), &configmap).await.unwrap_err());
    assert_eq!((duplicate.code, duplicate.reason.as_str()), (409, "AlreadyExists"));

    configmap.metadata.resource_version = created.metadata.resource_version.clone();
    configmap.data = Some([("k".to_owned(), "2".to_owned())].into());
    configmaps.replace("c", &PostParams::default(), &configmap).await.unwrap();
    configmap.data = Some([("k".to_owned(), "3".to_owned())].into());
    let status = api_error(configmaps.replace("c", &PostParams::default(), &configmap).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(status.message.contains("the object has been modified"));
}

#[tokio::test]
async fn credspec_schema_is_enforced() {
    let sim = KubeSim::start();
    let (_, client) = mk_cluster(&sim, "schema", ClusterSeed::default()).await;
    let specs: Api<DynamicObject> = Api::all_with(client, &credspec_resource("v1"));
    let mut strict = PatchParams::apply("gmsa-fleet");
    strict.field_validation = Some(ValidationDirective::Strict);

    let mut unknown = mk_credspec("s1", "WebApp01");
    unknown["credspec"]["DomainJoinConfig"]["Bogus"] = json!("x");
    let status = api_error(specs.patch("s1", &strict, &Patch::Apply(unknown.clone())).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert!(status.message.contains("unknown field \"credspec.DomainJoinConfig.Bogus\""), "{}", status.message);
    // Without Strict the real server prunes the field and stores the rest.
    let pruned = specs.patch("s1", &PatchParams::apply("gmsa-fleet"), &Patch::Apply(unknown)).await.unwrap();
    assert!(pruned.data["credspec"]["DomainJoinConfig"].get("Bogus").is_none());

    let mut wrong_type = mk_credspec("s2", "WebApp01");
    wrong_type["credspec"]["CmsPlugins"] = json!("ActiveDirectory");
    let status = api_error(specs.patch("s2", &strict, &Patch::Apply(wrong_type)).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let cause_fields: Vec<String> = status.details.unwrap().causes.into_iter().map(|c| c.field).collect();
    assert_eq!(cause_fields, ["credspec.CmsPlugins"]);

    // The published CRD declares no required properties; the one required field is the name.
    let mut nameless = mk_credspec("", "WebApp01");
    nameless["metadata"] = json!({});
    let nameless: DynamicObject = serde_json::from_value(nameless).unwrap();
    let status = api_error(specs.create(&PostParams::default(), &nameless).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains("metadata.name: Required value"), "{}", status.message);

    let bad_name =
        api_error(specs.patch("Bad_Name", &strict, &Patch::Apply(mk_credspec("Bad_Name", "a"))).await.unwrap_err());
    assert_eq!(bad_name.code, 422);
}

#[tokio::test]
async fn role_ref_is_immutable_and_strategic_merge_is_refused_for_custom_resources() {
    let sim = KubeSim::start();
    let (_, client) = mk_cluster(&sim, "rbac", ClusterSeed::default()).await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "default");
    let binding = |role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "allow", "namespace": "default"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
        "roleRef": {"kind": "ClusterRole", "name": role, "apiGroup": "rbac.authorization.k8s.io"}})
    };
    let params = PatchParams::apply("gmsa-fleet");
    bindings.patch("allow", &params, &Patch::Apply(binding("a"))).await.unwrap();
    let status = api_error(bindings.patch("allow", &params, &Patch::Apply(binding("b"))).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains("cannot change roleRef"));

    let specs: Api<DynamicObject> = Api::all_with(client, &credspec_resource("v1"));
    specs.patch("s", &params, &Patch::Apply(mk_credspec("s", "a"))).await.unwrap();
    let strategic = Patch::Strategic(json!({"credspec": {"CmsPlugins": []}}));
    let status = api_error(specs.patch("s", &PatchParams::default(), &strategic).await.unwrap_err());
    assert_eq!(status.code, 415);
}

#[tokio::test]
async fn watch_delivers_out_of_band_delete_and_expires_old_versions() {
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "watch", ClusterSeed::default()).await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "default");
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "allow", "namespace": "default", "labels": {"app.kubernetes.io/managed-by": "gmsa-fleet"}},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
        "roleRef": {"kind": "ClusterRole", "name": "aks-gmsa-role", "apiGroup": "rbac.authorization.k8s.io"}});
    bindings.patch("allow", &PatchParams::apply("gmsa-fleet"), &Patch::Apply(binding)).await.unwrap();

    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=gmsa-fleet");
    let mut events = watcher(bindings.clone(), config).boxed();
    loop {
        if let watcher::Event::InitDone = events.try_next().await.unwrap().unwrap() {
            break;
        }
    }
    cluster.delete("RoleBinding", Some("default"), "allow").unwrap().expect("binding existed");
    match events.try_next().await.unwrap().unwrap() {
        watcher::Event::Delete(deleted) => assert_eq!(deleted.metadata.name.as_deref(), Some("allow")),
        other => panic!("expected a delete, got {other:?}"),
    }

    let old_version = cluster.resource_version().to_string();
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "default");
    let configmap: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "bump"}})).unwrap();
    configmaps.create(&PostParams::default(), &configmap).await.unwrap();
    cluster.compact_history();
    let mut stream = configmaps.watch(&WatchParams::default().timeout(5), &old_version).await.unwrap().boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => assert_eq!(status.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_sees_an_object_that_stops_and_starts_matching_its_selector_as_deleted_and_added() {
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "relabel", ClusterSeed::default()).await;
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    let labelled: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "m", "labels": {"app.kubernetes.io/managed-by": "gmsa-fleet"}}}),
    )
    .unwrap();
    maps.create(&PostParams::default(), &labelled).await.unwrap();
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=gmsa-fleet");
    let mut events = watcher(maps.clone(), config).boxed();
    loop {
        if let watcher::Event::InitDone = events.try_next().await.unwrap().unwrap() {
            break;
        }
    }
    // Someone removes our label: to a selector watch the object is gone (as the API server's watch cache says).
    cluster
        .edit("ConfigMap", Some("default"), "m", |object| {
            object["metadata"]["labels"] = json!({"owner": "someone-else"});
        })
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.try_next()).await;
    match next.expect("an event within 5s").unwrap().unwrap() {
        watcher::Event::Delete(deleted) => assert_eq!(deleted.metadata.name.as_deref(), Some("m")),
        other => panic!("expected a delete, got {other:?}"),
    }
    // The label comes back: the object appears again.
    cluster
        .edit("ConfigMap", Some("default"), "m", |object| {
            object["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "gmsa-fleet"});
        })
        .unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.try_next()).await;
    match next.expect("an event within 5s").unwrap().unwrap() {
        watcher::Event::Apply(added) => assert_eq!(added.metadata.name.as_deref(), Some("m")),
        other => panic!("expected the object back, got {other:?}"),
    }
}

#[tokio::test]
async fn deployment_availability_follows_gmsa_preconditions() {
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "verify", ClusterSeed::default()).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gmsa-demo", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gmsa-demo"}}, "template": {"metadata": {"labels": {"app": "gmsa-demo"}},
            "spec": {"securityContext": {"windowsOptions": {"gmsaCredentialSpecName": "aks-gmsa-spec"}},
                "nodeSelector": {"kubernetes.io/os": "windows"}, "containers": [{"name": "iis", "image": "iis"}]}}}});
    let params = PatchParams::apply("gmsa-fleet");
    deployments.patch("gmsa-demo", &params, &Patch::Apply(deployment)).await.unwrap();
    let available = |d: &Deployment| {
        d.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True"))
    };
    let failing = deployments.get("gmsa-demo").await.unwrap();
    assert!(!available(&failing));
    let failure = failing
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("ReplicaFailure"))
        .unwrap();
    assert!(failure.message.unwrap().contains("cred spec aks-gmsa-spec does not exist"));

    let specs: Api<DynamicObject> = Api::all_with(client.clone(), &credspec_resource("v1"));
    specs.patch("aks-gmsa-spec", &params, &Patch::Apply(mk_credspec("aks-gmsa-spec", "WebApp01"))).await.unwrap();
    cluster.put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "aks-gmsa-role"},
        "rules": [{"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["use"], "resourceNames": ["aks-gmsa-spec"]}]})).unwrap();
    cluster.put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "allow", "namespace": "default"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
        "roleRef": {"kind": "ClusterRole", "name": "aks-gmsa-role", "apiGroup": "rbac.authorization.k8s.io"}})).unwrap();
    assert!(available(&deployments.get("gmsa-demo").await.unwrap()));

    cluster.set_windows_nodes(0).unwrap();
    assert!(!available(&deployments.get("gmsa-demo").await.unwrap()));
    let nodes: Api<Node> = Api::all(client);
    let windows = nodes.list(&ListParams::default().labels("kubernetes.io/os=windows")).await.unwrap();
    assert!(windows.items.is_empty());

    deployments.delete("gmsa-demo", &DeleteParams::default()).await.unwrap();
    assert!(cluster.get("Deployment", Some("default"), "gmsa-demo").is_none());
}

#[tokio::test]
async fn events_are_created_and_selected_by_involved_object_across_namespaces() {
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "events", ClusterSeed::default()).await;
    let sandbox = InjectedEvent::warning(
        "Node",
        None,
        "akswin000000",
        "FailedCreatePodSandBox",
        "ccg.exe: failed to retrieve credentials for credspec aks-gmsa-spec",
    );
    let injected = cluster.inject_event(&sandbox).unwrap();
    assert_eq!(injected["metadata"]["namespace"], "default");
    let in_default: Api<Event> = Api::namespaced(client.clone(), "default");
    let pulled = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-0.pulled", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"}, "reason": "Pulled",
        "message": "Successfully pulled image nginx", "type": "Normal"});
    in_default.create(&PostParams::default(), &serde_json::from_value(pulled).unwrap()).await.unwrap();
    let in_kube_system: Api<Event> = Api::namespaced(client.clone(), "kube-system");
    let webhook_event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "gmsa-webhook.x", "namespace": "kube-system"},
        "involvedObject": {"kind": "Pod", "name": "gmsa-webhook-0", "namespace": "kube-system"}, "reason": "BackOff", "type": "Warning"});
    in_kube_system.create(&PostParams::default(), &serde_json::from_value(webhook_event).unwrap()).await.unwrap();

    let everywhere: Api<Event> = Api::all(client.clone());
    let names = |list: kube::core::ObjectList<Event>| -> Vec<String> {
        list.items.into_iter().map(|e| e.metadata.name.unwrap()).collect()
    };
    assert_eq!(names(everywhere.list(&ListParams::default()).await.unwrap()).len(), 3);
    let on_node = ListParams::default().fields("involvedObject.kind=Node,involvedObject.name=akswin000000");
    assert_eq!(
        names(everywhere.list(&on_node).await.unwrap()),
        [injected["metadata"]["name"].as_str().unwrap().to_string()]
    );
    let warnings = ListParams::default().fields("type=Warning");
    assert_eq!(names(in_kube_system.list(&warnings).await.unwrap()), ["gmsa-webhook.x"]);
    assert_eq!(names(in_default.list(&ListParams::default().fields("reason=Pulled")).await.unwrap()), ["web-0.pulled"]);

    let configmaps: Api<ConfigMap> = Api::all(client.clone());
    let refused = configmaps.list(&ListParams::default().fields("involvedObject.kind=Node")).await.unwrap_err();
    assert_eq!(api_error(refused).code, 400);
    let misplaced = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "wrong", "namespace": "kube-system"},
        "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"}, "reason": "X"});
    let refused = in_kube_system.create(&PostParams::default(), &serde_json::from_value(misplaced).unwrap()).await;
    assert_eq!(api_error(refused.unwrap_err()).code, 422);
}

#[tokio::test]
async fn snapshot_returns_to_equal_after_create_and_delete_and_omits_volatile_metadata() {
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "snap", ClusterSeed::default()).await;
    let before = cluster.snapshot();
    assert_eq!(cluster.snapshot(), before);
    assert!(before.to_string().contains("akswin000000"));
    for volatile in ["resourceVersion", "\"uid\"", "creationTimestamp", "managedFields", "generation"] {
        assert!(!before.to_string().contains(volatile), "{volatile} in snapshot");
    }

    let specs: Api<DynamicObject> = Api::all_with(client.clone(), &credspec_resource("v1"));
    let params = PatchParams::apply("gmsa-fleet");
    specs.patch("aks-gmsa-spec", &params, &Patch::Apply(mk_credspec("aks-gmsa-spec", "WebApp01"))).await.unwrap();
    let during = cluster.snapshot();
    assert_ne!(during, before);
    assert!(during.to_string().contains("WebApp01"));
    specs.delete("aks-gmsa-spec", &DeleteParams::default()).await.unwrap();
    assert_eq!(cluster.snapshot(), before);

    let configmaps: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    configmaps.patch("coredns", &PatchParams::default(), &Patch::Merge(json!({"data": {"extra": "1"}}))).await.unwrap();
    assert_ne!(cluster.snapshot(), before);
}

#[tokio::test]
async fn subject_access_reviews_answer_from_rbac_and_refusals_are_403_status_bodies() {
    use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
    let sim = KubeSim::start();
    let (cluster, client) = mk_cluster(&sim, "sar", ClusterSeed::default()).await;
    cluster
        .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "aks-gmsa-role"},
            "rules": [{"apiGroups": ["windows.k8s.io"], "resources": ["gmsacredentialspecs"], "verbs": ["use"], "resourceNames": ["aks-gmsa-spec"]}]}))
        .unwrap();
    cluster
        .put(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "allow-default-svc-account-read-on-aks-gmsa-spec", "namespace": "default"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
            "roleRef": {"kind": "ClusterRole", "name": "aks-gmsa-role", "apiGroup": "rbac.authorization.k8s.io"}}))
        .unwrap();
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let ask = |user: &str, name: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(vec!["system:serviceaccounts".into(), "system:serviceaccounts:default".into()]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("default".into()),
                verb: Some("use".into()),
                group: Some("windows.k8s.io".into()),
                resource: Some("gmsacredentialspecs".into()),
                name: Some(name.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let allowed = reviews
        .create(&PostParams::default(), &ask("system:serviceaccount:default:default", "aks-gmsa-spec"))
        .await
        .unwrap();
    let status = allowed.status.unwrap();
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some(
            "RBAC: allowed by RoleBinding \"allow-default-svc-account-read-on-aks-gmsa-spec/default\" of ClusterRole \"aks-gmsa-role\" to ServiceAccount \"default/default\""
        )
    );
    let denied =
        reviews.create(&PostParams::default(), &ask("system:serviceaccount:default:default", "other")).await.unwrap();
    assert!(!denied.status.unwrap().allowed);

    // The service account's own token: a 403 `Status` for what RBAC does not grant.
    let token = cluster.service_account_token("default", "default");
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig_with_token(&token)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let as_account = Client::try_from(config).unwrap();
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(as_account);
    let status = api_error(roles.delete("aks-gmsa-role", &DeleteParams::default()).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "clusterroles.rbac.authorization.k8s.io \"aks-gmsa-role\" is forbidden: User \"system:serviceaccount:default:default\" cannot delete resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"
    );
    assert!(cluster.get("ClusterRole", None, "aks-gmsa-role").is_some());
}
