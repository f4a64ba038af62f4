//! Can this network reach the domain? DNS discovery of the DCs over UDP and TCP and the DC ports,
//! each a named check (`Confirm-AksADDCConnectivity`). Run from where the workload runs: the agent
//! sits in the cluster's network. Groundwork for the connectivity command of issue #11.

pub mod checks;
pub mod dns;
pub mod probe;

pub use checks::{CheckResult, ReachabilityConfig, ReachabilityReport, Verdict, check};
