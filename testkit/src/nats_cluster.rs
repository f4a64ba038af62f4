//! A 3-node (or n-node) JetStream cluster on loopback for replication tests: each node its own
//! client and route port, store and config; `kill(i)` SIGKILLs one node, `restart(i)` brings it
//! back with the same ports and store.

use crate::nats::NatsServerError;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

struct Node {
    name: String,
    client_port: u16,
    child: Option<Child>,
}

fn free_port() -> Result<u16, NatsServerError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(NatsServerError::Store)?;
    Ok(listener.local_addr().map_err(NatsServerError::Store)?.port())
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until each accepts clients.
    pub fn start(size: usize) -> Result<NatsCluster, NatsServerError> {
        let dir = tempfile::Builder::new().prefix("nats-cluster-").tempdir().map_err(NatsServerError::Store)?;
        let mut ports = Vec::with_capacity(size);
        for _ in 0..size {
            ports.push((free_port()?, free_port()?));
        }
        let routes: Vec<String> =
            ports.iter().map(|(_, route)| format!("\"nats-route://127.0.0.1:{route}\"")).collect();
        let mut nodes = Vec::with_capacity(size);
        for (index, (client, route)) in ports.iter().enumerate() {
            let name = format!("n{index}");
            let store = dir.path().join(&name);
            std::fs::create_dir_all(&store).map_err(NatsServerError::Store)?;
            let config = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{client}\"\nhttp: 0\njetstream {{\n  store_dir: \"{store}\"\n}}\ncluster {{\n  name: gmsa-test\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
                store = store.display(),
                routes = routes.join(", "),
            );
            std::fs::write(dir.path().join(format!("{name}.conf")), config).map_err(NatsServerError::Store)?;
            nodes.push(Node { name, client_port: *client, child: None });
        }
        let mut cluster = NatsCluster { nodes, dir };
        for index in 0..size {
            cluster.spawn(index)?;
        }
        for index in 0..size {
            cluster.wait_ready(index)?;
        }
        Ok(cluster)
    }

    fn config(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("{}.conf", self.nodes[index].name))
    }

    fn spawn(&mut self, index: usize) -> Result<(), NatsServerError> {
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_string());
        let child = Command::new(&binary)
            .arg("-c")
            .arg(self.config(index))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| NatsServerError::Spawn { binary, source })?;
        self.nodes[index].child = Some(child);
        Ok(())
    }

    fn wait_ready(&self, index: usize) -> Result<(), NatsServerError> {
        let timeout = Duration::from_secs(20);
        let started = Instant::now();
        let address = format!("127.0.0.1:{}", self.nodes[index].client_port);
        while started.elapsed() < timeout {
            if std::net::TcpStream::connect(&address).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(NatsServerError::NotReady(timeout, format!("node {} at {address}", self.nodes[index].name)))
    }

    /// Every node's URL, comma-separated (as agents and the coordinator take it).
    pub fn url(&self) -> String {
        self.nodes.iter().map(|node| format!("nats://127.0.0.1:{}", node.client_port)).collect::<Vec<_>>().join(",")
    }

    /// The OS process ids of the running nodes (for CPU and RSS measurements).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|node| node.child.as_ref().map(Child::id)).collect()
    }

    /// The node index of a server name (`n0`, `n1`, …), as stream info reports leaders.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// SIGKILLs node `index`.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again with its ports and store.
    pub fn restart(&mut self, index: usize) -> Result<(), NatsServerError> {
        self.kill(index);
        self.spawn(index)?;
        self.wait_ready(index)
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nats-server -t` (test the configuration and exit) on both shipped files, with the
    /// environment a deployment gives them.
    #[test]
    fn the_shipped_single_and_cluster_configurations_are_valid_for_nats_server() {
        let dir = tempfile::tempdir().unwrap();
        let tls = crate::tls::issue(&dir.path().join("tls"), "nats-0").unwrap();
        let issuer = gmsa::signing::SecretKey::from_seed([3; 32]).public();
        let deploy = crate::nats::shipped_config();
        let deploy = deploy.parent().unwrap();
        for file in ["nats-server.conf", "nats-server-cluster.conf"] {
            let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_string());
            let output = Command::new(binary)
                .arg("-t")
                .arg("-c")
                .arg(deploy.join(file))
                .env("NATS_HOST", "127.0.0.1")
                .env("NATS_PORT", "4222")
                .env("NATS_SERVER_NAME", "nats-0")
                .env("NATS_TLS_CERT", &tls.cert)
                .env("NATS_TLS_KEY", &tls.key)
                .env("NATS_TLS_CA", &tls.ca)
                .env("NATS_AUTH_PASSWORD", "a")
                .env("NATS_COORDINATOR_PASSWORD", "b")
                .env("NATS_CALLOUT_ISSUER", gmsa::signing::nkey_of(&issuer, gmsa::signing::NkeyKind::Account))
                .env("NATS_STORE_DIR", dir.path().join("store"))
                .env("NATS_ROUTE_0", "nats-route://127.0.0.1:6222")
                .env("NATS_ROUTE_1", "nats-route://127.0.0.1:6223")
                .env("NATS_ROUTE_2", "nats-route://127.0.0.1:6224")
                .output()
                .unwrap();
            assert!(output.status.success(), "{file}: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
}
