//! The Key Distribution Service (KDS) root key check — the PowerShell module's first AD step.
//!
//! Domain controllers derive gMSA passwords from a KDS root key
//! (`msKds-ProvRootKey` objects under `CN=Master Root Keys,CN=Group Key Distribution Service,
//! CN=Services,CN=Configuration,…`). Windows uses a root key only once its `msKds-UseStartTime`
//! lies at least 10 hours in the past, the time Microsoft allows for AD replication — which is
//! why the seed's test-lab recipe back-dates it (`Add-KdsRootKey -EffectiveTime
//! (Get-Date).AddHours(-10)`). This module reads and judges; creating a root key is an operator
//! action (`Add-KdsRootKey -EffectiveImmediately` on a DC, then wait 10 hours in production)
//! and this crate never does it: a root key is forest-wide key material whose format
//! (`msKds-KDFParam`, `msKds-SecretAgreementParam`) Windows' KDS service defines, so it is made
//! by the tool that owns it, never hand-assembled over LDAP.
//!
//! Samba 4.22 (the test DC) provisions one root key back-dated 10 hours, so it is effective at
//! once, and derives gMSA passwords from it; 4.17 had no KDS container and derived none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Windows waits this long after a root key's start time before deriving passwords from it.
pub const REPLICATION_DELAY: Duration = Duration::from_secs(10 * 60 * 60);
/// 100-ns intervals between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 116_444_736_000_000_000;

/// One root key as read from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdsRootKey {
    /// The key's `cn` (a GUID).
    pub id: String,
    /// `msKds-UseStartTime`: from when the key may be used, before the replication delay.
    pub use_start_time: SystemTime,
}

/// The root keys of the forest and what they allow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KdsStatus {
    /// All root keys found (none on a forest that never ran `Add-KdsRootKey`).
    pub root_keys: Vec<KdsRootKey>,
}

impl KdsStatus {
    /// True when at least one root key exists.
    pub fn exists(&self) -> bool {
        !self.root_keys.is_empty()
    }

    /// True when some root key's start time is at least [`REPLICATION_DELAY`] before `now`, so
    /// every DC can derive gMSA passwords from it.
    pub fn is_effective(&self, now: SystemTime) -> bool {
        self.root_keys.iter().any(|key| key.use_start_time + REPLICATION_DELAY <= now)
    }

    /// When the earliest key becomes effective (`None` without keys).
    pub fn effective_from(&self) -> Option<SystemTime> {
        self.root_keys.iter().map(|key| key.use_start_time + REPLICATION_DELAY).min()
    }
}

/// Converts an AD large-integer time (`msKds-UseStartTime`, 100 ns since 1601-01-01 UTC) to
/// `SystemTime`; values before 1970 clamp to the Unix epoch.
pub fn filetime_to_system_time(filetime: u64) -> SystemTime {
    let since_unix = filetime.saturating_sub(FILETIME_UNIX_OFFSET);
    UNIX_EPOCH + Duration::from_secs(since_unix / 10_000_000) + Duration::from_nanos((since_unix % 10_000_000) * 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_status(start: SystemTime) -> KdsStatus {
        KdsStatus {
            root_keys: vec![KdsRootKey { id: "0d3b4b6c-1111-2222-3333-444455556666".into(), use_start_time: start }],
        }
    }

    #[test]
    fn no_keys_means_absent_and_not_effective() {
        let status = KdsStatus::default();
        assert!(!status.exists());
        assert!(!status.is_effective(SystemTime::now()));
        assert_eq!(status.effective_from(), None);
    }

    #[test]
    fn a_key_is_effective_ten_hours_after_its_start_time() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let status = mk_status(start);
        assert!(status.exists());
        assert!(!status.is_effective(start), "EffectiveImmediately still waits for replication");
        assert!(!status.is_effective(start + REPLICATION_DELAY - Duration::from_secs(1)));
        assert!(status.is_effective(start + REPLICATION_DELAY));
        assert_eq!(status.effective_from(), Some(start + REPLICATION_DELAY));
    }

    #[test]
    fn filetime_converts_to_unix_time() {
        // 2023-11-14T22:13:20Z = Unix 1_700_000_000.
        let filetime = FILETIME_UNIX_OFFSET + 1_700_000_000 * 10_000_000 + 5;
        assert_eq!(
            filetime_to_system_time(filetime),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_nanos(500)
        );
        assert_eq!(filetime_to_system_time(0), UNIX_EPOCH);
    }
}
