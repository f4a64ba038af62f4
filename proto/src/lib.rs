//! Wire types of gmsa-fleet: what travels on the NATS bus between coordinator and agents.
//! No I/O here; see `proto/README.md` for subjects, streams and versioning.

pub mod outcome;
