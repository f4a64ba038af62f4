//! fleetctl
