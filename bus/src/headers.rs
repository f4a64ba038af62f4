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
