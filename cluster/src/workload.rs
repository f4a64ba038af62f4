//! The seed's sample workload (`gmsa-demo`: a ConfigMap with the IIS setup script and a
//! Deployment running it with `gmsaCredentialSpecName` on a Windows node), and the pure verdict
//! on a Deployment's status. The seed's LoadBalancer Service is left out: verification needs
//! the pod to start with the credspec, not a public IP.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::desired::{MANAGED_BY_KEY, MANAGED_BY_VALUE};

/// Name of the ConfigMap and Deployment (the seed's `gmsa-demo`).
pub const WORKLOAD_NAME: &str = "gmsa-demo";
/// The seed's image.
pub const DEFAULT_IMAGE: &str = "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2019";

/// The seed's `run.ps1`: configure IIS with Windows authentication, then serve.
const RUN_PS1: &str = r#"$ErrorActionPreference = "Stop"

Write-Output "Configuring IIS with authentication."

# Add required Windows features, since they are not installed by default.
Install-WindowsFeature "Web-Windows-Auth", "Web-Asp-Net45"

# Create simple ASP.NET page.
New-Item -Force -ItemType Directory -Path 'C:\inetpub\wwwroot\app'
Set-Content -Path 'C:\inetpub\wwwroot\app\default.aspx' -Value 'Authenticated as <B><%=User.Identity.Name%></B>, Type of Authentication: <B><%=User.Identity.AuthenticationType%></B>'

# Configure IIS with authentication.
Import-Module IISAdministration
Start-IISCommitDelay
(Get-IISConfigSection -SectionPath 'system.webServer/security/authentication/windowsAuthentication').Attributes['enabled'].value = $true
(Get-IISConfigSection -SectionPath 'system.webServer/security/authentication/anonymousAuthentication').Attributes['enabled'].value = $false
(Get-IISServerManager).Sites[0].Applications[0].VirtualDirectories[0].PhysicalPath = 'C:\inetpub\wwwroot\app'
Stop-IISCommitDelay

Write-Output "IIS with authentication is ready."

C:\ServiceMonitor.exe w3svc
"#;

/// What the verification runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyConfig {
    pub spec_name: String,
    pub namespace: String,
    pub image: String,
    pub timeout: std::time::Duration,
}

fn labels() -> Value {
    json!({ "app": WORKLOAD_NAME, MANAGED_BY_KEY: MANAGED_BY_VALUE })
}

/// The ConfigMap holding `run.ps1`.
pub fn config_map(config: &VerifyConfig) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": WORKLOAD_NAME, "namespace": config.namespace, "labels": labels() },
        "data": { "run.ps1": RUN_PS1 },
    })
}

/// The Deployment running IIS with the credspec on a Windows node.
pub fn deployment(config: &VerifyConfig) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": WORKLOAD_NAME, "namespace": config.namespace, "labels": labels() },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": WORKLOAD_NAME } },
            "template": {
                "metadata": { "labels": { "app": WORKLOAD_NAME } },
                "spec": {
                    "securityContext": { "windowsOptions": { "gmsaCredentialSpecName": config.spec_name } },
                    "containers": [{
                        "name": "iis",
                        "image": config.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["powershell"],
                        "args": ["-File", "/gmsa-demo/run.ps1"],
                        "volumeMounts": [{ "name": WORKLOAD_NAME, "mountPath": "/gmsa-demo" }],
                    }],
                    "volumes": [{ "name": WORKLOAD_NAME, "configMap": { "defaultMode": 420, "name": WORKLOAD_NAME } }],
                    "nodeSelector": { "kubernetes.io/os": "windows" },
                },
            },
        },
    })
}

/// The verdict on a Deployment's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum WorkloadState {
    /// `Available=True`.
    Available,
    /// A condition that will not resolve by waiting: `Progressing=False` (deadline exceeded) or
    /// `ReplicaFailure=True`.
    Failed { condition: String, reason: String, message: String },
    /// Neither yet.
    Pending,
}

/// Reads the verdict from a Deployment's `status.conditions`.
pub fn workload_state(deployment: &Value) -> WorkloadState {
    let empty = Vec::new();
    let conditions = deployment["status"]["conditions"].as_array().unwrap_or(&empty);
    let find = |kind: &str| conditions.iter().find(|condition| condition["type"] == kind);
    let text = |condition: &Value, key: &str| condition[key].as_str().unwrap_or_default().to_string();
    if find("Available").is_some_and(|condition| condition["status"] == "True") {
        return WorkloadState::Available;
    }
    for (kind, failing_status) in [("ReplicaFailure", "True"), ("Progressing", "False")] {
        if let Some(condition) = find(kind).filter(|condition| condition["status"] == failing_status) {
            return WorkloadState::Failed {
                condition: format!("{kind}={failing_status}"),
                reason: text(condition, "reason"),
                message: text(condition, "message"),
            };
        }
    }
    WorkloadState::Pending
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_config() -> VerifyConfig {
        VerifyConfig {
            spec_name: "aks-gmsa-spec".into(),
            namespace: "default".into(),
            image: DEFAULT_IMAGE.into(),
            timeout: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn deployment_uses_the_credspec_on_windows_nodes() {
        let deployment = deployment(&mk_config());
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["windowsOptions"]["gmsaCredentialSpecName"], "aks-gmsa-spec");
        assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "windows");
        assert_eq!(pod["containers"][0]["image"], DEFAULT_IMAGE);
        assert!(config_map(&mk_config())["data"]["run.ps1"].as_str().unwrap().contains("ServiceMonitor.exe w3svc"));
    }

    #[test]
    fn status_conditions_map_to_states() {
        let with = |conditions: Value| json!({ "status": { "conditions": conditions } });
        assert_eq!(workload_state(&json!({})), WorkloadState::Pending);
        assert_eq!(workload_state(&with(json!([{ "type": "Available", "status": "True" }]))), WorkloadState::Available);
        let failed = workload_state(&with(json!([
            { "type": "Available", "status": "False" },
            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out" },
        ])));
        assert_eq!(
            failed,
            WorkloadState::Failed {
                condition: "Progressing=False".into(),
                reason: "ProgressDeadlineExceeded".into(),
                message: "timed out".into()
            }
        );
        assert!(matches!(
            workload_state(&with(json!([{ "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate" }]))),
            WorkloadState::Failed { .. }
        ));
    }
}
