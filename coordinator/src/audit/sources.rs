//! What the audit writer records of each source message, and the drafts coordinator tasks
//! submit (operator requests, rollout transitions). Pure: a stored message in, an entry out.
//!
//! Every function here reads ids and states, never a secret: the bus carries none, and the
//! rotation records hold no password.

use crate::rollouts::log::LogEntry;
use crate::rotation::store::CredentialRecord;
use gmsa::rollout::{Action, Event};
use proto::audit::{AuditEntry, AuditEvent};
use proto::subjects;
use time::OffsetDateTime;

/// The streams the writer reads, by the name its cursor has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Commands,
    Results,
    Progress,
    Drift,
    Dead,
    Rotations,
    Inbox,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Commands,
        Source::Results,
        Source::Progress,
        Source::Drift,
        Source::Dead,
        Source::Rotations,
        Source::Inbox,
    ];

    /// The stream (and its cursor's name).
    pub fn stream(self) -> &'static str {
        match self {
            Source::Commands => subjects::COMMAND_STREAM,
            Source::Results => subjects::RESULT_STREAM,
            Source::Progress => subjects::PROGRESS_STREAM,
            Source::Drift => subjects::DRIFT_STREAM,
            Source::Dead => subjects::DEAD_STREAM,
            Source::Rotations => "KV_fleet_rotations",
            Source::Inbox => subjects::AUDIT_INBOX_STREAM,
        }
    }
}

/// A stored message, as the writer got it (plain types).
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub source: Source,
    pub sequence: u64,
    pub subject: &'a str,
    pub payload: &'a [u8],
    pub published: OffsetDateTime,
    /// The key that signed it, where its signature verified (commands: any valid signature;
    /// results: the cluster's enrolled key).
    pub signed_by: Option<String>,
}

fn from(message: &Message<'_>, actor: String, event: AuditEvent) -> AuditEntry {
    let mut entry = AuditEntry::draft(message.published, actor, event);
    entry.source = Some(format!("{}#{}", message.source.stream(), message.sequence));
    entry
}

fn unreadable(message: &Message<'_>, actor: String, why: impl std::fmt::Display) -> AuditEntry {
    from(message, actor, AuditEvent::Unreadable { message: proto::decode::bounded(&why.to_string(), 512) })
}

fn agent(cluster: &str) -> String {
    format!("agent:{cluster}")
}

/// The cluster token after `prefix` in a subject.
fn cluster_of<'s>(subject: &'s str, prefix: &str) -> Option<&'s str> {
    subject.strip_prefix(prefix).map(|rest| rest.split('.').next().unwrap_or(rest))
}

/// The entry for one source message; `None` for what is not recorded (heartbeats, a rotation
/// record's delete marker).
pub fn entry_of(message: &Message<'_>) -> Option<AuditEntry> {
    match message.source {
        Source::Commands => Some(command(message)),
        Source::Results => Some(result(message)),
        Source::Progress => progress(message),
        Source::Drift => Some(drift(message)),
        Source::Dead => Some(dead(message)),
        Source::Rotations => rotation(message),
        Source::Inbox => Some(inbox(message)),
    }
}

fn command(message: &Message<'_>) -> AuditEntry {
    let cluster = cluster_of(message.subject, "fleet.cmd.").map(str::to_string);
    let envelope: serde_json::Value = match serde_json::from_slice(message.payload) {
        Ok(value) => value,
        Err(err) => {
            let mut entry = unreadable(message, "coordinator".into(), format!("a command that is not JSON: {err}"));
            entry.cluster = cluster;
            return entry;
        }
    };
    let text = |field: &str| envelope.get(field).and_then(|value| value.as_str()).map(str::to_string);
    let kind = envelope.pointer("/command/kind").and_then(|kind| kind.as_str()).unwrap_or("unknown").to_string();
    let mut entry = from(
        message,
        "coordinator".into(),
        AuditEvent::Command { command: kind, signed_by: message.signed_by.clone(), envelope: envelope.clone() },
    );
    entry.at = text("issued_at")
        .and_then(|at| OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(message.published);
    entry.cluster = cluster;
    entry.rollout = text("rollout_id");
    entry.command_id = text("command_id");
    entry
}

fn result(message: &Message<'_>) -> AuditEntry {
    let parsed = subjects::parse_result(message.subject);
    let actor = parsed.map_or_else(|| "agent:unknown".to_string(), |(cluster, _)| agent(cluster));
    let decoded = proto::decode::result(parsed, message.payload);
    let mut entry = match decoded {
        Ok(result) => {
            let (status, code) = match &result.status {
                proto::ResultStatus::Failed { code, .. } => ("failed".to_string(), Some(code.clone())),
                other => (other.label().to_string(), None),
            };
            let mut entry = from(
                message,
                actor,
                AuditEvent::Result {
                    status,
                    code,
                    verified: message.signed_by.is_some(),
                    result: Box::new(result.clone()),
                },
            );
            entry.at = result.finished_at;
            entry.rollout = result.rollout_id.clone();
            entry
        }
        Err(refusal) => unreadable(message, actor, format!("{}: {}", refusal.code.as_str(), refusal.message)),
    };
    if let Some((cluster, command_id)) = parsed {
        entry.cluster = Some(cluster.to_string());
        entry.command_id = Some(command_id.to_string());
    }
    entry
}

fn progress(message: &Message<'_>) -> Option<AuditEntry> {
    let cluster = cluster_of(message.subject, "fleet.progress.").unwrap_or("unknown");
    let mut entry = match serde_json::from_slice::<proto::ProgressEvent>(message.payload) {
        // A summary, not every heartbeat: each step's start is recorded. `started` (the agent
        // took the command) is not: the command's own entry and its steps say as much.
        Ok(event) if event.step == "heartbeat" || event.step == "started" => return None,
        Ok(event) => {
            let mut entry =
                from(message, agent(cluster), AuditEvent::Progress { step: event.step, message: event.message });
            entry.at = event.at;
            entry.command_id = Some(event.command_id.to_string());
            entry
        }
        Err(err) => unreadable(message, agent(cluster), format!("a progress event that does not decode: {err}")),
    };
    entry.cluster = Some(cluster.to_string());
    Some(entry)
}

fn drift(message: &Message<'_>) -> AuditEntry {
    let cluster = cluster_of(message.subject, "fleet.drift.").unwrap_or("unknown");
    let mut entry = match serde_json::from_slice::<proto::drift::DriftReport>(message.payload) {
        Ok(report) => {
            let at = report.at;
            let mut entry = from(message, agent(cluster), AuditEvent::Drift { report: Box::new(report) });
            entry.at = at;
            entry
        }
        Err(err) => unreadable(message, agent(cluster), format!("a drift report that does not decode: {err}")),
    };
    entry.cluster = Some(cluster.to_string());
    entry
}

fn dead(message: &Message<'_>) -> AuditEntry {
    let reporter = cluster_of(message.subject, "fleet.dead.").unwrap_or("unknown").to_string();
    let actor = if reporter == proto::deadletter::COORDINATOR { reporter.clone() } else { agent(&reporter) };
    match serde_json::from_slice::<proto::deadletter::DeadLetter>(message.payload) {
        Ok(letter) => {
            let mut entry = from(
                message,
                actor,
                AuditEvent::Refusal {
                    reporter: letter.reporter.clone(),
                    code: letter.code,
                    message: letter.message,
                    action: letter.action,
                },
            );
            entry.at = letter.at;
            if reporter != proto::deadletter::COORDINATOR {
                entry.cluster = Some(reporter);
            }
            entry
        }
        Err(err) => unreadable(message, actor, format!("a dead letter that does not decode: {err}")),
    }
}

fn rotation(message: &Message<'_>) -> Option<AuditEntry> {
    if message.payload.is_empty() {
        return None;
    }
    let credential = message.subject.strip_prefix("$KV.fleet_rotations.").unwrap_or(message.subject).to_string();
    let record = match serde_json::from_slice::<CredentialRecord>(message.payload) {
        Ok(record) => record,
        Err(err) => return Some(unreadable(message, "coordinator".into(), format!("a rotation record: {err}"))),
    };
    // `resetting`, `writing`, `rolling_out`, `completed`, or `failed: <code>`.
    let phase_name = |phase: &gmsa::rotation::RunPhase| match phase {
        gmsa::rotation::RunPhase::Failed { code, .. } => format!("failed: {code}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into()),
    };
    let (step, run) = match (&record.current, record.history.first()) {
        (Some(run), _) => (phase_name(&run.phase), Some(run)),
        (None, Some(run)) => (phase_name(&run.phase), Some(run)),
        (None, None) => ("scheduled".to_string(), None),
    };
    let detail = run.map(|run| {
        format!(
            "run {} resets {} (previously {}), {} vault writes",
            run.run_id, run.target_user, run.previous_user, run.writes
        )
    });
    let mut entry = from(message, "coordinator".into(), AuditEvent::Rotation { credential, step, detail });
    entry.rollout = run.and_then(|run| run.rollout_id.clone());
    Some(entry)
}

fn inbox(message: &Message<'_>) -> AuditEntry {
    match serde_json::from_slice::<AuditEntry>(message.payload) {
        Ok(mut draft) => {
            let origin = draft.source.take();
            draft.source = Some(match origin {
                Some(origin) => format!("{origin} via {}#{}", message.source.stream(), message.sequence),
                None => format!("{}#{}", message.source.stream(), message.sequence),
            });
            draft
        }
        Err(err) => unreadable(message, "coordinator".into(), format!("an audit draft that does not decode: {err}")),
    }
}

/// The actor a verified name stands for.
pub fn actor_of(name: &str) -> String {
    if name == "coordinator" { name.to_string() } else { format!("operator:{name}") }
}

/// The draft of an operator request on `subject`: answered (`outcome` from the reply: a reply
/// with a `code` is a refusal by the handler) or refused before it reached one.
pub fn request_draft(
    at: OffsetDateTime,
    subject: &str,
    signer: Option<&str>,
    verified: Result<&str, (&str, &str)>,
    payload: &[u8],
    reply: Option<&serde_json::Value>,
) -> AuditEntry {
    let request = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
    let (actor, outcome, code) = match verified {
        Ok(name) => {
            let code = reply.and_then(|reply| reply.get("code")).and_then(|code| code.as_str()).map(str::to_string);
            (actor_of(name), if code.is_some() { "refused" } else { "answered" }, code)
        }
        Err((code, _)) => ("unverified".to_string(), "refused", Some(code.to_string())),
    };
    let mut entry = AuditEntry::draft(
        at,
        actor,
        AuditEvent::Request { subject: subject.to_string(), outcome: outcome.into(), code, request },
    );
    entry.source = Some(match signer {
        Some(key) => format!("{subject} signed by {}", proto::decode::bounded(key, 80)),
        None => format!("{subject} unsigned"),
    });
    entry.rollout = reply.and_then(|reply| reply.get("rollout_id")).and_then(|id| id.as_str()).map(str::to_string);
    entry
}

fn transition(at: OffsetDateTime, rollout_id: &str, actor: String, name: &str) -> AuditEntry {
    let mut entry = AuditEntry::draft(
        at,
        actor,
        AuditEvent::Rollout { transition: name.to_string(), stage: None, reason: None, steps: Vec::new() },
    );
    entry.rollout = Some(rollout_id.to_string());
    entry
}

fn set(entry: &mut AuditEntry, stage: Option<String>, reason: Option<String>) {
    if let AuditEvent::Rollout { stage: s, reason: r, .. } = &mut entry.event {
        *s = stage;
        *r = reason;
    }
}

/// The drafts of one logged rollout entry and the actions the engine took on it.
pub fn rollout_drafts(rollout_id: &str, entry: &LogEntry, actions: &[Action], now: OffsetDateTime) -> Vec<AuditEntry> {
    let mut drafts = Vec::new();
    match entry {
        LogEntry::Created { origin, requested_by, created_at, dry_run, .. } => {
            let actor = requested_by.as_deref().map_or_else(|| "coordinator".to_string(), actor_of);
            let mut draft = transition(*created_at, rollout_id, actor, if *dry_run { "planned" } else { "created" });
            set(&mut draft, None, Some(origin.clone()));
            drafts.push(draft);
        }
        LogEntry::Prepared { steps, .. } => {
            let mut draft = transition(now, rollout_id, "coordinator".into(), "prepared");
            if let AuditEvent::Rollout { steps: s, .. } = &mut draft.event {
                s.clone_from(steps);
            }
            drafts.push(draft);
        }
        LogEntry::PrepareFailed { message } => {
            let mut draft = transition(now, rollout_id, "coordinator".into(), "halted");
            set(&mut draft, Some("stage 0".into()), Some(message.clone()));
            drafts.push(draft);
        }
        LogEntry::Started { now } => drafts.push(transition(*now, rollout_id, "coordinator".into(), "started")),
        LogEntry::Event { event, now } => {
            let by = |name: &str, what: &str| transition(*now, rollout_id, actor_of(name), what);
            match event {
                Event::Approve { gate, by: name } => {
                    let mut draft = by(name, "approved");
                    set(&mut draft, Some(gate.stage.clone()), Some(format!("gate {:?}", gate.when).to_lowercase()));
                    drafts.push(draft);
                }
                Event::Pause { by: name } => drafts.push(by(name, "paused")),
                Event::Resume { by: name } => drafts.push(by(name, "resumed")),
                Event::Abort { by: name } => drafts.push(by(name, "aborted")),
                _ => {}
            }
        }
        LogEntry::PlanPart { .. } | LogEntry::Unknown => {}
    }
    for action in actions {
        let at = match entry {
            LogEntry::Event { now, .. } | LogEntry::Started { now } => *now,
            _ => now,
        };
        let coordinator = |what: &str| transition(at, rollout_id, "coordinator".into(), what);
        let draft = match action {
            Action::StageStarted { stage } => {
                let mut draft = coordinator("stage-started");
                set(&mut draft, Some(stage.clone()), None);
                draft
            }
            Action::StageSoaking { stage, until } => {
                let mut draft = coordinator("stage-soaking");
                set(&mut draft, Some(stage.clone()), Some(format!("until {until}")));
                draft
            }
            Action::AwaitingApproval { gate } => {
                let mut draft = coordinator("awaiting-approval");
                set(&mut draft, Some(gate.stage.clone()), Some(format!("gate {:?}", gate.when).to_lowercase()));
                draft
            }
            Action::StageCompleted { stage } => {
                let mut draft = coordinator("stage-completed");
                set(&mut draft, Some(stage.clone()), None);
                draft
            }
            Action::ClusterFinished { cluster, status } => {
                let mut draft = coordinator("cluster-finished");
                set(&mut draft, None, Some(format!("{status:?}")));
                draft.cluster = Some(cluster.clone());
                draft
            }
            Action::Halted { reason } => {
                let mut draft = coordinator("halted");
                set(&mut draft, None, Some(reason.clone()));
                draft
            }
            Action::Completed => coordinator("completed"),
            // Pause, resume and abort are recorded from their events, with the operator.
            _ => continue,
        };
        drafts.push(draft);
    }
    drafts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(source: Source, subject: &'a str, payload: &'a [u8]) -> Message<'a> {
        Message { source, sequence: 7, subject, payload, published: OffsetDateTime::UNIX_EPOCH, signed_by: None }
    }

    #[test]
    fn heartbeats_are_not_recorded_and_steps_are() {
        let event = |step: &str| {
            serde_json::json!({"schema":"1.0","command_id":"c1","cluster":"k1","step":step,"message":"m","at":"2026-01-01T00:00:00Z"})
                .to_string()
        };
        let beat = event("heartbeat");
        assert!(entry_of(&message(Source::Progress, "fleet.progress.k1.c1", beat.as_bytes())).is_none());
        let step = event("vault-grant");
        let entry = entry_of(&message(Source::Progress, "fleet.progress.k1.c1", step.as_bytes())).unwrap();
        assert_eq!(
            (entry.cluster.as_deref(), entry.actor.as_str(), entry.kind()),
            (Some("k1"), "agent:k1", "progress")
        );
        assert_eq!(entry.source.as_deref(), Some("FLEET_PROGRESS#7"));
    }

    #[test]
    fn what_does_not_decode_is_recorded_as_unreadable() {
        let entry = entry_of(&message(Source::Results, "fleet.result.k1.c1", b"not json")).unwrap();
        assert_eq!(
            (entry.kind(), entry.cluster.as_deref(), entry.command_id.as_deref()),
            ("unreadable", Some("k1"), Some("c1"))
        );
        let entry = entry_of(&message(Source::Inbox, "fleet.audit.in.request", b"{")).unwrap();
        assert_eq!(entry.kind(), "unreadable");
    }

    #[test]
    fn requests_name_the_verified_actor_and_the_refusal() {
        let answered = request_draft(
            OffsetDateTime::UNIX_EPOCH,
            "fleet.ctl.run",
            Some("ed25519:k"),
            Ok("ann"),
            b"{\"dry_run\":true}",
            None,
        );
        assert_eq!(answered.actor, "operator:ann");
        assert!(matches!(&answered.event, AuditEvent::Request { outcome, .. } if outcome == "answered"));
        let refused = request_draft(
            OffsetDateTime::UNIX_EPOCH,
            "fleet.ctl.run",
            None,
            Err(("unsigned", "no signature")),
            b"{}",
            None,
        );
        assert_eq!(refused.actor, "unverified");
        assert!(matches!(&refused.event, AuditEvent::Request { code: Some(code), .. } if code == "unsigned"));
    }

    #[test]
    fn an_approval_is_recorded_with_the_approver() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let entry = LogEntry::Event {
            event: Event::Approve {
                gate: gmsa::rollout::Gate { stage: "prod".into(), when: gmsa::rollout::GateWhen::Before },
                by: "test-admin".into(),
            },
            now,
        };
        let drafts = rollout_drafts("r1", &entry, &[Action::StageStarted { stage: "prod".into() }], now);
        let names: Vec<(&str, &str)> = drafts
            .iter()
            .map(|d| match &d.event {
                AuditEvent::Rollout { transition, .. } => (transition.as_str(), d.actor.as_str()),
                _ => ("?", "?"),
            })
            .collect();
        assert_eq!(names, vec![("approved", "operator:test-admin"), ("stage-started", "coordinator")]);
        assert_eq!(drafts[0].rollout.as_deref(), Some("r1"));
    }

    #[test]
    fn an_agent_s_refusal_of_a_forged_command_is_an_entry_with_its_code() {
        let letter = proto::deadletter::DeadLetter {
            schema: proto::version::SchemaVersion::CURRENT,
            reporter: "k1".into(),
            source: "fleet.cmd.k1".into(),
            sequence: Some(3),
            code: "bad_signature".into(),
            message: "the signature does not verify".into(),
            action: "skipped".into(),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        let payload = serde_json::to_vec(&letter).unwrap();
        let entry = entry_of(&message(Source::Dead, "fleet.dead.k1", &payload)).unwrap();
        assert_eq!((entry.actor.as_str(), entry.cluster.as_deref()), ("agent:k1", Some("k1")));
        assert!(matches!(&entry.event, AuditEvent::Refusal { code, .. } if code == "bad_signature"));
    }
}
