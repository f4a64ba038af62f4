//! The streams and buckets of the bus and their configuration. The coordinator calls
//! [`ensure`] at start-up (create or update, so restarts and upgrades are idempotent); agents only
//! open what exists.

use crate::{Bus, BusError};
use async_nats::jetstream::{kv, stream};
use proto::subjects;
use std::time::Duration;

/// Settings of the bus layout that operators may change.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Replicas of every stream and bucket (1 for a single server, 3 in production clusters).
    pub replicas: usize,
    /// How long commands are kept: an agent offline longer than this misses them (the coordinator
    /// re-issues desired state; see ARCHITECTURE.md).
    pub command_max_age: Duration,
    /// How long results are kept in the stream (the coordinator's record outlives them in KV).
    pub result_max_age: Duration,
    /// How long progress events are kept.
    pub progress_max_age: Duration,
    /// Window in which JetStream drops a re-published command with the same `Nats-Msg-Id`.
    /// Beyond it the agent's own idempotency (result lookup by command id) takes over.
    pub duplicate_window: Duration,
    /// How long rollout logs are kept.
    pub rollout_log_max_age: Duration,
    /// How long audit entries and checkpoints are kept (zero: for ever).
    pub audit_max_age: Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            replicas: 1,
            command_max_age: Duration::from_secs(7 * 24 * 3600),
            result_max_age: Duration::from_secs(30 * 24 * 3600),
            progress_max_age: Duration::from_secs(3600),
            duplicate_window: Duration::from_secs(120),
            rollout_log_max_age: Duration::from_secs(365 * 24 * 3600),
            audit_max_age: Duration::ZERO,
        }
    }
}

impl Topology {
    /// The streams, as configured.
    pub fn streams(&self) -> Vec<stream::Config> {
        let base = |name: &str, subject: &str, max_age: Duration| stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.replicas,
            max_age,
            duplicate_window: self.duplicate_window,
            // Agents read results and cursors by direct get (subject form, pinned per cluster).
            allow_direct: true,
            ..Default::default()
        };
        // One durable consumer per agent on the command stream: the server's default of 1,000
        // consumers per stream is raised explicitly (a stream's own -1 means that default).
        let commands = stream::Config {
            max_consumers: 1_000_000,
            ..base(subjects::COMMAND_STREAM, subjects::COMMAND_ALL, self.command_max_age)
        };
        // The audit log and its checkpoints: append-only — no delete, no purge, no rollup.
        let append_only = |name: &str, subject: &str| stream::Config {
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            ..base(name, subject, self.audit_max_age)
        };
        vec![
            commands,
            append_only(subjects::AUDIT_STREAM, subjects::AUDIT_LOG),
            append_only(subjects::AUDIT_CHECKPOINT_STREAM, subjects::AUDIT_CHECKPOINT),
            // Drafts wait here until the leader's writer appends them; it reads them by sequence.
            base(subjects::AUDIT_INBOX_STREAM, subjects::AUDIT_INBOX_ALL, self.result_max_age),
            base(subjects::RESULT_STREAM, subjects::RESULT_ALL, self.result_max_age),
            base(subjects::PROGRESS_STREAM, subjects::PROGRESS_ALL, self.progress_max_age),
            base(subjects::DRIFT_STREAM, subjects::DRIFT_ALL, self.result_max_age),
            // Diagnostics archives: kept a week, one per command; only the server's max payload
            // (1 MiB by default) bounds an archive.
            base(subjects::ARTIFACT_STREAM, subjects::ARTIFACT_ALL, self.command_max_age),
            // What readers could not act on (proto::deadletter): kept as long as results.
            base(subjects::DEAD_STREAM, subjects::DEAD_ALL, self.result_max_age),
            // Accepted control requests' nonces, remembered by the duplicate window (crate::nonces).
            stream::Config {
                duplicate_window: crate::nonces::WINDOW,
                allow_direct: false,
                ..base(subjects::NONCE_STREAM, subjects::NONCE, crate::nonces::WINDOW)
            },
            // Rollout logs: the driver rebuilds a rollout from its log, so they outlive results.
            base(subjects::ROLLOUT_LOG_STREAM, subjects::ROLLOUT_LOG_ALL, self.rollout_log_max_age),
        ]
    }

    /// The KV buckets, as configured.
    pub fn buckets(&self) -> Vec<kv::Config> {
        let bucket = |name: &str, history: i64, description: &str| kv::Config {
            bucket: name.to_string(),
            description: description.to_string(),
            history,
            num_replicas: self.replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        vec![
            bucket(subjects::AGENTS_BUCKET, 1, "agents' hello and heartbeat, by cluster"),
            bucket(subjects::CURSORS_BUCKET, 1, "each agent's last applied command sequence, by cluster"),
            bucket(subjects::STATE_BUCKET, 5, "coordinator's last known state, by cluster"),
            bucket(subjects::ROLLOUTS_BUCKET, 1, "rollouts started by the coordinator"),
            bucket(subjects::INVENTORY_BUCKET, 1, "clusters declared in the coordinator's configuration"),
            bucket(subjects::ROLLOUT_INDEX_BUCKET, 1, "rollouts the driver runs, by id"),
            bucket(subjects::ROTATIONS_BUCKET, 1, "credential rotations, by credential"),
            bucket(subjects::LEADER_BUCKET, 1, "the leading coordinator's lease"),
            bucket(subjects::ENROLLMENTS_BUCKET, 5, "agents' public keys, by cluster (coordinator only)"),
        ]
    }
}

/// Creates or updates every stream and bucket. Idempotent.
pub async fn ensure(bus: &Bus, topology: &Topology) -> Result<(), BusError> {
    for config in topology.streams() {
        let name = config.name.clone();
        bus.jetstream()
            .create_or_update_stream(config)
            .await
            .map_err(|source| BusError::EnsureStream { stream: name, source })?;
    }
    for config in topology.buckets() {
        let name = config.bucket.clone();
        bus.jetstream()
            .create_or_update_key_value(config)
            .await
            .map_err(|source| BusError::EnsureBucket { bucket: name, source })?;
    }
    Ok(())
}
