//! `fleet-agent`: runs in (or next to) one AKS cluster and applies gmsa-fleet commands to it.
//!
//! ```text
//!   FLEET_COMMANDS ──direct get after cursor──► worker ──decide──► executor ──► ARM / Key Vault / kube
//!        ▲ nudge on fleet.wake.<c> after the ack  │                                │
//!        │                                         ▼                                ▼
//!   coordinator ◄──────────── FLEET_RESULTS / FLEET_PROGRESS ◄──── result (changed / unchanged / failed)
//! ```
//!
//! [`worker`] owns delivery (cursor, idempotency, attempts, deadline, shutdown); [`decision`] is its
//! pure core; [`executor`] is the port to the cluster. [`config`] loads and validates settings.

pub mod cloud;
pub mod config;
pub mod decision;
pub mod drift;
pub mod executor;
pub mod runtime;
pub mod worker;

pub use executor::{ExecError, Executor, Progress};
pub use worker::{Agent, AgentError, AgentSettings};
