//! One record per credential in KV `fleet_rotations`, written with compare-and-set.

use bus::kv::Bucket;
use bus::{Bus, BusError};
use gmsa::rotation::{RotationRun, Schedule};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Finished runs kept in a record.
pub const HISTORY_LIMIT: usize = 50;

/// What the coordinator keeps of one credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// The credential's id: user A's name, lowercase.
    pub credential: String,
    /// Users A and B.
    pub users: [String; 2],
    /// The user Key Vault names (after the last run; `None` before the first).
    #[serde(default)]
    pub active_user: Option<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub schedule_set_at: Option<OffsetDateTime>,
    /// When the last run completed or failed (the schedule counts from it).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_run_at: Option<OffsetDateTime>,
    /// When the active user's password was last set by a completed run.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub rotated_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_run: Option<OffsetDateTime>,
    /// The run in progress.
    #[serde(default)]
    pub current: Option<RotationRun>,
    /// Finished runs, newest first (at most [`HISTORY_LIMIT`]).
    #[serde(default)]
    pub history: Vec<RotationRun>,
    /// Clusters whose `rotate-credential` did not succeed in the last run (still unconfirmed
    /// on the newest version).
    #[serde(default)]
    pub unconfirmed: Vec<String>,
}

impl CredentialRecord {
    pub fn new(users: [String; 2]) -> Self {
        CredentialRecord {
            credential: users[0].to_ascii_lowercase(),
            users,
            active_user: None,
            schedule: None,
            schedule_set_at: None,
            last_run_at: None,
            rotated_at: None,
            next_run: None,
            current: None,
            history: Vec::new(),
            unconfirmed: Vec::new(),
        }
    }

    /// Moves the current run to the history once it finished.
    pub fn archive_current(&mut self) {
        if let Some(run) = self.current.take_if(|run| run.finished()) {
            self.history.insert(0, run);
            self.history.truncate(HISTORY_LIMIT);
        }
    }

    /// Recomputes `next_run` from the schedule and the last run.
    pub fn reschedule(&mut self) {
        self.next_run = match (&self.schedule, self.schedule_set_at) {
            (Some(schedule), Some(since)) => gmsa::rotation::next_due(schedule, self.last_run_at, since),
            _ => None,
        };
    }
}

/// The bucket.
#[derive(Clone)]
pub struct Store {
    bucket: Bucket<CredentialRecord>,
}

impl Store {
    pub async fn open(bus: &Bus) -> Result<Store, BusError> {
        Ok(Store { bucket: Bucket::open(bus, proto::subjects::ROTATIONS_BUCKET).await? })
    }

    /// The record and its revision; a record that does not decode is an error (never replaced
    /// silently: it may be a newer coordinator's).
    pub async fn get(&self, credential: &str) -> Result<Option<(CredentialRecord, u64)>, BusError> {
        self.bucket.get(credential).await
    }

    /// Every record that decodes.
    pub async fn all(&self) -> Result<Vec<CredentialRecord>, BusError> {
        let raw = self.bucket.entries_raw().await?;
        Ok(raw.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect())
    }

    /// Writes `record` if the key is still at `revision` (0: absent); the new revision.
    pub async fn put(&self, record: &CredentialRecord, revision: u64) -> Result<u64, BusError> {
        self.bucket.update(&record.credential, record, revision).await
    }
}
