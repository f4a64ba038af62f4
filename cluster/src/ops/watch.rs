//! `watch_drift`: watch what gmsa-fleet owns (kube-runtime watchers on the owner's labels, one
//! per managed kind), turn each change someone else made into a [`DriftEvent`], and re-apply or
//! only report according to the [`DriftPolicy`].
//!
//! Expected flow: the agent keeps the current [`ApplyRequest`] in a `tokio::sync::watch`
//! channel, **publishes a new request before applying it**, and runs this future in a task; it
//! returns when the event receiver is dropped.
//!
//! Caveats: a watcher restart re-lists; objects deleted while nobody watched are then reported
//! as deleted. A restart racing with the agent's own apply of a new request can report (and,
//! under `Reapply`, re-apply) that same request once; server-side apply makes that harmless.

use futures::{StreamExt, stream};
use kube::Client;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use tokio::sync::{mpsc, watch};
use tracing::{info, instrument, warn};

use crate::desired::{ApplyRequest, ObjectKind, ObjectRef, desired_objects, owner_selector};
use crate::drift::{DriftCause, DriftEvent, DriftPolicy, Observation, Remedy, detect, missing_after_listing};
use crate::ops::apply::apply;
use crate::ops::resources::{api_all, object_ref, to_value};
use crate::preflight::Passed;

/// Why the drift watch stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// The request channel's sender was dropped: nothing to compare against any more.
    #[error("the desired-state channel closed")]
    DesiredClosed,
}

/// Watches for drift until `events` is closed. See the module doc.
#[instrument(skip_all, fields(policy = ?policy))]
pub async fn watch_drift(
    client: Client,
    passed: Passed,
    mut requests: watch::Receiver<ApplyRequest>,
    policy: DriftPolicy,
    events: mpsc::Sender<DriftEvent>,
) -> Result<(), DriftError> {
    let version = passed.api_version();
    let mut owner = requests.borrow().owner.clone();
    'restart: loop {
        let selector = owner_selector(&owner);
        let streams = ObjectKind::ALL.map(|kind| {
            let config = watcher::Config::default().labels(&selector);
            watcher(api_all(&client, kind, version), config).default_backoff().map(move |event| (kind, event)).boxed()
        });
        let mut merged = stream::select_all(streams);
        let mut listed: Vec<Vec<ObjectRef>> = vec![Vec::new(); ObjectKind::ALL.len()];
        loop {
            let next = tokio::select! {
                next = merged.next() => next,
                changed = requests.changed() => {
                    changed.map_err(|_| DriftError::DesiredClosed)?;
                    let new_owner = requests.borrow().owner.clone();
                    if new_owner != owner {
                        owner = new_owner;
                        continue 'restart;
                    }
                    continue;
                }
                () = events.closed() => return Ok(()),
            };
            let Some((kind, event)) = next else { return Ok(()) };
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    warn!(?kind, %error, "drift watcher error; retrying with backoff");
                    continue;
                }
            };
            let request = requests.borrow().clone();
            let Ok(desired) = desired_objects(&request, version) else { continue };
            let slot = ObjectKind::ALL.iter().position(|k| *k == kind).unwrap_or_default();
            let mut drifts: Vec<(ObjectRef, DriftCause, Vec<proto::outcome::FieldChange>)> = Vec::new();
            match event {
                Event::Init => listed[slot].clear(),
                Event::InitApply(live) | Event::Apply(live) => {
                    let object = object_ref(kind, &live);
                    listed[slot].push(object.clone());
                    let value = to_value(kind, version, &live);
                    if let Some((cause, diff)) = detect(&desired, &object, Observation::Present(&value)) {
                        drifts.push((object, cause, diff));
                    }
                }
                Event::Delete(live) => {
                    let object = object_ref(kind, &live);
                    if let Some((cause, diff)) = detect(&desired, &object, Observation::Absent) {
                        drifts.push((object, cause, diff));
                    }
                }
                Event::InitDone => {
                    for missing in missing_after_listing(&desired, kind, &listed[slot]) {
                        if let Some((cause, diff)) = detect(&desired, &missing.object, Observation::Absent) {
                            drifts.push((missing.object.clone(), cause, diff));
                        }
                    }
                }
            }
            for (object, cause, diff) in drifts {
                let remedy = remedy(&client, &request, &passed, policy).await;
                info!(%object, ?cause, "drift detected");
                let event = DriftEvent {
                    kind: object.kind,
                    namespace: object.namespace,
                    name: object.name,
                    cause,
                    diff,
                    remedy,
                };
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

async fn remedy(client: &Client, request: &ApplyRequest, passed: &Passed, policy: DriftPolicy) -> Remedy {
    match policy {
        DriftPolicy::ReportOnly => Remedy::Reported,
        DriftPolicy::Reapply => match apply(client, request, passed).await {
            Ok(outcome) => Remedy::Reapplied { outcome },
            Err(error) => Remedy::ReapplyFailed { error: error_chain(&error) },
        },
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
