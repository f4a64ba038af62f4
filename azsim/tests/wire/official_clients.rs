//! The seed's Azure steps with Microsoft's own clients — the Azure CLI 2.91 and the Azure SDK
//! for Python (azure-identity, azure-mgmt-containerservice, azure-mgmt-keyvault,
//! azure-keyvault-secrets), from PyPI, installed by `scripts/test` into
//! `$GMSA_FLEET_TOOLS/venv-az` and `venv-sdk` (by default under `~/.cache/gmsa-fleet`). Nobody
//! here wrote them, so what passes here is what azsim gets right about Azure.
//!
//! The clients reach azsim by Azure's real host names through [`AzureSim::https_proxy`]
//! (`HTTPS_PROXY`, and `REQUESTS_CA_BUNDLE` naming the simulator's CA): no custom cloud, no
//! switched-off checks. Each test names the simulator behaviour it stands on (OIDC discovery,
//! `GET /subscriptions`, api-versions by rule, the resources list with `$filter`, the full vault
//! PUT, vault DNS names with the challenge-resource check on). A missing tool fails these tests
//! (it does not skip them): `scripts/test` installs the tools.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::*;

const RESOURCE_GROUP: &str = "myResourceGroup";
const CLUSTER: &str = "myAKSCluster";
const VAULT: &str = "myGMSAVault";

fn tools_root() -> PathBuf {
    match std::env::var_os("GMSA_FLEET_TOOLS") {
        Some(root) => PathBuf::from(root),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gmsa-fleet"),
    }
}

fn tool(venv: &str, name: &str) -> PathBuf {
    let path = tools_root().join(venv).join("bin").join(name);
    assert!(path.exists(), "{} not found — run scripts/test, which installs the official clients", path.display());
    path
}

/// What one run printed and how it ended.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// A simulator with the seed's cluster and vault, and a home for the clients' files.
struct Official {
    fixture: Fixture,
    cluster: SeededCluster,
    vault_id: String,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl Official {
    async fn start() -> Self {
        let fixture = mk_fixture(SimConfig { vault_dns_names: true, ..mk_config() }).await;
        let cluster = fixture.sim.add_managed_cluster(SUBSCRIPTION, RESOURCE_GROUP, CLUSTER, ClusterSeed::windows());
        let tenant = fixture.sim.tenant_id();
        let policy = AccessPolicyEntry {
            tenant_id: tenant,
            object_id: AGENT_OBJECT.to_string(),
            application_id: None,
            permissions: Permissions { secrets: vec!["get".into(), "set".into()], ..Permissions::default() },
        };
        let vault = fixture
            .sim
            .add_vault(
                SUBSCRIPTION,
                RESOURCE_GROUP,
                VAULT,
                VaultSeed { access_policies: vec![policy], ..VaultSeed::default() },
            )
            .await
            .expect("vault");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("azsim-ca.pem");
        std::fs::write(&ca_file, fixture.sim.ca_pem()).expect("CA file");
        Official { fixture, cluster, vault_id: vault.id, dir, ca_file }
    }

    /// Runs `program` with the proxy and CA in its environment; killed if the test ends first,
    /// its output captured (never the test's own stdout/stderr).
    async fn run(&self, program: &Path, args: &[&str]) -> Run {
        let child = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AZURE_CONFIG_DIR", self.dir.path().join("azure"))
            .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
            .env("AZURE_CORE_NO_COLOR", "true")
            .env("AZURE_CORE_SURVEY_MESSAGE", "false")
            .env("HTTPS_PROXY", self.fixture.sim.https_proxy())
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("SSL_CERT_FILE", &self.ca_file)
            .env("AZSIM_TENANT", self.fixture.sim.tenant_id())
            .env("AZSIM_CLIENT", AGENT_CLIENT)
            .env("AZSIM_SECRET", AGENT_SECRET)
            .env("AZSIM_SUBSCRIPTION", SUBSCRIPTION)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn");
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} did not finish in 120 s", program.display()))
            .expect("wait");
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn az(&self, args: &[&str]) -> String {
        let run = self.run(&tool("venv-az", "az"), args).await;
        assert!(run.success, "az {args:?} failed:\n{}{}", run.stdout, run.stderr);
        run.stdout
    }

    /// `az login` as the service principal, through the simulator's token endpoint.
    async fn az_login(&self) -> Value {
        let tenant = self.fixture.sim.tenant_id();
        let out = self
            .az(&[
                "login",
                "--service-principal",
                "-u",
                AGENT_CLIENT,
                "-p",
                AGENT_SECRET,
                "--tenant",
                &tenant,
                "-o",
                "json",
            ])
            .await;
        serde_json::from_str(&out).expect("az login prints JSON")
    }

    async fn python(&self, script: &str) -> Run {
        self.run(&tool("venv-sdk", "python"), &["-c", script]).await
    }
}

#[tokio::test]
async fn az_login_with_a_service_principal_lists_the_subscription() {
    let official = Official::start().await;
    let accounts = official.az_login().await;
    assert_eq!(accounts[0]["id"], SUBSCRIPTION, "{accounts}");
    assert_eq!(accounts[0]["tenantId"], official.fixture.sim.tenant_id());
    assert_eq!(accounts[0]["user"]["type"], "servicePrincipal");
}

#[tokio::test]
async fn az_aks_update_enables_then_disables_windows_gmsa() {
    let official = Official::start().await;
    official.az_login().await;
    official
        .az(&[
            "aks",
            "update",
            "--resource-group",
            RESOURCE_GROUP,
            "--name",
            CLUSTER,
            "--enable-windows-gmsa",
            "--gmsa-dns-server",
            "10.0.0.4",
            "--gmsa-root-domain-name",
            "contoso.com",
            "-o",
            "none",
        ])
        .await;
    let profile = official.fixture.sim.gmsa_profile(&official.cluster.id).expect("gMSA profile");
    assert_eq!(profile.enabled, Some(true), "{profile:?}");
    assert_eq!(profile.dns_server.as_deref(), Some("10.0.0.4"));
    assert_eq!(profile.root_domain_name.as_deref(), Some("contoso.com"));
    official
        .az(&[
            "aks",
            "update",
            "--resource-group",
            RESOURCE_GROUP,
            "--name",
            CLUSTER,
            "--disable-windows-gmsa",
            "-o",
            "none",
        ])
        .await;
    let profile = official.fixture.sim.gmsa_profile(&official.cluster.id).expect("gMSA profile");
    assert_eq!(profile.enabled, Some(false), "{profile:?}");
}

#[tokio::test]
async fn az_aks_show_queries_the_kubelet_identity() {
    let official = Official::start().await;
    official.az_login().await;
    let object_id = official
        .az(&[
            "aks",
            "show",
            "-g",
            RESOURCE_GROUP,
            "-n",
            CLUSTER,
            "--query",
            "identityProfile.kubeletidentity.objectId",
            "-o",
            "tsv",
        ])
        .await;
    assert_eq!(object_id.trim(), official.cluster.kubelet.object_id);
}

#[tokio::test]
async fn az_keyvault_set_policy_finds_the_vault_without_a_resource_group() {
    let official = Official::start().await;
    official.az_login().await;
    let kubelet = official.cluster.kubelet.object_id.clone();
    official
        .az(&[
            "keyvault",
            "set-policy",
            "--name",
            VAULT,
            "--object-id",
            &kubelet,
            "--secret-permissions",
            "get",
            "-o",
            "none",
        ])
        .await;
    let policies = official.fixture.sim.access_policies(&official.vault_id);
    let granted = policies.iter().find(|entry| entry.object_id == kubelet).expect("kubelet identity's policy");
    assert_eq!(granted.permissions.secrets, ["get"]);
    assert!(policies.iter().any(|entry| entry.object_id == AGENT_OBJECT), "the full PUT kept the other entries");
}

#[tokio::test]
async fn az_keyvault_secret_set_reaches_the_vault_by_its_dns_name() {
    let official = Official::start().await;
    official.az_login().await;
    let out = official
        .az(&[
            "keyvault",
            "secret",
            "set",
            "--vault-name",
            VAULT,
            "--name",
            "GMSADomainUserCred",
            "--value",
            "CONTOSO\\gmsauser:Passw0rd!",
            "-o",
            "json",
        ])
        .await;
    let secret: Value = serde_json::from_str(&out).expect("secret JSON");
    assert!(
        secret["id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred/"),
        "{secret}"
    );
    assert_eq!(
        official.fixture.sim.secret_value(&official.vault_id, "GMSADomainUserCred", None).as_deref(),
        Some("CONTOSO\\gmsauser:Passw0rd!")
    );
}

/// The SDK steps' common prologue: a credential through the simulator's Entra (with discovery).
const SDK_PROLOGUE: &str = r#"
import os, sys
from azure.identity import ClientSecretCredential
credential = ClientSecretCredential(os.environ["AZSIM_TENANT"], os.environ["AZSIM_CLIENT"], os.environ["AZSIM_SECRET"])
subscription = os.environ["AZSIM_SUBSCRIPTION"]
"#;

#[tokio::test]
async fn sdk_containerservice_enables_gmsa_and_reads_the_kubelet_identity_at_its_default_api_version() {
    let official = Official::start().await;
    let script = format!(
        "{SDK_PROLOGUE}
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice.models import WindowsGmsaProfile
client = ContainerServiceClient(credential, subscription)
cluster = client.managed_clusters.get('{RESOURCE_GROUP}', '{CLUSTER}')
cluster.windows_profile.gmsa_profile = WindowsGmsaProfile(enabled=True, dns_server='10.0.0.4', root_domain_name='contoso.com')
updated = client.managed_clusters.begin_create_or_update('{RESOURCE_GROUP}', '{CLUSTER}', cluster).result()
print(updated.windows_profile.gmsa_profile.enabled)
print(updated.identity_profile['kubeletidentity'].object_id)
"
    );
    let run = official.python(&script).await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, format!("True\n{}\n", official.cluster.kubelet.object_id));
    assert_eq!(official.fixture.sim.gmsa_profile(&official.cluster.id).expect("profile").enabled, Some(true));
}

#[tokio::test]
async fn sdk_keyvault_management_adds_the_kubelet_access_policy_at_its_default_api_version() {
    let official = Official::start().await;
    let kubelet = official.cluster.kubelet.object_id.clone();
    let script = format!(
        "{SDK_PROLOGUE}
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault.models import VaultAccessPolicyParameters, VaultAccessPolicyProperties, AccessPolicyEntry, Permissions
client = KeyVaultManagementClient(credential, subscription)
entry = AccessPolicyEntry(tenant_id=os.environ['AZSIM_TENANT'], object_id='{kubelet}', permissions=Permissions(secrets=['get']))
client.vaults.update_access_policy('{RESOURCE_GROUP}', '{VAULT}', 'add', VaultAccessPolicyParameters(properties=VaultAccessPolicyProperties(access_policies=[entry])))
print(client.vaults.get('{RESOURCE_GROUP}', '{VAULT}').properties.vault_uri)
"
    );
    let run = official.python(&script).await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "https://mygmsavault.vault.azure.net/\n");
    assert!(official.fixture.sim.access_policies(&official.vault_id).iter().any(|entry| entry.object_id == kubelet));
}

#[tokio::test]
async fn sdk_secret_client_sets_and_gets_with_the_challenge_resource_check_on() {
    let official = Official::start().await;
    let script = format!(
        "{SDK_PROLOGUE}
from azure.keyvault.secrets import SecretClient
client = SecretClient('https://mygmsavault.vault.azure.net/', credential)
client.set_secret('GMSADomainUserCred', 'CONTOSO\\\\gmsauser:Passw0rd!')
print(client.get_secret('GMSADomainUserCred').value)
"
    );
    let run = official.python(&script).await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "CONTOSO\\gmsauser:Passw0rd!\n");
}
