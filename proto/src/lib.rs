//! Wire types of gmsa-fleet: everything that travels on the NATS bus between the coordinator and
//! the agents, and the names of the subjects, streams and buckets it travels on.
//!
//! ```text
//!  coordinator ──CommandEnvelope──► fleet.cmd.<cluster> ──► agent
//!  coordinator ◄──CommandResult──── fleet.result.<cluster>.<command id> ◄── agent
//!  coordinator ◄──ProgressEvent──── fleet.progress.<cluster>.<command id> ◄── agent
//!  coordinator ◄──AgentInfo──────── KV fleet_agents/<cluster> ◄── agent (hello, heartbeat)
//!  coordinator ◄──DriftReport────── fleet.drift.<cluster> ◄── agent (someone changed our objects)
//! ```
//!
//! **Boundary:** this crate does no I/O and depends on serde, thiserror, uuid and time only (a test
//! in `tidy` checks the manifest). Versioning rules are in [`version`] and `proto/README.md`.

pub mod agent;
pub mod audit;
pub mod command;
pub mod control;
pub mod deadletter;
pub mod decode;
pub mod drift;
pub mod identity;
pub mod outcome;
pub mod progress;
pub mod report;
pub mod resources;
pub mod result;
pub mod rollout;
pub mod subjects;
pub mod version;

pub use agent::AgentInfo;
pub use command::{Command, CommandEnvelope, CommandId, CommandKind};
pub use outcome::{Change, FieldChange, Mode, StepOutcome};
pub use progress::ProgressEvent;
pub use result::{CommandResult, ResultStatus};

#[cfg(test)]
mod tidy;
