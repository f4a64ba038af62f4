//! The control requests' nonces the coordinator has accepted, shared by every coordinator process
//! (requests reach any of them through the queue group): each accepted nonce is published once to
//! [`proto::subjects::NONCE`] with the signer and nonce as `Nats-Msg-Id`, and the server's
//! duplicate window ([`WINDOW`], longer than a request is valid) says whether it was seen before.

use crate::{Bus, BusError};
use std::time::Duration;

/// How long a nonce is remembered: more than the whole validity of a request
/// (`2 × proto::identity::REQUEST_WINDOW_SECS`).
pub const WINDOW: Duration = Duration::from_secs(600);

/// True the first time `signer` and `nonce` are presented; false for every later time within
/// [`WINDOW`].
pub async fn first_use(bus: &Bus, signer: &gmsa::signing::PublicKey, nonce: &str) -> Result<bool, BusError> {
    let subject = proto::subjects::NONCE.to_string();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{signer}-{nonce}").as_str());
    let ack = bus
        .jetstream()
        .publish_with_headers(subject.clone(), headers, bytes::Bytes::new())
        .await
        .map_err(|source| BusError::Publish { subject: subject.clone(), source })?
        .await
        .map_err(|source| BusError::Publish { subject, source })?;
    Ok(!ack.duplicate)
}
