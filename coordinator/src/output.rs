//! fleetctl's output: one set of records, rendered as a table (for people), JSON Lines or YAML
//! (for programs).
//!
//! # Wire format of `-o json` (schema 1)
//! One JSON object per line, each tagged by `type`:
//! - `{"type":"cluster","id","labels","declared","agent_version","online","last_kind","last_status","desired_revision","sync","in_sync","last_seen"}`
//!   (`clusters list`; `sync` is `in_sync`, `drifted`, `failed`, `unreachable`, `pending` or `not_targeted`)
//! - `{"type":"fleet_sync","desired_rollout_id","clusters","in_sync","drifted","failed","unreachable","pending","not_targeted","unreachable_after_secs"}`
//!   (`clusters list`, last: the listed clusters counted by state)
//! - `{"type":"cluster_state","cluster","labels","declared","agent_version","last_seen","desired","last_result","parts","drift","sync","audit"}`
//!   (`clusters show`: `desired` `{rollout_id,name,kv_revision,selected,overrides,parts}`, each of
//!   `parts` `{part,desired,last:{step,outcome,diff,at,command_id,kind,rollout_id,code,message}}`,
//!   `sync` `{state,in_sync,reasons:[{reason,…}]}`; see `clusters::sync::Reason`)
//! - `{"type":"target","rollout_id","cluster","command_id","state","code","message","changed_steps"}`
//! - `{"type":"summary","rollout_id","dry_run","targets","succeeded","unchanged","failed","timed_out","pending"}`
//! - `{"type":"access","cluster","pool","identity","principal_id","kubelet","expected","can_get","flagged","via"}`
//! - `{"type":"finding","cluster","finding"}` (an access-audit finding; cluster `*` for fleet-wide ones)
//! - `{"type":"access_summary","clusters","audited","with_findings","failed","expected_can_read","flagged_identities","over_broad_principals"}`
//! - `{"type":"check","cluster","check","status","detail"}`
//! - `{"type":"step","cluster","step","change","what"}` (teardown: what each step did or would do)
//! - `{"type":"archive","cluster","path","bytes","files","redactions"}`
//! - `{"type":"planned_stage","rollout_id","stage","size","clusters"}` (`rollout plan`/`start`)
//! - `{"type":"started","rollout_id"}`
//! - `{"type":"stage","rollout_id","stage","phase","max_concurrency","failure_budget","pending","running","succeeded","unchanged","failed","timed_out","skipped"}`
//! - `{"type":"rollout_cluster","rollout_id","cluster","stage","state","step","why"}`
//! - `{"type":"rollout_phase","rollout_id","name","phase","current_stage","waiting","truncated"}`
//! - `{"type":"rollout","rollout_id","name","phase","clusters","created_at","requested_by","origin"}` (`rollout list`)
//! - `{"type":"done","rollout_id","message"}` (approve, pause, resume, abort)
//! - `{"type":"enrollment","cluster","public_key","enrolled_at","enrolled_by","revoked_at","key_file"}` (`agents …`)
//! - `{"type":"key","public_key","key_file"}` (`keys new`)
//! - `{"type":"invalid","bucket","key","code","message"}` (an inventory entry that cannot be read:
//!   skipped, never planned)
//!
//! Fields are only ever added within schema 1. `-o yaml` prints the same records as a YAML sequence;
//! `-o table` is a view of the same records.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// The output format chosen with `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    /// JSON, one record per line (`jsonl` is the same).
    #[value(alias = "jsonl")]
    Json,
    Yaml,
}

/// One output record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Cluster {
        id: String,
        labels: BTreeMap<String, String>,
        declared: bool,
        agent_version: Option<String>,
        online: bool,
        last_kind: Option<String>,
        last_status: Option<String>,
        /// The desired revision (rollout id) that applies, when the desired file picks the cluster.
        desired_revision: Option<String>,
        /// The cluster's sync state (`clusters::sync::SyncState`).
        sync: String,
        in_sync: bool,
        last_seen: Option<String>,
    },
    /// The fleet counted by sync state (`clusters list`).
    FleetSync(crate::clusters::FleetSummary),
    /// One cluster's desired against observed state (`clusters show`).
    ClusterState(Box<crate::clusters::ClusterView>),
    Target {
        rollout_id: String,
        cluster: String,
        command_id: String,
        state: String,
        code: Option<String>,
        message: Option<String>,
        changed_steps: Vec<String>,
    },
    Summary {
        rollout_id: String,
        dry_run: bool,
        targets: usize,
        succeeded: usize,
        unchanged: usize,
        failed: usize,
        timed_out: usize,
        pending: usize,
    },
    Access {
        cluster: String,
        pool: String,
        identity: String,
        principal_id: String,
        kubelet: bool,
        expected: bool,
        can_get: bool,
        flagged: bool,
        via: Vec<String>,
    },
    Finding {
        cluster: String,
        finding: String,
    },
    AccessSummary {
        clusters: usize,
        audited: usize,
        with_findings: usize,
        failed: usize,
        expected_can_read: usize,
        flagged_identities: usize,
        over_broad_principals: Vec<String>,
    },
    Check {
        cluster: String,
        check: String,
        status: String,
        detail: String,
    },
    Step {
        cluster: String,
        step: String,
        change: String,
        what: String,
    },
    Archive {
        cluster: String,
        path: String,
        bytes: u64,
        files: usize,
        redactions: u64,
    },
    Invalid {
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
    PlannedStage {
        rollout_id: String,
        stage: String,
        size: usize,
        clusters: Vec<String>,
    },
    Started {
        rollout_id: String,
    },
    Stage {
        rollout_id: String,
        stage: String,
        phase: String,
        max_concurrency: usize,
        failure_budget: usize,
        pending: usize,
        running: usize,
        succeeded: usize,
        unchanged: usize,
        failed: usize,
        timed_out: usize,
        skipped: usize,
    },
    RolloutCluster {
        rollout_id: String,
        cluster: String,
        stage: String,
        state: String,
        step: Option<String>,
        why: Option<String>,
    },
    RolloutPhase {
        rollout_id: String,
        name: String,
        phase: String,
        current_stage: String,
        waiting: Vec<String>,
        truncated: bool,
    },
    Rollout {
        rollout_id: String,
        name: String,
        phase: String,
        clusters: usize,
        created_at: String,
        requested_by: Option<String>,
        origin: String,
    },
    Enrollment {
        cluster: String,
        public_key: String,
        enrolled_at: String,
        enrolled_by: Option<String>,
        revoked_at: Option<String>,
        /// Where `agents enroll --key-out` wrote the agent's secret key.
        key_file: Option<String>,
    },
    Key {
        public_key: String,
        key_file: String,
    },
    Done {
        rollout_id: String,
        message: String,
    },
    /// A credential's rotation state (`fleetctl rotate status`).
    Credential {
        credential: String,
        active_user: Option<String>,
        /// Age of the active user's password, `12d 3h`.
        age: Option<String>,
        schedule: Option<String>,
        next_run: Option<String>,
        /// The run in progress and its phase.
        running: Option<String>,
        /// Clusters not (yet) confirmed on the newest version.
        unconfirmed: Vec<String>,
    },
    /// One rotation run (`fleetctl rotate now|history`).
    RotationRun {
        run_id: String,
        credential: String,
        user: String,
        phase: String,
        started_at: String,
        finished_at: Option<String>,
        /// Key Vault versions written (at most one per vault) / targets.
        writes: String,
        resets: u32,
        rollout_id: Option<String>,
        requested_by: Option<String>,
    },
}

impl From<crate::rollouts::api::RolloutSummary> for Record {
    fn from(summary: crate::rollouts::api::RolloutSummary) -> Self {
        Record::Rollout {
            rollout_id: summary.rollout_id,
            name: summary.name,
            phase: summary.phase,
            clusters: summary.clusters,
            created_at: summary.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            requested_by: summary.requested_by,
            origin: summary.origin,
        }
    }
}

impl From<proto::control::InvalidEntry> for Record {
    fn from(entry: proto::control::InvalidEntry) -> Self {
        Record::Invalid { bucket: entry.bucket, key: entry.key, code: entry.code, message: entry.message }
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn cells(record: &Record) -> (&'static str, Vec<String>) {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    match record {
        Record::Cluster {
            id,
            labels,
            declared,
            agent_version,
            online,
            last_kind,
            last_status,
            desired_revision,
            sync,
            last_seen,
            ..
        } => (
            "cluster",
            vec![
                id.clone(),
                labels_text(labels),
                if *declared { "config" } else { "agent" }.into(),
                or_dash(agent_version),
                if *online { "online" } else { "offline" }.into(),
                or_dash(last_kind),
                or_dash(last_status),
                or_dash(desired_revision),
                sync.clone(),
                or_dash(last_seen),
            ],
        ),
        Record::FleetSync(summary) => (
            "fleet_sync",
            vec![
                summary.desired_rollout_id.clone().unwrap_or_else(|| "-".into()),
                summary.clusters.to_string(),
                summary.in_sync.to_string(),
                summary.drifted.to_string(),
                summary.failed.to_string(),
                summary.unreachable.to_string(),
                summary.pending.to_string(),
                summary.not_targeted.to_string(),
            ],
        ),
        Record::ClusterState(view) => ("cluster_state", cluster_state_row(view)),
        Record::Target { cluster, state, code, message, changed_steps, .. } => (
            "target",
            vec![
                cluster.clone(),
                state.clone(),
                if changed_steps.is_empty() { "-".into() } else { changed_steps.join(",") },
                match (code, message) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    _ => "-".into(),
                },
            ],
        ),
        Record::Summary { rollout_id, dry_run, targets, succeeded, unchanged, failed, timed_out, pending } => (
            "summary",
            vec![
                rollout_id.clone(),
                if *dry_run { "dry-run".into() } else { "sent".into() },
                targets.to_string(),
                succeeded.to_string(),
                unchanged.to_string(),
                failed.to_string(),
                timed_out.to_string(),
                pending.to_string(),
            ],
        ),
        Record::Access { cluster, pool, identity, principal_id, kubelet, expected, can_get, flagged, via } => (
            "access",
            vec![
                cluster.clone(),
                pool.clone(),
                identity.clone(),
                principal_id.clone(),
                yes_no(*kubelet),
                yes_no(*expected),
                yes_no(*can_get),
                if *flagged { "OVER-BROAD".into() } else { "-".into() },
                if via.is_empty() { "-".into() } else { via.join("; ") },
            ],
        ),
        Record::Finding { cluster, finding } => ("finding", vec![cluster.clone(), finding.clone()]),
        Record::AccessSummary {
            clusters,
            audited,
            with_findings,
            failed,
            expected_can_read,
            flagged_identities,
            over_broad_principals,
        } => (
            "access_summary",
            vec![
                clusters.to_string(),
                audited.to_string(),
                expected_can_read.to_string(),
                flagged_identities.to_string(),
                with_findings.to_string(),
                failed.to_string(),
                if over_broad_principals.is_empty() { "-".into() } else { over_broad_principals.join(",") },
            ],
        ),
        Record::Check { cluster, check, status, detail } => {
            ("check", vec![cluster.clone(), check.clone(), status.clone(), detail.clone()])
        }
        Record::Step { cluster, step, change, what } => {
            ("step", vec![cluster.clone(), step.clone(), change.clone(), what.clone()])
        }
        Record::Archive { cluster, path, bytes, files, redactions } => (
            "archive",
            vec![cluster.clone(), path.clone(), bytes.to_string(), files.to_string(), redactions.to_string()],
        ),
        Record::Invalid { bucket, key, code, message } => {
            ("invalid", vec![format!("{bucket}/{key}"), code.clone(), message.clone()])
        }
        Record::PlannedStage { stage, size, clusters, .. } => {
            let shown: Vec<String> = clusters.iter().take(8).cloned().collect();
            let more = if clusters.len() > 8 { format!(" … (+{})", clusters.len() - 8) } else { String::new() };
            ("planned_stage", vec![stage.clone(), size.to_string(), format!("{}{more}", shown.join(","))])
        }
        Record::Started { rollout_id } => ("started", vec![rollout_id.clone()]),
        Record::Stage {
            stage,
            phase,
            max_concurrency,
            failure_budget,
            pending,
            running,
            succeeded,
            unchanged,
            failed,
            timed_out,
            skipped,
            ..
        } => (
            "stage",
            vec![
                stage.clone(),
                phase.clone(),
                max_concurrency.to_string(),
                failure_budget.to_string(),
                pending.to_string(),
                running.to_string(),
                succeeded.to_string(),
                unchanged.to_string(),
                failed.to_string(),
                timed_out.to_string(),
                skipped.to_string(),
            ],
        ),
        Record::RolloutCluster { cluster, stage, state, step, why, .. } => {
            ("rollout_cluster", vec![cluster.clone(), stage.clone(), state.clone(), or_dash(step), or_dash(why)])
        }
        Record::RolloutPhase { rollout_id, name, phase, current_stage, waiting, .. } => (
            "rollout_phase",
            vec![
                rollout_id.clone(),
                name.clone(),
                phase.clone(),
                current_stage.clone(),
                if waiting.is_empty() { "-".into() } else { waiting.join("; ") },
            ],
        ),
        Record::Rollout { rollout_id, name, phase, clusters, created_at, requested_by, origin } => (
            "rollout",
            vec![
                rollout_id.clone(),
                name.clone(),
                phase.clone(),
                clusters.to_string(),
                created_at.clone(),
                or_dash(requested_by),
                origin.clone(),
            ],
        ),
        Record::Done { rollout_id, message } => ("done", vec![rollout_id.clone(), message.clone()]),
        Record::Enrollment { cluster, public_key, enrolled_at, enrolled_by, revoked_at, key_file } => (
            "enrollment",
            vec![
                cluster.clone(),
                public_key.clone(),
                enrolled_at.clone(),
                or_dash(enrolled_by),
                or_dash(revoked_at),
                or_dash(key_file),
            ],
        ),
        Record::Key { public_key, key_file } => ("key", vec![public_key.clone(), key_file.clone()]),
        Record::Credential { credential, active_user, age, schedule, next_run, running, unconfirmed } => (
            "credential",
            vec![
                credential.clone(),
                or_dash(active_user),
                or_dash(age),
                or_dash(schedule),
                or_dash(next_run),
                or_dash(running),
                if unconfirmed.is_empty() { "-".into() } else { unconfirmed.join(",") },
            ],
        ),
        Record::RotationRun {
            run_id,
            credential,
            user,
            phase,
            started_at,
            finished_at,
            writes,
            resets,
            rollout_id,
            requested_by,
        } => (
            "rotation_run",
            vec![
                run_id.clone(),
                credential.clone(),
                user.clone(),
                phase.clone(),
                started_at.clone(),
                or_dash(finished_at),
                writes.clone(),
                resets.to_string(),
                or_dash(rollout_id),
                or_dash(requested_by),
            ],
        ),
    }
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `clusters show`'s first table: the cluster, the desired revision and the verdict.
fn cluster_state_row(view: &crate::clusters::ClusterView) -> Vec<String> {
    let desired = match &view.desired {
        Some(desired) if desired.selected => format!("{} ({})", desired.rollout_id, desired.name),
        Some(desired) => format!("{} (does not pick this cluster)", desired.rollout_id),
        None => "-".into(),
    };
    let reasons: Vec<String> = view.sync.reasons.iter().map(reason_text).collect();
    vec![
        view.cluster.clone(),
        desired,
        view.sync.state.label().to_string(),
        view.last_seen.map_or_else(|| "-".into(), rfc3339),
        if reasons.is_empty() { "-".into() } else { reasons.join("; ") },
    ]
}

/// One reason in words, for the table.
fn reason_text(reason: &crate::clusters::sync::Reason) -> String {
    use crate::clusters::sync::Reason;
    match reason {
        Reason::NoDesiredState => "no rollout has set a desired state".into(),
        Reason::NotSelected { rollout_id } => format!("rollout {rollout_id}'s selector does not pick it"),
        Reason::NeverApplied { part } => format!("{}: never applied", part.label()),
        Reason::Failed { part, rollout_id, code, message } => {
            format!("{}: failed in {rollout_id} ({code}: {message})", part.label())
        }
        Reason::OlderRevision { part, observed, desired, outcome } => format!(
            "{}: last {} by {}, not the desired {desired}",
            part.label(),
            outcome.label(),
            observed.as_deref().unwrap_or("a command outside any rollout")
        ),
        Reason::Drifted { kind, namespace, name, cause, remedy, .. } => {
            let namespace = namespace.as_deref().map(|ns| format!("{ns}/")).unwrap_or_default();
            format!("drift: {kind} {namespace}{name} {cause}, {remedy}")
        }
        Reason::Unreachable { last_seen, after_secs } => match last_seen {
            Some(at) => format!("unreachable: no hello for more than {after_secs}s (last {})", rfc3339(*at)),
            None => "unreachable: the agent never said hello".into(),
        },
    }
}

/// The rows of one record: one for most, several tables for `clusters show`.
fn rows_of(record: &Record) -> Vec<(&'static str, Vec<String>)> {
    let Record::ClusterState(view) = record else { return vec![cells(record)] };
    let mut rows = vec![cells(record)];
    for part in &view.parts {
        let row = match &part.last {
            Some(last) => vec![
                part.part.label().to_string(),
                yes_no(part.desired),
                last.step.clone(),
                last.outcome.label().to_string(),
                last.rollout_id.clone().unwrap_or_else(|| "-".into()),
                rfc3339(last.at),
                if last.diff.is_empty() {
                    last.code.clone().map_or_else(
                        || "-".into(),
                        |code| format!("{code}: {}", last.message.clone().unwrap_or_default()),
                    )
                } else {
                    last.diff.iter().map(|change| change.path.clone()).collect::<Vec<_>>().join(",")
                },
            ],
            None => {
                let mut row = vec![part.part.label().to_string(), yes_no(part.desired)];
                row.extend(["-", "never", "-", "-", "-"].map(String::from));
                row
            }
        };
        rows.push(("cluster_part", row));
    }
    for report in &view.drift {
        let object = match &report.namespace {
            Some(namespace) => format!("{} {namespace}/{}", report.kind, report.name),
            None => format!("{} {}", report.kind, report.name),
        };
        rows.push(("cluster_drift", vec![rfc3339(report.at), object, report.cause.clone(), report.remedy.clone()]));
    }
    for entry in &view.audit {
        rows.push((
            "cluster_audit",
            vec![entry.index.to_string(), rfc3339(entry.at), entry.actor.clone(), crate::audit_verbs::summary(entry)],
        ));
    }
    rows
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

fn header(kind: &str) -> Vec<&'static str> {
    match kind {
        "cluster" => vec![
            "CLUSTER",
            "LABELS",
            "SOURCE",
            "AGENT",
            "STATE",
            "LAST COMMAND",
            "LAST STATUS",
            "DESIRED",
            "SYNC",
            "LAST SEEN",
        ],
        "fleet_sync" => {
            vec!["DESIRED", "CLUSTERS", "IN SYNC", "DRIFTED", "FAILED", "UNREACHABLE", "PENDING", "NOT TARGETED"]
        }
        "cluster_state" => vec!["CLUSTER", "DESIRED", "SYNC", "LAST SEEN", "WHY"],
        "cluster_part" => vec!["PART", "DESIRED", "STEP", "OUTCOME", "ROLLOUT", "AT", "DIFF / ERROR"],
        "cluster_drift" => vec!["DRIFT AT", "OBJECT", "CAUSE", "REMEDY"],
        "cluster_audit" => vec!["AUDIT INDEX", "AT", "ACTOR", "WHAT"],
        "target" => vec!["CLUSTER", "STATUS", "CHANGED", "DETAIL"],
        "access" => vec!["CLUSTER", "POOL", "IDENTITY", "PRINCIPAL", "KUBELET", "EXPECTED", "CAN GET", "FLAG", "VIA"],
        "finding" => vec!["CLUSTER", "FINDING"],
        "access_summary" => vec![
            "CLUSTERS",
            "AUDITED",
            "EXPECTED CAN READ",
            "OVER-BROAD IDENTITIES",
            "WITH FINDINGS",
            "FAILED",
            "OVER-BROAD PRINCIPALS",
        ],
        "check" => vec!["CLUSTER", "CHECK", "STATUS", "DETAIL"],
        "step" => vec!["CLUSTER", "STEP", "CHANGE", "WHAT"],
        "archive" => vec!["CLUSTER", "ARCHIVE", "BYTES", "FILES", "REDACTED"],
        "invalid" => vec!["INVALID ENTRY", "CODE", "WHY (SKIPPED)"],
        "planned_stage" => vec!["STAGE", "CLUSTERS", "WHICH"],
        "started" => vec!["ROLLOUT STARTED"],
        "stage" => vec![
            "STAGE",
            "PHASE",
            "CONCURRENCY",
            "BUDGET",
            "PENDING",
            "RUNNING",
            "SUCCEEDED",
            "UNCHANGED",
            "FAILED",
            "TIMED OUT",
            "SKIPPED",
        ],
        "rollout_cluster" => vec!["CLUSTER", "STAGE", "STATE", "STEP", "WHY"],
        "rollout_phase" => vec!["ROLLOUT", "NAME", "PHASE", "CURRENT STAGE", "WAITING FOR"],
        "rollout" => vec!["ROLLOUT", "NAME", "PHASE", "CLUSTERS", "CREATED", "BY", "ORIGIN"],
        "done" => vec!["ROLLOUT", "DONE"],
        "enrollment" => vec!["CLUSTER", "PUBLIC KEY", "ENROLLED", "BY", "REVOKED", "KEY FILE"],
        "key" => vec!["PUBLIC KEY", "KEY FILE"],
        "credential" => vec!["CREDENTIAL", "ACTIVE USER", "AGE", "SCHEDULE", "NEXT RUN", "IN PROGRESS", "UNCONFIRMED"],
        "rotation_run" => {
            vec!["RUN", "CREDENTIAL", "RESET USER", "PHASE", "STARTED", "FINISHED", "WRITES", "RESETS", "ROLLOUT", "BY"]
        }
        _ => vec!["ROLLOUT", "MODE", "TARGETS", "SUCCEEDED", "UNCHANGED", "FAILED", "TIMED OUT", "PENDING"],
    }
}

/// Renders records as aligned tables, one table per record type, in order of first appearance.
pub fn render_table(records: &[Record]) -> String {
    let mut groups: Vec<(&'static str, Vec<Vec<String>>)> = Vec::new();
    for (kind, row) in records.iter().flat_map(rows_of) {
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((kind, vec![row])),
        }
    }
    let mut out = String::new();
    for (index, (kind, rows)) in groups.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let head: Vec<String> = header(kind).into_iter().map(String::from).collect();
        let mut widths: Vec<usize> = head.iter().map(String::len).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        for row in std::iter::once(&head).chain(rows.iter()) {
            let line: Vec<String> =
                row.iter().enumerate().map(|(i, cell)| format!("{cell:<width$}", width = widths[i])).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    out
}

/// Writes records in `format` to `out`.
pub fn write(out: &mut impl Write, format: Format, records: &[Record]) -> std::io::Result<()> {
    match format {
        Format::Table => out.write_all(render_table(records).as_bytes()),
        Format::Json => {
            for record in records {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        Format::Yaml => {
            let text = serde_yaml::to_string(records).map_err(std::io::Error::other)?;
            out.write_all(text.as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_target(cluster: &str, state: &str) -> Record {
        Record::Target {
            rollout_id: "r1".into(),
            cluster: cluster.into(),
            command_id: "c".into(),
            state: state.into(),
            code: None,
            message: None,
            changed_steps: vec!["cluster-update".into()],
        }
    }

    #[test]
    fn table_aligns_columns_and_json_is_tagged() {
        let records = vec![mk_target("aks-1", "succeeded"), mk_target("aks-long-name", "failed")];
        let table = render_table(&records);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("CLUSTER        STATUS"), "{table}");
        assert!(lines[2].starts_with("aks-long-name  failed"), "{table}");
        let mut json = Vec::new();
        write(&mut json, Format::Json, &records).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(json).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["type"], "target");
        assert_eq!(first["state"], "succeeded");
    }
}
