//! Identities for tests, the demo and the benchmark: the coordinator's command key and one key
//! per agent, derived from fixed seeds so that every harness agrees on them without sharing
//! state, and the enrollment `fleetctl agents enroll` would write. Never for production: these
//! keys are public by construction.

use bus::{Bus, BusError};
use gmsa::signing::{PublicKey, SecretKey};
use std::sync::Arc;

fn derived(label: &str) -> SecretKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("gmsa-fleet-test-key:{label}").as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(digest.as_ref());
    SecretKey::from_seed(seed)
}

/// The coordinator's command key in tests.
pub fn coordinator_key() -> Arc<SecretKey> {
    Arc::new(derived("coordinator"))
}

/// The public half of [`coordinator_key`]: what test agents trust.
pub fn coordinator_public() -> PublicKey {
    derived("coordinator").public()
}

/// A second coordinator key, for key-rotation tests.
pub fn next_coordinator_key() -> Arc<SecretKey> {
    Arc::new(derived("coordinator-next"))
}

/// The auth callout's issuer key in tests.
pub fn callout_issuer_key() -> Arc<SecretKey> {
    Arc::new(derived("callout-issuer"))
}

/// `cluster`'s agent key in tests.
pub fn agent_key(cluster: &str) -> Arc<SecretKey> {
    Arc::new(derived(&format!("agent:{cluster}")))
}

/// An operator's key in tests.
pub fn operator_key(name: &str) -> Arc<SecretKey> {
    Arc::new(derived(&format!("operator:{name}")))
}

/// Records `cluster`'s test key as its enrollment (as `fleetctl agents enroll` does through the
/// coordinator). The bucket must exist: the coordinator creates it at start.
pub async fn enroll(bus: &Bus, cluster: &str) -> Result<(), BusError> {
    let enrollment = proto::identity::Enrollment {
        cluster: cluster.to_string(),
        public_key: agent_key(cluster).public().to_string(),
        enrolled_at: time::OffsetDateTime::now_utc(),
        enrolled_by: Some("testkit".into()),
        revoked_at: None,
        revoked_by: None,
    };
    bus::kv::enrollments(bus).await?.put(cluster, &enrollment).await?;
    Ok(())
}

/// The operator every test fleet configures with the `approve` role.
pub const TEST_OPERATOR: &str = "test-admin";

/// A test operator with the `read-only` role.
pub const TEST_READER: &str = "test-reader";
/// A test operator with the `operate` role.
pub const TEST_OPERATE: &str = "test-operate";

/// A connection to `url` signing as operator `name`.
pub async fn operator_bus(url: &str, name: &str) -> Result<Bus, BusError> {
    Ok(Bus::connect(url, name).await?.with_identity(operator_key(name)))
}

/// The `[[operators]]` entry of [`TEST_OPERATOR`] as TOML, for a `fleet-coordinator` file.
pub fn test_operator_toml() -> String {
    format!(
        "[[operators]]\nname = \"{TEST_OPERATOR}\"\npublic_key = \"{}\"\nrole = \"approve\"\n",
        operator_key(TEST_OPERATOR).public()
    )
}

/// A key file of [`TEST_OPERATOR`]'s key (written once per process), for `fleetctl --operator-key`.
pub fn operator_key_file() -> std::path::PathBuf {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("gmsa-fleet-test-operator-{}.key", std::process::id()));
        std::fs::write(&path, operator_key(TEST_OPERATOR).to_text())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        path
    })
    .clone()
}
