//! Errors of the bus adapter: one variant per failed operation, naming the stream, bucket or
//! subject involved.

/// An operation on the bus failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A server URL does not parse.
    #[error("nats.url: {url:?} is not a server address: {reason}")]
    Url { url: String, reason: String },
    /// A key file cannot be read or is not a key.
    #[error("identity key file {path}: {reason}")]
    Identity { path: String, reason: String },
    /// Could not connect to NATS.
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// Flushing the connection failed.
    #[error("cannot flush the NATS connection")]
    Flush {
        #[source]
        source: async_nats::client::FlushError,
    },
    /// Creating or updating a stream failed.
    #[error("cannot create or update stream {stream}")]
    EnsureStream {
        stream: String,
        #[source]
        source: async_nats::jetstream::context::CreateStreamError,
    },
    /// Creating or updating a KV bucket failed.
    #[error("cannot create or update KV bucket {bucket}")]
    EnsureBucket {
        bucket: String,
        #[source]
        source: async_nats::jetstream::context::CreateKeyValueError,
    },
    /// A stream the caller needs does not exist or cannot be read (has the coordinator started?).
    #[error("cannot open stream {stream} (the coordinator creates it at start-up)")]
    OpenStream {
        stream: String,
        #[source]
        source: async_nats::jetstream::context::GetStreamError,
    },
    /// A KV bucket the caller needs does not exist or cannot be read.
    #[error("cannot open KV bucket {bucket} (the coordinator creates it at start-up)")]
    OpenBucket {
        bucket: String,
        #[source]
        source: async_nats::jetstream::context::KeyValueError,
    },
    /// A JetStream publish was not acknowledged.
    #[error("publish to {subject} was not acknowledged")]
    Publish {
        subject: String,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    /// A core publish failed.
    #[error("cannot publish to {subject}")]
    CorePublish {
        subject: String,
        #[source]
        source: async_nats::PublishError,
    },
    /// A direct get failed for another reason than "no such message".
    #[error("cannot read {subject} from stream {stream}")]
    DirectGet {
        stream: String,
        subject: String,
        #[source]
        source: async_nats::jetstream::stream::DirectGetError,
    },
    /// A KV read failed.
    #[error("cannot read key {key} of bucket {bucket}")]
    KvRead {
        bucket: String,
        key: String,
        #[source]
        source: async_nats::Error,
    },
    /// A KV write failed (including a revision conflict).
    #[error("cannot write key {key} of bucket {bucket}")]
    KvWrite {
        bucket: String,
        key: String,
        #[source]
        source: async_nats::Error,
    },
    /// A consumer could not be created or read from.
    #[error("consumer {consumer} on stream {stream} failed")]
    Consumer {
        stream: String,
        consumer: String,
        #[source]
        source: async_nats::Error,
    },
    /// A subscription could not be made.
    #[error("cannot subscribe to {subject}")]
    Subscribe {
        subject: String,
        #[source]
        source: async_nats::SubscribeError,
    },
    /// A request got no reply or an error.
    #[error("request to {subject} failed")]
    Request {
        subject: String,
        #[source]
        source: async_nats::RequestError,
    },
    /// An append to a log named a last sequence that is not the log's: another writer appended
    /// since (this one is no longer the leader, or fell behind).
    #[error("log {subject} moved past sequence {expected_last}: another writer appended")]
    LogConflict { subject: String, expected_last: u64 },
    /// A message body is not what its subject promises.
    #[error("message on {subject} cannot be decoded")]
    Decode {
        subject: String,
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be encoded (a bug: wire types always serialize).
    #[error("cannot encode a message for {subject}")]
    Encode {
        subject: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An error and every cause below it, `outer: inner: innermost`, for log lines: a bus failure is
/// logged with its cause chain, not only its top line.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
