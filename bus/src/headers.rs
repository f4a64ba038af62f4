//! Headers every gmsa-fleet message carries: the schema version and the W3C trace context, so a
//! command's trace continues across the bus (coordinator span → agent span).

use async_nats::HeaderMap;
use proto::version::{SCHEMA_HEADER, SchemaVersion};

/// W3C Trace Context header name.
pub const TRACEPARENT: &str = "traceparent";

/// Headers for a message: schema version, message id for dedup, and a trace context.
pub fn outgoing(message_id: &str, traceparent: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(SCHEMA_HEADER, SchemaVersion::CURRENT.to_string().as_str());
    headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id);
    if let Some(traceparent) = traceparent {
        headers.insert(TRACEPARENT, traceparent);
    }
    headers
}

/// Adds the signature of `payload` on `subject` by `key` (`Fleet-Key`, `Fleet-Signature`).
///
/// A message id already set gets the signature's first 16 characters appended: the server's
/// dedup then keys on what only the signer could produce, so a forgery published first under the
/// same id cannot make the real message a "duplicate". (Ed25519 signatures are deterministic: the
/// same bytes re-published after a crash still deduplicate.)
pub fn sign(
    headers: &mut HeaderMap,
    key: &gmsa::signing::SecretKey,
    purpose: gmsa::signing::Purpose,
    subject: &str,
    payload: &[u8],
) {
    let signature = key.sign(purpose, subject, payload);
    headers.insert(proto::identity::KEY_HEADER, signature.key.to_string().as_str());
    headers.insert(proto::identity::SIGNATURE_HEADER, signature.value.as_str());
    if let Some(id) = headers.get(async_nats::header::NATS_MESSAGE_ID).map(|value| value.as_str().to_string()) {
        let tag: String = signature.value.chars().take(16).collect();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{id}-{tag}").as_str());
    }
}

/// Verifies a message's signature headers against `trusted` (see [`gmsa::signing::verify`]).
pub fn verify(
    headers: Option<&HeaderMap>,
    trusted: &[gmsa::signing::PublicKey],
    purpose: gmsa::signing::Purpose,
    subject: &str,
    payload: &[u8],
) -> Result<gmsa::signing::PublicKey, gmsa::signing::SignatureError> {
    let get = |name: &str| headers.and_then(|headers| headers.get(name)).map(|value| value.as_str());
    gmsa::signing::verify(
        trusted,
        get(proto::identity::KEY_HEADER),
        get(proto::identity::SIGNATURE_HEADER),
        purpose,
        subject,
        payload,
    )
}

/// The public key a message's `Fleet-Key` header names, if it parses.
pub fn signer_of(headers: Option<&HeaderMap>) -> Option<gmsa::signing::PublicKey> {
    let value = headers?.get(proto::identity::KEY_HEADER)?;
    gmsa::signing::PublicKey::parse(value.as_str()).ok()
}

/// The refusal code of a signature error.
pub fn refusal_of(err: &gmsa::signing::SignatureError) -> proto::decode::Refusal {
    use gmsa::signing::SignatureError;
    let code = match err {
        SignatureError::Unsigned => proto::decode::Code::Unsigned,
        SignatureError::UnknownKey(_) => proto::decode::Code::UnknownKey,
        SignatureError::BadSignature(_) => proto::decode::Code::BadSignature,
    };
    proto::decode::Refusal::new(code, err.to_string())
}

/// The schema version a message declares in its header, if any.
pub fn schema_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(SCHEMA_HEADER).map(|value| value.as_str())
}

/// The trace context a message carries, if any.
pub fn traceparent_of(headers: &HeaderMap) -> Option<String> {
    headers.get(TRACEPARENT).map(|value| value.as_str().to_string())
}

/// A new W3C `traceparent` (version 00, sampled) for a command that starts a trace.
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_has_the_w3c_shape() {
        let value = new_traceparent();
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
    }

    #[test]
    fn outgoing_headers_round_trip() {
        let headers = outgoing("cmd-1", Some("00-abc-def-01"));
        assert_eq!(schema_of(&headers), Some(proto::version::SchemaVersion::CURRENT.to_string().as_str()));
        assert_eq!(traceparent_of(&headers).as_deref(), Some("00-abc-def-01"));
    }
}
