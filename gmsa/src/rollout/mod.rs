//! Fleet rollouts (issue 16): one desired gMSA state, staged waves, safety gates — the pure core.
//!
//! ```text
//!  RolloutFile (proto::rollout) ─┐
//!  inventory: [Member] ──────────┴─► plan::plan ──► Plan (frozen membership, per-cluster setup)
//!                                                     │
//!     Event + now ──► RolloutState::handle ──► [Action]  (Send, stage transitions, Halted, …)
//!                         │   (engine.rs; budget.rs: ARM tokens; window.rs: maintenance windows)
//!                         └─► status::status / retry_plan / changed_clusters (read-only views)
//! ```
//!
//! The driver (coordinator) persists the state after every `handle` and then carries out the
//! actions; nothing here does I/O or reads a clock. Guarantees are listed in `engine.rs`, the
//! stage-assignment rule in `plan.rs`, the ARM accounting in `budget.rs`.

pub mod budget;
pub mod commands;
pub mod engine;
pub mod plan;
pub mod state;
pub mod status;
pub mod window;

pub use budget::TokenBucket;
pub use plan::{Member, Plan, PlanError, PlannedCluster, RotationPlan, plan, validate};
pub use state::{
    Action, ClusterState, ClusterStatus, Event, Failure, Gate, GateWhen, InFlight, Phase, RolloutState, StagePhase,
    StageState, StepResult,
};
pub use status::{ClusterView, Counts, RolloutStatus, StageStatus, changed_clusters, retry_plan, status};
pub use window::{Cron, CronError, Window, WindowGate};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
