//! fleetctl's verbs for the PowerShell module's jobs beyond setup: `audit-access`,
//! `validate-credspec`, `teardown` and `diagnostics`. Each sends one command kind to the clusters a
//! selector picks (through the coordinator, like `run`), follows it, and prints what the agents
//! report as records (`-o table|json|yaml`). Exit codes as for `run`, plus: `audit-access` exits 1
//! when any cluster has a finding, `validate-credspec` when any check failed.

use crate::central::serve::call;
use crate::fleetctl::{follow_states, print, submit};
use crate::output::{Format, Record};
use crate::record::{self, ClusterRecord};
use crate::rollout::TargetState;
use crate::teardown;
use anyhow::{Context, bail};
use bus::Bus;
use clap::Args;
use proto::command::{
    AuditAccess, CollectDiagnostics, DomainFacts, IdentityChoice, SharedDeletes, Teardown, ValidateCredspec, VaultRef,
};
use proto::control::{TeardownSharedReply, TeardownSharedRequest};
use proto::report::{AccessReport, ArchiveInfo, CheckReport};
use proto::{Change, Command, Mode, StepOutcome};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Options every verb shares.
#[derive(Args, Clone)]
pub struct Common {
    /// Label selector picking the clusters; empty picks all.
    #[arg(short = 'l', long, default_value = "")]
    pub selector: String,
    /// Time the agents have to finish, e.g. 90s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = crate::fleetctl::parse_duration)]
    pub deadline: Duration,
}

/// The Key Vault and secret, and which identity should read it.
#[derive(Args, Clone)]
pub struct SecretArgs {
    /// The vault as SUBSCRIPTION_ID/RESOURCE_GROUP/NAME.
    #[arg(long, value_parser = parse_vault)]
    pub vault: VaultRef,
    /// The secret holding DOMAIN\user:password.
    #[arg(long, default_value = "GMSADomainUserCred")]
    pub secret_name: String,
    /// `kubelet`, or a user-assigned identity as RESOURCE_GROUP/NAME (in each cluster's subscription).
    #[arg(long, default_value = "kubelet", value_parser = parse_identity)]
    pub identity: IdentityChoice,
}

fn parse_vault(text: &str) -> Result<VaultRef, String> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [subscription_id, resource_group, name] => Ok(VaultRef {
            subscription_id: subscription_id.to_string(),
            resource_group: resource_group.to_string(),
            name: name.to_string(),
        }),
        _ => Err(format!("{text:?}: expected SUBSCRIPTION_ID/RESOURCE_GROUP/NAME")),
    }
}

fn parse_identity(text: &str) -> Result<IdentityChoice, String> {
    if text == "kubelet" {
        return Ok(IdentityChoice::Kubelet);
    }
    match text.split_once('/') {
        Some((resource_group, name)) if !resource_group.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(IdentityChoice::UserAssigned { resource_group: resource_group.into(), name: name.into() })
        }
        _ => Err(format!("{text:?}: expected `kubelet` or RESOURCE_GROUP/NAME")),
    }
}

/// `fleetctl audit-access`.
#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// A principal (object id) that may read the secret besides the clusters' identities — the
    /// coordinator that writes it, a break-glass admin. Repeat for several.
    #[arg(long = "allow")]
    pub allowed: Vec<String>,
}

/// `fleetctl validate-credspec`.
#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub common: Common,
    /// The credspec to check.
    #[arg(long, default_value = "aks-gmsa-spec")]
    pub spec_name: String,
    /// The vault as SUBSCRIPTION_ID/RESOURCE_GROUP/NAME.
    #[arg(long, value_parser = parse_vault)]
    pub vault: VaultRef,
    /// What Active Directory reports now, as YAML/JSON: gmsa_account, netbios_domain, dns_domain,
    /// dns_tree_root, domain_guid, domain_sid.
    #[arg(long)]
    pub facts_file: PathBuf,
    /// Also run the sample workload (minutes on a real cluster).
    #[arg(long)]
    pub run_workload: bool,
}

/// `fleetctl teardown`.
#[derive(Args)]
pub struct TeardownArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The credspec (with its ClusterRole and RoleBindings) to remove.
    #[arg(long, default_value = "aks-gmsa-spec")]
    pub spec_name: String,
    /// The owner label the credspec was applied with.
    #[arg(long, default_value = "default")]
    pub owner: String,
    /// Leave gMSA enabled on the managed clusters.
    #[arg(long)]
    pub keep_gmsa_enabled: bool,
    /// Also delete and purge the secret, once no cluster uses it.
    #[arg(long)]
    pub delete_secret: bool,
    /// Also delete the user-assigned identity, once no cluster uses it.
    #[arg(long)]
    pub delete_identity: bool,
    /// Also delete this gMSA from Active Directory (account name without `$`).
    #[arg(long)]
    pub delete_gmsa: Option<String>,
    /// Also delete this standard domain user from Active Directory.
    #[arg(long)]
    pub delete_domain_user: Option<String>,
    /// Act. Without it, every step is a dry run that reports what it would change. The shared
    /// deletions (`--delete-*`) run in the coordinator daemon, with its `central` credentials.
    #[arg(long)]
    pub confirm: bool,
}

/// `fleetctl diagnostics`.
#[derive(Args)]
pub struct DiagnosticsArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value = "aks-gmsa-spec")]
    pub spec_name: String,
    #[arg(long, default_value = "default")]
    pub owner: String,
    /// Where to write `<cluster>.tar`.
    #[arg(long, default_value = "gmsa-diagnostics")]
    pub out_dir: PathBuf,
}

/// The report a step put in `observed`, if it parses.
fn observed<T: serde::de::DeserializeOwned>(state: &TargetState, step: &str) -> Option<T> {
    let TargetState::Done(result) = state else { return None };
    let outcome = result.steps.iter().find(|outcome| outcome.step == step)?;
    serde_json::from_value(outcome.observed.clone()).ok()
}

fn failure(state: &TargetState) -> Option<String> {
    match state {
        TargetState::Done(result) => match &result.status {
            proto::ResultStatus::Failed { code, message } => Some(format!("{code}: {message}")),
            _ => None,
        },
        other if other.is_final() => Some(other.label().to_string()),
        _ => Some("pending".into()),
    }
}

/// `audit-access`: per pool rows, findings, and a fleet summary. A principal that reads the
/// secret, runs on no pool of its cluster and is the expected identity of no audited cluster is
/// over-broad fleet-wide.
pub async fn audit_access(bus: &Bus, format: Format, args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let command = Command::AuditAccess(AuditAccess {
        vault: args.secret.vault.clone(),
        secret_name: args.secret.secret_name.clone(),
        identity: args.secret.identity.clone(),
    });
    let (_, states) = run_to_end(bus, command, &args.common).await?;
    let reports = access_reports(states.iter().map(|(cluster, state)| (cluster.as_str(), state)));
    let records = access_records(&reports, &args.allowed);
    print(format, &records)?;
    let clean = records.iter().all(|record| !matches!(record, Record::Finding { .. }));
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Each cluster's access report, or why it has none.
pub fn access_reports<'s>(
    states: impl IntoIterator<Item = (&'s str, &'s TargetState)>,
) -> Vec<(String, Result<AccessReport, String>)> {
    states
        .into_iter()
        .map(|(cluster, state)| {
            let report = observed::<AccessReport>(state, proto::report::STEP_ACCESS_AUDIT)
                .ok_or_else(|| failure(state).unwrap_or_else(|| "no report".into()));
            (cluster.to_string(), report)
        })
        .collect()
}

/// The audit's records (pure): rows, findings (failed clusters are findings too), the summary.
/// `allowed` principals may read the secret without being a cluster's identity.
pub fn access_records(reports: &[(String, Result<AccessReport, String>)], allowed: &[String]) -> Vec<Record> {
    let mut records = Vec::new();
    let mut findings = Vec::new();
    let mut expected: BTreeSet<String> =
        reports.iter().filter_map(|(_, r)| r.as_ref().ok()?.expected_principal.clone()).collect();
    expected.extend(allowed.iter().map(|principal| principal.to_ascii_lowercase()));
    let mut over_broad: BTreeSet<String> = BTreeSet::new();
    let (mut audited, mut failed, mut with_findings, mut can_read, mut flagged) = (0, 0, 0, 0, 0);
    for (cluster, report) in reports {
        match report {
            Err(reason) => {
                failed += 1;
                findings.push(Record::Finding { cluster: cluster.clone(), finding: format!("not audited: {reason}") });
            }
            Ok(report) => {
                audited += 1;
                if !report.findings.is_empty() {
                    with_findings += 1;
                }
                for row in &report.rows {
                    can_read += usize::from(row.expected && row.can_get);
                    flagged += usize::from(row.flagged);
                    records.push(Record::Access {
                        cluster: cluster.clone(),
                        pool: row.pool.clone(),
                        identity: row.identity.clone(),
                        principal_id: row.principal_id.clone(),
                        kubelet: row.kubelet,
                        expected: row.expected,
                        can_get: row.can_get,
                        flagged: row.flagged,
                        via: row.via.clone(),
                    });
                }
                findings.extend(
                    report.findings.iter().map(|f| Record::Finding { cluster: cluster.clone(), finding: f.clone() }),
                );
                for other in &report.others {
                    if !expected.contains(&other.principal_id.to_ascii_lowercase()) {
                        over_broad.insert(other.principal_id.clone());
                    }
                }
            }
        }
    }
    for principal in &over_broad {
        findings.push(Record::Finding {
            cluster: "*".into(),
            finding: format!(
                "principal {principal} can read the secret and is no audited cluster's configured identity"
            ),
        });
    }
    records.extend(findings);
    records.push(Record::AccessSummary {
        clusters: reports.len(),
        audited,
        with_findings,
        failed,
        expected_can_read: can_read,
        flagged_identities: flagged,
        over_broad_principals: over_broad.into_iter().collect(),
    });
    records
}

/// `validate-credspec`: every check of every cluster.
pub async fn validate_credspec(bus: &Bus, format: Format, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let expected: DomainFacts = crate::fleetctl::read_operator_file(&args.facts_file)?;
    let command = Command::ValidateCredspec(ValidateCredspec {
        spec_name: args.spec_name.clone(),
        expected,
        vault: args.vault.clone(),
        run_workload: args.run_workload,
        timeout_secs: 600,
    });
    let (_, states) = run_to_end(bus, command, &args.common).await?;
    let mut records = Vec::new();
    let mut all_passed = true;
    for (cluster, state) in &states {
        match observed::<CheckReport>(state, proto::report::STEP_CREDSPEC_VALIDATE) {
            Some(report) => {
                all_passed &= report.failed().is_empty();
                records.extend(report.checks.into_iter().map(|check| {
                    Record::Check {
                        cluster: cluster.clone(),
                        check: check.name,
                        status: serde_json::to_value(check.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        detail: check.detail,
                    }
                }));
            }
            None => {
                all_passed = false;
                records.push(Record::Check {
                    cluster: cluster.clone(),
                    check: "run".into(),
                    status: "fail".into(),
                    detail: failure(state).unwrap_or_default(),
                });
            }
        }
    }
    print(format, &records)?;
    Ok(if all_passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// One step of a cluster as a record (teardown output).
pub fn step_record(cluster: &str, outcome: &StepOutcome) -> Record {
    let change = match outcome.change {
        Change::Changed => "changed",
        Change::Unchanged => "unchanged",
        Change::Planned => "planned",
        Change::Unknown => "unknown",
    };
    let what: Vec<String> = outcome.diff.iter().map(|change| change.path.clone()).collect();
    Record::Step {
        cluster: cluster.into(),
        step: outcome.step.clone(),
        change: change.into(),
        what: if what.is_empty() { "-".into() } else { what.join(", ") },
    }
}

/// `teardown`: per cluster on the agents, then the shared resources asked for, by the
/// coordinator daemon (`fleet.ctl.teardown-shared`): fleetctl holds no Azure or AD credential.
pub async fn teardown(bus: &Bus, format: Format, args: &TeardownArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.confirm { Mode::Apply } else { Mode::DryRun };
    let payload = Teardown {
        spec_name: args.spec_name.clone(),
        owner: args.owner.clone(),
        vault: args.secret.vault.clone(),
        secret_name: args.secret.secret_name.clone(),
        identity: args.secret.identity.clone(),
        disable_gmsa: !args.keep_gmsa_enabled,
        delete: SharedDeletes {
            secret: args.delete_secret,
            identity: args.delete_identity,
            gmsa: args.delete_gmsa.clone(),
            domain_user: args.delete_domain_user.clone(),
        },
        mode,
    };
    // Which clusters, and which identities they hold, before they release them.
    let targets = submit(bus, Command::Teardown(payload.clone()), &args.common.selector, args.common.deadline, true)
        .await?
        .targets;
    let selected: BTreeSet<String> = targets.iter().map(|target| target.cluster.clone()).collect();
    let shared_request = |teardown: Teardown, identities: Vec<String>| TeardownSharedRequest {
        schema: proto::version::SchemaVersion::CURRENT,
        teardown,
        identities,
        requested_by: std::env::var("USER").ok(),
    };
    if mode.applies() && !payload.delete.is_empty() {
        // Before anything is sent: can the coordinator delete shared resources at all?
        let mut dry = payload.clone();
        dry.mode = Mode::DryRun;
        if let TeardownSharedReply::Refused { code, message } =
            call(bus, &shared_request(dry, Vec::new()), SHARED_TIMEOUT).await?
        {
            bail!("the coordinator refused the shared deletions ({code}): {message}; nothing was sent");
        }
    }
    let before = record::all(bus).await?;
    let identities: Vec<String> = teardown::target_identities(&before, &selected, &payload)
        .into_iter()
        .filter_map(|resource| match resource {
            proto::resources::SharedResource::Identity { id } => Some(id),
            _ => None,
        })
        .collect();
    let (_, states) = run_to_end(bus, Command::Teardown(payload.clone()), &args.common).await?;
    let mut records = Vec::new();
    let mut all_ok = true;
    for (cluster, state) in &states {
        match state {
            TargetState::Done(result) => {
                records.extend(result.steps.iter().map(|step| step_record(cluster, step)));
                if let Some(failed) = failure(state) {
                    all_ok = false;
                    records.push(Record::Step {
                        cluster: cluster.clone(),
                        step: "failed".into(),
                        change: "-".into(),
                        what: failed,
                    });
                }
            }
            other => {
                all_ok = false;
                records.push(Record::Step {
                    cluster: cluster.clone(),
                    step: "-".into(),
                    change: other.label().into(),
                    what: "-".into(),
                });
            }
        }
    }
    if all_ok && !payload.delete.is_empty() {
        if mode.applies() {
            released(bus, &selected, &payload).await?;
        }
        let failed =
            |what: String| Record::Step { cluster: "*shared*".into(), step: "failed".into(), change: "-".into(), what };
        match call(bus, &shared_request(payload.clone(), identities), SHARED_TIMEOUT).await? {
            TeardownSharedReply::Done { steps } => {
                records.extend(steps.iter().map(|step| step_record("*shared*", step)))
            }
            TeardownSharedReply::Refused { code, message } if !mode.applies() => records.push(Record::Step {
                cluster: "*shared*".into(),
                step: "shared-delete".into(),
                change: "planned".into(),
                what: format!("{:?} (the coordinator cannot read their state: {code}: {message})", payload.delete),
            }),
            TeardownSharedReply::Refused { code, message } => {
                all_ok = false;
                records.push(failed(format!("refused ({code}): {message}")));
            }
            TeardownSharedReply::Failed { code, message, completed } => {
                all_ok = false;
                records.extend(completed.iter().map(|step| step_record("*shared*", step)));
                records.push(failed(format!("{code}: {message}")));
            }
            TeardownSharedReply::Unknown => {
                all_ok = false;
                records.push(failed("a reply this fleetctl does not know; upgrade fleetctl".into()));
            }
        }
    }
    print(format, &records)?;
    if !args.confirm {
        eprintln!("fleetctl: dry run: nothing was changed; add --confirm to tear down");
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// How long the daemon has for the shared deletions (a purge may wait for Key Vault).
const SHARED_TIMEOUT: Duration = Duration::from_secs(300);

/// The records once the recorder has seen the targets release what the teardown released (it
/// records results asynchronously); gives up after 30 s and returns what it has.
async fn released(bus: &Bus, selected: &BTreeSet<String>, payload: &Teardown) -> anyhow::Result<Vec<ClusterRecord>> {
    let secret =
        proto::resources::SharedResource::secret(&proto::resources::vault_id(&payload.vault), &payload.secret_name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let records = record::all(bus).await?;
        let pending = records.iter().any(|r| selected.contains(&r.cluster) && r.in_use.contains(&secret));
        if !pending || tokio::time::Instant::now() >= deadline {
            return Ok(records);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `diagnostics`: collects one archive per cluster and writes `<out-dir>/<cluster>.tar`.
pub async fn diagnostics(bus: &Bus, format: Format, args: &DiagnosticsArgs) -> anyhow::Result<ExitCode> {
    let command = Command::CollectDiagnostics(CollectDiagnostics {
        spec_name: args.spec_name.clone(),
        owner: args.owner.clone(),
        recent_results: 20,
    });
    let (commands, states) = run_to_end(bus, command, &args.common).await?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut records = Vec::new();
    let mut all_ok = true;
    for ((cluster, state), command_id) in states.iter().zip(commands) {
        let Some(info) = observed::<ArchiveInfo>(state, proto::report::STEP_DIAGNOSTICS) else {
            all_ok = false;
            records.push(Record::Step {
                cluster: cluster.clone(),
                step: "diagnostics".into(),
                change: "-".into(),
                what: failure(state).unwrap_or_default(),
            });
            continue;
        };
        let bytes = bus::results::fetch_artifact(bus, cluster, &command_id)
            .await?
            .with_context(|| format!("{cluster}: the archive {} is not on the bus", info.subject))?;
        let path = args.out_dir.join(format!("{cluster}.tar"));
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        records.push(Record::Archive {
            cluster: cluster.clone(),
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
            files: info.files.len(),
            redactions: info.redactions,
        });
    }
    print(format, &records)?;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Sends a command and follows it to the end; returns the command ids and each cluster's state.
async fn run_to_end(
    bus: &Bus,
    command: Command,
    common: &Common,
) -> anyhow::Result<(Vec<String>, Vec<(String, TargetState)>)> {
    let submitted = submit(bus, command, &common.selector, common.deadline, false).await?;
    let (rollout_id, targets) = (submitted.rollout_id, submitted.targets);
    eprintln!("fleetctl: rollout {rollout_id}: {} clusters", targets.len());
    let (_, states, _) = follow_states(bus, &rollout_id).await?;
    let ids = states.iter().map(|(target, _)| target.command_id.to_string()).collect();
    Ok((ids, states.into_iter().map(|(target, state)| (target.cluster, state)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::report::{AccessRow, OtherReader};

    fn row(pool: &str, principal: &str, expected: bool, can_get: bool) -> AccessRow {
        AccessRow {
            pool: pool.into(),
            identity: "id".into(),
            identity_id: "/x/id".into(),
            principal_id: principal.into(),
            kubelet: !expected,
            expected,
            can_get,
            via: vec![],
            flagged: can_get && !expected,
        }
    }

    #[test]
    fn another_clusters_identity_reading_a_shared_secret_is_not_over_broad_but_a_stranger_is() {
        let a = AccessReport {
            secret: "s".into(),
            expected_principal: Some("pa".into()),
            rows: vec![row("win", "pa", true, true)],
            others: vec![
                OtherReader { principal_id: "pb".into(), via: vec![], over_broad: true },
                OtherReader { principal_id: "stranger".into(), via: vec![], over_broad: true },
            ],
            findings: vec![],
        };
        let b = AccessReport {
            secret: "s".into(),
            expected_principal: Some("pb".into()),
            rows: vec![row("win", "pb", true, true)],
            others: vec![OtherReader { principal_id: "pa".into(), via: vec![], over_broad: true }],
            findings: vec![],
        };
        let reports =
            [("a".to_string(), Ok(a)), ("b".to_string(), Ok(b)), ("c".to_string(), Err("timed out".to_string()))];
        let allowed = access_records(&reports, &["STRANGER".into()]);
        assert!(
            matches!(allowed.last(), Some(Record::AccessSummary { over_broad_principals, .. }) if over_broad_principals.is_empty()),
            "an allowed principal is not over-broad"
        );
        let records = access_records(&reports, &[]);
        let summary = records.last().unwrap();
        assert_eq!(
            summary,
            &Record::AccessSummary {
                clusters: 3,
                audited: 2,
                with_findings: 0,
                failed: 1,
                expected_can_read: 2,
                flagged_identities: 0,
                over_broad_principals: vec!["stranger".into()],
            }
        );
        let findings: Vec<&Record> = records.iter().filter(|r| matches!(r, Record::Finding { .. })).collect();
        assert_eq!(findings.len(), 2, "{findings:?}");
    }

    #[test]
    fn vault_and_identity_arguments_parse_or_say_what_is_expected() {
        assert_eq!(parse_vault("s/rg/kv").unwrap().name, "kv");
        assert!(parse_vault("s/kv").unwrap_err().contains("SUBSCRIPTION_ID/RESOURCE_GROUP/NAME"));
        assert_eq!(parse_identity("kubelet").unwrap(), IdentityChoice::Kubelet);
        assert_eq!(
            parse_identity("rg/mi").unwrap(),
            IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "mi".into() }
        );
        assert!(parse_identity("mi").is_err());
    }
}
