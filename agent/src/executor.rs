//! The port through which the agent changes its cluster. The worker hands each decoded, validated
//! command to an [`Executor`]; the executor reads, diffs and writes only the difference through its
//! adapters (ARM, Key Vault, Kubernetes) and returns one [`StepOutcome`] per step.
//!
//! **Guarantees an executor must give:** applying the same command twice has the effect of applying
//! it once (every step reads before it writes), and a command interrupted at any point converges when
//! applied again. The worker relies on this for crash recovery.

use proto::resources::ResourceUse;
use proto::{Command, CommandEnvelope, CommandKind, StepOutcome};
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// Why a command failed on this cluster.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ExecError {
    /// Stable, machine-readable (`cluster_not_windows`, `vault_forbidden`, `preflight_failed`, …).
    pub code: String,
    /// For people; names the resource and the operation; never contains a secret.
    pub message: String,
    /// Steps that completed before the failure, so the coordinator sees what did change.
    pub completed: Vec<StepOutcome>,
}

impl ExecError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ExecError { code: code.into(), message: message.into(), completed: Vec::new() }
    }

    pub fn with_completed(mut self, completed: Vec<StepOutcome>) -> Self {
        self.completed = completed;
        self
    }
}

/// Where an executor reports progress on a long step; the worker turns each report into a
/// progress event on the bus.
#[derive(Clone)]
pub struct Progress {
    sender: mpsc::UnboundedSender<(String, String)>,
    artifacts: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Where finished steps go to be recorded in the cursor; the sender of each waits for the
    /// record (see [`Progress::step_done`]).
    steps: Option<mpsc::UnboundedSender<(StepOutcome, oneshot::Sender<()>)>>,
}

impl Progress {
    pub fn new(sender: mpsc::UnboundedSender<(String, String)>) -> Self {
        Progress { sender, artifacts: None, steps: None }
    }

    /// Also record finished steps (see [`Progress::step_done`]).
    pub fn with_steps(mut self, steps: mpsc::UnboundedSender<(StepOutcome, oneshot::Sender<()>)>) -> Self {
        self.steps = Some(steps);
        self
    }

    /// Says that a step finished, and waits until the worker has recorded it durably (in the
    /// cursor's in-flight entry). An executor calls it after each step that may have written,
    /// before the next: if the agent dies later in the command, the re-run's result still reports
    /// what this step changed. Returns at once where nothing records steps.
    pub async fn step_done(&self, outcome: &StepOutcome) {
        let Some(steps) = &self.steps else { return };
        let (recorded, wait) = oneshot::channel();
        if steps.send((outcome.clone(), recorded)).is_ok() {
            // A dropped sender means the command ended; nothing left to wait for.
            let _ = wait.await;
        }
    }

    /// Also accept an artifact (see [`Progress::attach`]).
    pub fn with_artifacts(mut self, artifacts: mpsc::UnboundedSender<Vec<u8>>) -> Self {
        self.artifacts = Some(artifacts);
        self
    }

    /// A progress sink that drops everything (for tests of executors).
    pub fn discard() -> Self {
        let (sender, _) = mpsc::unbounded_channel();
        Progress { sender, artifacts: None, steps: None }
    }

    /// Attaches the command's artifact (a diagnostics archive, already redacted): the worker stores
    /// it on `fleet.artifact.<cluster>.<command id>` before it publishes the result. False when this
    /// sink takes no artifacts.
    pub fn attach(&self, bytes: Vec<u8>) -> bool {
        self.artifacts.as_ref().is_some_and(|sender| sender.send(bytes).is_ok())
    }

    /// Reports that `step` is under way.
    pub fn report(&self, step: &str, message: impl Into<String>) {
        // The receiver is gone only when the command ended; nothing left to tell.
        let _ = self.sender.send((step.to_string(), message.into()));
    }
}

/// Applies commands to one cluster.
pub trait Executor: Send + Sync + 'static {
    /// The command kinds this executor can apply (announced in the agent's hello).
    fn capabilities(&self) -> Vec<CommandKind>;

    /// Applies one command. Called only with a validated payload addressed to this cluster.
    fn execute(
        &self,
        envelope: &CommandEnvelope,
        progress: Progress,
    ) -> impl Future<Output = Result<Vec<StepOutcome>, ExecError>> + Send;

    /// The shared resources a command that succeeded started or stopped using, for the
    /// coordinator's in-use bookkeeping (see [`proto::resources`]). None by default.
    fn resource_uses(&self, command: &Command, steps: &[StepOutcome]) -> Vec<ResourceUse> {
        let _ = (command, steps);
        Vec::new()
    }
}
