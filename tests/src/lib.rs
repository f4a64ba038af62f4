//! End-to-end support for gmsa-fleet: an in-memory simulated cluster ([`memory`]) and helpers that
//! start a whole fleet — coordinator and one agent task per cluster — in one process ([`fleet`]).
//! The end-to-end tests (`tests/e2e.rs`), the demo (`fleet-demo`) and the benchmark
//! (`fleet-bench`) are built on them. Production crates never depend on this crate.

pub mod ccg;
pub mod fleet;
pub mod memory;
pub mod world;
