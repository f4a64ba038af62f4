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

/// The enrolled keys: read on demand and kept, and — for long-lived readers ([`Enrollments::follow`])
/// — followed live.
#[derive(Clone)]
pub struct Enrollments {
    bucket: Bucket<Enrollment>,
    cache: Arc<RwLock<HashMap<String, Entry>>>,
    _follower: Option<Arc<Follower>>,
}

/// The task following the bucket, stopped with the last clone of its [`Enrollments`].
struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The key an enrollment lets results be signed with: none when revoked or unreadable.
pub fn key_of(enrollment: &Enrollment) -> Entry {
    if enrollment.revoked_at.is_some() {
        return None;
    }
    PublicKey::parse(&enrollment.public_key).ok()
}

/// The key a stored enrollment names (none when it cannot be read).
fn key_in(bytes: &[u8]) -> Entry {
    serde_json::from_slice::<Enrollment>(bytes).ok().and_then(|enrollment| key_of(&enrollment))
}

impl Enrollments {
    /// Opens the bucket for a short-lived reader (fleetctl, a status view): each cluster's
    /// enrollment is read once, when first asked for.
    pub async fn open(bus: &Bus) -> Result<Enrollments, BusError> {
        Ok(Enrollments { bucket: kv::enrollments(bus).await?, cache: Arc::default(), _follower: None })
    }

    /// Opens the bucket and follows it with a KV watch, so an enrollment or revocation reaches a
    /// long-lived reader (the result feed, the auth callout) without a restart.
    pub async fn follow(bus: &Bus) -> Result<Enrollments, BusError> {
        let mut enrollments = Self::open(bus).await?;
        let mut watch = enrollments.bucket.watch_raw().await?;
        let cache = enrollments.cache.clone();
        let task = tokio::spawn(async move {
            while let Some(update) = watch.next().await {
                let (key, value) = match update {
                    Ok(update) => update,
                    Err(err) => {
                        warn!(error = %err, "enrollment watch error");
                        continue;
                    }
                };
                if let Ok(mut cache) = cache.write() {
                    cache.insert(key, value.and_then(|bytes| key_in(&bytes)));
                }
            }
        });
        enrollments._follower = Some(Arc::new(Follower(task)));
        Ok(enrollments)
    }

    /// The keys `cluster`'s results may be signed with (none: not enrolled, or revoked).
    pub async fn keys_of(&self, cluster: &str) -> Result<Vec<PublicKey>, BusError> {
        if let Some(entry) = self.cache.read().ok().and_then(|cache| cache.get(cluster).copied()) {
            return Ok(entry.into_iter().collect());
        }
        let Some((bytes, _)) = self.bucket.get_raw(cluster).await? else { return Ok(Vec::new()) };
        let entry = key_in(&bytes);
        if let Ok(mut cache) = self.cache.write() {
            cache.entry(cluster.to_string()).or_insert(entry);
        }
        Ok(entry.into_iter().collect())
    }
}
