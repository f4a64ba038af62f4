//! Scheduled, zero-downtime rotation of the standard domain user's password (issue 19): the
//! coordinator's side. The decisions are pure (`gmsa::rotation`); this module persists them, asks
//! the central adapters ([`RotationPort`], implemented by `crate::central::Central`) to act, and
//! starts the `rotate-credential` rollout through the rollout driver.
//!
//! ```text
//!  fleetctl rotate now|status|history|schedule ── fleet.ctl.rotate ──► runner (leader only)
//!  scheduler tick (next_due) ──────────────────────────────────────────┘   │
//!     KV fleet_rotations: one CredentialRecord per credential, written with compare-and-set
//!     RotationPort: reset idle user on the PDC → new version per vault (tagged with the run)
//!     fleet.ctl.rollout StartRotation (id fixed by the run) → rotate-credential on every cluster
//! ```
//!
//! Guarantees:
//! - **Key Vault always names a user whose password works.** Only the user no vault names is
//!   reset; the vaults are written after the reset is confirmed by a bind; no version is ever
//!   disabled or deleted.
//! - **One rotation of a credential at a time.** A run starts only when the record has none in
//!   progress, and every record write is compare-and-set on its revision: a second writer (a
//!   deposed leader) fails and reloads.
//! - **Crash safety.** The run is persisted before each step; a resumed run asks
//!   `gmsa::rotation::next_step` what is left, so a vault that got the password is never written
//!   again and a reset whose password reached no vault is simply done again.
//! - **A missed window runs once** (`gmsa::rotation::next_due` from the last run).
//! - **No password on the bus or in a log**: it lives in a `SecretString` from the directory to
//!   the vault request; a resumed run reads it back from a vault this run wrote.
//!
//! Refusals (`RotateReply::Refused` codes): `no_desired_state`, `no_central_setup` (the fleet's
//! desired state has no `central` section), `rotation_in_progress`, `schedule_invalid` (a
//! schedule that would let a password expire, naming the rule), `secret_missing`,
//! `vaults_disagree`, `foreign_user` (a vault names a user that is neither A nor B: gmsa-fleet
//! never resets it), `no_central` (the coordinator has no central section).

pub mod api;
pub mod runner;
pub mod store;

pub use runner::{CrashPoint, RotationPort, RotationSettings, run_while_leading};
