//! The port through which the agent changes its cluster. The worker hands each decoded, validated
//! command to an [`Executor`]; the executor reads, diffs and writes only the difference through its
//! adapters (ARM, Key Vault, Kubernetes) and returns one [`StepOutcome`] per step.
//!
//! **Guarantees an executor must give:** applying the same command twice has the effect of applying
//! it once (every step reads before it writes), and a command interrupted at any point converges when
//! applied again. The worker relies on this for crash recovery.

use proto::{CommandEnvelope, CommandKind, StepOutcome};
use std::future::Future;
use tokio::sync::mpsc;

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
}

impl Progress {
    pub fn new(sender: mpsc::UnboundedSender<(String, String)>) -> Self {
        Progress { sender }
    }

    /// A progress sink that drops everything (for tests of executors).
    pub fn discard() -> Self {
        let (sender, _) = mpsc::unbounded_channel();
        Progress { sender }
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
}
