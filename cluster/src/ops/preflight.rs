//! `preflight`: read the facts the checks in [`crate::preflight`] judge (discovery, webhook
//! configurations, Windows nodes, CoreDNS ConfigMaps) and return the report, or every failed
//! check as its own error. Only reads; runs before any write.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::{info, instrument};

use crate::ops::credspec::credspec_versions;
use crate::preflight::{
    Check, CheckFailure, Passed, PreflightConfig, PreflightFacts, PreflightReport, WINDOWS_NODE_SELECTOR, WebhookEntry,
    evaluate,
};

/// Why preflight did not pass.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Reading the facts of a check failed.
    #[error("preflight check {check}: reading the cluster failed")]
    Read {
        check: Check,
        #[source]
        source: kube::Error,
    },
    /// One or more checks failed; each failure names its check.
    #[error("preflight failed: {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ChecksFailed { failures: Vec<CheckFailure>, report: PreflightReport },
}

impl PreflightError {
    /// The checks that failed (the one whose read failed, for `Read`).
    pub fn failed_checks(&self) -> Vec<Check> {
        match self {
            PreflightError::Read { check, .. } => vec![*check],
            PreflightError::ChecksFailed { failures, .. } => failures.iter().map(CheckFailure::check).collect(),
        }
    }
}

/// Runs every check; `Ok` carries the report and the [`Passed`] token `apply` requires.
#[instrument(skip_all)]
pub async fn preflight(client: &Client, config: &PreflightConfig) -> Result<(PreflightReport, Passed), PreflightError> {
    let facts = read_facts(client, config).await?;
    let (report, failures) = evaluate(&facts, config);
    match report.api_version {
        Some(api_version) if failures.is_empty() => {
            info!(version = api_version.version(), "preflight passed");
            Ok((report, Passed::new(api_version)))
        }
        _ => Err(PreflightError::ChecksFailed { failures, report }),
    }
}

async fn read_facts(client: &Client, config: &PreflightConfig) -> Result<PreflightFacts, PreflightError> {
    let read = |check| move |source| PreflightError::Read { check, source };
    let mut facts = PreflightFacts {
        credspec_versions: credspec_versions(client).await.map_err(read(Check::CredspecCrd))?,
        ..PreflightFacts::default()
    };
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(read(Check::MutatingWebhook))?;
    for configuration in &mutating.items {
        for webhook in configuration.webhooks.iter().flatten() {
            facts.mutating_webhooks.push(webhook_entry(
                configuration.name_any(),
                &webhook.name,
                webhook.rules.as_deref(),
            ));
        }
    }
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(read(Check::ValidatingWebhook))?;
    for configuration in &validating.items {
        for webhook in configuration.webhooks.iter().flatten() {
            facts.validating_webhooks.push(webhook_entry(
                configuration.name_any(),
                &webhook.name,
                webhook.rules.as_deref(),
            ));
        }
    }
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(WINDOWS_NODE_SELECTOR))
        .await
        .map_err(read(Check::WindowsNode))?;
    facts.windows_nodes = nodes.items.iter().map(ResourceExt::name_any).collect();
    if config.dns_forward.is_some() {
        facts.corefiles = corefiles(client).await.map_err(read(Check::DnsForward))?;
    }
    Ok(facts)
}

fn webhook_entry(configuration: String, name: &str, rules: Option<&[RuleWithOperations]>) -> WebhookEntry {
    let rules = rules
        .unwrap_or_default()
        .iter()
        .map(|rule| {
            (
                rule.api_groups.clone().unwrap_or_default(),
                rule.resources.clone().unwrap_or_default(),
                rule.operations.clone().unwrap_or_default(),
            )
        })
        .collect();
    WebhookEntry { configuration, name: name.to_string(), rules }
}

/// `kube-system/coredns` `Corefile` and every `*.server` key of `kube-system/coredns-custom`.
async fn corefiles(client: &Client) -> Result<Vec<(String, String)>, kube::Error> {
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "kube-system");
    let mut corefiles = Vec::new();
    if let Some(coredns) = config_maps.get_opt("coredns").await?
        && let Some(corefile) = coredns.data.as_ref().and_then(|data| data.get("Corefile"))
    {
        corefiles.push(("kube-system/coredns:Corefile".to_string(), corefile.clone()));
    }
    if let Some(custom) = config_maps.get_opt("coredns-custom").await? {
        for (key, text) in custom.data.iter().flatten() {
            if key.ends_with(".server") {
                corefiles.push((format!("kube-system/coredns-custom:{key}"), text.clone()));
            }
        }
    }
    Ok(corefiles)
}
