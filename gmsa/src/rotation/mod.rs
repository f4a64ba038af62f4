//! Scheduled, zero-downtime rotation of the standard domain user's password (issue 19) — the
//! pure core.
//!
//! Two standard users, A and B, may both retrieve the gMSA's password. Key Vault names one of them
//! (the **active** user); the other is **idle**: nothing reads its password, so resetting it breaks
//! nothing. One rotation:
//!
//! ```text
//!  Resetting ──reset idle user on the PDC, confirm by bind──► Writing ──one new version per vault──►
//!  RollingOut (rotate-credential, a staged rollout with the rollout engine's gates) ──► Completed
//!        ▲                      │ resumed without the password in memory
//!        └── no vault has ──────┘ and no vault holds a version of this run: reset again
//! ```
//!
//! The coordinator persists a [`run::RotationRun`] after every phase change and asks
//! [`run::next_step`] what to do from what it observes in the vaults, so a coordinator killed at
//! any instant resumes without writing a vault twice: the run id is a tag on the versions it
//! writes, and a version found with it is never written again (its value is copied to the vaults
//! still lacking one). [`schedule`] decides when rotations are due and refuses a schedule that
//! would let a password expire.

pub mod run;
pub mod schedule;

pub use run::{Next, RotationRun, RunPhase, Target, TargetView, active_user, next_step};
pub use schedule::{Schedule, ScheduleError, check_against_max_age, next_due};

/// Tag on every Key Vault version a rotation writes: its value is the run id.
pub const RUN_TAG: &str = "gmsa-fleet-rotation";
