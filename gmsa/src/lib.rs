//! The pure core of gmsa-fleet: everything that decides, validates or builds, with no I/O.
//!
//! ```text
//!   proto (wire types) ──► gmsa (this crate) ◄── azure, cluster, ad (adapters)
//!                               ▲
//!                     agent, coordinator (composition roots)
//! ```
//!
//! Adapters read the world, call into this crate to decide what to write, and report a
//! [`proto::outcome::StepOutcome`]. Nothing here touches the network, a file or a clock, so it
//! is unit- and property-tested without a runtime.
//!
//! Besides credspecs and diffs it holds what the diagnostics bundle needs before it leaves the
//! agent: [`redact`] removes secret values from text and JSON, [`archive`] packs the files into
//! one ustar archive.

pub mod archive;
pub mod credspec;
pub mod diff;
pub mod redact;
pub mod rollout;
pub mod secret;
pub mod selector;

pub use diff::json_diff;
pub use redact::Redactor;
pub use secret::SecretString;
