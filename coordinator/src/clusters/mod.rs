//! Each cluster's desired state against its observed state (`fleetctl clusters show|list`).
//!
//! ```text
//!  fleet_rollout_index/desired-state ─┐
//!  fleet_inventory + fleet_agents ────┼─ read.rs (KV reads) ─► view.rs (pure) ─► sync::decide (pure)
//!  fleet_state/<cluster> ─────────────┘        parts + drift, written by record.rs / record_drift.rs
//! ```
//!
//! `parts` maps agents' step names to the parts of a cluster's gMSA state (the recorder keeps the
//! last outcome of each); `sync` decides in sync or not, and why; `view` assembles what is printed;
//! `read` is the only I/O.

pub mod parts;
pub mod read;
pub mod sync;
pub mod view;

pub use read::{ClustersError, Listing, list, show};
pub use view::{AUDIT_TAIL, ClusterView, FleetSummary, Judged};
