//! Every subject, stream, consumer and bucket name of the bus, in one place.
//! `proto/README.md` documents them; nothing else in the workspace spells a subject.

/// Stream of commands, subjects `fleet.cmd.<cluster>`. Each agent reads it through its own durable
/// consumer ([`agent_consumer`]); see ARCHITECTURE.md "Transport decision".
pub const COMMAND_STREAM: &str = "FLEET_COMMANDS";
/// Stream of command results, subjects `fleet.result.<cluster>.<command id>`.
pub const RESULT_STREAM: &str = "FLEET_RESULTS";
/// Stream of progress events, subjects `fleet.progress.<cluster>.<command id>`; short retention.
pub const PROGRESS_STREAM: &str = "FLEET_PROGRESS";
/// Stream of drift reports, subjects `fleet.drift.<cluster>`.
pub const DRIFT_STREAM: &str = "FLEET_DRIFT";
/// Stream of artifacts agents attach to a command's result (diagnostics archives), by command.
pub const ARTIFACT_STREAM: &str = "FLEET_ARTIFACTS";
/// Stream of dead letters (`proto::deadletter`), subjects `fleet.dead.<reporter>`.
pub const DEAD_STREAM: &str = "FLEET_DEAD";
/// Stream of rollout logs, subjects `fleet.rollout.<rollout id>`: every transition of a rollout,
/// appended by the leading coordinator before it acts on it.
pub const ROLLOUT_LOG_STREAM: &str = "FLEET_ROLLOUT_LOG";
/// Every rollout log (the stream's subject filter).
pub const ROLLOUT_LOG_ALL: &str = "fleet.rollout.*";
/// KV bucket of rollouts the driver runs, key `<rollout id>`: what `rollout list` shows and which
/// logs a new leader replays.
pub const ROLLOUT_INDEX_BUCKET: &str = "fleet_rollout_index";
/// KV bucket: one credential rotation record per credential (coordinator only).
pub const ROTATIONS_BUCKET: &str = "fleet_rotations";
/// KV bucket of the leader lease, key `leader`.
pub const LEADER_BUCKET: &str = "fleet_leader";
/// The durable consumer on the result stream through which the leader's rollout driver learns
/// of step results.
pub const ROLLOUT_CONSUMER: &str = "coordinator-rollouts";
/// The coordinator's durable consumer on [`DRIFT_STREAM`]: it copies each cluster's recent
/// drift reports into its record in [`STATE_BUCKET`].
pub const DRIFT_CONSUMER: &str = "coordinator-drift";
/// The coordinator's one durable consumer on [`RESULT_STREAM`].
pub const RESULT_CONSUMER: &str = "coordinator-results";
/// KV bucket of agents' hellos and heartbeats, key `<cluster>`.
pub const AGENTS_BUCKET: &str = "fleet_agents";
/// KV bucket of each agent's position in the command stream, key `<cluster>`.
pub const CURSORS_BUCKET: &str = "fleet_cursors";
/// KV bucket of the coordinator's per-cluster last state, key `<cluster>`.
pub const STATE_BUCKET: &str = "fleet_state";
/// KV bucket of rollouts the coordinator started, key `<rollout id>`.
pub const ROLLOUTS_BUCKET: &str = "fleet_rollouts";
/// Request-reply subject prefix of the coordinator's control API used by `fleetctl`.
pub const CONTROL_PREFIX: &str = "fleet.ctl";
/// KV bucket of agents' enrollments (`proto::identity::Enrollment`), key `<cluster>`: written
/// by the coordinator only.
pub const ENROLLMENTS_BUCKET: &str = "fleet_enrollments";
/// KV bucket of clusters declared in the coordinator's configuration, key `<cluster>`.
pub const INVENTORY_BUCKET: &str = "fleet_inventory";

/// Stream of the central audit log (`proto::audit`): batches of entries on [`AUDIT_LOG`],
/// appended only by the leading coordinator; deletes and purges denied.
pub const AUDIT_STREAM: &str = "FLEET_AUDIT";
/// The audit log's one subject.
pub const AUDIT_LOG: &str = "fleet.audit.log";
/// Stream of the audit log's signed checkpoints, on [`AUDIT_CHECKPOINT`]; deletes and purges denied.
pub const AUDIT_CHECKPOINT_STREAM: &str = "FLEET_AUDIT_CHECKPOINTS";
/// The checkpoints' one subject.
pub const AUDIT_CHECKPOINT: &str = "fleet.audit.checkpoint";
/// Stream of audit drafts from every coordinator process (operator requests, rollout
/// transitions, rotation steps), subjects `fleet.audit.in.<kind>`: the writer appends them.
pub const AUDIT_INBOX_STREAM: &str = "FLEET_AUDIT_INBOX";
/// Every audit draft (the inbox stream's subject filter).
pub const AUDIT_INBOX_ALL: &str = "fleet.audit.in.*";

/// Stream of the control requests' nonces the coordinator has accepted (empty messages whose
/// `Nats-Msg-Id` is signer and nonce): the server's duplicate window answers "seen before".
pub const NONCE_STREAM: &str = "FLEET_REQUEST_NONCES";
/// The nonce stream's one subject (only the coordinator publishes there).
pub const NONCE: &str = "fleet.nonce";

/// Subject of an audit draft of `kind`.
pub fn audit_inbox(kind: &str) -> String {
    format!("fleet.audit.in.{kind}")
}

/// Subject of commands for one cluster.
pub fn command(cluster: &str) -> String {
    format!("fleet.cmd.{cluster}")
}

/// The durable consumer through which `cluster`'s agent reads its commands (its name and its
/// filter are in the subjects the agent's permissions allow).
pub fn agent_consumer(cluster: &str) -> String {
    format!("agent-{cluster}")
}

/// Core-NATS subject (no stream) on which the coordinator nudges an agent once its command is
/// stored: the agent then reads the stream. Sent after JetStream's acknowledgement, so the command
/// is there to read; a lost nudge only delays the agent until its reconnect catch-up or poll.
pub fn wake(cluster: &str) -> String {
    format!("fleet.wake.{cluster}")
}

/// Wildcard covering all commands.
pub const COMMAND_ALL: &str = "fleet.cmd.*";

/// Subject of the result of one command on one cluster.
pub fn result(cluster: &str, command_id: &str) -> String {
    format!("fleet.result.{cluster}.{command_id}")
}

/// Wildcard covering all results.
pub const RESULT_ALL: &str = "fleet.result.*.*";

/// Subject of progress events of one command on one cluster.
pub fn progress(cluster: &str, command_id: &str) -> String {
    format!("fleet.progress.{cluster}.{command_id}")
}

/// Wildcard covering all progress events.
pub const PROGRESS_ALL: &str = "fleet.progress.*.*";

/// Subject of drift reports of one cluster.
pub fn drift(cluster: &str) -> String {
    format!("fleet.drift.{cluster}")
}

/// Wildcard covering all drift reports.
pub const DRIFT_ALL: &str = "fleet.drift.*";

/// Where an agent puts the artifact of one command (e.g. a diagnostics archive).
pub fn artifact(cluster: &str, command_id: &str) -> String {
    format!("fleet.artifact.{cluster}.{command_id}")
}

/// Every artifact (the artifact stream's subject filter).
pub const ARTIFACT_ALL: &str = "fleet.artifact.*.*";

/// The log subject of one rollout.
pub fn rollout_log(rollout_id: &str) -> String {
    format!("fleet.rollout.{rollout_id}")
}

/// Where `reporter` (a cluster id, or `coordinator`) puts the dead letters it records.
pub fn dead(reporter: &str) -> String {
    format!("fleet.dead.{reporter}")
}

/// Every dead letter (the dead-letter stream's subject filter).
pub const DEAD_ALL: &str = "fleet.dead.*";

/// The cluster and command id of a result subject `fleet.result.<cluster>.<command id>`.
pub fn parse_result(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("fleet.result.")?;
    let (cluster, command_id) = rest.split_once('.')?;
    (is_valid_token(cluster) && is_valid_token(command_id)).then_some((cluster, command_id))
}

/// The cluster of a drift subject `fleet.drift.<cluster>`.
pub fn parse_drift(subject: &str) -> Option<&str> {
    subject.strip_prefix("fleet.drift.").filter(|cluster| is_valid_token(cluster))
}

/// Subject of one control-API verb (`run`, `status`, `clusters`).
pub fn control(verb: &str) -> String {
    format!("{CONTROL_PREFIX}.{verb}")
}

/// Whether `name` can stand as one subject token and one KV key: cluster ids are both.
/// Letters, digits, `-` and `_`, 1 to 63 characters (a DNS label, which AKS cluster names also are).
pub fn is_valid_token(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_built_from_tokens() {
        assert_eq!(command("aks-eu-1"), "fleet.cmd.aks-eu-1");
        assert_eq!(result("c1", "0192"), "fleet.result.c1.0192");
        assert_eq!(progress("c1", "0192"), "fleet.progress.c1.0192");
    }

    #[test]
    fn tokens_refuse_subject_syntax() {
        for bad in ["", "a.b", "a*", ">", "a b", &"x".repeat(64)] {
            assert!(!is_valid_token(bad), "{bad:?}");
        }
        assert!(is_valid_token("aks-prod_07"));
    }
}
