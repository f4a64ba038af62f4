//! The audit log's pure parts (issue 20): how the writer seals a batch of entries ([`seal`]),
//! how an auditor checks the log ([`verify`]) and how entries are picked for a query ([`query`]).
//!
//! The writer and the verifier share nothing but the entry type and the stored format
//! (`proto::audit`): [`verify`] hashes, builds its tree and reads notes with its own code, checked
//! against published test vectors, so a bug in the writer's tree is not repeated by the check.

pub mod query;
pub mod seal;
pub mod verify;
