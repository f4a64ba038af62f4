//! Label selectors: the parser and matcher moved to the pure core (`gmsa::selector`) so the rollout
//! engine and the coordinator share one; this re-export keeps `crate::selector` paths working.

pub use gmsa::selector::*;
