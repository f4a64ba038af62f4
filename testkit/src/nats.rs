//! A real `nats-server` with JetStream for one test: its own loopback port and store directory,
//! killed and removed on drop. `kill()` and `restart()` let tests crash the server (SIGKILL) and
//! bring it back on the same port with the same store.
//!
//! The binary is `$NATS_SERVER_BIN` or `nats-server` on `PATH`; `scripts/test` installs the
//! version pinned in `deploy/nats-server.version`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    /// The binary could not be executed.
    #[error("cannot run {binary}: {source} (install it with scripts/test, or set NATS_SERVER_BIN)")]
    Spawn { binary: String, source: std::io::Error },
    /// The server did not report a client port in time.
    #[error("nats-server did not become ready within {0:?}; last output: {1}")]
    NotReady(Duration, String),
    /// The store directory could not be created.
    #[error("cannot create the store directory: {0}")]
    Store(#[source] std::io::Error),
}

/// Options of a test server.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// `jetstream.max_consumers`-style extra config lines, appended verbatim to the config file.
    pub extra_config: String,
    /// fsync every write (`sync_interval: always`), as the production config in deploy/ does.
    pub sync_always: bool,
}

/// A running nats-server.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// Holds the store and config; removed when the server is dropped.
    dir: tempfile::TempDir,
    options: NatsOptions,
    shipped: Option<Shipped>,
}

/// What a server started from the shipped configuration (`deploy/nats/nats-server.conf`) is given
/// through its environment, and what clients need to reach it.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// The test CA that signed the server's certificate (clients' `nats.ca_file`).
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Password of the static user `coordinator` (account FLEET).
    pub coordinator_password: String,
    /// Password of the static user `auth` (account AUTH, the callout service).
    pub auth_password: String,
    /// The callout issuer's account nkey (`auth_callout.issuer`).
    pub issuer_nkey: String,
}

/// The shipped server configuration.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/nats-server.conf")
}

fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_string())
}

impl NatsServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> Result<NatsServer, NatsServerError> {
        Self::start_with(NatsOptions::default())
    }

    pub fn start_with(options: NatsOptions) -> Result<NatsServer, NatsServerError> {
        let dir = tempfile::Builder::new().prefix("nats-test-").tempdir().map_err(NatsServerError::Store)?;
        let mut server = NatsServer { child: None, port: 0, dir, options, shipped: None };
        server.spawn(None)?;
        Ok(server)
    }

    /// Starts a server from the shipped configuration: TLS with a test CA, the FLEET, AUTH and SYS
    /// accounts, and the auth callout with `issuer_nkey` as its issuer.
    pub fn start_shipped(issuer_nkey: &str) -> Result<NatsServer, NatsServerError> {
        let dir = tempfile::Builder::new().prefix("nats-shipped-").tempdir().map_err(NatsServerError::Store)?;
        let tls = crate::tls::issue(&dir.path().join("tls"), "nats.test")
            .map_err(|err| NatsServerError::Store(std::io::Error::other(err.to_string())))?;
        let shipped = Shipped {
            ca_file: tls.ca,
            cert_file: tls.cert,
            key_file: tls.key,
            coordinator_password: random_password(),
            auth_password: random_password(),
            issuer_nkey: issuer_nkey.to_string(),
        };
        let mut server =
            NatsServer { child: None, port: 0, dir, options: NatsOptions::default(), shipped: Some(shipped) };
        server.spawn(None)?;
        Ok(server)
    }

    /// What the shipped configuration was given, when started with [`NatsServer::start_shipped`].
    pub fn shipped(&self) -> Option<&Shipped> {
        self.shipped.as_ref()
    }

    /// `nats://127.0.0.1:<port>`, or `tls://…` for a server from the shipped configuration.
    pub fn url(&self) -> String {
        let scheme = if self.shipped.is_some() { "tls" } else { "nats" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The OS process id, for RSS measurements.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// SIGKILLs the server: no flush, no goodbye, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.kill();
        let port = self.port;
        self.spawn(Some(port))
    }

    fn write_config(&self, port: Option<u16>) -> Result<PathBuf, NatsServerError> {
        let store = self.store_dir();
        let sync = if self.options.sync_always { "sync_interval: always" } else { "" };
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\nhttp: 0\njetstream {{\n  store_dir: \"{store}\"\n  {sync}\n}}\n{extra}\n",
            port = port.map(i32::from).unwrap_or(-1),
            store = store.display(),
            extra = self.options.extra_config,
        );
        let path = self.dir.path().join("nats.conf");
        std::fs::write(&path, config).map_err(NatsServerError::Store)?;
        Ok(path)
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<(), NatsServerError> {
        let binary = binary();
        let mut command = Command::new(&binary);
        if let Some(shipped) = &self.shipped {
            std::fs::create_dir_all(self.store_dir()).map_err(NatsServerError::Store)?;
            command
                .arg("-c")
                .arg(shipped_config())
                .env("NATS_HOST", "127.0.0.1")
                .env("NATS_PORT", port.map(i32::from).unwrap_or(-1).to_string())
                .env("NATS_SERVER_NAME", "gmsa-fleet-test")
                .env("NATS_TLS_CERT", &shipped.cert_file)
                .env("NATS_TLS_KEY", &shipped.key_file)
                .env("NATS_AUTH_PASSWORD", &shipped.auth_password)
                .env("NATS_COORDINATOR_PASSWORD", &shipped.coordinator_password)
                .env("NATS_CALLOUT_ISSUER", &shipped.issuer_nkey)
                .env("NATS_STORE_DIR", self.store_dir());
        } else {
            let config = self.write_config(port)?;
            command.arg("-c").arg(&config);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NatsServerError::Spawn { binary: binary.clone(), source })?;
        let stderr =
            child.stderr.take().ok_or_else(|| NatsServerError::NotReady(Duration::ZERO, "no stderr".into()))?;
        self.child = Some(child);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining so the server never blocks on stderr.
                    continue;
                }
            }
        });
        let timeout = Duration::from_secs(20);
        let started = Instant::now();
        let mut last = String::new();
        let mut found_port = None;
        while started.elapsed() < timeout {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(port) = client_port(&line) {
                        found_port = Some(port);
                    }
                    if let (true, Some(port)) = (line.contains("Server is ready"), found_port) {
                        self.port = port;
                        return Ok(());
                    }
                    last = line;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.kill();
        Err(NatsServerError::NotReady(timeout, last))
    }
}

fn random_password() -> String {
    let mut bytes = [0u8; 18];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Parses `Listening for client connections on 127.0.0.1:4222`.
fn client_port(line: &str) -> Option<u16> {
    let rest = line.split("Listening for client connections on ").nth(1)?;
    rest.trim().rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resident set size of a process in bytes, from `/proc/<pid>/status` (Linux).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_client_port_line() {
        let line = "[123] 2026/11/23 10:00:00.000000 [INF] Listening for client connections on 127.0.0.1:38211";
        assert_eq!(client_port(line), Some(38211));
        assert_eq!(client_port("[INF] Server is ready"), None);
    }

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut server = NatsServer::start().unwrap();
        let port = server.port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        server.kill();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        server.restart().unwrap();
        assert_eq!(server.port(), port);
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(rss_bytes(server.pid().unwrap()).unwrap() > 1_000_000);
    }
}
