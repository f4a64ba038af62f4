//! End-to-end tests of gmsa-fleet over a real nats-server (one per test, on a free loopback port).
//! One test binary for the whole suite keeps the build lean; each area is a module.

mod e2e {
    pub mod audit;
    pub mod central;
    pub mod cloud;
    pub mod clusters;
    pub mod delivery;
    pub mod hardening;
    pub mod lifecycle;
    pub mod permissions;
    pub mod replication;
    pub mod rollouts;
    pub mod rotation;
    pub mod security;
    pub mod support;
}
