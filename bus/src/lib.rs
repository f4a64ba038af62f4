//! The NATS JetStream adapter of gmsa-fleet: the only crate that knows how commands, results,
//! progress and fleet state are laid out on the bus. Agent and coordinator use it; neither spells a
//! subject or a stream config.
//!
//! ```text
//!             publish (Nats-Msg-Id = command id, signed)        consumer agent-<c> (pinned)
//! coordinator ───────────────► FLEET_COMMANDS  fleet.cmd.<c> ◄──────────────────────── agent <c>
//!      │ after the ack: core nudge on fleet.wake.<c> ──────────────────────────────────────► │
//!      │  durable consumer           │                                                     │
//!      └◄──────────── FLEET_RESULTS  fleet.result.<c>.<id> ◄────── publish (Msg-Id) ───────┤
//!                     FLEET_PROGRESS fleet.progress.<c>.<id> ◄─────────────────────────────┤
//!                     KV fleet_agents/<c> (hello, heartbeat) ◄─────────────────────────────┤
//!                     KV fleet_cursors/<c> (last applied command sequence, attempts) ◄─────┘
//!                     KV fleet_state/<c>, fleet_rollouts/<id> (coordinator's record)
//! ```
//!
//! Each agent reads its own subject through its own durable consumer `agent-<cluster>` (name and
//! filter in the subject, so server permissions pin it), from the position it keeps in
//! `fleet_cursors`, woken by a core-NATS nudge sent once each command is stored (and a periodic
//! poll). ARCHITECTURE.md, "Transport decision", gives the reasons and the measured cost.

pub mod audit;
pub mod commands;
pub mod deadletters;
pub mod drift;
pub mod enrollment;
pub mod error;
pub mod feed;
pub mod headers;
pub mod kv;
pub mod log;
pub mod nonces;
pub mod results;
pub mod topology;

pub use error::{BusError, chain};

use async_nats::jetstream;

/// The servers of a comma-separated URL list (`nats://a:4222,nats://b:4222`): the client library
/// parses one address per string, so the list is split here.
fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, BusError> {
    url.split(',')
        .map(|one| {
            one.trim()
                .parse::<async_nats::ServerAddr>()
                .map_err(|err| BusError::Url { url: one.to_string(), reason: err.to_string() })
        })
        .collect()
}

/// How a process connects: TLS trust and credentials. The default is neither (a test server on
/// loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// The CA that signed the server's certificate; set, the connection requires TLS.
    pub ca_file: Option<std::path::PathBuf>,
    pub credentials: Credentials,
}

/// What a connection authenticates with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    None,
    /// A static user of the server's configuration (the coordinator, the callout service).
    Password { user: String, password: String },
    /// `agent:<cluster>` or `operator:<name>` with a fresh signed token at each (re)connect, checked
    /// by the coordinator's auth callout (`gmsa::natsauth`); replies use the principal's own
    /// inbox prefix, the only one its permissions allow.
    Signed { user: String },
}

impl Security {
    fn options(
        &self,
        identity: Option<std::sync::Arc<gmsa::signing::SecretKey>>,
        url: &str,
    ) -> Result<async_nats::ConnectOptions, BusError> {
        let mut options = match &self.credentials {
            Credentials::None => async_nats::ConnectOptions::new(),
            Credentials::Password { user, password } => {
                async_nats::ConnectOptions::new().user_and_password(user.clone(), password.clone())
            }
            Credentials::Signed { user } => {
                let principal = gmsa::natsauth::Principal::parse(user)
                    .map_err(|reason| BusError::Identity { path: "nats credentials".into(), reason })?;
                let key = identity.ok_or_else(|| BusError::Identity {
                    path: "nats credentials".into(),
                    reason: "signed credentials need an identity key".into(),
                })?;
                let user = user.clone();
                async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
                    let (key, user) = (key.clone(), user.clone());
                    async move {
                        let now = time::OffsetDateTime::now_utc().unix_timestamp();
                        let mut auth = async_nats::Auth::new();
                        auth.password = Some(gmsa::natsauth::token(&key, &user, now));
                        auth.username = Some(user);
                        Ok(auth)
                    }
                })
                .custom_inbox_prefix(principal.inbox_prefix())
            }
        };
        if let Some(ca) = &self.ca_file {
            if !ca.is_file() {
                return Err(BusError::Identity {
                    path: ca.display().to_string(),
                    reason: format!("nats.ca_file: no such file (connecting to {url})"),
                });
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        Ok(options)
    }
}

/// Reads a secret key file (`ed25519-seed:…`, see `gmsa::signing`): the identity a connection
/// signs with. The error names the file, never its content.
pub fn read_identity(path: &std::path::Path) -> Result<std::sync::Arc<gmsa::signing::SecretKey>, BusError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| BusError::Identity { path: path.display().to_string(), reason: err.to_string() })?;
    let key = gmsa::signing::SecretKey::parse(&text)
        .map_err(|err| BusError::Identity { path: path.display().to_string(), reason: err.to_string() })?;
    Ok(std::sync::Arc::new(key))
}

/// A connection to the bus: a NATS client, its JetStream context and the process's signing key
/// (the coordinator's command key, an agent's identity, an operator's key), if it has one.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    identity: Option<std::sync::Arc<gmsa::signing::SecretKey>>,
}

impl Bus {
    /// Connects to `url` (comma-separated server list) with `name` as the connection name.
    /// Reconnects forever with backoff; callers learn of reconnections through
    /// [`Bus::connect_with_events`].
    pub async fn connect(url: &str, name: &str) -> Result<Bus, BusError> {
        Self::connect_with_events(url, name, None).await
    }

    /// Connects once, failing at once when no server answers: for command-line tools, where
    /// "no NATS server at …" is a better answer than waiting for reconnects.
    pub async fn connect_once(url: &str, name: &str) -> Result<Bus, BusError> {
        Self::connect_once_secured(&Security::default(), None, url, name).await
    }

    /// [`Bus::connect_once`] with TLS and credentials.
    pub async fn connect_once_secured(
        security: &Security,
        identity: Option<std::sync::Arc<gmsa::signing::SecretKey>>,
        url: &str,
        name: &str,
    ) -> Result<Bus, BusError> {
        let client = security
            .options(identity.clone(), url)?
            .name(name)
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(server_addrs(url)?)
            .await
            .map_err(|source| BusError::Connect { url: url.to_string(), source })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Bus { client, jetstream, identity })
    }

    /// Like [`Bus::connect`], and sends `()` on `reconnected` each time the connection is
    /// (re-)established, so an agent can catch up on what it missed while away.
    pub async fn connect_with_events(
        url: &str,
        name: &str,
        reconnected: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    ) -> Result<Bus, BusError> {
        Self::connect_secured(&Security::default(), None, url, name, reconnected).await
    }

    /// Connects with TLS and credentials as `security` says; `identity` (needed for
    /// [`Credentials::Signed`]) becomes the bus's signing key.
    pub async fn connect_secured(
        security: &Security,
        identity: Option<std::sync::Arc<gmsa::signing::SecretKey>>,
        url: &str,
        name: &str,
        reconnected: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    ) -> Result<Bus, BusError> {
        let mut options = security.options(identity.clone(), url)?;
        options = options
            .name(name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            // Spread by the connection's name (the cluster, for an agent): a restarted server's
            // 10,000 agents come back over seconds, not at the same instants.
            .reconnect_delay_callback({
                let seed = name.to_string();
                move |attempt| gmsa::backoff::reconnect_delay(attempt, &seed)
            })
            .connection_timeout(std::time::Duration::from_secs(5));
        if let Some(sender) = reconnected {
            options = options.event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        let _ = sender.send(());
                    }
                }
            });
        }
        let client = options
            .connect(server_addrs(url)?)
            .await
            .map_err(|source| BusError::Connect { url: url.to_string(), source })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Bus { client, jetstream, identity })
    }

    /// This connection with `key` as the key that signs what it publishes: commands (coordinator),
    /// results (agent), control requests (operator).
    pub fn with_identity(mut self, key: std::sync::Arc<gmsa::signing::SecretKey>) -> Bus {
        self.identity = Some(key);
        self
    }

    /// The key that signs what this connection publishes.
    pub fn identity(&self) -> Option<&gmsa::signing::SecretKey> {
        self.identity.as_deref()
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// A request (a control-API call), signed with this connection's identity — the operator's
    /// key — when it has one; the reply within `timeout`.
    pub async fn signed_request(
        &self,
        subject: String,
        body: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<async_nats::Message, async_nats::RequestError> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(key) = self.identity() {
            let at = time::OffsetDateTime::now_utc().unix_timestamp();
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            headers.insert(proto::identity::REQUEST_AT_HEADER, at.to_string().as_str());
            headers.insert(proto::identity::REQUEST_NONCE_HEADER, nonce.as_str());
            let context = proto::identity::request_context(&subject, at, &nonce);
            headers::sign(&mut headers, key, gmsa::signing::Purpose::Request, &context, &body);
        }
        let request = async_nats::Request::new().headers(headers).payload(body.into()).timeout(Some(timeout));
        self.client.send_request(subject, request).await
    }

    /// Waits until everything published so far has reached the server.
    pub async fn flush(&self) -> Result<(), BusError> {
        self.client.flush().await.map_err(|source| BusError::Flush { source })
    }
}
