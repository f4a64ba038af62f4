//! What one step of a command did: `changed` with the diff of what it wrote, or `unchanged`.
//!
//! Every adapter (ARM, Key Vault, Kubernetes, Active Directory) reads, diffs and writes only the
//! difference; it reports the result as a [`StepOutcome`], which travels unchanged in results on
//! the bus. A diff never carries a secret value: adapters put `"<redacted>"` where one would stand.

use serde::{Deserialize, Serialize};

/// One field that a step changed, addressed by a JSON-pointer-like path (`/windowsProfile/gmsaProfile/enabled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Where the field lives in the object the step wrote, e.g. `/properties/windowsProfile/gmsaProfile/dnsServer`.
    pub path: String,
    /// The value before the step; `None` when the field did not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// The value after the step; `None` when the step removed the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// Whether a step wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The step found the desired state already in place and wrote nothing.
    Unchanged,
    /// The step wrote the fields listed in the diff.
    Changed,
    /// Dry run (schema 1.2): the step would write the fields listed in the diff and wrote nothing.
    Planned,
    /// A change a newer agent reports that this build does not know; counted as neither changed
    /// nor planned.
    #[serde(other)]
    Unknown,
}

/// Whether a step writes or only plans (dry run: read, diff, report [`Change::Planned`]).
///
/// The default is [`Mode::Apply`]: the setup payloads (`enable-gmsa`, `grant-identity`,
/// `apply-credspec`; schema 1.3) got their `mode` after they were first sent, and a payload
/// without one means what it always meant. `teardown` names its own default (`dry-run`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Read, diff, write the difference.
    #[default]
    Apply,
    /// Read and diff only; nothing is written.
    DryRun,
    /// A mode a newer writer added: never applies, and payload validation refuses it (a mode
    /// this build does not understand must not be taken for `apply`).
    #[serde(other)]
    Unknown,
}

impl Mode {
    /// True when the step may write.
    pub fn applies(self) -> bool {
        self == Mode::Apply
    }
}

/// The report of one step of a command (e.g. `cluster-update`, `vault-grant`, `credspec-apply`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// The step's name, stable across versions: operators and tests match on it.
    pub step: String,
    /// `changed` or `unchanged`.
    pub change: Change,
    /// What changed; empty when `unchanged`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<FieldChange>,
    /// What the step observed after it ran (non-secret facts only), for the coordinator's record.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub observed: serde_json::Value,
}

impl StepOutcome {
    /// A step that found nothing to do.
    pub fn unchanged(step: impl Into<String>, observed: serde_json::Value) -> Self {
        StepOutcome { step: step.into(), change: Change::Unchanged, diff: Vec::new(), observed }
    }

    /// A step that wrote `diff` (an empty diff still counts as unchanged).
    pub fn from_diff(step: impl Into<String>, diff: Vec<FieldChange>, observed: serde_json::Value) -> Self {
        let change = if diff.is_empty() { Change::Unchanged } else { Change::Changed };
        StepOutcome { step: step.into(), change, diff, observed }
    }

    /// A step that ran in `mode`: with [`Mode::Apply`] it wrote `diff` ([`StepOutcome::from_diff`]);
    /// with [`Mode::DryRun`] it would have written it and wrote nothing.
    pub fn in_mode(mode: Mode, step: impl Into<String>, diff: Vec<FieldChange>, observed: serde_json::Value) -> Self {
        let change = match (mode, diff.is_empty()) {
            (_, true) => Change::Unchanged,
            (Mode::Apply, false) => Change::Changed,
            (Mode::DryRun | Mode::Unknown, false) => Change::Planned,
        };
        StepOutcome { step: step.into(), change, diff, observed }
    }

    /// True when the step wrote something.
    pub fn is_changed(&self) -> bool {
        self.change == Change::Changed
    }

    /// True when a dry run found something to write.
    pub fn is_planned(&self) -> bool {
        self.change == Change::Planned
    }
}
