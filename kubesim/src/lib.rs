//! kubesim: the Kubernetes API subset gmsa-fleet talks to, served over HTTPS (each cluster its
//! own CA, written into the kubeconfig) so that agent processes and a real kubectl can use
//! ordinary kubeconfigs against simulated clusters.
//!
//! No kube-apiserver can be installed where gmsa-fleet is tested, so this crate stands in for
//! one per simulated AKS cluster. It models the real API server's wire behaviour (paths,
//! discovery and OpenAPI v3 documents, status codes, `Status` error bodies, authentication,
//! impersonation and RBAC, server-side apply with managedFields, watch with resourceVersion
//! semantics, CRD structural-schema validation) for the resources the gMSA rollout touches,
//! and nothing else. Tests run kubectl itself against it (`tests/api/kubectl.rs`).
//!
//! ```text
//!   test / demo ──KubeSim::add_cluster(name, ClusterSeed)──► SimCluster ──► 127.0.0.1:<port>
//!        │                                                     │  ▲
//!        │  out-of-band edits, switches, tokens, audit, get()  │  │ HTTPS (kubeconfig_yaml())
//!        └─────────────────────────────────────────────────────┘  │
//!                              agent process: kube::Client, kubectl ──┘
//! ```
//!
//! Why an HTTP server rather than an in-process fake client: the agent runs as separate
//! processes in the demo and loads an ordinary kubeconfig, and its code path (kube-rs request
//! building, discovery, SSA parameters, error decoding, kube-runtime's watcher) is exercised
//! exactly as against a real cluster; a fake `Client` would skip that layer.
//!
//! Modelled: bearer tokens (the admin's in `system:masters`, others from
//! [`SimCluster::add_token`] and [`SimCluster::service_account_token`]), impersonation headers,
//! RBAC for every request (`rbac`: Roles, ClusterRoles, bindings, `resourceNames`, custom verbs,
//! wildcards, subresources, non-resource URLs, aggregated ClusterRoles) with the bootstrap
//! roles for discovery and self-reviews, SelfSubjectAccessReview and SubjectAccessReview (JSON
//! and protobuf), 403 bodies as the apiserver words them; discovery (classic form, also
//! answered to aggregated-discovery Accept headers), `/openapi/v3` (index and group-version
//! documents with the CRD schemas and `fieldValidation`); get/list (label and
//! `metadata.name`/`metadata.namespace` field selectors, limit/continue)/create/update/delete
//! (preconditions)/JSON, merge and strategic patch (strategic as merge, 415 for custom
//! resources)/server-side apply (managedFields, conflicts, force, no-op keeps the
//! resourceVersion; request-written managedFields replace the stored ones)/`dryRun=All`/watch
//! (410 Expired after [`SimCluster::compact_history`]), CRD structural-schema pruning and
//! `fieldValidation`, the built-in validation in `validation`, the gMSA webhooks (a pod naming a
//! credspec is admitted only if the credspec exists and its service account may `use` it, and
//! gets the credspec's content inlined; pods created through the API and the Deployment
//! controller's pods alike), Deployment availability from the gMSA preconditions
//! (`controller`), and core/v1 Events (create, list, and the Event field selectors
//! `involvedObject.*`, `reason`, `type`, `source`, `reportingComponent`).
//! Not modelled: client certificates and token review (tokens are a table), ABAC/Node/webhook
//! authorizers, SelfSubjectRulesReview and LocalSubjectAccessReview, `escalate`/`bind` checks
//! on RBAC writes (any writer may grant what it lacks), the aggregation controller writing the
//! aggregated rules into the ClusterRole (they are computed when evaluated), status-subresource
//! writes, deletecollection, finalizers and graceful deletion, namespace termination, built-in
//! type schemas (unknown fields of built-in kinds are kept; `/openapi/v3` has no component
//! schemas for them), `/openapi/v2`, CEL rules, conversion webhooks, aggregated discovery
//! documents, protobuf other than access reviews.
//!
//! Flows in: a [`ClusterSeed`] per cluster, HTTP requests from kube clients, out-of-band
//! edits from tests. Flows out: HTTP responses and watch streams, the per-cluster
//! [`AuditEntry`] log, and object snapshots for assertions ([`SimCluster::snapshot`]: the whole
//! store without volatile metadata, to compare a cluster before setup and after teardown).

mod apply;
mod authn;
mod cluster;
mod controller;
mod discovery;
mod json_patch;
mod managed_fields;
mod openapi;
mod out_of_band;
mod rbac;
mod registry;
mod review;
mod schema;
mod seed;
mod selector;
mod server;
mod snapshot;
mod status;
mod store;
mod tls;
mod validation;
mod watch;
mod write;

pub use cluster::{KubeSim, SimCluster, SimError};
pub use out_of_band::InjectedEvent;
pub use seed::{ClusterSeed, CorednsForward, GMSA_CRD_NAME, GMSA_WEBHOOK_NAME, GmsaCrd};
pub use store::{AuditEntry, Origin};
