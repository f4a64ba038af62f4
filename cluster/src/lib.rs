//! cluster: the Kubernetes side of a gMSA rollout, through `kube::Client`. The agent calls it to
//! check a cluster is ready (preflight), install the GMSACredentialSpec with its ClusterRole and
//! RoleBindings (apply), try the seed's sample workload (verify), watch for drift, tear down
//! what apply created (remove), and collect what support needs (diagnostics).
//!
//! ```text
//!   agent ── ApplyRequest (gmsa::credspec::CredSpec, owner, bindings) ──┐
//!     │                                                                 ▼
//!     │   ops::preflight ──facts──► preflight::evaluate ──► Passed{api_version} / PreflightError
//!     │   ops::apply     ──live───► plan::plan_apply    ──► SSA writes, prunes (or dryRun=All) ──► StepOutcome
//!     │   ops::verify    ──status─► workload::workload_state ──► VerifyReport
//!     │   ops::watch     ──events─► drift::detect ──► DriftEvent (mpsc) + re-apply per DriftPolicy
//!     │   ops::remove    ──found──► teardown::plan_remove ──► DELETEs (or dry run) ──► StepOutcome
//!     │   ops::diagnostics ─reads─► diagnostics (event filter, summaries) ──► Diagnostics{files, notes}
//!     ▼
//!   kube-apiserver (or kubesim)
//! ```
//!
//! Boundary: only `ops` talks to the API server; `desired`, `plan`, `preflight`, `corefile`,
//! `drift`, `workload`, `teardown` and `diagnostics` are pure and unit-tested. Everything
//! gmsa-fleet writes carries `app.kubernetes.io/managed-by=gmsa-fleet` and
//! `gmsa-fleet.io/owner=<owner>`, and is written by server-side apply with field manager
//! `gmsa-fleet`; teardown deletes nothing that lacks both.

pub mod corefile;
pub mod desired;
pub mod diagnostics;
pub mod drift;
pub mod ops;
pub mod plan;
pub mod preflight;
pub mod teardown;
pub mod workload;

pub use desired::{ApplyRequest, ObjectKind, ObjectRef, ServiceAccountRef};
pub use drift::{DriftCause, DriftEvent, DriftPolicy, Remedy};
pub use ops::apply::{APPLY_STEP, ApplyError, apply, apply_in};
pub use ops::credspec::{ReadCredspecError, read_credspec};
pub use ops::diagnostics::{Diagnostics, DiagnosticsError, DiagnosticsRequest, collect_diagnostics};
pub use ops::preflight::{PreflightError, preflight};
pub use ops::remove::{REMOVE_STEP, RemoveError, RemoveRequest, remove};
pub use ops::verify::{VERIFY_STEP, VerifyError, VerifyReport, verify};
pub use ops::watch::{DriftError, watch_drift};
pub use preflight::{Check, CheckFailure, DnsForward, Passed, PreflightConfig, PreflightReport};
pub use teardown::LeftReason;
pub use workload::{VerifyConfig, WorkloadState};
