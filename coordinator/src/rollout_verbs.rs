//! `fleetctl rollout …`: submit a rollout file to the leading coordinator and follow it. fleetctl
//! computes nothing here: the coordinator plans, runs and reports; fleetctl sends one request per
//! verb (one per second while watching) and renders the answer.
//!
//! Exit codes: 0 the rollout completed with every cluster succeeded or unchanged (or, without
//! `--watch`, the request was accepted); 1 it halted, was aborted, or a cluster failed or timed
//! out; 2 the file or request was refused (nothing was started), or no coordinator leads.

use crate::output::{Format, Record};
use crate::rollouts::api::{self, RolloutReply, RolloutRequest};
use anyhow::{Context, bail};
use bus::Bus;
use clap::{Args, Subcommand};
use gmsa::rollout::{Phase, RolloutStatus};
use proto::CommandKind;
use proto::rollout::RolloutFile;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The rollout verbs.
#[derive(Subcommand)]
pub enum RolloutAction {
    /// Plan a rollout file against the inventory: its stages and their clusters, and — from every
    /// selected agent, in a dry run — the diff each step would apply. Nothing is written.
    ///
    /// Example: fleetctl rollout plan -f deploy/rollout.example.yaml
    #[command(verbatim_doc_comment)]
    Plan(FileArgs),
    /// Start a rollout file; with --watch, follow it to the end.
    ///
    /// Example: fleetctl rollout start -f rollout.yaml --watch
    #[command(verbatim_doc_comment)]
    Start(StartArgs),
    /// A rollout's stages (counts per state) and clusters (step, state, why), and why it waits.
    Status(StatusArgs),
    /// Every rollout the coordinator knows, oldest first.
    List,
    /// Approve the gate the rollout waits at (before or after a stage).
    Approve {
        rollout_id: String,
        /// The stage whose gate you approve (refused if another gate waits).
        #[arg(long)]
        stage: Option<String>,
    },
    /// Start no more clusters until `resume` (clusters in flight finish their steps).
    Pause { rollout_id: String },
    /// Undo a `pause`.
    Resume { rollout_id: String },
    /// Stop starting clusters; those not started are `skipped` (steps in flight finish).
    Abort { rollout_id: String },
    /// A new rollout of the failed and timed-out clusters only, with identical inputs.
    Retry { rollout_id: String },
    /// Undo what a rollout changed on exactly the clusters it changed: a rollout of the previous
    /// desired state, or, where the fleet had none, a teardown of those clusters.
    Rollback { rollout_id: String },
}

#[derive(Args)]
pub struct FileArgs {
    /// The rollout file (YAML or JSON, strict: see deploy/rollout.example.yaml).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Follow the rollout until it completes, halts or is aborted.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    pub rollout_id: String,
    /// Follow the rollout until it completes, halts or is aborted.
    #[arg(long)]
    pub watch: bool,
}

/// Sends one rollout request to the leading coordinator (see [`request_leader`]; the rollout
/// driver answers within 30 s).
pub async fn request(bus: &Bus, request: &RolloutRequest) -> anyhow::Result<RolloutReply> {
    request_leader(bus, api::SUBJECT, request, Duration::from_secs(30)).await
}

/// Sends one request to a subject only the leading coordinator serves, and decodes its reply.
/// During a leader change nobody answers for a few seconds: the request is repeated for up to
/// 20 s (every leader verb is safe to repeat: the coordinator applies an operator's event once
/// and ignores a repeat). No answer within `wait` is an error.
pub async fn request_leader<Request, Reply>(
    bus: &Bus,
    subject: &'static str,
    request: &Request,
    wait: Duration,
) -> anyhow::Result<Reply>
where
    Request: serde::Serialize,
    Reply: serde::de::DeserializeOwned,
{
    let body = serde_json::to_vec(request)?;
    let started = tokio::time::Instant::now();
    loop {
        match tokio::time::timeout(wait, bus.signed_request(subject.to_string(), body.clone(), wait)).await {
            Ok(Ok(reply)) => {
                return serde_json::from_slice(&reply.payload).context("the coordinator's reply is not understood");
            }
            Ok(Err(err)) if started.elapsed() < Duration::from_secs(20) => {
                tracing::debug!(error = %err, "no leading coordinator yet; asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(Err(err)) => bail!("no leading coordinator answered on {subject}: {err}; is fleet-coordinator running?"),
            Err(_) => bail!("the coordinator did not answer within {}s", wait.as_secs()),
        }
    }
}

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "fleetctl".into())
}

/// Runs one `fleetctl rollout` verb.
pub async fn execute(bus: &Bus, format: Format, action: &RolloutAction) -> anyhow::Result<ExitCode> {
    let by = user();
    let reply = match action {
        RolloutAction::Plan(args) | RolloutAction::Start(StartArgs { file: args, .. }) => {
            let file: RolloutFile = crate::fleetctl::read_operator_file(&args.file)?;
            let shown = args.file.display();
            gmsa::rollout::validate(&file).map_err(|err| anyhow::anyhow!("{shown}: {err}; nothing was started"))?;
            let dry_run = matches!(action, RolloutAction::Plan(_));
            request(bus, &RolloutRequest::Start { file: Box::new(file), dry_run, requested_by: Some(by) }).await?
        }
        RolloutAction::Status(args) => {
            request(bus, &RolloutRequest::Status { rollout_id: args.rollout_id.clone() }).await?
        }
        RolloutAction::List => request(bus, &RolloutRequest::List).await?,
        RolloutAction::Approve { rollout_id, stage } => {
            request(bus, &RolloutRequest::Approve { rollout_id: rollout_id.clone(), stage: stage.clone(), by }).await?
        }
        RolloutAction::Pause { rollout_id } => {
            request(bus, &RolloutRequest::Pause { rollout_id: rollout_id.clone(), by }).await?
        }
        RolloutAction::Resume { rollout_id } => {
            request(bus, &RolloutRequest::Resume { rollout_id: rollout_id.clone(), by }).await?
        }
        RolloutAction::Abort { rollout_id } => {
            request(bus, &RolloutRequest::Abort { rollout_id: rollout_id.clone(), by }).await?
        }
        RolloutAction::Retry { rollout_id } => {
            request(bus, &RolloutRequest::Retry { rollout_id: rollout_id.clone(), by }).await?
        }
        RolloutAction::Rollback { rollout_id } => {
            request(bus, &RolloutRequest::Rollback { rollout_id: rollout_id.clone(), by }).await?
        }
    };
    let watch = match action {
        RolloutAction::Start(args) => args.watch,
        RolloutAction::Status(args) => args.watch,
        _ => false,
    };
    match reply {
        RolloutReply::Refused { code, message } => bail!("the coordinator refused ({code}): {message}"),
        RolloutReply::Unknown => {
            bail!("the coordinator's reply is of a newer kind than this fleetctl knows; upgrade fleetctl")
        }
        RolloutReply::Started { rollout_id, dry_run, stages, notes } => {
            for note in &notes {
                eprintln!("fleetctl: {note}");
            }
            let mut records: Vec<Record> = stages
                .iter()
                .map(|stage| Record::PlannedStage {
                    rollout_id: rollout_id.clone(),
                    stage: stage.name.clone(),
                    size: stage.clusters.len(),
                    clusters: stage.clusters.clone(),
                })
                .collect();
            if dry_run {
                return plan_diffs(bus, format, &rollout_id, records).await;
            }
            if watch {
                eprintln!("fleetctl: rollout {rollout_id} started");
                return follow(bus, format, &rollout_id).await;
            }
            records.push(Record::Started { rollout_id });
            crate::fleetctl::print(format, &records)?;
            Ok(ExitCode::SUCCESS)
        }
        RolloutReply::Status { status, truncated } => {
            if watch {
                return follow(bus, format, &status.rollout_id).await;
            }
            print_status(format, &status, truncated)?;
            Ok(exit_for(&status))
        }
        RolloutReply::List { rollouts } => {
            let records: Vec<Record> = rollouts.into_iter().map(Record::from).collect();
            crate::fleetctl::print(format, &records)?;
            Ok(ExitCode::SUCCESS)
        }
        RolloutReply::Done { rollout_id, message } => {
            crate::fleetctl::print(format, &[Record::Done { rollout_id, message }])?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Follows a plan's dry run to its end, then prints the stages and, per cluster, what each step
/// would change (read once from each step's result), and says whether any step would fail.
async fn plan_diffs(bus: &Bus, format: Format, rollout_id: &str, mut records: Vec<Record>) -> anyhow::Result<ExitCode> {
    eprintln!("fleetctl: every selected agent reports what each step would change; nothing is written");
    let status = wait_for_end(bus, rollout_id).await?;
    let publisher = bus::results::ResultPublisher::open(bus).await?;
    let enrollments = bus::enrollment::Enrollments::open(bus).await?;
    let mut failed = false;
    let mut clusters: Vec<&str> = status.clusters.iter().map(|view| view.cluster.as_str()).collect();
    clusters.sort_unstable();
    for cluster in clusters {
        for step in [CommandKind::EnableGmsa, CommandKind::GrantIdentity, CommandKind::ApplyCredspec] {
            let command_id = proto::CommandId::for_rollout(rollout_id, &format!("{cluster}/{step}"));
            let Some(result) = publisher.lookup_enrolled(&enrollments, cluster, command_id.as_str()).await?.found()
            else {
                continue;
            };
            if let proto::ResultStatus::Failed { code, message } = &result.status {
                failed = true;
                records.push(Record::Step {
                    cluster: cluster.to_string(),
                    step: step.name().to_string(),
                    change: "fails".into(),
                    what: format!("{code}: {message}"),
                });
            }
            records.extend(result.steps.iter().map(|outcome| crate::verbs::step_record(cluster, outcome)));
        }
    }
    crate::fleetctl::print(format, &records)?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Polls the status (every second, progress on stderr) until the rollout is no longer running.
async fn wait_for_end(bus: &Bus, rollout_id: &str) -> anyhow::Result<RolloutStatus> {
    let mut last = String::new();
    loop {
        match request(bus, &RolloutRequest::Status { rollout_id: rollout_id.to_string() }).await? {
            RolloutReply::Status { status, .. } => {
                let line = progress_line(&status);
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
                if !matches!(status.phase, Phase::Running) {
                    return Ok(*status);
                }
            }
            RolloutReply::Done { message, .. } if message.starts_with("failed") => bail!("{rollout_id}: {message}"),
            RolloutReply::Done { .. } => {}
            RolloutReply::Refused { code, message } => bail!("the coordinator refused ({code}): {message}"),
            other => bail!("unexpected reply while following: {other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Asks for the status every second, showing a progress line per stage on stderr, until the
/// rollout completes, halts or is aborted; then prints the status.
async fn follow(bus: &Bus, format: Format, rollout_id: &str) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let reply = request(bus, &RolloutRequest::Status { rollout_id: rollout_id.to_string() }).await?;
        match reply {
            RolloutReply::Status { status, truncated } => {
                let line = progress_line(&status);
                if line != last {
                    if interactive {
                        eprint!("\r\x1b[2K{line}");
                    } else {
                        eprintln!("{line}");
                    }
                    last = line;
                }
                if !matches!(status.phase, Phase::Running) {
                    if interactive {
                        eprintln!();
                    }
                    print_status(format, &status, truncated)?;
                    return Ok(exit_for(&status));
                }
            }
            // Stage 0 still runs (or failed): say so and wait.
            RolloutReply::Done { message, .. } => {
                if message != last {
                    eprintln!("fleetctl: {rollout_id}: {message}");
                    if message.starts_with("failed") {
                        return Ok(ExitCode::from(1));
                    }
                    last = message;
                }
            }
            RolloutReply::Refused { code, message } => bail!("the coordinator refused ({code}): {message}"),
            other => bail!("unexpected reply while following: {other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One line of live progress: every stage as a bar with counts, and why the rollout waits.
pub fn progress_line(status: &RolloutStatus) -> String {
    let stages: Vec<String> = status
        .stages
        .iter()
        .map(|stage| {
            let counts = stage.counts;
            let total = counts.pending
                + counts.waiting_window
                + counts.running
                + counts.succeeded
                + counts.unchanged
                + counts.failed
                + counts.timed_out
                + counts.skipped;
            let done = counts.succeeded + counts.unchanged + counts.failed + counts.timed_out + counts.skipped;
            let width = 10usize;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            format!(
                "{} [{}{}] {done}/{total}{}",
                stage.name,
                "#".repeat(filled),
                "-".repeat(width - filled),
                if counts.failed + counts.timed_out > 0 {
                    format!(" ({} failed)", counts.failed + counts.timed_out)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let waiting = if status.waiting.is_empty() { String::new() } else { format!(" | {}", status.waiting.join("; ")) };
    format!("fleetctl: {} {}{waiting}", status.rollout_id, stages.join("  "))
}

/// Prints a rollout's status on stdout: a row per stage (counts by state), a row per cluster
/// (stage, state, step, why), and the rollout's phase and why it waits.
pub fn print_status(format: Format, status: &RolloutStatus, truncated: bool) -> anyhow::Result<()> {
    let mut records: Vec<Record> = status
        .stages
        .iter()
        .map(|stage| Record::Stage {
            rollout_id: status.rollout_id.clone(),
            stage: stage.name.clone(),
            phase: serde_plain(&stage.phase),
            max_concurrency: stage.max_concurrency,
            failure_budget: stage.failure_budget,
            pending: stage.counts.pending + stage.counts.waiting_window,
            running: stage.counts.running,
            succeeded: stage.counts.succeeded,
            unchanged: stage.counts.unchanged,
            failed: stage.counts.failed,
            timed_out: stage.counts.timed_out,
            skipped: stage.counts.skipped,
        })
        .collect();
    records.extend(status.clusters.iter().map(|view| Record::RolloutCluster {
        rollout_id: status.rollout_id.clone(),
        cluster: view.cluster.clone(),
        stage: view.stage.clone(),
        state: serde_plain(&view.status),
        step: view.step.map(|step| step.name().to_string()),
        why: view.why.clone(),
    }));
    let phase = match &status.phase {
        Phase::Halted { reason } => format!("halted: {reason}"),
        Phase::Aborted { by } => format!("aborted by {by}"),
        Phase::Completed => "completed".into(),
        Phase::Running if status.paused_by.is_some() => {
            format!("paused by {}", status.paused_by.clone().unwrap_or_default())
        }
        Phase::Running => "running".into(),
    };
    records.push(Record::RolloutPhase {
        rollout_id: status.rollout_id.clone(),
        name: status.name.clone(),
        phase,
        current_stage: status.current_stage.clone(),
        waiting: status.waiting.clone(),
        truncated,
    });
    crate::fleetctl::print(format, &records)
}

/// The wire name of a unit enum value (`waiting_approval_after`, `timed_out`).
fn serde_plain(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default()
}

fn exit_for(status: &RolloutStatus) -> ExitCode {
    let failures: usize = status.stages.iter().map(|stage| stage.counts.failed + stage.counts.timed_out).sum();
    match status.phase {
        Phase::Halted { .. } | Phase::Aborted { .. } => ExitCode::from(1),
        _ if failures > 0 => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}
