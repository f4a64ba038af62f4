//! Preflight verdicts, decided from facts read before any write: each check is named, each
//! failure is its own error, and the report keeps every verdict for the coordinator's record.
//!
//! | check                 | passes when                                                                  |
//! |-----------------------|------------------------------------------------------------------------------|
//! | `credspec-crd`        | discovery shows `windows.k8s.io` serving `gmsacredentialspecs` in v1 or v1alpha1 |
//! | `mutating-webhook`    | a MutatingWebhookConfiguration holds the windows-gmsa webhook for pod CREATE |
//! | `validating-webhook`  | a ValidatingWebhookConfiguration holds it for pod CREATE                     |
//! | `windows-node`        | at least one node labelled `kubernetes.io/os=windows`                        |
//! | `dns-forward`         | (only when a DNS server is configured) CoreDNS forwards the root domain to it |
//!
//! The webhook is recognised by its webhook entry name, `admission-webhook.windows-gmsa.sigs.k8s.io`,
//! which kubernetes-sigs/windows-gmsa uses in both its deploy script and its Helm chart; the
//! *configuration* objects are named after the release (`gmsa-webhook` by the script, the Helm
//! release name, or whatever the AKS add-on chose), so their names are not checked.

use std::net::IpAddr;

use gmsa::credspec::ApiVersion;
use serde::{Deserialize, Serialize};

use crate::corefile;

/// The webhook entry name of the windows-gmsa admission webhook (mutating and validating).
pub const GMSA_WEBHOOK_NAME: &str = "admission-webhook.windows-gmsa.sigs.k8s.io";
/// The node label that marks Windows nodes.
pub const WINDOWS_NODE_SELECTOR: &str = "kubernetes.io/os=windows";

/// The preflight checks, named as operators and tests refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    CredspecCrd,
    MutatingWebhook,
    ValidatingWebhook,
    WindowsNode,
    DnsForward,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::CredspecCrd => "credspec-crd",
            Check::MutatingWebhook => "mutating-webhook",
            Check::ValidatingWebhook => "validating-webhook",
            Check::WindowsNode => "windows-node",
            Check::DnsForward => "dns-forward",
        })
    }
}

/// The DNS forward the cluster should have (`--gmsa-dns-server`, `--gmsa-root-domain-name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsForward {
    pub root_domain: String,
    pub server: IpAddr,
}

/// What the preflight expects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PreflightConfig {
    /// When set, the `dns-forward` check runs.
    pub dns_forward: Option<DnsForward>,
}

/// One webhook entry of a Mutating or Validating webhook configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEntry {
    /// The configuration object's name.
    pub configuration: String,
    /// The webhook entry's name (`admission-webhook.windows-gmsa.sigs.k8s.io`).
    pub name: String,
    /// The entry's rules: `(apiGroups, resources, operations)`.
    pub rules: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
}

impl WebhookEntry {
    /// True when one rule matches CREATE of core-group pods (`*` wildcards count).
    pub fn intercepts_pod_create(&self) -> bool {
        let has = |values: &[String], wanted: &str| values.iter().any(|value| value == wanted || value == "*");
        self.rules.iter().any(|(groups, resources, operations)| {
            has(groups, "") && has(resources, "pods") && has(operations, "CREATE")
        })
    }
}

/// Everything the checks look at, read from the cluster by `ops::preflight`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightFacts {
    /// Versions of `windows.k8s.io` that serve `gmsacredentialspecs`.
    pub credspec_versions: Vec<String>,
    pub mutating_webhooks: Vec<WebhookEntry>,
    pub validating_webhooks: Vec<WebhookEntry>,
    /// Names of nodes labelled `kubernetes.io/os=windows`.
    pub windows_nodes: Vec<String>,
    /// Corefile texts with where each came from (`kube-system/coredns:Corefile`).
    pub corefiles: Vec<(String, String)>,
}

/// A failed check, one variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckFailure {
    /// The GMSACredentialSpec CRD is not served in a version gmsa-fleet writes.
    #[error(
        "credspec-crd: windows.k8s.io does not serve gmsacredentialspecs in v1 or v1alpha1 (served: {served:?}); install the windows-gmsa CRD (az aks update --enable-windows-gmsa)"
    )]
    CrdNotServed { served: Vec<String> },
    /// No MutatingWebhookConfiguration registers the windows-gmsa webhook for pod creation.
    #[error("mutating-webhook: no MutatingWebhookConfiguration has webhook {GMSA_WEBHOOK_NAME} for pod CREATE")]
    MutatingWebhookMissing,
    /// No ValidatingWebhookConfiguration registers the windows-gmsa webhook for pod creation.
    #[error("validating-webhook: no ValidatingWebhookConfiguration has webhook {GMSA_WEBHOOK_NAME} for pod CREATE")]
    ValidatingWebhookMissing,
    /// No node is labelled `kubernetes.io/os=windows`.
    #[error("windows-node: no node is labelled {WINDOWS_NODE_SELECTOR}")]
    NoWindowsNode,
    /// CoreDNS does not forward the root domain to the configured DNS server.
    #[error("dns-forward: no CoreDNS server block forwards {root_domain} to {server} (checked {sources:?})")]
    DnsForwardMissing { root_domain: String, server: IpAddr, sources: Vec<String> },
    /// A Corefile could not be parsed.
    #[error("dns-forward: {source_name} does not parse")]
    CorefileUnparsable {
        source_name: String,
        #[source]
        error: corefile::CorefileError,
    },
}

impl CheckFailure {
    /// The check that failed.
    pub fn check(&self) -> Check {
        match self {
            CheckFailure::CrdNotServed { .. } => Check::CredspecCrd,
            CheckFailure::MutatingWebhookMissing => Check::MutatingWebhook,
            CheckFailure::ValidatingWebhookMissing => Check::ValidatingWebhook,
            CheckFailure::NoWindowsNode => Check::WindowsNode,
            CheckFailure::DnsForwardMissing { .. } | CheckFailure::CorefileUnparsable { .. } => Check::DnsForward,
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub check: Check,
    pub passed: bool,
    /// What was found (passed) or why it failed.
    pub detail: String,
}

/// All verdicts of one preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightReport {
    pub verdicts: Vec<Verdict>,
    /// The version to write, when the CRD check passed.
    pub api_version: Option<ApiVersion>,
}

/// Proof that preflight passed, required by `apply` and `watch_drift`: it carries the version
/// to write. Only this crate's preflight makes one, so no write can skip the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    api_version: ApiVersion,
}

impl Passed {
    pub(crate) fn new(api_version: ApiVersion) -> Self {
        Passed { api_version }
    }

    /// The served credspec version writes use.
    pub fn api_version(&self) -> ApiVersion {
        self.api_version
    }
}

/// Runs every check on the facts; failures are collected, not short-circuited.
pub fn evaluate(facts: &PreflightFacts, config: &PreflightConfig) -> (PreflightReport, Vec<CheckFailure>) {
    let mut verdicts = Vec::new();
    let mut failures = Vec::new();
    let mut record = |check: Check, outcome: Result<String, CheckFailure>| match outcome {
        Ok(detail) => verdicts.push(Verdict { check, passed: true, detail }),
        Err(failure) => {
            verdicts.push(Verdict { check, passed: false, detail: failure.to_string() });
            failures.push(failure);
        }
    };

    let api_version = ApiVersion::choose(&facts.credspec_versions);
    record(
        Check::CredspecCrd,
        api_version
            .map(|version| format!("serving {}", version.api_version()))
            .ok_or_else(|| CheckFailure::CrdNotServed { served: facts.credspec_versions.clone() }),
    );
    let find_webhook = |entries: &[WebhookEntry], missing: CheckFailure| {
        entries
            .iter()
            .find(|entry| entry.name == GMSA_WEBHOOK_NAME && entry.intercepts_pod_create())
            .map(|entry| format!("{} in configuration {}", entry.name, entry.configuration))
            .ok_or(missing)
    };
    record(Check::MutatingWebhook, find_webhook(&facts.mutating_webhooks, CheckFailure::MutatingWebhookMissing));
    record(Check::ValidatingWebhook, find_webhook(&facts.validating_webhooks, CheckFailure::ValidatingWebhookMissing));
    record(
        Check::WindowsNode,
        if facts.windows_nodes.is_empty() {
            Err(CheckFailure::NoWindowsNode)
        } else {
            Ok(format!("{} Windows node(s): {}", facts.windows_nodes.len(), facts.windows_nodes.join(", ")))
        },
    );
    if let Some(forward) = &config.dns_forward {
        record(Check::DnsForward, check_dns_forward(&facts.corefiles, forward));
    }
    (PreflightReport { verdicts, api_version }, failures)
}

fn check_dns_forward(corefiles: &[(String, String)], forward: &DnsForward) -> Result<String, CheckFailure> {
    for (source_name, text) in corefiles {
        let blocks = corefile::parse(text)
            .map_err(|error| CheckFailure::CorefileUnparsable { source_name: source_name.clone(), error })?;
        if corefile::forwards_domain(&blocks, &forward.root_domain, forward.server) {
            return Ok(format!("{source_name} forwards {} to {}", forward.root_domain, forward.server));
        }
    }
    Err(CheckFailure::DnsForwardMissing {
        root_domain: forward.root_domain.clone(),
        server: forward.server,
        sources: corefiles.iter().map(|(source_name, _)| source_name.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_webhook(name: &str, operations: &[&str]) -> WebhookEntry {
        let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        WebhookEntry {
            configuration: "gmsa-webhook".into(),
            name: name.into(),
            rules: vec![(strings(&[""]), strings(&["pods"]), strings(operations))],
        }
    }

    fn mk_facts() -> PreflightFacts {
        PreflightFacts {
            credspec_versions: vec!["v1alpha1".into(), "v1".into()],
            mutating_webhooks: vec![mk_webhook(GMSA_WEBHOOK_NAME, &["CREATE"])],
            validating_webhooks: vec![mk_webhook(GMSA_WEBHOOK_NAME, &["CREATE", "UPDATE"])],
            windows_nodes: vec!["akswin000000".into()],
            corefiles: vec![("kube-system/coredns:Corefile".into(), "contoso.com:53 {\n forward . 10.0.0.4\n}".into())],
        }
    }

    fn mk_config() -> PreflightConfig {
        PreflightConfig {
            dns_forward: Some(DnsForward { root_domain: "contoso.com".into(), server: "10.0.0.4".parse().unwrap() }),
        }
    }

    #[test]
    fn all_conditions_present_pass_every_check() {
        let (report, failures) = evaluate(&mk_facts(), &mk_config());
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(report.verdicts.len(), 5);
        assert_eq!(report.api_version, Some(ApiVersion::V1));
    }

    #[test]
    fn each_removed_condition_fails_its_own_check_only() {
        type Removal = fn(&mut PreflightFacts);
        let cases: [(Removal, Check); 5] = [
            (|f| f.credspec_versions = vec!["v2".into()], Check::CredspecCrd),
            (|f| f.mutating_webhooks[0].name = "other.example.com".into(), Check::MutatingWebhook),
            (|f| f.validating_webhooks[0] = mk_webhook(GMSA_WEBHOOK_NAME, &["DELETE"]), Check::ValidatingWebhook),
            (|f| f.windows_nodes.clear(), Check::WindowsNode),
            (|f| f.corefiles[0].1 = ".:53 {\n forward . /etc/resolv.conf\n}".into(), Check::DnsForward),
        ];
        for (remove, check) in cases {
            let mut facts = mk_facts();
            remove(&mut facts);
            let (report, failures) = evaluate(&facts, &mk_config());
            assert_eq!(failures.iter().map(CheckFailure::check).collect::<Vec<_>>(), [check]);
            assert_eq!(report.verdicts.iter().filter(|v| !v.passed).count(), 1);
        }
    }

    #[test]
    fn dns_check_runs_only_when_configured_and_reports_parse_errors() {
        let mut facts = mk_facts();
        facts.corefiles.clear();
        let (report, failures) = evaluate(&facts, &PreflightConfig::default());
        assert!(failures.is_empty());
        assert!(report.verdicts.iter().all(|v| v.check != Check::DnsForward));
        facts.corefiles.push(("kube-system/coredns:Corefile".into(), "contoso.com {".into()));
        let (_, failures) = evaluate(&facts, &mk_config());
        assert!(matches!(failures[0], CheckFailure::CorefileUnparsable { .. }));
    }

    #[test]
    fn v1alpha1_only_cluster_gets_v1alpha1() {
        let mut facts = mk_facts();
        facts.credspec_versions = vec!["v1alpha1".into()];
        assert_eq!(evaluate(&facts, &mk_config()).0.api_version, Some(ApiVersion::V1Alpha1));
    }
}
