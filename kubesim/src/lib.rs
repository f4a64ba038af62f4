//! kubesim: the Kubernetes API subset gmsa-fleet talks to, served over plain HTTP so that
//! agent processes can use ordinary kubeconfigs and `kube::Client` against simulated clusters.
//!
//! No kube-apiserver can be installed where gmsa-fleet is tested, so this crate stands in for
//! one per simulated AKS cluster. It models the real API server's wire behaviour (paths,
//! discovery documents, status codes, `Status` error bodies, server-side apply with
//! managedFields, watch with resourceVersion semantics, CRD structural-schema validation)
//! for the resources the gMSA rollout touches, and nothing else.
//!
//! ```text
//!   test / demo ──KubeSim::add_cluster(name, ClusterSeed)──► SimCluster ──► 127.0.0.1:<port>
//!        │                                                     │  ▲
//!        │  out-of-band edits, switches, audit log, get()      │  │ HTTP (kubeconfig_yaml())
//!        └─────────────────────────────────────────────────────┘  │
//!                                         agent process: kube::Client ──┘
//! ```
//!
//! Why an HTTP server rather than an in-process fake client: the agent runs as separate
//! processes in the demo and loads an ordinary kubeconfig, and its code path (kube-rs request
//! building, discovery, SSA parameters, error decoding, kube-runtime's watcher) is exercised
//! exactly as against a real cluster; a fake `Client` would skip that layer.
//!
//! Modelled: discovery (classic form, also answered to aggregated-discovery Accept headers),
//! get/list (label and `metadata.name`/`metadata.namespace` field selectors, limit/continue)
//! /create/update/delete (preconditions)/merge and strategic patch (strategic as merge, 415
//! for custom resources)/server-side apply (managedFields, conflicts, force, no-op keeps the
//! resourceVersion)/`dryRun=All`/watch (410 Expired after [`SimCluster::compact_history`]),
//! CRD structural-schema pruning and `fieldValidation`, the built-in validation in
//! `validation`, Deployment availability from the gMSA preconditions (`controller`), and
//! core/v1 Events (create, list, and the Event field selectors `involvedObject.*`, `reason`,
//! `type`, `source`, `reportingComponent`).
//! Not modelled: authorization (one admin token), JSON patch, status-subresource writes,
//! deletecollection, finalizers and graceful deletion, namespace termination, built-in type
//! schemas (unknown fields of built-in kinds are kept), CEL rules, conversion webhooks,
//! aggregated discovery documents, protobuf, TLS.
//!
//! Flows in: a [`ClusterSeed`] per cluster, HTTP requests from kube clients, out-of-band
//! edits from tests. Flows out: HTTP responses and watch streams, the per-cluster
//! [`AuditEntry`] log, and object snapshots for assertions ([`SimCluster::snapshot`]: the whole
//! store without volatile metadata, to compare a cluster before setup and after teardown).

mod apply;
mod cluster;
mod controller;
mod discovery;
mod managed_fields;
mod out_of_band;
mod registry;
mod schema;
mod seed;
mod selector;
mod server;
mod snapshot;
mod status;
mod store;
mod validation;
mod watch;
mod write;

pub use cluster::{KubeSim, SimCluster, SimError};
pub use out_of_band::InjectedEvent;
pub use seed::{ClusterSeed, CorednsForward, GMSA_CRD_NAME, GMSA_WEBHOOK_NAME, GmsaCrd};
pub use store::{AuditEntry, Origin};
