//! The coordinator of gmsa-fleet and the library behind `fleetctl`.
//!
//! ```text
//!  fleetctl ──fleet.ctl.run──► control ──plan (selector × inventory)──► FLEET_COMMANDS ──► agents
//!     │                                                                                     │
//!     └── reads: inventory (KV), rollout status (results by command id) ◄── FLEET_RESULTS ◄─┘
//!                                              record ◄── durable consumer ──┘ (KV fleet_state)
//! ```
//!
//! Pure parts: [`selector`], [`plan`], [`inventory::merge`], [`record::next_record`],
//! [`rollout::Tally`], [`central::plan`], [`clusters::sync::decide`], [`clusters::parts`]. Bus-facing parts: [`control`], [`record::run_recorder`],
//! [`central::serve`], [`daemon`]. [`central`] holds the only Azure and AD credentials that write
//! shared resources (the domain-user secret, AD accounts, shared deletions).

pub mod admit;
pub mod agent_verbs;
pub mod agents;
pub mod audit;
pub mod audit_verbs;
pub mod authz;
pub mod callout;
pub mod central;
pub mod cluster_verbs;
pub mod clusters;
pub mod config;
pub mod control;
pub mod daemon;
pub mod fleetctl;
pub mod inventory;
pub mod leader;
pub mod lease;
pub mod output;
pub mod plan;
pub mod record;
pub mod record_drift;
pub mod rollout;
pub mod rollout_verbs;
pub mod rollouts;
pub mod rotate_verbs;
pub mod rotation;
pub mod runtime;
pub mod selector;
pub mod teardown;
pub mod verbs;

#[cfg(test)]
mod fuzz;
