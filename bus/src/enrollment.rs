//! The agents' enrolled keys (`fleet_enrollments`, written by the coordinator only), as readers of
//! results need them: which key a cluster's results must be signed with. Kept in memory and
//! followed with a KV watch, so a revocation takes effect at the next result without a restart.

use crate::kv::{self, Bucket};
use crate::{Bus, BusError};
use futures::StreamExt;
use gmsa::signing::PublicKey;
use proto::identity::Enrollment;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tracing::warn;

/// A cluster's entry in the cache: its key, or revoked / unreadable (no key).
type Entry = Option<PublicKey>;

/// The enrolled keys, followed live.
#[derive(Clone)]
pub struct Enrollments {
    bucket: Bucket<Enrollment>,
    cache: Arc<RwLock<HashMap<String, Entry>>>,
    _watch: Arc<tokio::task::JoinHandle<()>>,
}

/// The key an enrollment lets results be signed with: none when revoked or unreadable.
pub fn key_of(enrollment: &Enrollment) -> Entry {
    if enrollment.revoked_at.is_some() {
        return None;
    }
    PublicKey::parse(&enrollment.public_key).ok()
}

impl Enrollments {
    /// Opens the bucket and starts following it.
    pub async fn open(bus: &Bus) -> Result<Enrollments, BusError> {
        let bucket = kv::enrollments(bus).await?;
        let cache: Arc<RwLock<HashMap<String, Entry>>> = Arc::default();
        let watch = bucket.watch_raw().await?;
        let follower = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut watch = watch;
                while let Some(update) = watch.next().await {
                    let (key, value) = match update {
                        Ok(update) => update,
                        Err(err) => {
                            warn!(error = %err, "enrollment watch error");
                            continue;
                        }
                    };
                    let entry = value
                        .and_then(|bytes| serde_json::from_slice::<Enrollment>(&bytes).ok())
                        .and_then(|e| key_of(&e));
                    if let Ok(mut cache) = cache.write() {
                        cache.insert(key, entry);
                    }
                }
            })
        };
        Ok(Enrollments { bucket, cache, _watch: Arc::new(follower) })
    }

    /// The keys `cluster`'s results may be signed with (none: not enrolled, or revoked).
    pub async fn keys_of(&self, cluster: &str) -> Result<Vec<PublicKey>, BusError> {
        if let Some(entry) = self.cache.read().ok().and_then(|cache| cache.get(cluster).copied()) {
            return Ok(entry.into_iter().collect());
        }
        let entry = match self.bucket.get_raw(cluster).await? {
            Some((bytes, _)) => serde_json::from_slice::<Enrollment>(&bytes).ok().and_then(|e| key_of(&e)),
            None => return Ok(Vec::new()),
        };
        if let Ok(mut cache) = self.cache.write() {
            cache.entry(cluster.to_string()).or_insert(entry);
        }
        Ok(entry.into_iter().collect())
    }

    /// The bucket (the coordinator writes enrollments through it).
    pub fn bucket(&self) -> &Bucket<Enrollment> {
        &self.bucket
    }
}

impl Drop for Enrollments {
    fn drop(&mut self) {
        if Arc::strong_count(&self._watch) == 1 {
            self._watch.abort();
        }
    }
}
