//! Fleet rollouts in the coordinator daemon (issue 16): the leader's driver that runs the pure
//! engine (`gmsa::rollout`) against the bus.
//!
//! ```text
//!  fleetctl rollout … ──fleet.ctl.rollout──► driver (leader only) ──append──► FLEET_ROLLOUT_LOG
//!                                              │  ▲                              (then act)
//!                 FLEET_COMMANDS ◄── Send ─────┘  └── StepFinished ◄── durable consumer on FLEET_RESULTS
//! ```
//!
//! `api` is the control API, `log` the pure log format and replay, `driver` the I/O loop,
//! `rollback` the teardown that undoes a first-time setup.

pub mod api;
pub mod driver;
pub mod log;
pub mod rollback;

pub use driver::{Clock, DriverSettings, ManualClock, Stage0, SystemClock, run_while_leading};
