//! `validate-credspec` (`Start-GMSACredentialSpecValidation`): named checks of the credspec
//! installed in the cluster against what Active Directory reports now, of the identity its
//! `PluginInput` names (it must run on a Windows pool and be able to read the secret version), and
//! optionally of the sample workload. [`credspec_checks`] is the pure part, unit-tested below.

use super::audit::Expected;
use super::{CloudExecutor, azure_error, error_chain};
use crate::executor::{ExecError, Progress};
use proto::StepOutcome;
use proto::command::{DomainFacts, ValidateCredspec};
use proto::report::{Check, CheckReport, CheckStatus, STEP_CREDSPEC_VALIDATE};
use serde_json::Value;
use std::time::Duration;

/// What the credspec's `HostAccountConfig.PluginInput` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInput {
    pub object_id: String,
    pub secret_uri: String,
}

/// Parses `ObjectId=<id>;SecretUri=<uri>` (keys case-insensitive, any order).
pub fn parse_plugin_input(text: &str) -> Option<PluginInput> {
    let mut object_id = None;
    let mut secret_uri = None;
    for part in text.split(';') {
        let (key, value) = part.split_once('=')?;
        match key.trim().to_ascii_lowercase().as_str() {
            "objectid" => object_id = Some(value.trim().to_string()),
            "secreturi" => secret_uri = Some(value.trim().to_string()),
            _ => {}
        }
    }
    Some(PluginInput { object_id: object_id?, secret_uri: secret_uri? })
}

/// The secret's name and version (if pinned) from `https://<vault>.vault.azure.net/secrets/<name>[/<version>]`.
pub fn secret_path(uri: &str) -> Option<(String, String, Option<String>)> {
    let rest = uri.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let mut segments = path.trim_end_matches('/').split('/');
    if segments.next()? != "secrets" {
        return None;
    }
    let name = segments.next()?.to_string();
    let version = segments.next().map(str::to_string);
    Some((host.to_ascii_lowercase(), name, version))
}

fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn compare(name: &str, found: &[&str], expected: &str, case_insensitive: bool) -> Check {
    let matches =
        |value: &&str| if case_insensitive { value.eq_ignore_ascii_case(expected) } else { *value == expected };
    let passed = !found.is_empty() && found.iter().all(matches);
    let detail = if passed {
        expected.to_string()
    } else {
        format!("credspec has {}, Active Directory reports {expected}", found.join(", "))
    };
    Check::of(name, passed, detail)
}

/// The checks that need only the credspec object and AD's facts: each field against AD, the
/// plugin input's shape, and that its secret lives in `vault_name`. Returns the plugin input too.
pub fn credspec_checks(object: &Value, expected: &DomainFacts, vault_name: &str) -> (Vec<Check>, Option<PluginInput>) {
    let spec = &object["credspec"];
    let join = "/DomainJoinConfig";
    let accounts: Vec<&Value> = spec
        .pointer("/ActiveDirectoryConfig/GroupManagedServiceAccounts")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut names: Vec<&str> = accounts.iter().map(|account| text(account, "/Name")).collect();
    names.push(text(spec, &format!("{join}/MachineAccountName")));
    let scopes: Vec<&str> = accounts.iter().map(|account| text(account, "/Scope")).collect();
    let scopes_ok = scopes.iter().all(|scope| {
        scope.eq_ignore_ascii_case(&expected.netbios_domain) || scope.eq_ignore_ascii_case(&expected.dns_domain)
    });
    let mut checks = vec![
        compare("gmsa-account", &names, &expected.gmsa_account, true),
        compare("netbios-domain", &[text(spec, &format!("{join}/NetBiosName"))], &expected.netbios_domain, true),
        compare("dns-domain", &[text(spec, &format!("{join}/DnsName"))], &expected.dns_domain, true),
        compare("dns-tree-root", &[text(spec, &format!("{join}/DnsTreeName"))], &expected.dns_tree_root, true),
        compare("domain-guid", &[text(spec, &format!("{join}/Guid"))], &expected.domain_guid, true),
        compare("domain-sid", &[text(spec, &format!("{join}/Sid"))], &expected.domain_sid, true),
        Check::of("gmsa-scopes", scopes_ok && !scopes.is_empty(), format!("scopes {}", scopes.join(", "))),
    ];
    let plugin = parse_plugin_input(text(spec, "/ActiveDirectoryConfig/HostAccountConfig/PluginInput"));
    match &plugin {
        None => checks.push(Check::of("plugin-input", false, "PluginInput is not ObjectId=<id>;SecretUri=<uri>")),
        Some(input) => {
            let host = format!("{}.vault.azure.net", vault_name.to_ascii_lowercase());
            let in_vault = secret_path(&input.secret_uri).is_some_and(|(found, _, _)| found == host);
            checks.push(Check::of(
                "secret-vault",
                in_vault,
                format!("SecretUri {} (expected host {host})", input.secret_uri),
            ));
        }
    }
    (checks, plugin)
}

impl CloudExecutor {
    pub(super) async fn validate_credspec(
        &self,
        payload: &ValidateCredspec,
        progress: &Progress,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        progress.report(STEP_CREDSPEC_VALIDATE, format!("reading credspec {}", payload.spec_name));
        let object = cluster::read_credspec(&self.kube, &payload.spec_name)
            .await
            .map_err(|err| ExecError::new("credspec_read_failed", error_chain(&err)))?;
        let mut checks = Vec::new();
        let Some(object) = object else {
            checks.push(Check::of("credspec-present", false, format!("no GMSACredentialSpec {}", payload.spec_name)));
            return finish(checks);
        };
        checks.push(Check::of("credspec-present", true, payload.spec_name.clone()));
        let (found, plugin) = credspec_checks(&object, &payload.expected, &payload.vault.name);
        checks.extend(found);
        if let Some(plugin) = plugin {
            progress.report(STEP_CREDSPEC_VALIDATE, "checking the plugin identity and its access to the secret");
            checks.extend(self.identity_checks(payload, &plugin).await?);
        }
        if payload.run_workload {
            progress.report(cluster::VERIFY_STEP, "running the sample workload");
            let config = cluster::VerifyConfig {
                spec_name: payload.spec_name.clone(),
                namespace: "default".into(),
                image: self.config.verify_image.clone(),
                timeout: Duration::from_secs(u64::from(payload.timeout_secs)),
            };
            let check = match cluster::verify(&self.kube, &config).await {
                Ok(report) => match report.state {
                    cluster::WorkloadState::Available => {
                        Check::of("workload", true, "the sample workload is available")
                    }
                    cluster::WorkloadState::Failed { condition, reason, message } => {
                        Check::of("workload", false, format!("{condition} {reason}: {message}"))
                    }
                    cluster::WorkloadState::Pending => {
                        Check::of("workload", false, format!("not available after {}s", payload.timeout_secs))
                    }
                },
                Err(err) => Check::of("workload", false, error_chain(&err)),
            };
            checks.push(check);
        } else {
            checks.push(Check::new("workload", CheckStatus::Skipped, "run_workload is false"));
        }
        finish(checks)
    }

    /// `plugin-identity`: the PluginInput's ObjectId is an identity of a Windows pool;
    /// `secret-readable`: that identity can get the secret; `secret-version`: the version named
    /// (or, unpinned, some version) exists and is enabled. No secret value is read.
    async fn identity_checks(
        &self,
        payload: &ValidateCredspec,
        plugin: &super::validate::PluginInput,
    ) -> Result<Vec<Check>, ExecError> {
        let mut checks = Vec::new();
        let pools = self.azure.windows_pool_identities(&self.cluster).await.map_err(azure_error)?;
        let identity = pools.iter().flat_map(|pool| &pool.identities).find(|identity| {
            identity.principal_id.eq_ignore_ascii_case(&plugin.object_id)
                || identity.client_id.eq_ignore_ascii_case(&plugin.object_id)
        });
        checks.push(Check::of(
            "plugin-identity",
            identity.is_some(),
            match identity {
                Some(identity) => format!("{} runs on the Windows pools", identity.id),
                None => format!("ObjectId {} is no identity of a Windows node pool", plugin.object_id),
            },
        ));
        let Some((_, secret_name, version)) = secret_path(&plugin.secret_uri) else { return Ok(checks) };
        if let Some(identity) = identity {
            let vault = azure::VaultRef::from(&payload.vault);
            let report =
                self.access_report(&pools, &vault, &secret_name, &Expected::Identity(identity.id.clone())).await?;
            let row = report.rows.iter().find(|row| row.identity_id.eq_ignore_ascii_case(&identity.id));
            let can_get = row.is_some_and(|row| row.can_get);
            checks.push(Check::of(
                "secret-readable",
                can_get,
                match row {
                    Some(row) if can_get => format!("{} via {}", row.principal_id, row.via.join(", ")),
                    _ => format!("{} cannot get secret {secret_name}", identity.principal_id),
                },
            ));
        }
        let vault = azure::VaultRef::from(&payload.vault);
        let versions = self.azure.secret_versions(&vault, Some(&secret_name)).await.map_err(azure_error)?;
        let check = match &version {
            Some(pinned) => {
                let found = versions.iter().find(|v| v.version.eq_ignore_ascii_case(pinned));
                Check::of(
                    "secret-version",
                    found.is_some_and(|v| v.enabled),
                    match found {
                        Some(v) if v.enabled => format!("version {pinned} exists and is enabled"),
                        Some(_) => format!("version {pinned} is disabled"),
                        None => format!("secret {secret_name} has no version {pinned}"),
                    },
                )
            }
            None => Check::of(
                "secret-version",
                versions.iter().any(|v| v.enabled),
                format!(
                    "{} version(s) of {secret_name}, {} enabled",
                    versions.len(),
                    versions.iter().filter(|v| v.enabled).count()
                ),
            ),
        };
        checks.push(check);
        Ok(checks)
    }
}

/// Succeeds (unchanged) when no check failed; otherwise fails `credspec_invalid` naming the failed
/// checks, with the whole report in the step's `observed` either way.
fn finish(checks: Vec<Check>) -> Result<Vec<StepOutcome>, ExecError> {
    let report = CheckReport { checks };
    let observed = serde_json::to_value(&report).unwrap_or(Value::Null);
    let step = StepOutcome::unchanged(STEP_CREDSPEC_VALIDATE, observed);
    let failed: Vec<String> =
        report.failed().iter().map(|check| format!("{} ({})", check.name, check.detail)).collect();
    if failed.is_empty() {
        Ok(vec![step])
    } else {
        Err(ExecError::new("credspec_invalid", format!("failed checks: {}", failed.join("; ")))
            .with_completed(vec![step]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmsa::credspec::{ApiVersion, CredSpec, CredSpecInputs};

    fn facts() -> DomainFacts {
        DomainFacts {
            gmsa_account: "WebApp01".into(),
            netbios_domain: "CONTOSO".into(),
            dns_domain: "contoso.com".into(),
            dns_tree_root: "contoso.com".into(),
            domain_guid: "244818ae-87ac-4fcd-92ec-e79e5252348a".into(),
            domain_sid: "S-1-5-21-2126449477-2524075714-3094792973".into(),
        }
    }

    fn installed(facts: &DomainFacts) -> Value {
        CredSpec::new(&CredSpecInputs {
            name: "aks-gmsa-spec".into(),
            gmsa_account: facts.gmsa_account.clone(),
            netbios_domain: facts.netbios_domain.clone(),
            dns_domain: facts.dns_domain.clone(),
            dns_tree_root: facts.dns_tree_root.clone(),
            domain_guid: facts.domain_guid.clone(),
            domain_sid: facts.domain_sid.clone(),
            secret_uri: "https://kv1.vault.azure.net/secrets/GMSADomainUserCred/0123456789abcdef0123456789abcdef"
                .into(),
            managed_identity_object_id: "11111111-2222-3333-4444-555555555555".into(),
        })
        .unwrap()
        .manifest(ApiVersion::V1)
    }

    #[test]
    fn a_credspec_built_from_the_facts_passes_every_check() {
        let (checks, plugin) = credspec_checks(&installed(&facts()), &facts(), "kv1");
        assert!(checks.iter().all(|check| check.status == CheckStatus::Pass), "{checks:?}");
        let plugin = plugin.unwrap();
        assert_eq!(plugin.object_id, "11111111-2222-3333-4444-555555555555");
        assert_eq!(secret_path(&plugin.secret_uri).unwrap().2.as_deref(), Some("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn a_sid_that_no_longer_matches_fails_only_the_sid_check() {
        let mut now = facts();
        now.domain_sid = "S-1-5-21-1-2-3".into();
        let (checks, _) = credspec_checks(&installed(&facts()), &now, "kv1");
        let failed: Vec<&str> =
            checks.iter().filter(|c| c.status == CheckStatus::Fail).map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["domain-sid"]);
        let sid = checks.iter().find(|c| c.name == "domain-sid").unwrap();
        assert!(sid.detail.contains("S-1-5-21-2126449477") && sid.detail.contains("S-1-5-21-1-2-3"), "{}", sid.detail);
    }

    #[test]
    fn a_secret_in_another_vault_and_a_renamed_gmsa_are_named() {
        let mut now = facts();
        now.gmsa_account = "WebApp02".into();
        let (checks, _) = credspec_checks(&installed(&facts()), &now, "kv2");
        let failed: Vec<&str> =
            checks.iter().filter(|c| c.status == CheckStatus::Fail).map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["gmsa-account", "secret-vault"]);
    }

    #[test]
    fn plugin_input_parses_in_any_order_and_refuses_garbage() {
        assert_eq!(
            parse_plugin_input("SecretUri=https://a.vault.azure.net/secrets/s;objectid=x"),
            Some(PluginInput { object_id: "x".into(), secret_uri: "https://a.vault.azure.net/secrets/s".into() })
        );
        assert_eq!(parse_plugin_input("ObjectId=x"), None);
        assert_eq!(parse_plugin_input("nonsense"), None);
        assert_eq!(secret_path("https://a.vault.azure.net/keys/k"), None);
    }
}
