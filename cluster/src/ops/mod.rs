//! The thin kube-rs layer: every call to the API server lives under this module, and every
//! decision it acts on comes from the pure modules (`desired`, `plan`, `preflight`, `drift`,
//! `workload`).

pub mod apply;
pub mod credspec;
pub mod diagnostics;
pub mod preflight;
pub mod remove;
pub(crate) mod resources;
pub mod verify;
pub mod watch;
