//! nats-server harness.
