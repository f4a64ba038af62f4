//! An in-memory simulated cluster and the [`agent::Executor`] over it, for tests, the benchmark and
//! the transport demo: it applies every command kind idempotently (read, diff, write the
//! difference) and counts its writes, so tests can assert "exactly one effect". A setup command
//! in `dry-run` mode reports the diff as `planned` and writes nothing, as the cloud executor does.

use agent::{ExecError, Executor, Progress};
use proto::command::Command;
use proto::{CommandEnvelope, CommandKind, Mode, StepOutcome};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One simulated cluster's state.
#[derive(Debug, Default)]
pub struct MemoryCluster {
    /// The cluster's observable state, as JSON (gmsaProfile, grants, credspec, secret version).
    state: Mutex<Value>,
    /// Number of writes the executor made.
    writes: AtomicU64,
    /// Number of commands the executor started.
    starts: AtomicU64,
}

impl MemoryCluster {
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::SeqCst)
    }

    pub fn state(&self) -> Value {
        self.state.lock().map(|state| state.clone()).unwrap_or(Value::Null)
    }
}

/// Where the executor waits within a command, to give tests a window for crashes.
#[derive(Debug, Clone, Copy, Default)]
pub enum Pause {
    /// No waiting.
    #[default]
    None,
    /// Waits before reading and writing.
    BeforeWrite(Duration),
    /// Writes, then waits before returning (a crash in the window leaves the write done and no
    /// result published).
    AfterWrite(Duration),
}

/// Executes commands against one [`MemoryCluster`].
#[derive(Clone)]
pub struct MemoryExecutor {
    pub cluster: Arc<MemoryCluster>,
    pub pause: Pause,
}

/// A fleet of simulated clusters by id.
#[derive(Default, Clone)]
pub struct MemoryFleet {
    clusters: Arc<Mutex<BTreeMap<String, Arc<MemoryCluster>>>>,
}

impl MemoryFleet {
    /// The cluster with this id, created empty on first use.
    pub fn cluster(&self, id: &str) -> Arc<MemoryCluster> {
        let mut clusters = self.clusters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clusters.entry(id.to_string()).or_default().clone()
    }

    pub fn executor(&self, id: &str, pause: Pause) -> MemoryExecutor {
        MemoryExecutor { cluster: self.cluster(id), pause }
    }

    pub fn total_writes(&self) -> u64 {
        let clusters = self.clusters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        clusters.values().map(|cluster| cluster.writes()).sum()
    }
}

/// The desired value and its location in the cluster's state, for each command kind.
fn desired(command: &Command) -> (&'static str, &'static str, Value) {
    match command {
        Command::EnableGmsa(payload) => (
            "cluster-update",
            "gmsaProfile",
            json!({"enabled": true, "dnsServer": payload.dns_server, "rootDomainName": payload.root_domain}),
        ),
        Command::DisableGmsa(_) => ("cluster-update", "gmsaProfile", json!({"enabled": false})),
        Command::GrantIdentity(payload) => {
            ("vault-grant", "grant", json!({"vault": payload.vault.name, "secret": payload.secret_name}))
        }
        Command::ApplyCredspec(payload) => {
            ("credspec-apply", "credspec", json!({"name": payload.spec_name, "account": payload.gmsa_account}))
        }
        Command::RotateCredential(payload) => ("secret-rotate", "secretVersion", json!(payload.secret_version)),
        Command::Verify(payload) => ("verify", "verified", json!(payload.spec_name)),
        Command::CheckDcConnectivity(payload) => ("dc-connectivity", "dcReachable", json!(payload.domain)),
        Command::AuditAccess(payload) => ("access-audit", "audited", json!(payload.vault.name)),
        Command::ValidateCredspec(payload) => ("credspec-validate", "validated", json!(payload.spec_name)),
        Command::Teardown(payload) => {
            ("credspec-remove", "credspec", json!({"removed": payload.spec_name, "mode": payload.mode}))
        }
        Command::CollectDiagnostics(payload) => ("diagnostics", "diagnosed", json!(payload.spec_name)),
    }
}

/// The mode a command runs in: the setup commands' `mode`; every other kind applies here
/// (teardown's mode is part of what it records).
fn mode_of(command: &Command) -> Mode {
    match command {
        Command::EnableGmsa(payload) => payload.mode,
        Command::GrantIdentity(payload) => payload.mode,
        Command::ApplyCredspec(payload) => payload.mode,
        _ => Mode::Apply,
    }
}

/// The subscription every memory cluster is in (for resource ids).
pub const MEMORY_SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000feed";

impl Executor for MemoryExecutor {
    fn capabilities(&self) -> Vec<CommandKind> {
        CommandKind::ALL.to_vec()
    }

    fn resource_uses(&self, command: &Command, steps: &[StepOutcome]) -> Vec<proto::resources::ResourceUse> {
        proto::resources::uses_of(command, MEMORY_SUBSCRIPTION, steps)
    }

    async fn execute(&self, envelope: &CommandEnvelope, progress: Progress) -> Result<Vec<StepOutcome>, ExecError> {
        self.cluster.starts.fetch_add(1, Ordering::SeqCst);
        if let Pause::BeforeWrite(pause) = self.pause {
            tokio::time::sleep(pause).await;
        }
        let (step, field, want) = desired(&envelope.command);
        progress.report(step, "reading the current state");
        let outcome = {
            let mut state = self.cluster.state.lock().map_err(|_| ExecError::new("internal", "state lock poisoned"))?;
            if !state.is_object() {
                *state = json!({});
            }
            let before = json!({ field: state.get(field).cloned().unwrap_or(Value::Null) });
            let diff = gmsa::json_diff(&before, &json!({ field: want }));
            let mode = mode_of(&envelope.command);
            if !mode.applies() {
                // A dry run observes the state as it is, and leaves it so.
                StepOutcome::in_mode(mode, step, diff, before)
            } else {
                if !diff.is_empty() {
                    state[field] = want.clone();
                    self.cluster.writes.fetch_add(1, Ordering::SeqCst);
                }
                StepOutcome::from_diff(step, diff, json!({ field: want }))
            }
        };
        // Recorded before anything else happens, as the cloud executor does after each write.
        progress.step_done(&outcome).await;
        if let Pause::AfterWrite(pause) = self.pause {
            tokio::time::sleep(pause).await;
        }
        Ok(vec![outcome])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::command::{CommandId, EnableGmsa};

    fn mk_enable(mode: Mode) -> CommandEnvelope {
        let now = time::OffsetDateTime::now_utc();
        CommandEnvelope {
            schema: proto::version::SchemaVersion::CURRENT,
            command_id: CommandId::random(),
            rollout_id: None,
            cluster: "aks-1".into(),
            issued_at: now,
            deadline: now + time::Duration::minutes(1),
            issuer: None,
            command: Command::EnableGmsa(EnableGmsa {
                dns_server: Some("10.0.0.4".into()),
                root_domain: Some("contoso.com".into()),
                mode,
            }),
        }
    }

    #[tokio::test]
    async fn a_dry_run_plans_the_diff_the_apply_then_writes() {
        let fleet = MemoryFleet::default();
        let executor = fleet.executor("aks-1", Pause::None);
        let planned = executor.execute(&mk_enable(Mode::DryRun), Progress::discard()).await.unwrap();
        assert_eq!(planned[0].change, proto::Change::Planned);
        assert_eq!((fleet.total_writes(), fleet.cluster("aks-1").state().get("gmsaProfile")), (0, None));
        let applied = executor.execute(&mk_enable(Mode::Apply), Progress::discard()).await.unwrap();
        assert_eq!((applied[0].change, &applied[0].diff), (proto::Change::Changed, &planned[0].diff));
        assert_eq!(fleet.total_writes(), 1);
        let again = executor.execute(&mk_enable(Mode::DryRun), Progress::discard()).await.unwrap();
        assert_eq!(again[0].change, proto::Change::Unchanged);
    }
}
