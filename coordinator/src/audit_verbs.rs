//! `fleetctl audit …`: read the central audit log, export it for a SIEM, keep its latest signed
//! checkpoint, and verify it (with `gmsa::audit::verify`, which shares no code with the writer).
//!
//! Exit codes: 0 done (verify: the log checks out); 1 verify found a failure (the first failing
//! index is named); 2 bad input or the bus could not be read.

use crate::audit::read;
use anyhow::{Context, bail};
use bus::Bus;
use clap::{Args, Subcommand};
use gmsa::audit::query::Filter;
use gmsa::audit::verify::TrustedKey;
use proto::audit::{AuditEntry, AuditEvent};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use time::OffsetDateTime;

use crate::output::Format;

#[derive(Subcommand)]
pub enum AuditAction {
    /// Entries, oldest first, filtered. `-o json`/`jsonl` prints one entry per line.
    ///
    /// Examples: fleetctl audit log --cluster aks-prod-1
    ///           fleetctl audit log --rollout r-20261201-... --kind rollout
    ///           fleetctl audit log --actor ann --since 24h -o jsonl
    ///           fleetctl audit log --follow
    #[command(verbatim_doc_comment)]
    Log(LogArgs),
    /// Entries as JSON lines for a SIEM, each with its leaf index and hash and the first stored
    /// checkpoint covering it with the entry's inclusion proof.
    ///
    /// Example: fleetctl audit export --since 2026-12-01T00:00:00Z > entries.jsonl
    #[command(verbatim_doc_comment)]
    Export(FilterArgs),
    /// Print the latest signed checkpoint (a C2SP signed note): keep it, and later check the log
    /// against it with `audit verify --checkpoint FILE`.
    Checkpoint,
    /// Recompute the Merkle tree from every stored entry; check every batch's seal, every
    /// checkpoint's signature and root (the log's own and those given with --checkpoint), and
    /// name the first index that fails. Exit 1 on any failure.
    ///
    /// Example: fleetctl audit verify --key "$(cat coordinator.vkey)" --checkpoint kept.note
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
}

#[derive(Args, Default)]
pub struct FilterArgs {
    #[arg(long)]
    pub cluster: Option<String>,
    #[arg(long)]
    pub rollout: Option<String>,
    /// command, result, progress, drift, refusal, rollout, rotation, request or unreadable.
    #[arg(long)]
    pub kind: Option<String>,
    /// An actor as recorded (`operator:ann`, `agent:aks-1`, `coordinator`) or a name alone.
    #[arg(long)]
    pub actor: Option<String>,
    /// RFC 3339 time, or an age: 90s, 30m, 12h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339 time, or an age: 90s, 30m, 12h, 7d.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Keep printing new entries as they are appended (until interrupted).
    #[arg(long)]
    pub follow: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A trusted verifier key, `<name>+<id>+<base64>` (`fleetctl keys public --verifier-key`);
    /// repeat for rotated keys.
    #[arg(long = "key", env = "FLEETCTL_AUDIT_KEY", required = true)]
    pub keys: Vec<String>,
    /// A checkpoint kept earlier (signed note file); repeatable.
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// The log's origin line.
    #[arg(long, default_value = crate::audit::DEFAULT_ORIGIN)]
    pub origin: String,
}

/// A time from `--since`/`--until`: RFC 3339, or an age before `now` (checked arithmetic).
pub fn parse_time(flag: &str, text: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(at);
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let value: i64 = number
        .parse()
        .with_context(|| format!("{flag}: {text:?} is neither an RFC 3339 time nor an age like 30m, 12h, 7d"))?;
    let seconds = match unit {
        "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        "d" => value.checked_mul(86_400),
        _ => bail!("{flag}: {text:?}: an age's unit is s, m, h or d"),
    };
    seconds
        .and_then(|seconds| now.checked_sub(time::Duration::seconds(seconds)))
        .with_context(|| format!("{flag}: {text:?} reaches before the calendar's start"))
}

impl FilterArgs {
    /// The filter, checked: an unknown kind or a bad time is refused before anything is read.
    pub fn filter(&self, now: OffsetDateTime) -> anyhow::Result<Filter> {
        if let Some(kind) = &self.kind
            && !AuditEvent::KINDS.contains(&kind.as_str())
        {
            bail!("--kind: {kind:?} is not one of {}", AuditEvent::KINDS.join(", "));
        }
        Ok(Filter {
            cluster: self.cluster.clone(),
            rollout: self.rollout.clone(),
            kind: self.kind.clone(),
            actor: self.actor.clone(),
            since: self.since.as_deref().map(|t| parse_time("--since", t, now)).transpose()?,
            until: self.until.as_deref().map(|t| parse_time("--until", t, now)).transpose()?,
        })
    }
}

/// One line of the table: what happened, in a few words.
pub fn summary(entry: &AuditEntry) -> String {
    match &entry.event {
        AuditEvent::Command { command, .. } => format!("sent {command}"),
        AuditEvent::Result { status, code, result, .. } => {
            let changed: Vec<&str> =
                result.steps.iter().filter(|step| step.is_changed()).map(|step| step.step.as_str()).collect();
            match code {
                Some(code) => format!("{} {status} ({code})", result.kind),
                None if changed.is_empty() => format!("{} {status}", result.kind),
                None => format!("{} {status}: changed {}", result.kind, changed.join(", ")),
            }
        }
        AuditEvent::Progress { step, .. } => format!("step {step}"),
        AuditEvent::Drift { report } => format!("{} {} {} ({})", report.kind, report.name, report.cause, report.remedy),
        AuditEvent::Refusal { code, action, .. } => format!("refused {code}: {action}"),
        AuditEvent::Rollout { transition, stage, reason, .. } => {
            let mut text = transition.clone();
            if let Some(stage) = stage {
                text.push_str(&format!(" {stage}"));
            }
            if let Some(reason) = reason {
                text.push_str(&format!(": {reason}"));
            }
            text
        }
        AuditEvent::Rotation { credential, step, .. } => format!("{credential} {step}"),
        AuditEvent::Request { subject, outcome, code, .. } => match code {
            Some(code) => format!("{subject} {outcome} ({code})"),
            None => format!("{subject} {outcome}"),
        },
        AuditEvent::Unreadable { message } => format!("unreadable: {message}"),
        AuditEvent::Unknown => "a kind this fleetctl does not know".into(),
    }
}

pub fn write_entries(
    out: &mut impl Write,
    format: Format,
    entries: &[AuditEntry],
    header: bool,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            for entry in entries {
                serde_json::to_writer(&mut *out, entry)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        Format::Yaml => out.write_all(serde_yaml::to_string(entries).map_err(std::io::Error::other)?.as_bytes()),
        Format::Table => {
            if header {
                writeln!(out, "{:<7} {:<20} {:<9} {:<22} {:<16} WHAT", "INDEX", "AT", "KIND", "ACTOR", "CLUSTER")?;
            }
            for entry in entries {
                let at = entry.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
                // Seconds are enough in a table; json keeps the full time.
                let at = match at.get(..19) {
                    Some(seconds) if at.len() > 20 => format!("{seconds}Z"),
                    _ => at,
                };
                writeln!(
                    out,
                    "{:<7} {:<20} {:<9} {:<22} {:<16} {}",
                    entry.index,
                    at,
                    entry.kind(),
                    entry.actor,
                    entry.cluster.as_deref().unwrap_or("-"),
                    summary(entry)
                )?;
            }
            Ok(())
        }
    }
}

/// Prints a verification report as `audit verify` does.
pub fn write_report(out: &mut impl Write, format: Format, report: &gmsa::audit::verify::Report) -> anyhow::Result<()> {
    let failures: Vec<serde_json::Value> = report
        .failures
        .iter()
        .map(|f| serde_json::json!({"code": f.code(), "index": f.index(), "message": f.to_string()}))
        .collect();
    let record = serde_json::json!({
        "type": "audit_verify",
        "ok": report.failures.is_empty(),
        "entries": report.size,
        "batches": report.batches,
        "checkpoints_checked": report.checkpoints_checked,
        "verified_size": report.verified_size,
        "first_failing_index": report.first_failure().and_then(|f| f.index()),
        "failures": failures,
    });
    match format {
        Format::Json => writeln!(out, "{record}")?,
        Format::Yaml => out.write_all(serde_yaml::to_string(&record)?.as_bytes())?,
        Format::Table => {
            writeln!(
                out,
                "entries {}  batches {}  checkpoints checked {}  verified up to size {}",
                report.size, report.batches, report.checkpoints_checked, report.verified_size
            )?;
            match report.first_failure() {
                None => writeln!(out, "OK: every seal, entry and checkpoint verifies")?,
                Some(_) => {
                    for failure in &report.failures {
                        writeln!(out, "FAIL {}: {failure}", failure.code())?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Runs an `audit` verb.
pub async fn execute(bus: &Bus, format: Format, action: &AuditAction) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let mut out = std::io::stdout().lock();
    match action {
        AuditAction::Log(args) => {
            let filter = args.filter.filter(now)?;
            let (entries, unreadable) = read::entries(bus, &filter).await?;
            write_entries(&mut out, format, &entries, true)?;
            if unreadable > 0 {
                eprintln!("fleetctl: {unreadable} stored entries do not decode; run `fleetctl audit verify`");
            }
            out.flush()?;
            if args.follow {
                drop(out);
                read::follow(bus, &filter, |entry| {
                    let mut out = std::io::stdout().lock();
                    write_entries(&mut out, format, &[entry], false).and_then(|()| out.flush()).is_ok()
                })
                .await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Export(args) => {
            let filter = args.filter(now)?;
            for line in read::export(bus, &filter).await? {
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Checkpoint => {
            let checkpoints = read::checkpoints(bus).await?;
            let Some((_, note)) = checkpoints.last() else { bail!("the audit log has no checkpoint yet") };
            out.write_all(note.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditAction::Verify(args) => {
            let trusted = args
                .keys
                .iter()
                .map(|key| TrustedKey::parse(key).with_context(|| format!("--key {key:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut kept = Vec::new();
            for path in &args.checkpoint {
                let note = std::fs::read_to_string(path).with_context(|| format!("--checkpoint {}", path.display()))?;
                kept.push((path.display().to_string(), note));
            }
            let report = read::verify(bus, &args.origin, trusted, &kept).await?;
            write_report(&mut out, format, &report)?;
            Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages_and_bad_ones_name_the_flag() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        assert_eq!(parse_time("--since", "2d", now).unwrap(), OffsetDateTime::UNIX_EPOCH + time::Duration::days(8));
        assert_eq!(
            parse_time("--since", "1970-01-02T00:00:00Z", now).unwrap(),
            OffsetDateTime::UNIX_EPOCH + time::Duration::days(1)
        );
        let err = parse_time("--until", "3w", now).unwrap_err().to_string();
        assert!(err.contains("--until"), "{err}");
        assert!(parse_time("--since", "99999999999999999d", now).is_err());
        let bad = FilterArgs { kind: Some("results".into()), ..FilterArgs::default() };
        assert!(bad.filter(now).unwrap_err().to_string().contains("--kind"));
    }
}
