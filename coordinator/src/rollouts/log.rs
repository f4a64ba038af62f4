//! What the rollout driver writes to a rollout's log (`bus::log`, `fleet.rollout.<id>`), and how a
//! rollout is rebuilt from it. Pure: entries in, the rollout out.
//!
//! A log reads: `Created`, the plan in `PlanPart`s (a plan of 10,000 clusters is larger than one
//! NATS message), `Prepared` when stage 0 filled in what Active Directory reports, `Started`, then
//! one `Event` per transition — each written before the driver acts on it. The engine is
//! deterministic, so replaying the events at their recorded instants rebuilds the state exactly;
//! ticks that changed nothing but the clock are not written (the ARM buckets refill as a pure
//! function of elapsed time, so skipping them changes no later decision).

use gmsa::rollout::{Event, Plan, RolloutState};
use proto::StepOutcome;
use proto::rollout::CredspecInputs;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The largest slice of a plan's JSON one `PlanPart` carries.
pub const PLAN_PART_BYTES: usize = 256 * 1024;

/// One entry of a rollout's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum LogEntry {
    Created {
        name: String,
        /// `file`, `retry of <id>`, `rollback of <id>`.
        origin: String,
        #[serde(default)]
        requested_by: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        /// How many `PlanPart`s follow.
        parts: u32,
        /// The desired state before this rollout (for `rollback`), if the fleet had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<Box<proto::rollout::RolloutFile>>,
        /// A plan's dry run: every command carries `mode: dry-run`.
        #[serde(default)]
        dry_run: bool,
    },
    PlanPart {
        index: u32,
        json: String,
    },
    /// Stage 0 ran centrally: the credspec inputs as Active Directory reports them.
    Prepared {
        credspec: CredspecInputs,
        #[serde(default)]
        steps: Vec<StepOutcome>,
    },
    /// Stage 0 failed: the rollout ends before any cluster starts.
    PrepareFailed {
        message: String,
    },
    Started {
        #[serde(with = "time::serde::rfc3339")]
        now: OffsetDateTime,
    },
    Event {
        event: Event,
        #[serde(with = "time::serde::rfc3339")]
        now: OffsetDateTime,
    },
    #[serde(other)]
    Unknown,
}

/// The entries that store `plan`: its JSON cut into parts at character boundaries.
pub fn plan_parts(plan: &Plan) -> Result<Vec<LogEntry>, serde_json::Error> {
    let json = serde_json::to_string(plan)?;
    let mut parts = Vec::new();
    let mut rest = json.as_str();
    let mut index = 0u32;
    while !rest.is_empty() {
        let mut end = rest.len().min(PLAN_PART_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(LogEntry::PlanPart { index, json: part.to_string() });
        index = index.saturating_add(1);
        rest = tail;
    }
    Ok(parts)
}

/// A rollout rebuilt from its log.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    pub name: String,
    pub origin: String,
    pub requested_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub previous: Option<Box<proto::rollout::RolloutFile>>,
    pub dry_run: bool,
    pub plan: Plan,
    /// Stage 0's report, once it ran.
    pub prepared: Option<Vec<StepOutcome>>,
    pub prepare_failed: Option<String>,
    /// `None` until `Started`.
    pub state: Option<RolloutState>,
}

/// Why a log cannot be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    #[error("the log has no Created entry first")]
    NoCreated,
    #[error("the log's plan is incomplete or does not decode: {0}")]
    Plan(String),
    #[error("entry {sequence} does not decode: {message}")]
    Entry { sequence: u64, message: String },
}

/// Rebuilds a rollout from its entries (in log order, with their sequences), replaying every
/// event through the engine.
pub fn rebuild(rollout_id: &str, entries: &[(u64, LogEntry)]) -> Result<Rebuilt, RebuildError> {
    let mut entries = entries.iter();
    let Some((_, LogEntry::Created { name, origin, requested_by, created_at, parts, previous, dry_run })) =
        entries.next()
    else {
        return Err(RebuildError::NoCreated);
    };
    let mut json = String::new();
    for expected in 0..*parts {
        match entries.next() {
            Some((_, LogEntry::PlanPart { index, json: part })) if *index == expected => json.push_str(part),
            _ => return Err(RebuildError::Plan(format!("part {expected} of {parts} missing"))),
        }
    }
    let plan: Plan = serde_json::from_str(&json).map_err(|err| RebuildError::Plan(err.to_string()))?;
    let mut rebuilt = Rebuilt {
        name: name.clone(),
        origin: origin.clone(),
        requested_by: requested_by.clone(),
        created_at: *created_at,
        previous: previous.clone(),
        dry_run: *dry_run,
        plan,
        prepared: None,
        prepare_failed: None,
        state: None,
    };
    for (_, entry) in entries {
        match entry {
            LogEntry::Prepared { credspec, steps } => {
                rebuilt.plan.setup.credspec = credspec.clone();
                rebuilt.prepared = Some(steps.clone());
            }
            LogEntry::PrepareFailed { message } => rebuilt.prepare_failed = Some(message.clone()),
            LogEntry::Started { now } => {
                let (state, _) = RolloutState::start(rollout_id, rebuilt.plan.clone(), *now);
                rebuilt.state = Some(state);
            }
            LogEntry::Event { event, now } => {
                if let Some(state) = rebuilt.state.as_mut() {
                    state.handle(event.clone(), *now);
                }
            }
            // Entries of a newer coordinator this build does not know change nothing it knows.
            LogEntry::Created { .. } | LogEntry::PlanPart { .. } | LogEntry::Unknown => {}
        }
    }
    Ok(rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmsa::rollout::{Member, StepResult};
    use proto::CommandKind;
    use std::collections::BTreeMap;
    use time::macros::datetime;

    fn mk_plan(n: usize) -> Plan {
        let mut file: proto::rollout::RolloutFile =
            serde_yaml::from_str(include_str!("../../../deploy/rollout.example.yaml")).unwrap();
        file.strategy.maintenance_windows.clear();
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                cluster: format!("aks-{i:05}"),
                labels: BTreeMap::from([("env".into(), "prod".into())]),
                subscription: "s1".into(),
            })
            .collect();
        gmsa::rollout::plan(&file, &members).unwrap()
    }

    #[test]
    fn a_log_replays_to_the_state_it_was_written_from() {
        let plan = mk_plan(12);
        let now = datetime!(2026-12-01 10:00 UTC);
        let mut entries = vec![LogEntry::Created {
            name: plan.name.clone(),
            origin: "file".into(),
            requested_by: Some("op".into()),
            created_at: now,
            parts: 0,
            previous: None,
            dry_run: false,
        }];
        let parts = plan_parts(&plan).unwrap();
        if let LogEntry::Created { parts: count, .. } = &mut entries[0] {
            *count = parts.len() as u32;
        }
        entries.extend(parts);
        entries.push(LogEntry::Started { now });
        let (mut live, actions) = RolloutState::start("r1", plan.clone(), now);
        let canary = actions
            .iter()
            .find_map(|action| match action {
                gmsa::rollout::Action::Send { cluster, .. } => Some(cluster.clone()),
                _ => None,
            })
            .unwrap();
        let event =
            Event::StepFinished { cluster: canary, step: CommandKind::EnableGmsa, outcome: StepResult::Changed };
        let later = now + time::Duration::seconds(5);
        live.handle(event.clone(), later);
        entries.push(LogEntry::Event { event, now: later });
        // Round-trip every entry through JSON, as the bus does.
        let decoded: Vec<(u64, LogEntry)> = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (i as u64 + 1, serde_json::from_slice(&serde_json::to_vec(entry).unwrap()).unwrap()))
            .collect();
        let rebuilt = rebuild("r1", &decoded).unwrap();
        assert_eq!(rebuilt.plan, plan);
        assert_eq!(rebuilt.state, Some(live));
    }

    #[test]
    fn a_large_plan_is_cut_into_parts_that_fit_a_message() {
        let plan = mk_plan(10_000);
        let parts = plan_parts(&plan).unwrap();
        assert!(parts.len() > 1, "{} parts", parts.len());
        for part in &parts {
            assert!(serde_json::to_vec(part).unwrap().len() < 512 * 1024);
        }
        assert!(matches!(rebuild("r", &[(1, parts[0].clone())]), Err(RebuildError::NoCreated)));
    }
}
