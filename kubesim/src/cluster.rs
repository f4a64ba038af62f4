//! The public handles: [`KubeSim`] owns many simulated clusters, each a [`SimCluster`] with its
//! own HTTPS listener on 127.0.0.1 and CA, its kubeconfig, the bearer tokens of its users, and the out-of-band controls tests use to
//! inspect state, edit behind the agent's back and remove gMSA preconditions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::authn::TokenTable;
use crate::out_of_band::InjectedEvent;
use crate::rbac::{PRIVILEGED_GROUP, UserInfo};
use crate::seed::{self, ClusterSeed, CorednsForward, GmsaCrd};
use crate::store::{AuditEntry, Origin, Store, lock};
use crate::tls::Tls;

/// Failures of the simulator's own API (not of HTTP requests, which answer `v1.Status`).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the cluster's listener on 127.0.0.1 failed.
    #[error("binding the listener of simulated cluster {cluster}: {source}")]
    Bind {
        cluster: String,
        #[source]
        source: std::io::Error,
    },
    /// A cluster with this name already exists in the simulator.
    #[error("simulated cluster {0} already exists")]
    DuplicateCluster(String),
    /// The kind names no resource the cluster serves.
    #[error("simulated cluster serves no resource of kind {0}")]
    UnknownKind(String),
    /// The store refused an out-of-band change the way the API server would.
    #[error("out-of-band {verb} of {kind} {name} rejected ({code} {reason}): {message}")]
    Rejected { verb: &'static str, kind: String, name: String, code: u16, reason: String, message: String },
    /// Generating the cluster's CA or serving certificate failed.
    #[error("setting up TLS for simulated cluster {cluster}: {source}")]
    Tls {
        cluster: String,
        #[source]
        source: crate::tls::TlsError,
    },
    /// Writing the kubeconfig file failed.
    #[error("writing kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Many simulated clusters in one process.
#[derive(Default)]
pub struct KubeSim {
    clusters: Mutex<BTreeMap<String, SimCluster>>,
}

impl KubeSim {
    /// An empty simulator; clusters are added with [`KubeSim::add_cluster`].
    pub fn start() -> Self {
        Self::default()
    }

    /// Seeds a cluster and starts serving it on its own 127.0.0.1 port.
    /// Must be called inside a tokio runtime; the server runs until the last handle drops.
    pub async fn add_cluster(&self, name: &str, seed: ClusterSeed) -> Result<SimCluster, SimError> {
        if lock(&self.clusters).contains_key(name) {
            return Err(SimError::DuplicateCluster(name.to_owned()));
        }
        let cluster = SimCluster::start(name, &seed).await?;
        let mut clusters = lock(&self.clusters);
        if clusters.contains_key(name) {
            return Err(SimError::DuplicateCluster(name.to_owned()));
        }
        clusters.insert(name.to_owned(), cluster.clone());
        Ok(cluster)
    }

    /// The cluster of that name.
    pub fn cluster(&self, name: &str) -> Option<SimCluster> {
        lock(&self.clusters).get(name).cloned()
    }

    /// All clusters, by name.
    pub fn clusters(&self) -> Vec<SimCluster> {
        lock(&self.clusters).values().cloned().collect()
    }
}

/// One simulated cluster. Cheap to clone; the listener stops when the last clone drops.
#[derive(Clone)]
pub struct SimCluster {
    inner: Arc<ClusterInner>,
}

struct ClusterInner {
    name: String,
    address: SocketAddr,
    /// The admin's bearer token (user `masterclient` in `system:masters`); random per cluster.
    token: String,
    /// Every accepted bearer token and its user (the admin's and those of [`SimCluster::add_token`]).
    tokens: Arc<Mutex<TokenTable>>,
    /// PEM of the cluster's CA, which signed the serving certificate.
    ca_pem: String,
    store: Arc<Mutex<Store>>,
    /// The accept loop; aborted on drop so a finished test frees its port.
    server: JoinHandle<()>,
}

impl Drop for ClusterInner {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster").field("name", &self.inner.name).field("address", &self.inner.address).finish()
    }
}

impl SimCluster {
    async fn start(name: &str, seed: &ClusterSeed) -> Result<Self, SimError> {
        let store = Arc::new(Mutex::new(Store::new(name, seed::seed_objects(name, seed))));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| SimError::Bind { cluster: name.to_owned(), source })?;
        let address = listener.local_addr().map_err(|source| SimError::Bind { cluster: name.to_owned(), source })?;
        let tls = Tls::generate().map_err(|source| SimError::Tls { cluster: name.to_owned(), source })?;
        let token = format!("kubesim-{}", uuid::Uuid::new_v4().simple());
        // AKS's admin credential: a client certificate for `masterclient` in `system:masters`.
        let admin = UserInfo::new("masterclient", &[PRIVILEGED_GROUP]);
        let tokens = Arc::new(Mutex::new(TokenTable::from([(token.clone(), admin)])));
        let server = crate::server::spawn(listener, tls.acceptor, store.clone(), tokens.clone(), name.to_owned());
        let inner = ClusterInner { name: name.to_owned(), address, token, tokens, ca_pem: tls.ca_pem, store, server };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.inner.address)
    }

    /// The admin's bearer token (a member of `system:masters`, allowed everything).
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// PEM of the CA that signed the cluster's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// Issues a bearer token for `user` in `groups` (plus `system:authenticated`), whose requests
    /// RBAC then authorizes like any other user's.
    pub fn add_token(&self, user: &str, groups: &[&str]) -> String {
        let token = format!("kubesim-{}", uuid::Uuid::new_v4().simple());
        lock(&self.inner.tokens).insert(token.clone(), UserInfo::new(user, groups));
        token
    }

    /// Issues a token of the service account `namespace/name`, as the token request API would.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let token = format!("kubesim-{}", uuid::Uuid::new_v4().simple());
        lock(&self.inner.tokens).insert(token.clone(), UserInfo::service_account(namespace, name));
        token
    }

    /// A kubeconfig with one cluster (https, the cluster's CA as `certificate-authority-data`),
    /// the admin's token and a current context.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_with_token(&self.inner.token)
    }

    /// [`SimCluster::kubeconfig_yaml`] with another bearer token (one of [`SimCluster::add_token`]).
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        use base64::Engine as _;
        let name = &self.inner.name;
        let ca_data = base64::engine::general_purpose::STANDARD.encode(self.inner.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca_data}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n    namespace: default\ncurrent-context: {name}\nusers:\n- name: {name}-admin\n  user:\n    token: {token}\npreferences: {{}}\n",
            url = self.url(),
        )
    }

    /// Writes [`SimCluster::kubeconfig_yaml`] to `path` for a separate process to load.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        std::fs::write(path, self.kubeconfig_yaml())
            .map_err(|source| SimError::WriteKubeconfig { path: path.display().to_string(), source })
    }

    /// The stored object, as served at its storage version. `kind` is a Kind (`RoleBinding`),
    /// plural (`rolebindings`) or short name, case-insensitive; `namespace` is `None` for
    /// cluster-scoped kinds.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        lock(&self.inner.store).get_out_of_band(kind, namespace, name)
    }

    /// All stored objects of a kind, in all namespaces.
    pub fn list(&self, kind: &str) -> Vec<Value> {
        lock(&self.inner.store).list_out_of_band(kind)
    }

    /// Creates or replaces an object behind the clients' backs (like `kubectl replace --force`
    /// by someone else): validated like an API write, bumps resourceVersion, notifies watches,
    /// audited with [`Origin::OutOfBand`].
    pub fn put(&self, object: Value) -> Result<Value, SimError> {
        lock(&self.inner.store).put_out_of_band(object)
    }

    /// Edits an object in place out of band; returns the stored result.
    pub fn edit(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, SimError> {
        let mut store = lock(&self.inner.store);
        let mut object = store
            .get_out_of_band(kind, namespace, name)
            .ok_or_else(|| SimError::UnknownKind(format!("{kind} {name} (object not found)")))?;
        change(&mut object);
        store.put_out_of_band(object)
    }

    /// Deletes an object out of band; `Ok(None)` if it did not exist.
    pub fn delete(&self, kind: &str, namespace: Option<&str>, name: &str) -> Result<Option<Value>, SimError> {
        lock(&self.inner.store).delete_out_of_band(kind, namespace, name)
    }

    /// Records an Event out of band, as a kubelet or controller would (validated like an API
    /// create); returns the stored Event.
    pub fn inject_event(&self, event: &InjectedEvent) -> Result<Value, SimError> {
        lock(&self.inner.store).put_out_of_band(event.to_object())
    }

    /// Every stored object without volatile metadata, in a stable order: equal snapshots mean
    /// equal cluster contents (see the `snapshot` module).
    pub fn snapshot(&self) -> Value {
        lock(&self.inner.store).snapshot()
    }

    /// Every mutation so far, API and out-of-band, in order.
    pub fn audit(&self) -> Vec<AuditEntry> {
        lock(&self.inner.store).audit().to_vec()
    }

    /// Mutations made through the API (not out of band).
    pub fn api_mutations(&self) -> Vec<AuditEntry> {
        self.audit().into_iter().filter(|entry| entry.origin == Origin::Api).collect()
    }

    /// The current resourceVersion of the cluster.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.store).resource_version()
    }

    /// Removes both gMSA webhook configurations (preflight "webhook registered" then fails).
    pub fn remove_gmsa_webhook(&self) {
        let mut store = lock(&self.inner.store);
        for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"] {
            let _ = store.delete_out_of_band(kind, None, seed::GMSA_WEBHOOK_NAME);
        }
    }

    /// Installs the gMSA CRD with the given versions, or removes it (and with it every
    /// credspec, as the real API server does) for [`GmsaCrd::Absent`].
    pub fn set_gmsa_crd(&self, serving: GmsaCrd) -> Result<(), SimError> {
        let mut store = lock(&self.inner.store);
        match seed::gmsa_crd_object(serving) {
            Some(crd) => store.put_out_of_band(crd).map(|_| ()),
            None => store.delete_out_of_band("CustomResourceDefinition", None, seed::GMSA_CRD_NAME).map(|_| ()),
        }
    }

    /// Replaces the Windows nodes by `count` fresh ones (0 makes "Windows node exists" fail).
    pub fn set_windows_nodes(&self, count: u32) -> Result<(), SimError> {
        let mut store = lock(&self.inner.store);
        for node in store.list_out_of_band("Node") {
            if node.pointer("/metadata/labels/kubernetes.io~1os").and_then(Value::as_str) == Some("windows") {
                let name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                store.delete_out_of_band("Node", None, &name)?;
            }
        }
        for index in 0..count {
            store.put_out_of_band(seed::node_object(&format!("akswin{index:06}"), "windows"))?;
        }
        Ok(())
    }

    /// Rewrites `kube-system/coredns` with or without the gMSA forward block.
    pub fn set_coredns_forward(&self, forward: Option<CorednsForward>) -> Result<(), SimError> {
        let corefile = seed::corefile(forward.as_ref());
        self.edit("ConfigMap", Some("kube-system"), "coredns", |configmap| {
            configmap["data"]["Corefile"] = Value::String(corefile);
        })
        .map(|_| ())
    }

    /// Forgets the watch history up to now: a watch resuming from an older resourceVersion then
    /// gets `410 Gone` (reason `Expired`), as after etcd compaction.
    pub fn compact_history(&self) {
        lock(&self.inner.store).compact();
    }
}
