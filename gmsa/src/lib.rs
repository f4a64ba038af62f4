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
//!
//! What an operator writes passes through two gates here before fleetctl sends it: [`strict`]
//! decodes a payload file into the (tolerant) wire type but refuses unknown keys, naming their path;
//! [`validate::command`] checks every field with the rules the agent applies ([`credspec`],
//! [`kube_names`]) — the agent calls the same function before it executes.

pub mod archive;
pub mod audit;
pub mod backoff;
pub mod credspec;
pub mod diff;
pub mod kube_names;
pub mod merkle;
pub mod natsauth;
pub mod redact;
pub mod rollout;
pub mod rotation;
pub mod secret;
pub mod selector;
pub mod signing;
pub mod strict;
pub mod validate;

pub use diff::json_diff;
pub use redact::Redactor;
pub use secret::SecretString;
