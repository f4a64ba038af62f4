//! `fleetctl rotate …`: ask the leading coordinator to rotate the fleet's credential, set its
//! schedule, and show its status and history. fleetctl never sees a password: the coordinator
//! resets the idle user and writes Key Vault itself.
//!
//! Exit codes: 0 done (with `now --wait`: the rotation completed); 1 the rotation failed (Key
//! Vault still names a working user); 2 refused (nothing was changed), or no coordinator leads.

use crate::output::{Format, Record};
use crate::rotation::api::{RotateReply, RotateRequest, SUBJECT};
use crate::rotation::store::CredentialRecord;
use anyhow::bail;
use bus::Bus;
use clap::{Args, Subcommand};
use gmsa::rotation::{RotationRun, RunPhase, Schedule};
use std::process::ExitCode;
use std::time::Duration;
use time::OffsetDateTime;

/// The rotation verbs.
#[derive(Subcommand)]
pub enum RotateAction {
    /// Rotate now: reset the idle user's password, write one new version per vault, roll
    /// `rotate-credential` out with the fleet's rollout strategy. With --dry-run, only say which
    /// user would be reset and which secrets written.
    ///
    /// Example: fleetctl rotate now --wait
    #[command(verbatim_doc_comment)]
    Now(NowArgs),
    /// Each credential: active user, password age, schedule, next run, the run in progress and
    /// the clusters not yet confirmed on the newest version.
    Status,
    /// Finished rotations, newest first.
    History,
    /// Set the schedule (checked against the domain's password policy: each user is reset every
    /// second rotation, so twice the interval must stay within maxPwdAge).
    ///
    /// Examples: fleetctl rotate schedule --every 30d
    ///           fleetctl rotate schedule --cron "0 2 * * sun"
    ///           fleetctl rotate schedule --clear
    #[command(verbatim_doc_comment)]
    Schedule(ScheduleArgs),
    /// Undo the last rotation: a new version of every secret it wrote, naming the previous user
    /// again (whose password it did not touch). No version is disabled or deleted.
    Rollback,
}

#[derive(Args)]
pub struct NowArgs {
    /// Change nothing; show the run that would start.
    #[arg(long)]
    pub dry_run: bool,
    /// Follow the rotation until it completes or fails.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ScheduleArgs {
    /// An interval: 30d, 12h (at least 1h, at most 3650d).
    #[arg(long)]
    pub every: Option<String>,
    /// A five-field cron expression, UTC.
    #[arg(long)]
    pub cron: Option<String>,
    /// Remove the schedule (rotations then run only on `rotate now`).
    #[arg(long)]
    pub clear: bool,
}

/// Sends one rotation request to the leading coordinator (a rotation started now resets a
/// password and writes the vaults before it answers: up to 60 s).
pub async fn request(bus: &Bus, request: &RotateRequest) -> anyhow::Result<RotateReply> {
    crate::rollout_verbs::request_leader(bus, SUBJECT, request, Duration::from_secs(60)).await
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn phase_text(phase: &RunPhase) -> String {
    match phase {
        RunPhase::Resetting => "resetting".into(),
        RunPhase::Writing => "writing".into(),
        RunPhase::RollingOut => "rolling-out".into(),
        RunPhase::Completed => "completed".into(),
        RunPhase::Failed { code, message } => format!("failed ({code}): {message}"),
        RunPhase::Unknown => "unknown".into(),
    }
}

/// One run as an output record.
pub fn run_record(run: &RotationRun) -> Record {
    Record::RotationRun {
        run_id: run.run_id.clone(),
        credential: run.credential.clone(),
        user: run.target_user.clone(),
        phase: phase_text(&run.phase),
        started_at: rfc3339(run.started_at),
        finished_at: run.finished_at.map(rfc3339),
        writes: format!("{}/{}", run.writes, run.targets.len()),
        resets: run.resets,
        rollout_id: run.rollout_id.clone(),
        requested_by: run.requested_by.clone(),
    }
}

fn age_text(since: OffsetDateTime, now: OffsetDateTime) -> String {
    let age = now - since;
    format!("{}d {}h", age.whole_days(), age.whole_hours() % 24)
}

/// One credential as an output record, its age computed at `now`.
pub fn credential_record(record: &CredentialRecord, now: OffsetDateTime) -> Record {
    Record::Credential {
        credential: record.credential.clone(),
        active_user: record.active_user.clone(),
        age: record.rotated_at.map(|at| age_text(at, now)),
        schedule: record.schedule.as_ref().map(Schedule::to_string),
        next_run: record.next_run.map(rfc3339),
        running: record.current.as_ref().map(|run| format!("{} {}", run.run_id, phase_text(&run.phase))),
        unconfirmed: record.unconfirmed.clone(),
    }
}

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "fleetctl".into())
}

/// Runs one `fleetctl rotate` verb.
pub async fn execute(bus: &Bus, format: Format, action: &RotateAction) -> anyhow::Result<ExitCode> {
    let reply = match action {
        RotateAction::Now(args) => {
            request(bus, &RotateRequest::Now { requested_by: Some(user()), dry_run: args.dry_run }).await?
        }
        RotateAction::Status => request(bus, &RotateRequest::Status).await?,
        RotateAction::History => request(bus, &RotateRequest::History).await?,
        RotateAction::Rollback => request(bus, &RotateRequest::Rollback { requested_by: Some(user()) }).await?,
        RotateAction::Schedule(args) => {
            // Checked here with the coordinator's own rules before anything is sent.
            let schedule = match (&args.every, &args.cron) {
                (Some(every), _) => Some(Schedule::every(every).map_err(|err| anyhow::anyhow!("--{err}"))?),
                (None, Some(cron)) => Some(Schedule::cron(cron).map_err(|err| anyhow::anyhow!("--{err}"))?),
                (None, None) => None,
            };
            request(bus, &RotateRequest::Schedule { schedule, requested_by: Some(user()) }).await?
        }
    };
    let now = OffsetDateTime::now_utc();
    match reply {
        RotateReply::Refused { code, message } => bail!("the coordinator refused ({code}): {message}"),
        RotateReply::Unknown => bail!("the coordinator's reply is of a newer kind than this fleetctl knows"),
        RotateReply::Started { run, dry_run } => {
            if dry_run {
                eprintln!(
                    "fleetctl: dry run: would reset {} and write {} secret(s) for {} cluster(s); nothing was changed",
                    run.target_user,
                    run.targets.len(),
                    run.targets.iter().map(|target| target.clusters.len()).sum::<usize>()
                );
            }
            let waits = matches!(action, RotateAction::Now(NowArgs { wait: true, .. })) && !dry_run;
            if !waits {
                crate::fleetctl::print(format, &[run_record(&run)])?;
                return Ok(ExitCode::SUCCESS);
            }
            follow(bus, format, &run.run_id).await
        }
        RotateReply::Status { credentials } => {
            let records: Vec<Record> = credentials.iter().map(|record| credential_record(record, now)).collect();
            crate::fleetctl::print(format, &records)?;
            Ok(ExitCode::SUCCESS)
        }
        RotateReply::History { runs } => {
            crate::fleetctl::print(format, &runs.iter().map(run_record).collect::<Vec<_>>())?;
            Ok(ExitCode::SUCCESS)
        }
        RotateReply::Scheduled { credential } => {
            crate::fleetctl::print(format, &[credential_record(&credential, now)])?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Follows run `run_id` (live phase changes on stderr) until it finishes.
async fn follow(bus: &Bus, format: Format, run_id: &str) -> anyhow::Result<ExitCode> {
    let mut last = String::new();
    loop {
        let RotateReply::Status { credentials } = request(bus, &RotateRequest::Status).await? else {
            bail!("the coordinator did not answer with a status");
        };
        let current = credentials.iter().find_map(|record| record.current.as_ref().filter(|run| run.run_id == run_id));
        let finished = credentials.iter().find_map(|record| record.history.iter().find(|run| run.run_id == run_id));
        if let Some(run) = finished {
            crate::fleetctl::print(format, &[run_record(run)])?;
            return Ok(if run.phase == RunPhase::Completed { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        if let Some(run) = current {
            let line = format!("{} ({}/{} secrets written)", phase_text(&run.phase), run.writes, run.targets.len());
            if line != last {
                eprintln!("fleetctl: rotation {run_id}: {line}");
                last = line;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
