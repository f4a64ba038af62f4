//! Watch streams (`?watch=true`): newline-delimited `{"type","object"}` events over a chunked
//! response, starting from the requested resourceVersion (synthetic ADDED events for unset or
//! `0`, or with `sendInitialEvents=true` followed by the initial-events-end BOOKMARK), an
//! `ERROR` event with a 410 `Expired` Status when the version is older than the kept history,
//! and an end at `timeoutSeconds` (clients then re-watch from their last version).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Store, WatchRecord, lock};

/// What a watch request asks for.
pub(crate) struct WatchRequest {
    pub resource_type: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub timeout: Duration,
}

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event this watch sees for a change, if any. Like the API server's watch cache: a
    /// modification that makes the object stop matching the selectors is `DELETED` (with the
    /// previous object), one that makes it start matching is `ADDED`.
    fn event(&self, record: &WatchRecord) -> Option<(&'static str, Value)> {
        let same_resource = record.key.group == self.resource_type.group
            && record.key.plural == self.resource_type.plural
            && self.namespace.as_deref().is_none_or(|ns| record.key.namespace == ns);
        if !same_resource {
            return None;
        }
        let now = self.selects(&record.object);
        match (record.event_type, record.previous.as_ref().map(|previous| self.selects(previous))) {
            ("MODIFIED", Some(true)) if !now => record.previous.as_ref().map(|previous| {
                // The deletion is as of this change, so a client resuming from it does not replay it.
                let mut gone = previous.clone();
                gone["metadata"]["resourceVersion"] = Value::String(record.resource_version.to_string());
                ("DELETED", gone)
            }),
            ("MODIFIED", Some(false)) if now => Some(("ADDED", record.object.clone())),
            (event_type, _) if now => Some((event_type, record.object.clone())),
            _ => None,
        }
    }

    fn line(&self, event_type: &str, object: &Value) -> Bytes {
        let event = json!({"type": event_type, "object": Store::served(&self.resource_type, object)});
        Bytes::from(format!("{event}\n"))
    }
}

fn error_line(error: &ApiError) -> Bytes {
    Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": error.status_body()})))
}

/// Opens the watch under the store lock (so no change falls between the initial events and
/// the subscription) and returns the event stream.
pub(crate) fn open(
    store: &Arc<Mutex<Store>>,
    request: WatchRequest,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let mut initial: Vec<Bytes> = Vec::new();
    let receiver: Option<broadcast::Receiver<Arc<WatchRecord>>> = {
        let store = lock(store);
        let current = store.resource_version();
        let from_state = request.send_initial_events || matches!(request.resource_version, None | Some(0));
        if from_state {
            for object in store.list(&request.resource_type, request.namespace.as_deref()) {
                if request.labels.matches(&object) && request.fields.matches(&object) {
                    initial.push(request.line("ADDED", &object));
                }
            }
            if request.send_initial_events {
                let bookmark = json!({"apiVersion": request.resource_type.api_version(), "kind": request.resource_type.kind,
                    "metadata": {"resourceVersion": current.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                initial.push(Bytes::from(format!("{}\n", json!({"type": "BOOKMARK", "object": bookmark}))));
            }
            Some(store.subscribe())
        } else {
            match store.watch_from(request.resource_version.unwrap_or(0)) {
                Ok((backlog, receiver)) => {
                    for record in &backlog {
                        if let Some((event_type, object)) = request.event(record) {
                            initial.push(request.line(event_type, &object));
                        }
                    }
                    Some(receiver)
                }
                Err(error) => {
                    initial.push(error_line(&error));
                    None
                }
            }
        }
    };
    let deadline = tokio::time::Instant::now() + request.timeout;
    let state = (initial.into_iter(), receiver, request);
    futures::stream::unfold(state, move |(mut initial, mut receiver, request)| async move {
        if let Some(line) = initial.next() {
            return Some((Ok(line), (initial, receiver, request)));
        }
        let live = receiver.as_mut()?;
        loop {
            let record = tokio::select! {
                received = live.recv() => match received {
                    Ok(record) => record,
                    // A lagging watch ends; the client resumes from its last resourceVersion.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                },
                () = tokio::time::sleep_until(deadline) => return None,
            };
            if let Some((event_type, object)) = request.event(&record) {
                let line = request.line(event_type, &object);
                return Some((Ok(line), (initial, receiver, request)));
            }
        }
    })
}
