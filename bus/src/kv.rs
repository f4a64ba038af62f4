//! Typed key-value buckets: each bucket holds JSON values of one type, keyed by cluster or rollout.

use crate::{Bus, BusError};
use async_nats::jetstream::kv::Store;
use futures::StreamExt;
use proto::subjects;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::marker::PhantomData;

/// A bucket of `T` values.
pub struct Bucket<T> {
    store: Store,
    name: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Bucket { store: self.store.clone(), name: self.name, _value: PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> Bucket<T> {
    /// Opens an existing bucket (the coordinator creates them at start-up).
    pub async fn open(bus: &Bus, name: &'static str) -> Result<Self, BusError> {
        let store = bus
            .jetstream()
            .get_key_value(name)
            .await
            .map_err(|source| BusError::OpenBucket { bucket: name.to_string(), source })?;
        Ok(Bucket { store, name, _value: PhantomData })
    }

    fn read_error(&self, key: &str, source: impl Into<async_nats::Error>) -> BusError {
        BusError::KvRead { bucket: self.name.to_string(), key: key.to_string(), source: source.into() }
    }

    fn write_error(&self, key: &str, source: impl Into<async_nats::Error>) -> BusError {
        BusError::KvWrite { bucket: self.name.to_string(), key: key.to_string(), source: source.into() }
    }

    /// The value and its revision, or `None` when the key is absent or deleted. An entry that
    /// does not decode is an error; readers that must ride over bad entries use
    /// [`Bucket::get_raw`] with their own pure decoder.
    pub async fn get(&self, key: &str) -> Result<Option<(T, u64)>, BusError> {
        match self.get_raw(key).await? {
            Some((bytes, revision)) => {
                let value = serde_json::from_slice(&bytes).map_err(|err| self.read_error(key, err))?;
                Ok(Some((value, revision)))
            }
            None => Ok(None),
        }
    }

    /// The stored bytes and their revision, undecoded; `None` when absent or deleted.
    pub async fn get_raw(&self, key: &str) -> Result<Option<(bytes::Bytes, u64)>, BusError> {
        let entry = self.store.entry(key).await.map_err(|err| self.read_error(key, err))?;
        match entry {
            Some(entry) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
                Ok(Some((entry.value, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Writes unconditionally; returns the new revision.
    pub async fn put(&self, key: &str, value: &T) -> Result<u64, BusError> {
        let bytes = serde_json::to_vec(value).map_err(|err| self.write_error(key, err))?;
        self.store.put(key, bytes.into()).await.map_err(|err| self.write_error(key, err))
    }

    /// Writes only if the key is still at `revision` (0: only if absent); returns the new revision.
    pub async fn update(&self, key: &str, value: &T, revision: u64) -> Result<u64, BusError> {
        let bytes = serde_json::to_vec(value).map_err(|err| self.write_error(key, err))?;
        if revision == 0 {
            self.store.create(key, bytes.into()).await.map_err(|err| self.write_error(key, err))
        } else {
            self.store.update(key, bytes.into(), revision).await.map_err(|err| self.write_error(key, err))
        }
    }

    /// Every key and value. Cost: one read per key; fine for inventories of ~10^4. One entry
    /// that does not decode fails the whole read: fleet-wide views use [`Bucket::entries_raw`].
    pub async fn entries(&self) -> Result<Vec<(String, T)>, BusError> {
        let mut out = Vec::new();
        for (key, bytes) in self.entries_raw().await? {
            let value = serde_json::from_slice(&bytes).map_err(|err| self.read_error(&key, err))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Every change from now on (after the current values): key and bytes, `None` for a delete.
    pub async fn watch_raw(
        &self,
    ) -> Result<impl futures::Stream<Item = Result<(String, Option<bytes::Bytes>), BusError>> + Send + 'static, BusError>
    {
        let name = self.name;
        let watch = self.store.watch_all().await.map_err(|err| self.read_error(">", err))?;
        Ok(futures::StreamExt::map(watch, move |entry| match entry {
            Ok(entry) => {
                let value = (entry.operation == async_nats::jetstream::kv::Operation::Put).then_some(entry.value);
                Ok((entry.key, value))
            }
            Err(err) => Err(BusError::KvRead { bucket: name.to_string(), key: ">".into(), source: err.into() }),
        }))
    }

    /// Every key and its stored bytes, undecoded, so the caller can skip and report bad entries.
    ///
    /// One ordered consumer delivering the last value of every key (not a read per key): 10,000
    /// entries arrive in one stream of messages.
    pub async fn entries_raw(&self) -> Result<Vec<(String, bytes::Bytes)>, BusError> {
        Ok(self.revisions_raw().await?.into_iter().map(|(key, value, _)| (key, value)).collect())
    }

    /// [`Bucket::entries_raw`] with each entry's revision (what an update checks against).
    pub async fn revisions_raw(&self) -> Result<Vec<(String, bytes::Bytes, u64)>, BusError> {
        let mut stream = self.store.stream.clone();
        let info = stream.info().await.map_err(|err| self.read_error("*", err))?;
        if info.state.messages == 0 {
            return Ok(Vec::new());
        }
        let mut watch = self.store.watch_with_history(">").await.map_err(|err| self.read_error("*", err))?;
        let mut out = Vec::new();
        loop {
            let entry = tokio::time::timeout(std::time::Duration::from_secs(30), watch.next())
                .await
                .map_err(|_| self.read_error("*", "no entry within 30 s while listing the bucket"))?;
            let Some(entry) = entry else { break };
            let entry = entry.map_err(|err| self.read_error("*", err))?;
            let last = entry.delta == 0;
            if entry.operation == async_nats::jetstream::kv::Operation::Put {
                out.push((entry.key, entry.value, entry.revision));
            }
            if last {
                break;
            }
        }
        Ok(out)
    }
}

/// An agent's position in the command stream and the command it is working on, so that a restart
/// resumes where it stopped and a command that keeps crashing the agent ends after bounded attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sequence of the last command whose result was published (0: none yet).
    pub last_done: u64,
    /// The command being applied, if the agent stopped while applying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
}

/// A command started but not finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    pub sequence: u64,
    pub command_id: String,
    /// How many times it was started, this one included.
    pub attempts: u32,
    /// The steps earlier attempts completed, recorded as each finished (schema 1.3): a re-run
    /// after a crash reports what the first attempt changed, not only what was left to change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<proto::StepOutcome>,
}

/// Puts `value` under `key` in `bucket` without opening it (no stream-info round trip): the same
/// message [`Bucket::put`] sends — a publish to `$KV.<bucket>.<key>`, acknowledged by the bucket's
/// stream. For a writer that never reads the bucket (an agent's hello); returns the revision.
pub async fn put_unopened<T: Serialize>(bus: &Bus, bucket: &str, key: &str, value: &T) -> Result<u64, BusError> {
    let write_error =
        |source: async_nats::Error| BusError::KvWrite { bucket: bucket.to_string(), key: key.to_string(), source };
    if !is_key(key) {
        return Err(write_error("not a valid key (letters, digits, `-`, `_`, `=`, `.`, `/`)".into()));
    }
    let bytes = serde_json::to_vec(value).map_err(|err| write_error(err.into()))?;
    let ack = bus
        .jetstream()
        .publish(format!("$KV.{bucket}.{key}"), bytes.into())
        .await
        .map_err(|err| write_error(err.into()))?
        .await
        .map_err(|err| write_error(err.into()))?;
    Ok(ack.sequence)
}

/// A key the KV subjects accept (as async-nats checks it).
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_=./".contains(&byte))
}

/// Decodes a stored cursor (pure): a cursor that is not one is refused with
/// [`proto::decode::Code::UndecodableCursor`]; the agent then resets it (see `agent::worker`).
pub fn decode_cursor(bytes: &[u8]) -> Result<Cursor, proto::decode::Refusal> {
    serde_json::from_slice(bytes).map_err(|err| {
        proto::decode::Refusal::new(proto::decode::Code::UndecodableCursor, format!("not a cursor: {err}"))
    })
}

/// The agents' cursors.
pub async fn cursors(bus: &Bus) -> Result<Bucket<Cursor>, BusError> {
    Bucket::open(bus, subjects::CURSORS_BUCKET).await
}

/// The agents' hellos and heartbeats.
pub async fn agents(bus: &Bus) -> Result<Bucket<proto::AgentInfo>, BusError> {
    Bucket::open(bus, subjects::AGENTS_BUCKET).await
}

/// The agents' enrollments (written by the coordinator only).
pub async fn enrollments(bus: &Bus) -> Result<Bucket<proto::identity::Enrollment>, BusError> {
    Bucket::open(bus, subjects::ENROLLMENTS_BUCKET).await
}

#[cfg(test)]
mod key_tests {
    use super::is_key;

    #[test]
    fn keys_are_checked_as_the_kv_subjects_need() {
        for key in ["aks-prod-001", "a_b=c.d/e", "x"] {
            assert!(is_key(key), "{key}");
        }
        for key in ["", ".a", "a.", "a b", "a*", "a>", "ä"] {
            assert!(!is_key(key), "{key:?}");
        }
    }
}
